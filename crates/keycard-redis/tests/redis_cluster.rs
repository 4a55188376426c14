//! The stores on a real Redis Cluster: three primaries with a replica each,
//! started by the test (`redis-server --cluster-enabled yes`, joined with
//! `redis-cli --cluster create`). The same store suite as on one server,
//! then the faults a cluster adds: the primary that owns keycard's slot
//! dies and a replica takes over, and keycard's slot moves to another
//! primary (`redis-cli --cluster reshard`), both while traffic runs. No
//! acknowledged revocation may be lost and no revoked token may pass; the
//! fail-closed windows are measured and printed.

mod suite;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keycard_core::AuthErrorKind;
use keycard_redis::testing::RedisCluster;
use keycard_redis::RedisStores;
use serde_json::json;
use suite::{eventually, prefix, Target};

fn cluster() -> (RedisCluster, Target) {
    let cluster = RedisCluster::start(3, 1).expect("a 3-primary Redis Cluster starts");
    let target = Target::Cluster(cluster.seeds());
    (cluster, target)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_suite_passes_on_a_cluster() {
    let (_cluster, t) = cluster();
    suite::logout_on_one_node_is_refused_on_the_other(&t).await;
    suite::rotation_is_atomic_across_nodes_and_reuse_revokes_everywhere(&t).await;
    suite::stored_ttls_match_token_lifetimes(&t).await;
    let p = prefix();
    let (stores, _) = t.node(&p).await;
    let replay = stores.dpop_replay();
    let exp = (std::time::SystemTime::now() + Duration::from_secs(60))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // Proof keys spread over the shards, and each is first used once.
    for i in 0..32 {
        let key = format!("proof-{i}");
        assert!(replay.first_use(&key, exp).await.unwrap());
        assert!(!replay.first_use(&key, exp).await.unwrap());
    }
}

/// What a fault did, as the nodes saw it.
#[derive(Debug)]
struct Windows {
    /// From the fault until a node's view stopped being current.
    detected: Option<Duration>,
    /// From the fault until every node's view was current again.
    recovered: Duration,
    /// Longest stretch in which some node's view was not current (checks
    /// answered 503).
    fail_closed: Duration,
    /// Writes that failed (reported as errors, never as successes).
    failed_writes: usize,
    /// Revocations acknowledged during the run.
    acknowledged: usize,
    /// Resyncs of node A and node B during the fault.
    resyncs: (u64, u64),
}

impl Windows {
    /// Bounds every fault must keep: the nodes recover within 20 s, the
    /// writer kept acknowledging, and a failed write was reported as such.
    fn check(&self) {
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
async fn under_traffic(
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
        suite::futures_now(bv.verify(&rt)).is_err()
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
                suite::futures_now(nv.verify(t)).is_err_and(|e| e.kind() == AuthErrorKind::Revoked)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_primary_of_keycards_slot_dies_and_nothing_acknowledged_is_lost() {
    let (cluster, t) = cluster();
    let cluster = Arc::new(Mutex::new(cluster));
    let p = prefix();
    let key = t.key(&p, "rev:seq");
    let deadline = Instant::now() + Duration::from_secs(20);
    let (primary, _) = loop {
        let (primary, replicas) = cluster.lock().unwrap().owner_of(&key).unwrap();
        if !replicas.is_empty() {
            break (primary, replicas);
        }
        assert!(Instant::now() < deadline, "the owner has no online replica");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let c = cluster.clone();
    let w = under_traffic(&t, &p, move || {
        let mut c = c.lock().unwrap();
        c.kill(primary);
        // A replica takes over (node timeout 1 s).
        c.wait_healthy(Duration::from_secs(30))
    })
    .await;
    let (now_primary, _) = cluster.lock().unwrap().owner_of(&key).unwrap();
    assert_ne!(now_primary, primary, "a replica was promoted");
    assert!(
        w.detected.is_some(),
        "the nodes noticed the failover: {w:?}"
    );
    w.check();
    println!("failover (SIGKILL of the primary, node timeout 1 s): {w:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keycards_slot_moves_to_another_primary_while_traffic_runs() {
    let (cluster, t) = cluster();
    let p = prefix();
    let key = t.key(&p, "rev:seq");
    let (from, _) = cluster.owner_of(&key).unwrap();
    let to = cluster
        .primaries()
        .unwrap()
        .into_iter()
        .find(|port| *port != from)
        .unwrap();
    let cluster = Arc::new(cluster);
    let c = cluster.clone();
    let w = under_traffic(&t, &p, move || c.reshard_all(from, to).map(|_| ())).await;
    assert_eq!(
        cluster.owner_of(&key).unwrap().0,
        to,
        "keycard's slot moved"
    );
    assert!(
        w.resyncs.0 >= 1 && w.resyncs.1 >= 1,
        "both nodes resynced on the slot's new owner: {w:?}"
    );
    w.check();
    println!("resharding (every slot of the owner moved with redis-cli --cluster reshard): {w:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_failover_of_keycards_slot_keeps_every_revocation() {
    let (cluster, t) = cluster();
    let p = prefix();
    let key = t.key(&p, "rev:seq");
    let deadline = Instant::now() + Duration::from_secs(20);
    let (primary, replica) = loop {
        let (primary, replicas) = cluster.owner_of(&key).unwrap();
        if let Some(r) = replicas.first() {
            break (primary, *r);
        }
        assert!(Instant::now() < deadline, "the owner has no online replica");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let cluster = Arc::new(cluster);
    let c = cluster.clone();
    let w = under_traffic(&t, &p, move || {
        // The replica asks its primary to hand over (no data loss).
        let _: String = c.command(replica, redis::cmd("CLUSTER").arg("FAILOVER"))?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while c.owner_of(&key)?.0 != replica {
            if Instant::now() > deadline {
                return Err(std::io::Error::other("the replica did not take over"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        c.wait_healthy(Duration::from_secs(30))
    })
    .await;
    assert_ne!(cluster.owner_of(&t.key(&p, "rev:seq")).unwrap().0, primary);
    assert!(
        w.resyncs.0 >= 1 && w.resyncs.1 >= 1,
        "both nodes resynced: {w:?}"
    );
    w.check();
    println!("planned failover (CLUSTER FAILOVER on the replica): {w:?}");
}
