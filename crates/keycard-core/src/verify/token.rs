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

    /// Whether this walk runs the caller's code (a `Deserialize`), which
    /// must only ever see a payload whose signature has been checked.
    fn runs_caller_code(&self) -> bool {
        false
    }
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

    fn runs_caller_code(&self) -> bool {
        true
    }
}

/// What a JOSE header segment says once it passed every header check: a
/// function of the segment's bytes alone (the verifier's own rules, such as
/// its algorithm allow-list, apply afterwards).
#[derive(Clone)]
struct HeaderFacts {
    alg: &'static str,
    kid: Option<HeaderText>,
    typ: Option<HeaderText>,
}

/// Header segments up to this length are remembered.
const REMEMBERED_HEADER: usize = 256;

thread_local! {
    /// The last header segment this thread accepted, byte for byte, and
    /// what it said. Every token one key signs carries the same header
    /// segment, so most requests skip the header's base64 and JSON walk.
    /// The segment is compared in full, never hashed; refused segments are
    /// not remembered.
    static LAST_HEADER: std::cell::RefCell<Remembered> = const { std::cell::RefCell::new(None) };
}

type Remembered = Option<([u8; REMEMBERED_HEADER], usize, HeaderFacts)>;

fn header_facts(h: &str) -> Result<HeaderFacts, AuthError> {
    let h = h.as_bytes();
    let remembered = |cell: &std::cell::RefCell<Remembered>| match cell.try_borrow().as_deref() {
        Ok(Some((seg, len, facts))) if h == &seg[..*len] => Some(facts.clone()),
        _ => None,
    };
    if h.len() <= REMEMBERED_HEADER {
        if let Some(facts) = LAST_HEADER.try_with(remembered).ok().flatten() {
            return Ok(facts);
        }
    }
    let facts = read_header(h)?;
    if h.len() <= REMEMBERED_HEADER {
        let mut seg = [0u8; REMEMBERED_HEADER];
        seg[..h.len()].copy_from_slice(h);
        let _ = LAST_HEADER.try_with(|cell| {
            if let Ok(mut slot) = cell.try_borrow_mut() {
                *slot = Some((seg, h.len(), facts.clone()));
            }
        });
    }
    Ok(facts)
}

/// The header checks: strict base64url, JSON without duplicate members at
/// any depth, no `crit`/`enc`/`zip`/`b64`, no nested JWT, an `alg`.
fn read_header(h: &[u8]) -> Result<HeaderFacts, AuthError> {
    // Headers are small: decode on the stack, then one walk that reads the
    // members and refuses duplicates at any depth.
    let mut header_buf = [0u8; 2048];
    let header_len =
        crate::b64::decode_slice(h, &mut header_buf).map_err(|_| malformed("header base64"))?;
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
    Ok(HeaderFacts {
        alg: known_alg(&alg.0).unwrap_or(""),
        kid: header.kid.map(|k| HeaderText::new(&k.0)),
        typ: header.typ.map(|t| HeaderText::new(&t.0)),
    })
}

pub(crate) fn parse(token: &str, s: &Settings) -> Result<Parsed, AuthError> {
    parse_with(token, s, &mut Untyped)
}

pub(crate) fn parse_with(
    token: &str,
    s: &Settings,
    walk: &mut dyn PayloadWalk,
) -> Result<Parsed, AuthError> {
    walked(unwalked(token, s)?, walk)
}

/// A compact JWS whose form, header and allow-list checked out and whose
/// payload is decoded, but not yet walked: enough to find its key and check
/// its signature.
pub(crate) struct Unwalked {
    pub(crate) alg: &'static str,
    pub(crate) kid: Option<HeaderText>,
    typ: Option<HeaderText>,
    payload: Vec<u8>,
    pub(crate) signing_input_len: usize,
}

/// Size, form, strict base64url, the JOSE header and the allow-list.
pub(crate) fn unwalked(token: &str, s: &Settings) -> Result<Unwalked, AuthError> {
    if token.len() > s.max_token_bytes {
        return Err(AuthErrorKind::TokenTooLarge.into());
    }
    // No separate charset pass: the strict base64url decoder below refuses
    // every byte outside the URL-safe alphabet in each part.
    let three = token
        .rsplit_once('.')
        .and_then(|(input, sig)| input.split_once('.').map(|(h, p)| (h, p, sig)));
    let Some((h, p, sig)) = three else {
        return Err(malformed("a JWS has exactly three parts"));
    };
    // A fourth part would sit in `p`, where the strict base64url decoder
    // refuses the dot: no token with more parts gets through. The search
    // for it runs only on the failure path, to name the problem.
    unwalked_parts(h, p, sig, s).map_err(|e| {
        if p.contains('.') {
            malformed("a JWS has exactly three parts")
        } else {
            e
        }
    })
}

