//! The stores behind Redis Sentinel: a primary, one replica and three
//! sentinels, started by the test. The same store suite as on one server,
//! then failovers while traffic runs: the primary killed (the sentinels
//! agree it is down and promote the replica) and a planned
//! `SENTINEL FAILOVER` (the primary is demoted and stays up, so only the
//! role check notices). No acknowledged revocation may be lost and no
//! revoked token may pass; the fail-closed windows are measured and
//! printed.

mod suite;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keycard_redis::testing::RedisSentinel;
use suite::{prefix, under_traffic, Target};

fn sentinel() -> (RedisSentinel, Target) {
    let set = RedisSentinel::start(1).expect("a primary, a replica and three sentinels start");
    let target = Target::Sentinel(set.sentinels());
    (set, target)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_suite_passes_behind_sentinel() {
    let (_set, t) = sentinel();
    suite::logout_on_one_node_is_refused_on_the_other(&t).await;
    suite::rotation_is_atomic_across_nodes_and_reuse_revokes_everywhere(&t).await;
    suite::stored_ttls_match_token_lifetimes(&t).await;
}

/// The role a server reports (`master`, `slave`), if it answers.
fn role(set: &RedisSentinel, port: u16) -> Option<String> {
    let r = set
        .command::<Vec<redis::Value>>(port, &redis::cmd("ROLE"))
        .ok()?;
    match r.first() {
        Some(redis::Value::BulkString(b)) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

/// Wait (off the runtime) until the failover is complete: the sentinels
/// name a primary other than `old`, it is a primary, and `old`, if it is
/// still up, has been demoted. (Until then two servers call themselves
/// primary, and writes the old one acknowledges are lost when it is
/// demoted: the nodes that made them write them again.)
fn new_primary(set: &RedisSentinel, old: u16) -> std::io::Result<u16> {
    new_primary_within(set, old, Duration::from_secs(30))
}

fn new_primary_within(set: &RedisSentinel, old: u16, wait: Duration) -> std::io::Result<u16> {
    let deadline = Instant::now() + wait;
    loop {
        if let Ok(p) = set.primary() {
            let old_role = role(set, old);
            if p != old
                && role(set, p).as_deref() == Some("master")
                && old_role.as_deref() != Some("master")
            {
                return Ok(p);
            }
        }
        if Instant::now() > deadline {
            return Err(std::io::Error::other(
                "the sentinels did not promote the replica",
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_primary_dies_and_nothing_acknowledged_is_lost() {
    let (set, t) = sentinel();
    let old = set.primary().unwrap();
    let set = Arc::new(Mutex::new(set));
    let s = set.clone();
    let w = under_traffic(&t, &prefix(), move || {
        let mut s = s.lock().unwrap();
        s.kill(old);
        new_primary(&s, old).map(|_| ())
    })
    .await;
    assert!(w.detected.is_some(), "the views failed closed: {w:?}");
    assert!(
        w.resyncs.0 >= 1 && w.resyncs.1 >= 1,
        "both nodes resynced: {w:?}"
    );
    w.check();
    println!("sentinel failover (SIGKILL of the primary, down-after 1 s): {w:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_failover_demotes_the_primary_and_the_nodes_follow() {
    let (set, t) = sentinel();
    let old = set.primary().unwrap();
    let set = Arc::new(set);
    let s = set.clone();
    let w = under_traffic(&t, &prefix(), move || {
        // A planned failover that does not finish within the sentinels'
        // failover-timeout (5 s; a loaded machine can take that long) is
        // abandoned by them: ask again, within a bound.
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let asked = s.failover();
            match new_primary_within(&s, old, Duration::from_secs(20)) {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => return asked.and(Err(e)),
                Err(_) => continue,
            }
        }
    })
    .await;
    assert!(
        w.resyncs.0 >= 1 && w.resyncs.1 >= 1,
        "both nodes moved: {w:?}"
    );
    w.check();
    println!("planned sentinel failover (SENTINEL FAILOVER): {w:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_can_wait_for_a_replica_and_fail_without_one() {
    let (mut set, t) = sentinel();
    let p = prefix();
    let stores = keycard_redis::RedisStores::connect_with(t.config(&p).wait_for_replicas(1))
        .await
        .unwrap();
    let revocations = stores.revocation();
    let exp = keycard_core::unix_now() + 600;
    revocations
        .revoke_token("on-a-replica-too", exp)
        .await
        .expect("the replica confirms the write");
    // The announcement came back before the acknowledgement (WAIT takes
    // a replica round trip): no spurious rewrite of the settled write.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(stores.is_current());
    assert_eq!(stores.rewrites(), 0, "a settled write was written again");
    for replica in set.replicas().unwrap() {
        set.kill(replica);
    }
    let err = revocations
        .revoke_token("on-the-primary-alone", exp)
        .await
        .expect_err("no replica: the write is not acknowledged");
    assert!(err.to_string().contains("replicas required"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_hears_no_majority_of_sentinels_fails_closed() {
    let (mut set, t) = sentinel();
    let p = prefix();
    let (stores, _) = t.node(&p).await;
    assert!(stores.is_current());
    // Cut off from two of three sentinels: it cannot tell whether a
    // failover happened elsewhere.
    set.kill_sentinel(1);
    set.kill_sentinel(2);
    let deadline = Instant::now() + Duration::from_secs(10);
    while stores.is_current() {
        assert!(Instant::now() < deadline, "the node kept answering");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Nor does it write: the primary it knows may be an old one that a
    // majority has already replaced.
    let exp = keycard_core::unix_now() + 600;
    assert!(
        stores
            .revocation()
            .revoke_token("on-the-minority-side", exp)
            .await
            .is_err(),
        "a write without a majority's word on the primary"
    );
    let fresh = keycard_redis::RedisStores::connect_with(t.config(&p)).await;
    assert!(
        fresh.as_ref().map_or(true, |s| !s.is_current()),
        "a node that starts now is not current either"
    );
}
