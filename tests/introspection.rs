//! Token introspection (RFC 7662) behind the same layer and extractors, on
//! every adapter, against an in-test authorization server: active, inactive,
//! wrong audience, errors and timeouts (fail closed), the cache and its TTL,
//! single flight, Basic and private_key_jwt client authentication, and JWTs
//! introspected too.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use common::*;
use keycard::introspection::{ClientAuth, Introspector};
use keycard::stores::RevocationStore as _;
use keycard::{Algorithm, Key, SigningKey, Verifier};
use serde_json::json;

struct Server {
    url: String,
    calls: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct Auth {
    calls: Arc<AtomicUsize>,
    url: Arc<std::sync::OnceLock<String>>,
    client_key: Arc<Key>,
}

fn client_key() -> SigningKey {
    SigningKey::from_pem(
        Algorithm::ES256,
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/p256.pem"
        ))
        .unwrap(),
    )
    .unwrap()
}

/// Checks the client's authentication, then answers by token.
async fn introspect(State(a): State<Auth>, headers: HeaderMap, body: String) -> (u16, String) {
    a.calls.fetch_add(1, Ordering::SeqCst);
    let form: Vec<(String, String)> = body
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            let v = v.replace('+', " ");
            let mut out = Vec::new();
            let b = v.as_bytes();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'%' && i + 2 < b.len() {
                    out.push(u8::from_str_radix(&v[i + 1..i + 3], 16).unwrap());
                    i += 3;
                } else {
                    out.push(b[i]);
                    i += 1;
                }
            }
            (k.to_owned(), String::from_utf8(out).unwrap())
        })
        .collect();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let basic = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned());
    let authenticated = match (basic, get("client_assertion")) {
        (Some(b), _) => b == format!("Basic {}", b64_std("rs:s3cret")),
        (None, Some(assertion)) => {
            let v = Verifier::builder()
                .key((*a.client_key).clone())
                .audience(a.url.get().unwrap().clone())
                .issuer("rs-jwt")
                .insecure_accept_any_token_type()
                .build()
                .unwrap();
            get("client_assertion_type").as_deref()
                == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
                && v.verify(&assertion)
                    .await
                    .is_ok_and(|t| t.subject() == Some("rs-jwt"))
        }
        _ => false,
    };
    if !authenticated {
        return (401, json!({"error": "invalid_client"}).to_string());
    }
    let now = now();
    let token = get("token").unwrap_or_default();
    // `answer.<base64url JSON>`: the test names the active answer itself.
    if let Some(b64) = token.strip_prefix("answer.") {
        let json =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, b64).unwrap();
        let mut answer: serde_json::Value = serde_json::from_slice(&json).unwrap();
        answer["active"] = json!(true);
        return (200, answer.to_string());
    }
    let answer = match token.as_str() {
        "opaque-alice" => json!({
            "active": true, "sub": "alice", "aud": "api", "iss": ISS,
            "scope": "orders:read", "roles": ["admin"], "exp": now + 600, "client_id": "web",
        }),
        "opaque-short" => json!({"active": true, "sub": "bob", "aud": "api", "exp": now + 1}),
        "opaque-other-aud" => {
            json!({"active": true, "sub": "eve", "aud": "elsewhere", "exp": now + 600})
        }
        "opaque-error" => return (500, "oops".into()),
        "opaque-garbage" => return (200, "{\"active\": \"yes\"}".into()),
        "opaque-slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            json!({"active": true, "sub": "slow", "aud": "api"})
        }
        "opaque-popular" => {
            tokio::time::sleep(Duration::from_millis(300)).await;
            json!({"active": true, "sub": "popular", "aud": "api", "exp": now + 600})
        }
        _ => json!({"active": false}),
    };
    (200, answer.to_string())
}

fn b64_std(s: &str) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, s)
}

