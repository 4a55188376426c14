//! The issuer's signing key ring: rotation that never logs anyone out.
//!
//! - **Publish before you sign.** [`KeyRing::rotate`] publishes the next key
//!   at once and lets it sign only after the propagation delay, by which
//!   time every verifier has refetched the JWKS (the ring serves it with a
//!   `max-age` of at most half the delay). Optionally a key is published one
//!   rotation ahead ([`KeyRingBuilder::prepublish`]) and rotation is then
//!   instant.
//! - **Retired keys verify what they signed, for as long as it can be
//!   valid.** A retired key stays published and verifying for the retention
//!   (the longest lifetime of a token it signed plus the largest leeway:
//!   the issuer sets it from its refresh lifetime), and it verifies only
//!   tokens issued before it was retired.
//! - **The ring is capped.** At most `max_keys` keys are published; expired
//!   retired keys leave first, and a rotation that would have to drop a key
//!   still needed is refused. One rotation may be pending at a time.
//!
//! Reads are lock-free (`arc-swap`); a rotation swaps the whole state. This
//! module holds keys and time; it signs nothing itself.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use jsonwebtoken::jwk::JwkSet;

use crate::clock::{Clock, SystemClock};
use crate::error::ConfigError;
use crate::issue::SigningKey;
use crate::key::{alg_name, answers_kid, Key, KeyLookup, KeyProvider};

/// The default delay between publishing a key and signing with it: long
/// enough for verifiers that cache the JWKS (keycard's `RemoteJwks` with
/// the ring's `max-age`, or the 30 s refetch cooldown) to have it first.
pub const DEFAULT_PROPAGATION_DELAY: Duration = Duration::from_secs(10 * 60);

/// The default cap on published keys.
pub const DEFAULT_MAX_KEYS: usize = 10;

/// The default retention of a retired key: the default refresh-token
/// lifetime plus the largest leeway. An issuer built on the ring raises it
/// to its own refresh lifetime plus the leeway.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(
    crate::issue::DEFAULT_REFRESH_TTL.as_secs() + crate::verify::MAX_LEEWAY.as_secs(),
);

/// What a call to [`KeyRing::rotate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RotationPlan {
    /// The new key is published now and signs from `signs_at` (seconds
    /// since the epoch).
    Scheduled {
        /// The new key's id.
        kid: String,
        /// When it starts signing.
        signs_at: i64,
    },
    /// The key published one rotation ahead signs from now; `next` is
    /// published to follow it.
    Activated {
        /// The id of the key that signs now.
        kid: String,
        /// The id of the key now published ahead.
        next: String,
    },
}

struct Staged {
    key: Arc<SigningKey>,
    verify: Arc<Key>,
    published_at: i64,
    /// `None`: published ahead, waiting for the next rotation.
    signs_at: Option<i64>,
}

struct Retired {
    verify: Arc<Key>,
    keep_until: i64,
}

struct RingState {
    active: Arc<SigningKey>,
    active_key: Arc<Key>,
    next: Option<Staged>,
    /// Newest first.
    retired: Vec<Retired>,
}

impl RingState {
    fn published(&self) -> usize {
        1 + usize::from(self.next.is_some()) + self.retired.len()
    }

    fn uses_kid(&self, kid: &str) -> bool {
        let is = |k: &Key| k.kid() == Some(kid);
        is(&self.active_key)
            || self.next.as_ref().is_some_and(|n| is(&n.verify))
            || self.retired.iter().any(|r| is(&r.verify))
    }

    /// Move the active key to the retired list (newest first) and make
    /// `next` active, at `now`.
    fn promote(&self, next: &Staged, now: i64, retention: i64) -> RingState {
        let mut retired = Vec::with_capacity(self.retired.len() + 1);
        retired.push(Retired {
            verify: Arc::new(self.active_key.retired_at(now)),
            keep_until: now.saturating_add(retention),
        });
        retired.extend(
            self.retired
                .iter()
                .filter(|r| r.keep_until >= now)
                .map(|r| Retired {
                    verify: r.verify.clone(),
                    keep_until: r.keep_until,
                }),
        );
        RingState {
            active: next.key.clone(),
            active_key: next.verify.clone(),
            next: None,
            retired,
        }
    }
}

