//! A node's local view of the shared denylist, and the Redis clock. Checks
//! read a snapshot without any lock; updates copy it in O(1) and insert in
//! O(log n) under a writer mutex the request path never takes. The view
//! answers only while it can prove it is current; it never talks to Redis
//! itself (the sync task does).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use keycard_core::{Clock, Denylist, RevocationEntry, StoreError, TokenFacts};
use tokio::time::Instant;

pub(crate) struct View {
    list: ArcSwap<Denylist>,
    writer: Mutex<()>,
    /// Synced at least once since the last failure of the subscription.
    current: AtomicBool,
    /// When the view was last proven current: milliseconds after `base` of
    /// the moment before a heartbeat (or snapshot) whose effect reached it.
    proven_ms: AtomicU64,
    base: Instant,
    max_staleness: Duration,
    /// Redis time minus local time, in milliseconds.
    clock_offset_ms: AtomicI64,
    local_clock: Arc<dyn Clock>,
    /// Resyncs after the first sync (failures, failovers, slot moves).
    pub(crate) resyncs: AtomicU64,
    clock_measured: AtomicBool,
    /// Own writes written again because their announcement never came.
    pub(crate) rewrites: AtomicU64,
    /// This node's own writes whose announcement has not yet come back
    /// through the subscription, with when they were last acknowledged
    /// (`None` while the write is still in flight).
    pending: Mutex<Vec<(RevocationEntry, Option<Instant>)>>,
}

impl View {
    pub(crate) fn new(max_staleness: Duration, local_clock: Arc<dyn Clock>) -> Self {
        Self {
            list: ArcSwap::from_pointee(Denylist::default()),
            writer: Mutex::new(()),
            current: AtomicBool::new(false),
            proven_ms: AtomicU64::new(0),
            base: Instant::now(),
            max_staleness,
            clock_offset_ms: AtomicI64::new(0),
            local_clock,
            resyncs: AtomicU64::new(0),
            clock_measured: AtomicBool::new(false),
            rewrites: AtomicU64::new(0),
            pending: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn update<T>(&self, f: impl FnOnce(&mut Denylist) -> T) -> T {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut list = Denylist::clone(&self.list.load());
        let out = f(&mut list);
        self.list.store(Arc::new(list));
        out
    }

    pub(crate) fn apply(&self, entry: &RevocationEntry) {
        if self.list.load().get(entry.kind, &entry.id).as_ref() == Some(entry) {
            return;
        }
        self.update(|l| l.insert(entry));
    }

    /// Redis acknowledged this node's write: apply it at once, and wait to
    /// see its announcement come back.
    ///
    /// The acknowledgement may come from a server that is about to lose
    /// it: a primary that is being demoted or failed over, whose last
    /// writes never reached the replica that takes over. Such a write is
    /// never announced on the subscription, which follows the current
    /// primary, so a heartbeat sent after it comes back first; the sync
    /// task then writes it again ([`View::unechoed_before`]).
    pub(crate) fn acknowledged(&self, entry: &RevocationEntry) {
        self.writing(entry);
        self.written(entry);
    }

    /// This node is about to write `entry`: await its announcement from
    /// now on, since the announcement can come back before the write's
    /// acknowledgement does (and always does with `WAIT`). Then
    /// [`View::written`] or [`View::abandon`].
    pub(crate) fn writing(&self, entry: &RevocationEntry) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((entry.clone(), None));
    }

    /// The write announced by [`View::writing`] was acknowledged: apply it.
    /// Only from now may a heartbeat prove its announcement lost: a
    /// heartbeat published while the write was still in flight may reach
    /// Redis before the write does, and come back before its announcement.
    pub(crate) fn written(&self, entry: &RevocationEntry) {
        {
            let now = Instant::now();
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((_, at)) = pending
                .iter_mut()
                .find(|(p, at)| p == entry && at.is_none())
            {
                *at = Some(now);
            }
        }
        self.apply(entry);
    }

    /// The write announced by [`View::writing`] failed: the caller got an
    /// error, and nothing is owed.
    pub(crate) fn abandon(&self, entry: &RevocationEntry) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = pending.iter().position(|(p, _)| p == entry) {
            pending.swap_remove(i);
        }
    }

