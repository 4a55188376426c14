//! Throwaway Redis for tests: a `redis-server` started on a free loopback
//! port, no persistence, stoppable and restartable on the same port so a
//! test can simulate an outage ([`RedisServer`]); a real Redis Cluster with
//! replicas ([`RedisCluster`]); and a fault-injecting proxy
//! ([`FaultProxy`]). Needs `redis-server` (and `redis-cli` for a cluster)
//! on `PATH`.
//!
//! ```no_run
//! use keycard_redis::testing::RedisServer;
//!
//! let mut redis = RedisServer::start()?;
//! let url = redis.url(); // redis://127.0.0.1:<port>
//! redis.kill();          // an outage...
//! redis.restart()?;      // ...and recovery, empty, on the same port
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` child process, killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Start a server on a free loopback port and wait until it accepts
    /// connections.
    pub fn start() -> io::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut server = Self { port, child: None };
        server.restart()?;
        Ok(server)
    }

    /// Start (again) on the same port, with no data.
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start redis-server: {e}")))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "redis-server did not start",
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Stop the server (an outage); [`RedisServer::restart`] brings it back.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A fault-injecting TCP proxy in front of a real `redis-server`, for tests
/// of what the network does to a cluster: it forwards both ways, and on
/// request silences the subscriber connections (drops Redis→client bytes
/// of any connection that sent `SUBSCRIBE`, while keeping the socket open,
/// as a NAT or firewall that dropped the flow would) or holds replies on
/// the command connections for a while (a reply that misses the client's
/// timeout).
///
/// ```no_run
/// use keycard_redis::testing::{FaultProxy, RedisServer};
///
/// let redis = RedisServer::start()?;
/// let proxy = FaultProxy::start(redis.port())?;
/// let url = proxy.url(); // connect a node through the proxy
/// proxy.silence_subscribers(true);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct FaultProxy {
    port: u16,
    state: std::sync::Arc<ProxyState>,
}

#[derive(Debug, Default)]
struct ProxyState {
    silence_subscribers: std::sync::atomic::AtomicBool,
    hold_until: std::sync::Mutex<Option<Instant>>,
    dropped: std::sync::atomic::AtomicU64,
    stop: std::sync::atomic::AtomicBool,
}

