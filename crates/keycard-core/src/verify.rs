//! The verification pipeline: headers → one token → a [`Verified`] token or
//! an [`AuthError`].
//!
//! Order of checks (cheap and bounded first): size cap → compact form →
//! strict base64url → header (no `crit`/`enc`/`zip`/nested) → payload (a JSON
//! object without duplicate names) → key by `kid` with the algorithm pinned by
//! the key → signature → token type → `exp`/`nbf`/`iat`/lifetime → `iss` →
//! `aud` → `sub` → revocation → roles.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::Algorithm;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::csrf::CsrfPolicy;
use crate::error::{AuthError, AuthErrorKind, ConfigError, DEFAULT_REALM};
use crate::key::{ensure_crypto, Key, KeyLookup, KeyProvider, KeySet};
use crate::revocation::{RevocationStore, TokenFacts};
use crate::roles::RoleClaim;
use crate::source::{Found, RequestHeaders, SourceError, Sources, TokenSource};

/// The default cap on a token's length in bytes.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;
/// The default clock-skew leeway for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// The largest leeway a verifier accepts (5 minutes). Revocation entries
/// outlive their tokens' `exp` by this much, so no leeway can revive a
/// revoked token.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);
/// The default maximum lifetime (`exp - iat`) of an access token.
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The kinds of token keycard tells apart by the JOSE `typ` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenType {
    /// An access token: `typ: at+jwt` (RFC 9068).
    Access,
    /// A refresh token: `typ: refresh+jwt`.
    Refresh,
}

impl TokenType {
    /// The `typ` header value keycard stamps on tokens of this type.
    pub fn typ(self) -> &'static str {
        match self {
            Self::Access => "at+jwt",
            Self::Refresh => "refresh+jwt",
        }
    }

    fn matches(self, typ: Option<&str>) -> bool {
        let Some(typ) = typ else { return false };
        let typ = typ
            .get(..12)
            .filter(|p| p.eq_ignore_ascii_case("application/"))
            .map_or(typ, |_| &typ[12..]);
        typ.eq_ignore_ascii_case(self.typ())
    }
}

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
    inner: Arc<VerifiedInner>,
    found: Found,
    cached: bool,
}

struct VerifiedInner {
    alg: Algorithm,
    kid: Option<HeaderText>,
    typ: Option<HeaderText>,
    /// The registered claims as spans of the payload: no copy.
    facts: crate::parse::Facts,
    exp: i64,
    payload: Vec<u8>,
    registered: std::sync::OnceLock<RegisteredClaims>,
    claims_json: std::sync::OnceLock<Map<String, Value>>,
    roles: std::sync::OnceLock<Vec<String>>,
    scopes: std::sync::OnceLock<Vec<String>>,
    claims_config: Arc<ClaimsConfig>,
}

/// What a verified token needs from its verifier to answer questions later
/// (one `Arc` for all of it).
#[derive(Debug)]
struct ClaimsConfig {
    role_claim: RoleClaim,
    scope_claims: Vec<crate::roles::ClaimPath>,
    realm: Arc<str>,
}

/// A short header string (`kid`, `typ`) kept inline: no allocation for the
/// usual lengths.
#[derive(Clone)]
enum HeaderText {
    Inline(u8, [u8; 46]),
    Heap(Box<str>),
}

impl HeaderText {
    fn new(s: &str) -> Self {
        let b = s.as_bytes();
        if b.len() <= 46 {
            let mut buf = [0u8; 46];
            buf[..b.len()].copy_from_slice(b);
            Self::Inline(b.len() as u8, buf)
        } else {
            Self::Heap(s.into())
        }
    }

