//! The store suite: what every Redis deployment keycard supports must do,
//! run by `cluster.rs` against one server and by `redis_cluster.rs`
//! against a real Redis Cluster. Two or three "nodes" are separate
//! connections with separate local views, as in a keycard cluster.

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
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
    /// Sentinels watching the service `keycard`.
    Sentinel(Vec<String>),
}

impl Target {
    /// The stores' configuration for this target, with short test timings.
    pub(crate) fn config(&self, prefix: &str) -> RedisConfig {
        match self {
            Self::Single(url) => RedisConfig::new(url),
            Self::Cluster(seeds) => RedisConfig::cluster(seeds.clone()),
            Self::Sentinel(sentinels) => RedisConfig::sentinel(sentinels.clone(), "keycard"),
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
            Self::Single(_) | Self::Sentinel(_) => format!("{prefix}{rest}"),
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
            Self::Sentinel(sentinels) => {
                let client = redis::Client::open(sentinels[0].as_str()).unwrap();
                let mut conn = client.get_multiplexed_async_connection().await.unwrap();
                let (host, port): (String, u16) = redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg("keycard")
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                let client = redis::Client::open(format!("redis://{host}:{port}")).unwrap();
                let mut conn = client.get_multiplexed_async_connection().await.unwrap();
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

/// What a fault did, as the nodes saw it.
#[derive(Debug)]
pub(crate) struct Windows {
    /// From the fault until a node's view stopped being current.
    pub(crate) detected: Option<Duration>,
    /// From the fault until every node's view was current again.
    pub(crate) recovered: Duration,
    /// Longest stretch in which some node's view was not current (checks
    /// answered 503).
    pub(crate) fail_closed: Duration,
    /// Writes that failed (reported as errors, never as successes).
    pub(crate) failed_writes: usize,
    /// Revocations acknowledged during the run.
    pub(crate) acknowledged: usize,
    /// Resyncs of node A and node B during the fault.
    pub(crate) resyncs: (u64, u64),
}

impl Windows {
    /// Bounds every fault must keep: the nodes recover within 20 s, the
    /// writer kept acknowledging, and a failed write was reported as such.
    pub(crate) fn check(&self) {
        assert!(self.recovered < Duration::from_secs(20), "{self:?}");
        assert!(self.fail_closed <= self.recovered, "{self:?}");
        assert!(self.acknowledged > 0, "{self:?}");
        let _ = self.failed_writes; // reported, not bounded: a fault may fail writes
    }
}

/// Traffic on two keycard nodes while `fault` runs: node A logs users in
/// and out (each acknowledged logout is recorded), node B checks a token
/// revoked before the fault (it must never pass) and a good one (200 or
/// 503, nothing else). A monitor samples both views every 2 ms. After the
/// fault, every acknowledged revocation must be refused by A, B and a node
/// C that joins afterwards and learns only from Redis.
pub(crate) async fn under_traffic(
    t: &Target,
    p: &str,
    fault: impl FnOnce() -> std::io::Result<()> + Send + 'static,
) -> Windows {
    let (a_stores, a) = t.node(p).await;
    let (b_stores, b) = t.node(p).await;
    let revoked = a.login("mallory", &json!({})).await.unwrap();
    let good = a.login("alice", &json!({})).await.unwrap();
    let v = a.verifier().verify(&revoked.access_token).await.unwrap();
    a.logout(&v).await.unwrap();
    let (bv, rt) = (b.verifier().clone(), revoked.access_token.clone());
    eventually("B knows the revocation", || {
        futures_now(bv.verify(&rt)).is_err()
    })
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let failed_writes = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (stop, acked, failed, a) = (
            stop.clone(),
            acked.clone(),
            failed_writes.clone(),
            a.clone(),
        );
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let Ok(pair) = a.login(&format!("user{i}"), &json!({})).await else {
                    failed.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                // The verify may answer 503 while A's view is not current.
                let Ok(v) = a.verifier().verify(&pair.access_token).await else {
                    continue;
                };
                match a.logout(&v).await {
                    Ok(()) => acked.lock().unwrap().push(pair.access_token),
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let bad_accepts = Arc::new(AtomicUsize::new(0));
    let checker = {
        let (stop, bad, bv) = (stop.clone(), bad_accepts.clone(), b.verifier().clone());
        let (rt, gt) = (revoked.access_token.clone(), good.access_token.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if bv.verify(&rt).await.is_ok() {
                    bad.fetch_add(1, Ordering::Relaxed);
                }
                if let Err(e) = bv.verify(&gt).await {
                    assert_eq!(e.kind(), AuthErrorKind::StoreUnavailable, "only 503");
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    // Let traffic run, then the fault.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = acked.lock().unwrap().len();
    assert!(
        before > 0,
        "the writer acknowledged revocations before the fault"
    );
    let views = [a_stores.clone(), b_stores.clone()];
    let all_current = |views: &[RedisStores]| views.iter().all(RedisStores::is_current);
    let monitor = {
        let (stop, views) = (stop.clone(), views.clone());
        tokio::spawn(async move {
            let start = Instant::now();
            let (mut detected, mut longest, mut since) = (None, Duration::ZERO, None::<Instant>);
            let mut recovered = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                let now = Instant::now();
                if all_current(&views) {
                    if let Some(s) = since.take() {
                        longest = longest.max(now - s);
                        recovered = now - start;
                    }
                } else {
                    detected.get_or_insert(now - start);
                    since.get_or_insert(now);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (detected, longest, recovered)
        })
    };
    let resyncs_before = (a_stores.resyncs(), b_stores.resyncs());
    tokio::task::spawn_blocking(fault)
        .await
        .unwrap()
        .expect("the fault runs");
    // Traffic goes on until both views are current and writes succeed again.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = acked.lock().unwrap().len();
        tokio::time::sleep(Duration::from_millis(500)).await;
        if all_current(&views) && acked.lock().unwrap().len() > n {
            break;
        }
        assert!(Instant::now() < deadline, "the nodes did not recover");
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    checker.await.unwrap();
    let (detected, fail_closed, recovered) = monitor.await.unwrap();
    assert_eq!(
        bad_accepts.load(Ordering::Relaxed),
        0,
        "a revoked token passed during the fault"
    );

    // Nothing acknowledged is lost: A, B, and a node that learns only from
    // Redis refuse every token whose logout was acknowledged.
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > before,
        "revocations were acknowledged after the fault"
    );
    let (_c_stores, c) = t.node(p).await;
    for node in [&a, &b] {
        let nv = node.verifier().clone();
        let tokens = acked.clone();
        eventually("every acknowledged revocation reached the node", || {
            tokens.iter().all(|t| {
                futures_now(nv.verify(t)).is_err_and(|e| e.kind() == AuthErrorKind::Revoked)
            })
        })
        .await;
    }
    for token in &acked {
        assert_eq!(
            c.verifier().verify(token).await.unwrap_err().kind(),
            AuthErrorKind::Revoked,
            "an acknowledged revocation is missing from the cluster"
        );
    }
    assert!(b.verifier().verify(&good.access_token).await.is_ok());
    Windows {
        detected,
        recovered,
        fail_closed,
        failed_writes: failed_writes.load(Ordering::Relaxed),
        acknowledged: acked.len(),
        resyncs: (
            a_stores.resyncs() - resyncs_before.0,
            b_stores.resyncs() - resyncs_before.1,
        ),
    }
}
