//! Token introspection (RFC 7662), for opaque tokens, or for JWTs whose
//! revocation at the identity provider must count at once (feature
//! `introspection`).
//!
//! The verifier asks the authorization server's introspection endpoint and
//! treats an `active` answer like a verified token: same [`crate::Verified`],
//! same extractors, same `iss`/`aud`/`exp` checks and revocation store.
//! Answers are cached until the token's `exp`, at most for the configured
//! TTL (default 60 s); concurrent requests with the same token share one
//! call; an endpoint that fails, times out or answers garbage fails closed
//! (503), never open.
//!
//! ```
//! use keycard_core::introspection::{ClientAuth, Introspector};
//! use keycard_core::{Key, Verifier};
//!
//! let introspector = Introspector::builder(
//!     "https://idp.example.com/oauth2/introspect",
//!     ClientAuth::basic("resource-server", "its-secret"),
//! )
//! .build()?;
//! let verifier = Verifier::builder()
//!     .key(Key::hs256(b"an-example-secret-of-32-bytes-or-more")?) // JWTs first...
//!     .introspection(introspector)                               // ...opaque tokens here
//!     .audience("api")
//!     .build()?;
//! # let _ = verifier;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::error::{AuthError, AuthErrorKind, ConfigError};
use crate::issue::SigningKey;

/// How the resource server authenticates to the introspection endpoint.
#[derive(Clone)]
#[non_exhaustive]
pub enum ClientAuth {
    /// HTTP Basic with the client id and secret (RFC 6749 §2.3.1).
    Basic {
        /// The client id.
        client_id: String,
        /// The client secret.
        client_secret: String,
    },
    /// `private_key_jwt` (RFC 7523 §2.2): a short-lived assertion signed by
    /// the client's key, audience the endpoint.
    PrivateKeyJwt {
        /// The client id (`iss` and `sub` of the assertion).
        client_id: String,
        /// The client's signing key.
        key: SigningKey,
    },
}

impl ClientAuth {
    /// HTTP Basic.
    pub fn basic(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self::Basic {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
        }
    }

    /// `private_key_jwt`.
    pub fn private_key_jwt(client_id: impl Into<String>, key: SigningKey) -> Self {
        Self::PrivateKeyJwt {
            client_id: client_id.into(),
            key,
        }
    }
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Basic { client_id, .. } => f
                .debug_struct("Basic")
                .field("client_id", client_id)
                .field("client_secret", &"<redacted>")
                .finish(),
            Self::PrivateKeyJwt { client_id, .. } => f
                .debug_struct("PrivateKeyJwt")
                .field("client_id", client_id)
                .finish_non_exhaustive(),
        }
    }
}

/// Builds an [`Introspector`].
#[derive(Debug)]
#[must_use]
pub struct IntrospectorBuilder {
    endpoint: String,
    auth: ClientAuth,
    timeout: Duration,
    cache_ttl: Duration,
    max_entries: usize,
    allow_http_loopback: bool,
    jwts_too: bool,
    client: Option<reqwest::Client>,
}

impl IntrospectorBuilder {
    /// How long one call may take (default 5 s).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// The longest an answer is reused (default 60 s; never past the
    /// token's `exp`). Zero disables caching: every request asks.
    pub fn cache_ttl(mut self, d: Duration) -> Self {
        self.cache_ttl = d;
        self
    }

    /// The most answers kept (default 100 000).
    pub fn max_entries(mut self, n: usize) -> Self {
        self.max_entries = n.max(1);
        self
    }

    /// Also introspect JWTs after they verified locally, so that a token
    /// revoked at the identity provider stops working within the cache TTL.
    pub fn introspect_jwts_too(mut self) -> Self {
        self.jwts_too = true;
        self
    }

    /// Allow a plain-http loopback endpoint (tests, local development).
    pub fn insecure_allow_http_loopback(mut self) -> Self {
        self.allow_http_loopback = true;
        self
    }

