//! The keycard demo API on axum. Run: `cargo run --example quickstart`.
//!
//! Routes: `GET /health`, `POST /login`, `POST /refresh`, `POST /logout`,
//! `GET /me`, `GET /admin` (role `admin`), and for operators `GET /ready`
//! and `GET /metrics` (no token needed). Environment: `PORT` (3000),
//! `KEYCARD_SECRET` (HS256, ≥ 32 bytes; random when unset),
//! `KEYCARD_REDIS_URL` (share sessions between processes), the verifier
//! settings of `VerifierConfig::from_env` (`KEYCARD_LEEWAY_SECS`,
//! `KEYCARD_CONFIG`, ...), `RUST_LOG`. Stops gracefully on SIGTERM/SIGINT.

mod common;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use common::{LoginRequest, Shared};
use keycard::axum::{endpoint_response, Authenticated, JwtAuth, RequireRoles};
use metrics_exporter_prometheus::PrometheusHandle;

async fn health() -> &'static str {
    "ok"
}

async fn login(
    State(demo): State<Shared>,
    method: Method,
    headers: HeaderMap,
    Json(req): Json<LoginRequest>,
) -> Response {
    endpoint_response(demo.login(method.as_str(), &headers, &req).await)
}

async fn refresh(
    State(demo): State<Shared>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    endpoint_response(demo.refresh(method.as_str(), &headers, &body).await)
}

async fn logout(State(demo): State<Shared>, method: Method, headers: HeaderMap) -> Response {
    endpoint_response(demo.logout(method.as_str(), &headers).await)
}

async fn me(Authenticated(token): Authenticated) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "sub": token.subject(), "roles": token.roles() }))
}

async fn admin(Authenticated(token): Authenticated) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "message": "welcome, admin", "sub": token.subject() }))
}

/// The demo page: login, "who am I", refresh and logout through HttpOnly
/// cookies only.
async fn page() -> Response {
    (
        [
            ("content-type", "text/html; charset=utf-8"),
            ("cache-control", "no-store"),
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
        ],
        include_str!("quickstart.html"),
    )
        .into_response()
}

async fn ready(State(demo): State<Shared>) -> Response {
    let (status, body) = common::ops::ready(demo.sessions.verifier());
    let status = axum::http::StatusCode::from_u16(status).unwrap_or_default();
    (status, [("content-type", "application/json")], body).into_response()
}

fn app(demo: Shared, metrics: PrometheusHandle) -> Router {
    let auth = JwtAuth::new(demo.sessions.verifier().clone());
    let protected = Router::new()
        .route("/me", get(me))
        .merge(
            Router::new()
                .route("/admin", get(admin))
                .route_layer(RequireRoles::any_of(["admin"])),
        )
        .route_layer(auth);
    Router::new()
        .route("/", get(page))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", common::ops::metrics_route(metrics))
        .route("/login", post(login))
        .route("/refresh", post(refresh))
        // Authenticates by itself: by the access token, or by the refresh
        // cookie once the access token has expired.
        .route("/logout", post(logout))
        .merge(protected)
        .with_state(demo)
}

#[tokio::main]
async fn main() {
    let metrics = common::ops::init();
    let demo = Arc::new(common::demo_from_env(3000).await);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", demo.port))
        .await
        .unwrap_or_else(|e| {
            common::fail(&format!("cannot listen on 127.0.0.1:{}: {e}", demo.port))
        });
    demo.banner("axum");
    common::ops::serve_axum(listener, app(demo, metrics))
        .await
        .unwrap_or_else(|e| common::fail(&e.to_string()));
}