    fn as_str(&self) -> &str {
        match self {
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
    /// Deserialize the payload into the caller's own claims type. A payload
    /// that does not fit the type is an `invalid_token` error.
    pub fn claims<T: DeserializeOwned>(&self) -> Result<T, AuthError> {
        serde_json::from_slice(&self.inner.payload).map_err(|e| {
            AuthError::new(AuthErrorKind::InvalidClaimType)
                .with_realm(self.inner.claims_config.realm.clone())
                .with_detail(format!("claims do not fit the requested type: {e}"))
        })
    }

    /// The whole payload as JSON (parsed on first use).
    pub fn claims_json(&self) -> &Map<String, Value> {
        self.inner
            .claims_json
            .get_or_init(|| crate::json::parse_object(&self.inner.payload).unwrap_or_default())
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

    fn text<'a>(&'a self, t: &'a Option<crate::parse::Text>) -> Option<&'a str> {
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

    /// The algorithm that verified the token.
    pub fn algorithm(&self) -> Algorithm {
        self.inner.alg
    }

    /// The `kid` of the key that verified the token, if it named one.
    pub fn kid(&self) -> Option<&str> {
        self.inner.kid.as_ref().map(HeaderText::as_str)
    }

    /// The JOSE `typ` header.
    pub fn typ(&self) -> Option<&str> {
        self.inner.typ.as_ref().map(HeaderText::as_str)
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
}

/// Settings frozen at build time and shared by every clone of a [`Verifier`].
struct Settings {
    keys: Arc<dyn KeyProvider>,
    sources: Sources,
    issuers: Vec<String>,
    audiences: Vec<String>,
    issuer_audiences: Vec<(String, Vec<String>)>,
    ignore_audience: bool,
    leeway: i64,
    max_lifetime: Option<i64>,
    max_token_bytes: usize,
    token_type: Option<TokenType>,
    require_sub: bool,
    claims_config: Arc<ClaimsConfig>,
    realm: Arc<str>,
    revocation: Option<Arc<dyn RevocationStore>>,
    fail_open: bool,
    csrf: CsrfPolicy,
    reference_signatures: bool,
    cache: Option<crate::cache::TokenCache>,
    clock: Option<Arc<dyn crate::clock::Clock>>,
    algorithms: Option<Vec<&'static str>>,
    authenticate_preflights: bool,
    typ_marker: Option<crate::profile::TokenMarker>,
    client_ids: Vec<String>,
    client_id_claim: crate::roles::ClaimPath,
}

impl Settings {
    /// The audiences a token from `iss` must name: its issuer's own list
    /// when configured, else the verifier-wide one.
    fn audiences_for(&self, iss: Option<&str>) -> &[String] {
        iss.and_then(|iss| self.issuer_audiences.iter().find(|(i, _)| i == iss))
            .map_or(&self.audiences[..], |(_, a)| &a[..])
    }
}

/// Verifies tokens and authenticates requests. Build it once with
/// [`Verifier::builder`]; clones share the frozen settings.
///
/// ```
/// use keycard_core::{Key, Verifier};
///
/// let verifier = Verifier::builder()
///     .key(Key::hs256(b"an-example-secret-of-32-bytes-or-more")?)
///     .issuer("https://auth.example.com")
///     .audience("orders-api")
///     .build()?;
/// # let _ = verifier;
/// # Ok::<(), keycard_core::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct Verifier(Arc<Settings>);

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("keys", &self.0.keys)
            .field("issuers", &self.0.issuers)
            .field("audiences", &self.0.audiences)
            .field("token_type", &self.0.token_type)
            .finish_non_exhaustive()
    }
}

/// The outcome of a synchronous authentication attempt.
#[derive(Debug)]
#[must_use]
pub enum Attempt {
    /// Verified (or refused) without waiting.
    Done(Result<Verified, AuthError>),
    /// The token names a key that is not known yet; finish with
    /// [`PendingVerification::finish`] after the key provider refreshed.
    Pending(PendingVerification),
}

/// A verification that waits for the key provider to refresh its keys.
/// `Debug` never prints the token.
pub struct PendingVerification {
    verifier: Verifier,
    token: String,
    found: Found,
}

impl fmt::Debug for PendingVerification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingVerification")
            .field("token", &"<redacted>")
            .field("found", &self.found)
            .finish_non_exhaustive()
    }
}

impl PendingVerification {
    /// Refresh the keys (single-flight inside the provider) and verify again.
    pub async fn finish(self) -> Result<Verified, AuthError> {
        let s = &self.verifier.0;
        let parsed = match parse(&self.token, s) {
            Ok(p) => p,
            Err(e) => return Err(self.verifier.err(e)),
        };
        s.keys.refresh(parsed.iss(), parsed.kid.as_deref()).await;
        match self
            .verifier
            .verify_parsed(&self.token, parsed, self.found, false)
        {
            Step::Done(r) => r,
            Step::NeedsKeys => Err(self.verifier.err(AuthErrorKind::UnknownKey.into())),
        }
    }
}

enum Step {
    Done(Result<Verified, AuthError>),
    NeedsKeys,
}

impl Verifier {
    /// Start configuring a verifier.
    pub fn builder() -> VerifierBuilder {
        VerifierBuilder::default()
    }

    /// Find the one token in a request with `method` and `headers` and
    /// verify it, without waiting on anything. A missing token is `Err` of
    /// kind [`AuthErrorKind::Missing`]; a cookie-authenticated unsafe request
    /// from another origin is refused before the token is even parsed.
    pub fn authenticate_now<H: RequestHeaders + ?Sized>(
        &self,
        method: &str,
        headers: &H,
    ) -> Attempt {
        let (token, found) = match self.0.sources.find(headers) {
            Ok(Some(t)) => t,
            Ok(None) => return Attempt::Done(Err(self.err(AuthErrorKind::Missing.into()))),
            Err(SourceError::Malformed(why)) => {
                return Attempt::Done(Err(
                    self.err(AuthError::new(AuthErrorKind::MalformedRequest).with_detail(why))
                ))
            }
        };
        if found == Found::Cookie {
            if let Err(e) = self.0.csrf.check(method, headers) {
                return Attempt::Done(Err(self.err(e)));
            }
        }
        self.verify_now_from(token, found)
    }

    /// [`Verifier::authenticate_now`], waiting for a key refresh if needed.
    pub async fn authenticate<H: RequestHeaders + ?Sized>(
        &self,
        method: &str,
        headers: &H,
    ) -> Result<Verified, AuthError> {
        match self.authenticate_now(method, headers) {
            Attempt::Done(r) => r,
            Attempt::Pending(p) => p.finish().await,
        }
    }

    /// Verify a bare token (already taken from its transport).
    pub async fn verify(&self, token: &str) -> Result<Verified, AuthError> {
        match self.verify_now_from(token, Found::BearerHeader) {
            Attempt::Done(r) => r,
            Attempt::Pending(p) => p.finish().await,
        }
    }

    /// Verify a bare token without waiting; see [`Attempt`].
    pub fn verify_now(&self, token: &str) -> Attempt {
        self.verify_now_from(token, Found::BearerHeader)
    }

    fn verify_now_from(&self, token: &str, found: Found) -> Attempt {
        // RFC 6750 §2.1: a header value that is not a b64token is a
        // malformed request (400), not a bad token. Every valid JWS is a
        // b64token, so the per-byte check runs only when verification did
        // not succeed.
        let not_b64token =
            || found != Found::Cookie && !crate::source::is_b64token(token.as_bytes());
        match self.verify_now_inner(token, found) {
            Attempt::Done(Err(_)) | Attempt::Pending(_) if not_b64token() => {
                Attempt::Done(Err(self.err(
                    AuthError::new(AuthErrorKind::MalformedRequest)
                        .with_detail("the token is not a b64token"),
                )))
            }
            other => other,
        }
    }

    fn verify_now_inner(&self, token: &str, found: Found) -> Attempt {
        if let Some(cache) = &self.0.cache {
            let entry = cache.get(token);
            if entry.is_none() {
                crate::observe::cache(false);
            }
            if let Some(entry) = entry {
                match self.check_cached(&entry) {
                    Some(Ok(())) => {
                        crate::observe::cache(true);
                        return Attempt::Done(Ok(Verified {
                            inner: entry.verified.inner,
                            found,
                            cached: true,
                        }));
                    }
                    Some(Err(e)) => {
                        cache.remove(token);
                        return Attempt::Done(Err(self.err(e)));
                    }
                    // The verifying key left the key set: verify afresh.
                    None => cache.remove(token),
                }
            }
        }
        let parsed = match parse(token, &self.0) {
            Ok(p) => p,
            Err(e) => return Attempt::Done(Err(self.err(e))),
        };
        match self.verify_parsed(token, parsed, found, true) {
            Step::Done(r) => Attempt::Done(r),
            Step::NeedsKeys => Attempt::Pending(PendingVerification {
                verifier: self.clone(),
                token: token.to_owned(),
                found,
            }),
        }
    }

