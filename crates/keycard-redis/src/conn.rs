//! How a node talks to Redis: one server through a `ConnectionManager`, a
//! Redis Cluster through redis-rs's cluster client (which follows `MOVED`
//! and `ASK` and refreshes its slot map), or the primary that Redis
//! Sentinel names ([`SentinelConn`], which asks again after a failover),
//! behind one [`Conn`] that the scripts run on; and the announcement
//! subscription of each kind ([`Subscription`]).

use std::sync::Arc;

use std::time::Duration;

use futures_util::StreamExt;
use keycard_core::StoreError;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Client, Cmd, IntoConnectionInfo, Pipeline, PushKind, RedisFuture, Value};

use crate::config::{redact_url, RedisConfig};
use crate::unavailable;

/// A command connection to one server or to a cluster. Cheap to clone.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(Arc<SentinelConn>),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
            Self::Sentinel(s) => {
                let s = s.clone();
                Box::pin(async move { s.command(cmd).await })
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Sentinel(s) => {
                let s = s.clone();
                Box::pin(async move {
                    let mut c = s.current().await?;
                    let out = c.req_packed_commands(pipeline, offset, count).await;
                    if let Err(e) = &out {
                        s.after_error(e);
                    }
                    out
                })
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
            Self::Sentinel(_) => 0,
        }
    }
}

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
    async fn command(&self, cmd: &Cmd) -> redis::RedisResult<Value> {
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

/// Where the subscriptions come from: a client for one server, or the
/// settings to build a RESP3 cluster client with a push channel.
#[derive(Clone)]
pub(crate) enum Source {
    Single(Client),
    Cluster(ClusterSettings),
    Sentinel(Arc<SentinelConn>),
}

#[derive(Clone)]
pub(crate) struct ClusterSettings {
    seeds: Vec<redis::ConnectionInfo>,
    timeout: Duration,
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    root_ca_pem: Option<Vec<u8>>,
}

impl ClusterSettings {
    fn builder(&self) -> ClusterClientBuilder {
        let b = ClusterClientBuilder::new(self.seeds.clone())
            .connection_timeout(self.timeout)
            .response_timeout(self.timeout)
            .retries(2)
            .min_retry_wait(20)
            .max_retry_wait(250);
        #[cfg(feature = "tls")]
        if let Some(pem) = &self.root_ca_pem {
            return b.certs(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            });
        }
        b
    }
}

fn keepalive() -> redis::io::tcp::TcpSettings {
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(15))
        .with_interval(Duration::from_secs(5))
        .with_retries(3);
    redis::io::tcp::TcpSettings::default()
        .set_nodelay(true)
        .set_keepalive(keepalive)
}

fn info(url: &str) -> Result<redis::ConnectionInfo, StoreError> {
    Ok(url
        .into_connection_info()
        .map_err(|e| unavailable(format!("invalid Redis URL {}: {e}", redact_url(url))))?
        .set_tcp_settings(keepalive()))
}

