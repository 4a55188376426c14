//! Login sessions: access + refresh token pairs, refresh rotation with reuse
//! detection (RFC 9700 §4.14.2), logout and "log out everywhere".
//!
//! Every login starts a refresh family identified by `sid`. Each refresh
//! token may be used once: using it returns a new pair and retires it. A
//! retired refresh token presented again means it was stolen, so the whole
//! family is revoked, including the newest refresh token and every access
//! token carrying that `sid`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{AuthError, AuthErrorKind, ConfigError};
use crate::issue::{random_id, IssueError, TokenIssuer};
use crate::key::BoxFuture;
use crate::revocation::{InMemoryRevocationStore, RevocationStore, StoreError};
use crate::verify::{now_secs, TokenType, Verified, Verifier, VerifierBuilder};

/// The result of a rotation attempt in a [`RefreshStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rotation {
    /// The presented token was the family's current one; it is now retired
    /// and `next` is current. The session ends at `session_expires_at`.
    Rotated {
        /// The absolute end of the session.
        session_expires_at: i64,
    },
    /// The presented token was already used: the family is now revoked.
    Reused,
    /// No live family: logged out, revoked, or expired.
    Unknown,
}

/// The refresh-family store: which refresh token of each session is current.
/// Rotation must be atomic: of N concurrent rotations with the same token,
/// exactly one returns [`Rotation::Rotated`].
pub trait RefreshStore: Send + Sync + fmt::Debug + 'static {
    /// Start a family `sid` whose current refresh token is `jti`.
    fn start<'a>(
        &'a self,
        sid: &'a str,
        jti: &'a str,
        session_expires_at: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Atomically replace `presented` by `next` as the current token of `sid`.
    fn rotate<'a>(
        &'a self,
        sid: &'a str,
        presented: &'a str,
        next: &'a str,
    ) -> BoxFuture<'a, Result<Rotation, StoreError>>;

    /// End the family (logout); later rotations answer [`Rotation::Unknown`].
    fn end<'a>(&'a self, sid: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;
}

#[derive(Debug)]
struct Family {
    current: String,
    expires_at: i64,
    revoked: bool,
}

/// The embedded refresh-family store for a single process (bounded).
#[derive(Debug)]
pub struct InMemoryRefreshStore {
    families: Mutex<HashMap<String, Family>>,
    capacity: usize,
}

impl Default for InMemoryRefreshStore {
    fn default() -> Self {
        Self::with_capacity(1_000_000)
    }
}

impl InMemoryRefreshStore {
    /// A store with the default capacity (one million live sessions).
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding at most `capacity` live sessions; a login beyond that
    /// fails with [`StoreError::Full`].
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            families: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Family>> {
        self.families.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RefreshStore for InMemoryRefreshStore {
    fn start<'a>(
        &'a self,
        sid: &'a str,
        jti: &'a str,
        session_expires_at: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let mut map = self.lock();
        if map.len() >= self.capacity {
            let now = now_secs();
            map.retain(|_, f| f.expires_at >= now);
        }
        let r = if map.len() >= self.capacity {
            Err(StoreError::Full(self.capacity))
        } else {
            map.insert(
                sid.to_owned(),
                Family {
                    current: jti.to_owned(),
                    expires_at: session_expires_at,
                    revoked: false,
                },
            );
            Ok(())
        };
        Box::pin(std::future::ready(r))
    }

    fn rotate<'a>(
        &'a self,
        sid: &'a str,
        presented: &'a str,
        next: &'a str,
    ) -> BoxFuture<'a, Result<Rotation, StoreError>> {
        let mut map = self.lock();
        let r = match map.get_mut(sid) {
            Some(f) if f.revoked || f.expires_at < now_secs() => Rotation::Unknown,
            Some(f) if f.current == presented => {
                f.current = next.to_owned();
                Rotation::Rotated {
                    session_expires_at: f.expires_at,
                }
            }
            Some(f) => {
                f.revoked = true;
                Rotation::Reused
            }
            None => Rotation::Unknown,
        };
        Box::pin(std::future::ready(Ok(r)))
    }

    fn end<'a>(&'a self, sid: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        if let Some(f) = self.lock().get_mut(sid) {
            f.revoked = true;
        }
        Box::pin(std::future::ready(Ok(())))
    }
}

