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
    pub(crate) replay: Option<Arc<dyn DpopReplayStore>>,
    pub(crate) local_capacity: usize,
}

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
            replay: None,
            local_capacity: 1_000_000,
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
    /// Record `key` until `expires_at` (Unix seconds): `Ok(true)` the first
    /// time, `Ok(false)` for a replay. Must be atomic across the cluster.
    fn first_use<'a>(
        &'a self,
        key: &'a str,
        expires_at: i64,
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
/// port dropped, empty path as `/`, query and fragment removed.
pub(crate) fn normalize_htu(url: &str) -> Option<String> {
    let url = url.split(['#', '?']).next()?;
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "https" | "http") {
        return None;
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    let authority = match (scheme.as_str(), authority.rsplit_once(':')) {
        ("https", Some((host, "443"))) | ("http", Some((host, "80"))) => host.to_owned(),
        _ => authority,
    };
    Some(format!("{scheme}://{authority}{}", normalize_percent(path)))
}

/// Upper-case percent-encodings, and decode the unreserved ones.
fn normalize_percent(path: &str) -> String {
    let b = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = &path[i + 1..i + 3];
            if let Ok(v) = u8::from_str_radix(hex, 16) {
                if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~') {
                    out.push(char::from(v));
                } else {
                    out.push('%');
                    out.push_str(&hex.to_ascii_uppercase());
                }
                i += 3;
                continue;
            }
        }
        out.push(char::from(b[i]));
        i += 1;
    }
    out
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
    pub(crate) fn new() -> Self {
        let mut secret = [0u8; 32];
        let _ = getrandom::fill(&mut secret);
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

/// Proofs seen by this process, until their window closes.
#[derive(Debug)]
pub(crate) struct LocalReplay {
    seen: Mutex<HashMap<[u8; 32], i64>>,
    capacity: usize,
}

impl LocalReplay {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            seen: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// `Ok(true)` the first time `key` is seen (until `until`), `Ok(false)`
    /// for a replay, `Err` when full of live entries (fail closed).
    pub(crate) fn first_use(
        &self,
        key: &[u8; 32],
        until: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(exp) = seen.get(key) {
            if *exp >= now {
                return Ok(false);
            }
        }
        if seen.len() >= self.capacity {
            seen.retain(|_, exp| *exp >= now);
            if seen.len() >= self.capacity {
                return Err(StoreError::Full(self.capacity));
            }
        }
        seen.insert(*key, until);
        Ok(true)
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
        for bad in ["ftp://h/", "https:///p", "https://u@h/", "nonsense"] {
            assert!(normalize_htu(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn nonces_are_valid_for_two_windows_only() {
        let n = Nonces::new();
        let now = 1_700_000_000;
        let nonce = n.current(now);
        assert!(n.valid(&nonce, now));
        assert!(n.valid(&nonce, now + NONCE_WINDOW));
        assert!(!n.valid(&nonce, now + 3 * NONCE_WINDOW));
        assert!(
            !Nonces::new().valid(&nonce, now),
            "another process's secret"
        );
        assert!(!n.valid("garbage", now));
    }

    #[test]
    fn local_replay_is_bounded_and_forgets_expired_entries() {
        let r = LocalReplay::new(2);
        let k = |i: u8| [i; 32];
        assert!(r.first_use(&k(1), 100, 50).unwrap());
        assert!(!r.first_use(&k(1), 100, 60).unwrap());
        assert!(r.first_use(&k(2), 100, 60).unwrap());
        assert!(r.first_use(&k(3), 100, 60).is_err(), "full of live entries");
        // Once they expire, there is room again.
        assert!(r.first_use(&k(3), 300, 200).unwrap());
        assert!(r.first_use(&k(1), 300, 200).unwrap());
    }
}
