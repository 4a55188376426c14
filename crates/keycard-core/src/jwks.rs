//! Remote keys: a JWKS fetched over HTTPS and cached, OIDC discovery, and
//! several issuers at once (feature `jwks`).
//!
//! What the cache promises:
//! - **Lock-free reads.** The request path loads the current key set from an
//!   `arc-swap`; no request waits on a lock, and a request whose `kid` is
//!   known never waits on the network.
//! - **Single-flight, rate-limited refetch.** A token naming an unknown `kid`
//!   triggers one fetch; concurrent requests wait for that same fetch (no
//!   longer than the fetch timeout). After any fetch attempt, unknown `kid`s
//!   are answered "not found" for the cooldown, so a flood of random `kid`s
//!   costs at most one fetch per cooldown.
//! - **Freshness.** `Cache-Control: max-age` is honoured within bounds, and a
//!   background task refreshes before expiry.
//! - **Outages.** A failed or malformed fetch never replaces good keys; the
//!   last good keys keep serving up to a maximum staleness, with a warning.
//! - **Filtering.** Only signature keys (`use` absent or `sig`, `key_ops`
//!   allowing `verify`); no symmetric (`oct`) keys; RSA under 2048 bits and EC
//!   keys whose curve does not match are dropped; the algorithm comes from
//!   the JWK's `alg` or from configuration, never from the token. URLs named
//!   by tokens (`jku`, `x5u`) are never fetched.
//!
//! ```
//! use std::sync::Arc;
//! use keycard_core::jwks::RemoteJwks;
//! use keycard_core::Verifier;
//!
//! // Lazy: nothing is fetched until the first token arrives.
//! let jwks = RemoteJwks::builder("https://idp.example.com/.well-known/jwks.json").build_lazy()?;
//! let verifier = Verifier::builder()
//!     .key_provider(Arc::new(jwks))
//!     .issuer("https://idp.example.com")
//!     .audience("api")
//!     .build()?;
//! # let _ = verifier;
//!
//! // Plain http is refused unless it is loopback and explicitly allowed.
//! assert!(RemoteJwks::builder("http://idp.example.com/jwks.json").build_lazy().is_err());
//! assert!(RemoteJwks::builder("http://127.0.0.1:8080/jwks.json")
//!     .insecure_allow_http_loopback()
//!     .build_lazy()
//!     .is_ok());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub use crate::key::MultiIssuer;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::Algorithm;
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;
use url::Url;

use crate::error::ConfigError;
use crate::key::{alg_name, answers_kid, BoxFuture, Key, KeyLookup, KeyProvider};

/// Why a JWKS or discovery document could not be used.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// The configuration is wrong (e.g. a plain-http URL).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The endpoint could not be reached, timed out or answered non-200.
    #[error("fetching {url} failed: {reason}")]
    Fetch {
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The document is not a usable JWKS or discovery document.
    #[error("invalid document from {url}: {reason}")]
    Invalid {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The discovery document names another issuer.
    #[error("discovery document names issuer {found:?}, expected {expected:?}")]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The one in the document.
        found: String,
    },
}

/// Builds a [`RemoteJwks`].
#[derive(Debug, Clone)]
#[must_use]
pub struct JwksBuilder {
    source: Source,
    allow_http_loopback: bool,
    timeout: Duration,
    cooldown: Duration,
    default_ttl: Duration,
    min_ttl: Duration,
    max_ttl: Duration,
    max_stale: Duration,
    max_bytes: usize,
    max_keys: usize,
    algorithms: Vec<Algorithm>,
    client: Option<reqwest::Client>,
}

#[derive(Debug, Clone)]
enum Source {
    Url(String),
    Issuer(String),
}

impl JwksBuilder {
    fn new(source: Source) -> Self {
        Self {
            source,
            allow_http_loopback: false,
            timeout: Duration::from_secs(5),
            cooldown: Duration::from_secs(30),
            default_ttl: Duration::from_secs(300),
            min_ttl: Duration::from_secs(30),
            max_ttl: Duration::from_secs(24 * 3600),
            max_stale: Duration::from_secs(24 * 3600),
            max_bytes: 256 * 1024,
            max_keys: 64,
            algorithms: ASYMMETRIC_ALGORITHMS.to_vec(),
            client: None,
        }
    }

