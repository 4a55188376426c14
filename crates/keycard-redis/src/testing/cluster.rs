//! [`RedisCluster`]: a real Redis Cluster with replicas.

use std::io;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{command, free_port, other, scratch_dir, spawn_redis, stop};

/// A throwaway Redis Cluster for tests: `masters` primaries with
/// `replicas` replicas each, every node a `redis-server --cluster-enabled
/// yes` on a free loopback port (node timeout 1 s, so a replica takes over
/// within a few seconds), joined with `redis-cli --cluster create`. Nodes
/// can be killed and restarted (they rejoin with their saved cluster
/// config). Needs `redis-server` and `redis-cli` on `PATH`; killed and
/// cleaned up on drop.
///
/// ```no_run
/// use keycard_redis::testing::RedisCluster;
///
/// let mut cluster = RedisCluster::start(3, 1)?;
/// let seeds = cluster.seeds(); // redis://127.0.0.1:<port> of every node
/// let (primary, _replicas) = cluster.owner_of("{keycard}:rev:seq")?;
/// cluster.kill(primary); // a replica is promoted
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct RedisCluster {
    dir: std::path::PathBuf,
    nodes: Vec<(u16, Option<Child>)>,
}

impl RedisCluster {
    /// Start `masters * (1 + replicas)` nodes, create the cluster, and wait
    /// until every node reports `cluster_state:ok` and agrees on the slots.
    pub fn start(masters: usize, replicas: usize) -> io::Result<Self> {
        let mut cluster = Self {
            dir: scratch_dir("cluster")?,
            nodes: Vec::new(),
        };
        for _ in 0..masters * (1 + replicas) {
            let port = free_port()?;
            cluster.nodes.push((port, None));
            cluster.restart(port)?;
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for (port, _) in &cluster.nodes {
            create.arg(format!("127.0.0.1:{port}"));
        }
        create.args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"]);
        cluster_cli(&mut create, "create")?;
        cluster.wait_healthy(Duration::from_secs(30))?;
        Ok(cluster)
    }

    /// Start (again) the node on `port`, with its saved cluster config.
    pub fn restart(&mut self, port: u16) -> io::Result<()> {
        self.kill(port);
        let conf = self.dir.join(format!("nodes-{port}.conf"));
        let dir = self.dir.clone();
        let child = spawn_redis(port, |cmd| {
            cmd.args(["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"])
                .arg("--cluster-config-file")
                .arg(&conf)
                .arg("--dir")
                .arg(&dir);
        })?;
        if let Some(node) = self.nodes.iter_mut().find(|(p, _)| *p == port) {
            node.1 = Some(child);
        }
        Ok(())
    }

    /// Kill the node on `port` (SIGKILL: no goodbye to the cluster).
    pub fn kill(&mut self, port: u16) {
        if let Some((_, child)) = self.nodes.iter_mut().find(|(p, _)| *p == port) {
            stop(child);
        }
    }

    /// `redis://127.0.0.1:<port>` of every node.
    pub fn seeds(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|(p, _)| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    /// The ports of the nodes that are running.
    pub fn running(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|(_, c)| c.is_some())
            .map(|(p, _)| *p)
            .collect()
    }

    /// Run one command on the node at `port`.
    pub fn command<T: redis::FromRedisValue>(&self, port: u16, cmd: &redis::Cmd) -> io::Result<T> {
        command(port, cmd)
    }

    /// The primary that owns `key`'s slot and its replicas, as the running
    /// nodes see it (`CLUSTER SHARDS`).
    pub fn owner_of(&self, key: &str) -> io::Result<(u16, Vec<u16>)> {
        let first = *self
            .running()
            .first()
            .ok_or_else(|| other("no node runs"))?;
        let slot: i64 = self.command(first, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key))?;
        self.shards()?
            .into_iter()
            .find(|s| s.ranges.iter().any(|(lo, hi)| *lo <= slot && slot <= *hi))
            .map(|s| (s.primary, s.replicas))
            .ok_or_else(|| other(format!("no node knows who owns slot {slot}")))
    }

    /// Move every slot of the primary at `from` to the primary at `to`
    /// with `redis-cli --cluster reshard` (keys migrate with `MIGRATE`),
    /// and wait until the cluster agrees again. Returns how many slots
    /// moved.
    pub fn reshard_all(&self, from: u16, to: u16) -> io::Result<i64> {
        let count: i64 = self
            .shards()?
            .iter()
            .filter(|s| s.primary == from)
            .flat_map(|s| s.ranges.iter().map(|(lo, hi)| hi - lo + 1))
            .sum();
        let mut reshard = Command::new("redis-cli");
        reshard
            .args(["--cluster", "reshard", &format!("127.0.0.1:{from}")])
            .args(["--cluster-from", &self.node_id(from)?])
            .args(["--cluster-to", &self.node_id(to)?])
            .args(["--cluster-slots", &count.to_string(), "--cluster-yes"]);
        cluster_cli(&mut reshard, "reshard")?;
        self.wait_healthy(Duration::from_secs(30))?;
        Ok(count)
    }

