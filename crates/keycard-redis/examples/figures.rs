//! The Redis stores' figures, measured against real servers that this
//! program starts itself (one `redis-server`, a 3-primary Redis Cluster
//! with replicas, and a Sentinel set), so it needs `redis-server` and
//! `redis-cli` on `PATH` and nothing else:
//!
//! ```sh
//! cargo run --release -p keycard-redis --example figures [-- SAMPLES]
//! ```
//!
//! 1. The cost of one revocation write (acknowledged by Redis), next to a
//!    plain `SET` round trip on the same server in the same run (the floor
//!    any acknowledged write pays), as a ratio.
//! 2. Propagation: from the start of the write on node A until node B's
//!    local view refuses the token (p50/p99; the announcement usually
//!    reaches B before the acknowledgement reaches A).
//! 3. Memory: the growth of this process's resident set when a node loads
//!    a view of 1M live revocations, and how long that load (a resync)
//!    takes.
//! 4. Recovery after a failover: from the primary's death until a node's
//!    view is current again and a write is acknowledged, in a cluster
//!    (node timeout 1 s) and behind Sentinel (down-after 1 s).

use std::time::{Duration, Instant};

use keycard_core::{unix_now, TokenFacts};
use keycard_redis::testing::{RedisCluster, RedisSentinel, RedisServer};
use keycard_redis::{RedisConfig, RedisStores};

type Error = Box<dyn std::error::Error>;

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Write cost and propagation between two nodes on `config`; `floor`
/// measures one plain round trip to the same deployment.
async fn writes_and_propagation(
    name: &str,
    config: impl Fn() -> RedisConfig,
    floor: impl AsyncFn() -> Result<(), Error>,
    n: usize,
) -> Result<(), Error> {
    let a = RedisStores::connect_with(config()).await?;
    let b = RedisStores::connect_with(config()).await?;
    let (ra, rb) = (a.revocation(), b.revocation());
    let exp = unix_now() + 600;
    let (mut writes, mut floors, mut seen) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        // Interleaved, so both see the same machine.
        let start = Instant::now();
        floor().await?;
        floors.push(start.elapsed());
        let jti = format!("figure-{i}");
        let start = Instant::now();
        ra.revoke_token(&jti, exp).await?;
        writes.push(start.elapsed());
        let facts = TokenFacts::new(exp).jti(&jti);
        while !rb.is_revoked(&facts)? {
            if start.elapsed() > Duration::from_secs(5) {
                return Err("a revocation did not arrive within 5 s".into());
            }
            tokio::task::yield_now().await;
        }
        seen.push(start.elapsed());
    }
    for v in [&mut writes, &mut floors, &mut seen] {
        v.sort();
    }
    let ratio = writes[n / 2].as_secs_f64() / floors[n / 2].as_secs_f64();
    println!("{name}, {n} samples:");
    println!(
        "  revocation write: median {:?}  p99 {:?}; plain SET round trip: median {:?}  p99 {:?}; ratio {ratio:.2}",
        pct(&writes, 0.5),
        pct(&writes, 0.99),
        pct(&floors, 0.5),
        pct(&floors, 0.99),
    );
    println!(
        "  from the start of the write until the second node refuses the token: p50 {:?}  p99 {:?}  max {:?}",
        pct(&seen, 0.5),
        pct(&seen, 0.99),
        seen[n - 1]
    );
    Ok(())
}

/// Load 1M live revocations into Redis, then measure a node loading them.
async fn memory_at_a_million(url: &str) -> Result<(), Error> {
    const N: usize = 1_000_000;
    let prefix = format!("kc-figures-{}:", std::process::id());
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let exp = unix_now() + 3600;
    for chunk in 0..N / 10_000 {
        let mut zadd = redis::cmd("ZADD");
        zadd.arg(format!("{prefix}rev:jti"));
        for i in chunk * 10_000..(chunk + 1) * 10_000 {
            // A jti as keycard issues them: 22 characters.
            zadd.arg(exp).arg(format!("{i:022}"));
        }
        let _: i64 = zadd.query_async(&mut conn).await?;
    }
    let before = rss_bytes();
    let start = Instant::now();
    let node = RedisStores::connect_with(
        RedisConfig::new(url)
            .prefix(&prefix)
            .timeout(Duration::from_secs(5)),
    )
    .await?;
    if !node.wait_current(Duration::from_secs(60)).await {
        return Err("the view did not load".into());
    }
    let loaded = start.elapsed();
    let grown = rss_bytes().saturating_sub(before);
    let store = node.revocation();
    assert!(store.is_revoked(&TokenFacts::new(exp).jti(&format!("{:022}", N - 1)))?);
    println!("local view at 1M live revocations (22-character jti):");
    println!(
        "  resident set grew by {:.0} MiB ({:.0} bytes per entry); loading it (a resync) took {loaded:?}",
        grown as f64 / (1 << 20) as f64,
        grown as f64 / N as f64
    );
    let _: i64 = redis::cmd("DEL")
        .arg(format!("{prefix}rev:jti"))
        .query_async(&mut conn)
        .await?;
    Ok(())
}

