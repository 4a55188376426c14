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
//! Routes: `GET /health`, `GET /me`, `GET /admin` (role `admin`).

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use keycard::axum::{Authenticated, JwtAuth, RequireRoles};
use keycard::jwks::RemoteJwks;
use keycard::{Algorithm, Profile, Verifier};

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(2)
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

async fn me(Authenticated(t): Authenticated) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "sub": t.subject(), "roles": t.roles(), "scopes": t.scopes() }))
}

fn algorithms(list: &str) -> Vec<Algorithm> {
    list.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| {
            let a = if a == "Ed25519" { "EdDSA" } else { a };
            a.parse()
                .unwrap_or_else(|_| fail(&format!("KEYCARD_ALGORITHMS: unknown algorithm {a:?}")))
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let port: u16 = env("PORT").map_or(3001, |p| {
        p.parse()
            .unwrap_or_else(|_| fail("PORT is not a port number"))
    });
    let issuer = env("KEYCARD_ISSUER");
    let audience = env("KEYCARD_AUDIENCE");
    let mut jwks = match (env("KEYCARD_JWKS_URL"), &issuer) {
        (Some(url), _) => RemoteJwks::builder(url),
        (None, Some(iss)) => RemoteJwks::from_issuer(iss.clone()),
        (None, None) => fail("set KEYCARD_JWKS_URL, or KEYCARD_ISSUER for OIDC discovery"),
    };
    if env("KEYCARD_ALLOW_HTTP").as_deref() == Some("1") {
        jwks = jwks.insecure_allow_http_loopback();
    }
    let algs = env("KEYCARD_ALGORITHMS").map(|a| algorithms(&a));
    if let Some(algs) = &algs {
        jwks = jwks.algorithms(algs.iter().copied());
    }
    if let Some(secs) = env("KEYCARD_JWKS_COOLDOWN_SECS") {
        let secs = secs
            .parse()
            .unwrap_or_else(|_| fail("KEYCARD_JWKS_COOLDOWN_SECS is not a number"));
        jwks = jwks.cooldown(Duration::from_secs(secs));
    }
    let jwks = jwks
        .build()
        .await
        .unwrap_or_else(|e| fail(&format!("cannot load the JWKS: {e}")));
    let mut verifier = Verifier::builder().key_provider(Arc::new(jwks.clone()));
    let profile_name = env("KEYCARD_PROFILE").unwrap_or_else(|| "generic".into());
    let parameter = match profile_name.as_str() {
        "auth0" => env("KEYCARD_ROLE_CLAIM"),
        _ => env("KEYCARD_CLIENT_ID"),
    };
    let profile = Profile::by_name(&profile_name, parameter.as_deref())
        .unwrap_or_else(|e| fail(&format!("KEYCARD_PROFILE={profile_name}: {e}")));
    verifier = verifier.profile(profile);
    if profile_name == "cognito" {
        if let Some(client) = env("KEYCARD_CLIENT_ID") {
            verifier = verifier.client_ids([client]);
        }
    }
    if let Some(role) = env("KEYCARD_ROLE_CLAIM").filter(|_| profile_name != "auth0") {
        verifier =
            verifier.role_claims(role.split(',').map(|p| keycard::ClaimPath::parse(p.trim())));
    }
    if let Some(scopes) = env("KEYCARD_SCOPE_CLAIM") {
        verifier = verifier.scope_claims(scopes.split(',').map(str::trim));
    }
    if let Some(algs) = algs {
        verifier = verifier.algorithms(algs);
    }
    if let Some(iss) = &issuer {
        verifier = verifier.issuer(iss.clone());
    }
    match &audience {
        Some(aud) => verifier = verifier.audience(aud.clone()),
        None => println!("KEYCARD_AUDIENCE is not set: tokens that carry an audience are refused."),
    }
    let verifier = verifier.build().unwrap_or_else(|e| fail(&e.to_string()));
    let app = Router::new()
        .route("/me", get(me))
        .merge(
            Router::new()
                .route("/admin", get(me))
                .route_layer(RequireRoles::any_of(["admin"])),
        )
        .route_layer(JwtAuth::new(verifier))
        .route("/health", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| fail(&format!("cannot listen on 127.0.0.1:{port}: {e}")));
    println!(
        "resource server on http://127.0.0.1:{port}, keys from {}",
        jwks.url().unwrap_or("?")
    );
    axum::serve(listener, app)
        .await
        .unwrap_or_else(|e| fail(&e.to_string()));
}
