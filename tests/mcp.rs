//! RFC 9728 protected resource metadata and the MCP authorization rules,
//! end to end against the `mcp_resource_server` example (with an in-test
//! authorization server publishing its JWKS by OIDC discovery), and the
//! metadata routes of the three adapters.

mod common;

use axum::routing::get;
use common::process::start_example;
use keycard::{Algorithm, Key, SigningKey, TokenIssuer, TokenType, Verifier};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");

fn key() -> SigningKey {
    SigningKey::from_pem(
        Algorithm::ES256,
        std::fs::read(format!("{FIX}p256.pem")).unwrap(),
    )
    .unwrap()
    .with_kid("as-1")
}

/// An authorization server: discovery document and JWKS.
async fn authorization_server(key: &SigningKey) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let jwks = json!({ "keys": [key.verification_key().to_public_jwk().unwrap()] }).to_string();
    let discovery = json!({ "issuer": base, "jwks_uri": format!("{base}/jwks.json") }).to_string();
    let app = axum::Router::new()
        .route("/jwks.json", get(move || async move { jwks }))
        .route(
            "/.well-known/openid-configuration",
            get(move || async move { discovery }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

fn token(key: &SigningKey, iss: &str, aud: &str, scope: &str) -> String {
    TokenIssuer::builder(key.clone())
        .issuer(iss)
        .audience(aud)
        .build()
        .unwrap()
        .issue(TokenType::Access, "alice", None, &json!({ "scope": scope }))
        .unwrap()
        .token
}

fn challenge(res: &reqwest::Response) -> String {
    res.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

async fn rpc(http: &Client, url: &str, token: Option<&str>, method: &str) -> reqwest::Response {
    let mut req = http.post(url).json(&json!({
        "jsonrpc": "2.0", "id": 7, "method": method,
        "params": {"name": "echo", "arguments": {"text": "hi"}},
    }));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_server_publishes_metadata_and_binds_tokens_to_itself() {
    let key = key();
    let issuer = authorization_server(&key).await;
    let server = start_example(
        "mcp_resource_server",
        &[
            ("KEYCARD_ISSUER", issuer.clone()),
            ("KEYCARD_ALLOW_HTTP", "1".into()),
        ],
    );
    let http = Client::new();
    let resource = server.url("/mcp");
    let metadata_url = server.url("/.well-known/oauth-protected-resource/mcp");

    // The metadata, without a token.
    let res = http.get(&metadata_url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/json");
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["resource"], resource);
    assert_eq!(doc["authorization_servers"], json!([issuer]));
    assert_eq!(doc["scopes_supported"], json!(["mcp:read", "mcp:write"]));
    assert_eq!(doc["bearer_methods_supported"], json!(["header"]));

    // 401 points at the metadata (RFC 9728 §5.1).
    let want = format!("resource_metadata=\"{metadata_url}\"");
    let res = rpc(&http, &resource, None, "initialize").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&res).contains(&want), "{}", challenge(&res));

    // A token issued for another resource is refused (RFC 8707).
    let elsewhere = token(
        &key,
        &issuer,
        "https://other.example/mcp",
        "mcp:read mcp:write",
    );
    let res = rpc(&http, &resource, Some(&elsewhere), "initialize").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let c = challenge(&res);
    assert!(
        c.contains("error=\"invalid_token\"") && c.contains(&want),
        "{c}"
    );

    // The right audience and mcp:read: the endpoint answers.
    let reader = token(&key, &issuer, &resource, "mcp:read");
    let res = rpc(&http, &resource, Some(&reader), "initialize").await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["id"], 7);
    assert!(body["result"]["serverInfo"]["name"].is_string());
    let res = rpc(&http, &resource, Some(&reader), "tools/list").await;
    assert_eq!(res.status(), StatusCode::OK);

    // A tool call needs mcp:write: 403 naming it, and the metadata.
    let res = rpc(&http, &resource, Some(&reader), "tools/call").await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let c = challenge(&res);
    assert!(
        c.contains("error=\"insufficient_scope\"")
            && c.contains("scope=\"mcp:write\"")
            && c.contains(&want),
        "{c}"
    );
    let writer = token(&key, &issuer, &resource, "mcp:read mcp:write");
    let res = rpc(&http, &resource, Some(&writer), "tools/call").await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["result"]["content"][0]["text"], "hi");

    // No mcp:read at all: 403 naming it.
    let nothing = token(&key, &issuer, &resource, "profile");
    let res = rpc(&http, &resource, Some(&nothing), "initialize").await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(challenge(&res).contains("scope=\"mcp:read\""));
}

fn protected() -> Verifier {
    Verifier::builder()
        .key(Key::hs256(b"mcp-test-secret-0123456789abcdef!!!!").unwrap())
        .issuer("https://as.example")
        .audience("https://api.example/mcp")
        .algorithms([Algorithm::HS256])
        .protected_resource("https://api.example/mcp")
        .unwrap()
        .scopes_supported(["mcp:read"])
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_metadata_route_is_the_same_on_axum_and_actix() {
    use tower::ServiceExt;
    let v = protected();
    let meta = v.resource_metadata().unwrap();
    assert_eq!(
        meta.url(),
        "https://api.example/.well-known/oauth-protected-resource/mcp"
    );
    let want: Value = serde_json::from_str(&meta.to_json()).unwrap();
    assert_eq!(
        want["resource_signing_alg_values_supported"],
        json!(["HS256"])
    );

    let (path, handler) = keycard::axum::resource_metadata(&v).unwrap();
    let app: axum::Router = axum::Router::new()
        .route("/mcp", get(|| async { "ok" }))
        .layer(keycard::axum::JwtAuth::new(v.clone()))
        .route(&path, get(handler));
    let res = app
        .clone()
        .oneshot(
            http::Request::get(path.as_str())
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), want);
    // And the protected route's challenge names it.
    let res = app
        .oneshot(
            http::Request::get("/mcp")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains(&format!("resource_metadata=\"{}\"", meta.url())));

    let actix_body = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            use actix_web::{test, App};
            let app = test::init_service(
                App::new().service(keycard_actix::resource_metadata_service(&v).unwrap()),
            )
            .await;
            let res =
                test::call_service(&app, test::TestRequest::get().uri(&path).to_request()).await;
            assert_eq!(res.status(), 200);
            test::read_body(res).await
        })
    })
    .join()
    .unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&actix_body).unwrap(), want);
}

#[test]
fn a_verifier_without_a_named_resource_has_no_metadata_and_plain_challenges() {
    let v = Verifier::builder()
        .key(Key::hs256(b"mcp-test-secret-0123456789abcdef!!!!").unwrap())
        .build()
        .unwrap();
    assert!(v.resource_metadata().is_none());
    assert!(keycard::axum::resource_metadata(&v).is_none());
    let keycard::Attempt::Done(Err(e)) = v.verify_now("a.b.c") else {
        panic!("expected a refusal")
    };
    assert!(!e.www_authenticate().unwrap().contains("resource_metadata"));
}