    /// The CSRF check alone, for endpoints that read a cookie themselves
    /// (e.g. a refresh endpoint reading the refresh cookie).
    pub fn check_csrf<H: RequestHeaders + ?Sized>(
        &self,
        method: &str,
        headers: &H,
    ) -> Result<(), AuthError> {
        self.0.csrf.check(method, headers).map_err(|e| self.err(e))
    }

    /// The session id (`sid`) of a token whose signature, key, type,
    /// issuer and audience check out, whether or not it has expired or was
    /// revoked. Only to end that session (a logout retried after a partial
    /// failure, or with an expired token): never to let a request in.
    pub(crate) fn authentic_sid(&self, token: &str) -> Result<Option<String>, AuthError> {
        let s = &*self.0;
        let p = parse(token, s).map_err(|e| self.err(e))?;
        let keys = match s.keys.lookup(p.iss(), p.kid.as_deref(), p.alg) {
            l @ (KeyLookup::One(_) | KeyLookup::Found(_)) => l,
            KeyLookup::Unavailable => return Err(self.err(AuthErrorKind::KeysUnavailable.into())),
            _ => return Err(self.err(AuthErrorKind::UnknownKey.into())),
        };
        let signing_input = &token.as_bytes()[..p.signing_input_len];
        let signature = &token[p.signing_input_len + 1..];
        if !keys
            .keys()
            .iter()
            .any(|k| k.verify_signature(signing_input, signature))
        {
            return Err(self.err(AuthErrorKind::BadSignature.into()));
        }
        if let Some(want) = s.token_type {
            if !want.matches(p.typ.as_deref()) {
                return Err(self.err(AuthErrorKind::WrongTokenType.into()));
            }
        }
        if !s.issuers.is_empty() && !p.iss().is_some_and(|i| s.issuers.iter().any(|w| w == i)) {
            return Err(self.err(AuthErrorKind::WrongIssuer.into()));
        }
        let audiences = s.audiences_for(p.iss());
        if !audiences.is_empty()
            && !p
                .facts
                .aud
                .iter(&p.payload)
                .any(|a| audiences.iter().any(|w| w == a))
        {
            return Err(self.err(AuthErrorKind::WrongAudience.into()));
        }
        Ok(p.facts
            .sid
            .as_ref()
            .map(|t| t.as_str(&p.payload).to_owned()))
    }

    /// For the log of a refused request: where its token was found, and
    /// the `alg` and `kid` its header names (unverified; `alg` only when it
    /// is a known name, `kid` cut to 64 characters). Never the token.
    pub(crate) fn describe_token<H: RequestHeaders + ?Sized>(
        &self,
        headers: &H,
    ) -> Option<(Found, Option<&'static str>, Option<String>)> {
        let (token, found) = self.0.sources.find(headers).ok().flatten()?;
        let header_b64 = token.split('.').next().filter(|h| h.len() <= 1024)?;
        let Ok(header) = crate::b64::decode(header_b64.as_bytes()) else {
            return Some((found, None, None));
        };
        let Ok(h) = serde_json::from_slice::<crate::parse::JoseHeader<'_>>(&header) else {
            return Some((found, None, None));
        };
        let alg = h
            .alg
            .as_ref()
            .and_then(|a| a.0.parse::<Algorithm>().ok())
            .map(crate::key::alg_name);
        let kid = h.kid.as_ref().map(|k| k.0.chars().take(64).collect());
        Some((found, alg, kid))
    }

