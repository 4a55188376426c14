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
//! - **Writes** (revoke, rotate) are Lua scripts, so each is atomic, and a
//!   write counts only once Redis acknowledged it. A failed write is an
//!   error to the caller, never a silent success.
//! - **Reads on the request path never touch the network.** Each node keeps
//!   a local view of the denylist; a background task subscribes to a
//!   pub/sub channel on which every revocation is announced, then loads a
//!   snapshot, and applies announcements as they arrive.
//! - **Fail closed.** While the view is not known to be current (before the
//!   first sync, after the subscription broke, while Redis is down), checks
//!   answer [`StoreError::NotCurrent`], which the verifier turns into 503.
//! - **Nothing acknowledged is forgotten.** A resync merges the snapshot into
//!   the local view (entries only ever leave it by expiring) and writes back
//!   live entries that Redis lost, e.g. after a restart without persistence.
//!
//! Keys, under a configurable prefix (default `keycard:`): sorted sets
//! `rev:jti`, `rev:sid`, `rev:sub` scored by expiry, a hash `rev:subcut` of
//! subject cut-off times, the channel `rev:events`, and one hash
//! `rf:<sid>` per refresh family with a TTL equal to the session's end.

pub mod testing;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use arc_swap::ArcSwap;
use std::time::Duration;

use futures_util::StreamExt;
use keycard_core::{
    unix_now, BoxFuture, Denylist, RefreshStore, RevocationStore, Rotation, StoreError, TokenFacts,
};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};

/// How to reach Redis and name the keys.
#[derive(Debug, Clone)]
#[must_use]
pub struct RedisConfig {
    url: String,
    prefix: String,
    timeout: Duration,
    health_interval: Duration,
}

impl RedisConfig {
    /// Connect to `url` (`redis://host:port/db`) with prefix `keycard:`,
    /// a 1 s operation timeout and a 500 ms health check.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: "keycard:".into(),
            timeout: Duration::from_secs(1),
            health_interval: Duration::from_millis(500),
        }
    }

    /// Prefix for every key and channel (to share one Redis between apps).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Timeout for connecting and for each operation.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How often the sync task pings Redis to notice an outage while no
    /// announcements arrive.
    pub fn health_interval(mut self, every: Duration) -> Self {
        self.health_interval = every;
        self
    }
}

/// The node's local denylist: checks read a snapshot without any lock;
/// updates (rare) copy it under a writer mutex that the request path never
/// takes.
struct View {
    list: ArcSwap<Denylist>,
    writer: Mutex<()>,
    current: AtomicBool,
}

impl View {
    fn update<T>(&self, f: impl FnOnce(&mut Denylist) -> T) -> T {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut list = Denylist::clone(&self.list.load());
        let out = f(&mut list);
        self.list.store(Arc::new(list));
        out
    }
}

struct Shared {
    conn: ConnectionManager,
    keys: Keys,
    view: Arc<View>,
    timeout: Duration,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct Keys {
    jti: String,
    sid: String,
    sub: String,
    subcut: String,
    channel: String,
    refresh: String,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        Self {
            jti: format!("{prefix}rev:jti"),
            sid: format!("{prefix}rev:sid"),
            sub: format!("{prefix}rev:sub"),
            subcut: format!("{prefix}rev:subcut"),
            channel: format!("{prefix}rev:events"),
            refresh: format!("{prefix}rf:"),
        }
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
            .finish()
    }
}

fn unavailable(e: impl fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

const REVOKE: &str = r"
redis.call('ZADD', KEYS[1], 'GT', ARGV[3], ARGV[2])
local now = ARGV[6]
if ARGV[1] == 'sub' then
  local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
  for _, m in ipairs(old) do redis.call('HDEL', KEYS[2], m) end
  local cur = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '-9e18')
  if tonumber(ARGV[4]) > cur then redis.call('HSET', KEYS[2], ARGV[2], ARGV[4]) end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
redis.call('PUBLISH', ARGV[5], ARGV[1] .. ' ' .. ARGV[3] .. ' ' .. ARGV[4] .. ' ' .. ARGV[2])
return 1
";

const ROTATE: &str = r"
local h = redis.call('HMGET', KEYS[1], 'cur', 'exp', 'rev')
if not h[1] then return {'unknown', 0} end
if h[3] == '1' or tonumber(h[2]) < tonumber(ARGV[3]) then return {'unknown', 0} end
if h[1] == ARGV[1] then
  redis.call('HSET', KEYS[1], 'cur', ARGV[2])
  return {'rotated', tonumber(h[2])}