/// From the kill until a node is current again and a write is
/// acknowledged.
async fn recovery(
    name: &str,
    node: &RedisStores,
    kill: impl FnOnce() -> Result<(), Error>,
) -> Result<(), Error> {
    let store = node.revocation();
    let exp = unix_now() + 600;
    store.revoke_token("before-the-failover", exp).await?;
    let start = Instant::now();
    kill()?;
    let mut i = 0;
    loop {
        i += 1;
        if node.is_current() && store.revoke_token(&format!("after-{i}"), exp).await.is_ok() {
            break;
        }
        if start.elapsed() > Duration::from_secs(60) {
            return Err("no recovery within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let recovered = start.elapsed();
    assert!(store.is_revoked(&TokenFacts::new(exp).jti("before-the-failover"))?);
    println!(
        "  {name}: view current and a write acknowledged {recovered:?} after the primary died"
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let n: usize = std::env::args().nth(1).map_or(Ok(1000), |s| s.parse())?;

    let server = RedisServer::start()?;
    let url = server.url();
    let client = redis::Client::open(url.as_str())?;
    let plain = client.get_multiplexed_async_connection().await?;
    let prefix = format!("kc-figures-{}-one:", std::process::id());
    writes_and_propagation(
        "one redis-server",
        || RedisConfig::new(&url).prefix(&prefix),
        async || {
            let mut c = plain.clone();
            let _: () = redis::cmd("SET")
                .arg("floor")
                .arg(1)
                .query_async(&mut c)
                .await?;
            Ok(())
        },
        n,
    )
    .await?;

    let mut cluster = RedisCluster::start(3, 1)?;
    let seeds = cluster.seeds();
    let cc = redis::cluster::ClusterClient::new(seeds.clone())?;
    let cplain = cc.get_async_connection().await?;
    let prefix = format!("kc-figures-{}-cluster:", std::process::id());
    writes_and_propagation(
        "Redis Cluster (3 primaries, 3 replicas)",
        || RedisConfig::cluster(seeds.clone()).prefix(&prefix),
        async || {
            let mut c = cplain.clone();
            let _: () = redis::cmd("SET")
                .arg("{kc-figures}floor")
                .arg(1)
                .query_async(&mut c)
                .await?;
            Ok(())
        },
        n,
    )
    .await?;

    memory_at_a_million(&url).await?;

    println!("recovery after a failover:");
    let prefix = format!("kc-figures-{}-failover:", std::process::id());
    let node =
        RedisStores::connect_with(RedisConfig::cluster(seeds.clone()).prefix(&prefix)).await?;
    let key = format!("{{{}}}:rev:seq", prefix.trim_end_matches(':'));
    let (primary, _) = cluster.owner_of(&key)?;
    recovery(
        "Redis Cluster, SIGKILL of the slot's primary (node timeout 1 s)",
        &node,
        || {
            cluster.kill(primary);
            Ok(())
        },
    )
    .await?;

    let mut sentinel = RedisSentinel::start(1)?;
    let node = RedisStores::connect_with(
        RedisConfig::sentinel(sentinel.sentinels(), RedisSentinel::SERVICE).prefix(&prefix),
    )
    .await?;
    let primary = sentinel.primary()?;
    recovery(
        "Sentinel, SIGKILL of the primary (down-after 1 s, quorum 2 of 3)",
        &node,
        || {
            sentinel.kill(primary);
            Ok(())
        },
    )
    .await?;
    Ok(())
}