/// One active signing key, at most one published next key, and the retired
/// keys still needed to verify what they signed.
pub struct KeyRing {
    state: ArcSwap<RingState>,
    propagation: Duration,
    max_keys: usize,
    retention: AtomicI64,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.load();
        f.debug_struct("KeyRing")
            .field("active", &s.active)
            .field("next", &s.next.as_ref().map(|n| n.key.kid()))
            .field("retired", &s.retired.len())
            .field("propagation_delay", &self.propagation)
            .field("retention_secs", &self.retention.load(Ordering::Relaxed))
            .finish()
    }
}

/// Builds a [`KeyRing`].
#[must_use]
pub struct KeyRingBuilder {
    active: SigningKey,
    next: Option<SigningKey>,
    propagation: Duration,
    max_keys: usize,
    retention: Duration,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for KeyRingBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRingBuilder")
            .field("active", &self.active)
            .field("propagation_delay", &self.propagation)
            .finish_non_exhaustive()
    }
}

impl KeyRingBuilder {
    /// How long a new key is published before it signs (default 10 min).
    /// Make it at least the refetch interval of every verifier: the ring
    /// serves its JWKS with `max-age` of at most half this delay, and a
    /// `RemoteJwks` refetches an unknown `kid` at most once per cooldown.
    pub fn propagation_delay(mut self, d: Duration) -> Self {
        self.propagation = d;
        self
    }

    /// Publish `next` one rotation ahead (as large identity providers do):
    /// the next [`KeyRing::rotate`] after the propagation delay makes it
    /// sign at once.
    pub fn prepublish(mut self, next: SigningKey) -> Self {
        self.next = Some(next);
        self
    }

    /// The most keys published at once (default 10, at least 2).
    pub fn max_keys(mut self, n: usize) -> Self {
        self.max_keys = n;
        self
    }

    /// How long a retired key keeps verifying (default: 7 days + 5 min). An
    /// issuer raises it to its own refresh lifetime plus the largest leeway.
    pub fn retention(mut self, d: Duration) -> Self {
        self.retention = d;
        self
    }