    /// The raw token of a request, as [`Verifier::authenticate_now`] finds it.
    pub(crate) fn find_token<'h, H: RequestHeaders + ?Sized>(
        &self,
        headers: &'h H,
    ) -> Option<&'h str> {
        match self.0.sources.find(headers) {
            Ok(Some((t, _))) => Some(t),
            _ => None,
        }
    }

    /// How many verified tokens the cache holds (0 without a cache).
    pub fn cached_tokens(&self) -> u64 {
        self.0
            .cache
            .as_ref()
            .map_or(0, crate::cache::TokenCache::len)
    }

    /// The realm used in challenges.
    pub fn realm(&self) -> &Arc<str> {
        &self.0.realm
    }

    /// The key provider.
    pub fn keys(&self) -> &Arc<dyn KeyProvider> {
        &self.0.keys
    }

    /// The configured revocation store, if any.
    pub fn revocation(&self) -> Option<&Arc<dyn RevocationStore>> {
        self.0.revocation.as_ref()
    }

    /// The token type this verifier accepts.
    pub fn token_type(&self) -> Option<TokenType> {
        self.0.token_type
    }

    /// Whether this verifier can decide right now: its keys are present and
    /// fresh enough, and its revocation store (if any) is current. For a
    /// readiness probe (`/ready`).
    pub fn readiness(&self) -> Readiness {
        let mut reasons = Vec::new();
        if let Err(e) = self.0.keys.readiness() {
            reasons.push(e);
        }
        if let Some(store) = &self.0.revocation {
            if let Err(e) = store.readiness() {
                reasons.push(e);
            }
        }
        Readiness { reasons }
    }

    /// Whether CORS preflights pass as anonymous (the default).
    pub(crate) fn cors_preflights_pass(&self) -> bool {
        !self.0.authenticate_preflights
    }

    /// Now, by this verifier's clock.
    pub fn now(&self) -> i64 {
        match &self.0.clock {
            Some(c) => c.now(),
            None => now_secs(),
        }
    }

    fn err(&self, e: AuthError) -> AuthError {
        e.with_realm(self.0.realm.clone())
    }

    fn verify_parsed(&self, token: &str, p: Parsed, found: Found, may_refresh: bool) -> Step {
        let s = &*self.0;
        let keys = match s.keys.lookup(p.iss(), p.kid.as_deref(), p.alg) {
            l @ (KeyLookup::One(_) | KeyLookup::Found(_)) => l,
            KeyLookup::Refresh if may_refresh => return Step::NeedsKeys,
            KeyLookup::Refresh | KeyLookup::NotFound => {
                return Step::Done(Err(self.err(AuthErrorKind::UnknownKey.into())))
            }
            KeyLookup::Unavailable => {
                return Step::Done(Err(self.err(AuthErrorKind::KeysUnavailable.into())))
            }
            KeyLookup::AlgorithmNotAllowed => {
                return Step::Done(Err(self.err(AuthErrorKind::AlgorithmNotAllowed.into())))
            }
        };
        let signing_input = &token.as_bytes()[..p.signing_input_len];
        let signature = &token[p.signing_input_len + 1..];
        let Some(key) = keys.keys().iter().find(|k| {
            if s.reference_signatures {
                k.verify_signature_reference(signing_input, signature)
            } else {
                k.verify_signature(signing_input, signature)
            }
        }) else {
            return Step::Done(Err(self.err(AuthErrorKind::BadSignature.into())));
        };
        let key = key.clone();
        let result = self.check_claims(&key, p, found).map_err(|e| self.err(e));
        if let (Some(cache), Ok(v)) = (&s.cache, &result) {
            cache.insert(token, v.clone(), key, v.inner.exp, self.now());
        }
        Step::Done(result)
    }

    /// Re-check a cached token: `Some(Ok)` still valid, `Some(Err)` no longer
    /// valid (expired, revoked, store down), `None` its key is gone.
    fn check_cached(&self, entry: &crate::cache::Entry) -> Option<Result<(), AuthError>> {
        let s = &*self.0;
        let v = &entry.verified;
        let still_there = match s.keys.lookup(
            v.issuer(),
            entry.verified.kid(),
            crate::key::alg_name(entry.key.alg),
        ) {
            l @ (KeyLookup::One(_) | KeyLookup::Found(_)) => {
                l.keys().iter().any(|k| Arc::ptr_eq(k, &entry.key))
            }
            _ => false,
        };
        if !still_there {
            return None;
        }
        let now = self.now();
        if now > v.inner.exp.saturating_add(s.leeway) {
            return Some(Err(AuthErrorKind::Expired.into()));
        }
        if v.inner
            .facts
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(s.leeway))
        {
            return Some(Err(AuthErrorKind::NotYetValid.into()));
        }
        Some(self.check_revocation(&v.inner.facts, v.inner.exp, &v.inner.payload))
    }

    fn check_revocation(
        &self,
        f: &crate::parse::Facts,
        exp: i64,
        payload: &[u8],
    ) -> Result<(), AuthError> {
        let s = &*self.0;
        let Some(store) = &s.revocation else {
            return Ok(());
        };
        fn text<'a>(t: &'a Option<crate::parse::Text>, payload: &'a [u8]) -> Option<&'a str> {
            t.as_ref().map(|t| t.as_str(payload))
        }
        let facts = TokenFacts {
            jti: text(&f.jti, payload),
            sub: text(&f.sub, payload),
            sid: text(&f.sid, payload),
            iat: f.iat,
            exp,
        };
        match store.is_revoked(&facts) {
            Ok(false) => Ok(()),
            Ok(true) => Err(AuthErrorKind::Revoked.into()),
            Err(e) if s.fail_open => {
                tracing::warn!(error = %e, "revocation store unavailable; failing open as configured");
                Ok(())
            }
            Err(e) => Err(AuthError::new(AuthErrorKind::StoreUnavailable).with_source(e)),
        }
    }

    fn check_claims(&self, key: &Key, p: Parsed, found: Found) -> Result<Verified, AuthError> {
        let s = &*self.0;
        let mut claims_map = None;
        if let Some(want) = s.token_type {
            if !want.matches(p.typ.as_deref()) {
                // A provider that types access tokens `JWT` (or not at
                // all): accepted only with its access-token mark.
                let untyped = p
                    .typ
                    .as_deref()
                    .is_none_or(|t| t.eq_ignore_ascii_case("jwt"));
                let marked = want == TokenType::Access
                    && untyped
                    && s.typ_marker.as_ref().is_some_and(|m| {
                        let claims = crate::json::parse_object(&p.payload).unwrap_or_default();
                        let ok = m.holds(&claims);
                        claims_map = Some(claims);
                        ok
                    });
                if !marked {
                    return Err(AuthErrorKind::WrongTokenType.into());
                }
            }
        }
        if !s.client_ids.is_empty() {
            let claims = match &claims_map {
                Some(c) => c,
                None => {
                    claims_map.insert(crate::json::parse_object(&p.payload).unwrap_or_default())
                }
            };
            let ok = s
                .client_id_claim
                .lookup(claims)
                .and_then(Value::as_str)
                .is_some_and(|c| s.client_ids.iter().any(|want| want == c));
            if !ok {
                return Err(AuthError::new(AuthErrorKind::WrongAudience)
                    .with_detail("issued to another client"));
            }
        }
        let f = &p.facts;
        let exp = p.exp;
        let payload = &p.payload[..];
        let now = self.now();
        if now > exp.saturating_add(s.leeway) {
            return Err(AuthErrorKind::Expired.into());
        }
        if let Some(nbf) = f.nbf {
            if nbf > now.saturating_add(s.leeway) {
                return Err(AuthErrorKind::NotYetValid.into());
            }
        }
        if let Some(until) = key.signed_until {
            // A retired key verifies only what it signed before retiring.
            if f.iat.is_none_or(|iat| iat > until.saturating_add(s.leeway)) {
                return Err(AuthError::new(AuthErrorKind::UnknownKey)
                    .with_detail("issued after its signing key was retired"));
            }
        }
        if let Some(iat) = f.iat {
            if iat > now.saturating_add(s.leeway) {
                return Err(AuthError::new(AuthErrorKind::InvalidLifetime)
                    .with_detail("iat is in the future"));
            }
        }
        if let Some(max) = s.max_lifetime {
            let start = f.iat.unwrap_or(now);
            if exp.saturating_sub(start) > max.saturating_add(s.leeway) {
                return Err(AuthError::new(AuthErrorKind::InvalidLifetime)
                    .with_detail("token lifetime exceeds the maximum"));
            }
        }
        if !s.issuers.is_empty() {
            match f.iss.as_ref().map(|t| t.as_str(payload)) {
                None => return Err(AuthError::new(AuthErrorKind::MissingClaim).with_detail("iss")),
                Some(iss) if !s.issuers.iter().any(|i| i == iss) => {
                    return Err(AuthErrorKind::WrongIssuer.into())
                }
                Some(_) => {}
            }
        }
        let audiences = s.audiences_for(f.iss.as_ref().map(|t| t.as_str(payload)));
        if !audiences.is_empty() {
            if f.aud.is_empty() {
                return Err(AuthError::new(AuthErrorKind::MissingClaim).with_detail("aud"));
            }
            if !f
                .aud
                .iter(payload)
                .any(|a| audiences.iter().any(|want| want == a))
            {
                return Err(AuthErrorKind::WrongAudience.into());
            }
        } else if !f.aud.is_empty() && !s.ignore_audience {
            // RFC 7519 §4.1.3: a recipient that does not identify itself with
            // a value in `aud` must reject the token.
            return Err(AuthError::new(AuthErrorKind::WrongAudience)
                .with_detail("token has an audience but the verifier has none configured"));
        }
        if s.require_sub && f.sub.is_none() {
            return Err(AuthError::new(AuthErrorKind::MissingClaim).with_detail("sub"));
        }
        self.check_revocation(f, exp, payload)?;
        Ok(Verified {
            inner: Arc::new(VerifiedInner {
                alg: key.alg,
                kid: p.kid,
                typ: p.typ,
                facts: p.facts,
                exp,
                payload: p.payload,
                registered: std::sync::OnceLock::new(),
                claims_json: claims_map.map_or_else(std::sync::OnceLock::new, |c| {
                    let cell = std::sync::OnceLock::new();
                    let _ = cell.set(c);
                    cell
                }),
                roles: std::sync::OnceLock::new(),
                scopes: std::sync::OnceLock::new(),
                claims_config: s.claims_config.clone(),
            }),
            found,
            cached: false,
        })
    }
}