    /// Permit plain `http://` URLs whose host is a loopback address, for
    /// tests and local development. Remote URLs must always be `https://`.
    pub fn insecure_allow_http_loopback(mut self) -> Self {
        self.allow_http_loopback = true;
        self
    }

    /// Timeout of one fetch, connection included (default 5 s).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// Minimum time between fetches triggered by unknown `kid`s (default 30 s).
    pub fn cooldown(mut self, d: Duration) -> Self {
        self.cooldown = d;
        self
    }

    /// Cache lifetime when the response has no `max-age` (default 5 min), and
    /// the bounds any `max-age` is clamped to (default 30 s to 24 h).
    pub fn ttl(mut self, default: Duration, min: Duration, max: Duration) -> Self {
        self.default_ttl = default;
        self.min_ttl = min;
        self.max_ttl = max;
        self
    }

    /// How long the last good keys keep serving while the endpoint fails
    /// (default 24 h after the last successful fetch).
    pub fn max_staleness(mut self, d: Duration) -> Self {
        self.max_stale = d;
        self
    }

    /// Largest accepted document in bytes (default 256 KiB).
    pub fn max_bytes(mut self, n: usize) -> Self {
        self.max_bytes = n;
        self
    }

    /// Most keys accepted in one document (default 64).
    pub fn max_keys(mut self, n: usize) -> Self {
        self.max_keys = n;
        self
    }

    /// The algorithms keys from this source may verify (Spring and Nimbus
    /// call this the JWS algorithm set). Default: every asymmetric
    /// algorithm keycard supports ([`ASYMMETRIC_ALGORITHMS`]). A JWK
    /// naming an algorithm outside the set is skipped; a JWK without `alg`
    /// serves every allowed algorithm of its own family (an RSA key: RS*
    /// and PS*). HMAC is never taken from a JWKS, whatever the set says.
    pub fn algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algs.into_iter().collect();
        self
    }

    /// Fetch with your own HTTP client: a custom CA, a proxy, mTLS, your
    /// own timeouts. keycard still bounds each fetch by [`Self::timeout`]
    /// and the document by [`Self::max_bytes`]; redirects follow your
    /// client's policy (keycard's own client follows none).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    fn into_inner(self) -> Result<Arc<Inner>, JwksError> {
        crate::key::ensure_crypto()?;
        if let Source::Url(url) = &self.source {
            check_url(url, self.allow_http_loopback)?;
        }
        let client = match &self.client {
            Some(c) => c.clone(),
            None => reqwest::Client::builder()
                .timeout(self.timeout)
                .connect_timeout(self.timeout)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| ConfigError::InvalidSetting(format!("HTTP client: {e}")))?,
        };
        let (gen, _) = watch::channel(0u64);
        let url = OnceLock::new();
        if let Source::Url(u) = &self.source {
            let _ = url.set(u.clone());
        }
        Ok(Arc::new(Inner {
            cfg: self,
            client,
            url,
            snapshot: ArcSwapOption::empty(),
            last_attempt: Mutex::new(None),
            inflight: AtomicBool::new(false),
            gen,
            fetches: AtomicU64::new(0),
            last_error: Mutex::new(None),
            background: AtomicBool::new(false),
        }))
    }

    /// Build without fetching: the first token triggers the first fetch.
    /// Needs a Tokio runtime when tokens arrive.
    pub fn build_lazy(self) -> Result<RemoteJwks, JwksError> {
        let inner = self.into_inner()?;
        // Inside a Tokio runtime, start fetching at once in the background
        // (with backoff while the endpoint fails), so a service that starts
        // while its identity provider is away is ready as soon as it is back.
        spawn_background(&inner);
        Ok(RemoteJwks(inner))
    }

    /// Fetch now and fail fast if the keys cannot be loaded; then keep them
    /// fresh in the background.
    pub async fn build(self) -> Result<RemoteJwks, JwksError> {
        let inner = self.into_inner()?;
        inner.mark_attempt();
        inner.clone().fetch_once().await?;
        spawn_background(&inner);
        Ok(RemoteJwks(inner))
    }
}

