//! The refresh-family store: which refresh token of each session is current,
//! who owns the session, and what the last rotation produced. The trait is
//! what a cluster store (Redis) implements; [`InMemoryRefreshStore`] is the
//! embedded one. It may not sign tokens or touch revocation entries.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Mutex;

use crate::key::BoxFuture;
use crate::revocation::StoreError;

/// A new refresh family (one login session).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct NewFamily<'a> {
    /// The session id (`sid`).
    pub sid: &'a str,
    /// The subject the session belongs to.
    pub sub: &'a str,
    /// The `jti` of the session's first refresh token.
    pub jti: &'a str,
    /// The session's absolute end (seconds since the epoch).
    pub session_expires_at: i64,
    /// The store's clock now.
    pub now: i64,
    /// Most live sessions one subject may hold; starting one more ends the
    /// oldest ones, which the store returns so their tokens can be revoked.
    pub max_per_subject: usize,
    /// A store that can also revoke the ended sessions' access tokens in
    /// the same atomic step (Redis) revokes them until this time. The
    /// caller revokes them as well, so a store may ignore it.
    pub revoke_evicted_until: i64,
}

impl<'a> NewFamily<'a> {
    /// A family `sid` of `sub` whose first refresh token is `jti`.
    pub fn new(
        sid: &'a str,
        sub: &'a str,
        jti: &'a str,
        session_expires_at: i64,
        now: i64,
    ) -> Self {
        Self {
            sid,
            sub,
            jti,
            session_expires_at,
            now,
            max_per_subject: usize::MAX,
            revoke_evicted_until: now,
        }
    }

    /// With a per-subject cap.
    #[must_use]
    pub fn max_per_subject(mut self, n: usize) -> Self {
        self.max_per_subject = n.max(1);
        self
    }

    /// Revoke ended sessions' access tokens until `until`, where the store
    /// can do so in the same step.
    #[must_use]
    pub fn revoke_evicted_until(mut self, until: i64) -> Self {
        self.revoke_evicted_until = until;
        self
    }
}

/// One rotation attempt: present `presented`, make `next` current.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RotateRequest<'a> {
    /// The session id.
    pub sid: &'a str,
    /// The `jti` of the refresh token presented.
    pub presented: &'a str,
    /// The `jti` of the refresh token that replaces it. Unique per attempt,
    /// so it doubles as the request id: retrying the same request after a
    /// lost reply is recognised and answered with what was committed.
    pub next: &'a str,
    /// The `jti` of the access token issued with `next`.
    pub access_jti: &'a str,
    /// The store's clock now.
    pub now: i64,
    /// Seconds during which presenting the just-rotated token again returns
    /// the same successor instead of counting as reuse (0: off).
    pub reuse_grace: i64,
    /// On reuse, a store that can also revoke the session's access tokens
    /// in the same atomic step (Redis) revokes them until this time. The
    /// caller revokes them as well, so a store may ignore it.
    pub reuse_revokes_until: i64,
}

impl<'a> RotateRequest<'a> {
    /// A rotation of `sid` from `presented` to `next`, without a grace window.
    pub fn new(
        sid: &'a str,
        presented: &'a str,
        next: &'a str,
        access_jti: &'a str,
        now: i64,
    ) -> Self {
        Self {
            sid,
            presented,
            next,
            access_jti,
            now,
            reuse_grace: 0,
            reuse_revokes_until: now,
        }
    }

    /// With a reuse grace window in seconds.
    #[must_use]
    pub fn reuse_grace(mut self, secs: i64) -> Self {
        self.reuse_grace = secs.max(0);
        self
    }

    /// On reuse, revoke the session's access tokens until `until` in the
    /// same step, where the store can.
    #[must_use]
    pub fn reuse_revokes_until(mut self, until: i64) -> Self {
        self.reuse_revokes_until = until;
        self
    }
}

/// What the last rotation of a family committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The `jti` of the successor refresh token.
    pub next: String,
    /// The `jti` of the access token issued with it.
    pub access_jti: String,
    /// When it was issued (its `iat`).
    pub rotated_at: i64,
    /// The session's absolute end.
    pub session_expires_at: i64,
}

/// The result of a rotation attempt in a [`RefreshStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rotation {
    /// The presented token was the family's current one; it is now retired
    /// and `next` is current. The session ends at `session_expires_at`.
    Rotated {
        /// The absolute end of the session.
        session_expires_at: i64,
    },
    /// The presented token was rotated already, by this same request (a
    /// retry after a lost reply) or within the reuse grace window: here is
    /// the successor that was committed.
    AlreadyRotated(Committed),
    /// A retired token was presented: the family is revoked. Every later
    /// attempt on the family answers `Reused` again until
    /// [`RefreshStore::end`], so a caller whose revocation write failed
    /// finishes it on retry.
    Reused,
    /// No live family: logged out, ended, or expired.
    Unknown,
}