pub(crate) fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// What the header and payload say, before the signature is checked.
struct Parsed {
    alg: &'static str,
    kid: Option<HeaderText>,
    typ: Option<HeaderText>,
    facts: crate::parse::Facts,
    exp: i64,
    payload: Vec<u8>,
    signing_input_len: usize,
}

impl Parsed {
    fn iss(&self) -> Option<&str> {
        self.facts.iss.as_ref().map(|t| t.as_str(&self.payload))
    }
}

fn malformed(why: &'static str) -> AuthError {
    AuthError::new(AuthErrorKind::MalformedToken).with_detail(why)
}

/// The algorithm names keycard can verify; anything else (`none`, `ES512`,
/// unknown) has no key.
///
/// RFC 9864's fully-specified `Ed25519` is the same algorithm as the
/// deprecated polymorphic `EdDSA` over Ed25519 (the only curve keycard
/// verifies), so both select EdDSA keys.
fn known_alg(alg: &str) -> Option<&'static str> {
    const KNOWN: [&str; 12] = [
        "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
        "ES384", "EdDSA",
    ];
    if alg == "Ed25519" {
        return Some("EdDSA");
    }
    KNOWN.iter().copied().find(|k| *k == alg)
}

fn parse(token: &str, s: &Settings) -> Result<Parsed, AuthError> {
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
    let facts = crate::parse::payload_pass(&payload).map_err(|e| {
        AuthError::new(AuthErrorKind::MalformedToken).with_detail(format!("payload: {e}"))
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

/// Builds a [`Verifier`]. Every step that weakens a default says so in its
/// name (`insecure_*`, `allow_*`).
#[must_use]
#[derive(Default)]
pub struct VerifierBuilder {
    keys: KeySet,
    provider: Option<Arc<dyn KeyProvider>>,
    sources: Option<Vec<TokenSource>>,
    allow_multiple_methods: bool,
    issuers: Vec<String>,
    audiences: Vec<String>,
    issuer_audiences: Vec<(String, Vec<String>)>,
    ignore_audience: bool,
    leeway: Option<Duration>,
    max_lifetime: Option<Option<Duration>>,
    max_token_bytes: Option<usize>,
    token_type: Option<Option<TokenType>>,
    require_sub: bool,
    role_claim: Option<RoleClaim>,
    scope_claims: Option<Vec<crate::roles::ClaimPath>>,
    realm: Option<String>,
    revocation: Option<Arc<dyn RevocationStore>>,
    fail_open: bool,
    csrf: CsrfPolicy,
    reference_signatures: bool,
    cache_capacity: Option<u64>,
    clock: Option<Arc<dyn crate::clock::Clock>>,
    algorithms: Option<Vec<Algorithm>>,
    authenticate_preflights: bool,
    typ_marker: Option<crate::profile::TokenMarker>,
    client_ids: Vec<String>,
    client_id_claim: Option<crate::roles::ClaimPath>,
    error: Option<ConfigError>,
}

impl fmt::Debug for VerifierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifierBuilder")
            .field("keys", &self.keys)
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .finish_non_exhaustive()
    }
}

impl VerifierBuilder {
    /// Add a verification key (several keys: rotation by `kid`).
    pub fn key(mut self, key: Key) -> Self {
        match std::mem::take(&mut self.keys).with(key) {
            Ok(keys) => self.keys = keys,
            Err(e) => self.error = Some(e),
        }
        self
    }

    /// Use a whole key set.
    pub fn keys(mut self, keys: KeySet) -> Self {
        self.keys = keys;
        self
    }

    /// Use a dynamic key provider (e.g. a remote JWKS) instead of fixed keys.
    pub fn key_provider(mut self, provider: Arc<dyn KeyProvider>) -> Self {
        self.provider = Some(provider);
        self
    }

    /// Accept tokens whose `iss` equals this value (call again for several).
    /// Once set, `iss` is required.
    pub fn issuer(mut self, iss: impl Into<String>) -> Self {
        self.issuers.push(iss.into());
        self
    }

    /// For tokens from `issuer`, require `aud` to contain one of `audiences`
    /// instead of the verifier-wide [`audience`](Self::audience) list: one
    /// verifier, several identity providers, each with its own audience.
    /// Also trusts `issuer` (as [`issuer`](Self::issuer) does).
    pub fn issuer_with_audiences<I, S>(mut self, issuer: impl Into<String>, audiences: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let issuer = issuer.into();
        self.issuers.push(issuer.clone());
        self.issuer_audiences
            .push((issuer, audiences.into_iter().map(Into::into).collect()));
        self
    }

    /// Accept tokens whose `aud` contains this value (call again for
    /// several). Once set, `aud` is required.
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.audiences.push(aud.into());
        self
    }

    /// Accept tokens that carry an `aud` although this verifier has no
    /// audience configured. Weakens RFC 7519 §4.1.3; prefer [`Self::audience`].
    pub fn insecure_ignore_audience(mut self) -> Self {
        self.ignore_audience = true;
        self
    }

    /// Clock-skew leeway for `exp`, `nbf` and `iat` (default 30 s, at most
    /// 5 minutes).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = Some(leeway);
        self
    }

    /// Maximum accepted `exp - iat` (default 24 h).
    pub fn max_lifetime(mut self, max: Duration) -> Self {
        self.max_lifetime = Some(Some(max));
        self
    }

    /// Accept tokens of any lifetime.
    pub fn insecure_unlimited_lifetime(mut self) -> Self {
        self.max_lifetime = Some(None);
        self
    }

    /// Cap on the token's length in bytes (default 8 KiB, at most 64 KiB).
    pub fn max_token_bytes(mut self, max: usize) -> Self {
        self.max_token_bytes = Some(max);
        self
    }

    /// The token type to accept (default [`TokenType::Access`]).
    pub fn token_type(mut self, t: TokenType) -> Self {
        self.token_type = Some(Some(t));
        self
    }

    /// Accept tokens without (or with any) `typ` header, e.g. from identity
    /// providers that do not type their access tokens. This lets a refresh
    /// token or an ID token stand in for an access token: only use it when
    /// the issuer signs nothing but access tokens with these keys.
    pub fn insecure_accept_any_token_type(mut self) -> Self {
        self.token_type = Some(None);
        self
    }

    /// Require a `sub` claim.
    pub fn require_subject(mut self) -> Self {
        self.require_sub = true;
        self
    }

    /// The claim the roles are read from (default `roles`): a dotted path
    /// (`realm_access.roles`) or a JSON Pointer (`/https:~1~1example.com~1roles`).
    pub fn role_claim(mut self, path: &str) -> Self {
        self.role_claim = Some(RoleClaim::new(path));
        self
    }

    /// Read roles from several claims at once (their roles are joined),
    /// e.g. Keycloak's realm and client roles.
    pub fn role_claims(mut self, paths: impl IntoIterator<Item = crate::roles::ClaimPath>) -> Self {
        self.role_claim = Some(RoleClaim::from_paths(paths));
        self
    }

    /// The claims scopes are read from (default `scope` and `scp`): dotted
    /// paths or JSON Pointers. Replaces the defaults.
    pub fn scope_claims<I, S>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.scope_claims = Some(
            paths
                .into_iter()
                .map(|p| crate::roles::ClaimPath::parse(p.as_ref()))
                .collect(),
        );
        self
    }

    /// The realm in `WWW-Authenticate` challenges (default `keycard`).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// Token sources, in order (default: Bearer header, then the
    /// `keycard_access` cookie).
    pub fn sources(mut self, sources: impl IntoIterator<Item = TokenSource>) -> Self {
        self.sources = Some(sources.into_iter().collect());
        self
    }

    /// Read the access token from the cookie `name` (and the Bearer header).
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.sources = Some(vec![
            TokenSource::BearerHeader,
            TokenSource::Cookie(name.into()),
        ]);
        self
    }

    /// Accept a request that carries tokens by more than one method; the
    /// first configured source wins. RFC 6750 §2 forbids clients to do this.
    pub fn allow_multiple_token_methods(mut self) -> Self {
        self.allow_multiple_methods = true;
        self
    }

    /// Consult this revocation store for every token. Expiry is then judged
    /// by the store's clock ([`RevocationStore::now`]) unless
    /// [`VerifierBuilder::clock`] sets another: the store keeps and prunes
    /// its entries by that clock.
    pub fn revocation(mut self, store: Arc<dyn RevocationStore>) -> Self {
        self.revocation = Some(store);
        self
    }

    /// When the revocation store cannot answer, accept the token instead of
    /// answering 503. Revoked tokens then work during a store outage.
    pub fn insecure_fail_open(mut self) -> Self {
        self.fail_open = true;
        self
    }

    /// An origin (`scheme://host[:port]`) allowed to send cookie-authenticated
    /// unsafe requests, besides the request's own host (call again for
    /// several). See [`crate::csrf`].
    pub fn allowed_origin(mut self, origin: impl Into<String>) -> Self {
        self.csrf.allowed_origins.push(origin.into());
        self
    }

    /// This service is served over plain `http` (local development): its
    /// own origin, for the CSRF check, is `http://` + `Host` instead of
    /// `https://` + `Host`. Never in production: there, an `http://` page on
    /// the same host (e.g. injected by a network attacker) would count as
    /// the service's own origin.
    pub fn insecure_plain_http_origin(mut self) -> Self {
        self.csrf.plain_http = true;
        self
    }

    /// For the CSRF check, take this service's own origin from
    /// `X-Forwarded-Proto` and `X-Forwarded-Host` when present: for services
    /// behind a gateway that rewrites `Host` and sets those headers (see
    /// [`crate::csrf`] for why this gives a CSRF attacker nothing). Only
    /// where a proxy overwrites them.
    pub fn trust_forwarded_origin(mut self) -> Self {
        self.csrf.trust_forwarded = true;
        self
    }

    /// Authenticate CORS preflights like any request (they then get 401,
    /// since browsers never send credentials on them). By default a
    /// preflight (`OPTIONS` with `Access-Control-Request-Method`) passes as
    /// anonymous, so that a CORS layer inside keycard's layer answers it;
    /// an application whose own `OPTIONS` handlers must not run
    /// unauthenticated turns this on.
    pub fn authenticate_cors_preflights(mut self) -> Self {
        self.authenticate_preflights = true;
        self
    }

    /// Turn off the CSRF check for cookie-authenticated requests. Only safe
    /// when cookies are `SameSite=Strict` and every subdomain is trusted, or
    /// when another layer already defends against CSRF.
    pub fn insecure_disable_csrf_check(mut self) -> Self {
        self.csrf.disabled = true;
        self
    }

    /// Cache up to `capacity` verified tokens, so a repeated token costs a
    /// lookup instead of a signature check (worth it for RS*, PS*, ES* and
    /// EdDSA; HS256 verifies about as fast as it hashes). Every hit still
    /// checks `exp`/`nbf` and revocation, compares the token byte for byte,
    /// and requires the verifying key to still be in the key set; entries
    /// never outlive their token.
    pub fn cache_verified_tokens(mut self, capacity: u64) -> Self {
        self.cache_capacity = Some(capacity);
        self
    }

    /// Check signatures through `jsonwebtoken::crypto::verify` instead of
    /// the keys prepared once at configuration time. Slower (the key is set
    /// up on every call); used to cross-check the fast path in tests.
    pub fn reference_signature_check(mut self) -> Self {
        self.reference_signatures = true;
        self
    }

    /// Apply an identity provider's conventions in one call: where its
    /// roles, scopes and client id live, and how its access tokens are told
    /// apart from its ID tokens when not typed `at+jwt` (see
    /// [`crate::profile`]). Issuer and audience stay yours to set.
    pub fn profile(mut self, profile: crate::profile::Profile) -> Self {
        self.role_claim = Some(RoleClaim::from_paths(profile.role_claims));
        self.scope_claims = Some(profile.scope_claims);
        self.client_id_claim = Some(profile.client_id_claim);
        if let Some(marker) = profile.marker {
            self = self.accept_untyped_access_tokens_marked_by(marker);
        }
        self
    }

    /// Accept access tokens whose header `typ` is `JWT` or absent, as many
    /// identity providers send them, but only when their payload carries
    /// `marker` (the provider's access-token mark), so that its ID tokens
    /// and other tokens signed by the same keys stay refused. `at+jwt`
    /// tokens are accepted as always. Profiles use this; see
    /// [`crate::profile::TokenMarker`].
    pub fn accept_untyped_access_tokens_marked_by(
        mut self,
        marker: crate::profile::TokenMarker,
    ) -> Self {
        self.typ_marker = Some(marker);
        self
    }

    /// Accept only tokens issued to one of these clients (RFC 9068
    /// `client_id`, or the claim a profile names: `azp`, `cid`, ...). Off by
    /// default.
    pub fn client_ids<I, S>(mut self, ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.client_ids = ids.into_iter().map(Into::into).collect();
        self
    }

    /// Accept only tokens signed with one of these algorithms (Spring and
    /// Nimbus call this the JWS algorithm set), on top of each key's own
    /// algorithm. Default: whatever the keys serve.
    pub fn algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algs.into_iter().collect());
        self
    }

    /// Judge `exp`, `nbf` and `iat` by this clock instead of the system
    /// clock (e.g. a cluster clock; [`crate::Sessions`] sets its store's).
    pub fn clock(mut self, clock: Arc<dyn crate::clock::Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Check the whole configuration and freeze it.
    pub fn build(self) -> Result<Verifier, ConfigError> {
        ensure_crypto()?;
        if let Some(e) = self.error {
            return Err(e);
        }
        let keys: Arc<dyn KeyProvider> = match self.provider {
            Some(p) => {
                if !self.keys.is_empty() {
                    return Err(ConfigError::InvalidSetting(
                        "use either fixed keys or a key provider, not both".into(),
                    ));
                }
                p
            }
            None if self.keys.is_empty() => return Err(ConfigError::NoKey),
            None => Arc::new(self.keys),
        };
        let leeway = self.leeway.unwrap_or(DEFAULT_LEEWAY);
        if leeway > MAX_LEEWAY {
            return Err(ConfigError::InvalidSetting("leeway above 5 minutes".into()));
        }
        let max_token_bytes = self.max_token_bytes.unwrap_or(DEFAULT_MAX_TOKEN_BYTES);
        if !(64..=64 * 1024).contains(&max_token_bytes) {
            return Err(ConfigError::InvalidSetting(
                "max_token_bytes must be between 64 and 65536".into(),
            ));
        }
        let sources = match self.sources {
            Some(s) if s.is_empty() => {
                return Err(ConfigError::InvalidSetting("no token source".into()))
            }
            Some(sources) => Sources {
                sources,
                allow_multiple_methods: self.allow_multiple_methods,
            },
            None => Sources {
                allow_multiple_methods: self.allow_multiple_methods,
                ..Sources::default()
            },
        };
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        let realm: Arc<str> = Arc::from(self.realm.as_deref().unwrap_or(DEFAULT_REALM));
        // Entries of a shared denylist are kept and pruned by the store's
        // clock: judge expiry by the same one, unless told otherwise.
        let clock = self.clock.or_else(|| {
            self.revocation
                .clone()
                .map(|r| Arc::new(crate::revocation::StoreClock(r)) as Arc<dyn crate::clock::Clock>)
        });
        Ok(Verifier(Arc::new(Settings {
            keys,
            sources,
            issuers: self.issuers,
            audiences: self.audiences,
            issuer_audiences: self.issuer_audiences,
            ignore_audience: self.ignore_audience,
            leeway: secs(leeway),
            max_lifetime: self
                .max_lifetime
                .unwrap_or(Some(DEFAULT_MAX_LIFETIME))
                .map(secs),
            max_token_bytes,
            token_type: self.token_type.unwrap_or(Some(TokenType::Access)),
            require_sub: self.require_sub,
            claims_config: Arc::new(ClaimsConfig {
                role_claim: self.role_claim.unwrap_or_default(),
                scope_claims: self.scope_claims.unwrap_or_else(|| {
                    vec![
                        crate::roles::ClaimPath::parse("scope"),
                        crate::roles::ClaimPath::parse("scp"),
                    ]
                }),
                realm: realm.clone(),
            }),
            realm,
            revocation: self.revocation,
            fail_open: self.fail_open,
            csrf: self.csrf,
            reference_signatures: self.reference_signatures,
            cache: self.cache_capacity.map(crate::cache::TokenCache::new),
            clock,
            algorithms: self
                .algorithms
                .map(|a| a.into_iter().map(crate::key::alg_name).collect()),
            authenticate_preflights: self.authenticate_preflights,
            typ_marker: self.typ_marker,
            client_ids: self.client_ids,
            client_id_claim: self
                .client_id_claim
                .unwrap_or_else(|| crate::roles::ClaimPath::parse("client_id")),
        })))
    }
}

