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
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use jsonwebtoken::Algorithm;
use tokio::sync::watch;
use url::Url;

use crate::error::ConfigError;
use crate::key::{alg_name, answers_kid, BoxFuture, KeyLookup, KeyProvider};

mod document;
mod fetch;
use document::*;
pub use document::{parse_document, ASYMMETRIC_ALGORITHMS};
pub use fetch::MAX_BACKOFF;
use fetch::*;

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
            None => http_client(self.timeout)?,
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

/// A URL as errors, logs and readiness show it: no user info, no query
/// (either may hold a credential), no fragment.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = Url::parse(url) else {
        return "<unparsable URL>".into();
    };
    let had_user = !parsed.username().is_empty() || parsed.password().is_some();
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    let had_query = parsed.query().is_some();
    parsed.set_query(None);
    parsed.set_fragment(None);
    let mut shown = parsed.to_string();
    if had_user {
        if let Some((scheme, rest)) = shown.split_once("://") {
            shown = format!("{scheme}://<redacted>@{rest}");
        }
    }
    if had_query {
        shown.push_str("?<redacted>");
    }
    shown
}

/// An endpoint keycard fetches from: `https`, or plain `http` on loopback
/// by explicit opt-in. Errors never show credentials in the URL.
pub(crate) fn check_url(url: &str, allow_http_loopback: bool) -> Result<Url, JwksError> {
    let parsed = Url::parse(url).map_err(|e| {
        let hint = if url.contains("://") {
            ""
        } else {
            " (a URL starts with https://)"
        };
        ConfigError::InvalidSetting(format!("invalid URL {}: {e}{hint}", redact_url(url)))
    })?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if allow_http_loopback && is_loopback(&parsed) => Ok(parsed),
        "http" => Err(ConfigError::InvalidSetting(format!(
            "{} is plain http: use https (plain http is allowed only for a loopback host, by explicit opt-in: `insecure_allow_http_loopback()` in code, `insecure_allow_http_loopback = true` in TOML, or KEYCARD_ALLOW_HTTP=1)",
            redact_url(url)
        ))
        .into()),
        other => Err(ConfigError::InvalidSetting(format!(
            "unsupported URL scheme {other:?} in {}: use https://",
            redact_url(url)
        ))
        .into()),
    }
}

/// keycard's own HTTP client: bounded in time, no redirects.
pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, ConfigError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| ConfigError::InvalidSetting(format!("HTTP client: {e}")))
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
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
    fn urls_are_shown_without_credentials() {
        assert_eq!(
            redact_url("https://user:PASSWORD@idp.example/jwks.json?api_key=KEY#frag"),
            "https://<redacted>@idp.example/jwks.json?<redacted>"
        );
        assert_eq!(
            redact_url("https://idp.example/jwks.json"),
            "https://idp.example/jwks.json"
        );
        assert_eq!(redact_url("not a url"), "<unparsable URL>");
        let err = RemoteJwks::builder("http://u:PASSWORD@idp.example/jwks.json?k=SECRET")
            .build_lazy()
            .unwrap_err()
            .to_string();
        assert!(
            !err.contains("PASSWORD") && !err.contains("SECRET"),
            "{err}"
        );
    }

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
