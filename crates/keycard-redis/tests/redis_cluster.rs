//! The stores on a real Redis Cluster: three primaries with a replica each,
//! started by the test (`redis-server --cluster-enabled yes`, joined with
//! `redis-cli --cluster create`). The same store suite as on one server,
//! then the faults a cluster adds: the primary that owns keycard's slot
//! dies and a replica takes over, and keycard's slot moves to another
//! primary (`redis-cli --cluster reshard`), both while traffic runs. No
//! acknowledged revocation may be lost and no revoked token may pass; the
//! fail-closed windows are measured and printed.

mod suite;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keycard_redis::testing::RedisCluster;
use suite::{prefix, under_traffic, Target};

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
    let exp = Duration::from_secs(60);
    // An empty prefix cannot be a hash tag: refused with a clear error.
    let err = keycard_redis::RedisStores::connect_with(t.config(""))
        .await
        .expect_err("an empty prefix in a cluster");
    assert!(err.to_string().contains("non-empty key prefix"), "{err}");
    // WAIT cannot be pinned to the node that took a write: refused.
    let err = keycard_redis::RedisStores::connect_with(t.config(&p).wait_for_replicas(1))
        .await
        .expect_err("wait_for_replicas with a cluster");
    assert!(
        err.to_string()
            .contains("not supported with a Redis Cluster"),
        "{err}"
    );
    // Proof keys spread over the shards, and each is first used once.
    for i in 0..32 {
        let key = format!("proof-{i}");
        assert!(replay.first_use(&key, exp).await.unwrap());
        assert!(!replay.first_use(&key, exp).await.unwrap());
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
