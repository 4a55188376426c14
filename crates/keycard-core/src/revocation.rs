//! Revocation: a denylist of token ids (`jti`), sessions (`sid`, one refresh
//! family) and subjects ("log out everywhere before time T").
//!
//! The check on the request path is synchronous and answers from local
//! memory; writes are async because a cluster store (Redis) must acknowledge
//! them before they count. A store that cannot tell whether a token is
//! revoked returns [`StoreError`], and the verifier fails closed (503) unless
//! configured otherwise.

use std::fmt;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::key::BoxFuture;
use crate::verify::now_secs;

/// A clock read from a revocation store.
#[derive(Debug)]
pub(crate) struct StoreClock(pub(crate) Arc<dyn RevocationStore>);

impl crate::clock::Clock for StoreClock {
    fn now(&self) -> i64 {
        self.0.now()
    }
}

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

    /// Now, by the clock this store judges entries by. A cluster store
    /// returns the shared clock (e.g. the Redis server's), and
    /// [`crate::Sessions`] issues tokens, verifies them and takes cut-offs
    /// by it. Default: the system clock.
    fn now(&self) -> i64 {
        now_secs()
    }

    /// Whether the store can answer checks right now (a cluster store's
    /// view is current); else why not. Default: always ready.
    fn readiness(&self) -> Result<(), String> {
        Ok(())
    }

    /// Revoke one token whose `exp` is `expires_at`. The entry is kept
    /// until `expires_at` + [`REVOCATION_GRACE`], so the token stays refused
    /// inside any verifier's leeway.
    fn revoke_token<'a>(
        &'a self,
        jti: &'a str,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Revoke every token of a session (refresh family) expiring by
    /// `expires_at` (kept until `expires_at` + [`REVOCATION_GRACE`]).
    fn revoke_session<'a>(
        &'a self,
        sid: &'a str,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Revoke every token of `sub` issued at or before `issued_at_or_before`
    /// ("log out everywhere"); `expires_at` is the latest `exp` such a token
    /// can have (kept until `expires_at` + [`REVOCATION_GRACE`]).
    fn revoke_subject<'a>(
        &'a self,
        sub: &'a str,
        issued_at_or_before: i64,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// How long past a token's `exp` its revocation entry is kept: the largest
/// leeway any verifier may be configured with ([`crate::MAX_LEEWAY`]), so a
/// revoked token never verifies again inside a verifier's leeway. Every
/// store (in memory, Redis, the local view) keeps entries this long.
pub const REVOCATION_GRACE: std::time::Duration = crate::verify::MAX_LEEWAY;

const GRACE_SECS: i64 = REVOCATION_GRACE.as_secs() as i64;

/// Whether an entry for tokens expiring at `exp` still counts at `now`.
pub(crate) fn entry_live(exp: i64, now: i64) -> bool {
    exp.saturating_add(GRACE_SECS) >= now
}

/// What a denylist entry names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum EntryKind {
    /// One token, by `jti`.
    Token,
    /// One session (refresh family), by `sid`.
    Session,
    /// Every token of a subject issued at or before a cutoff, by `sub`.
    Subject,
}

/// One denylist entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RevocationEntry {
    /// What `id` names.
    pub kind: EntryKind,
    /// The `jti`, `sid` or `sub`.
    pub id: Arc<str>,
    /// The latest `exp` of a token the entry must cover; the entry is kept
    /// until `exp` + [`REVOCATION_GRACE`].
    pub exp: i64,
    /// For subjects: tokens issued at or before this `iat` are revoked.
    pub cutoff: i64,
}

impl RevocationEntry {
    /// An entry of `kind` for `id`.
    pub fn new(kind: EntryKind, id: impl Into<Arc<str>>, exp: i64, cutoff: i64) -> Self {
        Self {
            kind,
            id: id.into(),
            exp,
            cutoff,
        }
    }
}

/// The entries of a denylist, shared by the in-memory store and the local
/// view of cluster stores.
///
/// A persistent (structurally shared) map: a clone costs O(1) and an insert
/// O(log n), so a writer copies the current snapshot, changes it and swaps
/// it in while readers keep reading theirs without any lock. An index by
/// expiry makes pruning cost only what it removes.
#[derive(Debug, Default, Clone)]
pub struct Denylist {
    tokens: imbl::HashMap<Arc<str>, i64>,
    sessions: imbl::HashMap<Arc<str>, i64>,
    subjects: imbl::HashMap<Arc<str>, (i64, i64)>,
    by_expiry: imbl::OrdSet<(i64, EntryKind, Arc<str>)>,
}

impl Denylist {
    /// An empty denylist.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the facts are revoked at time `now`. Entries count until
    /// their `exp` + [`REVOCATION_GRACE`].
    pub fn contains(&self, t: &TokenFacts<'_>, now: i64) -> bool {
        if let Some(jti) = t.jti {
            if self.tokens.get(jti).is_some_and(|e| entry_live(*e, now)) {
                return true;
            }
        }
        if let Some(sid) = t.sid {
            if self.sessions.get(sid).is_some_and(|e| entry_live(*e, now)) {
                return true;
            }
        }
        if let Some(sub) = t.sub {
            if let Some((cutoff, exp)) = self.subjects.get(sub) {
                // A token without iat cannot prove it is newer than the cutoff.
                if entry_live(*exp, now) && t.iat.is_none_or(|iat| iat <= *cutoff) {
                    return true;
                }
            }
        }
        false
    }