    /// The ports of the online primaries that serve slots (a node that is
    /// about to become a replica may still call itself a primary, without
    /// slots, just after the cluster was created).
    pub fn primaries(&self) -> io::Result<Vec<u16>> {
        Ok(self
            .shards()?
            .into_iter()
            .filter(|s| !s.ranges.is_empty())
            .map(|s| s.primary)
            .collect())
    }

    /// The shards as the first running node that answers sees them.
    fn shards(&self) -> io::Result<Vec<Shard>> {
        for port in self.running() {
            if let Ok(v) = self.command::<redis::Value>(port, redis::cmd("CLUSTER").arg("SHARDS")) {
                return Ok(parse_shards(&v));
            }
        }
        Err(other("no node answers CLUSTER SHARDS"))
    }

    /// The node id of the node at `port`.
    pub fn node_id(&self, port: u16) -> io::Result<String> {
        self.command(port, redis::cmd("CLUSTER").arg("MYID"))
    }

    /// Wait until every running node reports `cluster_state:ok` and
    /// `redis-cli --cluster check` finds every slot covered and agreed on.
    pub fn wait_healthy(&self, within: Duration) -> io::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let ok = self.running().iter().all(|port| {
                self.command::<String>(*port, redis::cmd("CLUSTER").arg("INFO"))
                    .is_ok_and(|info| info.contains("cluster_state:ok"))
            }) && self.running().first().is_some_and(|port| {
                Command::new("redis-cli")
                    .args(["--cluster", "check", &format!("127.0.0.1:{port}")])
                    .stdin(Stdio::null())
                    .output()
                    .is_ok_and(|o| {
                        let text = String::from_utf8_lossy(&o.stdout);
                        o.status.success()
                            && text.contains("All nodes agree about slots configuration")
                            && text.contains("All 16384 slots covered")
                    })
            });
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the Redis Cluster did not become healthy",
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// One shard: its slot ranges, its online primary and online replicas.
struct Shard {
    ranges: Vec<(i64, i64)>,
    primary: u16,
    replicas: Vec<u16>,
}

/// The shards of a `CLUSTER SHARDS` reply (RESP2 or RESP3) that have an
/// online primary.
fn parse_shards(shards: &redis::Value) -> Vec<Shard> {
    use redis::Value;
    fn map(v: &Value) -> Vec<(String, &Value)> {
        match v {
            Value::Array(items) => items
                .chunks(2)
                .filter_map(|kv| Some((text(&kv[0]), kv.get(1)?)))
                .collect(),
            Value::Map(pairs) => pairs.iter().map(|(k, v)| (text(k), v)).collect(),
            _ => Vec::new(),
        }
    }
    fn text(v: &Value) -> String {
        match v {
            Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            Value::SimpleString(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            _ => String::new(),
        }
    }
    let Value::Array(shards) = shards else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for shard in shards {
        let fields = map(shard);
        let get = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
        let (Some(Value::Array(slots)), Some(Value::Array(nodes))) = (get("slots"), get("nodes"))
        else {
            continue;
        };
        let ints: Vec<i64> = slots.iter().filter_map(|v| text(v).parse().ok()).collect();
        let ranges = ints
            .chunks(2)
            .filter(|r| r.len() == 2)
            .map(|r| (r[0], r[1]))
            .collect();
        let mut primary = None;
        let mut replicas = Vec::new();
        for node in nodes {
            let f = map(node);
            let get = |name: &str| f.iter().find(|(k, _)| k == name).map(|(_, v)| text(v));
            if get("health").as_deref() != Some("online") {
                continue;
            }
            let Some(Ok(port)) = get("port").map(|p| p.parse::<u16>()) else {
                continue;
            };
            if get("role").as_deref() == Some("master") {
                primary = Some(port);
            } else {
                replicas.push(port);
            }
        }
        if let Some(primary) = primary {
            out.push(Shard {
                ranges,
                primary,
                replicas,
            });
        }
    }
    out
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for port in self.running() {
            self.kill(port);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Run one `redis-cli --cluster <what>` command to completion.
fn cluster_cli(cmd: &mut Command, what: &str) -> io::Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run redis-cli: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(other(format!(
            "redis-cli --cluster {what} failed: {}",
            String::from_utf8_lossy(&out.stdout)
        )))
    }
}
