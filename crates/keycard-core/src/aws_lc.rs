//! Keys prepared once for the aws-lc-rs backend: the HMAC key schedule and
//! parsed public keys are built when a [`crate::Key`] is configured, not on
//! every request (jsonwebtoken rebuilds them per call). Without the
//! `aws-lc-rs` feature, verification goes through jsonwebtoken instead.

use aws_lc_rs::{hmac, signature};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind};

use crate::error::ConfigError;

/// A key ready to verify without per-call setup. It lives behind an `Arc`
/// in [`crate::Key`], so the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Prepared {
    Hmac(hmac::Key),
    Public(signature::ParsedPublicKey),
}

impl Prepared {
    pub(crate) fn new(alg: Algorithm, key: &DecodingKey) -> Result<Self, ConfigError> {
        let invalid = |e: &dyn std::fmt::Display| ConfigError::InvalidKey(e.to_string());
        let hmac_alg = match alg {
            Algorithm::HS256 => Some(hmac::HMAC_SHA256),
            Algorithm::HS384 => Some(hmac::HMAC_SHA384),
            Algorithm::HS512 => Some(hmac::HMAC_SHA512),
            _ => None,
        };
        if let Some(h) = hmac_alg {
            // Defence in depth: only a secret ever becomes an HMAC key.
            if !matches!(key.family(), jsonwebtoken::AlgorithmFamily::Hmac) {
                return Err(ConfigError::KeyAlgorithmMismatch(alg));
            }
            let secret = key.try_get_as_bytes().map_err(|e| invalid(&e))?;
            return Ok(Self::Hmac(hmac::Key::new(h, secret)));
        }
        let verification: &'static dyn signature::VerificationAlgorithm = match alg {
            Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
            Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
            Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
            Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
            Algorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
            Algorithm::EdDSA => &signature::ED25519,
            _ => return Err(ConfigError::KeyAlgorithmMismatch(alg)),
        };
        let bytes = match key.kind() {
            DecodingKeyKind::SecretOrDer(b) => b.clone(),
            DecodingKeyKind::RsaModulusExponent { n, e } => pkcs1_der(n, e),
        };
        signature::ParsedPublicKey::new(verification, bytes)
            .map(Self::Public)
            .map_err(|e| invalid(&e))
    }

    /// Verify raw signature bytes over `message` (constant time for HMAC).
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::Hmac(key) => hmac::verify(key, message, signature).is_ok(),
            Self::Public(key) => key.verify_sig(message, signature).is_ok(),
        }
    }
}

/// DER of a PKCS#1 `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`.
fn pkcs1_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn integer(v: &[u8]) -> Vec<u8> {
        let v = match v.iter().position(|b| *b != 0) {
            Some(i) => &v[i..],
            None => &[0][..],
        };
        let mut body = Vec::with_capacity(v.len() + 1);
        if v[0] & 0x80 != 0 {
            body.push(0);
        }
        body.extend_from_slice(v);
        tlv(0x02, &body)
    }
    fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = body.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes = len.to_be_bytes();
            let skip = bytes
                .iter()
                .position(|b| *b != 0)
                .unwrap_or(bytes.len() - 1);
            out.push(0x80 | (bytes.len() - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
        out.extend_from_slice(body);
        out
    }
    let mut seq = integer(n);
    seq.extend(integer(e));
    tlv(0x30, &seq)
}

#[cfg(test)]
mod tests {
    #[test]
    fn der_lengths() {
        let der = super::pkcs1_der(&[0x80; 256], &[1, 0, 1]);
        // 0x30 0x82 len(2) | 0x02 0x82 0x01 0x01 0x00 + 256 | 0x02 0x03 01 00 01
        assert_eq!(&der[..4], &[0x30, 0x82, 0x01, 0x0a]);
        assert_eq!(&der[4..9], &[0x02, 0x82, 0x01, 0x01, 0x00]);
        assert_eq!(&der[der.len() - 5..], &[0x02, 0x03, 1, 0, 1]);
    }
}