    /// Your own HTTP client (custom CA, proxy, mTLS).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Build it.
    pub fn build(self) -> Result<Introspector, ConfigError> {
        crate::key::ensure_crypto()?;
        crate::jwks::check_url(&self.endpoint, self.allow_http_loopback).map_err(|e| match e {
            crate::jwks::JwksError::Config(c) => c,
            other => ConfigError::InvalidSetting(other.to_string()),
        })?;
        let client = match &self.client {
            Some(c) => c.clone(),
            None => crate::jwks::http_client(self.timeout)?,
        };
        Ok(Introspector(Arc::new(Inner {
            cfg: self,
            client,
            cache: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
            calls: std::sync::atomic::AtomicU64::new(0),
        })))
    }
}

type Answer = Result<Option<Arc<Vec<u8>>>, AuthError>;

struct Entry {
    /// The active answer's JSON, or `None` for an inactive token.
    answer: Option<Arc<Vec<u8>>>,
    until: Instant,
}

struct Inner {
    cfg: IntrospectorBuilder,
    client: reqwest::Client,
    cache: Mutex<HashMap<[u8; 32], Entry>>,
    inflight: Mutex<HashMap<[u8; 32], Arc<OnceCell<Answer>>>>,
    calls: std::sync::atomic::AtomicU64,
}

/// An introspection client with its cache. Cheap to clone.
#[derive(Clone)]
pub struct Introspector(Arc<Inner>);

impl fmt::Debug for Introspector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Introspector")
            .field("endpoint", &crate::jwks::redact_url(&self.0.cfg.endpoint))
            .field("auth", &self.0.cfg.auth)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn unavailable(why: &'static str) -> AuthError {
    AuthError::new(AuthErrorKind::StoreUnavailable).with_detail(why)
}

fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'*') {
            out.push(char::from(b));
        } else if b == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Introspector {
    /// Start configuring a client of `endpoint`.
    pub fn builder(endpoint: impl Into<String>, auth: ClientAuth) -> IntrospectorBuilder {
        IntrospectorBuilder {
            endpoint: endpoint.into(),
            auth,
            timeout: Duration::from_secs(5),
            cache_ttl: Duration::from_secs(60),
            max_entries: 100_000,
            allow_http_loopback: false,
            jwts_too: false,
            client: None,
        }
    }

    /// How many calls reached the endpoint.
    pub fn calls(&self) -> u64 {
        self.0.calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn jwts_too(&self) -> bool {
        self.0.cfg.jwts_too
    }

    /// The endpoint's answer for `token`: `Ok(Some(json))` when active,
    /// `Ok(None)` when not, `Err` (503) when it cannot be had.
    pub(crate) async fn introspect(&self, token: &str, now_unix: i64) -> Answer {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(hit) = self.cached(&key) {
            return Ok(hit);
        }
        // Single flight: the first caller asks, the others wait for it.
        let cell = lock(&self.0.inflight)
            .entry(key)
            .or_insert_with(|| Arc::new(OnceCell::new()))
            .clone();
        let answer = cell
            .get_or_init(|| async {
                let answer = self.call(token, now_unix).await;
                if let Ok(a) = &answer {
                    self.store(key, a.clone(), now_unix);
                }
                answer
            })
            .await
            .clone();
        lock(&self.0.inflight).remove(&key);
        answer
    }

    fn cached(&self, key: &[u8; 32]) -> Option<Option<Arc<Vec<u8>>>> {
        let cache = lock(&self.0.cache);
        cache
            .get(key)
            .filter(|e| e.until > Instant::now())
            .map(|e| e.answer.clone())
    }

    fn store(&self, key: [u8; 32], answer: Option<Arc<Vec<u8>>>, now_unix: i64) {
        let mut ttl = self.0.cfg.cache_ttl;
        if ttl.is_zero() {
            return;
        }
        if let Some(a) = &answer {
            let exp = serde_json::from_slice::<Map<String, Value>>(a)
                .ok()
                .and_then(|m| m.get("exp").and_then(Value::as_i64));
            if let Some(exp) = exp {
                let left = u64::try_from(exp.saturating_sub(now_unix)).unwrap_or(0);
                ttl = ttl.min(Duration::from_secs(left));
            }
        }
        if ttl.is_zero() {
            return;
        }
        let mut cache = lock(&self.0.cache);
        if cache.len() >= self.0.cfg.max_entries {
            let now = Instant::now();
            cache.retain(|_, e| e.until > now);
            if cache.len() >= self.0.cfg.max_entries {
                // Still full of live answers: forget an arbitrary one
                // rather than grow (a miss only costs a call).
                if let Some(k) = cache.keys().next().copied() {
                    cache.remove(&k);
                }
            }
        }
        cache.insert(
            key,
            Entry {
                answer,
                until: Instant::now() + ttl,
            },
        );
    }

    async fn call(&self, token: &str, now_unix: i64) -> Answer {
        let cfg = &self.0.cfg;
        self.0
            .calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut body = format!("token={}&token_type_hint=access_token", form_encode(token));
        let mut req = self
            .0
            .client
            .post(&cfg.endpoint)
            .header("accept", "application/json")
            .header("content-type", "application/x-www-form-urlencoded");
        match &cfg.auth {
            ClientAuth::Basic {
                client_id,
                client_secret,
            } => {
                let creds = format!("{}:{}", form_encode(client_id), form_encode(client_secret));
                req = req.header(
                    "authorization",
                    format!(
                        "Basic {}",
                        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, creds)
                    ),
                );
            }
            ClientAuth::PrivateKeyJwt { client_id, key } => {
                let mut claims = Map::new();
                claims.insert("iss".into(), client_id.clone().into());
                claims.insert("sub".into(), client_id.clone().into());
                claims.insert("aud".into(), cfg.endpoint.clone().into());
                claims.insert("jti".into(), crate::random_id().into());
                claims.insert("iat".into(), now_unix.into());
                claims.insert("exp".into(), (now_unix + 60).into());
                let assertion = key
                    .sign("JWT", &claims)
                    .map_err(|_| unavailable("could not sign the client assertion"))?;
                body.push_str(&format!(
                    "&client_id={}&client_assertion_type={}&client_assertion={}",
                    form_encode(client_id),
                    form_encode("urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                    form_encode(&assertion)
                ));
            }
        }
        let send = async {
            let res = req
                .body(body)
                .send()
                .await
                .map_err(|_| unavailable("introspection endpoint unreachable"))?;
            if !res.status().is_success() {
                return Err(unavailable("introspection endpoint answered an error"));
            }
            if res.content_length().is_some_and(|n| n > 64 * 1024) {
                return Err(unavailable("introspection answer too large"));
            }
            let bytes = res
                .bytes()
                .await
                .map_err(|_| unavailable("introspection answer unreadable"))?;
            if bytes.len() > 64 * 1024 {
                return Err(unavailable("introspection answer too large"));
            }
            Ok(bytes)
        };
        let bytes = tokio::time::timeout(cfg.timeout, send)
            .await
            .map_err(|_| unavailable("introspection endpoint timed out"))??;
        if !crate::parse::check_no_duplicates(&bytes) {
            return Err(unavailable("introspection answer has duplicate members"));
        }
        let doc: Map<String, Value> = serde_json::from_slice(&bytes)
            .map_err(|_| unavailable("introspection answer is not a JSON object"))?;
        match doc.get("active") {
            Some(Value::Bool(true)) => Ok(Some(Arc::new(bytes.to_vec()))),
            Some(Value::Bool(false)) => Ok(None),
            _ => Err(unavailable("introspection answer without a boolean active")),
        }
    }
}
