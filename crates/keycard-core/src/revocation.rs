//! Revocation: a denylist of token ids (`jti`), sessions (`sid`, one refresh
//! family) and subjects ("log out everywhere before time T").
//!
//! The check on the request path is synchronous and answers from local
//! memory; writes are async because a cluster store (Redis) must acknowledge
//! them before they count. A store that cannot tell whether a token is
//! revoked returns [`StoreError`], and the verifier fails closed (503) unless
//! configured otherwise.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::key::BoxFuture;
use crate::verify::now_secs;

/// What revocation looks at in a verified token.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct TokenFacts<'a> {
    /// `jti`.
    pub jti: Option<&'a str>,
    /// `sub`.
    pub sub: Option<&'a str>,
    /// `sid` (the refresh family / login session).
    pub sid: Option<&'a str>,
    /// `iat`.
    pub iat: Option<i64>,
    /// `exp`.
    pub exp: i64,
}

impl<'a> TokenFacts<'a> {
    /// Facts for a token with this `exp` and nothing else.
    pub fn new(exp: i64) -> Self {
        Self {
            jti: None,
            sub: None,
            sid: None,
            iat: None,
            exp,
        }
    }

    /// With a `jti`.
    #[must_use]
    pub fn jti(mut self, jti: &'a str) -> Self {
        self.jti = Some(jti);
        self
    }

    /// With a `sub`.
    #[must_use]
    pub fn subject(mut self, sub: &'a str) -> Self {
        self.sub = Some(sub);
        self
    }

    /// With a `sid`.
    #[must_use]
    pub fn sid(mut self, sid: &'a str) -> Self {
        self.sid = Some(sid);
        self
    }

    /// With an `iat`.
    #[must_use]
    pub fn iat(mut self, iat: i64) -> Self {
        self.iat = Some(iat);
        self
    }
}

/// A store failure. Never means "not revoked".
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backing store cannot be reached or did not acknowledge a write.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The local view is not known to be current (e.g. after a reconnect,
    /// before the resync finished).
    #[error("the local revocation view is not current")]
    NotCurrent,
    /// The bounded store is full of unexpired entries.
    #[error("store is full ({0} entries)")]
    Full(usize),
    /// The stored data could not be read.
    #[error("corrupt store data: {0}")]
    Corrupt(String),
}

