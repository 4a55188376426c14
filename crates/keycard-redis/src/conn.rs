//! How a node talks to Redis: one server through a `ConnectionManager`, a
//! Redis Cluster through redis-rs's cluster client (which follows `MOVED`
//! and `ASK` and refreshes its slot map), or the primary that Redis
//! Sentinel names (`SentinelConn`, which asks again after a failover),
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
use crate::sentinel::SentinelConn;
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
                Box::pin(async move { s.commands(pipeline, offset, count).await })
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

pub(crate) fn keepalive() -> redis::io::tcp::TcpSettings {
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(15))
        .with_interval(Duration::from_secs(5))
        .with_retries(3);
    redis::io::tcp::TcpSettings::default()
        .set_nodelay(true)
        .set_keepalive(keepalive)
}

pub(crate) fn info(url: &str) -> Result<redis::ConnectionInfo, StoreError> {
    Ok(url
        .into_connection_info()
        .map_err(|e| unavailable(format!("invalid Redis URL {}: {e}", redact_url(url))))?
        .set_tcp_settings(keepalive()))
}

/// A client for `info`: plain, or TLS (`rediss://`) with the system roots
/// or the configured CA.
fn client_for(info: redis::ConnectionInfo, config: &RedisConfig) -> Result<Client, StoreError> {
    let tls = config.url.starts_with("rediss://");
    if !tls {
        if config.root_ca_pem.is_some() {
            return Err(unavailable(
                "a TLS root CA is configured, but the URL is not rediss://",
            ));
        }
        return Client::open(info).map_err(unavailable);
    }
    #[cfg(feature = "tls")]
    {
        // rustls needs one crypto provider per process: aws-lc-rs, unless
        // the application installed another.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        match &config.root_ca_pem {
            Some(pem) => Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            )
            .map_err(unavailable),
            None => Client::open(info).map_err(unavailable),
        }
    }
    #[cfg(not(feature = "tls"))]
    {
        let _ = info;
        Err(unavailable("rediss:// needs keycard-redis's `tls` feature"))
    }
}

/// Connect the command connection, and say where subscriptions come from.
pub(crate) async fn connect(config: &RedisConfig) -> Result<(Conn, Source), StoreError> {
    if let Some((sentinels, service)) = &config.sentinel {
        let conn = SentinelConn::connect(config, sentinels, service).await?;
        return Ok((Conn::Sentinel(conn.clone()), Source::Sentinel(conn)));
    }
    let Some(seeds) = &config.cluster else {
        let client = client_for(info(&config.url)?, config)?;
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
