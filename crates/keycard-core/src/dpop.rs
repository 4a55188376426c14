//! DPoP (RFC 9449): access tokens bound to a key the client holds. A
//! request carries `Authorization: DPoP <token>` and a `DPoP` header with a
//! proof: a JWT signed by the client's key, naming the request's method and
//! URL and the token's hash. A stolen token is useless without the key.
//!
//! What keycard checks, in order:
//! - the proof: exactly one `DPoP` header, compact and bounded; `typ`
//!   `dpop+jwt`; an asymmetric algorithm on the verifier's list (never
//!   `none` or HMAC); an embedded public `jwk` (no private members) whose
//!   type fits the algorithm; a valid signature;
//! - what it must match: `htm` = the method, `htu` = the request URL
//!   (scheme and host lower-cased, default port dropped, no query or
//!   fragment; RFC 9449 §4.3), `iat` within the window, `ath` = the
//!   SHA-256 of the access token, and the server nonce when nonces are on;
//! - replay: a proof's `jti` is accepted once per key within the window
//!   (in memory, and across a cluster through a [`DpopReplayStore`] such as
//!   keycard-redis');
//! - binding: the token's `cnf.jkt` equals the RFC 7638 thumbprint of the
//!   proof's key.
//!
//! A token with `cnf.jkt` is refused when presented as a Bearer token,
//! whatever the verifier's DPoP setting; a DPoP-presented token without one
//! is refused too. [`DpopPolicy`] chooses, per verifier (so per route),
//! between Bearer only (the default), DPoP only, or either.
//!
//! ```
//! use keycard_core::dpop::{DpopConfig, DpopPolicy};
//! use keycard_core::{Key, Verifier};
//!
//! let verifier = Verifier::builder()
//!     .key(Key::hs256(b"an-example-secret-of-32-bytes-or-more")?)
//!     .dpop(DpopConfig::new(DpopPolicy::Required).public_origin("https://api.example.com"))
//!     .build()?;
//! # let _ = verifier;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::{AuthError, AuthErrorKind};
use crate::key::{BoxFuture, Key};
use crate::revocation::StoreError;

/// Which presentations a verifier accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DpopPolicy {
    /// `Authorization: Bearer` only (the default without DPoP configured).
    #[default]
    BearerOnly,
    /// `Authorization: DPoP` with a valid proof only.
    Required,
    /// Either; a DPoP-bound token still needs its proof.
    Allowed,
}

/// The asymmetric algorithms a proof may use by default.
pub const DEFAULT_PROOF_ALGORITHMS: [Algorithm; 5] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::EdDSA,
];

/// The largest proof accepted, in bytes (an RSA-4096 `jwk` fits).
pub const MAX_PROOF_BYTES: usize = 8 * 1024;

/// How DPoP is checked. Build it, then pass it to
/// [`crate::VerifierBuilder::dpop`].
#[derive(Debug, Clone)]
pub struct DpopConfig {
    pub(crate) policy: DpopPolicy,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) max_age: Duration,
    pub(crate) leeway: Duration,
    pub(crate) public_origin: Option<String>,
    pub(crate) nonces: bool,
    pub(crate) nonce_secret: Option<NonceSecret>,
    pub(crate) replay: Option<Arc<dyn DpopReplayStore>>,
    pub(crate) local_capacity: usize,
    pub(crate) per_key_capacity: usize,
}

/// A nonce secret shared by the nodes of a cluster. Its `Debug` never
/// shows the bytes.
#[derive(Clone)]
pub(crate) struct NonceSecret(pub(crate) [u8; 32]);

impl std::fmt::Debug for NonceSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NonceSecret(<redacted>)")
    }
}

/// The shortest nonce secret accepted by [`DpopConfig::nonce_secret`].
pub const MIN_NONCE_SECRET_BYTES: usize = 32;

