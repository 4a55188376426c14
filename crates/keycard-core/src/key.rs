//! Verification keys: one algorithm pinned per key, selected by `kid`.
//!
//! A [`Key`] is built from a secret, PEM, DER or JWK and checked at
//! construction: HMAC secrets at least as long as the hash, RSA moduli of at
//! least 2048 bits, EC keys on the curve their algorithm names. A [`KeySet`]
//! holds several keys for rotation. Remote key sources (JWKS) implement
//! [`KeyProvider`].

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

use crate::error::ConfigError;

/// Make sure `jsonwebtoken` has a crypto provider, so that it never panics at
/// run time. The provider is installed whenever one of keycard's backend
/// features is on, whatever features jsonwebtoken itself ended up with: cargo
/// unifies features, so another crate in the application may have turned on
/// jsonwebtoken's other backend, and jsonwebtoken then picks none on its own.
/// With both of keycard's backends enabled, aws-lc-rs wins.
pub(crate) fn ensure_crypto() -> Result<(), ConfigError> {
    #[cfg(any(feature = "aws-lc-rs", feature = "rust-crypto"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            #[cfg(feature = "aws-lc-rs")]
            let provider = &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER;
            #[cfg(not(feature = "aws-lc-rs"))]
            let provider = &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
            // Err means a provider was installed first (by the application,
            // or by jsonwebtoken from its own features): also fine.
            let _ = provider.install_default();
        });
        Ok(())
    }
    #[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
    {
        Err(ConfigError::NoCryptoBackend)
    }
}

/// The minimum HMAC secret length for an algorithm (the hash output size).
pub(crate) fn min_hmac_len(alg: Algorithm) -> usize {
    match alg {
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        _ => 32,
    }
}

/// A verification key with its pinned algorithm and optional `kid`.
///
/// `Debug` never prints key material.
#[derive(Clone)]
pub struct Key {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<Arc<str>>,
    /// A retired signing key verifies only tokens issued up to this time.
    pub(crate) signed_until: Option<i64>,
    pub(crate) key: DecodingKey,
    #[cfg(feature = "aws-lc-rs")]
    prepared: Option<Arc<crate::prepared::Prepared>>,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("signed_until", &self.signed_until)
            .finish_non_exhaustive()
    }
}

