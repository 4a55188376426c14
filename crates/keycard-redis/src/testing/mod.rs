//! Throwaway Redis for tests: a `redis-server` started on a free loopback
//! port, no persistence, stoppable and restartable on the same port so a
//! test can simulate an outage ([`RedisServer`]); a real Redis Cluster with
//! replicas ([`RedisCluster`]); a Sentinel set ([`RedisSentinel`]); and a
//! fault-injecting proxy ([`FaultProxy`]). Needs `redis-server` (and `redis-cli` for a cluster)
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

mod cluster;
mod proxy;
mod sentinel;

use std::io;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use cluster::RedisCluster;
pub use proxy::FaultProxy;
pub use sentinel::RedisSentinel;

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
        let mut server = Self {
            port: free_port()?,
            child: None,
        };
        server.restart()?;
        Ok(server)
    }

    /// Start (again) on the same port, with no data.
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        self.child = Some(spawn_redis(self.port, |_| {})?);
        Ok(())
    }

    /// Stop the server (an outage); [`RedisServer::restart`] brings it back.
    pub fn kill(&mut self) {
        stop(&mut self.child);
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

fn free_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn command<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> io::Result<T> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).map_err(other)?;
    let mut conn = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .map_err(other)?;
    cmd.query(&mut conn).map_err(other)
}

/// A `redis-server` data node on `port` (loopback, no persistence) with
/// `extra` arguments, started and accepting connections.
fn spawn_redis(port: u16, extra: impl FnOnce(&mut Command)) -> io::Result<Child> {
    spawn(port, |cmd| {
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"]);
        extra(cmd);
    })
}

/// `redis-server` with the arguments `args` gives it, output discarded,
/// once `port` accepts connections (killed if it never does).
fn spawn(port: u16, args: impl FnOnce(&mut Command)) -> io::Result<Child> {
    let mut cmd = Command::new("redis-server");
    args(&mut cmd);
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot start redis-server: {e}")))?;
    if let Err(e) = wait_for_port(port) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    Ok(child)
}

/// Kill a child process (SIGKILL) and reap it, if there is one.
fn stop(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// A fresh directory under the system's temporary one, unique per process
/// and call, for cluster and sentinel config files.
fn scratch_dir(kind: &str) -> io::Result<std::path::PathBuf> {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "keycard-redis-{kind}-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
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
