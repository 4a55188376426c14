//! Redis Sentinel: the primary a majority of the sentinels names, behind
//! the connection the scripts run on ([`SentinelConn`]).

use std::sync::Arc;
use std::time::Duration;

use keycard_core::StoreError;
use redis::aio::ConnectionLike;
use redis::{Client, Cmd, IntoConnectionInfo, Value};

use crate::config::RedisConfig;
use crate::conn::{info, keepalive};
use crate::unavailable;

/// The primary that Redis Sentinel names: a connection to it, asked for
/// again when a command fails in a way that says the primary moved.
pub(crate) struct SentinelConn {
    /// The current primary's client and connection; `None` after an error
    /// that says the primary may have moved, until the next command asks
    /// the sentinels.
    current: tokio::sync::Mutex<Option<(Client, redis::aio::MultiplexedConnection)>>,
    stale: std::sync::atomic::AtomicBool,
    /// Bumped whenever the connection is replaced: a write and its `WAIT`
    /// count only when both went over the same connection.
    generation: std::sync::atomic::AtomicU64,
    /// When a majority of the sentinels last confirmed the current
    /// primary (milliseconds after `base`); commands refuse to run on a
    /// primary not confirmed within `confirm_within`.
    confirmed_ms: std::sync::atomic::AtomicU64,
    base: std::time::Instant,
    confirm_within: Duration,
    timeout: Duration,
    service: String,
    /// TCP settings for connections to the data nodes.
    tcp: redis::io::tcp::TcpSettings,
    /// Every sentinel, with a connection once one was made, to ask which
    /// primary each names.
    watch: tokio::sync::Mutex<Vec<(Client, Option<redis::aio::MultiplexedConnection>)>>,
}