    /// Add an entry, or widen an existing one (the later `exp`, the later
    /// cutoff). Returns whether anything changed.
    pub fn insert(&mut self, entry: &RevocationEntry) -> bool {
        let id = &entry.id;
        let (old_exp, new_exp) = match entry.kind {
            EntryKind::Token | EntryKind::Session => {
                let map = if entry.kind == EntryKind::Token {
                    &mut self.tokens
                } else {
                    &mut self.sessions
                };
                let old = map.get(&**id).copied();
                let new = old.map_or(entry.exp, |o| o.max(entry.exp));
                if old == Some(new) {
                    return false;
                }
                map.insert(id.clone(), new);
                (old, new)
            }
            EntryKind::Subject => {
                let old = self.subjects.get(&**id).copied();
                let new = old.map_or((entry.cutoff, entry.exp), |(c, e)| {
                    (c.max(entry.cutoff), e.max(entry.exp))
                });
                if old == Some(new) {
                    return false;
                }
                self.subjects.insert(id.clone(), new);
                (old.map(|o| o.1), new.1)
            }
        };
        if old_exp != Some(new_exp) {
            if let Some(old) = old_exp {
                self.by_expiry.remove(&(old, entry.kind, id.clone()));
            }
            self.by_expiry.insert((new_exp, entry.kind, id.clone()));
        }
        true
    }

    /// The entry for `kind` and `id`, if any (live or not yet pruned).
    pub fn get(&self, kind: EntryKind, id: &str) -> Option<RevocationEntry> {
        let (exp, cutoff) = match kind {
            EntryKind::Token => (*self.tokens.get(id)?, 0),
            EntryKind::Session => (*self.sessions.get(id)?, 0),
            EntryKind::Subject => {
                let (c, e) = *self.subjects.get(id)?;
                (e, c)
            }
        };
        Some(RevocationEntry::new(kind, id, exp, cutoff))
    }

    /// Every entry, in order of expiry.
    pub fn entries(&self) -> impl Iterator<Item = RevocationEntry> + '_ {
        self.by_expiry
            .iter()
            .filter_map(|(_, kind, id)| self.get(*kind, id))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.by_expiry.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether some entry no longer counts at `now` (so a prune would
    /// change the list). O(log n).
    pub fn has_expired(&self, now: i64) -> bool {
        self.by_expiry
            .get_min()
            .is_some_and(|(exp, _, _)| !entry_live(*exp, now))
    }

    /// Drop the entries that no longer count at `now`; costs O(k log n) for
    /// k dropped entries.
    pub fn prune(&mut self, now: i64) {
        while let Some((exp, kind, id)) = self.by_expiry.get_min().cloned() {
            if entry_live(exp, now) {
                break;
            }
            self.by_expiry.remove(&(exp, kind, id.clone()));
            match kind {
                EntryKind::Token => {
                    self.tokens.remove(&*id);
                }
                EntryKind::Session => {
                    self.sessions.remove(&*id);
                }
                EntryKind::Subject => {
                    self.subjects.remove(&*id);
                }
            }
        }
    }
}

/// The embedded, bounded revocation store for a single process.
///
/// Checks read an immutable snapshot without any lock (`arc-swap`). A
/// revocation copies the snapshot in O(1) (structural sharing) and inserts
/// in O(log n), under a writer mutex the request path never takes, so a
/// logout costs the same at ten entries as at a million.
///
/// Capacity: at most `capacity` live entries (default one million). When
/// full, a revocation fails with [`StoreError::Full`]: the logout is
/// reported as failed (503), never dropped. Entries leave once their tokens
/// can no longer verify (`exp` + [`REVOCATION_GRACE`]).
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

    /// A store holding at most `capacity` live entries. When full, a
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

    /// A consistent snapshot of the denylist.
    pub fn snapshot(&self) -> Arc<Denylist> {
        self.list.load_full()
    }

    /// Add (or widen) an entry.
    pub fn insert(&self, entry: &RevocationEntry) -> Result<(), StoreError> {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut list = Denylist::clone(&self.list.load());
        list.prune(now_secs());
        let known = list.get(entry.kind, &entry.id).is_some();
        if !known && list.len() >= self.capacity {
            return Err(StoreError::Full(self.capacity));
        }
        if list.insert(entry) {
            self.list.store(Arc::new(list));
        }
        Ok(())
    }

    fn write(&self, entry: RevocationEntry) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(std::future::ready(self.insert(&entry)))
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
        self.write(RevocationEntry::new(EntryKind::Token, jti, expires_at, 0))
    }

    fn revoke_session<'a>(
        &'a self,
        sid: &'a str,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.write(RevocationEntry::new(EntryKind::Session, sid, expires_at, 0))
    }

    fn revoke_subject<'a>(
        &'a self,
        sub: &'a str,
        issued_at_or_before: i64,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.write(RevocationEntry::new(
            EntryKind::Subject,
            sub,
            expires_at,
            issued_at_or_before,
        ))
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
        store.revoke_token("old", now - 400).await.unwrap();
        assert!(!store
            .is_revoked(&TokenFacts::new(now + 5).jti("old"))
            .unwrap());
        store.revoke_token("a", now + 60).await.unwrap();
        // Full: the entry past exp + grace is pruned to make room.
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
