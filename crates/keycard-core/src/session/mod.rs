//! Login sessions: access + refresh token pairs, refresh rotation with reuse
//! detection (RFC 9700 §4.14.2), logout and "log out everywhere".
//!
//! Every login starts a refresh family identified by `sid`. Each refresh
//! token may be used once: using it returns a new pair and retires it. A
//! retired refresh token presented again means it was stolen, so the whole
//! family is revoked, including the newest refresh token and every access
//! token carrying that `sid`.
//!
//! What a rotation promises when the network misbehaves:
//! - a rotation the store committed is never reported as failed because its
//!   reply was lost: the node retries the same request (its id is the new
//!   refresh token's `jti`), and the store answers a retry with what it
//!   committed;
//! - a reuse is recorded in the family before anything else, so if revoking
//!   the session's tokens fails, every later attempt on the family reports
//!   the reuse again and finishes the revocation;
//! - optionally ([`SessionsBuilder::allow_refresh_token_reuse_within`]), a
//!   client that lost a reply may present the just-rotated token again
//!   within a short window and receives the same successor.
//!
//! This module owns the lifecycle; the store trait lives in
//! [`store`](self::store), the HTTP helpers for refresh and logout endpoints
//! in [`endpoint`](self::endpoint). Neither signs tokens on its own.

pub(crate) mod endpoint;
pub(crate) mod store;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{AuthError, AuthErrorKind, ConfigError};
use crate::issue::{claims_map, random_id, IssueError, TokenIssuer};
use crate::key::BoxFuture;
use crate::revocation::{RevocationStore, StoreError};
use crate::verify::{TokenType, Verified, Verifier};

mod builder;
pub use builder::{SessionsBuilder, DEFAULT_MAX_SESSIONS_PER_SUBJECT};

pub use endpoint::{EndpointResponse, RefreshInput};
pub use store::{
    Committed, InMemoryRefreshStore, NewFamily, RefreshStore, RotateRequest, Rotation,
};

/// An access + refresh token pair, serializable as an OAuth-style token
/// response: `{"access_token","refresh_token","token_type":"Bearer","expires_in"}`.
/// `Debug` never prints the tokens.
#[derive(Clone, Serialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenPair {
    /// The access token.
    pub access_token: String,
    /// The refresh token.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: u64,
    /// The session (refresh family) id.
    #[serde(skip)]
    pub sid: String,
}

impl fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenPair")
            .field("access_token", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .field("refresh_expires_in", &self.refresh_expires_in)
            .field("sid", &self.sid)
            .finish()
    }
}

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The refresh token is invalid, expired, of the wrong type, revoked, or
    /// its session ended (OAuth `invalid_grant`).
    #[error("invalid grant: {0}")]
    InvalidGrant(AuthError),
    /// A retired refresh token was presented again: the session is revoked.
    #[error("refresh token reuse detected; the session was revoked")]
    ReuseDetected,
    /// The refresh hook refused the user (disabled, deleted): the session
    /// was ended.
    #[error("the user may no longer refresh; the session was ended")]
    UserRefused,
    /// A store could not answer or did not acknowledge a write.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Signing failed.
    #[error(transparent)]
    Issue(#[from] IssueError),
}

impl SessionError {
    /// The HTTP status: 400 for `invalid_grant` (RFC 6749 §5.2), 503 for a
    /// store outage, 500 for signing failures.
    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidGrant(_) | Self::ReuseDetected | Self::UserRefused => 400,
            Self::Store(_) => 503,
            Self::Issue(_) => 500,
        }
    }

    /// The OAuth error code (RFC 6749 §5.2).
    pub fn error_code(&self) -> &'static str {
        match self {
            Self::InvalidGrant(_) | Self::ReuseDetected | Self::UserRefused => "invalid_grant",
            Self::Store(_) => "temporarily_unavailable",
            Self::Issue(_) => "server_error",
        }
    }

    /// A JSON body `{"error", "error_description"}` (RFC 6749 §5.2).
    pub fn body(&self) -> String {
        let desc = match self {
            Self::InvalidGrant(e) => e.kind().description(),
            Self::ReuseDetected => "the refresh token was already used",
            Self::UserRefused => "the user may no longer refresh",
            Self::Store(_) => "the session store is unavailable",
            Self::Issue(_) => "the token could not be issued",
        };
        serde_json::json!({"error": self.error_code(), "error_description": desc}).to_string()
    }
}

