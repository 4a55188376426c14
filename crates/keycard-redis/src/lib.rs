//! Redis-backed stores for a keycard cluster: revocation and refresh
//! families shared by every node.
//!
//! ```no_run
//! use keycard_core::{Sessions, SigningKey, TokenIssuer};
//! use keycard_redis::RedisStores;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let stores = RedisStores::connect("redis://127.0.0.1:6379").await?;
//! let issuer = TokenIssuer::builder(SigningKey::hs256(b"an-example-secret-of-32-bytes-or-more")?)
//!     .audience("api")
//!     .build()?;
//! let sessions = Sessions::builder(issuer)
//!     .revocation_store(stores.revocation())
//!     .refresh_store(stores.refresh())
//!     .build()?;
//! # let _ = sessions; Ok(()) }
//! ```
//!
//! How it works:
//! - **Writes** (revoke, rotate) are Lua scripts: Redis runs each without
//!   interleaving another command, and a write counts only once Redis
//!   acknowledged it. A failed write is an error to the caller, never a
//!   silent success. (Lua does not roll back: a script that fails halfway,
//!   e.g. during a slot migration, may leave part of its writes.) A reuse of
//!   a refresh token marks the family and revokes the session in the same
//!   script.
//! - **Reads on the request path never touch the network.** Each node keeps
//!   a local view of the denylist; a background task subscribes to a
//!   pub/sub channel on which every revocation is announced, then loads a
//!   snapshot, and applies announcements as they arrive.
//! - **The view proves it is current.** Every health interval the node
//!   publishes a heartbeat on a channel of its own and must receive it back
//!   through the same subscription; TCP keepalive is on. Announcements are
//!   numbered and the heartbeat names the last number: a node that missed
//!   one (a gap, or a heartbeat naming a number it has not seen) resyncs. A view that has
//!   not proven itself within [`RedisConfig::max_staleness`] (default 3 s)
//!   fails closed and the subscription is rebuilt, so a flow that a NAT or
//!   firewall dropped without closing the socket cannot keep a node
//!   answering from a stale view.
//! - **Fail closed.** While the view is not known to be current (before the
//!   first sync, after the subscription broke, while Redis is down or
//!   failing over), checks answer [`StoreError::NotCurrent`], which the
//!   verifier turns into 503.
//! - **Nothing a node acknowledged is forgotten while it lives.** A resync
//!   merges the snapshot into the local view (entries only ever leave it by
//!   expiring) and writes back live entries that Redis lost, e.g. after a
//!   restart without persistence or a failover. A node also keeps its own
//!   acknowledged revocations until their announcement comes back, and
//!   writes them again when a later heartbeat comes back first (the
//!   primary that acknowledged them was failing over). Redis replicates
//!   asynchronously, so a write whose primary and node both die at once
//!   can be lost; [`RedisConfig::wait_for_replicas`] closes that gap.
//! - **One server, a Cluster, or Sentinel** ([`RedisConfig::new`],
//!   [`RedisConfig::cluster`], [`RedisConfig::sentinel`]). In a cluster all
//!   keys share one hash slot (the prefix is the hash tag) and
//!   announcements use sharded pub/sub on the slot's shard; a slot move or
//!   failover makes the node resync against the new owner. Behind
//!   Sentinel a node follows the primary a majority of the sentinels
//!   names, and fails closed when it cannot hear a majority.
//! - **One clock.** The stores measure the Redis server's clock, and
//!   sessions issue, verify and cut off by it, so clock skew between nodes
//!   neither lets a token escape "log out everywhere" nor revokes a fresh
//!   login.
//!
//! Keys, under a configurable prefix (default `keycard:`; `{keycard}:` in a
//! cluster): sorted sets
//! `rev:jti`, `rev:sid`, `rev:sub` scored by the tokens' `exp` (entries are
//! kept until `exp` + [`keycard_core::REVOCATION_GRACE`]), a hash
//! `rev:subcut` of subject cut-off times, the announcement counter
//! `rev:seq`, the channel `rev:events` and one heartbeat channel per node
//! `rev:hb:<node>`, one hash `rf:<sid>` per
//! refresh family that expires with the session, and one sorted set
//! `rfsub:<sub>` per subject indexing its families.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod conn;
mod refresh;
mod revocation;
mod scripts;
mod sentinel;
mod sync;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
mod view;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use keycard_core::{
    Clock, RefreshStore, RevocationEntry, RevocationStore, StoreError, REVOCATION_GRACE,
};

pub use config::{redact_url, RedisConfig};
pub use refresh::RedisRefreshStore;
pub use revocation::RedisRevocationStore;