impl Key {
    /// An HMAC key (HS256, HS384 or HS512). The secret must be at least as
    /// long as the hash output (32, 48 or 64 bytes).
    pub fn hmac(alg: Algorithm, secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        ensure_crypto()?;
        let secret = secret.as_ref();
        if !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
            return Err(ConfigError::KeyAlgorithmMismatch(alg));
        }
        let min = min_hmac_len(alg);
        if secret.len() < min {
            return Err(ConfigError::WeakSecret {
                alg,
                min,
                got: secret.len(),
            });
        }
        Ok(Self::unchecked(alg, DecodingKey::from_secret(secret)))
    }

    /// Shorthand for [`Key::hmac`] with HS256.
    pub fn hs256(secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        Self::hmac(Algorithm::HS256, secret)
    }

    /// A public key in PEM form for an RSA (RS*/PS*), EC (ES256/ES384) or
    /// EdDSA algorithm.
    pub fn from_pem(alg: Algorithm, pem: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        ensure_crypto()?;
        let pem = pem.as_ref();
        let key = match family(alg)? {
            Family::Rsa => DecodingKey::from_rsa_pem(pem),
            Family::Ec => DecodingKey::from_ec_pem(pem),
            Family::Ed => DecodingKey::from_ed_pem(pem),
        }
        .map_err(|e| ConfigError::InvalidKey(e.to_string()))?;
        Self::checked(alg, key)
    }

    /// A public key in DER form: PKCS#1 `RSAPublicKey` for RSA, the raw
    /// uncompressed point for EC, the raw 32 bytes for Ed25519.
    pub fn from_der(alg: Algorithm, der: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        ensure_crypto()?;
        let der = der.as_ref();
        let key = match family(alg)? {
            Family::Rsa => DecodingKey::from_rsa_der(der),
            Family::Ec => DecodingKey::from_ec_der(der),
            Family::Ed => DecodingKey::from_ed_der(der),
        };
        Self::checked(alg, key)
    }

    /// A public key from a JWK. The algorithm is the JWK's `alg`, or
    /// `default_alg` when the JWK has none; a JWK whose `alg` disagrees with a
    /// given `default_alg` is refused. Symmetric (`oct`) JWKs are accepted
    /// here (for local configuration) but dropped from remote JWKS.
    pub fn from_jwk(jwk: &Jwk, default_alg: Option<Algorithm>) -> Result<Self, ConfigError> {
        ensure_crypto()?;
        let jwk_alg = match jwk.common.key_algorithm {
            Some(a) => Some(
                serde_json::to_value(a)
                    .ok()
                    .and_then(|v| v.as_str().and_then(|s| s.parse::<Algorithm>().ok()))
                    .ok_or_else(|| ConfigError::InvalidKey(format!("unsupported JWK alg {a:?}")))?,
            ),
            None => None,
        };
        let alg = match (jwk_alg, default_alg) {
            (Some(a), Some(b)) if a != b => return Err(ConfigError::KeyAlgorithmMismatch(b)),
            (Some(a), _) | (None, Some(a)) => a,
            (None, None) => {
                return Err(ConfigError::InvalidKey(
                    "JWK has no alg and none was configured".into(),
                ))
            }
        };
        // The key's type must fit the algorithm's family before any key
        // material is read: a public key must never become an HMAC secret.
        check_key_type(&jwk.algorithm, alg)?;
        let key = if let AlgorithmParameters::OctetKey(oct) = &jwk.algorithm {
            let secret = crate::b64::decode(oct.value.as_bytes())
                .map_err(|_| ConfigError::InvalidKey("bad base64 in JWK k".into()))?;
            let key = Self::hmac(alg, secret)?;
            key.key
        } else {
            DecodingKey::from_jwk(jwk).map_err(|e| ConfigError::InvalidKey(e.to_string()))?
        };
        let mut key = Self::checked(alg, key)?;
        if let Some(kid) = &jwk.common.key_id {
            key.kid = Some(Arc::from(kid.as_str()));
        }
        Ok(key)
    }

    /// Set the key id (`kid`) this key answers to.
    #[must_use]
    pub fn with_kid(mut self, kid: impl AsRef<str>) -> Self {
        self.kid = Some(Arc::from(kid.as_ref()));
        self
    }

    /// This key as a retired signing key: it verifies only tokens issued
    /// (by `iat`) up to `at`, plus the verifier's leeway.
    #[must_use]
    pub fn retired_at(&self, at: i64) -> Self {
        let mut k = self.clone();
        k.signed_until = Some(at);
        k
    }

    /// For a retired signing key, the time up to which it signed.
    pub fn signed_until(&self) -> Option<i64> {
        self.signed_until
    }

    /// The algorithm this key verifies; tokens naming another are refused.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The key id, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Verify a JWS signature (base64url, as in a compact token) over
    /// `message` with this key and its pinned algorithm. This is the exact
    /// check the verification pipeline makes; comparisons happen in
    /// constant time inside the crypto backend.
    pub fn verify_signature(&self, message: &[u8], signature_b64: &str) -> bool {
        // Strict base64url into a stack buffer (RSA-8192 signatures are 1 KiB).
        let mut buf = [0u8; 1024];
        let Ok(len) = crate::b64::decode_slice(signature_b64.as_bytes(), &mut buf) else {
            return false;
        };
        #[cfg(feature = "aws-lc-rs")]
        if let Some(prepared) = &self.prepared {
            return prepared.verify(message, &buf[..len]);
        }
        let _ = len;
        self.verify_signature_reference(message, signature_b64)
    }

    /// The same check through `jsonwebtoken::crypto::verify` alone: the
    /// reference the prepared fast path is tested against.
    pub fn verify_signature_reference(&self, message: &[u8], signature_b64: &str) -> bool {
        matches!(
            jsonwebtoken::crypto::verify(signature_b64, message, &self.key, self.alg),
            Ok(true)
        )
    }

    /// The underlying `jsonwebtoken` key.
    pub fn decoding_key(&self) -> &DecodingKey {
        &self.key
    }

    /// The public JWK for this key (never for HMAC keys: `None`).
    pub fn to_public_jwk(&self) -> Option<Jwk> {
        if family(self.alg).is_err() {
            return None;
        }
        let mut jwk = Jwk::from_decoding_key(&self.key, Some(self.alg)).ok()?;
        jwk.common.key_id = self.kid.as_deref().map(str::to_owned);
        jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
        Some(jwk)
    }

    /// Build the key and, with aws-lc-rs, prepare it once. A key the backend
    /// cannot parse is refused here rather than on every request.
    pub(crate) fn unchecked(alg: Algorithm, key: DecodingKey) -> Self {
        Self {
            alg,
            kid: None,
            signed_until: None,
            #[cfg(feature = "aws-lc-rs")]
            prepared: crate::prepared::Prepared::new(alg, &key).ok().map(Arc::new),
            key,
        }
    }

    /// Check a key against its algorithm: the key's family must be the
    /// algorithm's (HMAC only from a secret), RSA ≥ 2048 bits, EC on the
    /// algorithm's curve, Ed25519 32 bytes. Every constructor ends here.
    pub(crate) fn checked(alg: Algorithm, key: DecodingKey) -> Result<Self, ConfigError> {
        if key.family() != jwt_family(alg)? {
            return Err(ConfigError::KeyTypeMismatch {
                alg,
                key: family_name(key.family()),
            });
        }
        if matches!(jwt_family(alg)?, AlgorithmFamily::Hmac) {
            let len = key
                .try_get_as_bytes()
                .map_err(|e| ConfigError::InvalidKey(e.to_string()))?
                .len();
            let min = min_hmac_len(alg);
            if len < min {
                return Err(ConfigError::WeakSecret { alg, min, got: len });
            }
            return Ok(Self::unchecked(alg, key));
        }
        let jwk = Jwk::from_decoding_key(&key, Some(alg))
            .map_err(|e| ConfigError::InvalidKey(e.to_string()))?;
        check_jwk_strength(&jwk, alg)?;
        let key = Self::unchecked(alg, key);
        #[cfg(feature = "aws-lc-rs")]
        if key.prepared.is_none() {
            return Err(ConfigError::InvalidKey(
                "the crypto backend cannot parse this public key".into(),
            ));
        }
        Ok(key)
    }
}