impl DpopConfig {
    /// DPoP with `policy`, default algorithms, a 60 s proof window with 5 s
    /// of clock leeway, no nonces, replay detection in memory.
    pub fn new(policy: DpopPolicy) -> Self {
        Self {
            policy,
            algorithms: DEFAULT_PROOF_ALGORITHMS.to_vec(),
            max_age: Duration::from_secs(60),
            leeway: Duration::from_secs(5),
            public_origin: None,
            nonces: false,
            nonce_secret: None,
            replay: None,
            local_capacity: 1_000_000,
            per_key_capacity: 10_000,
        }
    }

    /// The algorithms a proof may use (asymmetric only; HMAC and `none` are
    /// refused whatever this list says).
    #[must_use]
    pub fn algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algs
            .into_iter()
            .filter(|a| !matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
            .collect();
        self
    }

    /// How old a proof's `iat` may be (default 60 s), and how far in the
    /// future (default 5 s).
    #[must_use]
    pub fn window(mut self, max_age: Duration, leeway: Duration) -> Self {
        self.max_age = max_age;
        self.leeway = leeway;
        self
    }

    /// This service's public origin (`https://api.example.com`), against
    /// which `htu` is compared. Without it, `https://` + `Host` (or the
    /// forwarded origin, or `http://` with the plain-http opt-in, exactly
    /// as the CSRF check takes its own origin).
    #[must_use]
    pub fn public_origin(mut self, origin: impl Into<String>) -> Self {
        self.public_origin = Some(origin.into().trim_end_matches('/').to_owned());
        self
    }

    /// Require server nonces (RFC 9449 §8): a proof without a current nonce
    /// gets 401 `use_dpop_nonce` with a fresh one in `DPoP-Nonce`.
    #[must_use]
    pub fn require_nonces(mut self) -> Self {
        self.nonces = true;
        self
    }

    /// The secret that server nonces are made with, shared by every node
    /// of a cluster (at least [`MIN_NONCE_SECRET_BYTES`] bytes; from an
    /// environment variable or a file, like an HMAC key). Without it each
    /// process draws its own, and behind a load balancer without sticky
    /// sessions a nonce from one node is refused by the next, so clients
    /// loop on `use_dpop_nonce`. Implies [`DpopConfig::require_nonces`].
    pub fn nonce_secret(mut self, secret: &[u8]) -> Result<Self, crate::ConfigError> {
        if secret.len() < MIN_NONCE_SECRET_BYTES {
            return Err(crate::ConfigError::InvalidSetting(format!(
                "the DPoP nonce secret has {} bytes; at least {MIN_NONCE_SECRET_BYTES} are needed",
                secret.len()
            )));
        }
        // Derived, so that a secret of any length makes a 32-byte MAC key.
        self.nonce_secret = Some(NonceSecret(
            Sha256::new()
                .chain_update(b"keycard dpop nonce v1\0")
                .chain_update(secret)
                .finalize()
                .into(),
        ));
        self.nonces = true;
        Ok(self)
    }

    /// Bound the in-memory replay cache: at most `total` live proofs in
    /// all (default 1,000,000), and at most `per_key` live proofs for one
    /// client key within the proof window (default 10,000: 160 requests a
    /// second for one key over a 60 s window). A key past its share gets
    /// 401 `invalid_dpop_proof` for the rest of the window, and other
    /// clients are not affected by it. Only clients holding tokens bound to
    /// `total / per_key` (default 100) different keys, flooding together
    /// within one window, can fill the cache; then new proofs get 503 (fail
    /// closed) until the window passes. Size both to your traffic.
    #[must_use]
    pub fn replay_capacity(mut self, total: usize, per_key: usize) -> Self {
        self.local_capacity = total.max(1);
        self.per_key_capacity = per_key.clamp(1, self.local_capacity);
        self
    }

    /// Also record proofs in a store shared by the cluster, so a proof
    /// replayed on another node is refused too.
    #[must_use]
    pub fn replay_store(mut self, store: Arc<dyn DpopReplayStore>) -> Self {
        self.replay = Some(store);
        self
    }
}

