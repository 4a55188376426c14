//! How to reach Redis and name the keys: [`RedisConfig`] and the key layout.
//! Holds no connection and starts nothing.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use keycard_core::{Clock, SystemClock};

/// How to reach Redis and name the keys. `Debug` hides any password in the
/// URL.
#[derive(Clone)]
#[must_use]
pub struct RedisConfig {
    pub(crate) url: String,
    /// Seed nodes of a Redis Cluster (`None`: one server at `url`).
    pub(crate) cluster: Option<Vec<String>>,
    /// Sentinels and the primary's service name (`None`: no Sentinel).
    pub(crate) sentinel: Option<(Vec<String>, String)>,
    pub(crate) prefix: String,
    pub(crate) timeout: Duration,
    pub(crate) health_interval: Duration,
    pub(crate) max_staleness: Duration,
    pub(crate) local_clock: Arc<dyn Clock>,
    pub(crate) root_ca_pem: Option<Vec<u8>>,
    pub(crate) wait_replicas: usize,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact_url(&self.url))
            .field(
                "cluster",
                &self
                    .cluster
                    .as_ref()
                    .map(|seeds| seeds.iter().map(|u| redact_url(u)).collect::<Vec<_>>()),
            )
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("health_interval", &self.health_interval)
            .field("max_staleness", &self.max_staleness)
            .finish_non_exhaustive()
    }
}

/// The URL with any user name and password removed, safe to log:
/// `redis://user:secret@host:6379/0` becomes
/// `redis://<redacted>@host:6379/0`, and `user`/`pass`/`password` query
/// parameters (unix-socket URLs) are dropped. A URL that does not parse is
/// not shown at all.
pub fn redact_url(url: &str) -> String {
    // A password with a raw `/`, `?` or `#` is not valid in a URL but is
    // what people write; a parser would read part of it as host, port or
    // path. So anything up to the last `@` after the scheme counts as
    // credentials, whatever a parser makes of it.
    let (had_credentials, cleaned) = match url.split_once("://") {
        Some((scheme, rest)) => match rest.rfind('@') {
            Some(at) => (true, format!("{scheme}://{}", &rest[at + 1..])),
            None => (false, url.to_owned()),
        },
        None => (false, url.to_owned()),
    };
    let Ok(mut parsed) = url::Url::parse(&cleaned) else {
        return "<unparsable url>".into();
    };
    let had_user = had_credentials || !parsed.username().is_empty() || parsed.password().is_some();
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(k, _)| {
            !matches!(
                k.to_ascii_lowercase().as_str(),
                "user" | "username" | "pass" | "password"
            )
        })
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if parsed.query().is_some() {
        if kept.is_empty() {
            parsed.set_query(None);
        } else {
            parsed.query_pairs_mut().clear().extend_pairs(kept);
        }
    }
    let shown = parsed.to_string();
    match (had_user, shown.split_once("://")) {
        (true, Some((scheme, rest))) => format!("{scheme}://<redacted>@{rest}"),
        _ => shown,
    }
}

