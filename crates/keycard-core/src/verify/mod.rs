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
use std::time::Duration;

use jsonwebtoken::Algorithm;

use crate::csrf::CsrfPolicy;
use crate::error::{AuthError, AuthErrorKind};
use crate::key::{KeyLookup, KeyProvider};
use crate::revocation::RevocationStore;
use crate::source::{Found, RequestHeaders, SourceError, Sources};

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

    pub(crate) fn matches(self, typ: Option<&str>) -> bool {
        let Some(typ) = typ else { return false };
        if typ == self.typ() {
            return true;
        }
        let typ = typ
            .get(..12)
            .filter(|p| p.eq_ignore_ascii_case("application/"))
            .map_or(typ, |_| &typ[12..]);
        typ.eq_ignore_ascii_case(self.typ())
    }
}

mod binding;
mod builder;
mod pipeline;
mod request_state;
mod token;
mod verified;

pub(crate) use binding::{BindingRequest, DpopState};
pub use builder::VerifierBuilder;
pub use request_state::{Anonymous, AuthMode, AuthState};
pub(crate) use token::now_secs;
use token::{parse, parse_with, Parsed, PayloadWalk, TypedWalk, Untyped};
#[allow(unused_imports)]
use token::{unwalked, walked, Unwalked};
use verified::{ClaimsConfig, HeaderText, VerifiedInner};
pub use verified::{RegisteredClaims, Verified};

/// Settings frozen at build time and shared by every clone of a [`Verifier`].
struct Settings {
    pub(crate) keys: Arc<dyn KeyProvider>,
    pub(crate) sources: Sources,
    pub(crate) issuers: Vec<String>,
    pub(crate) audiences: Vec<String>,
    pub(crate) issuer_audiences: Vec<(String, Vec<String>)>,
    pub(crate) ignore_audience: bool,
    pub(crate) leeway: i64,
    pub(crate) max_lifetime: Option<i64>,
    pub(crate) max_token_bytes: usize,
    pub(crate) token_type: Option<TokenType>,
    pub(crate) require_sub: bool,
    pub(crate) claims_config: Arc<ClaimsConfig>,
    pub(crate) realm: Arc<str>,
    pub(crate) dpop: Option<Arc<DpopState>>,
    #[cfg(feature = "introspection")]
    pub(crate) introspection: Option<crate::introspection::Introspector>,
    pub(crate) metadata: Option<Arc<crate::metadata::ResourceMetadata>>,
    pub(crate) metadata_url: Option<Arc<str>>,
    pub(crate) revocation: Option<Arc<dyn RevocationStore>>,
    pub(crate) fail_open: bool,
    pub(crate) csrf: CsrfPolicy,
    pub(crate) reference_signatures: bool,
    pub(crate) cache: Option<crate::cache::TokenCache>,
    pub(crate) clock: Option<Arc<dyn crate::clock::Clock>>,
    pub(crate) algorithms: Option<Vec<&'static str>>,
    pub(crate) authenticate_preflights: bool,
    pub(crate) typ_marker: Option<crate::profile::TokenMarker>,
    pub(crate) client_ids: Vec<String>,
    pub(crate) client_id_claim: crate::roles::ClaimPath,
}

impl Settings {
    /// The audiences a token from `iss` must name: its issuer's own list
    /// when configured, else the verifier-wide one.
    pub(crate) fn audiences_for(&self, iss: Option<&str>) -> &[String] {
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
    /// The token names a key that is not known yet, or a DPoP proof waits
    /// for the cluster's replay store; finish with
    /// [`PendingVerification::finish`].
    Pending(PendingVerification),
}

/// A verification that waits: for the key provider to refresh its keys, or
/// for the replay store to record a DPoP proof. `Debug` never prints the
/// token.
pub struct PendingVerification {
    kind: PendingKind,
}

enum PendingKind {
    Keys {
        verifier: Verifier,
        token: String,
        found: Found,
        binding: Option<BindingRequest>,
    },
    Replay(crate::key::BoxFuture<'static, Result<Verified, AuthError>>),
    #[cfg(feature = "introspection")]
    Introspect {
        verifier: Verifier,
        token: String,
        found: Found,
        /// A JWT that already verified locally (`introspect_jwts_too`).
        local: Option<Verified>,
        binding: Option<BindingRequest>,
    },
}

impl fmt::Debug for PendingVerification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            PendingKind::Keys { found, .. } => f
                .debug_struct("PendingVerification")
                .field("waits_for", &"keys")
                .field("token", &"<redacted>")
                .field("found", found)
                .finish_non_exhaustive(),
            PendingKind::Replay(_) => f
                .debug_struct("PendingVerification")
                .field("waits_for", &"replay store")
                .finish_non_exhaustive(),
            #[cfg(feature = "introspection")]
            PendingKind::Introspect { found, .. } => f
                .debug_struct("PendingVerification")
                .field("waits_for", &"introspection")
                .field("token", &"<redacted>")
                .field("found", found)
                .finish_non_exhaustive(),
        }
    }
}

