//! The Redis stores against a real `redis-server`, started by the tests on a
//! free loopback port so they can kill and restart it. Two or three "nodes"
//! are separate connections with separate local views, as in a cluster.
//! The store suite (`suite/`) runs here against one server and in
//! `redis_cluster.rs` against a Redis Cluster.

mod suite;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use keycard_core::AuthErrorKind;
use keycard_redis::testing::RedisServer;
use keycard_redis::{RedisConfig, RedisStores};
use serde_json::json;
use suite::{eventually, futures_now, prefix, Target};

async fn node(url: &str, prefix: &str) -> (RedisStores, keycard_core::Sessions) {
    Target::Single(url.to_owned()).node(prefix).await
}

/// A shared server from `KEYCARD_TEST_REDIS_URL`, or our own.
fn server() -> (Option<RedisServer>, Target) {
    match std::env::var("KEYCARD_TEST_REDIS_URL") {
        Ok(url) => (None, Target::Single(url)),
        Err(_) => {
            let s = RedisServer::start().unwrap();
            let url = s.url();
            (Some(s), Target::Single(url))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_on_one_node_is_refused_on_the_other() {
    let (_server, t) = server();
    suite::logout_on_one_node_is_refused_on_the_other(&t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_is_atomic_across_nodes_and_reuse_revokes_everywhere() {
    let (_server, t) = server();
    suite::rotation_is_atomic_across_nodes_and_reuse_revokes_everywhere(&t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_ttls_match_token_lifetimes() {
    let (_server, t) = server();
    suite::stored_ttls_match_token_lifetimes(&t).await;
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

    let killed = std::time::Instant::now();
    server.kill();
    eventually("both nodes notice the outage", || {
        !a_stores.is_current() && !b_stores.is_current()
    })
    .await;
    let noticed = killed.elapsed();
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
    let restarted = std::time::Instant::now();
    server.restart().unwrap();
    eventually("both nodes are current again", || {
        a_stores.is_current() && b_stores.is_current()
    })
    .await;
    eprintln!(
        "Redis killed: both nodes failed closed after {noticed:?}; restarted empty: both current again (entries written back) {:?} after the restart",
        restarted.elapsed()
    );
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