/// The family rule (RFC 7518 §3.1, §6; RFC 8037; RFC 8725 §3.1): `oct` keys
/// serve HS* only; RS*/PS* need RSA; ES256/ES384/ES512 need EC on
/// P-256/P-384/P-521; EdDSA needs OKP on Ed25519. Checked on the key's
/// declared type before any key material is used, wherever a key is made.
pub(crate) fn check_key_type(
    params: &AlgorithmParameters,
    alg: Algorithm,
) -> Result<(), ConfigError> {
    let fits = match (params, alg) {
        (AlgorithmParameters::OctetKey(_), a) => {
            matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
        }
        (AlgorithmParameters::RSA(_), a) => matches!(family(a), Ok(Family::Rsa)),
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => {
            ec.curve == EllipticCurve::P256
        }
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES384) => {
            ec.curve == EllipticCurve::P384
        }
        (AlgorithmParameters::OctetKeyPair(okp), Algorithm::EdDSA) => {
            okp.curve == EllipticCurve::Ed25519
        }
        _ => false,
    };
    if fits {
        Ok(())
    } else {
        Err(ConfigError::KeyTypeMismatch {
            alg,
            key: key_type_name(params),
        })
    }
}

/// `kty` (and curve) of a JWK, for error messages.
pub(crate) fn key_type_name(params: &AlgorithmParameters) -> &'static str {
    match params {
        AlgorithmParameters::OctetKey(_) => "oct",
        AlgorithmParameters::RSA(_) => "RSA",
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => "EC P-256",
            EllipticCurve::P384 => "EC P-384",
            EllipticCurve::P521 => "EC P-521",
            _ => "EC on another curve",
        },
        AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
            EllipticCurve::Ed25519 => "OKP Ed25519",
            _ => "OKP on another curve",
        },
        _ => "an unsupported key type",
    }
}

