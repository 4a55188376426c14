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