/// The refresh-family store.
///
/// Rotation must be atomic: of N concurrent rotations with the same token,
/// exactly one returns [`Rotation::Rotated`] (or, for a retry of the same
/// request, [`Rotation::AlreadyRotated`]).
pub trait RefreshStore: Send + Sync + fmt::Debug + 'static {
    /// Start a family. Returns the sids of older sessions of the same
    /// subject that were ended to stay within `max_per_subject`.
    fn start<'a>(&'a self, family: NewFamily<'a>)
        -> BoxFuture<'a, Result<Vec<String>, StoreError>>;

    /// Atomically replace `presented` by `next` as the current token.
    fn rotate<'a>(&'a self, req: RotateRequest<'a>) -> BoxFuture<'a, Result<Rotation, StoreError>>;

    /// End the family (logout) and free its slot; later rotations answer
    /// [`Rotation::Unknown`]. A store that can also revoke the session's
    /// access tokens in the same atomic step (Redis) does so until
    /// `revoke_until`; the caller revokes them as well.
    fn end<'a>(&'a self, sid: &'a str, revoke_until: i64) -> BoxFuture<'a, Result<(), StoreError>>;

    /// End every family of `sub` ("log out everywhere"); returns their sids
    /// (revoked until `revoke_until` where the store can, as in `end`).
    fn end_subject<'a>(
        &'a self,
        sub: &'a str,
        revoke_until: i64,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Live,
    /// Revoked for reuse; kept until the caller confirms with `end`.
    Reused,
}

#[derive(Debug)]
struct Family {
    /// Start order, to end a subject's oldest sessions first.
    seq: u64,
    sub: String,
    current: String,
    expires_at: i64,
    state: State,
    previous: Option<String>,
    committed: Option<Committed>,
}

#[derive(Debug, Default)]
struct Families {
    by_sid: HashMap<String, Family>,
    /// sub → (start order, sid) of its families.
    by_sub: HashMap<String, BTreeSet<(u64, String)>>,
    /// (session end, sid) of every family, to prune in O(k log n).
    by_expiry: BTreeSet<(i64, String)>,
    next_seq: u64,
}

impl Families {
    fn remove(&mut self, sid: &str) -> Option<Family> {
        let f = self.by_sid.remove(sid)?;
        self.by_expiry.remove(&(f.expires_at, sid.to_owned()));
        if let Some(set) = self.by_sub.get_mut(&f.sub) {
            set.remove(&(f.seq, sid.to_owned()));
            if set.is_empty() {
                self.by_sub.remove(&f.sub);
            }
        }
        Some(f)
    }

    fn prune(&mut self, now: i64) {
        while let Some((exp, sid)) = self.by_expiry.first().cloned() {
            if exp >= now {
                break;
            }
            self.remove(&sid);
        }
    }
}

/// The embedded refresh-family store for a single process.
///
/// Every operation is O(log n) in one short critical section. Capacity: at
/// most `capacity` families (default one million) and, per subject, the
/// cap the caller passes ([`crate::SessionsBuilder::max_sessions_per_subject`],
/// default 100: the oldest sessions end first). Logout frees a family's
/// slot at once; expired families leave when space is needed. A login
/// beyond the capacity fails with [`StoreError::Full`].
#[derive(Debug)]
pub struct InMemoryRefreshStore {
    families: Mutex<Families>,
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
            families: Mutex::new(Families::default()),
            capacity,
        }
    }

    /// Number of families held (live, or revoked for reuse and not yet ended).
    pub fn len(&self) -> usize {
        self.lock().by_sid.len()
    }

    /// Whether the store holds no family.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Families> {
        self.families.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn start_now(&self, f: &NewFamily<'_>) -> Result<Vec<String>, StoreError> {
        let mut map = self.lock();
        map.prune(f.now);
        let mut evicted = Vec::new();
        if let Some(mine) = map.by_sub.get(f.sub) {
            let over = (mine.len() + 1).saturating_sub(f.max_per_subject);
            evicted.extend(mine.iter().take(over).map(|(_, sid)| sid.clone()));
        }
        for sid in &evicted {
            map.remove(sid);
        }
        if map.by_sid.len() >= self.capacity && !map.by_sid.contains_key(f.sid) {
            return Err(StoreError::Full(self.capacity));
        }
        map.remove(f.sid);
        map.next_seq += 1;
        let seq = map.next_seq;
        map.by_expiry
            .insert((f.session_expires_at, f.sid.to_owned()));
        map.by_sub
            .entry(f.sub.to_owned())
            .or_default()
            .insert((seq, f.sid.to_owned()));
        map.by_sid.insert(
            f.sid.to_owned(),
            Family {
                seq,
                sub: f.sub.to_owned(),
                current: f.jti.to_owned(),
                expires_at: f.session_expires_at,
                state: State::Live,
                previous: None,
                committed: None,
            },
        );
        Ok(evicted)
    }

    fn rotate_now(&self, r: &RotateRequest<'_>) -> Rotation {
        let mut map = self.lock();
        let Some(f) = map.by_sid.get_mut(r.sid) else {
            return Rotation::Unknown;
        };
        if f.state == State::Reused {
            return Rotation::Reused;
        }
        if f.expires_at < r.now {
            return Rotation::Unknown;
        }
        if f.current == r.presented {
            f.previous = Some(std::mem::replace(&mut f.current, r.next.to_owned()));
            f.committed = Some(Committed {
                next: r.next.to_owned(),
                access_jti: r.access_jti.to_owned(),
                rotated_at: r.now,
                session_expires_at: f.expires_at,
            });
            return Rotation::Rotated {
                session_expires_at: f.expires_at,
            };
        }
        if f.previous.as_deref() == Some(r.presented) {
            if let Some(c) = &f.committed {
                let same_request = c.next == r.next;
                let in_grace = r.reuse_grace > 0 && r.now - c.rotated_at <= r.reuse_grace;
                // Only while the successor is still current: once it was
                // rotated in turn, its predecessor is plainly stale.
                if (same_request || in_grace) && f.current == c.next {
                    return Rotation::AlreadyRotated(c.clone());
                }
            }
        }
        f.state = State::Reused;
        Rotation::Reused
    }
}