/// The answer of a [`RefreshHook`] about the user behind a session.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum UserStatus {
    /// The user may go on; these are their claims now (roles, ...).
    Active(Map<String, Value>),
    /// The user may not (disabled, deleted): the session ends.
    Refused,
}

/// Called on every refresh with the subject and the claims the session
/// carries, so a refresh re-reads who the user is: a demoted user loses
/// roles at their next refresh, a disabled one loses the session.
pub trait RefreshHook: Send + Sync + 'static {
    /// The user's current status and claims.
    fn check<'a>(
        &'a self,
        sub: &'a str,
        claims: &'a Map<String, Value>,
    ) -> BoxFuture<'a, Result<UserStatus, StoreError>>;
}

impl<F, Fut> RefreshHook for F
where
    F: Fn(String, Map<String, Value>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<UserStatus, StoreError>> + Send + 'static,
{
    fn check<'a>(
        &'a self,
        sub: &'a str,
        claims: &'a Map<String, Value>,
    ) -> BoxFuture<'a, Result<UserStatus, StoreError>> {
        Box::pin(self(sub.to_owned(), claims.clone()))
    }
}

/// `sxp` is the session's absolute end, signed into refresh tokens so a
/// refresh knows it before signing (the refresh store enforces it).
const SESSION_END: &str = "sxp";

/// Issues, refreshes and revokes login sessions. Cheap to clone.
///
/// ```
/// use keycard_core::{Sessions, SigningKey, TokenIssuer};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let issuer = TokenIssuer::builder(SigningKey::hs256(b"an-example-secret-of-32-bytes-or-more")?)
///     .audience("api")
///     .build()?;
/// let sessions = Sessions::in_memory(issuer)?;
/// let pair = sessions.login("alice", &serde_json::json!({"roles": ["user"]})).await?;
/// let next = sessions.refresh(&pair.refresh_token).await?;
/// // The first refresh token is spent; using it again revokes the session.
/// assert!(sessions.refresh(&pair.refresh_token).await.is_err());
/// assert!(sessions.verifier().verify(&next.access_token).await.is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Sessions(Arc<SessionsInner>);

struct SessionsInner {
    issuer: TokenIssuer,
    refresh: Arc<dyn RefreshStore>,
    revocation: Arc<dyn RevocationStore>,
    access_verifier: Verifier,
    refresh_verifier: Verifier,
    hook: Option<Arc<dyn RefreshHook>>,
    max_per_subject: usize,
    reuse_grace: i64,
    rotate_attempts: u32,
    /// Rotations the store did not answer, by presented refresh `jti`: the
    /// client's retry reuses the same request (and gets the committed pair
    /// if the first attempt did commit) instead of counting as reuse.
    unanswered: std::sync::Mutex<std::collections::HashMap<String, (Prepared, i64)>>,
}

/// How long, and how many, unanswered rotations a node remembers.
const UNANSWERED_TTL: i64 = 120;
const UNANSWERED_MAX: usize = 10_000;

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions")
            .field("issuer", &self.0.issuer)
            .field("refresh", &self.0.refresh)
            .field("revocation", &self.0.revocation)
            .field("refresh_hook", &self.0.hook.is_some())
            .field("max_sessions_per_subject", &self.0.max_per_subject)
            .field("reuse_grace_secs", &self.0.reuse_grace)
            .finish()
    }
}

/// What a refresh signs before the store is asked to rotate.
#[derive(Clone)]
struct Prepared {
    pair: TokenPair,
    next: String,
    access_jti: String,
}

impl Sessions {
    /// Sessions on the embedded in-memory stores, with default verifiers.
    pub fn in_memory(issuer: TokenIssuer) -> Result<Self, ConfigError> {
        Self::builder(issuer).build()
    }