impl TryFrom<Key> for Verifier {
    type Error = ConfigError;

    /// A verifier with one key and every default.
    fn try_from(key: Key) -> Result<Self, ConfigError> {
        Verifier::builder().key(key).build()
    }
}

/// Whether a verifier can decide right now, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    reasons: Vec<String>,
}

impl Readiness {
    /// Ready to decide.
    pub fn is_ready(&self) -> bool {
        self.reasons.is_empty()
    }

    /// Why not (empty when ready).
    pub fn reasons(&self) -> &[String] {
        &self.reasons
    }

    /// `{"ready": bool, "reasons": [...]}`, for a `/ready` endpoint.
    pub fn to_json(&self) -> String {
        serde_json::json!({"ready": self.is_ready(), "reasons": self.reasons}).to_string()
    }
}

/// Whether a request without credentials may pass (as anonymous).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AuthMode {
    /// Every request needs a valid token (default).
    #[default]
    Required,
    /// A request without any token passes as anonymous; a request with a bad
    /// token is still refused.
    Optional,
}

impl AuthMode {
    /// Apply the mode to an authentication result: `Ok(None)` is anonymous.
    pub fn apply(self, result: Result<Verified, AuthError>) -> Result<Option<Verified>, AuthError> {
        match result {
            Ok(v) => Ok(Some(v)),
            Err(e) if self == Self::Optional && e.kind() == AuthErrorKind::Missing => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The marker an adapter stores for a request that passed an optional
/// authentication layer without any token.
#[derive(Debug, Clone)]
pub struct Anonymous {
    realm: Arc<str>,
    preflight: bool,
}

impl Anonymous {
    /// A marker for a layer whose challenges use `realm`.
    pub fn new(realm: Arc<str>) -> Self {
        Self {
            realm,
            preflight: false,
        }
    }

    /// The marker of a CORS preflight let through (see
    /// [`Verifier::admit`]): role and scope guards let it pass on to the
    /// CORS layer too; extractors still see an anonymous request.
    pub fn preflight(realm: Arc<str>) -> Self {
        Self {
            realm,
            preflight: true,
        }
    }

    /// Whether this is a CORS preflight let through.
    pub fn is_preflight(&self) -> bool {
        self.preflight
    }

    /// The error for a handler that needs a token on an anonymous request:
    /// 401 with a bare challenge.
    pub fn missing(&self) -> AuthError {
        AuthError::new(AuthErrorKind::Missing).with_realm(self.realm.clone())
    }
}

/// What an authentication layer left in a request's extensions. This is the
/// one place that decides between "verified", "anonymous" (an optional
/// layer let a request without a token through) and "no layer ran", so
/// every adapter's extractors and role checks answer alike.
#[derive(Debug, Clone, Copy)]
pub struct AuthState<'a> {
    verified: Option<&'a Verified>,
    anonymous: Option<&'a Anonymous>,
}

impl<'a> AuthState<'a> {
    /// The state from the two extension values a layer may have inserted.
    pub fn new(verified: Option<&'a Verified>, anonymous: Option<&'a Anonymous>) -> Self {
        Self {
            verified,
            anonymous,
        }
    }

    /// `Ok(Some)` verified, `Ok(None)` anonymous, `Err` (500) when no
    /// authentication layer ran.
    pub fn optional(self) -> Result<Option<&'a Verified>, AuthError> {
        match (self.verified, self.anonymous) {
            (Some(v), _) => Ok(Some(v)),
            (None, Some(_)) => Ok(None),
            (None, None) => Err(AuthError::new(AuthErrorKind::LayerMissing)
                .with_detail("no keycard JwtAuth layer or middleware ran for this request")),
        }
    }

    /// The verified token, or 401 (bare challenge) for an anonymous request,
    /// or 500 when no authentication layer ran.
    pub fn required(self) -> Result<&'a Verified, AuthError> {
        match (self.optional()?, self.anonymous) {
            (Some(v), _) => Ok(v),
            (None, Some(anon)) => Err(anon.missing()),
            (None, None) => Err(AuthErrorKind::LayerMissing.into()),
        }
    }