    /// Read time from `clock` (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Check and build.
    pub fn build(self) -> Result<KeyRing, ConfigError> {
        if self.max_keys < 2 {
            return Err(ConfigError::InvalidSetting(
                "a key ring needs room for at least 2 keys".into(),
            ));
        }
        let now = self.clock.now();
        let active_key = Arc::new(self.active.verification_key());
        let next = match self.next {
            Some(n) => {
                let kid = n.kid().map(str::to_owned).ok_or_else(|| {
                    ConfigError::InvalidSetting("a pre-published key needs a kid".into())
                })?;
                if active_key.kid() == Some(kid.as_str()) {
                    return Err(ConfigError::DuplicateKid(kid));
                }
                Some(Staged {
                    verify: Arc::new(n.verification_key()),
                    key: Arc::new(n),
                    published_at: now,
                    signs_at: None,
                })
            }
            None => None,
        };
        Ok(KeyRing {
            state: ArcSwap::from_pointee(RingState {
                active: Arc::new(self.active),
                active_key,
                next,
                retired: Vec::new(),
            }),
            propagation: self.propagation,
            max_keys: self.max_keys,
            retention: AtomicI64::new(secs(self.retention)),
            clock: self.clock,
        })
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

impl KeyRing {
    /// A ring whose active key is `key`, with the defaults.
    pub fn new(key: SigningKey) -> Self {
        Self {
            state: ArcSwap::from_pointee(RingState {
                active_key: Arc::new(key.verification_key()),
                active: Arc::new(key),
                next: None,
                retired: Vec::new(),
            }),
            propagation: DEFAULT_PROPAGATION_DELAY,
            max_keys: DEFAULT_MAX_KEYS,
            retention: AtomicI64::new(secs(DEFAULT_RETENTION)),
            clock: Arc::new(SystemClock),
        }
    }

    /// Start configuring a ring whose active key is `key`.
    pub fn builder(key: SigningKey) -> KeyRingBuilder {
        KeyRingBuilder {
            active: key,
            next: None,
            propagation: DEFAULT_PROPAGATION_DELAY,
            max_keys: DEFAULT_MAX_KEYS,
            retention: DEFAULT_RETENTION,
            clock: Arc::new(SystemClock),
        }
    }

    /// Keep retired keys at least `d` (never lowers the retention). The
    /// token issuer calls this with its longest token lifetime plus the
    /// largest leeway.
    pub fn retain_at_least(&self, d: Duration) {
        self.retention.fetch_max(secs(d), Ordering::AcqRel);
    }

    /// How long a retired key keeps verifying.
    pub fn retention(&self) -> Duration {
        Duration::from_secs(u64::try_from(self.retention.load(Ordering::Acquire)).unwrap_or(0))
    }

    /// The delay between publishing a key and signing with it.
    pub fn propagation_delay(&self) -> Duration {
        self.propagation
    }

    /// Activate a staged key whose time has come. Cheap when nothing is due.
    fn settle(&self) {
        let now = self.clock.now();
        let due = |s: &RingState| {
            s.next
                .as_ref()
                .is_some_and(|n| n.signs_at.is_some_and(|t| t <= now))
        };
        if !due(&self.state.load()) {
            return;
        }
        let retention = self.retention.load(Ordering::Acquire);
        self.state.rcu(|cur| match &cur.next {
            Some(n) if due(cur) => Arc::new(cur.promote(n, n.signs_at.unwrap_or(now), retention)),
            _ => cur.clone(),
        });
    }

    /// The key that signs new tokens now.
    pub fn active(&self) -> Arc<SigningKey> {
        self.settle();
        self.state.load().active.clone()
    }

    /// Rotate: publish `next` now and let it sign after the propagation
    /// delay; or, when a key was published ahead long enough, let that one
    /// sign now and publish `next` ahead in its place. `next` needs a `kid`
    /// that no published key uses. Refused while a rotation is pending, and
    /// when the ring is full of keys that are still needed.
    pub fn rotate(&self, next: SigningKey) -> Result<RotationPlan, ConfigError> {
        self.settle();
        let Some(kid) = next.kid().map(str::to_owned) else {
            return Err(ConfigError::InvalidSetting(
                "a rotated-in key needs a kid".into(),
            ));
        };
        let now = self.clock.now();
        let delay = secs(self.propagation);
        let retention = self.retention.load(Ordering::Acquire);
        let next = Arc::new(next);
        let verify = Arc::new(next.verification_key());
        let mut result = Err(ConfigError::InvalidSetting("unreachable".into()));
        self.state.rcu(|cur| {
            if cur.uses_kid(&kid) {
                result = Err(ConfigError::DuplicateKid(kid.clone()));
                return cur.clone();
            }
            let staged = Staged {
                key: next.clone(),
                verify: verify.clone(),
                published_at: now,
                signs_at: None,
            };
            match &cur.next {
                Some(n) if n.signs_at.is_some() => {
                    result = Err(ConfigError::InvalidSetting(format!(
                        "a rotation is pending: {:?} signs at {}",
                        n.key.kid(),
                        n.signs_at.unwrap_or(now)
                    )));
                    cur.clone()
                }
                Some(ahead) if now - ahead.published_at >= delay => {
                    let mut promoted = cur.promote(ahead, now, retention);
                    if promoted.published() + 1 > self.max_keys {
                        result = Err(full(self.max_keys));
                        return cur.clone();
                    }
                    promoted.next = Some(staged);
                    result = Ok(RotationPlan::Activated {
                        kid: ahead.key.kid().unwrap_or_default().to_owned(),
                        next: kid.clone(),
                    });
                    Arc::new(promoted)
                }
                Some(ahead) => {
                    result = Err(ConfigError::InvalidSetting(format!(
                        "the key published ahead ({:?}) may sign from {} only",
                        ahead.key.kid(),
                        ahead.published_at.saturating_add(delay)
                    )));
                    cur.clone()
                }
                None => {
                    let live = cur.retired.iter().filter(|r| r.keep_until >= now).count();
                    // Published while staged: active, next, live retired;
                    // after activation one more retired key.
                    if 2 + live + 1 > self.max_keys {
                        result = Err(full(self.max_keys));
                        return cur.clone();
                    }
                    let signs_at = now.saturating_add(delay);
                    result = Ok(RotationPlan::Scheduled {
                        kid: kid.clone(),
                        signs_at,
                    });
                    Arc::new(RingState {
                        active: cur.active.clone(),
                        active_key: cur.active_key.clone(),
                        next: Some(Staged {
                            signs_at: Some(signs_at),
                            ..staged
                        }),
                        retired: cur
                            .retired
                            .iter()
                            .filter(|r| r.keep_until >= now)
                            .map(|r| Retired {
                                verify: r.verify.clone(),
                                keep_until: r.keep_until,
                            })
                            .collect(),
                    })
                }
            }
        });
        result
    }

    /// Make `next` sign at once, without publishing it first: verifiers
    /// that cached the JWKS refuse its tokens until they refetch (up to
    /// their cooldown). For an emergency, e.g. a leaked active key; then
    /// also [`KeyRing::withdraw`] the leaked one.
    pub fn rotate_immediately(&self, next: SigningKey) -> Result<(), ConfigError> {
        self.settle();
        let Some(kid) = next.kid().map(str::to_owned) else {
            return Err(ConfigError::InvalidSetting(
                "a rotated-in key needs a kid".into(),
            ));
        };
        let now = self.clock.now();
        let retention = self.retention.load(Ordering::Acquire);
        let staged = Staged {
            verify: Arc::new(next.verification_key()),
            key: Arc::new(next),
            published_at: now,
            signs_at: Some(now),
        };
        let mut result = Ok(());
        self.state.rcu(|cur| {
            if cur.uses_kid(&kid) {
                result = Err(ConfigError::DuplicateKid(kid.clone()));
                return cur.clone();
            }
            result = Ok(());
            Arc::new(cur.promote(&staged, now, retention))
        });
        result
    }

    /// Stop publishing and accepting the retired or staged key `kid` at once
    /// (a leaked key). Tokens it signed stop verifying. The active key
    /// cannot be withdrawn: rotate first.
    pub fn withdraw(&self, kid: &str) -> bool {
        let mut removed = false;
        self.state.rcu(|cur| {
            removed = false;
            let mut retired: Vec<Retired> = Vec::with_capacity(cur.retired.len());
            for r in &cur.retired {
                if r.verify.kid() == Some(kid) {
                    removed = true;
                } else {
                    retired.push(Retired {
                        verify: r.verify.clone(),
                        keep_until: r.keep_until,
                    });
                }
            }
            let next = match &cur.next {
                Some(n) if n.verify.kid() == Some(kid) => {
                    removed = true;
                    None
                }
                Some(n) => Some(Staged {
                    key: n.key.clone(),
                    verify: n.verify.clone(),
                    published_at: n.published_at,
                    signs_at: n.signs_at,
                }),
                None => None,
            };
            Arc::new(RingState {
                active: cur.active.clone(),
                active_key: cur.active_key.clone(),
                next,
                retired,
            })
        });
        removed
    }

    /// The key waiting to sign, and when it starts (`None`: published
    /// ahead, waiting for the next rotation).
    pub fn pending(&self) -> Option<(String, Option<i64>)> {
        self.settle();
        let s = self.state.load();
        s.next
            .as_ref()
            .map(|n| (n.key.kid().unwrap_or_default().to_owned(), n.signs_at))
    }

    /// Every key that verifies right now: the active one first, then the
    /// next one, then retired keys newest first.
    pub fn verification_keys(&self) -> Vec<Arc<Key>> {
        self.settle();
        let s = self.state.load();
        let now = self.clock.now();
        std::iter::once(s.active_key.clone())
            .chain(s.next.as_ref().map(|n| n.verify.clone()))
            .chain(
                s.retired
                    .iter()
                    .filter(|r| r.keep_until >= now)
                    .map(|r| r.verify.clone()),
            )
            .collect()
    }

    /// The public JWKS, in the order of [`KeyRing::verification_keys`]
    /// (verifiers that cap the number of keys keep the first ones): never
    /// private material, never HMAC secrets.
    pub fn public_jwks(&self) -> JwkSet {
        JwkSet {
            keys: self
                .verification_keys()
                .iter()
                .filter_map(|k| k.to_public_jwk())
                .collect(),
        }
    }

    /// The public JWKS as JSON, for a route such as `/.well-known/jwks.json`.
    pub fn jwks_json(&self) -> String {
        serde_json::to_string(&self.public_jwks()).unwrap_or_else(|_| r#"{"keys":[]}"#.into())
    }

    /// The `Cache-Control` value to serve the JWKS with: a `max-age` of at
    /// most half the propagation delay (and 5 min), so every cache holds a
    /// new key before it signs.
    pub fn cache_control(&self) -> String {
        let max_age = (self.propagation.as_secs() / 2).clamp(1, 300);
        format!("public, max-age={max_age}")
    }
}

fn full(max: usize) -> ConfigError {
    ConfigError::InvalidSetting(format!(
        "the key ring holds {max} keys that still verify live tokens; rotate again once one has expired, or raise max_keys"
    ))
}

impl KeyProvider for KeyRing {
    fn lookup(&self, _issuer: Option<&str>, kid: Option<&str>, alg: &str) -> KeyLookup {
        let keys = self.verification_keys();
        let n = keys.len();
        if let Some(found) = KeyLookup::from_matches(
            keys.iter()
                .filter(|k| alg_name(k.alg) == alg && answers_kid(k, kid, n)),
        ) {
            found
        } else if crate::key::kid_known(keys.iter(), kid) {
            KeyLookup::AlgorithmNotAllowed
        } else {
            KeyLookup::NotFound
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn key(kid: &str) -> SigningKey {
        SigningKey::hs256(format!("ring-test-secret-{kid}-0123456789abcdef"))
            .unwrap()
            .with_kid(kid)
    }

    fn kids(r: &KeyRing) -> Vec<String> {
        r.verification_keys()
            .iter()
            .map(|k| k.kid().unwrap_or_default().to_owned())
            .collect()
    }

    fn ring(clock: &Arc<ManualClock>) -> KeyRing {
        KeyRing::builder(key("k1"))
            .propagation_delay(Duration::from_secs(60))
            .retention(Duration::from_secs(7 * 86400))
            .max_keys(4)
            .clock(clock.clone())
            .build()
            .unwrap()
    }

    #[test]
    fn publish_first_sign_after_the_delay() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let r = ring(&clock);
        let plan = r.rotate(key("k2")).unwrap();
        assert_eq!(
            plan,
            RotationPlan::Scheduled {
                kid: "k2".into(),
                signs_at: 1_000_060
            }
        );
        assert_eq!(
            r.active().kid(),
            Some("k1"),
            "the new key does not sign yet"
        );
        assert_eq!(kids(&r), ["k1", "k2"], "but it is published");
        assert!(r.rotate(key("k3")).is_err(), "one rotation at a time");
        clock.advance(60);
        assert_eq!(r.active().kid(), Some("k2"));
        // The retired key verifies for the retention: days, not hours.
        clock.advance(3 * 86400);
        assert_eq!(kids(&r), ["k2", "k1"]);
        clock.advance(4 * 86400 + 1);
        assert_eq!(kids(&r), ["k2"], "gone after the retention");
    }

    #[test]
    fn prepublished_keys_activate_at_once_and_the_ring_is_capped() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let r = KeyRing::builder(key("a"))
            .prepublish(key("b"))
            .propagation_delay(Duration::from_secs(60))
            .max_keys(4)
            .clock(clock.clone())
            .build()
            .unwrap();
        assert!(
            r.rotate(key("c")).is_err(),
            "b was not published long enough"
        );
        clock.advance(60);
        let plan = r.rotate(key("c")).unwrap();
        assert_eq!(
            plan,
            RotationPlan::Activated {
                kid: "b".into(),
                next: "c".into()
            }
        );
        assert_eq!(r.active().kid(), Some("b"));
        clock.advance(60);
        r.rotate(key("d")).unwrap();
        assert_eq!(
            r.verification_keys().len(),
            4,
            "active c, next d, retired b, a"
        );
        clock.advance(60);
        // Full of keys that still verify live tokens: refused, nothing dropped.
        assert!(r.rotate(key("e")).is_err());
        assert_eq!(r.verification_keys().len(), 4);
        // Withdrawing a leaked retired key makes room.
        assert!(r.withdraw("a"));
        r.rotate(key("e")).unwrap();
        assert_eq!(r.active().kid(), Some("d"));
    }
}