fn check_url(url: &str, allow_http_loopback: bool) -> Result<Url, JwksError> {
    let parsed = Url::parse(url)
        .map_err(|e| ConfigError::InvalidSetting(format!("invalid JWKS URL {url:?}: {e}")))?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if allow_http_loopback && is_loopback(&parsed) => Ok(parsed),
        "http" => Err(ConfigError::InvalidSetting(format!(
            "{url} is plain http: use https (plain http is allowed only for loopback, by explicit opt-in)"
        ))
        .into()),
        other => Err(ConfigError::InvalidSetting(format!("unsupported URL scheme {other:?}")).into()),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

struct Snapshot {
    keys: Vec<Arc<Key>>,
    fetched_at: Instant,
    fresh_until: Instant,
}

struct Inner {
    cfg: JwksBuilder,
    client: reqwest::Client,
    /// The JWKS URL: configured, or found by discovery on the first fetch.
    url: OnceLock<String>,
    snapshot: ArcSwapOption<Snapshot>,
    /// When the last fetch started (a short critical section, never held
    /// across I/O).
    last_attempt: Mutex<Option<Instant>>,
    inflight: AtomicBool,
    gen: watch::Sender<u64>,
    fetches: AtomicU64,
    last_error: Mutex<Option<JwksError>>,
    background: AtomicBool,
}

/// A JWKS endpoint as a [`KeyProvider`]. Cheap to clone.
#[derive(Clone)]
pub struct RemoteJwks(Arc<Inner>);

impl fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("url", &self.0.url.get())
            .field(
                "keys",
                &self.0.snapshot.load().as_ref().map_or(0, |s| s.keys.len()),
            )
            .field("fetches", &self.fetch_count())
            .finish()
    }
}

impl RemoteJwks {
    /// Keys from a JWKS URL (HTTPS).
    pub fn builder(url: impl Into<String>) -> JwksBuilder {
        JwksBuilder::new(Source::Url(url.into()))
    }

    /// Keys found by OIDC discovery: `{issuer}/.well-known/openid-configuration`
    /// must name exactly `issuer`, and its `jwks_uri` is used.
    pub fn from_issuer(issuer: impl Into<String>) -> JwksBuilder {
        JwksBuilder::new(Source::Issuer(issuer.into()))
    }

    /// How many fetches were attempted so far.
    pub fn fetch_count(&self) -> u64 {
        self.0.fetches.load(Ordering::Relaxed)
    }

    /// The error of the last failed fetch, if the last fetch failed.
    pub fn last_error(&self) -> Option<JwksError> {
        lock(&self.0.last_error).clone()
    }

    /// The JWKS URL in use (after discovery, once it ran).
    pub fn url(&self) -> Option<&str> {
        self.0.url.get().map(String::as_str)
    }

