//! Parsing a compact JWS before any key is touched: size, form, strict
//! base64url, the JOSE header and the payload pass.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{AuthError, AuthErrorKind};

use super::*;

pub(crate) fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// What the header and payload say, before the signature is checked.
pub(crate) struct Parsed {
    pub(crate) alg: &'static str,
    pub(crate) kid: Option<HeaderText>,
    pub(crate) typ: Option<HeaderText>,
    pub(crate) facts: crate::parse::Facts,
    pub(crate) exp: i64,
    pub(crate) payload: Vec<u8>,
    pub(crate) signing_input_len: usize,
}

impl Parsed {
    pub(crate) fn iss(&self) -> Option<&str> {
        self.facts.iss.as_ref().map(|t| t.as_str(&self.payload))
    }
}

pub(crate) fn malformed(why: &'static str) -> AuthError {
    AuthError::new(AuthErrorKind::MalformedToken).with_detail(why)
}

/// The algorithm names keycard can verify; anything else (`none`, `ES512`,
/// unknown) has no key.
///
/// RFC 9864's fully-specified `Ed25519` is the same algorithm as the
/// deprecated polymorphic `EdDSA` over Ed25519 (the only curve keycard
/// verifies), so both select EdDSA keys.
pub(crate) fn known_alg(alg: &str) -> Option<&'static str> {
    const KNOWN: [&str; 12] = [
        "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
        "ES384", "EdDSA",
    ];
    if alg == "Ed25519" {
        return Some("EdDSA");
    }
    KNOWN.iter().copied().find(|k| *k == alg)
}

/// The walk over the decoded payload that [`parse_with`] runs: the untyped
/// pass, or the typed pass that also deserializes the caller's claims type.
pub(crate) trait PayloadWalk {
    fn walk<'p>(
        &mut self,
        payload: &'p [u8],
    ) -> Result<crate::parse::PayloadFacts<'p>, serde_json::Error>;
}

/// The untyped pass alone.
pub(crate) struct Untyped;

impl PayloadWalk for Untyped {
    fn walk<'p>(
        &mut self,
        payload: &'p [u8],
    ) -> Result<crate::parse::PayloadFacts<'p>, serde_json::Error> {
        crate::parse::payload_pass(payload)
    }
}

/// The typed pass for `T`. When it fails for any reason, the untyped pass
/// decides (its error is the one reported) and `T` stays `None`, to be
/// deserialized the usual way by [`Verified::claims`].
pub(crate) struct TypedWalk<T>(pub(crate) Option<T>);

impl<T: serde::de::DeserializeOwned> PayloadWalk for TypedWalk<T> {
    fn walk<'p>(
        &mut self,
        payload: &'p [u8],
    ) -> Result<crate::parse::PayloadFacts<'p>, serde_json::Error> {
        self.0 = None;
        match crate::typed::typed_pass::<T>(payload) {
            Ok((facts, t)) => {
                self.0 = Some(t);
                Ok(facts)
            }
            Err(_) => crate::parse::payload_pass(payload),
        }
    }
}

pub(crate) fn parse(token: &str, s: &Settings) -> Result<Parsed, AuthError> {
    parse_with(token, s, &mut Untyped)
}

pub(crate) fn parse_with(
    token: &str,
    s: &Settings,
    walk: &mut dyn PayloadWalk,
) -> Result<Parsed, AuthError> {
    if token.len() > s.max_token_bytes {
        return Err(AuthErrorKind::TokenTooLarge.into());
    }
    // No separate charset pass: the strict base64url decoder below refuses
    // every byte outside the URL-safe alphabet in each part.
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("a JWS has exactly three parts"));
    };
    if h.is_empty() || p.is_empty() || sig.is_empty() {
        return Err(malformed("empty part"));
    }
    // Headers are small: decode on the stack, then one walk that reads the
    // members and refuses duplicates at any depth.
    let mut header_buf = [0u8; 2048];
    let header_len = crate::b64::decode_slice(h.as_bytes(), &mut header_buf)
        .map_err(|_| malformed("header base64"))?;
    let header: crate::parse::JoseHeader<'_> = serde_json::from_slice(&header_buf[..header_len])
        .map_err(|_| malformed("header is not JSON without duplicate members"))?;
    for (refused, name) in [
        (header.crit, "crit"),
        (header.enc, "enc"),
        (header.zip, "zip"),
        (header.b64, "b64"),
    ] {
        if refused {
            return Err(AuthError::new(AuthErrorKind::UnsupportedHeader).with_detail(name));
        }
    }
    if let Some(cty) = &header.cty {
        if cty.0.eq_ignore_ascii_case("jwt") || cty.0.eq_ignore_ascii_case("application/jwt") {
            return Err(AuthError::new(AuthErrorKind::UnsupportedHeader).with_detail("nested JWT"));
        }
    }
    let Some(alg) = header.alg else {
        return Err(malformed("alg missing"));
    };
    let alg = known_alg(&alg.0).unwrap_or("");
    if let Some(allowed) = &s.algorithms {
        if !allowed.contains(&alg) {
            return Err(AuthError::new(AuthErrorKind::AlgorithmNotAllowed)
                .with_detail("the verifier's algorithm allow-list"));
        }
    }
    let payload = crate::b64::decode(p.as_bytes()).map_err(|_| malformed("payload base64"))?;
    let facts = walk.walk(&payload).map_err(|e| {
        AuthError::new(AuthErrorKind::MalformedToken)
            .with_detail(format!("payload: {}", crate::parse::json_error_detail(&e)))
    })?;
    let Some(exp) = facts.exp.as_ref().map(|n| n.0) else {
        return Err(AuthError::new(AuthErrorKind::MissingClaim).with_detail("exp"));
    };
    let facts = crate::parse::Facts::of(facts, &payload);
    Ok(Parsed {
        alg,
        kid: header.kid.map(|k| HeaderText::new(&k.0)),
        typ: header.typ.map(|t| HeaderText::new(&t.0)),
        facts,
        exp,
        payload,
        signing_input_len: h.len() + 1 + p.len(),
    })
}