impl PendingVerification {
    pub(crate) fn keys(verifier: Verifier, token: String, found: Found) -> Self {
        Self {
            kind: PendingKind::Keys {
                verifier,
                token,
                found,
                binding: None,
            },
        }
    }

    pub(crate) fn replay(fut: crate::key::BoxFuture<'static, Result<Verified, AuthError>>) -> Self {
        Self {
            kind: PendingKind::Replay(fut),
        }
    }

    #[cfg(feature = "introspection")]
    pub(crate) fn introspect(
        verifier: Verifier,
        token: String,
        found: Found,
        local: Option<Verified>,
    ) -> Self {
        Self {
            kind: PendingKind::Introspect {
                verifier,
                token,
                found,
                local,
                binding: None,
            },
        }
    }

    fn with_binding(mut self, request: BindingRequest) -> Self {
        match &mut self.kind {
            PendingKind::Keys { binding, .. } => *binding = Some(request),
            #[cfg(feature = "introspection")]
            PendingKind::Introspect { binding, .. } => *binding = Some(request),
            PendingKind::Replay(_) => {}
        }
        self
    }

    /// Refresh the keys (single-flight inside the provider) and verify
    /// again, or wait for the replay store.
    pub async fn finish(self) -> Result<Verified, AuthError> {
        let (verifier, token, found, binding) = match self.kind {
            PendingKind::Replay(fut) => return fut.await,
            #[cfg(feature = "introspection")]
            PendingKind::Introspect {
                verifier,
                token,
                found,
                local,
                binding,
            } => return finish_introspection(verifier, token, found, local, binding).await,
            PendingKind::Keys {
                verifier,
                token,
                found,
                binding,
            } => (verifier, token, found, binding),
        };
        let s = &verifier.0;
        let parsed = match parse(&token, s) {
            Ok(p) => p,
            Err(e) => return Err(verifier.err(e)),
        };
        s.keys.refresh(parsed.iss(), parsed.kid.as_deref()).await;
        let verified = match verifier.verify_parsed(&token, parsed, found, false) {
            Step::Done(Ok(v)) => v,
            Step::Done(Err(e)) => return Err(e),
            Step::NeedsKeys => return Err(verifier.err(AuthErrorKind::UnknownKey.into())),
        };
        #[cfg(feature = "introspection")]
        if verifier
            .0
            .introspection
            .as_ref()
            .is_some_and(crate::introspection::Introspector::jwts_too)
        {
            return finish_introspection(verifier, token, found, Some(verified), binding).await;
        }
        match verifier.bind(verified, &token, binding.as_ref()) {
            Attempt::Done(r) => r,
            Attempt::Pending(p) => Box::pin(p.finish()).await,
        }
    }
}

/// Ask the authorization server, then apply the binding rules.
#[cfg(feature = "introspection")]
async fn finish_introspection(
    verifier: Verifier,
    token: String,
    found: Found,
    local: Option<Verified>,
    binding: Option<BindingRequest>,
) -> Result<Verified, AuthError> {
    let Some(introspector) = verifier.0.introspection.clone() else {
        return Err(verifier.err(AuthErrorKind::UnknownKey.into()));
    };
    let verified = match introspector.introspect(&token, verifier.now()).await {
        Err(e) => return Err(verifier.err(e)),
        Ok(None) => return Err(verifier.err(AuthErrorKind::Inactive.into())),
        Ok(Some(answer)) => match local {
            Some(v) => v,
            None => verifier.verified_from_introspection(answer.to_vec(), found)?,
        },
    };
    match verifier.bind(verified, &token, binding.as_ref()) {
        Attempt::Done(r) => r,
        Attempt::Pending(p) => Box::pin(p.finish()).await,
    }
}

