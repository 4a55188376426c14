//! A throwaway `redis-server` for tests: started on a free loopback port, no
//! persistence, stoppable and restartable on the same port so a test can
//! simulate an outage. Needs `redis-server` on `PATH`.
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