fn family_name(f: AlgorithmFamily) -> &'static str {
    match f {
        AlgorithmFamily::Hmac => "HMAC secret",
        AlgorithmFamily::Rsa => "RSA",
        AlgorithmFamily::Ec => "EC",
        AlgorithmFamily::Ed => "OKP Ed25519",
    }
}

/// jsonwebtoken's family of an algorithm keycard supports.
fn jwt_family(alg: Algorithm) -> Result<AlgorithmFamily, ConfigError> {
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => Ok(AlgorithmFamily::Hmac),
        a => Ok(match family(a)? {
            Family::Rsa => AlgorithmFamily::Rsa,
            Family::Ec => AlgorithmFamily::Ec,
            Family::Ed => AlgorithmFamily::Ed,
        }),
    }
}

/// Refuse weak or mismatched public keys described by a JWK.
pub(crate) fn check_jwk_strength(jwk: &Jwk, alg: Algorithm) -> Result<(), ConfigError> {
    match (&jwk.algorithm, family(alg)?) {
        (AlgorithmParameters::RSA(rsa), Family::Rsa) => {
            let n = crate::b64::decode(rsa.n.as_bytes())
                .map_err(|_| ConfigError::InvalidKey("bad RSA modulus".into()))?;
            let bits = modulus_bits(&n);
            if bits < 2048 {
                return Err(ConfigError::WeakRsaKey(bits));
            }
            Ok(())
        }
        (AlgorithmParameters::EllipticCurve(ec), Family::Ec) => {
            let want = if alg == Algorithm::ES256 {
                EllipticCurve::P256
            } else {
                EllipticCurve::P384
            };
            if ec.curve == want {
                Ok(())
            } else {
                Err(ConfigError::KeyAlgorithmMismatch(alg))
            }
        }
        (AlgorithmParameters::OctetKeyPair(okp), Family::Ed)
            if okp.curve == EllipticCurve::Ed25519 =>
        {
            Ok(())
        }
        _ => Err(ConfigError::KeyAlgorithmMismatch(alg)),
    }
}

fn modulus_bits(n: &[u8]) -> usize {
    let Some(first) = n.iter().position(|b| *b != 0) else {
        return 0;
    };
    (n.len() - first) * 8 - n[first].leading_zeros() as usize
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Rsa,
    Ec,
    Ed,
}

/// The asymmetric family of an algorithm (HMAC is an error here).
pub(crate) fn family(alg: Algorithm) -> Result<Family, ConfigError> {
    match alg {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => Ok(Family::Rsa),
        Algorithm::ES256 | Algorithm::ES384 => Ok(Family::Ec),
        Algorithm::EdDSA => Ok(Family::Ed),
        _ => Err(ConfigError::KeyAlgorithmMismatch(alg)),
    }
}

/// A JWK as JSON with RFC 9864's fully-specified `"alg": "Ed25519"` read as
/// its deprecated alias `EdDSA` (the only Ed* algorithm keycard verifies;
/// jsonwebtoken's JWK type does not know the new name).
#[cfg(feature = "jwks")]
pub(crate) fn normalize_jwk_alg(
    raw: &serde_json::Value,
) -> std::borrow::Cow<'_, serde_json::Value> {
    if raw.get("alg").and_then(serde_json::Value::as_str) == Some("Ed25519") {
        let mut v = raw.clone();
        v["alg"] = serde_json::Value::from("EdDSA");
        std::borrow::Cow::Owned(v)
    } else {
        std::borrow::Cow::Borrowed(raw)
    }
}

/// The token's algorithm name as it appears in a JOSE header.
pub(crate) fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::EdDSA => "EdDSA",
        // Future algorithms are never matched by a token until named here.
        _ => "",
    }
}

/// Whether `key` may verify a token naming `kid`, in a set of `set_len`
/// keys. A token that names a `kid` selects exactly the key with that id. A
/// token without `kid` is tried only against keys without one, unless the
/// set holds exactly one key: a key published with a `kid` is otherwise
/// reserved for tokens that name it.
pub(crate) fn answers_kid(key: &Key, kid: Option<&str>, set_len: usize) -> bool {
    match kid {
        Some(kid) => key.kid() == Some(kid),
        None => key.kid().is_none() || set_len == 1,
    }
}

