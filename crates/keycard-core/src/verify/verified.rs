//! [`Verified`]: a token that passed every check, and what it answers.

use std::fmt;
use std::sync::Arc;

use jsonwebtoken::Algorithm;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{AuthError, AuthErrorKind};
use crate::roles::RoleClaim;
use crate::source::Found;

/// The registered claims of a verified token, already type-checked.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RegisteredClaims {
    /// `iss`.
    pub iss: Option<String>,
    /// `sub`.
    pub sub: Option<String>,
    /// `aud`, normalised to a list.
    pub aud: Vec<String>,
    /// `exp`, seconds since the epoch.
    pub exp: i64,
    /// `nbf`.
    pub nbf: Option<i64>,
    /// `iat`.
    pub iat: Option<i64>,
    /// `jti`.
    pub jti: Option<String>,
    /// `sid`: the session (refresh family) the token belongs to.
    pub sid: Option<String>,
}

/// A token that passed every check. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Verified {
    pub(crate) inner: Arc<VerifiedInner>,
    pub(crate) found: Found,
    pub(crate) cached: bool,
}

pub(crate) struct VerifiedInner {
    /// `None` for an introspected token.
    pub(crate) alg: Option<Algorithm>,
    pub(crate) kid: Option<HeaderText>,
    pub(crate) typ: Option<HeaderText>,
    /// The registered claims as spans of the payload: no copy.
    pub(crate) facts: crate::parse::Facts,
    pub(crate) exp: i64,
    pub(crate) payload: Vec<u8>,
    pub(crate) registered: std::sync::OnceLock<RegisteredClaims>,
    pub(crate) claims_json: std::sync::OnceLock<Map<String, Value>>,
    pub(crate) roles: std::sync::OnceLock<Vec<String>>,
    pub(crate) scopes: std::sync::OnceLock<Vec<String>>,
    pub(crate) claims_config: Arc<ClaimsConfig>,
}

/// What a verified token needs from its verifier to answer questions later
/// (one `Arc` for all of it).
#[derive(Debug)]
pub(crate) struct ClaimsConfig {
    pub(crate) role_claim: RoleClaim,
    pub(crate) scope_claims: Vec<crate::roles::ClaimPath>,
    pub(crate) realm: Arc<str>,
    pub(crate) resource_metadata: Option<Arc<str>>,
}

/// A short header string (`kid`, `typ`) kept inline: no allocation for the
/// usual lengths.
#[derive(Clone)]
pub(crate) enum HeaderText {
    /// One of the usual `typ` values.
    Known(&'static str),
    Inline(u8, [u8; 46]),
    Heap(Box<str>),
}

impl HeaderText {
    pub(crate) fn new(s: &str) -> Self {
        const KNOWN: [&str; 5] = ["at+jwt", "JWT", "jwt", "refresh+jwt", "dpop+jwt"];
        if let Some(k) = KNOWN.iter().find(|k| **k == s) {
            return Self::Known(k);
        }
        let b = s.as_bytes();
        if b.len() <= 46 {
            let mut buf = [0u8; 46];
            buf[..b.len()].copy_from_slice(b);
            Self::Inline(b.len() as u8, buf)
        } else {
            Self::Heap(s.into())
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            Self::Known(s) => s,
            Self::Inline(len, buf) => std::str::from_utf8(&buf[..*len as usize]).unwrap_or(""),
            Self::Heap(s) => s,
        }
    }
}

impl std::ops::Deref for HeaderText {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for HeaderText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Debug for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verified")
            .field("alg", &self.inner.alg)
            .field("kid", &self.inner.kid)
            .field("claims", self.registered())
            .finish_non_exhaustive()
    }
}