impl RefreshStore for InMemoryRefreshStore {
    fn start<'a>(
        &'a self,
        family: NewFamily<'a>,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        Box::pin(std::future::ready(self.start_now(&family)))
    }

    fn rotate<'a>(&'a self, req: RotateRequest<'a>) -> BoxFuture<'a, Result<Rotation, StoreError>> {
        Box::pin(std::future::ready(Ok(self.rotate_now(&req))))
    }

    fn end<'a>(&'a self, sid: &'a str, _: i64) -> BoxFuture<'a, Result<(), StoreError>> {
        self.lock().remove(sid);
        Box::pin(std::future::ready(Ok(())))
    }

    fn end_subject<'a>(
        &'a self,
        sub: &'a str,
        _: i64,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        let mut map = self.lock();
        let sids: Vec<String> = map
            .by_sub
            .get(sub)
            .map(|s| s.iter().map(|(_, sid)| sid.clone()).collect())
            .unwrap_or_default();
        for sid in &sids {
            map.remove(sid);
        }
        Box::pin(std::future::ready(Ok(sids)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn rotation_retry_grace_and_reuse() {
        rt(async {
            let s = InMemoryRefreshStore::new();
            s.start(NewFamily::new("s", "alice", "r1", 1000, 0))
                .await
                .unwrap();
            let r = s
                .rotate(RotateRequest::new("s", "r1", "r2", "a2", 10))
                .await
                .unwrap();
            assert_eq!(
                r,
                Rotation::Rotated {
                    session_expires_at: 1000
                }
            );
            // The same request again (a lost reply): what was committed.
            let again = s
                .rotate(RotateRequest::new("s", "r1", "r2", "a2", 11))
                .await
                .unwrap();
            assert!(
                matches!(again, Rotation::AlreadyRotated(ref c) if c.next == "r2" && c.rotated_at == 10)
            );
            // Another request with r1 inside the grace window: the same successor.
            let grace = RotateRequest::new("s", "r1", "r9", "a9", 12).reuse_grace(5);
            assert!(
                matches!(s.rotate(grace).await.unwrap(), Rotation::AlreadyRotated(ref c) if c.next == "r2")
            );
            // Outside the window: reuse, and it stays reuse.
            let late = RotateRequest::new("s", "r1", "r9", "a9", 16).reuse_grace(5);
            assert_eq!(s.rotate(late).await.unwrap(), Rotation::Reused);
            let cur = RotateRequest::new("s", "r2", "r3", "a3", 17);
            assert_eq!(s.rotate(cur).await.unwrap(), Rotation::Reused);
            s.end("s", 0).await.unwrap();
            assert_eq!(s.rotate(cur).await.unwrap(), Rotation::Unknown);
            assert!(s.is_empty(), "end frees the slot");
        });
    }

    #[test]
    fn per_subject_cap_ends_the_oldest_and_capacity_fails_closed() {
        rt(async {
            let s = InMemoryRefreshStore::with_capacity(3);
            for (i, sid) in ["a", "b", "c"].iter().enumerate() {
                let f = NewFamily::new(sid, "mallory", "j", 100 + i as i64, 0).max_per_subject(2);
                let evicted = s.start(f).await.unwrap();
                assert_eq!(evicted.is_empty(), i < 2, "{evicted:?}");
            }
            assert_eq!(s.len(), 2);
            s.start(NewFamily::new("d", "bob", "j", 100, 0))
                .await
                .unwrap();
            let full = s.start(NewFamily::new("e", "carol", "j", 100, 0)).await;
            assert!(matches!(full, Err(StoreError::Full(3))));
            assert_eq!(s.end_subject("mallory", 0).await.unwrap(), vec!["b", "c"]);
            s.start(NewFamily::new("e", "carol", "j", 100, 0))
                .await
                .unwrap();
            // Expired families make room.
            let later = NewFamily::new("f", "dave", "j", 500, 200);
            s.start(later).await.unwrap();
            assert_eq!(s.len(), 1);
        });
    }
}