impl RedisConfig {
    /// Connect to `url` (`redis://host:port/db`) with prefix `keycard:`,
    /// a 1 s operation timeout, a 500 ms heartbeat, and a view that fails
    /// closed once it has not proven itself current for 3 s.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            cluster: None,
            sentinel: None,
            prefix: "keycard:".into(),
            timeout: Duration::from_secs(1),
            health_interval: Duration::from_millis(500),
            max_staleness: Duration::from_secs(3),
            local_clock: Arc::new(SystemClock),
            root_ca_pem: None,
            wait_replicas: 0,
        }
    }

    /// Connect to a Redis Cluster through any of its nodes (`seeds`, e.g.
    /// `redis://10.0.0.1:7000`; the client learns the rest), with the same
    /// defaults as [`RedisConfig::new`].
    ///
    /// In a cluster, every key keycard writes together lives in one hash
    /// slot: the prefix becomes a hash tag (`keycard:` is used as
    /// `{keycard}:`; a prefix that already holds `{...}` is kept), so each
    /// Lua script touches one slot, and announcements and heartbeats go
    /// through sharded pub/sub (`SPUBLISH`/`SSUBSCRIBE`, Redis 7) on the
    /// shard that owns that slot. Slot moves and failovers break the
    /// subscription; the sync task notices (a `sunsubscribe`, a
    /// disconnection, or a heartbeat that does not come back), fails
    /// closed and resyncs against the new owner, writing back any entry
    /// the new owner lost. DPoP replay keys are not tagged, so they spread
    /// over every shard (unless your prefix already holds a `{...}` tag).
    /// The prefix must not be empty.
    pub fn cluster<I, S>(seeds: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let seeds: Vec<String> = seeds.into_iter().map(Into::into).collect();
        let mut config = Self::new(seeds.first().cloned().unwrap_or_default());
        config.cluster = Some(seeds);
        config
    }

    /// Connect to the primary that Redis Sentinel names for `service`
    /// (`sentinel monitor <service> ...`), asking any of `sentinels` (e.g.
    /// `redis://10.0.0.1:26379`), with the same defaults as
    /// [`RedisConfig::new`]. The key layout is the one-server layout.
    ///
    /// The stores follow a failover: a write that fails because the
    /// primary is gone or was demoted (`READONLY`) makes the node ask the
    /// sentinels again, and a write that certainly did not run (connection
    /// refused, `READONLY`) is retried once on the new primary; the sync
    /// task checks every health interval that its server is still the
    /// primary, and otherwise fails closed and resyncs against the new one,
    /// writing back any entry the new primary lost. A node takes the
    /// primary a majority of the sentinels names, and neither checks nor
    /// writes without a majority's recent word (so configure at least
    /// three). Plain `redis://` only, and data nodes without a password:
    /// TLS and AUTH through Sentinel are not supported yet.
    pub fn sentinel<I, S>(sentinels: I, service: impl Into<String>) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let sentinels: Vec<String> = sentinels.into_iter().map(Into::into).collect();
        let mut config = Self::new(sentinels.first().cloned().unwrap_or_default());
        config.sentinel = Some((sentinels, service.into()));
        config
    }

    /// The deployment the environment names, or `None` when it names none:
    ///
    /// | variable | meaning |
    /// |---|---|
    /// | `KEYCARD_REDIS_URL` | one server (`redis://` or `rediss://`) |
    /// | `KEYCARD_REDIS_CLUSTER` | a Redis Cluster: seed URLs, comma-separated |
    /// | `KEYCARD_REDIS_SENTINELS` | Redis Sentinel: sentinel URLs, comma-separated, with `KEYCARD_REDIS_SENTINEL_SERVICE` (the monitored primary's name) |
    /// | `KEYCARD_REDIS_CA_FILE` | a PEM file of the CA to trust for `rediss://` |
    /// | `KEYCARD_REDIS_PREFIX` | the key prefix (default `keycard:`) |
    /// | `KEYCARD_REDIS_WAIT_REPLICAS` | [`RedisConfig::wait_for_replicas`] |
    ///
    /// At most one of the first three may be set. Errors name the variable
    /// and never repeat a password.
    pub fn from_env() -> Result<Option<Self>, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`RedisConfig::from_env`] over any lookup (tests, other sources).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, String> {
        let list = |name: &str| -> Result<Option<Vec<String>>, String> {
            let Some(v) = get(name) else { return Ok(None) };
            let items: Vec<String> = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            if items.is_empty() {
                return Err(format!("{name} is set but lists no URL"));
            }
            Ok(Some(items))
        };
        let url = get("KEYCARD_REDIS_URL").filter(|u| !u.trim().is_empty());
        let cluster = list("KEYCARD_REDIS_CLUSTER")?;
        let sentinels = list("KEYCARD_REDIS_SENTINELS")?;
        let named = [
            ("KEYCARD_REDIS_URL", url.is_some()),
            ("KEYCARD_REDIS_CLUSTER", cluster.is_some()),
            ("KEYCARD_REDIS_SENTINELS", sentinels.is_some()),
        ];
        let set: Vec<&str> = named
            .iter()
            .filter(|(_, on)| *on)
            .map(|(n, _)| *n)
            .collect();
        if set.len() > 1 {
            return Err(format!("set only one of {}", set.join(", ")));
        }
        let mut config = match (url, cluster, sentinels) {
            (Some(url), _, _) => Self::new(url.trim()),
            (_, Some(seeds), _) => Self::cluster(seeds),
            (_, _, Some(sentinels)) => {
                let service = get("KEYCARD_REDIS_SENTINEL_SERVICE").ok_or(
                    "KEYCARD_REDIS_SENTINELS is set: KEYCARD_REDIS_SENTINEL_SERVICE must name the monitored primary",
                )?;
                Self::sentinel(sentinels, service)
            }
            _ => return Ok(None),
        };
        if let Some(path) = get("KEYCARD_REDIS_CA_FILE") {
            let pem =
                std::fs::read(&path).map_err(|e| format!("KEYCARD_REDIS_CA_FILE={path}: {e}"))?;
            config = config.tls_root_ca_pem(pem);
        }
        if let Some(prefix) = get("KEYCARD_REDIS_PREFIX") {
            config = config.prefix(prefix);
        }
        if let Some(n) = get("KEYCARD_REDIS_WAIT_REPLICAS") {
            let n = n.trim().parse().map_err(|_| {
                format!("KEYCARD_REDIS_WAIT_REPLICAS={n:?} is not a number of replicas")
            })?;
            config = config.wait_for_replicas(n);
        }
        Ok(Some(config))
    }

    /// Where this configuration connects, safe to log.
    pub fn describe(&self) -> String {
        match (&self.cluster, &self.sentinel) {
            (Some(seeds), _) => format!(
                "the Redis Cluster at {}",
                seeds
                    .iter()
                    .map(|u| redact_url(u))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            (_, Some((sentinels, service))) => format!(
                "the primary {service} named by the sentinels at {}",
                sentinels
                    .iter()
                    .map(|u| redact_url(u))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => format!("Redis at {}", redact_url(&self.url)),
        }
    }

    /// Trust this CA (PEM) for `rediss://` instead of the system's roots:
    /// for a private CA, as managed Redis services and self-run clusters use.
    pub fn tls_root_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_ca_pem = Some(pem.into());
        self
    }

    /// Acknowledge a write only once `n` replicas have it (`WAIT n`
    /// after each write, waiting up to half the operation timeout; fewer is an error
    /// to the caller). Redis replicates asynchronously: without this, a
    /// primary that dies or is cut off right after acknowledging a logout
    /// can take it along (each keycard node writes its own acknowledged
    /// revocations again when it notices, but a node that dies too cannot).
    /// Default 0. Pair it with the server's `min-replicas-to-write`. In a
    /// Redis Cluster the client sends `WAIT` to every primary and takes
    /// the smallest answer and cannot pin it to the node that took the
    /// write, so connecting refuses `wait_for_replicas` with a cluster for
    /// now. A committed login or rotation whose replicas fall short is
    /// kept (and logged): failing it would make the client's retry look
    /// like refresh-token reuse. Revocations do fail on a shortfall.
    pub fn wait_for_replicas(mut self, n: usize) -> Self {
        self.wait_replicas = n;
        self
    }

    /// Prefix for every key and channel (to share one Redis between apps).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Timeout for connecting and for each operation.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        // Bounded, so that the multiples the stores use cannot overflow.
        self.timeout = timeout.clamp(Duration::from_millis(1), Duration::from_secs(3600));
        self
    }

    /// How often the sync task sends a heartbeat through its own
    /// subscription (and pings Redis, and reads the Redis clock).
    pub fn health_interval(mut self, every: Duration) -> Self {
        self.health_interval = every.clamp(Duration::from_millis(10), Duration::from_secs(3600));
        self
    }

    /// How long the local view may go without proving itself current (a
    /// heartbeat published after every acknowledged revocation came back
    /// through the subscription) before checks fail closed (503) and the
    /// subscription is rebuilt. Default 3 s; at least twice the health
    /// interval.
    pub fn max_staleness(mut self, bound: Duration) -> Self {
        self.max_staleness = bound.min(Duration::from_secs(24 * 3600));
        self
    }

    /// The staleness bound in force: [`RedisConfig::max_staleness`], but
    /// never less than two health intervals.
    pub(crate) fn staleness_bound(&self) -> Duration {
        self.max_staleness.max(self.health_interval * 2)
    }

    /// The node's own clock (default: the system clock). The stores measure
    /// its offset to the Redis server's clock and answer
    /// [`keycard_core::RevocationStore::now`] by Redis time, so nodes whose
    /// clocks disagree still issue, verify and cut off by one clock. Tests
    /// pass a [`keycard_core::SkewedClock`] to play a node whose clock is off.
    pub fn local_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.local_clock = clock;
        self
    }
}

