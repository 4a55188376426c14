//! A resource server that verifies tokens only through remote keys (a JWKS
//! URL, or OIDC discovery from an issuer). Run:
//! `KEYCARD_JWKS_URL=https://idp.example/jwks.json KEYCARD_ISSUER=https://idp.example \
//!  KEYCARD_AUDIENCE=api cargo run --example resource_server`
//!
//! Environment: `PORT` (3001); `KEYCARD_JWKS_URL`, or `KEYCARD_ISSUER` alone
//! for discovery; `KEYCARD_ISSUER` and `KEYCARD_AUDIENCE` are checked in
//! tokens; `KEYCARD_ALLOW_HTTP=1` permits a plain-http loopback URL;
//! `KEYCARD_JWKS_COOLDOWN_SECS` sets the unknown-`kid` refetch cooldown;
//! `KEYCARD_PROFILE` (`keycloak`|`auth0`|`entra`|`cognito`|`okta`|`google`|
//! `generic`, default `generic`) applies an identity provider's conventions,
//! with `KEYCARD_CLIENT_ID` (Keycloak's client, Cognito's app client) and
//! `KEYCARD_ROLE_CLAIM` (Auth0's namespaced roles claim); `KEYCARD_ROLE_CLAIM`
//! and `KEYCARD_SCOPE_CLAIM` (comma-separated) override where roles and
//! scopes are read (dotted paths or JSON Pointers); `KEYCARD_ALGORITHMS`
//! (comma-separated, e.g. `RS256,PS256`) is the allowed algorithm set.
//! Every other `VerifierConfig::from_env` setting works too
//! (`KEYCARD_LEEWAY_SECS`, `KEYCARD_REDIS_URL`, ...), and `KEYCARD_CONFIG`
//! names a TOML file (several providers, fixed keys); see the README's
//! "Operating keycard". `RUST_LOG` sets the log level.
//!
//! `KEYCARD_RESOURCE` (default `http://127.0.0.1:$PORT`) is the resource
//! identifier its RFC 9728 metadata and challenges name.
//!
//! Routes: `GET /health` (liveness), `GET /ready` (200 once keys are
//! loaded, else 503 with the reason), `GET /metrics` (Prometheus),
//! `GET /.well-known/oauth-protected-resource` (RFC 9728 metadata),
//! `GET /me`, `GET /admin` (role `admin`).
//!
//! It starts even when the identity provider is unreachable (keys are
//! fetched in the background with backoff): until they arrive, protected
//! routes answer 503 and `/ready` 503. It stops gracefully on SIGTERM and
//! SIGINT.

mod common;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use keycard::axum::{Authenticated, JwtAuth, RequireRoles};
use keycard::config::VerifierConfig;

use common::fail;

async fn me(Authenticated(t): Authenticated) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "sub": t.subject(), "roles": t.roles(), "scopes": t.scopes() }))
}

#[tokio::main]
async fn main() {
    let metrics = common::ops::init();
    let port = common::ops::port_from_env(3001);
    let mut config = VerifierConfig::from_env().unwrap_or_else(|e| fail(&e.to_string()));
    // RFC 9728: this service's resource identifier, for its metadata
    // document and its challenges.
    config
        .resource
        .get_or_insert_with(|| format!("http://127.0.0.1:{port}"));
    if config.providers.is_empty() {
        fail("set KEYCARD_JWKS_URL, or KEYCARD_ISSUER for OIDC discovery (or [[providers]] in the KEYCARD_CONFIG file)");
    }
    if config.audiences.is_empty() && config.providers.iter().all(|p| p.audiences.is_none()) {
        println!("KEYCARD_AUDIENCE is not set: tokens that carry an audience are refused.");
    }
    let mut builder = config.builder().unwrap_or_else(|e| fail(&e.to_string()));
    if common::redis_wanted(config.revocation_url.as_deref()) {
        builder = with_redis(builder, config.revocation_url.as_deref()).await;
    }
    let verifier = builder.build().unwrap_or_else(|e| fail(&e.to_string()));
    let ready_verifier = verifier.clone();
    let (metadata_path, metadata) =
        keycard::axum::resource_metadata(&verifier).unwrap_or_else(|| fail("no resource metadata"));
    let app = Router::new()
        .route("/me", get(me))
        .merge(
            Router::new()
                .route("/admin", get(me))
                .route_layer(RequireRoles::any_of(["admin"])),
        )
        .route_layer(JwtAuth::new(verifier))
        .route("/health", get(|| async { "ok" }))
        .route(&metadata_path, get(metadata))
        .route(
            "/ready",
            get(move || {
                let (status, body) = common::ops::ready(&ready_verifier);
                let status = StatusCode::from_u16(status).unwrap_or_default();
                async move { (status, [("content-type", "application/json")], body).into_response() }
            }),
        )
        .route("/metrics", common::ops::metrics_route(metrics));
    let listener = common::ops::listen(port).await;
    let sources: Vec<String> = config
        .providers
        .iter()
        .map(|p| {
            p.jwks_url
                .as_deref()
                .map(keycard::jwks::redact_url)
                .or_else(|| p.issuer.as_ref().map(|i| format!("discovery from {i}")))
                .unwrap_or_else(|| "fixed keys".into())
        })
        .collect();
    println!(
        "resource server on http://127.0.0.1:{port}, keys from {}",
        sources.join(", ")
    );
    common::ops::serve_axum(listener, app)
        .await
        .unwrap_or_else(|e| fail(&e.to_string()));
}

/// Revocations shared through Redis (feature `redis`).
#[cfg(feature = "redis")]
async fn with_redis(
    builder: keycard::VerifierBuilder,
    url: Option<&str>,
) -> keycard::VerifierBuilder {
    builder.revocation(common::redis_stores(url).await.revocation())
}

#[cfg(not(feature = "redis"))]
async fn with_redis(_: keycard::VerifierBuilder, _: Option<&str>) -> keycard::VerifierBuilder {
    fail("a Redis deployment is configured (KEYCARD_REDIS_*), but this build has no Redis support: run it with `--features redis`")
}