/// An access + refresh token pair, serializable as an OAuth-style token
/// response: `{"access_token","refresh_token","token_type":"Bearer","expires_in"}`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
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
            Self::InvalidGrant(_) | Self::ReuseDetected => 400,
            Self::Store(_) => 503,
            Self::Issue(_) => 500,
        }
    }

    /// A JSON body `{"error", "error_description"}` (RFC 6749 §5.2).
    pub fn body(&self) -> String {
        let (code, desc) = match self {
            Self::InvalidGrant(e) => ("invalid_grant", e.kind().description()),
            Self::ReuseDetected => ("invalid_grant", "the refresh token was already used"),
            Self::Store(_) => (
                "temporarily_unavailable",
                "the session store is unavailable",
            ),
            Self::Issue(_) => ("server_error", "the token could not be issued"),
        };
        serde_json::json!({"error": code, "error_description": desc}).to_string()
    }
}

/// Claims the issuer stamps; never carried over as user claims. `sxp` is the
/// session's absolute end, signed into refresh tokens so a refresh knows it
/// before signing (the refresh store stays the authority that enforces it).
const REGISTERED: [&str; 9] = [
    "iss", "sub", "aud", "exp", "nbf", "iat", "jti", "sid", "sxp",
];

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
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions")
            .field("issuer", &self.0.issuer)
            .field("refresh", &self.0.refresh)
            .field("revocation", &self.0.revocation)
            .finish()
    }
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

    /// Log `sub` in: a new session with a fresh token pair carrying the
    /// user's own `claims` (e.g. roles).
    pub async fn login<C: Serialize + ?Sized>(
        &self,
        sub: &str,
        claims: &C,
    ) -> Result<TokenPair, SessionError> {
        let sid = random_id();
        let session_end = now_secs().saturating_add(secs(self.0.issuer.session_ttl()));
        let claims = user_claims(claims)?;
        let (pair, refresh_jti) = self.pair(sub, &sid, &claims, session_end)?;
        self.0
            .refresh
            .start(&sid, &refresh_jti, session_end)
            .await?;
        Ok(pair)
    }

    /// Exchange a refresh token for a new pair (rotation). A reused refresh
    /// token revokes its whole session.
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
            .get("sxp")
            .and_then(Value::as_i64)
            .ok_or_else(|| invalid("sxp"))?;
        for name in REGISTERED {
            claims.remove(name);
        }
        // Sign first, then rotate: a signing failure must not burn the token.
        let next_jti = random_id();
        let (pair, _) = self.pair_with_refresh_jti(sub, sid, &claims, session_end, &next_jti)?;
        match self.0.refresh.rotate(sid, jti, &next_jti).await? {
            Rotation::Rotated { .. } => Ok(pair),
            Rotation::Reused => {
                self.revoke_session_tokens(sid).await?;
                Err(SessionError::ReuseDetected)
            }
            Rotation::Unknown => Err(SessionError::InvalidGrant(AuthError::new(
                AuthErrorKind::Revoked,
            ))),
        }
    }

    /// Log out one session: its access token (this one and every other
    /// carrying the same `sid`) and its refresh family stop working at once.
    /// Other sessions of the same user keep working.
    pub async fn logout(&self, access: &Verified) -> Result<(), SessionError> {
        let reg = access.registered();
        if let Some(jti) = reg.jti.as_deref() {
            self.0.revocation.revoke_token(jti, reg.exp).await?;
        }
        if let Some(sid) = reg.sid.as_deref() {
            self.0.refresh.end(sid).await?;
            self.revoke_session_tokens(sid).await?;
        }
        Ok(())
    }

    /// Revoke every token of `sub` issued up to now ("log out everywhere",
    /// "password changed"). Tokens issued in the same second are revoked too.
    pub async fn logout_everywhere(&self, sub: &str) -> Result<(), SessionError> {
        let now = now_secs();
        let until = now.saturating_add(secs(self.0.issuer.refresh_ttl()));
        self.0.revocation.revoke_subject(sub, now, until).await?;
        Ok(())
    }

    /// Revoke a whole session by `sid` (for example from an admin console).
    pub async fn revoke_session(&self, sid: &str) -> Result<(), SessionError> {
        self.0.refresh.end(sid).await?;
        self.revoke_session_tokens(sid).await
    }

    async fn revoke_session_tokens(&self, sid: &str) -> Result<(), SessionError> {
        // Access tokens of the session outlive it by at most their lifetime.
        let until = now_secs().saturating_add(secs(self.0.issuer.access_ttl()));
        self.0.revocation.revoke_session(sid, until).await?;
        Ok(())
    }

    fn pair(
        &self,
        sub: &str,
        sid: &str,
        claims: &Map<String, Value>,
        session_end: i64,
    ) -> Result<(TokenPair, String), SessionError> {
        self.pair_with_refresh_jti(sub, sid, claims, session_end, &random_id())
    }

    /// An access token, and a refresh token that carries the session's end
    /// (`sxp`) and never outlives it.
    fn pair_with_refresh_jti(
        &self,
        sub: &str,
        sid: &str,
        claims: &Map<String, Value>,
        session_end: i64,
        refresh_jti: &str,
    ) -> Result<(TokenPair, String), SessionError> {
        let issuer = &self.0.issuer;
        let access = issuer.issue(TokenType::Access, sub, Some(sid), claims)?;
        let mut refresh_claims = claims.clone();
        refresh_claims.insert("sxp".into(), session_end.into());
        let refresh = issuer.issue_with(
            TokenType::Refresh,
            sub,
            Some(sid),
            &refresh_claims,
            Some(refresh_jti),
            Some(session_end),
        )?;
        let refresh_expires_in = u64::try_from(refresh.expires_at - now_secs()).unwrap_or(0);
        Ok((
            TokenPair {
                access_token: access.token,
                refresh_token: refresh.token,
                token_type: "Bearer",
                expires_in: access.expires_in,
                refresh_expires_in,
                sid: sid.to_owned(),
            },
            refresh.jti,
        ))
    }
}