/// A fixed set of keys, selected by `kid` (and pinned algorithm).
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<Arc<Key>>,
}

impl KeySet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a key. Two keys with the same `kid` are a configuration error.
    pub fn with(mut self, key: Key) -> Result<Self, ConfigError> {
        if let Some(kid) = key.kid() {
            if self.keys.iter().any(|k| k.kid() == Some(kid)) {
                return Err(ConfigError::DuplicateKid(kid.to_owned()));
            }
        }
        self.keys.push(Arc::new(key));
        Ok(self)
    }

    /// The keys, in insertion order.
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.keys.iter().map(|k| &**k)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Candidate keys for a token header: the key with this `kid` when the
    /// token names one; for a token without `kid`, the keys without one (or
    /// the only key of a one-key set). Only keys whose pinned algorithm
    /// equals `alg` are returned.
    pub fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: &'a str,
    ) -> impl Iterator<Item = &'a Arc<Key>> + 'a {
        let n = self.keys.len();
        self.keys
            .iter()
            .filter(move |k| alg_name(k.alg) == alg && answers_kid(k, kid, n))
    }

    /// A JWKS document with the public half of every asymmetric key (HMAC
    /// keys are never published).
    pub fn to_public_jwks(&self) -> jsonwebtoken::jwk::JwkSet {
        jsonwebtoken::jwk::JwkSet {
            keys: self.keys().filter_map(Key::to_public_jwk).collect(),
        }
    }
}

/// The answer of a [`KeyProvider`] for one token header.
#[derive(Debug, Clone)]
pub enum KeyLookup {
    /// The one key that may verify the token (the usual case: no
    /// allocation).
    One(Arc<Key>),
    /// These keys may verify the token (tried in order).
    Found(Vec<Arc<Key>>),
    /// No key matches, and refreshing would not help (or was just tried).
    NotFound,
    /// A key with the token's `kid` is known, but it does not serve the
    /// token's algorithm (a different fault from an unknown `kid`).
    AlgorithmNotAllowed,
    /// No key matches now; [`KeyProvider::refresh`] may find one.
    Refresh,
    /// The keys cannot be obtained at all right now (e.g. JWKS never loaded).
    Unavailable,
}

impl KeyLookup {
    /// The keys that may verify the token, from matching candidates: `One`
    /// for one, `Found` for several, `None` for none.
    pub fn from_matches<'a>(mut keys: impl Iterator<Item = &'a Arc<Key>>) -> Option<Self> {
        let first = keys.next()?;
        match keys.next() {
            None => Some(Self::One(first.clone())),
            Some(second) => {
                let mut all = vec![first.clone(), second.clone()];
                all.extend(keys.cloned());
                Some(Self::Found(all))
            }
        }
    }

    /// The candidate keys of a `One` or `Found` answer (empty otherwise).
    pub fn keys(&self) -> &[Arc<Key>] {
        match self {
            Self::One(k) => std::slice::from_ref(k),
            Self::Found(v) => v,
            _ => &[],
        }
    }
}

/// A boxed, sendable future, as returned by the async hooks of key providers
/// and stores.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A source of verification keys. Lookups are synchronous and lock-free on
/// the hot path; only a miss may trigger the async [`KeyProvider::refresh`].
pub trait KeyProvider: Send + Sync + fmt::Debug + 'static {
    /// Keys for a token from `issuer` (when known) with this `kid` and `alg`.
    fn lookup(&self, issuer: Option<&str>, kid: Option<&str>, alg: &str) -> KeyLookup;

    /// Try to obtain keys for an unknown `kid` (for example by refetching a
    /// JWKS, single-flight and rate-limited). The default does nothing.
    fn refresh<'a>(&'a self, _issuer: Option<&'a str>, _kid: Option<&'a str>) -> BoxFuture<'a, ()> {
        Box::pin(std::future::ready(()))
    }

    /// Whether lookups depend on the token's `iss` (multi-issuer providers).
    fn needs_issuer(&self) -> bool {
        false
    }

    /// Whether the keys can serve right now (present, not past their
    /// staleness bound); else why not. Default: always ready.
    fn readiness(&self) -> Result<(), String> {
        Ok(())
    }
}