    /// Number of usable keys now.
    pub fn key_count(&self) -> usize {
        self.0.snapshot.load().as_ref().map_or(0, |s| s.keys.len())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Start the refresher of this source, once. It refreshes when 80% of the
/// freshness window has passed (the window is at least the minimum TTL);
/// after a failure it waits the cooldown, then twice that, and so on up to
/// [`MAX_BACKOFF`], each wait with ±20% jitter so that replicas do not
/// retry in step.
fn spawn_background(inner: &Arc<Inner>) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if inner.background.swap(true, Ordering::AcqRel) {
        return;
    }
    let weak: Weak<Inner> = Arc::downgrade(inner);
    handle.spawn(async move {
        let mut failures: u32 = 0;
        loop {
            let wait = {
                let Some(inner) = weak.upgrade() else { return };
                let planned = if failures > 0 {
                    backoff(inner.cfg.cooldown, failures)
                } else {
                    let guard = inner.snapshot.load();
                    match guard.as_ref() {
                        Some(s) => {
                            let window = s.fresh_until.saturating_duration_since(s.fetched_at);
                            (s.fetched_at + window.mul_f32(0.8))
                                .saturating_duration_since(Instant::now())
                        }
                        // Never fetched: now.
                        None if lock(&inner.last_attempt).is_none() => Duration::ZERO,
                        None => inner.cfg.cooldown,
                    }
                };
                planned
            };
            tokio::time::sleep(wait.max(Duration::from_millis(200))).await;
            let Some(inner) = weak.upgrade() else { return };
            if inner.inflight.swap(true, Ordering::AcqRel) {
                // A fetch is running; plan again from its result.
                continue;
            }
            inner.mark_attempt();
            let r = inner.clone().fetch_once().await;
            inner.inflight.store(false, Ordering::Release);
            inner.gen.send_modify(|g| *g += 1);
            failures = if r.is_err() {
                failures.saturating_add(1)
            } else {
                0
            };
        }
    });
}

/// The longest wait between background retries during an outage.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The wait before retry number `failures` (1, 2, ...): the cooldown
/// doubled per failure, capped at [`MAX_BACKOFF`] (or the cooldown, if
/// longer), with ±20% jitter.
fn backoff(cooldown: Duration, failures: u32) -> Duration {
    let base = cooldown
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(MAX_BACKOFF.max(cooldown));
    let mut r = [0u8; 2];
    let _ = getrandom::fill(&mut r);
    // 0.8 ..= 1.2
    let factor = 0.8 + 0.4 * f64::from(u16::from_le_bytes(r)) / f64::from(u16::MAX);
    base.mul_f64(factor)
}

impl Inner {
    fn key_count(&self) -> usize {
        self.snapshot.load().as_ref().map_or(0, |s| s.keys.len())
    }

    /// Whether the keys can serve now: present and not past the staleness
    /// bound; else why not.
    fn readiness(&self) -> Result<(), String> {
        let guard = self.snapshot.load();
        let Some(snap) = guard.as_ref() else {
            let why = lock(&self.last_error)
                .as_ref()
                .map_or_else(|| "not fetched yet".to_owned(), ToString::to_string);
            return Err(format!("no JWKS keys yet: {why}"));
        };
        let age = snap.fetched_at.elapsed();
        metrics::gauge!(crate::observe::names::JWKS_AGE).set(age.as_secs_f64());
        if age > self.cfg.max_stale {
            return Err(format!(
                "JWKS keys are {}s old, past the staleness bound",
                age.as_secs()
            ));
        }
        Ok(())
    }

    fn mark_attempt(&self) {
        *lock(&self.last_attempt) = Some(Instant::now());
    }

    fn cooling_down(&self) -> bool {
        lock(&self.last_attempt).is_some_and(|t| t.elapsed() < self.cfg.cooldown)
    }

    /// One GET, bounded in time whatever client is used.
    async fn get_bytes(&self, url: &str) -> Result<(Vec<u8>, Option<Duration>), JwksError> {
        match tokio::time::timeout(self.cfg.timeout, self.get_bytes_unbounded(url)).await {
            Ok(r) => r,
            Err(_) => Err(JwksError::Fetch {
                url: url.to_owned(),
                reason: format!("no complete answer within {:?}", self.cfg.timeout),
            }),
        }
    }

