//! The keycard demo API on actix-web, with the same contract as the axum
//! quickstart. Run: `cargo run --example quickstart_actix`.

mod common;

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use common::{Demo, LoginRequest, Refusal, Shared};
use keycard::{SessionError, TokenPair};
use keycard_actix::{ActixHeaders, Authenticated, JwtAuth, RequireRoles};

fn json_error(status: u16, body: String) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .content_type("application/json")
        .body(body)
}

fn with_cookies(mut res: HttpResponse, cookies: [String; 2]) -> HttpResponse {
    for c in cookies {
        if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&c) {
            res.headers_mut()
                .append(actix_web::http::header::SET_COOKIE, v);
        }
    }
    res
}

fn pair_response(
    demo: &Demo,
    result: Result<TokenPair, SessionError>,
    cookie_only: bool,
) -> HttpResponse {
    match result {
        Ok(pair) => with_cookies(
            HttpResponse::Ok().json(common::pair_body(&pair, cookie_only)),
            demo.set_cookies(&pair),
        ),
        Err(e) => with_cookies(json_error(e.status(), e.body()), demo.clear_cookies()),
    }
}

async fn health() -> &'static str {
    "ok"
}

async fn login(demo: web::Data<Shared>, req: web::Json<LoginRequest>) -> HttpResponse {
    match demo.login(&req).await {
        Some(result) => pair_response(&demo, result, req.cookie_only),
        None => json_error(
            401,
            r#"{"error":"invalid_credentials","error_description":"wrong username or password"}"#
                .into(),
        ),
    }
}

async fn refresh(demo: web::Data<Shared>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    match demo.refresh_input(req.method().as_str(), &ActixHeaders(req.headers()), &body) {
        Ok((token, cookie_only)) => {
            pair_response(&demo, demo.sessions.refresh(&token).await, cookie_only)
        }
        Err(Refusal::Csrf(e)) => keycard_actix::error_response(&e),
        Err(Refusal::BadRequest(body)) => json_error(400, body.into()),
    }
}

async fn logout(demo: web::Data<Shared>, token: Authenticated) -> HttpResponse {
    match demo.sessions.logout(&token).await {
        Ok(()) => with_cookies(
            HttpResponse::Ok().json(serde_json::json!({"logged_out": true})),
            demo.clear_cookies(),
        ),
        Err(e) => json_error(e.status(), e.body()),
    }
}

async fn me(token: Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "sub": token.subject(), "roles": token.roles() }))
}

async fn admin(token: Authenticated) -> HttpResponse {
    HttpResponse::Ok()
        .json(serde_json::json!({ "message": "welcome, admin", "sub": token.subject() }))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let demo: Shared = Arc::new(common::demo_from_env(3000).await);
    let port = demo.port;
    let data = web::Data::new(demo.clone());
    let server = HttpServer::new(move || {
        let auth = JwtAuth::new(data.sessions.verifier().clone());
        App::new()
            .app_data(data.clone())
            .route("/health", web::get().to(health))
            .route("/login", web::post().to(login))
            .route("/refresh", web::post().to(refresh))
            .service(
                web::scope("")
                    .wrap(auth)
                    .route("/me", web::get().to(me))
                    .route("/logout", web::post().to(logout))
                    .service(
                        web::resource("/admin")
                            .wrap(RequireRoles::any_of(["admin"]))
                            .route(web::get().to(admin)),
                    ),
            )
    })
    .workers(2)
    .bind(("127.0.0.1", port))
    .unwrap_or_else(|e| common::fail(&format!("cannot listen on 127.0.0.1:{port}: {e}")));
    demo.banner("actix-web");
    server.run().await
}
