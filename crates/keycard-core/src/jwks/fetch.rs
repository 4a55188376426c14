//! Fetching and refreshing: the snapshot, single-flight refetch with a
//! cooldown, discovery, the background refresher with backoff.

use crate::key::Key;
use arc_swap::ArcSwapOption;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use url::Url;

use super::*;

pub(crate) struct Snapshot {
    pub(crate) keys: Vec<Arc<Key>>,
    pub(crate) fetched_at: Instant,
    pub(crate) fresh_until: Instant,
}

pub(crate) struct Inner {
    pub(crate) cfg: JwksBuilder,
    pub(crate) client: reqwest::Client,
    /// The JWKS URL: configured, or found by discovery on the first fetch.
    pub(crate) url: OnceLock<String>,
    pub(crate) snapshot: ArcSwapOption<Snapshot>,
    /// When the last fetch started (a short critical section, never held
    /// across I/O).
    pub(crate) last_attempt: Mutex<Option<Instant>>,
    pub(crate) inflight: AtomicBool,
    pub(crate) gen: watch::Sender<u64>,
    pub(crate) fetches: AtomicU64,
    pub(crate) last_error: Mutex<Option<JwksError>>,
    pub(crate) background: AtomicBool,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Start the refresher of this source, once. It refreshes when 80% of the
/// freshness window has passed (the window is at least the minimum TTL);
/// after a failure it waits the cooldown, then twice that, and so on up to
/// [`MAX_BACKOFF`], each wait with ±20% jitter so that replicas do not
/// retry in step.
pub(crate) fn spawn_background(inner: &Arc<Inner>) {
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
pub(crate) fn backoff(cooldown: Duration, failures: u32) -> Duration {
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
    pub(crate) fn key_count(&self) -> usize {
        self.snapshot.load().as_ref().map_or(0, |s| s.keys.len())
    }

    /// Whether the keys can serve now: present and not past the staleness
    /// bound; else why not.
    pub(crate) fn readiness(&self) -> Result<(), String> {
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

    pub(crate) fn mark_attempt(&self) {
        *lock(&self.last_attempt) = Some(Instant::now());
    }

    pub(crate) fn cooling_down(&self) -> bool {
        lock(&self.last_attempt).is_some_and(|t| t.elapsed() < self.cfg.cooldown)
    }

    /// One GET, bounded in time whatever client is used.
    pub(crate) async fn get_bytes(
        &self,
        url: &str,
    ) -> Result<(Vec<u8>, Option<Duration>), JwksError> {
        match tokio::time::timeout(self.cfg.timeout, self.get_bytes_unbounded(url)).await {
            Ok(r) => r,
            Err(_) => Err(JwksError::Fetch {
                url: redact_url(url),
                reason: format!("no complete answer within {:?}", self.cfg.timeout),
            }),
        }
    }

    pub(crate) async fn get_bytes_unbounded(
        &self,
        url: &str,
    ) -> Result<(Vec<u8>, Option<Duration>), JwksError> {
        let fail = |reason: String| JwksError::Fetch {
            url: redact_url(url),
            reason,
        };
        let mut res = self
            .client
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| fail(e.without_url().to_string()))?;
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
        while let Some(chunk) = res
            .chunk()
            .await
            .map_err(|e| fail(e.without_url().to_string()))?
        {
            if body.len() + chunk.len() > self.cfg.max_bytes {
                return Err(fail("response too large".into()));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, max_age))
    }

    pub(crate) async fn jwks_url(&self) -> Result<String, JwksError> {
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
                url: redact_url(&discovery),
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
            url: redact_url(issuer),
            reason: "no discovery document".into(),
        }))
    }

    pub(crate) async fn fetch_once(self: Arc<Self>) -> Result<(), JwksError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let result: Result<(), JwksError> = async {
            let url = self.jwks_url().await?;
            let (body, max_age) = self.get_bytes(&url).await?;
            let keys = parse_jwks(&body, &self.cfg).map_err(|reason| JwksError::Invalid {
                url: redact_url(&url),
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
                // Never claim keys that were never fetched.
                if self.key_count() == 0 {
                    tracing::warn!(
                        error = %e,
                        "JWKS fetch failed and no keys were ever fetched: tokens are refused (503) until a fetch succeeds"
                    );
                } else {
                    tracing::warn!(error = %e, "JWKS refresh failed; keeping the last good keys");
                }
                metrics::counter!(crate::observe::names::JWKS_FETCHES, "result" => "error")
                    .increment(1);
                *lock(&self.last_error) = Some(e.clone());
            }
        }
        result
    }

    /// Start a fetch unless one runs, and wait for it (bounded by the
    /// timeout). Never holds a lock across the fetch.
    pub(crate) async fn refresh_single_flight(self: Arc<Self>) {
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
pub(crate) fn discovery_urls(issuer: &str) -> Vec<String> {
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

pub(crate) fn is_not_found(e: &JwksError) -> bool {
    matches!(e, JwksError::Fetch { reason, .. } if reason.starts_with("status 404"))
}

pub(crate) fn unreachable_source() -> ! {
    unreachable!("a URL source always has its URL set at build time")
}

/// `max-age=N` from a `Cache-Control` value; `no-store`/`no-cache` mean 0.
pub(crate) fn parse_max_age(v: &str) -> Option<Duration> {
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