end
redis.call('HSET', KEYS[1], 'rev', '1')
return {'reused', 0}
";

const END: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'rev', '1') end
return 1
";

// Hashed once; invoked by EVALSHA with a fallback to EVAL.
static REVOKE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(REVOKE));
static ROTATE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(ROTATE));
static END_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(END));

#[derive(Clone, Copy)]
enum Kind {
    Jti,
    Sid,
    Sub,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Jti => "jti",
            Kind::Sid => "sid",
            Kind::Sub => "sub",
        }
    }
}

fn apply(list: &mut Denylist, kind: Kind, id: &str, exp: i64, cutoff: i64) {
    match kind {
        Kind::Jti => {
            let e = list.tokens.entry(id.to_owned()).or_insert(exp);
            *e = (*e).max(exp);
        }
        Kind::Sid => {
            let e = list.sessions.entry(id.to_owned()).or_insert(exp);
            *e = (*e).max(exp);
        }
        Kind::Sub => {
            let e = list.subjects.entry(id.to_owned()).or_insert((cutoff, exp));
            e.0 = e.0.max(cutoff);
            e.1 = e.1.max(exp);
        }
    }
}

/// Parse an announcement: `kind exp cutoff id`.
fn parse_event(payload: &str) -> Option<(Kind, i64, i64, &str)> {
    let mut it = payload.splitn(4, ' ');
    let kind = match it.next()? {
        "jti" => Kind::Jti,
        "sid" => Kind::Sid,
        "sub" => Kind::Sub,
        _ => return None,
    };
    let exp = it.next()?.parse().ok()?;
    let cutoff = it.next()?.parse().ok()?;
    Some((kind, exp, cutoff, it.next()?))
}

impl RedisStores {
    /// Connect with [`RedisConfig::new`] defaults.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(RedisConfig::new(url)).await
    }

    /// Connect, start the background sync, and wait (up to the timeout)
    /// for the first snapshot. Fails when Redis cannot be reached.
    pub async fn connect_with(config: RedisConfig) -> Result<Self, StoreError> {
        let client = Client::open(config.url.as_str()).map_err(unavailable)?;
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
        let keys = Keys::new(&config.prefix);
        let view = Arc::new(View {
            list: ArcSwap::from_pointee(Denylist::default()),
            writer: Mutex::new(()),
            current: AtomicBool::new(false),
        });
        let task = tokio::spawn(sync_forever(
            client,
            conn.clone(),
            keys.clone(),
            view.clone(),
            config.timeout,
            config.health_interval,
        ));
        let stores = Self(Arc::new(Shared {
            conn,
            keys,
            view,
            timeout: config.timeout,
            task,
        }));
        stores.wait_current(config.timeout * 3).await;
        Ok(stores)
    }

    /// Whether the local revocation view is known to be current.
    pub fn is_current(&self) -> bool {
        self.0.view.current.load(Ordering::Acquire)
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

    /// The refresh-family store of this connection.
    pub fn refresh(&self) -> Arc<dyn RefreshStore> {
        Arc::new(RedisRefreshStore(self.0.clone()))
    }
}

async fn with_timeout<T>(
    timeout: Duration,
    fut: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r.map_err(unavailable),
        Err(_) => Err(unavailable("Redis did not answer in time")),
    }
}

async fn revoke(
    conn: &mut ConnectionManager,
    keys: &Keys,
    timeout: Duration,
    kind: Kind,
    id: &str,
    exp: i64,
    cutoff: i64,
) -> Result<(), StoreError> {
    let zset = match kind {
        Kind::Jti => &keys.jti,
        Kind::Sid => &keys.sid,
        Kind::Sub => &keys.sub,
    };
    let mut inv = REVOKE_SCRIPT.prepare_invoke();
    inv.key(zset)
        .key(&keys.subcut)
        .arg(kind.name())
        .arg(id)
        .arg(exp)
        .arg(cutoff)
        .arg(&keys.channel)
        .arg(unix_now());
    with_timeout(timeout, inv.invoke_async::<i64>(conn)).await?;
    Ok(())
}