/// A shared record of proofs already used (RFC 9449 §11.1).
pub trait DpopReplayStore: Send + Sync + std::fmt::Debug + 'static {
    /// Record `key` for `ttl` from now, as the store's own clock counts
    /// (never an absolute time from this node's clock: a node whose clock
    /// lags the store's would record keys that expire on arrival):
    /// `Ok(true)` the first time, `Ok(false)` for a replay. Must be atomic
    /// across the cluster.
    fn first_use<'a>(
        &'a self,
        key: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
}

/// The RFC 7638 JWK thumbprint (SHA-256, base64url) of a public key, from
/// its required members only. `None` for key types DPoP does not use or a
/// member that is not a base64url string.
pub fn thumbprint(jwk: &Map<String, Value>) -> Option<String> {
    let s = |k: &str| {
        jwk.get(k)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty() && v.bytes().all(is_b64url_byte))
    };
    let canonical = match jwk.get("kty").and_then(Value::as_str)? {
        "EC" => {
            let crv = jwk.get("crv").and_then(Value::as_str)?;
            if !matches!(crv, "P-256" | "P-384" | "P-521") {
                return None;
            }
            format!(
                r#"{{"crv":"{crv}","kty":"EC","x":"{}","y":"{}"}}"#,
                s("x")?,
                s("y")?
            )
        }
        "RSA" => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, s("e")?, s("n")?),
        "OKP" => {
            let crv = jwk.get("crv").and_then(Value::as_str)?;
            if crv != "Ed25519" {
                return None;
            }
            format!(r#"{{"crv":"{crv}","kty":"OKP","x":"{}"}}"#, s("x")?)
        }
        _ => return None,
    };
    Some(crate::b64::encode(&Sha256::digest(canonical.as_bytes())))
}

/// `ath`: base64url(SHA-256(the access token)).
pub fn access_token_hash(token: &str) -> String {
    crate::b64::encode(&Sha256::digest(token.as_bytes()))
}

