//! [`SessionsBuilder`]: the issuer, the stores, the hook and the rules
//! that sessions are built with.

use crate::clock::Clock;
use crate::error::ConfigError;
use crate::issue::TokenIssuer;
use crate::revocation::{InMemoryRevocationStore, RevocationStore};
use crate::verify::{TokenType, VerifierBuilder};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::*;

/// The default cap on live sessions per subject.
pub const DEFAULT_MAX_SESSIONS_PER_SUBJECT: usize = 100;

pub(crate) type Configure = Box<dyn Fn(VerifierBuilder) -> VerifierBuilder + Send + Sync>;

/// Builds [`Sessions`].
#[must_use]
pub struct SessionsBuilder {
    pub(crate) issuer: TokenIssuer,
    pub(crate) refresh: Option<Arc<dyn RefreshStore>>,
    pub(crate) revocation: Option<Arc<dyn RevocationStore>>,
    pub(crate) configure: Option<Configure>,
    pub(crate) hook: Option<Arc<dyn RefreshHook>>,
    pub(crate) max_per_subject: usize,
    pub(crate) reuse_grace: Duration,
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

    /// Re-read the user on every refresh: `hook(sub, claims)` returns the
    /// user's current claims, or refuses (the session then ends). A role
    /// change thus takes effect at the user's next refresh (within the
    /// access-token lifetime); `logout_everywhere` makes it immediate.
    pub fn on_refresh(mut self, hook: impl RefreshHook) -> Self {
        self.hook = Some(Arc::new(hook));
        self
    }

    /// Most live sessions per subject (default 100). A login beyond it ends
    /// the subject's oldest sessions, so one account cannot fill the store.
    pub fn max_sessions_per_subject(mut self, n: usize) -> Self {
        self.max_per_subject = n.max(1);
        self
    }

    /// Let a client present the refresh token it just rotated once more
    /// within `window` and receive the same successor instead of having
    /// its session revoked for reuse (Okta's "grace period", Auth0's
    /// "reuse interval"). Off by default: within the window, a thief who
    /// replays a stolen token gets the successor too. At most 60 s.
    pub fn allow_refresh_token_reuse_within(mut self, window: Duration) -> Self {
        self.reuse_grace = window;
        self
    }

    /// Check and freeze the configuration.
    pub fn build(self) -> Result<Sessions, ConfigError> {
        if self.reuse_grace > Duration::from_secs(60) {
            return Err(ConfigError::InvalidSetting(
                "the refresh reuse grace window is at most 60 s".into(),
            ));
        }
        let revocation = self
            .revocation
            .unwrap_or_else(|| Arc::new(InMemoryRevocationStore::new()));
        let refresh = self
            .refresh
            .unwrap_or_else(|| Arc::new(InMemoryRefreshStore::new()));
        let clock: Arc<dyn Clock> = Arc::new(crate::revocation::StoreClock(revocation.clone()));
        let configure = |b: VerifierBuilder| match &self.configure {
            Some(f) => f(b),
            None => b,
        };
        let access_verifier = configure(self.issuer.verifier_for(TokenType::Access))
            .revocation(revocation.clone())
            .clock(clock.clone())
            .build()?;
        let refresh_verifier = configure(self.issuer.verifier_for(TokenType::Refresh))
            .revocation(revocation.clone())
            .clock(clock)
            .build()?;
        Ok(Sessions(Arc::new(SessionsInner {
            issuer: self.issuer,
            refresh,
            revocation,
            access_verifier,
            refresh_verifier,
            hook: self.hook,
            max_per_subject: self.max_per_subject,
            reuse_grace: secs(self.reuse_grace),
            rotate_attempts: 3,
            unanswered: std::sync::Mutex::new(std::collections::HashMap::new()),
        })))
    }
}
