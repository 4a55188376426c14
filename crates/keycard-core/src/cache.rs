//! The opt-in verified-token cache: a repeated RS256/ES256/EdDSA token costs
//! a lookup instead of a signature check.
//!
//! Safety rules: keyed by the whole token in a hash table with a random
//! per-process seed, and a hit compares the token byte for byte (never a
//! hash alone); `exp` and `nbf` are checked again on every hit, and so is
//! revocation; an entry is used only while the exact key that verified it
//! is still in the key set; no entry outlives its token's `exp`. Bounded
//! by entry count (`moka`, a well-kept concurrent cache).

use std::sync::Arc;
use std::time::Duration;

use crate::key::Key;
use crate::verify::Verified;

#[cfg(feature = "cache")]
pub(crate) use with_moka::TokenCache;
#[cfg(not(feature = "cache"))]
pub(crate) use without::TokenCache;

#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) verified: Verified,
    pub(crate) key: Arc<Key>,
    /// Remaining lifetime when inserted (until `exp`).
    ttl: Duration,
}

/// Without the `cache` feature there is no cache: the type has no values,
/// so every use of it is provably dead code.
#[cfg(not(feature = "cache"))]
mod without {
    use super::*;

    #[derive(Debug)]
    pub(crate) enum TokenCache {}

    impl TokenCache {
        pub(crate) fn get(&self, _token: &str) -> Option<Entry> {
            match *self {}
        }
        pub(crate) fn insert(&self, _: &str, _: Verified, _: Arc<Key>, _: i64, _: i64) {
            match *self {}
        }
        pub(crate) fn len(&self) -> u64 {
            match *self {}
        }
        pub(crate) fn remove(&self, _token: &str) {
            match *self {}
        }
    }

    #[allow(dead_code)]
    fn entry_fields_are_read(e: &Entry) -> Duration {
        e.ttl
    }
}

#[cfg(feature = "cache")]
mod with_moka {
    use std::fmt;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use moka::sync::Cache;
    use moka::Expiry;

    use super::Entry;
    use crate::key::Key;
    use crate::verify::Verified;

    struct UntilExp;

    impl Expiry<Arc<str>, Entry> for UntilExp {
        fn expire_after_create(
            &self,
            _key: &Arc<str>,
            value: &Entry,
            _now: Instant,
        ) -> Option<Duration> {
            Some(value.ttl)
        }
    }

    /// A bounded cache of verified tokens.
    pub(crate) struct TokenCache {
        entries: Cache<Arc<str>, Entry>,
    }

    impl fmt::Debug for TokenCache {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("TokenCache")
                .field("entries", &self.entries.entry_count())
                .finish()
        }
    }

    impl TokenCache {
        pub(crate) fn new(capacity: u64) -> Self {
            Self {
                entries: Cache::builder()
                    .max_capacity(capacity)
                    .expire_after(UntilExp)
                    .build(),
            }
        }

        /// The entry for exactly this token, if any. `moka` compares keys with
        /// `Eq` after hashing, so a hit is a byte-for-byte match.
        pub(crate) fn get(&self, token: &str) -> Option<Entry> {
            self.entries.get(token)
        }

        pub(crate) fn insert(
            &self,
            token: &str,
            verified: Verified,
            key: Arc<Key>,
            exp: i64,
            now: i64,
        ) {
            let secs = u64::try_from(exp.saturating_sub(now)).unwrap_or(0);
            if secs == 0 {
                return;
            }
            self.entries.insert(
                Arc::from(token),
                Entry {
                    verified,
                    key,
                    ttl: Duration::from_secs(secs),
                },
            );
        }

        pub(crate) fn len(&self) -> u64 {
            self.entries.run_pending_tasks();
            self.entries.entry_count()
        }

        pub(crate) fn remove(&self, token: &str) {
            self.entries.invalidate(token);
        }
    }
}