pub(crate) enum Step {
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
        self.authenticate_now_at(method, None, headers)
    }

    /// [`Verifier::authenticate_now`] for a request whose target (path) is
    /// known, as DPoP proofs need (they name the request's URL). The
    /// adapters call this.
    pub fn authenticate_now_at<H: RequestHeaders + ?Sized>(
        &self,
        method: &str,
        target: Option<&str>,
        headers: &H,
    ) -> Attempt {
        self.authenticate_walk(method, target, headers, &mut Untyped)
    }

    /// [`Verifier::authenticate_now_at`] that also deserializes the
    /// caller's claims type `T`, in the same walk over the payload that
    /// checks it (duplicate members, the registered claims' types): one
    /// walk instead of two, for a handler that takes `T` anyway.
    ///
    /// The decision is exactly [`Verifier::authenticate_now_at`]'s. The
    /// `T` comes back only with a verified token whose payload was walked in
    /// this call; it is `None` when the token came from the verified-token
    /// cache, waits for keys, was refused, or does not fit `T` (then
    /// [`Verified::claims`] reads it, and reports why it does not fit).
    ///
    /// ```
    /// # use keycard_core::{Attempt, Key, SigningKey, TokenIssuer, TokenType, Verifier};
    /// #[derive(serde::Deserialize)]
    /// struct MyClaims { sub: String }
    /// # let issuer = TokenIssuer::builder(SigningKey::hs256(b"0123456789abcdef0123456789abcdef").unwrap()).build().unwrap();
    /// # let token = issuer.issue(TokenType::Access, "alice", None, &serde_json::json!({})).unwrap().token;
    /// let verifier = Verifier::builder()
    ///     .key(Key::hs256(b"0123456789abcdef0123456789abcdef")?)
    ///     .build()?;
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("authorization", format!("Bearer {token}").parse()?);
    /// let (attempt, claims) = verifier.authenticate_now_typed::<MyClaims, _>("GET", None, &headers);
    /// let Attempt::Done(Ok(verified)) = attempt else { panic!() };
    /// let claims = match claims {
    ///     Some(c) => c,
    ///     None => verified.claims::<MyClaims>()?,
    /// };
    /// assert_eq!(claims.sub, "alice");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn authenticate_now_typed<T, H>(
        &self,
        method: &str,
        target: Option<&str>,
        headers: &H,
    ) -> (Attempt, Option<T>)
    where
        T: serde::de::DeserializeOwned,
        H: RequestHeaders + ?Sized,
    {
        let mut walk = TypedWalk::<T>(None);
        let attempt = self.authenticate_walk(method, target, headers, &mut walk);
        let claims = match &attempt {
            Attempt::Done(Ok(v)) if !v.from_cache() => walk.0,
            _ => None,
        };
        (attempt, claims)
    }

    fn authenticate_walk<H: RequestHeaders + ?Sized>(
        &self,
        method: &str,
        target: Option<&str>,
        headers: &H,
        walk: &mut dyn PayloadWalk,
    ) -> Attempt {
        let (token, found) = match self.0.sources.find(headers) {
            Ok(Some(t)) => t,
            Ok(None) => return Attempt::Done(Err(self.err(AuthErrorKind::Missing.into()))),
            Err(SourceError::Malformed(why)) => {
                return Attempt::Done(Err(self.err(
                    AuthError::new(AuthErrorKind::MalformedRequest).with_public_detail(why),
                )))
            }
        };
        if found == Found::Cookie {
            if let Err(e) = self.0.csrf.check(method, headers) {
                return Attempt::Done(Err(self.err(e)));
            }
        }
        let binding =
            || (found == Found::DpopHeader).then(|| self.binding_request(method, target, headers));
        match self.verify_now_walk(token, found, walk) {
            Attempt::Done(Ok(v)) => {
                let request = binding();
                self.bind(v, token, request.as_ref())
            }
            Attempt::Pending(p) => match binding() {
                Some(request) => Attempt::Pending(p.with_binding(request)),
                None => Attempt::Pending(p),
            },
            done => done,
        }
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

    pub(crate) fn verify_now_from(&self, token: &str, found: Found) -> Attempt {
        self.verify_now_walk(token, found, &mut Untyped)
    }

    fn verify_now_walk(&self, token: &str, found: Found, walk: &mut dyn PayloadWalk) -> Attempt {
        #[cfg(feature = "introspection")]
        if let Some(introspector) = &self.0.introspection {
            let jwt_shaped = token.bytes().filter(|b| *b == b'.').count() == 2;
            if !jwt_shaped {
                if token.len() > self.0.max_token_bytes {
                    return Attempt::Done(Err(self.err(AuthErrorKind::TokenTooLarge.into())));
                }
                if found != Found::Cookie && !crate::source::is_b64token(token.as_bytes()) {
                    return Attempt::Done(Err(self.err(
                        AuthError::new(AuthErrorKind::MalformedRequest)
                            .with_detail("the token is not a b64token"),
                    )));
                }
                return Attempt::Pending(PendingVerification::introspect(
                    self.clone(),
                    token.to_owned(),
                    found,
                    None,
                ));
            }
            if introspector.jwts_too() {
                return match self.verify_now_local(token, found, walk) {
                    Attempt::Done(Ok(v)) => Attempt::Pending(PendingVerification::introspect(
                        self.clone(),
                        token.to_owned(),
                        found,
                        Some(v),
                    )),
                    other => other,
                };
            }
        }
        self.verify_now_local(token, found, walk)
    }

    /// Local verification of a JWT (no introspection).
    fn verify_now_local(&self, token: &str, found: Found, walk: &mut dyn PayloadWalk) -> Attempt {
        // RFC 6750 §2.1: a header value that is not a b64token is a
        // malformed request (400), not a bad token. Every valid JWS is a
        // b64token, so the per-byte check runs only when verification did
        // not succeed.
        let not_b64token =
            || found != Found::Cookie && !crate::source::is_b64token(token.as_bytes());
        match self.verify_now_inner(token, found, walk) {
            Attempt::Done(Err(_)) | Attempt::Pending(_) if not_b64token() => {
                Attempt::Done(Err(self.err(
                    AuthError::new(AuthErrorKind::MalformedRequest)
                        .with_detail("the token is not a b64token"),
                )))
            }
            other => other,
        }
    }

    pub(crate) fn verify_now_inner(
        &self,
        token: &str,
        found: Found,
        walk: &mut dyn PayloadWalk,
    ) -> Attempt {
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
        if walk.runs_caller_code() {
            // The caller's `Deserialize` runs only on a payload whose
            // signature checked out (RFC 8725 §3.x: use claims only after
            // the signature): signature first, then one walk that checks
            // the payload and deserializes `T` together. When that order
            // cannot be taken (the key depends on `iss`, the key is not at
            // hand, or the signature fails), the untyped path decides, with
            // exactly its own errors, and `T` is deserialized afterwards
            // from a verified payload.
            if let Some(attempt) = self.verify_signed_first(token, found, walk) {
                return attempt;
            }
            let attempt = self.verify_uncached(token, found, &mut Untyped);
            if let Attempt::Done(Ok(v)) = &attempt {
                let _ = walk.walk(&v.inner.payload);
            }
            return attempt;
        }
        self.verify_uncached(token, found, walk)
    }

    fn verify_uncached(&self, token: &str, found: Found, walk: &mut dyn PayloadWalk) -> Attempt {
        let parsed = match parse_with(token, &self.0, walk) {
            Ok(p) => p,
            Err(e) => return Attempt::Done(Err(self.err(e))),
        };
        match self.verify_parsed(token, parsed, found, true) {
            Step::Done(r) => Attempt::Done(r),
            Step::NeedsKeys => Attempt::Pending(PendingVerification::keys(
                self.clone(),
                token.to_owned(),
                found,
            )),
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

    /// Whether no configured source (header, cookie) holds anything.
    pub(crate) fn carries_no_token<H: RequestHeaders + ?Sized>(&self, headers: &H) -> bool {
        matches!(self.0.sources.find(headers), Ok(None))
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

    /// The protected resource metadata (RFC 9728) built from this
    /// verifier's configuration, when [`VerifierBuilder::protected_resource`]
    /// named the resource: serve [`to_json`](crate::metadata::ResourceMetadata::to_json)
    /// at [`path`](crate::metadata::ResourceMetadata::path) (the adapters
    /// have route helpers).
    pub fn resource_metadata(&self) -> Option<&crate::metadata::ResourceMetadata> {
        self.0.metadata.as_deref()
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
}

/// Whether a verifier can decide right now, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub(crate) reasons: Vec<String>,
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
