//! The keycard demo API on actix-web, with the same contract as the axum
//! quickstart. Run: `cargo run --example quickstart_actix`.

mod common;

use std::sync::Arc;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use common::{LoginRequest, Shared};
use keycard::actix::{endpoint_response, ActixHeaders, Authenticated, JwtAuth, RequireRoles};

async fn health() -> &'static str {
    "ok"
}

async fn login(
    demo: web::Data<Shared>,
    req: HttpRequest,
    body: web::Json<LoginRequest>,
) -> HttpResponse {
    let headers = ActixHeaders(req.headers());
    endpoint_response(demo.login(req.method().as_str(), &headers, &body).await)
}

async fn refresh(demo: web::Data<Shared>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let headers = ActixHeaders(req.headers());
    endpoint_response(demo.refresh(req.method().as_str(), &headers, &body).await)
}

async fn logout(demo: web::Data<Shared>, req: HttpRequest) -> HttpResponse {
    let headers = ActixHeaders(req.headers());
    endpoint_response(demo.logout(req.method().as_str(), &headers).await)
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
            // Authenticates by itself: by the access token, or by the
            // refresh cookie once the access token has expired.
            .route("/logout", web::post().to(logout))
            .service(
                web::scope("")
                    .wrap(auth)
                    .route("/me", web::get().to(me))
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