    async fn get_bytes_unbounded(
        &self,
        url: &str,
    ) -> Result<(Vec<u8>, Option<Duration>), JwksError> {
        let fail = |reason: String| JwksError::Fetch {
            url: url.to_owned(),
            reason,
        };
        let mut res = self
            .client
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        if !res.status().is_success() {
            return Err(fail(format!("status {}", res.status())));
        }
        let max_age = res
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_max_age);
        if res
            .content_length()
            .is_some_and(|n| n > self.cfg.max_bytes as u64)
        {
            return Err(fail("response too large".into()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(|e| fail(e.to_string()))? {
            if body.len() + chunk.len() > self.cfg.max_bytes {
                return Err(fail("response too large".into()));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, max_age))
    }

    async fn jwks_url(&self) -> Result<String, JwksError> {
        if let Some(u) = self.url.get() {
            return Ok(u.clone());
        }
        let Source::Issuer(issuer) = &self.cfg.source else {
            unreachable_source()
        };
        // OpenID Connect discovery first; when the issuer publishes none
        // (404), RFC 8414 authorization server metadata, with the same
        // exact-issuer rule.
        let mut last = None;
        for discovery in discovery_urls(issuer) {
            check_url(&discovery, self.cfg.allow_http_loopback)?;
            let body = match self.get_bytes(&discovery).await {
                Ok((body, _)) => body,
                Err(e) if is_not_found(&e) => {
                    last = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let invalid = |reason: &str| JwksError::Invalid {
                url: discovery.clone(),
                reason: reason.to_owned(),
            };
            let doc: Value = serde_json::from_slice(&body).map_err(|_| invalid("not JSON"))?;
            let found = doc["issuer"].as_str().ok_or_else(|| invalid("no issuer"))?;
            if found != issuer {
                return Err(JwksError::IssuerMismatch {
                    expected: issuer.clone(),
                    found: found.to_owned(),
                });
            }
            let jwks_uri = doc["jwks_uri"]
                .as_str()
                .ok_or_else(|| invalid("no jwks_uri"))?;
            check_url(jwks_uri, self.cfg.allow_http_loopback)?;
            let _ = self.url.set(jwks_uri.to_owned());
            return Ok(jwks_uri.to_owned());
        }
        Err(last.unwrap_or_else(|| JwksError::Fetch {
            url: issuer.clone(),
            reason: "no discovery document".into(),
        }))
    }

    async fn fetch_once(self: Arc<Self>) -> Result<(), JwksError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let result: Result<(), JwksError> = async {
            let url = self.jwks_url().await?;
            let (body, max_age) = self.get_bytes(&url).await?;
            let keys = parse_jwks(&body, &self.cfg).map_err(|reason| JwksError::Invalid {
                url: url.clone(),
                reason,
            })?;
            let ttl = max_age
                .unwrap_or(self.cfg.default_ttl)
                .clamp(self.cfg.min_ttl, self.cfg.max_ttl.max(self.cfg.min_ttl));
            let now = Instant::now();
            self.snapshot.store(Some(Arc::new(Snapshot {
                keys,
                fetched_at: now,
                fresh_until: now + ttl,
            })));
            Ok(())
        }
        .await;
        match &result {
            Ok(()) => {
                *lock(&self.last_error) = None;
                metrics::counter!(crate::observe::names::JWKS_FETCHES, "result" => "ok")
                    .increment(1);
                metrics::gauge!(crate::observe::names::JWKS_KEYS).set(self.key_count() as f64);
                metrics::gauge!(crate::observe::names::JWKS_AGE).set(0.0);
            }
            Err(e) => {
                tracing::warn!(error = %e, "JWKS refresh failed; keeping the last good keys");
                metrics::counter!(crate::observe::names::JWKS_FETCHES, "result" => "error")
                    .increment(1);
                *lock(&self.last_error) = Some(e.clone());
            }
        }
        result
    }

    /// Start a fetch unless one runs, and wait for it (bounded by the
    /// timeout). Never holds a lock across the fetch.
    async fn refresh_single_flight(self: Arc<Self>) {
        let mut rx = self.gen.subscribe();
        let before = *rx.borrow_and_update();
        if !self.inflight.swap(true, Ordering::AcqRel) {
            if self.cooling_down() && self.snapshot.load().is_some() {
                self.inflight.store(false, Ordering::Release);
                return;
            }
            self.mark_attempt();
            let me = self.clone();
            // Spawned, so a cancelled request does not cancel the fetch
            // that others wait for.
            tokio::spawn(async move {
                let _ = me.clone().fetch_once().await;
                me.inflight.store(false, Ordering::Release);
                me.gen.send_modify(|g| *g += 1);
                if me.snapshot.load().is_some() {
                    spawn_background(&me);
                }
            });
        }
        let wait = self.cfg.timeout * 2 + Duration::from_millis(100);
        let _ = tokio::time::timeout(wait, rx.wait_for(|g| *g != before)).await;
    }
}

/// Where an issuer's metadata may live: OpenID Connect discovery
/// (`{issuer}/.well-known/openid-configuration`), then RFC 8414 (the
/// well-known segment inserted between host and path:
/// `https://host/.well-known/oauth-authorization-server/path`).
fn discovery_urls(issuer: &str) -> Vec<String> {
    let trimmed = issuer.trim_end_matches('/');
    let mut out = vec![format!("{trimmed}/.well-known/openid-configuration")];
    let rfc8414 = match Url::parse(trimmed) {
        Ok(u) if u.path() != "/" && !u.path().is_empty() => {
            let origin = u.origin().ascii_serialization();
            format!(
                "{origin}/.well-known/oauth-authorization-server{}",
                u.path().trim_end_matches('/')
            )
        }
        _ => format!("{trimmed}/.well-known/oauth-authorization-server"),
    };
    out.push(rfc8414);
    out
}

fn is_not_found(e: &JwksError) -> bool {
    matches!(e, JwksError::Fetch { reason, .. } if reason.starts_with("status 404"))
}

fn unreachable_source() -> ! {
    unreachable!("a URL source always has its URL set at build time")
}

/// `max-age=N` from a `Cache-Control` value; `no-store`/`no-cache` mean 0.
fn parse_max_age(v: &str) -> Option<Duration> {
    let mut out = None;
    for part in v.split(',') {
        let part = part.trim();
        if part.eq_ignore_ascii_case("no-store") || part.eq_ignore_ascii_case("no-cache") {
            return Some(Duration::ZERO);
        }
        if let Some(n) = part
            .strip_prefix("max-age=")
            .or_else(|| part.strip_prefix("s-maxage="))
        {
            if let Ok(n) = n.trim_matches('"').parse::<u64>() {
                out = Some(Duration::from_secs(n));
            }
        }
    }
    out
}

/// Parse and filter a JWKS document with the default limits and filters,
/// as a fetch would (for inspecting a document, and for fuzzing).
pub fn parse_document(body: &[u8]) -> Result<Vec<Key>, String> {
    let cfg = RemoteJwks::builder("https://parse.invalid/");
    Ok(parse_jwks(body, &cfg)?
        .iter()
        .map(|k| (**k).clone())
        .collect())
}

/// Parse and filter a JWKS document. An error (not JSON, no `keys`, no
/// usable key) leaves the previous keys in place. A document with more keys
/// than the limit keeps its first `max_keys` keys (identity providers list
/// their current keys first; keycard's own key ring publishes newest first)
/// and warns, rather than throwing away the usable ones.
pub(crate) fn parse_jwks(body: &[u8], cfg: &JwksBuilder) -> Result<Vec<Arc<Key>>, String> {
    let doc: Value = serde_json::from_slice(body).map_err(|_| "not JSON".to_owned())?;
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| "no \"keys\" array".to_owned())?;
    if keys.len() > cfg.max_keys {
        tracing::warn!(
            keys = keys.len(),
            limit = cfg.max_keys,
            "JWKS holds more keys than the limit; keeping the first ones"
        );
    }
    let mut out: Vec<Arc<Key>> = Vec::new();
    for raw in keys.iter().take(cfg.max_keys) {
        match usable_keys(raw, cfg) {
            Ok(keys) => {
                for key in keys {
                    if key.kid().is_some()
                        && out.iter().any(|k| k.kid() == key.kid() && k.alg == key.alg)
                    {
                        continue;
                    }
                    out.push(Arc::new(key));
                }
            }
            Err(Skip::Mismatch(why)) => {
                tracing::warn!(reason = %why, "JWKS key skipped: its type does not fit its algorithm")
            }
            Err(Skip::Other(why)) => tracing::debug!(reason = %why, "JWKS key skipped"),
        }
    }
    if out.is_empty() {
        return Err("no usable signature key".into());
    }
    Ok(out)
}

/// Why a JWK was not taken.
enum Skip {
    /// The key's type does not fit its algorithm (warned about: either a
    /// broken identity provider or an attack).
    Mismatch(String),
    /// Not a usable signature key (encryption keys, unsupported types,
    /// algorithms outside the allow-list).
    Other(String),
}

/// The asymmetric algorithms keycard verifies: the default allow-list for
/// remote keys.
pub const ASYMMETRIC_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The keys one JWK yields: one for its `alg`, or, without `alg`, one per
/// allowed algorithm of its family (RFC 7517 §4.4 makes `alg` optional; an
/// RSA key then serves RS* and PS*, never anything else).
fn usable_keys(raw: &Value, cfg: &JwksBuilder) -> Result<Vec<Key>, Skip> {
    let other = Skip::Other;
    let raw = crate::key::normalize_jwk_alg(raw);
    let jwk: Jwk =
        serde_json::from_value(raw.into_owned()).map_err(|e| other(format!("not a JWK: {e}")))?;
    if let Some(u) = &jwk.common.public_key_use {
        if *u != PublicKeyUse::Signature {
            return Err(other("not a signature key".into()));
        }
    }
    if let Some(ops) = &jwk.common.key_operations {
        if !ops.contains(&KeyOperations::Verify) {
            return Err(other("key_ops does not allow verify".into()));
        }
    }
    let family: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::OctetKey(_) => {
            // Never a secret from a document anyone can read.
            return Err(Skip::Mismatch(
                "symmetric (oct) keys are never taken from a JWKS".into(),
            ));
        }
        AlgorithmParameters::RSA(_) => ASYMMETRIC_ALGORITHMS[..6].to_vec(),
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return Err(other("unsupported curve".into())),
        },
        AlgorithmParameters::OctetKeyPair(_) => vec![Algorithm::EdDSA],
        _ => return Err(other("unsupported key type".into())),
    };
    let map_err = |e: ConfigError| match e {
        ConfigError::KeyTypeMismatch { .. } | ConfigError::KeyAlgorithmMismatch(_) => {
            Skip::Mismatch(e.to_string())
        }
        e => other(e.to_string()),
    };
    if jwk.common.key_algorithm.is_some() {
        let key = Key::from_jwk(&jwk, None).map_err(map_err)?;
        if !cfg.algorithms.contains(&key.alg) {
            return Err(other(format!("{:?} is not an allowed algorithm", key.alg)));
        }
        return Ok(vec![key]);
    }
    let allowed: Vec<Algorithm> = family
        .into_iter()
        .filter(|a| cfg.algorithms.contains(a))
        .collect();
    if allowed.is_empty() {
        return Err(other("no allowed algorithm fits this key".into()));
    }
    allowed
        .into_iter()
        .map(|a| Key::from_jwk(&jwk, Some(a)).map_err(map_err))
        .collect()
}

impl KeyProvider for RemoteJwks {
    fn lookup(&self, _issuer: Option<&str>, kid: Option<&str>, alg: &str) -> KeyLookup {
        let inner = &self.0;
        let guard = inner.snapshot.load();
        let Some(snap) = guard.as_ref() else {
            return if inner.cooling_down() && inner.fetches.load(Ordering::Relaxed) > 0 {
                KeyLookup::Unavailable
            } else {
                KeyLookup::Refresh
            };
        };
        if snap.fetched_at.elapsed() > inner.cfg.max_stale {
            return if inner.cooling_down() {
                KeyLookup::Unavailable
            } else {
                KeyLookup::Refresh
            };
        }
        let n = snap.keys.len();
        if let Some(found) = KeyLookup::from_matches(
            snap.keys
                .iter()
                .filter(|k| alg_name(k.alg) == alg && answers_kid(k, kid, n)),
        ) {
            found
        } else if crate::key::kid_known(snap.keys.iter(), kid) {
            // A refetch would not change what this key serves.
            KeyLookup::AlgorithmNotAllowed
        } else if inner.cooling_down() {
            // A negative answer, cached for the cooldown.
            KeyLookup::NotFound
        } else {
            KeyLookup::Refresh
        }
    }