/// A denylist consulted for every verified token.
pub trait RevocationStore: Send + Sync + fmt::Debug + 'static {
    /// Whether the token is revoked, answered without network I/O.
    fn is_revoked(&self, token: &TokenFacts<'_>) -> Result<bool, StoreError>;

    /// Revoke one token until `expires_at` (its `exp`).
    fn revoke_token<'a>(
        &'a self,
        jti: &'a str,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Revoke every token of a session (refresh family) until `expires_at`.
    fn revoke_session<'a>(
        &'a self,
        sid: &'a str,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Revoke every token of `sub` issued at or before `issued_at_or_before`
    /// ("log out everywhere"), keeping the entry until `expires_at`.
    fn revoke_subject<'a>(
        &'a self,
        sub: &'a str,
        issued_at_or_before: i64,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// The entries of a denylist, shared by the in-memory store and the local
/// view of cluster stores.
#[derive(Debug, Default, Clone)]
pub struct Denylist {
    /// jti → expires_at.
    pub tokens: HashMap<String, i64>,
    /// sid → expires_at.
    pub sessions: HashMap<String, i64>,
    /// sub → (cutoff iat, expires_at).
    pub subjects: HashMap<String, (i64, i64)>,
}

impl Denylist {
    /// Whether the facts are revoked at time `now`.
    pub fn contains(&self, t: &TokenFacts<'_>, now: i64) -> bool {
        let live = |exp: i64| exp >= now;
        if let Some(jti) = t.jti {
            if self.tokens.get(jti).is_some_and(|e| live(*e)) {
                return true;
            }
        }
        if let Some(sid) = t.sid {
            if self.sessions.get(sid).is_some_and(|e| live(*e)) {
                return true;
            }
        }
        if let Some(sub) = t.sub {
            if let Some((cutoff, exp)) = self.subjects.get(sub) {
                // A token without iat cannot prove it is newer than the cutoff.
                if live(*exp) && t.iat.is_none_or(|iat| iat <= *cutoff) {
                    return true;
                }
            }
        }
        false
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.tokens.len() + self.sessions.len() + self.subjects.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether any entry expired before `now` (so a prune would change it).
    pub fn has_expired(&self, now: i64) -> bool {
        self.tokens.values().any(|e| *e < now)
            || self.sessions.values().any(|e| *e < now)
            || self.subjects.values().any(|(_, e)| *e < now)
    }

    /// Drop entries that expired before `now`.
    pub fn prune(&mut self, now: i64) {
        self.tokens.retain(|_, e| *e >= now);
        self.sessions.retain(|_, e| *e >= now);
        self.subjects.retain(|_, (_, e)| *e >= now);
    }
}

/// The embedded, bounded revocation store for a single process.
///
/// Checks read an immutable snapshot without any lock (`arc-swap`); a
/// revocation copies the denylist, which stays small because entries leave
/// it when the tokens they name expire.
#[derive(Debug)]
pub struct InMemoryRevocationStore {
    list: ArcSwap<Denylist>,
    /// Serializes writers only; never taken on the request path.
    writer: Mutex<()>,
    capacity: usize,
}

impl Default for InMemoryRevocationStore {
    fn default() -> Self {
        Self::with_capacity(1_000_000)
    }
}

impl InMemoryRevocationStore {
    /// A store with the default capacity (one million live entries).
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding at most `capacity` unexpired entries. When full, a
    /// revocation fails with [`StoreError::Full`] rather than being dropped.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            list: ArcSwap::from_pointee(Denylist::default()),
            writer: Mutex::new(()),
            capacity,
        }
    }

    /// Number of entries (expired ones included until pruned).
    pub fn len(&self) -> usize {
        self.list.load().len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn write(&self, f: impl FnOnce(&mut Denylist)) -> Result<(), StoreError> {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut list = Denylist::clone(&self.list.load());
        list.prune(now_secs());
        if list.len() >= self.capacity {
            return Err(StoreError::Full(self.capacity));
        }
        f(&mut list);
        self.list.store(Arc::new(list));
        Ok(())
    }
}

impl RevocationStore for InMemoryRevocationStore {
    fn is_revoked(&self, token: &TokenFacts<'_>) -> Result<bool, StoreError> {
        Ok(self.list.load().contains(token, now_secs()))
    }

    fn revoke_token<'a>(
        &'a self,
        jti: &'a str,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let r = self.write(|l| {
            let e = l.tokens.entry(jti.to_owned()).or_insert(expires_at);
            *e = (*e).max(expires_at);
        });
        Box::pin(std::future::ready(r))
    }

    fn revoke_session<'a>(
        &'a self,
        sid: &'a str,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let r = self.write(|l| {
            let e = l.sessions.entry(sid.to_owned()).or_insert(expires_at);
            *e = (*e).max(expires_at);
        });
        Box::pin(std::future::ready(r))
    }

    fn revoke_subject<'a>(
        &'a self,
        sub: &'a str,
        issued_at_or_before: i64,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let r = self.write(|l| {
            let e = l
                .subjects
                .entry(sub.to_owned())
                .or_insert((issued_at_or_before, expires_at));
            e.0 = e.0.max(issued_at_or_before);
            e.1 = e.1.max(expires_at);
        });
        Box::pin(std::future::ready(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn revoke_token_session_and_subject() {
        let store = InMemoryRevocationStore::new();
        let now = now_secs();
        let t = TokenFacts::new(now + 60)
            .jti("j1")
            .subject("alice")
            .sid("s1")
            .iat(now - 10);
        assert!(!store.is_revoked(&t).unwrap());

        store.revoke_token("j1", now + 60).await.unwrap();
        assert!(store.is_revoked(&t).unwrap());
        assert!(!store
            .is_revoked(&TokenFacts::new(now + 60).jti("j2"))
            .unwrap());

        store.revoke_session("s2", now + 60).await.unwrap();
        assert!(store
            .is_revoked(&TokenFacts::new(now + 60).sid("s2"))
            .unwrap());

        store
            .revoke_subject("bob", now - 5, now + 60)
            .await
            .unwrap();
        assert!(store
            .is_revoked(&TokenFacts::new(now + 60).subject("bob").iat(now - 6))
            .unwrap());
        assert!(store
            .is_revoked(&TokenFacts::new(now + 60).subject("bob").iat(now - 5))
            .unwrap());
        assert!(!store
            .is_revoked(&TokenFacts::new(now + 60).subject("bob").iat(now - 4))
            .unwrap());
        assert!(
            store
                .is_revoked(&TokenFacts::new(now + 60).subject("bob"))
                .unwrap(),
            "no iat"
        );
    }

    #[tokio::test]
    async fn expired_entries_stop_counting_and_capacity_is_enforced() {
        let store = InMemoryRevocationStore::with_capacity(2);
        let now = now_secs();
        store.revoke_token("old", now - 10).await.unwrap();
        assert!(!store
            .is_revoked(&TokenFacts::new(now + 5).jti("old"))
            .unwrap());
        store.revoke_token("a", now + 60).await.unwrap();
        // Full: the expired entry is pruned to make room.
        store.revoke_token("b", now + 60).await.unwrap();
        assert!(matches!(
            store.revoke_token("c", now + 60).await,
            Err(StoreError::Full(2))
        ));
        assert!(store
            .is_revoked(&TokenFacts::new(now + 5).jti("b"))
            .unwrap());
    }
}
