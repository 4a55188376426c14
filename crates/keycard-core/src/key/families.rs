//! Which key serves which algorithm: the family rule, strength checks, and
//! algorithm names.

use crate::error::ConfigError;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, AlgorithmFamily};

use super::*;

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

pub(crate) fn family_name(f: AlgorithmFamily) -> &'static str {
    match f {
        AlgorithmFamily::Hmac => "HMAC secret",
        AlgorithmFamily::Rsa => "RSA",
        AlgorithmFamily::Ec => "EC",
        AlgorithmFamily::Ed => "OKP Ed25519",
    }
}

/// jsonwebtoken's family of an algorithm keycard supports.
pub(crate) fn jwt_family(alg: Algorithm) -> Result<AlgorithmFamily, ConfigError> {
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

pub(crate) fn modulus_bits(n: &[u8]) -> usize {
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