/// Load the live entries from Redis.
async fn snapshot(
    conn: &mut ConnectionManager,
    keys: &Keys,
    timeout: Duration,
) -> Result<Denylist, StoreError> {
    let now = unix_now();
    type Pairs = Vec<(String, i64)>;
    let (jti, sid, sub, cut): (Pairs, Pairs, Pairs, Vec<(String, i64)>) = with_timeout(
        timeout * 5,
        redis::pipe()
            .atomic()
            .cmd("ZRANGEBYSCORE")
            .arg(&keys.jti)
            .arg(now)
            .arg("+inf")
            .arg("WITHSCORES")
            .cmd("ZRANGEBYSCORE")
            .arg(&keys.sid)
            .arg(now)
            .arg("+inf")
            .arg("WITHSCORES")
            .cmd("ZRANGEBYSCORE")
            .arg(&keys.sub)
            .arg(now)
            .arg("+inf")
            .arg("WITHSCORES")
            .cmd("HGETALL")
            .arg(&keys.subcut)
            .query_async(conn),
    )
    .await?;
    let mut list = Denylist::default();
    list.tokens.extend(jti);
    list.sessions.extend(sid);
    let cut: std::collections::HashMap<String, i64> = cut.into_iter().collect();
    for (s, exp) in sub {
        let c = cut.get(&s).copied().unwrap_or(exp);
        list.subjects.insert(s, (c, exp));
    }
    Ok(list)
}

/// Subscribe, resync, follow announcements; on any failure mark the view
/// not current and start over.
async fn sync_forever(
    client: Client,
    mut conn: ConnectionManager,
    keys: Keys,
    view: Arc<View>,
    timeout: Duration,
    health: Duration,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        if let Err(e) = sync_once(&client, &mut conn, &keys, &view, timeout, health).await {
            tracing::warn!(error = %e, "keycard-redis: revocation view not current; retrying");
        }
        view.current.store(false, Ordering::Release);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

async fn sync_once(
    client: &Client,
    conn: &mut ConnectionManager,
    keys: &Keys,
    view: &View,
    timeout: Duration,
    health: Duration,
) -> Result<(), StoreError> {
    let mut pubsub = with_timeout(timeout, client.get_async_pubsub()).await?;
    with_timeout(timeout, pubsub.subscribe(&keys.channel)).await?;
    // Subscribed first, so nothing announced from here on is missed.
    let remote = snapshot(conn, keys, timeout).await?;
    let now = unix_now();
    let missing = view.update(|local| {
        local.prune(now);
        let mut missing = Vec::new();
        for (id, exp) in &local.tokens {
            if !remote.tokens.contains_key(id) {
                missing.push((Kind::Jti, id.clone(), *exp, 0));
            }
        }
        for (id, exp) in &local.sessions {
            if !remote.sessions.contains_key(id) {
                missing.push((Kind::Sid, id.clone(), *exp, 0));
            }
        }
        for (id, (cut, exp)) in &local.subjects {
            if remote.subjects.get(id).is_none_or(|(c, _)| c < cut) {
                missing.push((Kind::Sub, id.clone(), *exp, *cut));
            }
        }
        for (id, exp) in remote.tokens {
            apply(local, Kind::Jti, &id, exp, 0);
        }
        for (id, exp) in remote.sessions {
            apply(local, Kind::Sid, &id, exp, 0);
        }
        for (id, (cut, exp)) in remote.subjects {
            apply(local, Kind::Sub, &id, exp, cut);
        }
        missing
    });
    // Redis lost entries this node knows (e.g. a restart without
    // persistence): write them back so every node learns them again.
    for (kind, id, exp, cut) in &missing {
        revoke(conn, keys, timeout, *kind, id, *exp, *cut).await?;
    }
    view.current.store(true, Ordering::Release);
    let mut messages = pubsub.into_on_message();
    let mut ticker = tokio::time::interval(health);
    loop {
        tokio::select! {
            msg = messages.next() => {
                let Some(msg) = msg else {
                    return Err(unavailable("subscription closed"));
                };
                let payload = String::from_utf8_lossy(msg.get_payload_bytes());
                match parse_event(&payload) {
                    Some((kind, exp, cut, id)) => view.update(|l| apply(l, kind, id, exp, cut)),
                    None => tracing::warn!("keycard-redis: ignoring a malformed announcement"),
                }
            }
            _ = ticker.tick() => {
                with_timeout(timeout, redis::cmd("PING").query_async::<String>(conn)).await?;
                let now = unix_now();
                if view.list.load().has_expired(now) {
                    view.update(|l| l.prune(now));
                }
            }
        }
    }
}

/// The cluster revocation store (see the crate docs).
pub struct RedisRevocationStore(Arc<Shared>);

impl fmt::Debug for RedisRevocationStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRevocationStore")
            .field("channel", &self.0.keys.channel)
            .finish()
    }
}