fn secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn user_claims<C: Serialize + ?Sized>(claims: &C) -> Result<Map<String, Value>, SessionError> {
    match serde_json::to_value(claims).map_err(|e| IssueError::Claims(e.to_string()))? {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Map::new()),
        _ => Err(IssueError::Claims("not an object".into()).into()),
    }
}

type Configure = Box<dyn Fn(VerifierBuilder) -> VerifierBuilder + Send + Sync>;

/// Builds [`Sessions`].
#[must_use]
pub struct SessionsBuilder {
    issuer: TokenIssuer,
    refresh: Option<Arc<dyn RefreshStore>>,
    revocation: Option<Arc<dyn RevocationStore>>,
    configure: Option<Configure>,
}

impl fmt::Debug for SessionsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionsBuilder")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl SessionsBuilder {
    /// Use this refresh-family store (default: in memory).
    pub fn refresh_store(mut self, store: Arc<dyn RefreshStore>) -> Self {
        self.refresh = Some(store);
        self
    }

    /// Use this revocation store (default: in memory).
    pub fn revocation_store(mut self, store: Arc<dyn RevocationStore>) -> Self {
        self.revocation = Some(store);
        self
    }

    /// Adjust both verifiers (access and refresh), e.g. cookie names,
    /// allowed origins or the realm.
    pub fn configure_verifiers(
        mut self,
        f: impl Fn(VerifierBuilder) -> VerifierBuilder + Send + Sync + 'static,
    ) -> Self {
        self.configure = Some(Box::new(f));
        self
    }

    /// Check and freeze the configuration.
    pub fn build(self) -> Result<Sessions, ConfigError> {
        let revocation = self
            .revocation
            .unwrap_or_else(|| Arc::new(InMemoryRevocationStore::new()));
        let refresh = self
            .refresh
            .unwrap_or_else(|| Arc::new(InMemoryRefreshStore::new()));
        let configure = |b: VerifierBuilder| match &self.configure {
            Some(f) => f(b),
            None => b,
        };
        let access_verifier = configure(self.issuer.verifier_for(TokenType::Access))
            .revocation(revocation.clone())
            .build()?;
        let refresh_verifier = configure(self.issuer.verifier_for(TokenType::Refresh))
            .revocation(revocation.clone())
            .build()?;
        Ok(Sessions(Arc::new(SessionsInner {
            issuer: self.issuer,
            refresh,
            revocation,
            access_verifier,
            refresh_verifier,
        })))
    }
}
