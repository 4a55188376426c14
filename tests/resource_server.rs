//! The resource_server contract: tokens verified only through a remote JWKS
//! (by URL or by OIDC discovery), for RS256, PS256, ES256 and EdDSA.

mod common;

use axum::routing::get;
use common::process::start_example;
use keycard::{Algorithm, SigningKey, TokenIssuer, TokenType};
use serde_json::{json, Value};

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");

fn key(alg: Algorithm, file: &str, kid: &str) -> SigningKey {
    SigningKey::from_pem(alg, std::fs::read(format!("{FIX}{file}")).unwrap())
        .unwrap()
        .with_kid(kid)
}

async fn idp(keys: &[SigningKey]) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let jwks: Vec<Value> = keys
        .iter()
        .map(|k| serde_json::to_value(k.verification_key().to_public_jwk().unwrap()).unwrap())
        .collect();
    let doc = json!({ "keys": jwks }).to_string();
    let discovery = json!({ "issuer": base, "jwks_uri": format!("{base}/jwks.json") }).to_string();
    let app = axum::Router::new()
        .route("/jwks.json", get(move || async move { doc }))
        .route(
            "/.well-known/openid-configuration",
            get(move || async move { discovery }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

fn mint(k: &SigningKey, iss: &str, roles: &[&str]) -> String {
    TokenIssuer::builder(k.clone())
        .issuer(iss)
        .audience("orders")
        .build()
        .unwrap()
        .issue(TokenType::Access, "alice", None, &json!({ "roles": roles }))
        .unwrap()
        .token
}

// Multi-threaded: starting the example blocks this thread while the
// in-test identity provider must keep answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifies_through_jwks_url_and_through_discovery() {
    let keys = [
        key(Algorithm::RS256, "rsa2048.pem", "rs"),
        key(Algorithm::PS256, "rsa2048b.pem", "ps"),
        key(Algorithm::ES256, "p256.pem", "es"),
        key(Algorithm::EdDSA, "ed25519.pem", "ed"),
    ];
    let base = idp(&keys).await;
    let http = reqwest::Client::new();
    for env in [
        vec![
            ("KEYCARD_JWKS_URL", format!("{base}/jwks.json")),
            ("KEYCARD_ISSUER", base.clone()),
        ],
        vec![("KEYCARD_ISSUER", base.clone())],
    ] {
        let mut env = env;
        env.push(("KEYCARD_AUDIENCE", "orders".into()));
        env.push(("KEYCARD_ALLOW_HTTP", "1".into()));
        env.push(("KEYCARD_JWKS_COOLDOWN_SECS", "1".into()));
        let env: Vec<(&str, String)> = env.into_iter().collect();
        let server = start_example("resource_server", &env);
        for k in &keys {
            let user = mint(k, &base, &["user"]);
            let res = http
                .get(server.url("/me"))
                .bearer_auth(&user)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "{:?}", k.algorithm());
            let me: Value = res.json().await.unwrap();
            assert_eq!(me, json!({"sub": "alice", "roles": ["user"], "scopes": []}));
            let res = http
                .get(server.url("/admin"))
                .bearer_auth(&user)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 403);
            let admin = mint(k, &base, &["admin"]);
            let res = http
                .get(server.url("/admin"))
                .bearer_auth(&admin)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
        }
        // A token from another issuer, or for another audience: 401.
        let other = mint(&keys[0], "https://other.test", &["admin"]);
        assert_eq!(
            http.get(server.url("/me"))
                .bearer_auth(&other)
                .send()
                .await
                .unwrap()
                .status(),
            401
        );
        assert_eq!(
            http.get(server.url("/health"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
}

#[test]
fn plain_http_without_the_opt_in_is_refused_at_startup() {
    let out = std::process::Command::new(common::process::example_path("resource_server"))
        .env("KEYCARD_JWKS_URL", "http://127.0.0.1:9/jwks.json")
        .env("PORT", "1")
        .env_remove("KEYCARD_ALLOW_HTTP")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("plain http"));
}

/// One env value per provider: a Keycloak-shaped token (header `typ: JWT`,
/// payload `typ: Bearer`, client roles) works with `KEYCARD_PROFILE=keycloak`
/// and is refused without it; `KEYCARD_ALGORITHMS` narrows the algorithms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_profile_and_algorithms_from_the_environment() {
    let rs = key(Algorithm::RS256, "rsa2048.pem", "rs");
    let base = idp(&[rs.clone(), key(Algorithm::ES256, "p256.pem", "es")]).await;
    let now = keycard::unix_now();
    let mut claims = serde_json::Map::new();
    for (k, v) in [
        ("iss", json!(base)),
        ("aud", json!("account")),
        ("sub", json!("kc-user")),
        ("typ", json!("Bearer")),
        ("azp", json!("web-app")),
        ("iat", json!(now)),
        ("exp", json!(now + 300)),
        ("realm_access", json!({"roles": ["user"]})),
        ("resource_access", json!({"web-app": {"roles": ["admin"]}})),
        ("scope", json!("openid orders:read")),
    ] {
        claims.insert(k.into(), v);
    }
    let keycloak_token = rs.sign("JWT", &claims).unwrap();
    let http = reqwest::Client::new();
    let common = |extra: &[(&'static str, &str)]| {
        let mut env = vec![
            ("KEYCARD_ISSUER", base.clone()),
            ("KEYCARD_AUDIENCE", "account".to_owned()),
            ("KEYCARD_ALLOW_HTTP", "1".to_owned()),
        ];
        env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        env
    };
    let plain = start_example("resource_server", &common(&[]));
    let res = http
        .get(plain.url("/me"))
        .bearer_auth(&keycloak_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "typ JWT without a profile");
    drop(plain);
    let kc = start_example(
        "resource_server",
        &common(&[
            ("KEYCARD_PROFILE", "keycloak"),
            ("KEYCARD_CLIENT_ID", "web-app"),
        ]),
    );
    let res = http
        .get(kc.url("/admin"))
        .bearer_auth(&keycloak_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "client role admin");
    let me: Value = http
        .get(kc.url("/me"))
        .bearer_auth(&keycloak_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["roles"], json!(["user", "admin"]));
    assert_eq!(me["scopes"], json!(["openid", "orders:read"]));
    drop(kc);
    let only_es = start_example(
        "resource_server",
        &common(&[
            ("KEYCARD_PROFILE", "keycloak"),
            ("KEYCARD_CLIENT_ID", "web-app"),
            ("KEYCARD_ALGORITHMS", "ES256,Ed25519"),
        ]),
    );
    let res = http
        .get(only_es.url("/me"))
        .bearer_auth(&keycloak_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "RS256 outside KEYCARD_ALGORITHMS");
}