    fn refresh<'a>(&'a self, _issuer: Option<&'a str>, _kid: Option<&'a str>) -> BoxFuture<'a, ()> {
        Box::pin(self.0.clone().refresh_single_flight())
    }

    fn readiness(&self) -> Result<(), String> {
        self.0.readiness()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let c = Duration::from_secs(10);
        for (failures, base) in [(1, 10.0), (2, 20.0), (3, 40.0), (10, 300.0), (40, 300.0)] {
            let b = backoff(c, failures).as_secs_f64();
            assert!(
                b >= base * 0.8 - 0.01 && b <= base * 1.2 + 0.01,
                "{failures}: {b}"
            );
        }
        // A cooldown above the cap is still honoured.
        assert!(backoff(Duration::from_secs(600), 3) >= Duration::from_secs(480));
    }

    #[test]
    fn discovery_then_rfc8414_with_the_path_after_the_well_known_segment() {
        assert_eq!(
            discovery_urls("https://as.example/tenant1/"),
            [
                "https://as.example/tenant1/.well-known/openid-configuration",
                "https://as.example/.well-known/oauth-authorization-server/tenant1",
            ]
        );
        assert_eq!(
            discovery_urls("https://as.example"),
            [
                "https://as.example/.well-known/openid-configuration",
                "https://as.example/.well-known/oauth-authorization-server",
            ]
        );
    }

    #[test]
    fn max_age_parsing() {
        assert_eq!(
            parse_max_age("public, max-age=600"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(parse_max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(parse_max_age("public"), None);
    }

    #[test]
    fn urls_must_be_https_unless_loopback_opt_in() {
        assert!(check_url("https://idp.example/jwks", false).is_ok());
        assert!(check_url("http://idp.example/jwks", false).is_err());
        assert!(check_url("http://idp.example/jwks", true).is_err());
        assert!(check_url("http://127.0.0.1:8080/jwks", false).is_err());
        assert!(check_url("http://127.0.0.1:8080/jwks", true).is_ok());
        assert!(check_url("http://[::1]:8080/jwks", true).is_ok());
        assert!(check_url("http://localhost/jwks", true).is_ok());
        assert!(check_url("file:///etc/passwd", true).is_err());
    }

    #[test]
    fn filtering() {
        let cfg = RemoteJwks::builder("https://x");
        let oct = serde_json::json!({"keys": [{"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", "alg": "HS256"}]});
        assert!(
            parse_jwks(oct.to_string().as_bytes(), &cfg).is_err(),
            "oct keys are dropped"
        );
        assert!(parse_jwks(b"garbage", &cfg).is_err());
        assert!(parse_jwks(br#"{"keys": 1}"#, &cfg).is_err());
        // Too many keys: the first ones are kept, not all thrown away.
        let ed = |i: u8| {
            serde_json::json!({"kty": "OKP", "crv": "Ed25519", "kid": format!("k{i}"),
            "x": crate::b64::encode(&[i; 32])})
        };
        let many = serde_json::json!({"keys": (0..70).map(ed).collect::<Vec<_>>()});
        let kept = parse_jwks(many.to_string().as_bytes(), &cfg).unwrap();
        assert_eq!(kept.len(), 64);
        assert_eq!(kept[0].kid(), Some("k0"));
        // Without alg, an RSA key serves every allowed RSA algorithm, and
        // only those; an allow-list narrows it.
        let rsa = serde_json::json!({"keys": [{"kty": "RSA", "kid": "r",
            "n": crate::b64::encode(&[0xc5; 256]), "e": "AQAB"}]});
        let keys = parse_jwks(rsa.to_string().as_bytes(), &cfg).unwrap();
        let algs: Vec<_> = keys.iter().map(|k| k.algorithm()).collect();
        assert_eq!(algs, ASYMMETRIC_ALGORITHMS[..6].to_vec());
        let only_ps =
            RemoteJwks::builder("https://x").algorithms([Algorithm::PS256, Algorithm::ES256]);
        let keys = parse_jwks(rsa.to_string().as_bytes(), &only_ps).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].algorithm(), Algorithm::PS256);
    }
}
