//! The keycard demo API on actix-web, with the same contract as the axum
//! quickstart (including `GET /ready`, `GET /metrics`, the environment and
//! the graceful stop on SIGTERM/SIGINT). Run:
//! `cargo run --features actix --example quickstart_actix`.

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

async fn ready(demo: web::Data<Shared>) -> HttpResponse {
    let (status, body) = common::ops::ready(demo.sessions.verifier());
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap_or_default())
        .content_type("application/json")
        .body(body)
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
    let metrics = common::ops::init();
    let demo: Shared = Arc::new(common::demo_from_env(3000).await);
    let port = demo.port;
    let data = web::Data::new(demo.clone());
    let server = HttpServer::new(move || {
        let auth = JwtAuth::new(data.sessions.verifier().clone());
        App::new()
            .app_data(data.clone())
            .route("/health", web::get().to(health))
            .route("/ready", web::get().to(ready))
            .route("/metrics", {
                let metrics = metrics.clone();
                web::get().to(move || {
                    let body = metrics.render();
                    async move {
                        HttpResponse::Ok()
                            .content_type(common::ops::METRICS_CONTENT_TYPE)
                            .body(body)
                    }
                })
            })
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
    // Stop on our own signal handler (SIGTERM and SIGINT alike), finishing
    // in-flight requests for at most 4 s.
    .disable_signals()
    .shutdown_timeout(4)
    .bind(("127.0.0.1", port))
    .unwrap_or_else(|e| common::fail(&format!("cannot listen on 127.0.0.1:{port}: {e}")))
    .run();
    demo.banner("actix-web");
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        common::ops::stop_signal().await;
        handle.stop(true).await;
    });
    server.await
}