impl FaultProxy {
    /// Listen on a free loopback port and forward to `127.0.0.1:upstream`.
    pub fn start(upstream: u16) -> io::Result<Self> {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let state = std::sync::Arc::new(ProxyState::default());
        let st = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if st.stop.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let subscriber = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                let (c2, s2) = match (client.try_clone(), server.try_clone()) {
                    (Ok(c), Ok(s)) => (c, s),
                    _ => continue,
                };
                let (st1, sub1) = (st.clone(), subscriber.clone());
                std::thread::spawn(move || pump_up(client, server, &st1, &sub1));
                let st2 = st.clone();
                std::thread::spawn(move || pump_down(s2, c2, &st2, &subscriber));
            }
        });
        Ok(Self { port, state })
    }

    /// `redis://127.0.0.1:<proxy port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Drop (or stop dropping) every byte Redis sends to subscriber
    /// connections, keeping their sockets open.
    pub fn silence_subscribers(&self, on: bool) {
        self.state
            .silence_subscribers
            .store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// Hold every byte Redis sends on command (non-subscriber) connections
    /// for `d` from now, then deliver it: replies that arrive too late.
    pub fn hold_replies_for(&self, d: Duration) {
        *self
            .state
            .hold_until
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + d);
    }

    /// How many Redis→subscriber bytes were dropped so far.
    pub fn dropped_bytes(&self) -> u64 {
        self.state.dropped.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.state
            .stop
            .store(true, std::sync::atomic::Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Client → Redis: forward, and notice subscriptions.
fn pump_up(
    mut from: std::net::TcpStream,
    mut to: std::net::TcpStream,
    st: &ProxyState,
    subscriber: &std::sync::atomic::AtomicBool,
) {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;
    let mut buf = [0u8; 16 * 1024];
    loop {
        if st.stop.load(Ordering::Relaxed) {
            break;
        }
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        if chunk
            .windows(9)
            .any(|w| w.eq_ignore_ascii_case(b"SUBSCRIBE"))
        {
            subscriber.store(true, Ordering::SeqCst);
        }
        if to.write_all(chunk).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

/// Redis → client: forward, drop, or hold, as the faults say.
fn pump_down(
    mut from: std::net::TcpStream,
    mut to: std::net::TcpStream,
    st: &ProxyState,
    subscriber: &std::sync::atomic::AtomicBool,
) {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;
    let mut buf = [0u8; 16 * 1024];
    loop {
        if st.stop.load(Ordering::Relaxed) {
            break;
        }
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let is_sub = subscriber.load(Ordering::SeqCst);
        if is_sub && st.silence_subscribers.load(Ordering::SeqCst) {
            st.dropped.fetch_add(n as u64, Ordering::SeqCst);
            continue;
        }
        if !is_sub {
            let until = *st.hold_until.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(until) = until {
                let now = Instant::now();
                if until > now {
                    std::thread::sleep(until - now);
                }
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

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

fn free_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl RedisCluster {
    /// Start `masters * (1 + replicas)` nodes, create the cluster, and wait
    /// until every node reports `cluster_state:ok` and agrees on the slots.
    pub fn start(masters: usize, replicas: usize) -> io::Result<Self> {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "keycard-redis-cluster-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        let mut cluster = Self {
            dir,
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
        let out = create
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot run redis-cli: {e}")))?;
        if !out.status.success() {
            return Err(other(format!(
                "redis-cli --cluster create failed: {}",
                String::from_utf8_lossy(&out.stdout)
            )));
        }
        cluster.wait_healthy(Duration::from_secs(30))?;
        Ok(cluster)
    }

    /// Start (again) the node on `port`, with its saved cluster config.
    pub fn restart(&mut self, port: u16) -> io::Result<()> {
        self.kill(port);
        let conf = self.dir.join(format!("nodes-{port}.conf"));
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"])
            .arg("--cluster-config-file")
            .arg(&conf)
            .arg("--dir")
            .arg(&self.dir)
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start redis-server: {e}")))?;
        if let Some(node) = self.nodes.iter_mut().find(|(p, _)| *p == port) {
            node.1 = Some(child);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "redis-server did not start",
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Kill the node on `port` (SIGKILL: no goodbye to the cluster).
    pub fn kill(&mut self, port: u16) {
        if let Some((_, child)) = self.nodes.iter_mut().find(|(p, _)| *p == port) {
            if let Some(mut c) = child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
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
        let out = Command::new("redis-cli")
            .args(["--cluster", "reshard", &format!("127.0.0.1:{from}")])
            .args(["--cluster-from", &self.node_id(from)?])
            .args(["--cluster-to", &self.node_id(to)?])
            .args(["--cluster-slots", &count.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()?;
        if !out.status.success() {
            return Err(other(format!(
                "redis-cli --cluster reshard failed: {}",
                String::from_utf8_lossy(&out.stdout)
            )));
        }
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

/// A throwaway Sentinel deployment for tests: a primary, `replicas`
/// replicas, and three `redis-server --sentinel` processes (quorum 2,
/// `down-after-milliseconds` 1000) watching it under the service name
/// `keycard`. Killed and cleaned up on drop.
///
/// ```no_run
/// use keycard_redis::testing::RedisSentinel;
///
/// let mut set = RedisSentinel::start(1)?;
/// let sentinels = set.sentinels(); // redis://127.0.0.1:<port> of each sentinel
/// let primary = set.primary()?;
/// set.kill(primary); // the sentinels promote the replica
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct RedisSentinel {
    dir: std::path::PathBuf,
    servers: Vec<(u16, Option<Child>)>,
    sentinels: Vec<(u16, Option<Child>)>,
}

impl RedisSentinel {
    /// The service name the sentinels monitor.
    pub const SERVICE: &'static str = "keycard";

    /// Start a primary, its replicas and three sentinels, and wait until
    /// the sentinels agree on the primary and see every replica.
    pub fn start(replicas: usize) -> io::Result<Self> {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "keycard-redis-sentinel-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        let mut set = Self {
            dir,
            servers: Vec::new(),
            sentinels: Vec::new(),
        };
        let primary = free_port()?;
        set.servers.push((primary, None));
        set.restart_server(primary, None)?;
        for _ in 0..replicas {
            let port = free_port()?;
            set.servers.push((port, None));
            set.restart_server(port, Some(primary))?;
        }
        for i in 0..3 {
            let port = free_port()?;
            let conf = set.dir.join(format!("sentinel-{i}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                     sentinel monitor {svc} 127.0.0.1 {primary} 2\n\
                     sentinel down-after-milliseconds {svc} 1000\n\
                     sentinel failover-timeout {svc} 5000\n\
                     sentinel parallel-syncs {svc} 1\n",
                    dir = set.dir.display(),
                    svc = Self::SERVICE,
                ),
            )?;
            let child = Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("cannot start redis-server --sentinel: {e}"),
                    )
                })?;
            set.sentinels.push((port, Some(child)));
            wait_for_port(port)?;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let seen = set.sentinels.iter().all(|(port, _)| {
                command::<Vec<std::collections::HashMap<String, String>>>(
                    *port,
                    redis::cmd("SENTINEL").arg("REPLICAS").arg(Self::SERVICE),
                )
                .is_ok_and(|r| {
                    r.len() == replicas
                        && r.iter().all(|m| {
                            m.get("flags").is_some_and(|f| f == "slave")
                                && m.get("master-link-status").is_some_and(|s| s == "ok")
                        })
                })
            });
            if seen {
                return Ok(set);
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the sentinels did not see every replica",
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn restart_server(&mut self, port: u16, replica_of: Option<u16>) -> io::Result<()> {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir);
        if let Some(primary) = replica_of {
            cmd.args(["--replicaof", "127.0.0.1", &primary.to_string()]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start redis-server: {e}")))?;
        if let Some(s) = self.servers.iter_mut().find(|(p, _)| *p == port) {
            s.1 = Some(child);
        }
        wait_for_port(port)
    }

    /// `redis://127.0.0.1:<port>` of each sentinel.
    pub fn sentinels(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|(p, _)| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    /// The primary's port, as the first sentinel that answers names it.
    pub fn primary(&self) -> io::Result<u16> {
        for (port, child) in &self.sentinels {
            if child.is_none() {
                continue;
            }
            if let Ok((_, p)) = command::<(String, u16)>(
                *port,
                redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg(Self::SERVICE),
            ) {
                return Ok(p);
            }
        }
        Err(other("no sentinel names a primary"))
    }

    /// Ask a sentinel for a failover now (`SENTINEL FAILOVER`: the primary
    /// is demoted and a replica promoted, without waiting for agreement).
    pub fn failover(&self) -> io::Result<()> {
        let port = self.sentinels[0].0;
        let _: String = command(
            port,
            redis::cmd("SENTINEL").arg("FAILOVER").arg(Self::SERVICE),
        )?;
        Ok(())
    }

    /// Kill the Redis server on `port` (SIGKILL).
    pub fn kill(&mut self, port: u16) {
        if let Some((_, child)) = self.servers.iter_mut().find(|(p, _)| *p == port) {
            if let Some(mut c) = child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// Kill sentinel number `i` (0, 1 or 2).
    pub fn kill_sentinel(&mut self, i: usize) {
        if let Some((_, child)) = self.sentinels.get_mut(i) {
            if let Some(mut c) = child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// The replicas' ports.
    pub fn replicas(&self) -> io::Result<Vec<u16>> {
        let primary = self.primary()?;
        Ok(self
            .servers
            .iter()
            .filter(|(p, c)| *p != primary && c.is_some())
            .map(|(p, _)| *p)
            .collect())
    }

    /// Run one command on the Redis server (or sentinel) at `port`.
    pub fn command<T: redis::FromRedisValue>(&self, port: u16, cmd: &redis::Cmd) -> io::Result<T> {
        command(port, cmd)
    }
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        for (_, child) in self.servers.iter_mut().chain(self.sentinels.iter_mut()) {
            if let Some(mut c) = child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn command<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> io::Result<T> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).map_err(other)?;
    let mut conn = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .map_err(other)?;
    cmd.query(&mut conn).map_err(other)
}

fn wait_for_port(port: u16) -> io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "redis-server did not start",
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}