impl Verified {
    /// Whether `other` is this very verification (a clone of it), not
    /// merely a verification of an equal token.
    pub fn same_verification(&self, other: &Verified) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner) && self.found == other.found
    }

    /// Deserialize the payload into the caller's own claims type. A payload
    /// that does not fit the type is an `invalid_token` error.
    pub fn claims<T: DeserializeOwned>(&self) -> Result<T, AuthError> {
        crate::parse::from_payload(&self.inner.payload, std::marker::PhantomData).map_err(|e| {
            // The field name comes from the application's own type, and
            // the error never quotes a value: safe to tell the client.
            AuthError::new(AuthErrorKind::InvalidClaimType)
                .with_realm(self.inner.claims_config.realm.clone())
                .with_resource_metadata(self.inner.claims_config.resource_metadata.clone())
                .with_public_detail(format!(
                    "the claims do not fit the handler's claims type ({})",
                    crate::parse::json_error_detail(&e)
                ))
        })
    }

    /// The whole payload as JSON (parsed on first use).
    pub fn claims_json(&self) -> &Map<String, Value> {
        self.inner
            .claims_json
            .get_or_init(|| crate::parse::claims_object(&self.inner.payload))
    }

    /// The payload's JSON bytes, exactly as signed.
    pub fn payload_bytes(&self) -> &[u8] {
        &self.inner.payload
    }

    /// The registered claims (copied out of the payload on first use).
    pub fn registered(&self) -> &RegisteredClaims {
        self.inner.registered.get_or_init(|| {
            let (f, p) = (&self.inner.facts, &self.inner.payload[..]);
            let text = |t: &Option<crate::parse::Text>| t.as_ref().map(|t| t.as_str(p).to_owned());
            RegisteredClaims {
                iss: text(&f.iss),
                sub: text(&f.sub),
                aud: f.aud.iter(p).map(str::to_owned).collect(),
                exp: self.inner.exp,
                nbf: f.nbf,
                iat: f.iat,
                jti: text(&f.jti),
                sid: text(&f.sid),
            }
        })
    }

    /// `sub`, if present.
    pub fn subject(&self) -> Option<&str> {
        self.text(&self.inner.facts.sub)
    }

    /// `iss`, if present.
    pub fn issuer(&self) -> Option<&str> {
        self.text(&self.inner.facts.iss)
    }

    /// `jti`, if present.
    pub fn jti(&self) -> Option<&str> {
        self.text(&self.inner.facts.jti)
    }

    /// `sid` (the session), if present.
    pub fn sid(&self) -> Option<&str> {
        self.text(&self.inner.facts.sid)
    }

    /// `exp`.
    pub fn expires_at(&self) -> i64 {
        self.inner.exp
    }

    pub(crate) fn text<'a>(&'a self, t: &'a Option<crate::parse::Text>) -> Option<&'a str> {
        t.as_ref().map(|t| t.as_str(&self.inner.payload))
    }

    /// The roles read from the configured role claims (on first use).
    pub fn roles(&self) -> &[String] {
        self.inner.roles.get_or_init(|| {
            crate::parse::roles_at(
                &self.inner.payload,
                self.inner.claims_config.role_claim.paths(),
            )
        })
    }

    /// Whether the token holds `role` (exact match).
    pub fn has_role(&self, role: &str) -> bool {
        self.roles().iter().any(|r| r == role)
    }

    /// The scopes, read from the configured scope claims (default RFC 9068
    /// `scope`, a space-separated string, and `scp`, a string or an array
    /// as Entra and Okta send it). Read on first use.
    pub fn scopes(&self) -> &[String] {
        self.inner.scopes.get_or_init(|| {
            let claims = self.claims_json();
            let mut out: Vec<String> = Vec::new();
            for path in self.inner.claims_config.scope_claims.iter() {
                if let Some(v) = path.lookup(claims) {
                    for s in crate::roles::strings_of(v) {
                        if !out.contains(&s) {
                            out.push(s);
                        }
                    }
                }
            }
            out
        })
    }

    /// Whether the token holds `scope` (exact match).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().iter().any(|s| s == scope)
    }

    /// The algorithm that verified the token's signature; `None` for a
    /// token the authorization server vouched for by introspection.
    pub fn algorithm(&self) -> Option<Algorithm> {
        self.inner.alg
    }

    /// Whether the token was accepted on the authorization server's
    /// introspection answer (RFC 7662) rather than a signature.
    pub fn introspected(&self) -> bool {
        self.inner.alg.is_none()
    }

    /// The `kid` of the key that verified the token, if it named one.
    pub fn kid(&self) -> Option<&str> {
        self.inner.kid.as_ref().map(HeaderText::as_str)
    }

    /// The JOSE `typ` header.
    pub fn typ(&self) -> Option<&str> {
        self.inner.typ.as_ref().map(HeaderText::as_str)
    }

    /// The thumbprint of the key the token is bound to (`cnf.jkt`, RFC 9449),
    /// if any.
    pub fn confirmation_jkt(&self) -> Option<&str> {
        self.inner
            .facts
            .cnf_jkt
            .as_ref()
            .map(|t| t.as_str(&self.inner.payload))
    }

    /// Where the token was found (header or cookie).
    pub fn found_in(&self) -> Found {
        self.found
    }

    /// Whether the verified-token cache answered (no signature check ran).
    pub fn from_cache(&self) -> bool {
        self.cached
    }

    pub(crate) fn realm(&self) -> &Arc<str> {
        &self.inner.claims_config.realm
    }

    pub(crate) fn resource_metadata_url(&self) -> Option<Arc<str>> {
        self.inner.claims_config.resource_metadata.clone()
    }
}
