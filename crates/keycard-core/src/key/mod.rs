//! Verification keys: one algorithm pinned per key, selected by `kid`.
//!
//! A [`Key`] is built from a secret, PEM, DER or JWK and checked at
//! construction: HMAC secrets at least as long as the hash, RSA moduli of at
//! least 2048 bits, EC keys on the curve their algorithm names. A [`KeySet`]
//! holds several keys for rotation. Remote key sources (JWKS) implement
//! [`KeyProvider`].

use std::fmt;
use std::sync::Arc;

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

use crate::error::ConfigError;

mod families;
mod provider;
#[allow(unused_imports)]
pub(crate) use families::*;
#[allow(unused_imports)]
pub(crate) use provider::*;
pub use provider::{BoxFuture, KeyLookup, KeyProvider, KeySet, MultiIssuer};

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
    prepared: Option<Arc<crate::aws_lc::Prepared>>,
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
        if looks_like_a_key(secret) {
            // Public keys are public: as an HMAC secret, one lets anyone
            // who fetched it sign tokens (RFC 8725 §2.1, §3.1).
            return Err(ConfigError::KeyTypeMismatch {
                alg,
                key: "PEM, DER or JWK",
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
        // Strict base64url into a stack buffer: 96 bytes hold every HMAC and
        // EC signature, 1 KiB every RSA one (RSA-8192).
        fn with_decoded<const N: usize>(b64: &str, f: impl FnOnce(&[u8]) -> bool) -> bool {
            let mut buf = [0u8; N];
            crate::b64::decode_slice(b64.as_bytes(), &mut buf).is_ok_and(|len| f(&buf[..len]))
        }
        let check = |raw: &[u8]| {
            #[cfg(feature = "aws-lc-rs")]
            if let Some(prepared) = &self.prepared {
                return prepared.verify(message, raw);
            }
            let _ = raw;
            self.verify_signature_reference(message, signature_b64)
        };
        if signature_b64.len() <= 128 {
            with_decoded::<96>(signature_b64, check)
        } else {
            with_decoded::<1024>(signature_b64, check)
        }
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
            prepared: crate::aws_lc::Prepared::new(alg, &key).ok().map(Arc::new),
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

/// Whether bytes given as an HMAC secret are in fact a key in a key format:
/// PEM (`-----BEGIN`), a JWK (a JSON object with `kty`), or DER (an ASN.1
/// SEQUENCE whose length covers exactly the input). Such bytes are usually
/// a public key, and a public key must never become an HMAC secret.
pub(crate) fn looks_like_a_key(secret: &[u8]) -> bool {
    let trimmed = secret.trim_ascii();
    if trimmed.starts_with(b"-----BEGIN") {
        return true;
    }
    if trimmed.first() == Some(&b'{') {
        if let Ok(serde_json::Value::Object(o)) = serde_json::from_slice(trimmed) {
            return o.contains_key("kty");
        }
    }
    // DER: 0x30, then a definite length that spans the rest of the input.
    if let [0x30, len, rest @ ..] = secret {
        let declared = match *len {
            l @ 0..=0x7f => Some((usize::from(l), rest)),
            0x81 => rest.split_first().map(|(l, r)| (usize::from(*l), r)),
            0x82 => match rest {
                [a, b, r @ ..] => Some(((usize::from(*a) << 8) | usize::from(*b), r)),
                _ => None,
            },
            _ => None,
        };
        if let Some((n, body)) = declared {
            return n == body.len();
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_in_a_key_format_is_never_an_hmac_secret() {
        let pem: &[u8] = include_bytes!("../../../../tests/fixtures/rsa2048.pub.pem");
        let jwk = br#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;
        let der = {
            let b64: String = std::str::from_utf8(pem)
                .unwrap()
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .collect();
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64).unwrap()
        };
        for (name, bytes) in [("pem", pem.to_vec()), ("jwk", jwk.to_vec()), ("der", der)] {
            assert!(
                matches!(
                    Key::hmac(Algorithm::HS256, &bytes),
                    Err(ConfigError::KeyTypeMismatch { .. })
                ),
                "{name}"
            );
            assert!(
                crate::SigningKey::hmac(Algorithm::HS512, &bytes).is_err(),
                "{name}"
            );
        }
        // Ordinary secrets, including ones that start like DER or JSON.
        for ok in [
            &b"0\x10-not-der-but-long-enough-to-be-a-secret!!"[..],
            br#"{"not":"a jwk","but":"a long enough secret"}"#,
            b"a-perfectly-fine-secret-of-32-bytes-or-more",
        ] {
            Key::hmac(Algorithm::HS256, ok).unwrap();
        }
    }

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
