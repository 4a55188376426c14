//! Measures how long a revocation on one node takes to reach another node's
//! local view, through a real Redis.
//!
//! `cargo run --release -p keycard-redis --example propagation [-- N]`
//! uses `KEYCARD_REDIS_URL` (default `redis://127.0.0.1:6379`) and a unique
//! key prefix, so it never touches other data.

use std::time::{Duration, Instant};

use keycard_core::{unix_now, TokenFacts};
use keycard_redis::{RedisConfig, RedisStores};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url =
        std::env::var("KEYCARD_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let n: usize = std::env::args().nth(1).map_or(Ok(500), |s| s.parse())?;
    let prefix = format!("kc-propagation-{}:", std::process::id());
    let a = RedisStores::connect_with(RedisConfig::new(&url).prefix(&prefix)).await?;
    let b = RedisStores::connect_with(RedisConfig::new(&url).prefix(&prefix)).await?;
    let (ra, rb) = (a.revocation(), b.revocation());
    let exp = unix_now() + 120;
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let jti = format!("measure-{i}");
        let start = Instant::now();
        ra.revoke_token(&jti, exp).await?;
        let acked = start.elapsed();
        let facts = TokenFacts::new(exp).jti(&jti);
        while !rb.is_revoked(&facts)? {
            if start.elapsed() > Duration::from_secs(5) {
                return Err("a revocation did not arrive within 5 s".into());
            }
            tokio::task::yield_now().await;
        }
        samples.push((start.elapsed(), acked));
    }
    samples.sort();
    let pct = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize].0;
    let mut acks: Vec<_> = samples.iter().map(|s| s.1).collect();
    acks.sort();
    println!("revocation propagation to a second node, {n} samples, {url}");
    println!(
        "  write acknowledged: median {:?}; visible on the other node: min {:?}  median {:?}  p99 {:?}  max {:?}",
        acks[acks.len() / 2],
        samples[0].0,
        pct(0.5),
        pct(0.99),
        samples[samples.len() - 1].0
    );
    let client = redis::Client::open(url.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await?;
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL").arg(keys).query_async(&mut conn).await?;
    }
    Ok(())
}