impl SentinelConn {
    /// Ask the sentinels for the primary and connect to it.
    pub(crate) async fn connect(
        config: &RedisConfig,
        sentinels: &[String],
        service: &str,
    ) -> Result<Arc<Self>, StoreError> {
        if sentinels.iter().any(|u| !u.starts_with("redis://")) || config.root_ca_pem.is_some() {
            return Err(unavailable(
                "Redis Sentinel is supported over plain redis:// only (TLS through Sentinel is not supported yet)",
            ));
        }
        let infos = sentinels
            .iter()
            .map(|u| info(u))
            .collect::<Result<Vec<_>, _>>()?;
        if infos.is_empty() {
            return Err(unavailable("Redis Sentinel needs at least one sentinel"));
        }
        let mut seen = std::collections::HashSet::new();
        let watch = infos
            .iter()
            .filter(|i| seen.insert(format!("{:?}", i.addr())))
            .map(|i| Client::open(i.clone()).map(|c| (c, None)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(unavailable)?;
        if watch.len() < 3 {
            tracing::warn!(
                sentinels = watch.len(),
                "keycard-redis: fewer than three distinct sentinels configured; a majority of them cannot tell a partition from a failover"
            );
        }
        let conn = Arc::new(Self {
            current: tokio::sync::Mutex::new(None),
            stale: std::sync::atomic::AtomicBool::new(false),
            generation: std::sync::atomic::AtomicU64::new(0),
            confirmed_ms: std::sync::atomic::AtomicU64::new(0),
            base: std::time::Instant::now(),
            confirm_within: config.staleness_bound(),
            timeout: config.timeout,
            service: service.to_owned(),
            tcp: keepalive(),
            watch: tokio::sync::Mutex::new(watch),
        });
        conn.primary_client().await?;
        Ok(conn)
    }

    fn since_base(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn confirm(&self) {
        self.confirmed_ms
            .store(self.since_base(), std::sync::atomic::Ordering::SeqCst);
    }

    fn confirmed_recently(&self) -> bool {
        let at = self.confirmed_ms.load(std::sync::atomic::Ordering::SeqCst);
        Duration::from_millis(self.since_base().saturating_sub(at)) <= self.confirm_within
    }

    /// The connection's generation (see [`SentinelConn::generation`]).
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A client and connection for the primary a majority of the
    /// sentinels names now, which must also call itself the primary.
    async fn resolve(&self) -> Result<(Client, redis::aio::MultiplexedConnection), StoreError> {
        let (host, port) = self.named_primary().await?;
        let info = redis::ConnectionAddr::Tcp(host, port)
            .into_connection_info()
            .map_err(crate::unavailable)?
            .set_tcp_settings(self.tcp.clone());
        let client = Client::open(info).map_err(crate::unavailable)?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let mut conn = crate::with_timeout(
            self.timeout * 2,
            client.get_multiplexed_async_connection_with_config(&config),
        )
        .await?;
        let role: Vec<Value> =
            crate::with_timeout(self.timeout, redis::cmd("ROLE").query_async(&mut conn)).await?;
        if !matches!(role.first(), Some(Value::BulkString(r)) if r == b"master") {
            return Err(crate::unavailable(
                "the primary the sentinels name does not call itself primary (yet)",
            ));
        }
        self.confirm();
        Ok((client, conn))
    }

    /// The connection to the current primary, asking the sentinels first
    /// when it is unknown, may have moved, or was not confirmed by a
    /// majority of them recently (a node cut off with a minority, perhaps
    /// with an old primary that still takes writes, must not write there).
    async fn current(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let mut current = self.current.lock().await;
        if self.stale.swap(false, std::sync::atomic::Ordering::SeqCst) || !self.confirmed_recently()
        {
            *current = None;
        }
        if let Some((_, c)) = current.as_ref() {
            return Ok(c.clone());
        }
        let resolved = self.resolve().await.map_err(to_redis)?;
        let conn = resolved.1.clone();
        *current = Some(resolved);
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(conn)
    }

    /// The client of the primary a majority of the sentinels names now
    /// (asked afresh), which the command connection then uses too.
    pub(crate) async fn primary_client(&self) -> Result<Client, StoreError> {
        let resolved = self.resolve().await?;
        let client = resolved.0.clone();
        *self.current.lock().await = Some(resolved);
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.stale.store(false, std::sync::atomic::Ordering::SeqCst);
        Ok(client)
    }

    /// After a failed command: if the primary may have moved, ask the
    /// sentinels before the next one.
    fn after_error(&self, e: &redis::RedisError) {
        if moved(e) || e.is_io_error() || e.is_timeout() || e.is_connection_dropped() {
            self.stale.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// Run one command; retry it once on a freshly named primary when it
    /// certainly did not run (connection refused, or the server is no
    /// longer the primary).
    pub(crate) async fn command(&self, cmd: &Cmd) -> redis::RedisResult<Value> {
        let mut c = self.current().await?;
        match c.req_packed_command(cmd).await {
            Ok(v) => Ok(v),
            Err(e) => {
                self.after_error(&e);
                if moved(&e) || e.is_connection_refusal() {
                    let mut c = self.current().await?;
                    c.req_packed_command(cmd).await
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Run a pipeline on the current primary (no retry: part of it may
    /// have run).
    pub(crate) async fn commands(
        &self,
        pipeline: &redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisResult<Vec<Value>> {
        let mut c = self.current().await?;
        let out = c.req_packed_commands(pipeline, offset, count).await;
        if let Err(e) = &out {
            self.after_error(e);
        }
        out
    }

    /// Whether the server this node talks to is still the primary, and
    /// the one the sentinels name. A planned failover promotes a replica
    /// at once but demotes the old primary only later (seconds); in
    /// between both accept writes, and what the old one acknowledges is
    /// lost when it is demoted. Checking the sentinels' word moves this
    /// node within one health interval of the switch.
    pub(crate) async fn still_primary(&self) -> Result<(), StoreError> {
        let checked = self.check_primary().await;
        match &checked {
            Ok(()) => self.confirm(),
            // Whatever went wrong, the next command asks the sentinels
            // (and needs a majority) before it writes anywhere.
            Err(_) => self.stale.store(true, std::sync::atomic::Ordering::SeqCst),
        }
        checked
    }

    async fn check_primary(&self) -> Result<(), StoreError> {
        let mut c = self.current().await.map_err(crate::unavailable)?;
        let role: Vec<Value> =
            crate::with_timeout(self.timeout, redis::cmd("ROLE").query_async(&mut c)).await?;
        if !matches!(role.first(), Some(Value::BulkString(r)) if r == b"master") {
            return Err(crate::unavailable(
                "the Redis server is no longer the primary",
            ));
        }
        let named = self.named_primary().await?;
        let here = self
            .current
            .lock()
            .await
            .as_ref()
            .map(|(client, _)| client.get_connection_info().addr().clone());
        match here {
            Some(redis::ConnectionAddr::Tcp(host, port))
                if (host.as_str(), port) == (named.0.as_str(), named.1) =>
            {
                Ok(())
            }
            _ => Err(crate::unavailable(
                "the sentinels name another primary than the one this node uses",
            )),
        }
    }

    /// The primary's address as a majority of the sentinels names it now.
    /// A node cut off with a minority of them (and perhaps with an old
    /// primary that still accepts writes) cannot tell which primary is
    /// current, and fails closed rather than follow the minority.
    async fn named_primary(&self) -> Result<(String, u16), StoreError> {
        let mut watch = self.watch.lock().await;
        let total = watch.len();
        let mut asks = Vec::with_capacity(total);
        for (client, conn) in watch.iter_mut() {
            asks.push(async move {
                if conn.is_none() {
                    let config = redis::AsyncConnectionConfig::new()
                        .set_connection_timeout(Some(self.timeout))
                        .set_response_timeout(Some(self.timeout));
                    *conn = Some(
                        crate::with_timeout(
                            self.timeout,
                            client.get_multiplexed_async_connection_with_config(&config),
                        )
                        .await?,
                    );
                }
                let Some(c) = conn.as_mut() else {
                    return Err(crate::unavailable("no sentinel connection"));
                };
                let answer = crate::with_timeout(
                    self.timeout,
                    redis::cmd("SENTINEL")
                        .arg("GET-MASTER-ADDR-BY-NAME")
                        .arg(&self.service)
                        .query_async::<Option<(String, u16)>>(c),
                )
                .await;
                if answer.is_err() {
                    // Connect again next time.
                    *conn = None;
                }
                answer
            });
        }
        let answers = futures_util::future::join_all(asks).await;
        let named: Vec<(String, u16)> = answers.into_iter().flatten().flatten().collect();
        named
            .iter()
            .find(|addr| named.iter().filter(|a| a == addr).count() * 2 > total)
            .cloned()
            .ok_or_else(|| {
                crate::unavailable(format!(
                    "no majority of the {total} sentinels names one primary ({} answered)",
                    named.len()
                ))
            })
    }
}

/// The server said it is not (or no longer) the primary.
fn moved(e: &redis::RedisError) -> bool {
    e.code() == Some("READONLY") || e.code() == Some("MASTERDOWN")
}

fn to_redis(e: StoreError) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Io, "Redis Sentinel", e.to_string()))
}