fn is_b64url_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// RFC 9449 §4.3 / RFC 3986 §6.2.2: scheme and host lower-cased, default
/// port dropped, empty path as `/`, query and fragment removed. `None` for
/// anything that is not an `http`/`https` URL with a plain host[:port]
/// authority (no user info, no characters outside a host name or an IP
/// literal).
pub(crate) fn normalize_htu(url: &str) -> Option<String> {
    let url = url.split(['#', '?']).next()?;
    let (scheme, rest) = url.split_once("://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut out = normalize_origin(scheme, authority)?;
    push_normalized_path(&mut out, path);
    Some(out)
}

/// `scheme://authority`, normalized: an `http`/`https` scheme and a valid
/// host[:port] authority, lower-cased, the default port dropped.
pub(crate) fn normalize_origin(scheme: &str, authority: &str) -> Option<String> {
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "https" | "http") || !is_authority(authority) {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    let authority = match (scheme.as_str(), authority.rsplit_once(':')) {
        ("https", Some((host, "443"))) | ("http", Some((host, "80"))) if !host.ends_with(':') => {
            host.to_owned()
        }
        _ => authority,
    };
    Some(format!("{scheme}://{authority}"))
}

/// Whether `s` is a `host[:port]` authority (RFC 3986 §3.2 without user
/// info): a registered name of letters, digits, `-`, `.`, `_` and `~`, or
/// a bracketed IPv6 literal, then an optional port of 1 to 5 digits. This
/// is what a `Host` (or `X-Forwarded-Host`) header must be before keycard
/// builds a URL from it: no `/`, `?`, `#`, `@`, `%`, space or non-ASCII
/// byte can move the boundary between host and path.
pub(crate) fn is_authority(s: &str) -> bool {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.is_empty()
            || !v6
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        match after {
            "" => (v6, None),
            _ => match after.strip_prefix(':') {
                Some(p) => (v6, Some(p)),
                None => return false,
            },
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let host_ok = !host.is_empty()
        && host.len() <= 255
        && (s.starts_with('[')
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')));
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

/// The path, normalized: percent-encodings upper-cased, the unreserved
/// ones decoded, and any byte that cannot stand in a URI path (controls,
/// space, non-ASCII) percent-encoded, so a path written as an IRI compares
/// equal to its URI. Works on bytes: no input can split a character.
pub(crate) fn push_normalized_path(out: &mut String, path: &str) {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    fn push_escaped(out: &mut String, v: u8) {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        out.push('%');
        out.push(char::from(HEX[usize::from(v >> 4)]));
        out.push(char::from(HEX[usize::from(v & 15)]));
    }
    let b = path.as_bytes();
    if b.is_empty() {
        out.push('/');
        return;
    }
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            if let (Some(hi), Some(lo)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            ) {
                let v = hi * 16 + lo;
                if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~') {
                    out.push(char::from(v));
                } else {
                    push_escaped(out, v);
                }
                i += 3;
                continue;
            }
        }
        if c.is_ascii_graphic() {
            out.push(char::from(c));
        } else {
            push_escaped(out, c);
        }
        i += 1;
    }
}

/// What a checked proof says.
#[derive(Debug, Clone)]
pub(crate) struct ProofFacts {
    pub(crate) jkt: String,
    pub(crate) jti: String,
    pub(crate) iat: i64,
}

fn bad(why: &'static str) -> AuthError {
    AuthError::new(AuthErrorKind::InvalidDpopProof).with_detail(why)
}

/// Check one proof for a request, except replay and nonce (which need the
/// verifier's state). `expected_htu` is already normalized.
pub(crate) fn check_proof(
    cfg: &DpopConfig,
    proof: &str,
    method: &str,
    expected_htu: &str,
    access_token: &str,
    now: i64,
) -> Result<(ProofFacts, Option<String>), AuthError> {
    if proof.len() > MAX_PROOF_BYTES {
        return Err(bad("proof too large"));
    }
    let mut parts = proof.split('.');
    let (Some(h), Some(p), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("proof is not a compact JWS"));
    };
    let header = crate::b64::decode(h.as_bytes()).map_err(|_| bad("proof header base64"))?;
    let payload = crate::b64::decode(p.as_bytes()).map_err(|_| bad("proof payload base64"))?;
    if !crate::parse::check_no_duplicates(&header) || !crate::parse::check_no_duplicates(&payload) {
        return Err(bad("proof is not JSON without duplicate members"));
    }
    let header: Map<String, Value> =
        serde_json::from_slice(&header).map_err(|_| bad("proof header is not a JSON object"))?;
    let claims: Map<String, Value> =
        serde_json::from_slice(&payload).map_err(|_| bad("proof payload is not a JSON object"))?;
    if header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return Err(bad("proof typ is not dpop+jwt"));
    }
    for refused in ["crit", "b64", "zip", "enc", "jku", "x5u", "x5c", "kid"] {
        if header.contains_key(refused) {
            return Err(bad("proof header has a member DPoP does not allow"));
        }
    }
    let alg_name = header.get("alg").and_then(Value::as_str).unwrap_or("");
    let alg_name = if alg_name == "Ed25519" {
        "EdDSA"
    } else {
        alg_name
    };
    let alg: Algorithm = alg_name.parse().map_err(|_| bad("proof alg unknown"))?;
    if !cfg.algorithms.contains(&alg) {
        return Err(bad("proof alg not allowed"));
    }
    let Some(Value::Object(jwk)) = header.get("jwk") else {
        return Err(bad("proof has no jwk"));
    };
    for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
        if jwk.contains_key(private) {
            return Err(bad("proof jwk holds private key material"));
        }
    }
    let jkt = thumbprint(jwk).ok_or_else(|| bad("proof jwk is not a usable public key"))?;
    let parsed: jsonwebtoken::jwk::Jwk = serde_json::from_value(Value::Object(jwk.clone()))
        .map_err(|_| bad("proof jwk is not a JWK"))?;
    let key =
        Key::from_jwk(&parsed, Some(alg)).map_err(|_| bad("proof jwk does not fit its alg"))?;
    if key.algorithm() != alg {
        return Err(bad("proof jwk pinned to another alg"));
    }
    let signing_input = &proof[..h.len() + 1 + p.len()];
    if !key.verify_signature(signing_input.as_bytes(), sig) {
        return Err(bad("proof signature"));
    }
    let text = |k: &str| claims.get(k).and_then(Value::as_str);
    let jti = text("jti")
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or_else(|| bad("proof jti missing or too long"))?;
    if text("htm") != Some(method) {
        return Err(bad("proof htm does not match the method"));
    }
    let htu = text("htu")
        .and_then(normalize_htu)
        .ok_or_else(|| bad("proof htu missing or not a URL"))?;
    if htu != expected_htu {
        return Err(bad("proof htu does not match the request URL"));
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or_else(|| bad("proof iat missing or not an integer"))?;
    let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    if iat > now.saturating_add(secs(cfg.leeway)) {
        return Err(bad("proof iat in the future"));
    }
    if iat < now.saturating_sub(secs(cfg.max_age)) {
        return Err(bad("proof too old"));
    }
    if text("ath") != Some(access_token_hash(access_token).as_str()) {
        return Err(bad("proof ath does not match the access token"));
    }
    let nonce = text("nonce").map(str::to_owned);
    Ok((
        ProofFacts {
            jkt,
            jti: jti.to_owned(),
            iat,
        },
        nonce,
    ))
}