/// Connect the command connection, and say where subscriptions come from.
pub(crate) async fn connect(config: &RedisConfig) -> Result<(Conn, Source), StoreError> {
    if let Some((sentinels, service)) = &config.sentinel {
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
        let conn = Arc::new(SentinelConn {
            current: tokio::sync::Mutex::new(None),
            stale: std::sync::atomic::AtomicBool::new(false),
            generation: std::sync::atomic::AtomicU64::new(0),
            confirmed_ms: std::sync::atomic::AtomicU64::new(0),
            base: std::time::Instant::now(),
            confirm_within: config.max_staleness.max(config.health_interval * 2),
            timeout: config.timeout,
            service: service.clone(),
            tcp: keepalive(),
            watch: tokio::sync::Mutex::new(watch),
        });
        conn.primary_client().await?;
        return Ok((Conn::Sentinel(conn.clone()), Source::Sentinel(conn)));
    }
    let Some(seeds) = &config.cluster else {
        let client = crate::client_for(info(&config.url)?, config)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = tokio::time::timeout(
            config.timeout * 2,
            ConnectionManager::new_with_config(client.clone(), manager_config),
        )
        .await
        .map_err(|_| unavailable("timed out connecting to Redis"))?
        .map_err(unavailable)?;
        return Ok((Conn::Single(conn), Source::Single(client)));
    };
    if seeds.is_empty() {
        return Err(unavailable("a Redis Cluster needs at least one seed node"));
    }
    for url in seeds {
        if config.root_ca_pem.is_some() && !url.starts_with("rediss://") {
            return Err(unavailable(
                "a TLS root CA is configured, but a seed URL is not rediss://",
            ));
        }
    }
    #[cfg(feature = "tls")]
    if seeds.iter().any(|u| u.starts_with("rediss://")) {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
    let settings = ClusterSettings {
        seeds: seeds.iter().map(|u| info(u)).collect::<Result<_, _>>()?,
        timeout: config.timeout,
        root_ca_pem: config.root_ca_pem.clone(),
    };
    let client = settings
        .builder()
        .tcp_settings(keepalive())
        .build()
        .map_err(unavailable)?;
    let conn = tokio::time::timeout(config.timeout * 3, client.get_async_connection())
        .await
        .map_err(|_| unavailable("timed out connecting to the Redis Cluster"))?
        .map_err(unavailable)?;
    Ok((Conn::Cluster(conn), Source::Cluster(settings)))
}

/// What arrives on a subscription.
pub(crate) enum Incoming {
    /// A message on one of the channels.
    Message { channel: String, payload: Vec<u8> },
    /// The subscription is gone (closed, disconnected, or its shard
    /// channel moved to another node): resync.
    Lost(&'static str),
}

/// The announcement and heartbeat subscription of one sync round.
pub(crate) enum Subscription {
    Single(redis::aio::PubSubStream),
    Cluster {
        pushes: tokio::sync::mpsc::UnboundedReceiver<redis::PushInfo>,
        /// Confirmations of our own `SSUBSCRIBE`s still to come; any
        /// confirmation beyond them is the client resubscribing elsewhere.
        confirmations: usize,
        // Kept alive for as long as the subscription is read.
        _conn: ClusterConnection,
    },
}

impl Subscription {
    /// Subscribe to `channels` (sharded in a cluster: every channel shares
    /// keycard's hash slot, so one shard serves them all).
    pub(crate) async fn open(
        source: &Source,
        channels: &[&str],
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        match source {
            Source::Single(client) => Self::single(client, channels, timeout).await,
            // Through Sentinel: the primary it names now, which the command
            // connection then uses too.
            Source::Sentinel(s) => {
                Self::single(&s.primary_client().await?, channels, timeout).await
            }
            Source::Cluster(settings) => {
                let (tx, pushes) = tokio::sync::mpsc::unbounded_channel();
                let client = settings
                    .builder()
                    .tcp_settings(keepalive())
                    .use_protocol(redis::ProtocolVersion::RESP3)
                    .push_sender(tx)
                    .build()
                    .map_err(unavailable)?;
                let mut conn =
                    crate::with_timeout(timeout * 3, client.get_async_connection()).await?;
                for channel in channels {
                    crate::with_timeout(timeout, conn.ssubscribe(*channel)).await?;
                }
                Ok(Self::Cluster {
                    pushes,
                    confirmations: channels.len(),
                    _conn: conn,
                })
            }
        }
    }

    async fn single(
        client: &Client,
        channels: &[&str],
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let mut pubsub = crate::with_timeout(timeout, client.get_async_pubsub()).await?;
        for channel in channels {
            crate::with_timeout(timeout, pubsub.subscribe(*channel)).await?;
        }
        Ok(Self::Single(pubsub.into_on_message()))
    }

    /// The next message, or why the subscription is gone.
    pub(crate) async fn next(&mut self) -> Incoming {
        match self {
            Self::Single(stream) => match stream.next().await {
                Some(msg) => Incoming::Message {
                    channel: msg.get_channel_name().to_owned(),
                    payload: msg.get_payload_bytes().to_vec(),
                },
                None => Incoming::Lost("subscription closed"),
            },
            Self::Cluster {
                pushes,
                confirmations,
                ..
            } => loop {
                let Some(push) = pushes.recv().await else {
                    return Incoming::Lost("subscription closed");
                };
                match push.kind {
                    PushKind::SMessage | PushKind::Message => {
                        let mut data = push.data.into_iter();
                        let (Some(channel), Some(payload)) = (data.next(), data.next()) else {
                            continue;
                        };
                        let (Value::BulkString(channel), Value::BulkString(payload)) =
                            (channel, payload)
                        else {
                            continue;
                        };
                        return Incoming::Message {
                            channel: String::from_utf8_lossy(&channel).into_owned(),
                            payload,
                        };
                    }
                    PushKind::Disconnection => {
                        return Incoming::Lost("disconnected from the shard")
                    }
                    // Redis 7 unsubscribes shard channels whose slot left
                    // the node (failover, resharding), and the client
                    // resubscribes on the slot's new owner by itself.
                    // Announcements may have gone out in between: resync,
                    // so that every subscription is followed by a
                    // snapshot.
                    PushKind::SUnsubscribe => {
                        return Incoming::Lost("the shard channel left its node")
                    }
                    PushKind::SSubscribe if *confirmations > 0 => *confirmations -= 1,
                    PushKind::SSubscribe => {
                        return Incoming::Lost("the shard channel was resubscribed on another node")
                    }
                    _ => continue,
                }
            },
        }
    }
}