/// The key layout under the prefix.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    pub(crate) jti: String,
    pub(crate) sid: String,
    pub(crate) sub: String,
    pub(crate) subcut: String,
    pub(crate) seq: String,
    pub(crate) channel: String,
    pub(crate) heartbeat: String,
    pub(crate) family: String,
    pub(crate) subject_families: String,
    pub(crate) dpop: String,
    /// Replicas that must have a write before it counts (`WAIT`); not a
    /// key, but it travels with them to every write.
    pub(crate) wait_replicas: usize,
}

/// The prefix as a hash tag, so every key under it lands in one cluster
/// slot: `keycard:` becomes `{keycard}:`, `app` becomes `{app}`, and a
/// prefix that already holds a non-empty `{...}` is kept as it is.
pub(crate) fn hash_tagged(prefix: &str) -> String {
    if let Some(open) = prefix.find('{') {
        if prefix[open + 1..].find('}').is_some_and(|close| close > 0) {
            return prefix.to_owned();
        }
    }
    match prefix.strip_suffix(':') {
        Some(stem) if !stem.is_empty() => format!("{{{stem}}}:"),
        _ => format!("{{{prefix}}}"),
    }
}

impl Keys {
    /// The layout for one server (`cluster == false`: unchanged from earlier
    /// releases, so an upgrade finds its data) or for a cluster (one hash
    /// slot for everything but the DPoP replay keys).
    pub(crate) fn new(prefix: &str, node: &str, cluster: bool, wait_replicas: usize) -> Self {
        let dpop = format!("{prefix}dpop:");
        let prefix = if cluster {
            hash_tagged(prefix)
        } else {
            prefix.to_owned()
        };
        Self {
            jti: format!("{prefix}rev:jti"),
            dpop,
            wait_replicas,
            sid: format!("{prefix}rev:sid"),
            sub: format!("{prefix}rev:sub"),
            subcut: format!("{prefix}rev:subcut"),
            seq: format!("{prefix}rev:seq"),
            channel: format!("{prefix}rev:events"),
            heartbeat: format!("{prefix}rev:hb:{node}"),
            family: format!("{prefix}rf:"),
            subject_families: format!("{prefix}rfsub:"),
        }
    }