/// Server nonces without server state: a time window and its HMAC under a
/// per-process secret; the current and the previous window are valid.
#[derive(Debug)]
pub(crate) struct Nonces {
    secret: [u8; 32],
}

const NONCE_WINDOW: i64 = 300;

impl Nonces {
    pub(crate) fn new(shared: Option<&NonceSecret>) -> Self {
        let secret = match shared {
            Some(s) => s.0,
            None => {
                let mut secret = [0u8; 32];
                let _ = getrandom::fill(&mut secret);
                secret
            }
        };
        Self { secret }
    }

    fn mac(&self, window: i64) -> [u8; 32] {
        // HMAC-SHA256 (RFC 2104).
        let mut ipad = [0x36u8; 64];
        let mut opad = [0x5cu8; 64];
        for (i, b) in self.secret.iter().enumerate() {
            ipad[i] ^= b;
            opad[i] ^= b;
        }
        let inner = Sha256::new()
            .chain_update(ipad)
            .chain_update(window.to_be_bytes())
            .finalize();
        Sha256::new()
            .chain_update(opad)
            .chain_update(inner)
            .finalize()
            .into()
    }

    pub(crate) fn current(&self, now: i64) -> String {
        let window = now.div_euclid(NONCE_WINDOW);
        let mut raw = window.to_be_bytes().to_vec();
        raw.extend_from_slice(&self.mac(window)[..16]);
        crate::b64::encode(&raw)
    }

    pub(crate) fn valid(&self, nonce: &str, now: i64) -> bool {
        let Ok(raw) = crate::b64::decode(nonce.as_bytes()) else {
            return false;
        };
        if raw.len() != 24 {
            return false;
        }
        let mut w = [0u8; 8];
        w.copy_from_slice(&raw[..8]);
        let window = i64::from_be_bytes(w);
        let current = now.div_euclid(NONCE_WINDOW);
        if window != current && window != current - 1 {
            return false;
        }
        // In constant time: a byte-by-byte timing leak would let a client
        // forge a nonce.
        subtle::ConstantTimeEq::ct_eq(&self.mac(window)[..16], &raw[8..]).into()
    }
}

/// What the local replay cache says of a proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LocalUse {
    /// Not seen in its window: recorded now.
    First,
    /// Seen before: a replay.
    Replay,
    /// Its key already has its share of live proofs.
    KeyOverShare,
}

/// Proofs seen by this process, until their window closes: bounded in all
/// and per client key, and evicted in insertion order (amortised O(1) per
/// proof: each entry is pushed once and popped once).
#[derive(Debug)]
pub(crate) struct LocalReplay {
    inner: Mutex<ReplayInner>,
    capacity: usize,
    per_key: usize,
}

#[derive(Debug, Default)]
struct ReplayInner {
    /// Replay key -> the end of its window.
    seen: HashMap<[u8; 32], i64>,
    /// Client key thumbprint -> live entries in `order`.
    owners: HashMap<String, usize>,
    /// (replay key, owner, end of window), oldest first.
    order: std::collections::VecDeque<([u8; 32], String, i64)>,
}