    /// An announcement came back through the subscription: the writes it
    /// covers are settled.
    pub(crate) fn echoed(&self, entry: &RevocationEntry) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if !pending.is_empty() {
            pending.retain(|(p, _)| {
                !(p.kind == entry.kind
                    && p.id == entry.id
                    && entry.exp >= p.exp
                    && entry.cutoff >= p.cutoff)
            });
        }
    }

    /// Own writes that a snapshot holds are settled: Redis has them,
    /// wherever their announcement went.
    pub(crate) fn settled_by(&self, remote: &Denylist) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|(p, _)| {
            !remote
                .get(p.kind, &p.id)
                .is_some_and(|r| r.exp >= p.exp && r.cutoff >= p.cutoff)
        });
    }

    /// Own writes acknowledged before `t` whose announcement has not come
    /// back although a heartbeat sent at `t` has: they must be written
    /// again. Each is marked as sent now, so it is not sent again before
    /// the next heartbeat can tell.
    pub(crate) fn unechoed_before(&self, t: Instant) -> Vec<RevocationEntry> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let mut out = Vec::new();
        for (entry, sent) in pending.iter_mut() {
            if sent.is_some_and(|sent| sent < t) {
                out.push(entry.clone());
                *sent = Some(now);
            }
        }
        // Entries past their lifetime need no repair.
        let horizon = self.now() - keycard_core::REVOCATION_GRACE.as_secs() as i64;
        pending.retain(|(e, _)| e.exp >= horizon);
        out
    }

    pub(crate) fn snapshot(&self) -> Arc<Denylist> {
        self.list.load_full()
    }

    /// Milliseconds since `base` at instant `t`.
    pub(crate) fn stamp(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.base).as_millis()).unwrap_or(u64::MAX)
    }

    /// The view held everything acknowledged before `t`.
    pub(crate) fn prove(&self, t: Instant) {
        self.proven_ms.fetch_max(self.stamp(t), Ordering::AcqRel);
    }

    pub(crate) fn set_current(&self, current: bool) {
        self.current.store(current, Ordering::Release);
    }

    /// How long ago the view was last proven current.
    pub(crate) fn lag(&self) -> Duration {
        let now = self.stamp(Instant::now());
        Duration::from_millis(now.saturating_sub(self.proven_ms.load(Ordering::Acquire)))
    }

    /// Synced, and proven current within the bound.
    pub(crate) fn is_current(&self) -> bool {
        self.current.load(Ordering::Acquire) && self.lag() <= self.max_staleness
    }

    pub(crate) fn max_staleness(&self) -> Duration {
        self.max_staleness
    }

    pub(crate) fn check(&self, t: &TokenFacts<'_>) -> Result<bool, StoreError> {
        if !self.is_current() {
            return Err(StoreError::NotCurrent);
        }
        Ok(self.list.load().contains(t, self.now()))
    }

    /// Now by the Redis clock (the local clock plus its measured offset).
    pub(crate) fn now(&self) -> i64 {
        self.local_clock
            .now_millis()
            .saturating_add(self.clock_offset_ms.load(Ordering::Relaxed))
            .div_euclid(1000)
    }

    pub(crate) fn local_millis(&self) -> i64 {
        self.local_clock.now_millis()
    }

    pub(crate) fn set_clock_offset_ms(&self, ms: i64) {
        self.clock_offset_ms.store(ms, Ordering::Relaxed);
        self.clock_measured.store(true, Ordering::Relaxed);
    }

    /// Whether an offset to the Redis clock was measured yet.
    pub(crate) fn clock_measured(&self) -> bool {
        self.clock_measured.load(Ordering::Relaxed)
    }

    /// Redis time minus local time, in milliseconds.
    pub(crate) fn clock_offset_ms(&self) -> i64 {
        self.clock_offset_ms.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keycard_core::{EntryKind, SystemClock};

    #[test]
    fn own_writes_stay_pending_until_announced_and_are_resent_once_per_heartbeat() {
        let view = View::new(Duration::from_secs(3), Arc::new(SystemClock));
        let exp = SystemClock.now() + 600;
        let jti = RevocationEntry::new(EntryKind::Token, "j1", exp, 0);
        let sid = RevocationEntry::new(EntryKind::Session, "s1", exp, 0);
        let before = Instant::now();
        view.acknowledged(&jti);
        view.acknowledged(&sid);
        assert!(
            view.snapshot().get(EntryKind::Token, "j1").is_some(),
            "applied at once"
        );
        // A heartbeat sent before the writes proves nothing about them.
        assert!(view.unechoed_before(before).is_empty());
        // The token's announcement came back; the session's did not.
        view.echoed(&jti);
        std::thread::sleep(Duration::from_millis(2));
        let heartbeat = Instant::now();
        assert_eq!(view.unechoed_before(heartbeat), vec![sid.clone()]);
        // Resent: not again for a heartbeat sent before the resend...
        assert!(view.unechoed_before(heartbeat).is_empty());
        // ...and settled once its announcement arrives (a wider one too).
        view.echoed(&RevocationEntry::new(EntryKind::Session, "s1", exp + 5, 0));
        assert!(view
            .unechoed_before(Instant::now() + Duration::from_secs(1))
            .is_empty());
        // A write still in flight is owed nothing, whatever heartbeat comes
        // back: only its acknowledgement starts the clock.
        let late = RevocationEntry::new(EntryKind::Token, "in-flight", exp, 0);
        view.writing(&late);
        std::thread::sleep(Duration::from_millis(2));
        assert!(view
            .unechoed_before(Instant::now() + Duration::from_secs(1))
            .is_empty());
        let acked = Instant::now();
        view.written(&late);
        assert!(
            view.unechoed_before(acked).is_empty(),
            "a heartbeat sent before the acknowledgement"
        );
        view.echoed(&late);
        // An announcement for another id or an older exp settles nothing.
        view.acknowledged(&sid);
        view.echoed(&RevocationEntry::new(EntryKind::Session, "s2", exp, 0));
        view.echoed(&RevocationEntry::new(EntryKind::Session, "s1", exp - 1, 0));
        assert_eq!(
            view.unechoed_before(Instant::now() + Duration::from_secs(1)),
            vec![sid]
        );
    }
}