    pub(crate) fn family(&self, sid: &str) -> String {
        format!("{}{sid}", self.family)
    }

    pub(crate) fn subject(&self, sub: &str) -> String {
        format!("{}{sub}", self.subject_families)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_prefixes_become_one_hash_tag() {
        assert_eq!(hash_tagged("keycard:"), "{keycard}:");
        assert_eq!(hash_tagged("app"), "{app}");
        assert_eq!(hash_tagged("a{tag}b:"), "a{tag}b:");
        assert_eq!(hash_tagged("x{}:"), "{x{}}:", "an empty tag is no tag");
        let k = Keys::new("keycard:", "n1", true, 0);
        for key in [
            &k.jti,
            &k.sid,
            &k.sub,
            &k.subcut,
            &k.seq,
            &k.channel,
            &k.heartbeat,
        ] {
            assert!(key.starts_with("{keycard}:"), "{key}");
        }
        assert_eq!(k.family("s1"), "{keycard}:rf:s1");
        assert_eq!(k.subject("alice"), "{keycard}:rfsub:alice");
        assert_eq!(k.dpop, "keycard:dpop:", "DPoP keys spread over the shards");
        let single = Keys::new("keycard:", "n1", false, 0);
        assert_eq!(single.jti, "keycard:rev:jti", "one server keeps its layout");
        let dbg = format!(
            "{:?}",
            RedisConfig::cluster(["redis://:pw@h:1", "redis://h:2"])
        );
        assert!(!dbg.contains("pw") && dbg.contains("h:2"), "{dbg}");
    }

    #[test]
    fn the_environment_names_one_deployment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert!(RedisConfig::from_lookup(env(&[])).unwrap().is_none());
        let c = RedisConfig::from_lookup(env(&[("KEYCARD_REDIS_URL", "redis://:pw@h:1")]))
            .unwrap()
            .unwrap();
        assert_eq!(c.describe(), "Redis at redis://<redacted>@h:1");
        let c = RedisConfig::from_lookup(env(&[
            ("KEYCARD_REDIS_CLUSTER", "redis://a:1, redis://b:2"),
            ("KEYCARD_REDIS_PREFIX", "app:"),
            ("KEYCARD_REDIS_WAIT_REPLICAS", "1"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.cluster.as_ref().map(Vec::len), Some(2));
        assert_eq!((c.prefix.as_str(), c.wait_replicas), ("app:", 1));
        let c = RedisConfig::from_lookup(env(&[
            (
                "KEYCARD_REDIS_SENTINELS",
                "redis://s1:26379,redis://s2:26379",
            ),
            ("KEYCARD_REDIS_SENTINEL_SERVICE", "main"),
        ]))
        .unwrap()
        .unwrap();
        assert!(
            c.describe().contains("main named by the sentinels"),
            "{}",
            c.describe()
        );
        for (bad, says) in [
            (
                &[
                    ("KEYCARD_REDIS_URL", "redis://h"),
                    ("KEYCARD_REDIS_CLUSTER", "redis://a"),
                ][..],
                "set only one of KEYCARD_REDIS_URL, KEYCARD_REDIS_CLUSTER",
            ),
            (
                &[("KEYCARD_REDIS_CLUSTER", " , ")][..],
                "KEYCARD_REDIS_CLUSTER is set but lists no URL",
            ),
            (
                &[("KEYCARD_REDIS_SENTINELS", "redis://s")][..],
                "KEYCARD_REDIS_SENTINEL_SERVICE",
            ),
            (
                &[
                    ("KEYCARD_REDIS_URL", "redis://h"),
                    ("KEYCARD_REDIS_WAIT_REPLICAS", "two"),
                ][..],
                "KEYCARD_REDIS_WAIT_REPLICAS=\"two\"",
            ),
            (
                &[
                    ("KEYCARD_REDIS_URL", "redis://h"),
                    ("KEYCARD_REDIS_CA_FILE", "/nonexistent/ca.pem"),
                ][..],
                "KEYCARD_REDIS_CA_FILE=/nonexistent/ca.pem",
            ),
        ] {
            let pairs: Vec<(String, String)> = bad
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            let err = RedisConfig::from_lookup(|n| {
                pairs.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone())
            })
            .unwrap_err();
            assert!(err.contains(says), "{err}");
        }
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("redis://user:hunter2@db.example:6379/0"),
            "redis://<redacted>@db.example:6379/0"
        );
        assert_eq!(redact_url("rediss://:pw@h/1"), "rediss://<redacted>@h/1");
        assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
        // A slash in the password, and unix-socket query parameters.
        let shown = redact_url("redis://admin:s3cr/t@127.0.0.1:6391/0");
        assert!(!shown.contains("s3cr"), "{shown}");
        let shown = redact_url("redis+unix:///tmp/r.sock?pass=hunter2&db=1");
        assert!(
            !shown.contains("hunter2") && shown.contains("db=1"),
            "{shown}"
        );
        assert_eq!(redact_url("not a url :pw@"), "<unparsable url>");
        // Passwords a URL parser would misread: digits then a raw slash.
        for raw in [
            "redis://admin:1234/x@h:6379/0",
            "redis://u:p?q#r@h:1",
            "redis://:a@b@h:1",
        ] {
            let shown = redact_url(raw);
            assert!(
                !shown.contains("1234")
                    && !shown.contains("x@")
                    && !shown.contains("p?q")
                    && !shown.contains("a@b"),
                "{raw} -> {shown}"
            );
            assert!(
                shown.starts_with("redis://<redacted>@h:"),
                "{raw} -> {shown}"
            );
        }
        let dbg = format!("{:?}", RedisConfig::new("redis://u:hunter2@h:1"));
        assert!(!dbg.contains("hunter2"), "{dbg}");
    }
}