    /// What a role or scope guard layer decides: pass a CORS preflight that
    /// the authentication layer let through (so that a CORS layer further
    /// in answers it), otherwise [`AuthState::require`].
    pub fn guard(self, requirement: &crate::RoleRequirement) -> Result<(), AuthError> {
        if self.verified.is_none() && self.anonymous.is_some_and(Anonymous::is_preflight) {
            return Ok(());
        }
        self.require(requirement).map(|_| ())
    }

    /// [`AuthState::required`], then the role check (403 `insufficient_scope`).
    pub fn require(self, requirement: &crate::RoleRequirement) -> Result<&'a Verified, AuthError> {
        let v = self.required()?;
        requirement.check(v)?;
        Ok(v)
    }
}

#[cfg(test)]
mod auth_state_tests {
    use super::*;

    #[test]
    fn the_three_states() {
        let anon = Anonymous::new(Arc::from("r"));
        assert!(matches!(
            AuthState::new(None, Some(&anon)).optional(),
            Ok(None)
        ));
        let e = AuthState::new(None, Some(&anon)).required().unwrap_err();
        assert_eq!((e.kind(), e.status()), (AuthErrorKind::Missing, 401));
        assert_eq!(e.www_authenticate().unwrap(), "Bearer realm=\"r\"");
        let e = AuthState::new(None, None).optional().unwrap_err();
        assert_eq!((e.kind(), e.status()), (AuthErrorKind::LayerMissing, 500));
        let req = crate::RoleRequirement::any_of(["admin"]);
        assert_eq!(
            AuthState::new(None, None)
                .require(&req)
                .unwrap_err()
                .status(),
            500
        );
        assert_eq!(
            AuthState::new(None, Some(&anon))
                .require(&req)
                .unwrap_err()
                .status(),
            401
        );
    }
}