/// The authorization server, on its own thread and runtime (the adapter
/// harness blocks its own).
fn server() -> Server {
    let calls = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = std::sync::mpsc::channel();
    let state = Auth {
        calls: calls.clone(),
        url: Arc::new(std::sync::OnceLock::new()),
        client_key: Arc::new(client_key().verification_key()),
    };
    std::thread::spawn(move || {
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let url = format!("http://{}/introspect", listener.local_addr().unwrap());
                let _ = state.url.set(url.clone());
                let app = axum::Router::new()
                    .route(
                        "/introspect",
                        post(|s: State<Auth>, h: HeaderMap, b: String| async move {
                            let (status, body) = introspect(s, h, b).await;
                            (axum::http::StatusCode::from_u16(status).unwrap(), body)
                        }),
                    )
                    .with_state(state);
                tx.send(url).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
    });
    Server {
        url: rx.recv().unwrap(),
        calls,
    }
}

fn introspector(s: &Server) -> keycard::introspection::IntrospectorBuilder {
    Introspector::builder(s.url.clone(), ClientAuth::basic("rs", "s3cret"))
        .insecure_allow_http_loopback()
        .timeout(Duration::from_secs(1))
}

fn with(i: Introspector) -> Verifier {
    verifier_builder().introspection(i).build().unwrap()
}

fn bearer(token: &str) -> Call {
    Call::get("/me").bearer(token)
}

#[test]
fn opaque_tokens_on_every_adapter_and_failures_fail_closed() {
    let s = server();
    let v = with(introspector(&s).cache_ttl(Duration::ZERO).build().unwrap());
    for adapter in ADAPTERS {
        let ok = call(adapter, &v, &bearer("opaque-alice"));
        assert_eq!(ok.status, 200, "{adapter:?}: {ok:?}");
        assert_eq!(ok.json()["sub"], "alice");
        assert_eq!(ok.json()["roles"], json!(["admin"]));
        let admin = call(adapter, &v, &Call::get("/admin").bearer("opaque-alice"));
        assert_eq!(admin.status, 200, "{adapter:?}: roles from the answer");

        for (token, status, what) in [
            ("opaque-nobody", 401, "inactive"),
            ("opaque-other-aud", 401, "wrong audience"),
            ("opaque-error", 503, "endpoint error"),
            ("opaque-garbage", 503, "garbage answer"),
            ("opaque-slow", 503, "timeout"),
        ] {
            let a = call(adapter, &v, &bearer(token));
            assert_eq!(a.status, status, "{adapter:?} {what}: {a:?}");
        }
        // JWTs are still verified locally, without a call.
        let before = s.calls.load(Ordering::SeqCst);
        assert_eq!(
            call(adapter, &v, &bearer(&access("alice", &[]))).status,
            200
        );
        assert_eq!(s.calls.load(Ordering::SeqCst), before);
    }
}

#[test]
fn a_dead_endpoint_fails_closed() {
    let port = common::process::free_port();
    let v = with(
        Introspector::builder(
            format!("http://127.0.0.1:{port}/introspect"),
            ClientAuth::basic("rs", "s3cret"),
        )
        .insecure_allow_http_loopback()
        .build()
        .unwrap(),
    );
    let a = call(Adapter::Tower, &v, &bearer("opaque-alice"));
    assert_eq!(a.status, 503);
}

