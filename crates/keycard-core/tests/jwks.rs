//! Remote JWKS against a local server (127.0.0.1) that the tests control:
//! it rotates keys, fails, hangs, returns garbage, and counts its hits.
#![cfg(feature = "jwks")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use keycard_core::jwks::{JwksError, MultiIssuer, RemoteJwks};
use keycard_core::{
    Algorithm, AuthErrorKind, KeyRing, SigningKey, TokenIssuer, TokenType, Verifier,
};
use serde_json::{json, Value};

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/");

fn pem(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIX}{name}")).unwrap()
}

fn signing(alg: Algorithm, file: &str, kid: &str) -> SigningKey {
    SigningKey::from_pem(alg, pem(file)).unwrap().with_kid(kid)
}

fn jwks_of(keys: &[&SigningKey]) -> String {
    let keys: Vec<Value> = keys
        .iter()
        .map(|k| serde_json::to_value(k.verification_key().to_public_jwk().unwrap()).unwrap())
        .collect();
    json!({ "keys": keys }).to_string()
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Ok,
    Fail,
    Garbage,
    Hang,
}

struct Jwks {
    body: String,
    mode: Mode,
    cache_control: Option<String>,
    issuer: String,
}

#[derive(Clone)]
struct Server {
    state: Arc<Mutex<Jwks>>,
    hits: Arc<AtomicUsize>,
    base: String,
}

impl Server {
    async fn start(body: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = Server {
            state: Arc::new(Mutex::new(Jwks {
                body,
                mode: Mode::Ok,
                cache_control: None,
                issuer: base.clone(),
            })),
            hits: Arc::new(AtomicUsize::new(0)),
            base,
        };
        let app = axum::Router::new()
            .route("/jwks.json", get(serve_jwks))
            .route("/.well-known/openid-configuration", get(serve_discovery))
            .with_state(server.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        server
    }
    fn url(&self) -> String {
        format!("{}/jwks.json", self.base)
    }
    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
    fn set(&self, f: impl FnOnce(&mut Jwks)) {
        f(&mut self.state.lock().unwrap());
    }
}

async fn serve_jwks(State(s): State<Server>) -> Response {
    s.hits.fetch_add(1, Ordering::SeqCst);
    let (mode, body, cc) = {
        let st = s.state.lock().unwrap();
        (st.mode, st.body.clone(), st.cache_control.clone())
    };
    match mode {
        Mode::Ok => {
            let mut res = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
            if let Some(cc) = cc {
                res.headers_mut()
                    .insert(header::CACHE_CONTROL, cc.parse().unwrap());
            }
            res
        }
        Mode::Fail => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Mode::Garbage => "<html>not json</html>".into_response(),
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
    }
}

async fn serve_discovery(State(s): State<Server>) -> Response {
    let issuer = s.state.lock().unwrap().issuer.clone();
    axum::Json(json!({ "issuer": issuer, "jwks_uri": s.url() })).into_response()
}

fn token(key: &SigningKey, iss: &str) -> String {
    TokenIssuer::builder(key.clone())
        .issuer(iss)
        .audience("api")
        .build()
        .unwrap()
        .issue(
            TokenType::Access,
            "alice",
            None,
            &json!({"roles": ["user"]}),
        )
        .unwrap()
        .token
}

fn verifier(jwks: &RemoteJwks, iss: &str) -> Verifier {
    Verifier::builder()
        .key_provider(Arc::new(jwks.clone()))
        .issuer(iss)
        .audience("api")
        .build()
        .unwrap()
}

const ISS: &str = "https://idp.test";

#[tokio::test]
async fn eager_fetch_then_rotation_is_picked_up_within_one_request() {
    let k1 = signing(Algorithm::RS256, "rsa2048.pem", "k1");
    let k2 = signing(Algorithm::ES256, "p256.pem", "k2");
    let server = Server::start(jwks_of(&[&k1])).await;
    let jwks = RemoteJwks::builder(server.url())
        .insecure_allow_http_loopback()
        .cooldown(Duration::from_millis(50))
        .build()
        .await
        .unwrap();
    assert_eq!(server.hits(), 1);
    let v = verifier(&jwks, ISS);
    assert!(v.verify(&token(&k1, ISS)).await.is_ok());
    assert_eq!(server.hits(), 1, "a known kid never fetches");

    // The IdP rotates to k2; the first token signed by k2 is accepted.
    server.set(|s| s.body = jwks_of(&[&k2]));
    tokio::time::sleep(Duration::from_millis(60)).await;
    let verified = v.verify(&token(&k2, ISS)).await.unwrap();
    assert_eq!(verified.kid(), Some("k2"));
    assert_eq!(server.hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_kids_costs_at_most_one_fetch_per_cooldown() {
    let k1 = signing(Algorithm::ES256, "p256.pem", "k1");
    let attacker = signing(Algorithm::ES256, "p256b.pem", "x");
    // Minted up front, so the flood itself is fast compared to the cooldown.
    let forged: Vec<String> = (0..1000)
        .map(|i| token(&attacker.clone().with_kid(format!("random-{i}")), ISS))
        .collect();
    let server = Server::start(jwks_of(&[&k1])).await;
    let jwks = RemoteJwks::builder(server.url())
        .insecure_allow_http_loopback()
        .cooldown(Duration::from_secs(3))
        .build()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(3010)).await;
    let v = verifier(&jwks, ISS);
    let tasks: Vec<_> = forged
        .into_iter()
        .map(|t| {
            let v = v.clone();
            tokio::spawn(async move { v.verify(&t).await })
        })
        .collect();
    for t in tasks {
        let err = t.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), AuthErrorKind::UnknownKey, "401, never a 500");
        assert_eq!(err.status(), 401);
    }
    assert!(
        server.hits() <= 2,
        "1000 unknown kids caused {} fetches",
        server.hits() - 1
    );
    assert!(v.verify(&token(&k1, ISS)).await.is_ok());
}

