//! Reading a JWKS document: limits, filters and the algorithm each key
//! serves.

use crate::error::ConfigError;
use crate::key::Key;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::Algorithm;
use serde_json::Value;
use std::sync::Arc;

use super::*;

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
pub(crate) enum Skip {
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
pub(crate) fn usable_keys(raw: &Value, cfg: &JwksBuilder) -> Result<Vec<Key>, Skip> {
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
