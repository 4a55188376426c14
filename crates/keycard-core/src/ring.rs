//! The issuer's signing key ring: one active key that signs, plus retired
//! keys that stay published (and accepted) for a grace period after a
//! rotation, so tokens signed just before it keep working. Reads are
//! lock-free (`arc-swap`); a rotation swaps the whole state at once.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use jsonwebtoken::jwk::JwkSet;

use crate::error::ConfigError;
use crate::issue::SigningKey;
use crate::key::{alg_name, answers_kid, Key, KeyLookup, KeyProvider};
use crate::verify::now_secs;

/// The default time a retired key stays published and accepted: long
/// enough for every token it signed to expire (access tokens live 15 min),
/// plus JWKS caches to pick up the new key.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(2 * 3600);

struct RingState {
    active: Arc<SigningKey>,
    active_key: Arc<Key>,
    retired: Vec<(Arc<Key>, i64)>,
}

/// One active signing key plus verify-only keys within their grace period.
pub struct KeyRing {
    state: ArcSwap<RingState>,
    grace: Duration,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.load();
        f.debug_struct("KeyRing")
            .field("active", &s.active)
            .field("retired", &s.retired.len())
            .field("grace", &self.grace)
            .finish()
    }
}

impl KeyRing {
    /// A ring whose active key is `key`, with the default grace period.
    pub fn new(key: SigningKey) -> Self {
        Self::with_grace(key, DEFAULT_GRACE)
    }

    /// A ring with a custom grace period for retired keys.
    pub fn with_grace(key: SigningKey, grace: Duration) -> Self {
        let active_key = Arc::new(key.verification_key());
        Self {
            state: ArcSwap::from_pointee(RingState {
                active: Arc::new(key),
                active_key,
                retired: Vec::new(),
            }),
            grace,
        }
    }

    /// The key that signs new tokens.
    pub fn active(&self) -> Arc<SigningKey> {
        self.state.load().active.clone()
    }

    /// Make `next` the active key; the previous one stays published and
    /// accepted for the grace period. `next` must have a `kid` no live key
    /// uses.
    pub fn rotate(&self, next: SigningKey) -> Result<(), ConfigError> {
        let Some(kid) = next.kid().map(str::to_owned) else {
            return Err(ConfigError::InvalidSetting(
                "a rotated-in key needs a kid".into(),
            ));
        };
        let now = now_secs();
        let until = now.saturating_add(i64::try_from(self.grace.as_secs()).unwrap_or(i64::MAX));
        let mut result = Ok(());
        self.state.rcu(|cur| {
            let live = |k: &Key| k.kid() == Some(kid.as_str());
            if live(&cur.active_key) || cur.retired.iter().any(|(k, u)| *u >= now && live(k)) {
                result = Err(ConfigError::DuplicateKid(kid.clone()));
                return cur.clone();
            }
            result = Ok(());
            let mut retired: Vec<(Arc<Key>, i64)> = cur
                .retired
                .iter()
                .filter(|(_, u)| *u >= now)
                .cloned()
                .collect();
            retired.push((cur.active_key.clone(), until));
            Arc::new(RingState {
                active: Arc::new(next.clone()),
                active_key: Arc::new(next.verification_key()),
                retired,
            })
        });
        result
    }

    /// Every key that verifies right now: the active one first.
    pub fn verification_keys(&self) -> Vec<Arc<Key>> {
        let s = self.state.load();
        let now = now_secs();
        std::iter::once(s.active_key.clone())
            .chain(
                s.retired
                    .iter()
                    .filter(|(_, u)| *u >= now)
                    .map(|(k, _)| k.clone()),
            )
            .collect()
    }

    /// The public JWKS: active and retired asymmetric keys, never private
    /// material, never HMAC secrets.
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

    /// The `Cache-Control` value to serve the JWKS with: caches refresh well
    /// within the grace period.
    pub fn cache_control(&self) -> String {
        let max_age = (self.grace.as_secs() / 4).clamp(1, 300);
        format!("public, max-age={max_age}")
    }
}

impl KeyProvider for KeyRing {
    fn lookup(&self, _issuer: Option<&str>, kid: Option<&str>, alg: &str) -> KeyLookup {
        let keys = self.verification_keys();
        let n = keys.len();
        let found: Vec<Arc<Key>> = keys
            .iter()
            .filter(|k| alg_name(k.alg) == alg && answers_kid(k, kid, n))
            .cloned()
            .collect();
        if !found.is_empty() {
            KeyLookup::Found(found)
        } else if crate::key::kid_known(keys.iter(), kid) {
            KeyLookup::AlgorithmNotAllowed
        } else {
            KeyLookup::NotFound
        }
    }
}