#[tokio::test]
async fn outages_and_garbage_keep_the_last_good_keys_until_max_staleness() {
    let k1 = signing(Algorithm::EdDSA, "ed25519.pem", "k1");
    let server = Server::start(jwks_of(&[&k1])).await;
    let jwks = RemoteJwks::builder(server.url())
        .insecure_allow_http_loopback()
        .cooldown(Duration::from_millis(20))
        .max_staleness(Duration::from_millis(1500))
        .build()
        .await
        .unwrap();
    let v = verifier(&jwks, ISS);
    let good = token(&k1, ISS);
    let unknown = token(&signing(Algorithm::EdDSA, "ed25519b.pem", "k9"), ISS);
    for mode in [Mode::Fail, Mode::Garbage] {
        server.set(|s| s.mode = mode);
        tokio::time::sleep(Duration::from_millis(25)).await;
        let before = server.hits();
        assert_eq!(
            v.verify(&unknown).await.unwrap_err().kind(),
            AuthErrorKind::UnknownKey
        );
        assert_eq!(server.hits(), before + 1, "{mode:?}: the refetch happened");
        assert!(jwks.last_error().is_some(), "{mode:?}");
        assert!(
            v.verify(&good).await.is_ok(),
            "{mode:?}: stale keys keep serving"
        );
        assert_eq!(
            jwks.key_count(),
            1,
            "{mode:?}: a bad document never replaces good keys"
        );
    }
    // Past the maximum staleness the keys are unavailable: 503, not 401.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let err = v.verify(&good).await.unwrap_err();
    assert_eq!(err.kind(), AuthErrorKind::KeysUnavailable);
    assert_eq!(err.status(), 503);
    // The endpoint recovers: so do we, without a restart.
    server.set(|s| s.mode = Mode::Ok);
    tokio::time::sleep(Duration::from_millis(25)).await;
    assert!(v.verify(&good).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_endpoint_blocks_nobody_beyond_the_timeout() {
    let k1 = signing(Algorithm::ES256, "p256.pem", "k1");
    let server = Server::start(jwks_of(&[&k1])).await;
    let jwks = RemoteJwks::builder(server.url())
        .insecure_allow_http_loopback()
        .cooldown(Duration::from_millis(10))
        .timeout(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    let v = verifier(&jwks, ISS);
    server.set(|s| s.mode = Mode::Hang);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let unknown = token(&signing(Algorithm::ES256, "p256b.pem", "k9"), ISS);
    let waiting = {
        let v = v.clone();
        tokio::spawn(async move {
            let start = std::time::Instant::now();
            let r = v.verify(&unknown).await;
            (r.map(|_| ()).map_err(|e| e.kind()), start.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    // While the fetch hangs, a known kid is answered from the cache at once.
    let known = tokio::time::timeout(Duration::from_millis(1000), v.verify(&token(&k1, ISS))).await;
    assert!(
        matches!(known, Ok(Ok(_))),
        "a known kid waited on the hanging fetch"
    );
    let (result, took) = waiting.await.unwrap();
    assert_eq!(result, Err(AuthErrorKind::UnknownKey));
    assert!(
        took < Duration::from_secs(3),
        "the unknown kid waited {took:?}"
    );
}

#[tokio::test]
async fn key_filtering_and_max_age() {
    let rsa = signing(Algorithm::RS256, "rsa2048.pem", "rsa");
    let mut doc: Value = serde_json::from_str(&jwks_of(&[&rsa])).unwrap();
    let keys = doc["keys"].as_array_mut().unwrap();
    // An encryption key, a key without verify, a symmetric key, a weak RSA
    // key and an EC key whose alg names the wrong curve: all dropped.
    let mut enc = keys[0].clone();
    enc["use"] = json!("enc");
    enc["kid"] = json!("enc");
    let mut noverify = keys[0].clone();
    noverify["key_ops"] = json!(["sign"]);
    noverify["kid"] = json!("noverify");
    let weak = {
        let dk = jsonwebtoken::DecodingKey::from_rsa_pem(&pem("rsa1024.pub.pem")).unwrap();
        let mut j = serde_json::to_value(
            jsonwebtoken::jwk::Jwk::from_decoding_key(&dk, Some(Algorithm::RS256)).unwrap(),
        )
        .unwrap();
        j["kid"] = json!("weak");
        j
    };
    let mut wrong_curve = serde_json::to_value(
        signing(Algorithm::ES384, "p384.pem", "p384")
            .verification_key()
            .to_public_jwk()
            .unwrap(),
    )
    .unwrap();
    wrong_curve["alg"] = json!("ES256");
    keys.push(enc);
    keys.push(noverify);
    keys.push(json!({"kty": "oct", "kid": "oct", "alg": "HS256", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}));
    keys.push(weak);
    keys.push(wrong_curve);
    let server = Server::start(doc.to_string()).await;
    server.set(|s| s.cache_control = Some("public, max-age=7".into()));
    let jwks = RemoteJwks::builder(server.url())
        .insecure_allow_http_loopback()
        .build()
        .await
        .unwrap();
    assert_eq!(
        jwks.key_count(),
        1,
        "only the good RSA signature key is kept"
    );

    // A token using the oct key as an HMAC secret (algorithm confusion via
    // JWKS) names an unknown key.
    let v = verifier(&jwks, ISS);
    let hs = SigningKey::hs256(b"secretsecretsecretsecretsecretsecret")
        .unwrap()
        .with_kid("oct");
    assert!(v.verify(&token(&hs, ISS)).await.is_err());
    assert!(v.verify(&token(&rsa, ISS)).await.is_ok());
}

#[tokio::test]
async fn plain_http_needs_the_opt_in_and_lazy_startup_fetches_on_first_use() {
    let err = RemoteJwks::builder("http://127.0.0.1:9/jwks.json")
        .build_lazy()
        .unwrap_err();
    assert!(matches!(err, JwksError::Config(_)), "{err}");
    let k1 = signing(Algorithm::PS256, "rsa2048.pem", "k1");
    let server = Server::start(jwks_of(&[&k1])).await;
    let lazy = RemoteJwks::builder(server.url())
        .insecure_allow_http_loopback()
        .build_lazy()
        .unwrap();
    assert_eq!(server.hits(), 0);
    assert!(verifier(&lazy, ISS).verify(&token(&k1, ISS)).await.is_ok());
    assert_eq!(server.hits(), 1);
    // Eager startup fails fast when the endpoint is down.
    server.set(|s| s.mode = Mode::Fail);
    assert!(RemoteJwks::builder(server.url())
        .insecure_allow_http_loopback()
        .build()
        .await
        .is_err());
    // A lazy source whose endpoint is down answers 503, not 401.
    let down = RemoteJwks::builder(server.url())
        .insecure_allow_http_loopback()
        .build_lazy()
        .unwrap();
    let err = verifier(&down, ISS)
        .verify(&token(&k1, ISS))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), AuthErrorKind::KeysUnavailable);
}

#[tokio::test]
async fn oidc_discovery_requires_the_exact_issuer() {
    let k1 = signing(Algorithm::ES256, "p256.pem", "k1");
    let server = Server::start(jwks_of(&[&k1])).await;
    let jwks = RemoteJwks::from_issuer(&server.base)
        .insecure_allow_http_loopback()
        .build()
        .await
        .unwrap();
    assert_eq!(jwks.url(), Some(server.url().as_str()));
    assert!(verifier(&jwks, &server.base)
        .verify(&token(&k1, &server.base))
        .await
        .is_ok());
    server.set(|s| s.issuer = "https://evil.test".into());
    let err = RemoteJwks::from_issuer(&server.base)
        .insecure_allow_http_loopback()
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, JwksError::IssuerMismatch { .. }), "{err}");
}

#[tokio::test]
async fn several_issuers_resolve_keys_by_iss_and_kid() {
    let ka = signing(Algorithm::ES256, "p256.pem", "shared-kid");
    let kb = signing(Algorithm::ES256, "p256b.pem", "shared-kid");
    let a = Server::start(jwks_of(&[&ka])).await;
    let b = Server::start(jwks_of(&[&kb])).await;
    let ja = RemoteJwks::builder(a.url())
        .insecure_allow_http_loopback()
        .build()
        .await
        .unwrap();
    let jb = RemoteJwks::builder(b.url())
        .insecure_allow_http_loopback()
        .build()
        .await
        .unwrap();
    let multi = MultiIssuer::new()
        .issuer("https://a.test", Arc::new(ja))
        .issuer("https://b.test", Arc::new(jb));
    let v = Verifier::builder()
        .key_provider(Arc::new(multi))
        .issuer("https://a.test")
        .issuer("https://b.test")
        .audience("api")
        .build()
        .unwrap();
    assert!(v.verify(&token(&ka, "https://a.test")).await.is_ok());
    assert!(v.verify(&token(&kb, "https://b.test")).await.is_ok());
    // Issuer A's name on a token signed with issuer B's key: refused.
    let forged = v.verify(&token(&kb, "https://a.test")).await.unwrap_err();
    assert_eq!(forged.kind(), AuthErrorKind::BadSignature);
    assert!(v.verify(&token(&ka, "https://c.test")).await.is_err());
}

#[tokio::test]
async fn a_key_ring_publishes_before_it_signs_and_keeps_retired_keys() {
    let ring = Arc::new(
        KeyRing::builder(signing(Algorithm::EdDSA, "ed25519.pem", "2026-11"))
            .propagation_delay(Duration::from_secs(1))
            .build()
            .unwrap(),
    );
    let issuer = TokenIssuer::builder_with_ring(ring.clone())
        .issuer(ISS)
        .audience("api")
        .build()
        .unwrap();
    // The issuer raised the retention to its refresh lifetime + the leeway.
    assert!(ring.retention() >= Duration::from_secs(7 * 86400 + 300));
    let old = issuer
        .issue(TokenType::Access, "alice", None, &json!({}))
        .unwrap()
        .token;
    ring.rotate(signing(Algorithm::ES256, "p256.pem", "2026-12"))
        .unwrap();
    assert!(
        ring.rotate(signing(Algorithm::ES256, "p256b.pem", "2026-12"))
            .is_err(),
        "kid reuse"
    );
    let kids = |ring: &KeyRing| -> Vec<String> {
        let doc: Value = serde_json::from_str(&ring.jwks_json()).unwrap();
        doc["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    };
    // Published at once, signing later.
    assert_eq!(kids(&ring), ["2026-11", "2026-12"]);
    let still_old = issuer
        .issue(TokenType::Access, "alice", None, &json!({}))
        .unwrap()
        .token;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let new = issuer
        .issue(TokenType::Access, "alice", None, &json!({}))
        .unwrap()
        .token;
    assert_eq!(kids(&ring), ["2026-12", "2026-11"]);
    assert!(!ring.jwks_json().contains("\"d\""), "no private material");
    assert_eq!(ring.cache_control(), "public, max-age=1");

    // A resource server reading the published JWKS accepts all tokens.
    let server = Server::start(ring.jwks_json()).await;
    let jwks = RemoteJwks::builder(server.url())
        .insecure_allow_http_loopback()
        .build()
        .await
        .unwrap();
    let remote = verifier(&jwks, ISS);
    let local = issuer.verifier().build().unwrap();
    for v in [&remote, &local] {
        assert_eq!(v.verify(&new).await.unwrap().kid(), Some("2026-12"));
        assert_eq!(v.verify(&still_old).await.unwrap().kid(), Some("2026-11"));
        assert!(v.verify(&old).await.is_ok(), "old tokens work on");
    }
    // The retired key verifies only what it signed before retiring: a
    // token it signs now (whoever holds it) is refused.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let retired = signing(Algorithm::EdDSA, "ed25519.pem", "2026-11");
    let now = keycard_core::unix_now();
    let mut claims = serde_json::Map::new();
    for (k, v) in [
        ("iss", json!(ISS)),
        ("aud", json!("api")),
        ("sub", json!("mallory")),
        ("iat", json!(now)),
        ("exp", json!(now + 60)),
    ] {
        claims.insert(k.into(), v);
    }
    let forged = retired.sign("at+jwt", &claims).unwrap();
    let strict = issuer
        .verifier()
        .leeway(Duration::from_secs(0))
        .build()
        .unwrap();
    assert_eq!(
        strict.verify(&forged).await.unwrap_err().kind(),
        AuthErrorKind::UnknownKey,
        "a retired key signed a new token"
    );
    // Withdrawn (a leaked key): gone at once.
    assert!(ring.withdraw("2026-11"));
    assert!(local.verify(&old).await.is_err());
    assert_eq!(ring.public_jwks().keys.len(), 1);

    // HMAC keys are never published.
    let hmac_ring =
        KeyRing::new(SigningKey::hs256(b"secretsecretsecretsecretsecretsecret").unwrap());
    assert_eq!(hmac_ring.jwks_json(), r#"{"keys":[]}"#);
}

#[tokio::test]
async fn keys_refresh_in_the_background_before_they_expire() {
    let k1 = signing(Algorithm::ES256, "p256.pem", "k1");
    let k2 = signing(Algorithm::ES256, "p256b.pem", "k2");
    let server = Server::start(jwks_of(&[&k1])).await;
    server.set(|s| s.cache_control = Some("max-age=1".into()));
    let jwks = RemoteJwks::builder(server.url())
        .insecure_allow_http_loopback()
        .ttl(
            Duration::from_secs(300),
            Duration::from_secs(1),
            Duration::from_secs(3600),
        )
        // A long cooldown: only the background refresher can fetch.
        .cooldown(Duration::from_secs(600))
        .build()
        .await
        .unwrap();
    assert_eq!(server.hits(), 1);
    server.set(|s| s.body = jwks_of(&[&k1, &k2]));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        server.hits() >= 2,
        "no background refresh ({} hits)",
        server.hits()
    );
    // The rotation arrived without any request asking for it.
    assert!(verifier(&jwks, ISS).verify(&token(&k2, ISS)).await.is_ok());
}

/// December audit: during an outage the background refresher retried about
/// every 1.2 s, from every replica. It now waits the cooldown, then twice
/// that, and so on (with jitter).
#[tokio::test]
async fn an_outage_is_retried_with_backoff_from_the_cooldown() {
    let k1 = signing(Algorithm::ES256, "p256.pem", "k1");
    let server = Server::start(jwks_of(&[&k1])).await;
    server.set(|s| s.cache_control = Some("max-age=1".into()));
    let jwks = RemoteJwks::builder(server.url())
        .insecure_allow_http_loopback()
        .ttl(
            Duration::from_secs(300),
            Duration::from_secs(1),
            Duration::from_secs(3600),
        )
        .cooldown(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    server.set(|s| s.mode = Mode::Fail);
    let start = std::time::Instant::now();
    let mut seen = vec![];
    let mut last = server.hits();
    while start.elapsed() < Duration::from_secs(7) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if server.hits() != last {
            last = server.hits();
            seen.push(start.elapsed());
        }
    }
    // The refresh at ~0.8 s fails; retries then come at about +2 s (±20%)
    // and +4 s: at most 3 attempts in 7 s (1.2 s retries would be 6).
    assert!(seen.len() <= 3, "retried too often: {seen:?}");
    assert!(!seen.is_empty(), "no background refresh at all");
    for w in seen.windows(2) {
        assert!(
            w[1] - w[0] >= Duration::from_millis(1550),
            "retry too soon: {seen:?}"
        );
    }
    // The last good keys keep serving meanwhile.
    assert!(verifier(&jwks, ISS).verify(&token(&k1, ISS)).await.is_ok());
}

/// An authorization server that publishes RFC 8414 metadata only (no
/// OpenID Connect discovery): found under the well-known segment inserted
/// before the issuer's path, with the same exact-issuer rule. And a JWKS
/// fetched with the application's own HTTP client.
#[tokio::test]
async fn rfc8414_metadata_and_your_own_http_client() {
    let k1 = signing(Algorithm::ES256, "p256.pem", "k1");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let issuer = format!("{base}/tenant1");
    let seen_header = Arc::new(AtomicUsize::new(0));
    let app = {
        let (issuer, base, body, seen) = (
            issuer.clone(),
            base.clone(),
            jwks_of(&[&k1]),
            seen_header.clone(),
        );
        axum::Router::new()
            .route(
                "/.well-known/oauth-authorization-server/tenant1",
                get(move || {
                    let doc = json!({"issuer": issuer, "jwks_uri": format!("{base}/keys")});
                    async move { axum::Json(doc) }
                }),
            )
            .route(
                "/keys",
                get(move |headers: axum::http::HeaderMap| {
                    if headers.get("x-corp-proxy").is_some() {
                        seen.fetch_add(1, Ordering::SeqCst);
                    }
                    let body = body.clone();
                    async move { ([(header::CONTENT_TYPE, "application/json")], body) }
                }),
            )
    };
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-corp-proxy", "1".parse().unwrap());
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();
    let jwks = RemoteJwks::from_issuer(issuer.clone())
        .insecure_allow_http_loopback()
        .http_client(client)
        .build()
        .await
        .expect("RFC 8414 metadata");
    assert_eq!(jwks.url(), Some(format!("{base}/keys").as_str()));
    assert!(verifier(&jwks, &issuer)
        .verify(&token(&k1, &issuer))
        .await
        .is_ok());
    assert!(
        seen_header.load(Ordering::SeqCst) >= 1,
        "not fetched with our client"
    );
    // The exact-issuer rule holds for RFC 8414 too.
    let wrong = RemoteJwks::from_issuer(format!("{base}/tenant1/"))
        .insecure_allow_http_loopback()
        .build()
        .await;
    assert!(matches!(
        wrong,
        Err(JwksError::IssuerMismatch { .. }) | Err(JwksError::Fetch { .. })
    ));
}