fn unwalked_parts(h: &str, p: &str, sig: &str, s: &Settings) -> Result<Unwalked, AuthError> {
    if h.is_empty() || p.is_empty() || sig.is_empty() {
        return Err(malformed("empty part"));
    }
    let HeaderFacts { alg, kid, typ } = header_facts(h)?;
    if let Some(allowed) = &s.algorithms {
        if !allowed.contains(&alg) {
            return Err(AuthError::new(AuthErrorKind::AlgorithmNotAllowed)
                .with_detail("the verifier's algorithm allow-list"));
        }
    }
    let payload = crate::b64::decode(p.as_bytes()).map_err(|_| malformed("payload base64"))?;
    Ok(Unwalked {
        alg,
        kid,
        typ,
        payload,
        signing_input_len: h.len() + 1 + p.len(),
    })
}

/// The payload walk: an object without duplicate members, the registered
/// claims with strict types, `exp` present.
pub(crate) fn walked(u: Unwalked, walk: &mut dyn PayloadWalk) -> Result<Parsed, AuthError> {
    let Unwalked {
        alg,
        kid,
        typ,
        payload,
        signing_input_len,
    } = u;
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
        kid,
        typ,
        facts,
        exp,
        payload,
        signing_input_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Attempt, Key, SigningKey, TokenIssuer, TokenType, Verifier};

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn b64(json: &str) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    /// The remembered header segment is a shortcut for the header checks
    /// only: the verifier's own rules still apply to every token, and a
    /// segment that differs by one byte is read and checked afresh.
    #[test]
    fn a_remembered_header_never_skips_a_check() {
        let token = TokenIssuer::builder(SigningKey::hs256(SECRET).unwrap())
            .build()
            .unwrap()
            .issue(TokenType::Access, "alice", None, &serde_json::json!({}))
            .unwrap()
            .token;
        let hs = Verifier::builder()
            .key(Key::hs256(SECRET).unwrap())
            .build()
            .unwrap();
        assert!(matches!(hs.verify_now(&token), Attempt::Done(Ok(_))));
        assert!(matches!(hs.verify_now(&token), Attempt::Done(Ok(_))));
        // Same segment, a verifier that allows only RS256: refused.
        let rs_only = Verifier::builder()
            .key(Key::hs256(SECRET).unwrap())
            .algorithms([jsonwebtoken::Algorithm::RS256])
            .build()
            .unwrap();
        let Attempt::Done(Err(e)) = rs_only.verify_now(&token) else {
            panic!("the allow-list was skipped")
        };
        assert_eq!(e.kind(), AuthErrorKind::AlgorithmNotAllowed);
        // Segments that differ from the remembered one are checked afresh.
        let rest = &token[token.find('.').unwrap()..];
        for (header, kind) in [
            (
                r#"{"alg":"HS256","typ":"at+jwt","crit":["x"]}"#,
                AuthErrorKind::UnsupportedHeader,
            ),
            (
                r#"{"alg":"HS256","alg":"HS256"}"#,
                AuthErrorKind::MalformedToken,
            ),
            (r#"{"typ":"at+jwt"}"#, AuthErrorKind::MalformedToken),
        ] {
            let forged = format!("{}{rest}", b64(header));
            let Attempt::Done(Err(e)) = hs.verify_now(&forged) else {
                panic!("{header} passed")
            };
            assert_eq!(e.kind(), kind, "{header}");
        }
        // And the remembered facts are the segment's own: kid and typ.
        let with_kid = format!(
            "{}{rest}",
            b64(r#"{"alg":"HS256","typ":"at+jwt","kid":"k1"}"#)
        );
        for _ in 0..2 {
            let p = parse(&with_kid, &hs.0).unwrap();
            assert_eq!(p.kid.as_deref(), Some("k1"));
            assert_eq!(p.typ.as_deref(), Some("at+jwt"));
        }
        let p = parse(&token, &hs.0).unwrap();
        assert_eq!(p.kid.as_deref(), None);
    }
}