use config::Keys;
use conn::Conn;
use scripts::Scripts;
use view::View;

struct Shared {
    conn: Conn,
    keys: Keys,
    scripts: &'static Scripts,
    view: Arc<View>,
    timeout: Duration,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A connection to Redis shared by the revocation and refresh stores.
/// Cheap to clone; the background sync stops when the last clone (and every
/// store made from it) is dropped.
#[derive(Clone)]
pub struct RedisStores(Arc<Shared>);

impl fmt::Debug for RedisStores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStores")
            .field("channel", &self.0.keys.channel)
            .field("current", &self.is_current())
            .field("lag", &self.lag())
            .finish()
    }
}

pub(crate) fn unavailable(e: impl fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// A random node id for the heartbeat channel.
fn node_id() -> String {
    keycard_core::random_id()
}

impl RedisStores {
    /// Connect with [`RedisConfig::new`] defaults.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(RedisConfig::new(url)).await
    }

    /// Connect, start the background sync, and wait (up to the timeout)
    /// for the first snapshot. Fails when Redis cannot be reached.
    pub async fn connect_with(config: RedisConfig) -> Result<Self, StoreError> {
        let cluster = config.cluster.is_some();
        let (conn, source) = conn::connect(&config).await?;
        if cluster && config.wait_replicas > 0 {
            return Err(unavailable(
                "wait_for_replicas is not supported with a Redis Cluster yet: WAIT cannot be pinned to the node that took the write",
            ));
        }
        if cluster && config.prefix.is_empty() {
            return Err(unavailable(
                "a Redis Cluster needs a non-empty key prefix: it becomes the hash tag that keeps keycard's keys in one slot",
            ));
        }
        let keys = Keys::new(&config.prefix, &node_id(), cluster, config.wait_replicas);
        let scripts = scripts::scripts(cluster);
        let staleness = config.staleness_bound();
        let view = Arc::new(View::new(staleness, config.local_clock.clone()));
        let mut probe = conn.clone();
        sync::measure_clock(&mut probe, &keys, scripts, &view, config.timeout).await?;
        let task = tokio::spawn(
            sync::Sync {
                source,
                conn: conn.clone(),
                keys: keys.clone(),
                scripts,
                view: view.clone(),
                timeout: config.timeout,
                health: config.health_interval,
                heartbeats: 0,
                current_since: None,
            }
            .run_forever(),
        );
        let stores = Self(Arc::new(Shared {
            conn,
            keys,
            scripts,
            view,
            timeout: config.timeout,
            task,
        }));
        stores.wait_current(config.timeout * 3).await;
        Ok(stores)
    }

    /// Whether the local revocation view is known to be current: synced,
    /// and proven through the subscription within the staleness bound.
    pub fn is_current(&self) -> bool {
        self.0.view.is_current()
    }

    /// How long ago the local view was last proven current.
    pub fn lag(&self) -> Duration {
        self.0.view.lag()
    }

    /// How many times the view resynced after its first sync: rebuilt its
    /// subscription and reloaded the snapshot, because the subscription
    /// broke, Redis failed over or restarted, keycard's slot moved, or an
    /// announcement was missed. Also the `keycard_revocation_resyncs_total`
    /// counter.
    pub fn resyncs(&self) -> u64 {
        self.0
            .view
            .resyncs
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many of this node's own acknowledged revocations it wrote again
    /// because their announcement never came back (the primary that
    /// acknowledged them failed over). Also the
    /// `keycard_revocation_rewrites_total` counter.
    pub fn rewrites(&self) -> u64 {
        self.0
            .view
            .rewrites
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The measured offset of the Redis clock to this node's clock, in
    /// milliseconds.
    pub fn clock_offset_ms(&self) -> i64 {
        self.0.view.clock_offset_ms()
    }

    /// Wait until the view is current, up to `timeout`; returns whether it is.
    pub async fn wait_current(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.is_current() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// The revocation store of this connection.
    pub fn revocation(&self) -> Arc<dyn RevocationStore> {
        Arc::new(RedisRevocationStore(self.0.clone()))
    }

    /// The DPoP proof replay store of this connection: a proof used on one
    /// node is refused on every other (`SET NX` with the proof's expiry).
    pub fn dpop_replay(&self) -> Arc<dyn keycard_core::dpop::DpopReplayStore> {
        Arc::new(RedisDpopReplay(self.0.clone()))
    }

    /// The refresh-family store of this connection.
    pub fn refresh(&self) -> Arc<dyn RefreshStore> {
        Arc::new(RedisRefreshStore(self.0.clone()))
    }

    /// The cluster clock: this node's clock corrected by the measured offset
    /// to the Redis server's.
    pub fn clock(&self) -> Arc<dyn Clock> {
        Arc::new(RedisClock(self.0.view.clone()))
    }
}

/// DPoP proofs seen by the cluster.
struct RedisDpopReplay(Arc<Shared>);

impl fmt::Debug for RedisDpopReplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisDpopReplay").finish_non_exhaustive()
    }
}

impl keycard_core::dpop::DpopReplayStore for RedisDpopReplay {
    fn first_use<'a>(
        &'a self,
        key: &'a str,
        ttl: std::time::Duration,
    ) -> keycard_core::keys::BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut conn = self.0.conn.clone();
            let mut cmd = redis::cmd("SET");
            cmd.arg(format!("{}{key}", self.0.keys.dpop))
                .arg(1)
                .arg("NX")
                // Relative, so Redis's own clock ends it: an absolute EXAT
                // from a lagging node would expire on arrival.
                .arg("PX")
                .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
            let before = generation(&conn);
            let set: Option<String> =
                tokio::time::timeout(self.0.timeout, cmd.query_async(&mut conn))
                    .await
                    .map_err(|_| unavailable("timed out recording a DPoP proof"))?
                    .map_err(unavailable)?;
            if set.is_some() {
                replicated(&mut conn, &self.0.keys, self.0.timeout, before).await?;
            }
            Ok(set.is_some())
        })
    }
}

