//! The Redis stores against a real `redis-server`, started by the tests on a
//! free loopback port so they can kill and restart it. Two or three "nodes"
//! are separate connections with separate local views, as in a cluster.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keycard_core::{AuthErrorKind, SessionError, Sessions, SigningKey, TokenIssuer};
use keycard_redis::testing::RedisServer;
use keycard_redis::{RedisConfig, RedisStores};
use serde_json::json;

static N: AtomicUsize = AtomicUsize::new(0);

/// A unique key prefix per test, so tests never see each other's keys.
fn prefix() -> String {
    format!(
        "kc-test-{}-{}:",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn issuer() -> TokenIssuer {
    TokenIssuer::builder(SigningKey::hs256(b"redis-cluster-test-secret-0123456789ab").unwrap())
        .issuer("auth")
        .audience("api")
        .build()
        .unwrap()
}

async fn node(url: &str, prefix: &str) -> (RedisStores, Sessions) {
    let stores = RedisStores::connect_with(
        RedisConfig::new(url)
            .prefix(prefix)
            .timeout(Duration::from_millis(500))
            .health_interval(Duration::from_millis(100)),
    )
    .await
    .unwrap();
    assert!(stores.is_current());
    let sessions = Sessions::builder(issuer())
        .revocation_store(stores.revocation())
        .refresh_store(stores.refresh())
        .build()
        .unwrap();
    (stores, sessions)
}

/// A shared server from `KEYCARD_TEST_REDIS_URL`, or our own.
fn server() -> (Option<RedisServer>, String) {
    match std::env::var("KEYCARD_TEST_REDIS_URL") {
        Ok(url) => (None, url),
        Err(_) => {
            let s = RedisServer::start().unwrap();
            let url = s.url();
            (Some(s), url)
        }
    }
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_on_one_node_is_refused_on_the_other() {
    let (_server, url) = server();
    let p = prefix();
    let (_a_stores, a) = node(&url, &p).await;
    let (_b_stores, b) = node(&url, &p).await;

    let laptop = a.login("alice", &json!({})).await.unwrap();
    let phone = a.login("alice", &json!({})).await.unwrap();
    assert!(b.verifier().verify(&laptop.access_token).await.is_ok());

    let v = a.verifier().verify(&laptop.access_token).await.unwrap();
    a.logout(&v).await.unwrap();
    // At once on the node that logged out...
    assert_eq!(
        a.verifier()
            .verify(&laptop.access_token)
            .await
            .unwrap_err()
            .kind(),
        AuthErrorKind::Revoked
    );
    // ...and on the other node as soon as the announcement arrives.
    let bv = b.verifier().clone();
    let token = laptop.access_token.clone();
    eventually("node B refuses the logged-out token", || {
        futures_now(bv.verify(&token)).is_err_and(|e| e.kind() == AuthErrorKind::Revoked)
    })
    .await;
    assert!(
        b.refresh(&laptop.refresh_token).await.is_err(),
        "the refresh family ended too"
    );
    assert!(
        b.verifier().verify(&phone.access_token).await.is_ok(),
        "other sessions live on"
    );

    // Log out everywhere on B: A refuses the phone's token too.
    b.logout_everywhere("alice").await.unwrap();
    let av = a.verifier().clone();
    let token = phone.access_token.clone();
    eventually("node A refuses every token of alice", || {
        futures_now(av.verify(&token)).is_err()
    })
    .await;
}

/// Poll a future that is ready at once (local checks never wait).
fn futures_now<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let waker = std::task::Waker::noop();
    match f.as_mut().poll(&mut std::task::Context::from_waker(waker)) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("a local verification waited"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_is_atomic_across_nodes_and_reuse_revokes_everywhere() {
    let (_server, url) = server();
    let p = prefix();
    let (_a_stores, a) = node(&url, &p).await;
    let (_b_stores, b) = node(&url, &p).await;
    let pair = a.login("alice", &json!({"roles": ["user"]})).await.unwrap();

    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let s = if i % 2 == 0 { a.clone() } else { b.clone() };
            let t = pair.refresh_token.clone();
            tokio::spawn(async move { s.refresh(&t).await })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(SessionError::ReuseDetected | SessionError::InvalidGrant(_)) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!(wins, 1, "exactly one concurrent refresh wins");

    // Sequential: rotate on A, replay the old token on B.
    let fresh = a.login("bob", &json!({})).await.unwrap();
    let next = a.refresh(&fresh.refresh_token).await.unwrap();
    assert!(matches!(
        b.refresh(&fresh.refresh_token).await,
        Err(SessionError::ReuseDetected)
    ));
    assert!(
        b.refresh(&next.refresh_token).await.is_err(),
        "the newest token died with the family"
    );
    let av = a.verifier().clone();
    let token = next.access_token.clone();
    eventually("the family's access token is refused on A", || {
        futures_now(av.verify(&token)).is_err()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_ttls_match_token_lifetimes() {
    let (_server, url) = server();
    let p = prefix();
    let (_stores, s) = node(&url, &p).await;
    let pair = s.login("alice", &json!({})).await.unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!("{p}rf:{}", pair.sid))
        .query_async(&mut conn)
        .await
        .unwrap();
    let session = s.issuer().session_ttl().as_secs() as i64;
    assert!(
        (session - 5..=session).contains(&ttl),
        "family TTL {ttl} vs session {session}"
    );
    let v = s.verifier().verify(&pair.access_token).await.unwrap();
    s.logout(&v).await.unwrap();
    let score: f64 = redis::cmd("ZSCORE")
        .arg(format!("{p}rev:jti"))
        .arg(v.registered().jti.as_deref().unwrap())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        score as i64,
        v.registered().exp,
        "a denylist entry lives until the token's exp"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_dies_under_load_fails_closed_and_recovers_without_forgetting() {
    // This test kills its server, so it always starts its own.
    let mut server = RedisServer::start().unwrap();
    let url = server.url();
    let p = prefix();
    let (a_stores, a) = node(&url, &p).await;
    let (b_stores, b) = node(&url, &p).await;

    let revoked = a.login("mallory", &json!({})).await.unwrap();
    let good = a.login("alice", &json!({})).await.unwrap();
    let v = a.verifier().verify(&revoked.access_token).await.unwrap();
    a.logout(&v).await.unwrap();
    let bv = b.verifier().clone();
    let t = revoked.access_token.clone();
    eventually("B knows the revocation", || {
        futures_now(bv.verify(&t)).is_err()
    })
    .await;

    // Load: verify continuously on B while Redis goes away and comes back.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let bad_accepts = Arc::new(AtomicUsize::new(0));
    let answers = Arc::new(AtomicUsize::new(0));
    let load = {
        let (stop, bad, answers, bv) = (
            stop.clone(),
            bad_accepts.clone(),
            answers.clone(),
            b.verifier().clone(),
        );
        let (rt, gt) = (revoked.access_token.clone(), good.access_token.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if bv.verify(&rt).await.is_ok() {
                    bad.fetch_add(1, Ordering::Relaxed);
                }
                match bv.verify(&gt).await {
                    Ok(_) => {}
                    Err(e) => assert_eq!(
                        e.kind(),
                        AuthErrorKind::StoreUnavailable,
                        "only 503 while down"
                    ),
                }
                answers.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        })
    };

    server.kill();
    eventually("both nodes notice the outage", || {
        !a_stores.is_current() && !b_stores.is_current()
    })
    .await;
    let err = b.verifier().verify(&good.access_token).await.unwrap_err();
    assert_eq!(err.kind(), AuthErrorKind::StoreUnavailable);
    assert_eq!(err.status(), 503);
    // A revocation Redis cannot acknowledge is an error, never a success.
    assert!(
        a.logout(&v).await.is_err(),
        "logout during the outage must report failure"
    );

    // Redis comes back empty (no persistence): the nodes recover by
    // themselves and write back what they know.
    server.restart().unwrap();
    eventually("both nodes are current again", || {
        a_stores.is_current() && b_stores.is_current()
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    assert_eq!(
        bad_accepts.load(Ordering::Relaxed),
        0,
        "a revoked token was accepted"
    );
    assert!(answers.load(Ordering::Relaxed) > 10, "the load ran");
    assert!(b.verifier().verify(&good.access_token).await.is_ok());
    assert!(b.verifier().verify(&revoked.access_token).await.is_err());

    // A node that joins after the restart learns the old revocation too.
    let (_c_stores, c) = node(&url, &p).await;
    assert_eq!(
        c.verifier()
            .verify(&revoked.access_token)
            .await
            .unwrap_err()
            .kind(),
        AuthErrorKind::Revoked
    );
}

#[tokio::test]
async fn an_unreachable_redis_is_a_clear_error_at_startup() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = RedisStores::connect_with(
        RedisConfig::new(format!("redis://127.0.0.1:{port}")).timeout(Duration::from_millis(200)),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("unavailable"), "{err}");
}
