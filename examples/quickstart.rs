//! The keycard demo API on axum. Run: `cargo run --example quickstart`.
//!
//! Routes: `GET /health`, `POST /login`, `POST /refresh`, `POST /logout`,
//! `GET /me`, `GET /admin` (role `admin`). Environment: `PORT` (3000),
//! `KEYCARD_SECRET` (HS256, ≥ 32 bytes; random when unset),
//! `KEYCARD_REDIS_URL` (share sessions between processes).

mod common;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use common::{Demo, LoginRequest, Refusal, Shared};
use keycard::axum::{Authenticated, JwtAuth, RequireRoles};
use keycard::{SessionError, TokenPair};

fn json_error(status: StatusCode, body: String) -> Response {
    (status, [("content-type", "application/json")], body).into_response()
}

fn with_cookies(mut res: Response, cookies: [String; 2]) -> Response {
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            res.headers_mut().append(SET_COOKIE, v);
        }
    }
    res
}

fn pair_response(
    demo: &Demo,
    result: Result<TokenPair, SessionError>,
    cookie_only: bool,
) -> Response {
    match result {
        Ok(pair) => with_cookies(
            Json(common::pair_body(&pair, cookie_only)).into_response(),
            demo.set_cookies(&pair),
        ),
        Err(e) => {
            let status =
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            with_cookies(json_error(status, e.body()), demo.clear_cookies())
        }
    }
}

async fn health() -> &'static str {
    "ok"
}

async fn login(State(demo): State<Shared>, Json(req): Json<LoginRequest>) -> Response {
    match demo.login(&req).await {
        Some(result) => pair_response(&demo, result, req.cookie_only),
        None => json_error(
            StatusCode::UNAUTHORIZED,
            r#"{"error":"invalid_credentials","error_description":"wrong username or password"}"#
                .into(),
        ),
    }
}

async fn refresh(
    State(demo): State<Shared>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match demo.refresh_input(method.as_str(), &headers, &body) {
        Ok((token, cookie_only)) => {
            pair_response(&demo, demo.sessions.refresh(&token).await, cookie_only)
        }
        Err(Refusal::Csrf(e)) => keycard::axum::error_response(e),
        Err(Refusal::BadRequest(body)) => json_error(StatusCode::BAD_REQUEST, body.into()),
    }
}

async fn logout(State(demo): State<Shared>, Authenticated(token): Authenticated) -> Response {
    match demo.sessions.logout(&token).await {
        Ok(()) => with_cookies(
            Json(serde_json::json!({"logged_out": true})).into_response(),
            demo.clear_cookies(),
        ),
        Err(e) => json_error(
            StatusCode::from_u16(e.status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            e.body(),
        ),
    }
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

fn app(demo: Shared) -> Router {
    let auth = JwtAuth::new(demo.sessions.verifier().clone());
    let protected = Router::new()
        .route("/me", get(me))
        .route("/logout", post(logout))
        .merge(
            Router::new()
                .route("/admin", get(admin))
                .route_layer(RequireRoles::any_of(["admin"])),
        )
        .route_layer(auth);
    Router::new()
        .route("/", get(page))
        .route("/health", get(health))
        .route("/login", post(login))
        .route("/refresh", post(refresh))
        .merge(protected)
        .with_state(demo)
}

#[tokio::main]
async fn main() {
    let demo = Arc::new(common::demo_from_env(3000).await);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", demo.port))
        .await
        .unwrap_or_else(|e| {
            common::fail(&format!("cannot listen on 127.0.0.1:{}: {e}", demo.port))
        });
    demo.banner("axum");
    axum::serve(listener, app(demo))
        .await
        .unwrap_or_else(|e| common::fail(&e.to_string()));
}