#[test]
fn answers_are_cached_within_the_ttl_and_never_past_exp() {
    let s = server();
    let v = with(
        introspector(&s)
            .cache_ttl(Duration::from_secs(60))
            .build()
            .unwrap(),
    );
    for _ in 0..5 {
        assert_eq!(call(Adapter::Axum, &v, &bearer("opaque-alice")).status, 200);
    }
    assert_eq!(
        s.calls.load(Ordering::SeqCst),
        1,
        "one call for five requests"
    );
    // Inactive answers are cached too.
    for _ in 0..3 {
        assert_eq!(
            call(Adapter::Axum, &v, &bearer("opaque-nobody")).status,
            401
        );
    }
    assert_eq!(s.calls.load(Ordering::SeqCst), 2);
    // An answer whose exp comes before the TTL is asked again after exp.
    assert_eq!(call(Adapter::Axum, &v, &bearer("opaque-short")).status, 200);
    std::thread::sleep(Duration::from_millis(2100));
    let calls = s.calls.load(Ordering::SeqCst);
    let _ = call(Adapter::Axum, &v, &bearer("opaque-short"));
    assert_eq!(s.calls.load(Ordering::SeqCst), calls + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_one_call() {
    let s = server();
    let v = with(introspector(&s).build().unwrap());
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let v = v.clone();
        tasks.push(tokio::spawn(async move {
            let headers: &[(&str, &str)] = &[("authorization", "Bearer opaque-popular")];
            v.authenticate("GET", headers)
                .await
                .map(|t| t.subject().map(str::to_owned))
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().as_deref(), Some("popular"));
    }
    assert_eq!(s.calls.load(Ordering::SeqCst), 1);
}

#[test]
fn private_key_jwt_client_authentication() {
    let s = server();
    let good = with(
        Introspector::builder(
            s.url.clone(),
            ClientAuth::private_key_jwt("rs-jwt", client_key()),
        )
        .insecure_allow_http_loopback()
        .build()
        .unwrap(),
    );
    assert_eq!(
        call(Adapter::Tower, &good, &bearer("opaque-alice")).status,
        200
    );
    let other = SigningKey::from_pem(
        Algorithm::ES256,
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/p256b.pem"
        ))
        .unwrap(),
    )
    .unwrap();
    let bad = with(
        Introspector::builder(s.url.clone(), ClientAuth::private_key_jwt("rs-jwt", other))
            .insecure_allow_http_loopback()
            .build()
            .unwrap(),
    );
    // The endpoint refuses the client: that is an outage, not a 401.
    assert_eq!(
        call(Adapter::Tower, &bad, &bearer("opaque-alice")).status,
        503
    );
}

#[test]
fn jwts_can_be_introspected_too_and_only_introspection_can_verify() {
    let s = server();
    let v = with(introspector(&s).introspect_jwts_too().build().unwrap());
    // A JWT that verifies locally but that the server does not know is
    // inactive: refused.
    let a = call(Adapter::Actix, &v, &bearer(&access("alice", &[])));
    assert_eq!(a.status, 401);
    assert!(s.calls.load(Ordering::SeqCst) >= 1);
    // A verifier with no keys at all, introspection only.
    let only = Verifier::builder()
        .audience(AUD)
        .introspection(introspector(&s).build().unwrap())
        .build()
        .unwrap();
    assert_eq!(
        call(Adapter::Tower, &only, &bearer("opaque-alice")).status,
        200
    );
    assert!(
        Verifier::builder().audience(AUD).build().is_err(),
        "no keys, no introspection"
    );
    // Plain http elsewhere than loopback is refused at build time.
    assert!(
        Introspector::builder("http://idp.example/introspect", ClientAuth::basic("a", "b"))
            .build()
            .is_err()
    );
    // Secrets never show in Debug.
    let dbg = format!("{:?}", ClientAuth::basic("rs", "TOP-SECRET"));
    assert!(!dbg.contains("TOP-SECRET"));
}

/// The opaque token whose introspection answer is `claims` (active).
fn answered(claims: &serde_json::Value) -> String {
    format!("answer.{}", b64(claims.to_string().as_bytes()))
}

/// One rule set, whichever way a token becomes `Verified`: each rule is
/// broken by one claim set, and that claim set is refused as a local JWT
/// and as an introspection answer alike (on every adapter), while the
/// unbroken claims pass both ways. The rules that change with time (exp,
/// revocation) are checked on cached tokens too.
#[test]
fn one_rule_set_for_local_cached_and_introspected_tokens() {
    let s = server();
    let build = |b: keycard::VerifierBuilder| {
        b.client_ids(["web"])
            .require_subject()
            .introspection(introspector(&s).cache_ttl(Duration::ZERO).build().unwrap())
            .build()
            .unwrap()
    };
    let v = build(verifier_builder());
    let no_audience = build(
        Verifier::builder()
            .key(Key::hs256(common::SECRET).unwrap())
            .issuer(ISS),
    );
    let base = || {
        let mut c = claims();
        c["client_id"] = json!("web");
        c
    };
    let with = |k: &str, val: serde_json::Value| {
        let mut c = base();
        c[k] = val;
        c
    };
    let without = |k: &str| {
        let mut c = base();
        c.as_object_mut().unwrap().remove(k);
        c
    };
    let cases: Vec<(&str, &Verifier, serde_json::Value, u16)> = vec![
        ("valid", &v, base(), 200),
        (
            "client_ids allow-list",
            &v,
            with("client_id", json!("mallory")),
            401,
        ),
        ("client_id missing", &v, without("client_id"), 401),
        ("expired", &v, with("exp", json!(now() - 3600)), 401),
        ("not yet valid", &v, with("nbf", json!(now() + 3600)), 401),
        (
            "iat in the future",
            &v,
            with("iat", json!(now() + 3600)),
            401,
        ),
        (
            "another issuer",
            &v,
            with("iss", json!("https://evil.test")),
            401,
        ),
        ("another audience", &v, with("aud", json!("elsewhere")), 401),
        ("no aud where one is required", &v, without("aud"), 401),
        ("sub required", &v, without("sub"), 401),
        (
            "aud on a verifier without audiences",
            &no_audience,
            base(),
            401,
        ),
        ("no aud, no audiences", &no_audience, without("aud"), 200),
    ];
    for adapter in ADAPTERS {
        for (what, verifier, claims, status) in &cases {
            let jwt = at(claims);
            let local = call(adapter, verifier, &bearer(&jwt));
            assert_eq!(
                local.status, *status,
                "{adapter:?} local JWT, {what}: {local:?}"
            );
            let remote = call(adapter, verifier, &bearer(&answered(claims)));
            assert_eq!(
                remote.status, *status,
                "{adapter:?} introspected, {what}: {remote:?}"
            );
        }
        // RFC 7662 token_type: a refresh token's answer is not an access
        // token (a JWT says the same with its `typ`).
        for t in [
            "refresh_token",
            "urn:ietf:params:oauth:token-type:refresh_token",
            "id_token",
        ] {
            let a = call(
                adapter,
                &v,
                &bearer(&answered(&with("token_type", json!(t)))),
            );
            assert_eq!(a.status, 401, "{adapter:?} token_type {t}: {a:?}");
        }
        for t in ["Bearer", "access_token", "DPoP"] {
            let a = call(
                adapter,
                &v,
                &bearer(&answered(&with("token_type", json!(t)))),
            );
            assert_eq!(a.status, 200, "{adapter:?} token_type {t}: {a:?}");
        }
        let refresh_jwt = hs256(&base(), Some("refresh+jwt"), common::SECRET);
        assert_eq!(call(adapter, &v, &bearer(&refresh_jwt)).status, 401);
    }
    // The cached path: a token cached while valid is refused once it has
    // expired or been revoked.
    let revocations = std::sync::Arc::new(keycard::stores::InMemoryRevocationStore::new());
    let cached = verifier_builder()
        .cache_verified_tokens(100)
        .revocation(revocations.clone())
        .leeway(Duration::ZERO)
        .build()
        .unwrap();
    let short = at(&with("exp", json!(now() + 1)));
    let revoked = at(&with("jti", json!("to-revoke")));
    for t in [&short, &revoked] {
        assert_eq!(call(Adapter::Tower, &cached, &bearer(t)).status, 200);
    }
    assert!(cached.cached_tokens() >= 2, "both cached");
    tokio_rt()
        .block_on(revocations.revoke_token("to-revoke", now() + 600))
        .unwrap();
    std::thread::sleep(Duration::from_millis(2100));
    for (t, what) in [(&short, "expired"), (&revoked, "revoked")] {
        let a = call(Adapter::Tower, &cached, &bearer(t));
        assert_eq!(a.status, 401, "cached and {what}: {a:?}");
    }
}

/// With audiences configured per issuer, an introspection answer that
/// names no `iss` (and so selects no list) and no `aud` is refused: no
/// audience check may be skipped.
#[test]
fn an_answer_without_iss_is_refused_when_audiences_are_per_issuer() {
    let s = server();
    let v = Verifier::builder()
        .key(Key::hs256(common::SECRET).unwrap())
        .issuer_with_audiences(ISS, ["api"])
        .introspection(introspector(&s).cache_ttl(Duration::ZERO).build().unwrap())
        .build()
        .unwrap();
    let exp = now() + 600;
    for adapter in ADAPTERS {
        let bare = call(
            adapter,
            &v,
            &bearer(&answered(&json!({"sub": "x", "exp": exp}))),
        );
        assert_eq!(bare.status, 401, "{adapter:?}: {bare:?}");
        let named = call(
            adapter,
            &v,
            &bearer(&answered(
                &json!({"sub": "x", "exp": exp, "iss": ISS, "aud": "api"}),
            )),
        );
        assert_eq!(named.status, 200, "{adapter:?}: {named:?}");
    }
}
