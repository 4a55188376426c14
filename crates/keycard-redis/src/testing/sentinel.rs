//! [`RedisSentinel`]: a primary, its replicas and three sentinels.

use std::io;
use std::process::Child;
use std::time::{Duration, Instant};

use super::{command, free_port, other, scratch_dir, spawn, spawn_redis, stop};

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
        let mut set = Self {
            dir: scratch_dir("sentinel")?,
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
            let child = spawn(port, |cmd| {
                cmd.arg(&conf).arg("--sentinel");
            })?;
            set.sentinels.push((port, Some(child)));
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
        let dir = self.dir.clone();
        let child = spawn_redis(port, |cmd| {
            cmd.arg("--dir").arg(&dir);
            if let Some(primary) = replica_of {
                cmd.args(["--replicaof", "127.0.0.1", &primary.to_string()]);
            }
        })?;
        if let Some(s) = self.servers.iter_mut().find(|(p, _)| *p == port) {
            s.1 = Some(child);
        }
        Ok(())
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
            stop(child);
        }
    }

    /// Kill sentinel number `i` (0, 1 or 2).
    pub fn kill_sentinel(&mut self, i: usize) {
        if let Some((_, child)) = self.sentinels.get_mut(i) {
            stop(child);
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
            stop(child);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