impl RedisRevocationStore {
    fn write<'a>(
        &'a self,
        kind: Kind,
        id: &'a str,
        exp: i64,
        cutoff: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut conn = self.0.conn.clone();
            revoke(
                &mut conn,
                &self.0.keys,
                self.0.timeout,
                kind,
                id,
                exp,
                cutoff,
            )
            .await?;
            // Acknowledged: this node applies it at once, before the echo.
            self.0.view.update(|l| apply(l, kind, id, exp, cutoff));
            Ok(())
        })
    }
}

impl RevocationStore for RedisRevocationStore {
    fn is_revoked(&self, token: &TokenFacts<'_>) -> Result<bool, StoreError> {
        if !self.0.view.current.load(Ordering::Acquire) {
            return Err(StoreError::NotCurrent);
        }
        Ok(self.0.view.list.load().contains(token, unix_now()))
    }

    fn revoke_token<'a>(
        &'a self,
        jti: &'a str,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.write(Kind::Jti, jti, expires_at, 0)
    }

    fn revoke_session<'a>(
        &'a self,
        sid: &'a str,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.write(Kind::Sid, sid, expires_at, 0)
    }

    fn revoke_subject<'a>(
        &'a self,
        sub: &'a str,
        issued_at_or_before: i64,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.write(Kind::Sub, sub, expires_at, issued_at_or_before)
    }
}

/// The cluster refresh-family store: rotation is one Lua script, so of N
/// concurrent rotations across any number of nodes exactly one wins.
pub struct RedisRefreshStore(Arc<Shared>);

impl fmt::Debug for RedisRefreshStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRefreshStore")
            .field("prefix", &self.0.keys.refresh)
            .finish()
    }
}

impl RefreshStore for RedisRefreshStore {
    fn start<'a>(
        &'a self,
        sid: &'a str,
        jti: &'a str,
        session_expires_at: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let key = format!("{}{sid}", self.0.keys.refresh);
            let mut conn = self.0.conn.clone();
            let _: () = with_timeout(
                self.0.timeout,
                redis::pipe()
                    .atomic()
                    .cmd("HSET")
                    .arg(&key)
                    .arg("cur")
                    .arg(jti)
                    .arg("exp")
                    .arg(session_expires_at)
                    .arg("rev")
                    .arg(0)
                    .ignore()
                    .cmd("EXPIREAT")
                    .arg(&key)
                    .arg(session_expires_at)
                    .ignore()
                    .query_async(&mut conn),
            )
            .await?;
            Ok(())
        })
    }

    fn rotate<'a>(
        &'a self,
        sid: &'a str,
        presented: &'a str,
        next: &'a str,
    ) -> BoxFuture<'a, Result<Rotation, StoreError>> {
        Box::pin(async move {
            let key = format!("{}{sid}", self.0.keys.refresh);
            let mut conn = self.0.conn.clone();
            let mut inv = ROTATE_SCRIPT.prepare_invoke();
            inv.key(&key).arg(presented).arg(next).arg(unix_now());
            let (what, exp): (String, i64) =
                with_timeout(self.0.timeout, inv.invoke_async(&mut conn)).await?;
            Ok(match what.as_str() {
                "rotated" => Rotation::Rotated {
                    session_expires_at: exp,
                },
                "reused" => Rotation::Reused,
                _ => Rotation::Unknown,
            })
        })
    }

    fn end<'a>(&'a self, sid: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let key = format!("{}{sid}", self.0.keys.refresh);
            let mut conn = self.0.conn.clone();
            let mut inv = END_SCRIPT.prepare_invoke();
            inv.key(&key);
            with_timeout(self.0.timeout, inv.invoke_async::<i64>(&mut conn)).await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_parse_and_ids_may_contain_spaces() {
        let (k, exp, cut, id) = parse_event("sub 100 50 john smith").unwrap();
        assert_eq!((k.name(), exp, cut, id), ("sub", 100, 50, "john smith"));
        assert!(parse_event("bogus 1 2 x").is_none());
        assert!(parse_event("jti x 2 y").is_none());
        assert!(parse_event("jti 1").is_none());
    }
}