impl LocalReplay {
    pub(crate) fn new(capacity: usize, per_key: usize) -> Self {
        Self {
            inner: Mutex::new(ReplayInner::default()),
            capacity,
            per_key,
        }
    }

    /// Record `key` (a proof of the client key `owner`) until `until`;
    /// `Err` when full of live entries (fail closed).
    pub(crate) fn first_use(
        &self,
        key: &[u8; 32],
        owner: &str,
        until: i64,
        now: i64,
    ) -> Result<LocalUse, StoreError> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let inner = &mut *inner;
        // Evict what has expired at the front. An entry behind a longer-
        // lived one waits for it (at most one proof window), which only
        // makes the bounds stricter, never a replay possible.
        while inner.order.front().is_some_and(|(_, _, exp)| *exp < now) {
            let Some((k, o, exp)) = inner.order.pop_front() else {
                break;
            };
            if inner.seen.get(&k) == Some(&exp) {
                inner.seen.remove(&k);
            }
            if let Some(n) = inner.owners.get_mut(&o) {
                *n -= 1;
                if *n == 0 {
                    inner.owners.remove(&o);
                }
            }
        }
        if inner.seen.get(key).is_some_and(|exp| *exp >= now) {
            return Ok(LocalUse::Replay);
        }
        if inner.owners.get(owner).copied().unwrap_or(0) >= self.per_key {
            return Ok(LocalUse::KeyOverShare);
        }
        if inner.order.len() >= self.capacity {
            return Err(StoreError::Full(self.capacity));
        }
        inner.seen.insert(*key, until);
        *inner.owners.entry(owner.to_owned()).or_insert(0) += 1;
        inner.order.push_back((*key, owner.to_owned(), until));
        Ok(LocalUse::First)
    }
}

