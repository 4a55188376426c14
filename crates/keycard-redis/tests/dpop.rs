//! DPoP proof replay across a cluster, against a real `redis-server`: a
//! proof used on one node is refused on another, and a replay store that
//! cannot answer fails closed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use jsonwebtoken::{EncodingKey, Header};
use keycard_core::dpop::{access_token_hash, thumbprint, DpopConfig, DpopPolicy};
use keycard_core::{Algorithm, AuthErrorKind, Key, SigningKey, TokenIssuer, Verifier};
use keycard_redis::testing::RedisServer;
use keycard_redis::{RedisConfig, RedisStores};
use serde_json::{json, Value};

const SECRET: &[u8] = b"redis-dpop-test-secret-0123456789abcdef";
static N: AtomicUsize = AtomicUsize::new(0);

fn prefix() -> String {
    format!(
        "kc-dpop-{}-{}:",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

struct Client {
    encoding: EncodingKey,
    jwk: serde_json::Map<String, Value>,
}

fn client() -> Client {
    keycard_core::ensure_crypto_backend().unwrap();
    let pem = fixture("p256.pem");
    let signing = SigningKey::from_pem(Algorithm::ES256, &pem).unwrap();
    let mut jwk = serde_json::to_value(signing.verification_key().to_public_jwk().unwrap())
        .unwrap()
        .as_object()
        .unwrap()
        .clone();
    for k in ["kid", "alg", "use"] {
        jwk.remove(k);
    }
    Client {
        encoding: EncodingKey::from_ec_pem(&pem).unwrap(),
        jwk,
    }
}

/// An access token bound to `c`'s key.
fn bound_token(c: &Client) -> String {
    TokenIssuer::builder(SigningKey::hs256(SECRET).unwrap())
        .audience("api")
        .build()
        .unwrap()
        .issue_bound("alice", None, &json!({}), &thumbprint(&c.jwk).unwrap())
        .unwrap()
        .token
}

fn proof(c: &Client, token: &str) -> String {
    proof_at(c, token, keycard_core::unix_now())
}

/// A proof made at `iat` (by a client whose clock says so).
fn proof_at(c: &Client, token: &str, iat: i64) -> String {
    let mut h = Header::new(Algorithm::ES256);
    h.typ = Some("dpop+jwt".into());
    h.jwk = Some(serde_json::from_value(Value::Object(c.jwk.clone())).unwrap());
    let claims = json!({
        "jti": keycard_core::random_id(), "htm": "GET", "htu": "https://api.test/orders",
        "iat": iat, "ath": access_token_hash(token),
    });
    jsonwebtoken::encode(&h, &claims, &c.encoding).unwrap()
}

fn node(stores: &RedisStores) -> Verifier {
    node_with(stores, |b| b)
}

/// A node, with `tune` applied to its builder (a clock, a leeway).
fn node_with(
    stores: &RedisStores,
    tune: impl FnOnce(keycard_core::VerifierBuilder) -> keycard_core::VerifierBuilder,
) -> Verifier {
    tune(
        Verifier::builder()
            .key(Key::hs256(SECRET).unwrap())
            .audience("api"),
    )
    .dpop(
        DpopConfig::new(DpopPolicy::Required)
            .public_origin("https://api.test")
            .replay_store(stores.dpop_replay()),
    )
    .build()
    .unwrap()
}

/// Two nodes' stores on `redis`, under a fresh prefix.
async fn two_nodes(redis: &RedisServer) -> (RedisStores, RedisStores) {
    let prefix = prefix();
    let connect = || {
        RedisStores::connect_with(
            RedisConfig::new(redis.url())
                .prefix(prefix.clone())
                .timeout(Duration::from_millis(500)),
        )
    };
    (connect().await.unwrap(), connect().await.unwrap())
}

async fn present(v: &Verifier, token: &str, proof: &str) -> Result<(), AuthErrorKind> {
    let auth = format!("DPoP {token}");
    let headers: &[(&str, &str)] = &[("authorization", auth.as_str()), ("dpop", proof)];
    let attempt = v.authenticate_now_at("GET", Some("/orders"), headers);
    let result = match attempt {
        keycard_core::Attempt::Done(r) => r,
        keycard_core::Attempt::Pending(p) => p.finish().await,
    };
    result.map(|_| ()).map_err(|e| e.kind())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_used_on_one_node_is_refused_on_another_and_an_outage_fails_closed() {
    let mut redis = RedisServer::start().unwrap();
    let (a, b) = two_nodes(&redis).await;
    let (node_a, node_b) = (node(&a), node(&b));
    let c = client();
    let token = bound_token(&c);

    let p = proof(&c, &token);
    assert_eq!(present(&node_a, &token, &p).await, Ok(()));
    // Replayed on the same node: caught in memory; on the other: by Redis.
    assert_eq!(
        present(&node_a, &token, &p).await,
        Err(AuthErrorKind::InvalidDpopProof)
    );
    assert_eq!(
        present(&node_b, &token, &p).await,
        Err(AuthErrorKind::InvalidDpopProof)
    );
    // A fresh proof works on either node.
    assert_eq!(present(&node_b, &token, &proof(&c, &token)).await, Ok(()));

    // Redis away: a proof cannot be recorded, so it is not accepted.
    redis.kill();
    assert_eq!(
        present(&node_a, &token, &proof(&c, &token)).await,
        Err(AuthErrorKind::StoreUnavailable)
    );
}

/// A node whose clock lags Redis's by more than the proof window once
/// recorded proofs with an absolute expiry (`EXAT`) from its own clock:
/// already past for Redis, so the key expired on arrival and every node saw
/// a first use. Now the expiry is relative (Redis's own clock ends it): a
/// proof used on one lagging node is refused on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_clock_lags_redis_still_records_proofs() {
    let redis = RedisServer::start().unwrap();
    let (a, b) = two_nodes(&redis).await;
    // Past the proof window (60 s + 5 s), within the token leeway.
    let lag = -200;
    let lagging = |stores: &RedisStores| {
        node_with(stores, |b| {
            b.leeway(Duration::from_secs(300))
                .clock(std::sync::Arc::new(keycard_core::SkewedClock(lag)))
        })
    };
    let (node_a, node_b) = (lagging(&a), lagging(&b));
    let c = client();
    let now = keycard_core::unix_now() + lag;
    let token = bound_token(&c);
    let p = proof_at(&c, &token, now);
    assert_eq!(present(&node_a, &token, &p).await, Ok(()));
    assert_eq!(
        present(&node_b, &token, &p).await,
        Err(AuthErrorKind::InvalidDpopProof),
        "replayed on another node whose clock lags Redis"
    );
}