impl KeyProvider for KeySet {
    fn lookup(&self, _issuer: Option<&str>, kid: Option<&str>, alg: &str) -> KeyLookup {
        if let Some(found) = KeyLookup::from_matches(self.candidates(kid, alg)) {
            found
        } else if kid_known(self.keys.iter(), kid) {
            KeyLookup::AlgorithmNotAllowed
        } else {
            KeyLookup::NotFound
        }
    }
}

/// Whether some key answers to the token's `kid` (whatever its algorithm).
pub(crate) fn kid_known<'a>(
    mut keys: impl Iterator<Item = &'a Arc<Key>>,
    kid: Option<&str>,
) -> bool {
    kid.is_some_and(|kid| keys.any(|k| k.kid() == Some(kid)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_hmac_secret_is_config_error() {
        assert!(matches!(
            Key::hs256([0u8; 31]),
            Err(ConfigError::WeakSecret {
                min: 32,
                got: 31,
                ..
            })
        ));
        assert!(Key::hs256([0u8; 32]).is_ok());
        assert!(matches!(
            Key::hmac(Algorithm::HS512, [0u8; 63]),
            Err(ConfigError::WeakSecret { min: 64, .. })
        ));
        assert!(Key::hmac(Algorithm::RS256, [0u8; 64]).is_err());
    }

    #[test]
    fn debug_hides_material() {
        let key = Key::hs256(b"super-secret-super-secret-super-secret").unwrap();
        let dbg = format!("{key:?}");
        assert!(!dbg.contains("super-secret"), "{dbg}");
    }

    #[test]
    fn duplicate_kid_refused() {
        let k = Key::hs256([1u8; 32]).unwrap().with_kid("a");
        let set = KeySet::new().with(k.clone()).unwrap();
        assert!(matches!(set.with(k), Err(ConfigError::DuplicateKid(_))));
    }

    #[test]
    fn modulus_bit_count() {
        assert_eq!(modulus_bits(&[0, 0x80, 0]), 16);
        assert_eq!(modulus_bits(&[0x01, 0xff]), 9);
        assert_eq!(modulus_bits(&[]), 0);
    }
}

/// Several issuers at once: keys are resolved by (`iss`, `kid`), so a token
/// claiming issuer A is only ever checked against A's keys.
#[derive(Debug, Default, Clone)]
pub struct MultiIssuer {
    issuers: HashMap<String, Arc<dyn KeyProvider>>,
}

impl MultiIssuer {
    /// No issuers yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trust `keys` for tokens whose `iss` is exactly `issuer`.
    #[must_use]
    pub fn issuer(mut self, issuer: impl Into<String>, keys: Arc<dyn KeyProvider>) -> Self {
        self.issuers.insert(issuer.into(), keys);
        self
    }

    /// The configured issuers (pass each to the verifier's `issuer`).
    pub fn issuers(&self) -> impl Iterator<Item = &str> {
        self.issuers.keys().map(String::as_str)
    }
}

impl KeyProvider for MultiIssuer {
    fn lookup(&self, issuer: Option<&str>, kid: Option<&str>, alg: &str) -> KeyLookup {
        match issuer.and_then(|i| self.issuers.get(i)) {
            Some(p) => p.lookup(issuer, kid, alg),
            None => KeyLookup::NotFound,
        }
    }

    fn refresh<'a>(&'a self, issuer: Option<&'a str>, kid: Option<&'a str>) -> BoxFuture<'a, ()> {
        match issuer.and_then(|i| self.issuers.get(i)) {
            Some(p) => p.refresh(issuer, kid),
            None => Box::pin(std::future::ready(())),
        }
    }

    fn needs_issuer(&self) -> bool {
        true
    }

    fn readiness(&self) -> Result<(), String> {
        let problems: Vec<String> = self
            .issuers
            .iter()
            .filter_map(|(iss, p)| p.readiness().err().map(|e| format!("{iss}: {e}")))
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}
