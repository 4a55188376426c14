//! The store suite: what every Redis deployment keycard supports must do,
//! run by `cluster.rs` against one server and by `redis_cluster.rs`
//! against a real Redis Cluster. Two or three "nodes" are separate
//! connections with separate local views, as in a keycard cluster.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use keycard_core::{AuthErrorKind, SessionError, Sessions, SigningKey, TokenIssuer};
use keycard_redis::{RedisConfig, RedisStores};
use serde_json::json;

static N: AtomicUsize = AtomicUsize::new(0);

/// A unique key prefix per test, so tests never see each other's keys.
pub(crate) fn prefix() -> String {
    format!(
        "kc-test-{}-{}:",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub(crate) fn issuer() -> TokenIssuer {
    TokenIssuer::builder(SigningKey::hs256(b"redis-cluster-test-secret-0123456789ab").unwrap())
        .issuer("auth")
        .audience("api")
        .build()
        .unwrap()
}

/// Where the stores live: one server, or a Redis Cluster's seed nodes.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    Single(String),
    Cluster(Vec<String>),
}

impl Target {
    /// The stores' configuration for this target, with short test timings.
    pub(crate) fn config(&self, prefix: &str) -> RedisConfig {
        match self {
            Self::Single(url) => RedisConfig::new(url),
            Self::Cluster(seeds) => RedisConfig::cluster(seeds.clone()),
        }
        .prefix(prefix)
        .timeout(Duration::from_millis(500))
        .health_interval(Duration::from_millis(100))
    }

    /// One keycard node: its stores and sessions.
    pub(crate) async fn node(&self, prefix: &str) -> (RedisStores, Sessions) {
        let stores = RedisStores::connect_with(self.config(prefix))
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

    /// The name keycard gives key `rest` under `prefix` here: as is on one
    /// server, under the prefix as a hash tag in a cluster.
    pub(crate) fn key(&self, prefix: &str, rest: &str) -> String {
        match self {
            Self::Single(_) => format!("{prefix}{rest}"),
            Self::Cluster(_) => {
                format!("{{{}}}:{rest}", prefix.trim_end_matches(':'))
            }
        }
    }

    /// Run one command where the key lives.
    pub(crate) async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        match self {
            Self::Single(url) => {
                let client = redis::Client::open(url.as_str()).unwrap();
                let mut conn = client.get_multiplexed_async_connection().await.unwrap();
                cmd.query_async(&mut conn).await.unwrap()
            }
            Self::Cluster(seeds) => {
                let client = redis::cluster::ClusterClient::new(seeds.clone()).unwrap();
                let mut conn = client.get_async_connection().await.unwrap();
                cmd.query_async(&mut conn).await.unwrap()
            }
        }
    }
}

pub(crate) async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Poll a future that is ready at once (local checks never wait).
pub(crate) fn futures_now<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let waker = std::task::Waker::noop();
    match f.as_mut().poll(&mut std::task::Context::from_waker(waker)) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("a local verification waited"),
    }
}

pub(crate) async fn logout_on_one_node_is_refused_on_the_other(t: &Target) {
    let p = prefix();
    let (_a_stores, a) = t.node(&p).await;
    let (_b_stores, b) = t.node(&p).await;

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

pub(crate) async fn rotation_is_atomic_across_nodes_and_reuse_revokes_everywhere(t: &Target) {
    let p = prefix();
    let (_a_stores, a) = t.node(&p).await;
    let (_b_stores, b) = t.node(&p).await;
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

pub(crate) async fn stored_ttls_match_token_lifetimes(t: &Target) {
    let p = prefix();
    let (_stores, s) = t.node(&p).await;
    let pair = s.login("alice", &json!({})).await.unwrap();
    let ttl: i64 = t
        .query(redis::cmd("TTL").arg(t.key(&p, &format!("rf:{}", pair.sid))))
        .await;
    let session = s.issuer().session_ttl().as_secs() as i64;
    assert!(
        (session - 5..=session).contains(&ttl),
        "family TTL {ttl} vs session {session}"
    );
    let v = s.verifier().verify(&pair.access_token).await.unwrap();
    s.logout(&v).await.unwrap();
    let score: f64 = t
        .query(
            redis::cmd("ZSCORE")
                .arg(t.key(&p, "rev:jti"))
                .arg(v.registered().jti.as_deref().unwrap()),
        )
        .await;
    assert_eq!(
        score as i64,
        v.registered().exp,
        "a denylist entry lives until the token's exp"
    );
}
