//! The clock that `iat`, `exp`, `nbf`, revocation cut-offs and session ends
//! are read from. One process uses the system clock; a cluster that shares
//! revocations should issue, verify and cut off by one clock, e.g. the Redis
//! server's (`keycard-redis` provides it), so that a node whose clock is off
//! can neither let a token escape a "log out everywhere" nor revoke a fresh
//! login.

use std::fmt;

/// Seconds since the Unix epoch, from some clock.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Now, in whole seconds since the Unix epoch.
    fn now(&self) -> i64;

    /// Now, in milliseconds since the Unix epoch (default: from `now`).
    fn now_millis(&self) -> i64 {
        self.now().saturating_mul(1000)
    }
}

fn system_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        crate::verify::now_secs()
    }

    fn now_millis(&self) -> i64 {
        system_millis()
    }
}

/// The system clock shifted by a fixed number of seconds: a node whose clock
/// is off, for tests of clock skew.
#[derive(Debug, Clone, Copy)]
pub struct SkewedClock(pub i64);

impl Clock for SkewedClock {
    fn now(&self) -> i64 {
        crate::verify::now_secs().saturating_add(self.0)
    }

    fn now_millis(&self) -> i64 {
        system_millis().saturating_add(self.0.saturating_mul(1000))
    }
}

/// A clock that moves only when told: for tests of what happens hours or
/// days later (key retention, expiry).
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    /// A clock reading `now` (seconds since the epoch).
    pub fn new(now: i64) -> Self {
        Self(std::sync::atomic::AtomicI64::new(now))
    }

    /// Move forward by `secs`.
    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, std::sync::atomic::Ordering::SeqCst);
    }

    /// Set the time.
    pub fn set(&self, now: i64) {
        self.0.store(now, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}