/// Now by the Redis server's clock.
struct RedisClock(Arc<View>);

impl fmt::Debug for RedisClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisClock")
            .field("offset_ms", &self.0.clock_offset_ms())
            .finish()
    }
}

impl Clock for RedisClock {
    fn now(&self) -> i64 {
        self.0.now()
    }
}

pub(crate) async fn with_timeout<T>(
    timeout: Duration,
    fut: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r.map_err(unavailable),
        Err(_) => Err(unavailable("Redis did not answer in time")),
    }
}

/// Write one denylist entry (atomic script; announced to every node).
pub(crate) async fn revoke(
    conn: &mut Conn,
    keys: &Keys,
    scripts: &Scripts,
    timeout: Duration,
    e: &RevocationEntry,
) -> Result<(), StoreError> {
    use keycard_core::EntryKind;
    let zset = match e.kind {
        EntryKind::Token => &keys.jti,
        EntryKind::Session => &keys.sid,
        _ => &keys.sub,
    };
    let mut inv = scripts.revoke.prepare_invoke();
    inv.key(zset)
        .key(&keys.subcut)
        .key(&keys.seq)
        .arg(sync::kind_name(e.kind))
        .arg(&*e.id)
        .arg(e.exp)
        .arg(e.cutoff)
        .arg(&keys.channel)
        .arg(REVOCATION_GRACE.as_secs());
    let before = generation(conn);
    with_timeout(timeout, inv.invoke_async::<i64>(conn)).await?;
    replicated(conn, keys, timeout, before).await
}

/// Which connection a command will go over: a write and its `WAIT`
/// count only when this did not change in between (Sentinel replaces its
/// connection when the primary moves; the others keep theirs).
pub(crate) fn generation(conn: &Conn) -> u64 {
    match conn {
        Conn::Sentinel(s) => s.generation(),
        _ => 0,
    }
}

/// With [`RedisConfig::wait_for_replicas`]: the write made at connection
/// generation `before` counts only once enough replicas have it. `WAIT`
/// counts the writes of its own connection, so a connection replaced in
/// between (a failover) leaves the write unconfirmed.
pub(crate) async fn replicated(
    conn: &mut Conn,
    keys: &Keys,
    timeout: Duration,
    before: u64,
) -> Result<(), StoreError> {
    let n = keys.wait_replicas;
    if n == 0 {
        return Ok(());
    }
    // Half the operation timeout, so the answer beats the connection's
    // own response timeout and says how many replicas confirmed.
    let millis = u64::try_from(timeout.as_millis() / 2)
        .unwrap_or(u64::MAX)
        .max(1);
    let got: i64 = with_timeout(
        timeout,
        redis::cmd("WAIT").arg(n).arg(millis).query_async(conn),
    )
    .await?;
    if generation(conn) != before {
        return Err(unavailable(
            "the connection to Redis changed between the write and its WAIT: not confirmed",
        ));
    }
    if usize::try_from(got).unwrap_or(0) < n {
        return Err(unavailable(format!(
            "the write reached {got} of the {n} replicas required"
        )));
    }
    Ok(())
}