    /// Start configuring sessions for tokens signed by `issuer`.
    pub fn builder(issuer: TokenIssuer) -> SessionsBuilder {
        SessionsBuilder {
            issuer,
            refresh: None,
            revocation: None,
            configure: None,
            hook: None,
            max_per_subject: DEFAULT_MAX_SESSIONS_PER_SUBJECT,
            reuse_grace: Duration::ZERO,
        }
    }

    /// The verifier for access tokens (consults revocation). Use it in
    /// `JwtAuth::new`.
    pub fn verifier(&self) -> &Verifier {
        &self.0.access_verifier
    }

    /// The verifier for refresh tokens.
    pub fn refresh_verifier(&self) -> &Verifier {
        &self.0.refresh_verifier
    }

    /// The issuer.
    pub fn issuer(&self) -> &TokenIssuer {
        &self.0.issuer
    }

    /// The revocation store.
    pub fn revocation(&self) -> &Arc<dyn RevocationStore> {
        &self.0.revocation
    }

    /// The refresh-family store.
    pub fn refresh_store(&self) -> &Arc<dyn RefreshStore> {
        &self.0.refresh
    }

    /// Now, by the revocation store's clock (the one tokens are issued,
    /// verified and cut off by).
    pub fn now(&self) -> i64 {
        self.0.revocation.now()
    }

    /// Log `sub` in: a new session with a fresh token pair carrying the
    /// user's own `claims` (e.g. roles). When the subject already holds the
    /// maximum number of sessions, its oldest ones end.
    pub async fn login<C: Serialize + ?Sized>(
        &self,
        sub: &str,
        claims: &C,
    ) -> Result<TokenPair, SessionError> {
        let now = self.now();
        let sid = random_id();
        let session_end = now.saturating_add(secs(self.0.issuer.session_ttl()));
        let claims = claims_map(claims)?;
        let p = self.sign_pair(sub, &sid, &claims, session_end, None, now)?;
        let family = NewFamily::new(&sid, sub, &p.next, session_end, now)
            .max_per_subject(self.0.max_per_subject)
            .revoke_evicted_until(self.access_revoke_until());
        let evicted = self.0.refresh.start(family).await?;
        for old in evicted {
            self.revoke_session_tokens(&old).await?;
        }
        Ok(p.pair)
    }