/// The replay key of a proof: its key's thumbprint and its `jti`.
pub(crate) fn replay_key(facts: &ProofFacts) -> [u8; 32] {
    Sha256::new()
        .chain_update(facts.jkt.as_bytes())
        .chain_update([0])
        .chain_update(facts.jti.as_bytes())
        .finalize()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_thumbprint_example() {
        // RFC 7638 §3.1.
        let jwk: Map<String, Value> = serde_json::from_str(
            r#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#,
        )
        .unwrap();
        assert_eq!(
            thumbprint(&jwk).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn htu_normalization() {
        for (a, b) in [
            (
                "https://API.example.com:443/a/b?x=1#f",
                "https://api.example.com/a/b",
            ),
            ("HTTPS://api.example.com", "https://api.example.com/"),
            ("http://h:80/%7euser/%2f", "http://h/~user/%2F"),
            ("https://h:8443/p", "https://h:8443/p"),
        ] {
            assert_eq!(normalize_htu(a).as_deref(), Some(b), "{a}");
        }
        for bad in [
            "ftp://h/",
            "https:///p",
            "https://u@h/",
            "nonsense",
            "https://h%2fx/p",
            "https://h x/p",
            "https://h:/p",
            "https://h:99999999/p",
            "https://h\u{20ac}/p",
            "https://[zz]/p",
        ] {
            assert!(normalize_htu(bad).is_none(), "{bad}");
        }
        // IRIs compare as their URIs; a multi-byte character after `%`
        // is never sliced (this panicked: "not a char boundary").
        assert_eq!(
            normalize_htu("https://h/%\u{20ac}/caf\u{e9}").as_deref(),
            Some("https://h/%%E2%82%AC/caf%C3%A9")
        );
        assert_eq!(normalize_htu("https://h/%").as_deref(), Some("https://h/%"));
        assert_eq!(
            normalize_htu("https://h/%4").as_deref(),
            Some("https://h/%4")
        );
        assert_eq!(
            normalize_htu("https://[::1]:443/x").as_deref(),
            Some("https://[::1]/x")
        );
        assert_eq!(
            normalize_htu("https://[::1]:8443/x").as_deref(),
            Some("https://[::1]:8443/x")
        );
    }

    #[test]
    fn hosts_that_are_not_authorities_are_refused() {
        for good in [
            "api.example.com",
            "API.example.com:8443",
            "[::1]",
            "[::1]:80",
            "127.0.0.1:3000",
        ] {
            assert!(is_authority(good), "{good}");
        }
        for bad in [
            "",
            "x/%\u{20ac}",
            "a/admin",
            "a?x",
            "a#x",
            "u@a",
            "a b",
            "a:b",
            "a:",
            ":80",
            "a:123456",
            "api.example, for=1;host=internal",
            "[::1",
            "[::1]x",
            "a\u{e9}",
            "a%20",
        ] {
            assert!(!is_authority(bad), "{bad}");
        }
    }

    #[test]
    fn nonces_are_valid_for_two_windows_only() {
        let n = Nonces::new(None);
        let now = 1_700_000_000;
        let nonce = n.current(now);
        assert!(n.valid(&nonce, now));
        assert!(n.valid(&nonce, now + NONCE_WINDOW));
        assert!(!n.valid(&nonce, now + 3 * NONCE_WINDOW));
        assert!(
            !Nonces::new(None).valid(&nonce, now),
            "another process's secret"
        );
        assert!(!n.valid("garbage", now));
    }

    #[test]
    fn a_shared_nonce_secret_makes_nonces_valid_on_every_node() {
        let cfg = DpopConfig::new(DpopPolicy::Required)
            .nonce_secret(b"a cluster-wide secret of 32 bytes+")
            .unwrap();
        assert!(cfg.nonces, "a nonce secret turns nonces on");
        let (a, b) = (
            Nonces::new(cfg.nonce_secret.as_ref()),
            Nonces::new(cfg.nonce_secret.as_ref()),
        );
        let now = 1_700_000_000;
        assert!(b.valid(&a.current(now), now));
        assert!(a.valid(&b.current(now), now));
        assert!(!format!("{cfg:?}").contains("cluster-wide"));
        assert!(DpopConfig::new(DpopPolicy::Required)
            .nonce_secret(b"short")
            .is_err());
    }

    #[test]
    fn local_replay_is_bounded_and_forgets_expired_entries() {
        let r = LocalReplay::new(2, 2);
        let k = |i: u8| [i; 32];
        assert_eq!(r.first_use(&k(1), "a", 100, 50).unwrap(), LocalUse::First);
        assert_eq!(r.first_use(&k(1), "a", 100, 60).unwrap(), LocalUse::Replay);
        assert_eq!(r.first_use(&k(2), "b", 100, 60).unwrap(), LocalUse::First);
        assert!(
            r.first_use(&k(3), "c", 100, 60).is_err(),
            "full of live entries"
        );
        // Once they expire, there is room again.
        assert_eq!(r.first_use(&k(3), "c", 300, 200).unwrap(), LocalUse::First);
        assert_eq!(r.first_use(&k(1), "a", 300, 200).unwrap(), LocalUse::First);
    }

    #[test]
    fn one_key_cannot_take_the_whole_replay_cache() {
        let r = LocalReplay::new(1000, 10);
        let now = 1_000;
        let mut refused = 0;
        for i in 0..500u32 {
            let mut key = [0u8; 32];
            key[..4].copy_from_slice(&i.to_be_bytes());
            match r.first_use(&key, "flooder", now + 60, now).unwrap() {
                LocalUse::First => {}
                LocalUse::KeyOverShare => refused += 1,
                LocalUse::Replay => panic!("distinct proofs"),
            }
        }
        assert_eq!(refused, 490, "the flooder keeps its share of 10");
        // Another client is served as usual.
        assert_eq!(
            r.first_use(&[0xff; 32], "honest", now + 60, now).unwrap(),
            LocalUse::First
        );
        // After the window the flooder has its share back.
        assert_eq!(
            r.first_use(&[0xfe; 32], "flooder", now + 200, now + 61)
                .unwrap(),
            LocalUse::First
        );
    }
}