    /// Exchange a refresh token for a new pair (rotation). A reused refresh
    /// token revokes its whole session. With a [`RefreshHook`], the new pair
    /// carries the user's current claims.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, SessionError> {
        let verified = self
            .0
            .refresh_verifier
            .verify(refresh_token)
            .await
            .map_err(|e| match e.kind() {
                AuthErrorKind::StoreUnavailable => SessionError::Store(StoreError::Unavailable(
                    "revocation store unavailable".into(),
                )),
                _ => SessionError::InvalidGrant(e),
            })?;
        let reg = verified.registered();
        let invalid = |what: &'static str| {
            SessionError::InvalidGrant(
                AuthError::new(AuthErrorKind::MissingClaim).with_detail(what),
            )
        };
        let sub = reg.sub.as_deref().ok_or_else(|| invalid("sub"))?;
        let sid = reg.sid.as_deref().ok_or_else(|| invalid("sid"))?;
        let jti = reg.jti.as_deref().ok_or_else(|| invalid("jti"))?;
        let mut claims = verified.claims_json().clone();
        let session_end = claims
            .get(SESSION_END)
            .and_then(Value::as_i64)
            .ok_or_else(|| invalid(SESSION_END))?;
        for name in crate::issue::ISSUER_CLAIMS {
            claims.remove(name);
        }
        if let Some(hook) = &self.0.hook {
            match hook.check(sub, &claims).await? {
                UserStatus::Active(current) => claims = current,
                UserStatus::Refused => {
                    self.end_session(sid).await?;
                    return Err(SessionError::UserRefused);
                }
            }
        }
        // Sign first, then rotate: a signing failure must not burn the token.
        // A retry of a rotation this node could not confirm repeats the
        // same request, with the same pair.
        let now = self.now();
        let p = match self.take_unanswered(jti, now) {
            Some(p) => p,
            None => self.sign_pair(sub, sid, &claims, session_end, None, now)?,
        };
        let req = RotateRequest::new(sid, jti, &p.next, &p.access_jti, now)
            .reuse_grace(self.0.reuse_grace)
            .reuse_revokes_until(now.saturating_add(secs(self.0.issuer.access_ttl())));
        let rotation = match self.rotate_with_retry(req).await {
            Ok(r) => r,
            Err(e) => {
                self.remember_unanswered(jti, p, now);
                return Err(e.into());
            }
        };
        match rotation {
            Rotation::Rotated { .. } => {
                crate::observe::counter(crate::observe::names::ROTATIONS);
                Ok(p.pair)
            }
            // Our own request, committed earlier (its reply was lost).
            Rotation::AlreadyRotated(c) if c.next == p.next => Ok(p.pair),
            // Inside the reuse grace window: the successor already issued.
            Rotation::AlreadyRotated(c) => {
                let again = self.sign_pair(
                    sub,
                    sid,
                    &claims,
                    c.session_expires_at,
                    Some((&c.next, &c.access_jti)),
                    c.rotated_at,
                )?;
                Ok(again.pair)
            }
            Rotation::Reused => {
                crate::observe::counter(crate::observe::names::REUSE);
                tracing::info!("refresh token reuse detected; the session is revoked");
                // The family is marked; if this fails, the next attempt on
                // the family reports the reuse again and finishes it.
                self.revoke_session_tokens(sid).await?;
                self.0.refresh.end(sid, self.access_revoke_until()).await?;
                Err(SessionError::ReuseDetected)
            }
            Rotation::Unknown => Err(SessionError::InvalidGrant(AuthError::new(
                AuthErrorKind::Revoked,
            ))),
        }
    }

    fn take_unanswered(&self, jti: &str, now: i64) -> Option<Prepared> {
        let mut map = self.0.unanswered.lock().unwrap_or_else(|p| p.into_inner());
        match map.remove(jti) {
            Some((p, at)) if now - at <= UNANSWERED_TTL => Some(p),
            _ => None,
        }
    }

    fn remember_unanswered(&self, jti: &str, p: Prepared, now: i64) {
        let mut map = self.0.unanswered.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= UNANSWERED_MAX {
            map.retain(|_, (_, at)| now - *at <= UNANSWERED_TTL);
        }
        if map.len() < UNANSWERED_MAX {
            map.insert(jti.to_owned(), (p, now));
        }
    }

    /// Rotate, retrying the same request (same ids) when the store did not
    /// answer: if the first attempt committed, the retry returns what it
    /// committed instead of counting as reuse.
    async fn rotate_with_retry(&self, req: RotateRequest<'_>) -> Result<Rotation, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.0.refresh.rotate(req).await {
                Err(StoreError::Unavailable(why)) if attempt < self.0.rotate_attempts => {
                    tracing::debug!(reason = %why, attempt, "refresh rotation unanswered; retrying the same request");
                }
                other => return other,
            }
        }
    }

    /// Log out one session: its access token (this one and every other
    /// carrying the same `sid`) and its refresh family stop working at once.
    /// Other sessions of the same user keep working. Safe to retry after a
    /// failure: the session ends before the token itself is revoked, so the
    /// same token can finish a logout that failed half way.
    pub async fn logout(&self, access: &Verified) -> Result<(), SessionError> {
        let reg = access.registered();
        if let Some(sid) = reg.sid.as_deref() {
            self.end_session(sid).await?;
        }
        if let Some(jti) = reg.jti.as_deref() {
            self.0.revocation.revoke_token(jti, reg.exp).await?;
        }
        crate::observe::logout("session");
        Ok(())
    }

    /// Log out the session of a refresh token, e.g. when the access token
    /// has already expired. A refresh token that is expired, revoked or
    /// spent ends its session too: its signature still proves the `sid`,
    /// so a logout that failed half way can always be finished.
    pub async fn logout_refresh(&self, refresh_token: &str) -> Result<(), SessionError> {
        let sid = self
            .session_of(&self.0.refresh_verifier, refresh_token)
            .await?;
        if let Some(sid) = sid {
            self.end_session(&sid).await?;
        }
        crate::observe::logout("session");
        Ok(())
    }

    /// The `sid` of a token of ours, valid or not: verified normally, or,
    /// when only expired or revoked, through its signature alone.
    async fn session_of(&self, v: &Verifier, token: &str) -> Result<Option<String>, SessionError> {
        match v.verify(token).await {
            Ok(v) => Ok(v.registered().sid.clone()),
            Err(e) if e.kind() == AuthErrorKind::StoreUnavailable => {
                Err(StoreError::Unavailable("revocation store unavailable".into()).into())
            }
            Err(e) if matches!(e.kind(), AuthErrorKind::Revoked | AuthErrorKind::Expired) => {
                v.authentic_sid(token).map_err(SessionError::InvalidGrant)
            }
            Err(e) => Err(SessionError::InvalidGrant(e)),
        }
    }

    /// Revoke every token of `sub` issued up to now and end every session
    /// of `sub` ("log out everywhere", "password changed"). Tokens issued
    /// in the same second are revoked too. The cut-off is taken from the
    /// revocation store's clock, the clock sessions issue tokens by.
    pub async fn logout_everywhere(&self, sub: &str) -> Result<(), SessionError> {
        let now = self.now();
        let longest = self.0.issuer.refresh_ttl().max(self.0.issuer.access_ttl());
        let until = now.saturating_add(secs(longest));
        self.0.revocation.revoke_subject(sub, now, until).await?;
        for sid in self
            .0
            .refresh
            .end_subject(sub, self.access_revoke_until())
            .await?
        {
            self.revoke_session_tokens(&sid).await?;
        }
        crate::observe::logout("everywhere");
        Ok(())
    }

    /// Revoke a whole session by `sid` (for example from an admin console).
    pub async fn revoke_session(&self, sid: &str) -> Result<(), SessionError> {
        self.end_session(sid).await
    }

    async fn end_session(&self, sid: &str) -> Result<(), SessionError> {
        // The family first (a Redis store revokes the session's tokens in
        // the same script), then the session's access tokens: a failure at
        // either step leaves every credential of the session able to retry
        // the logout, and both steps are idempotent.
        self.0.refresh.end(sid, self.access_revoke_until()).await?;
        self.revoke_session_tokens(sid).await
    }

    /// Until when a session revoked now must stay revoked: its access
    /// tokens outlive it by at most their lifetime (stores keep the entry a
    /// leeway longer).
    fn access_revoke_until(&self) -> i64 {
        self.now().saturating_add(secs(self.0.issuer.access_ttl()))
    }

    async fn revoke_session_tokens(&self, sid: &str) -> Result<(), SessionError> {
        self.0
            .revocation
            .revoke_session(sid, self.access_revoke_until())
            .await?;
        Ok(())
    }

    /// An access token, and a refresh token that carries the session's end
    /// (`sxp`) and never outlives it. `ids` fixes the refresh and access
    /// `jti`s (to re-issue a committed successor).
    fn sign_pair(
        &self,
        sub: &str,
        sid: &str,
        claims: &Map<String, Value>,
        session_end: i64,
        ids: Option<(&str, &str)>,
        now: i64,
    ) -> Result<Prepared, SessionError> {
        let issuer = &self.0.issuer;
        let (next, access_jti) = match ids {
            Some((r, a)) => (r.to_owned(), a.to_owned()),
            None => (random_id(), random_id()),
        };
        let access = issuer.issue_at(
            TokenType::Access,
            sub,
            Some(sid),
            claims.clone(),
            Some(&access_jti),
            None,
            now,
        )?;
        let refresh = issuer.issue_at(
            TokenType::Refresh,
            sub,
            Some(sid),
            claims.clone(),
            Some(&next),
            Some(session_end),
            now,
        )?;
        let refresh_expires_in = u64::try_from(refresh.expires_at - self.now()).unwrap_or(0);
        Ok(Prepared {
            pair: TokenPair {
                access_token: access.token,
                refresh_token: refresh.token,
                token_type: "Bearer",
                expires_in: access.expires_in,
                refresh_expires_in,
                sid: sid.to_owned(),
            },
            next,
            access_jti,
        })
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}
