//! Where verification keys come from: fixed sets, several issuers, and the
//! [`KeyProvider`] trait that remote sources implement.

use crate::error::ConfigError;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::*;

/// A fixed set of keys, selected by `kid` (and pinned algorithm).
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    pub(crate) keys: Vec<Arc<Key>>,
}

impl KeySet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a key. Two keys with the same `kid` are a configuration error.
    pub fn with(mut self, key: Key) -> Result<Self, ConfigError> {
        if let Some(kid) = key.kid() {
            if self.keys.iter().any(|k| k.kid() == Some(kid)) {
                return Err(ConfigError::DuplicateKid(kid.to_owned()));
            }
        }
        self.keys.push(Arc::new(key));
        Ok(self)
    }

    /// The keys, in insertion order.
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.keys.iter().map(|k| &**k)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Candidate keys for a token header: the key with this `kid` when the
    /// token names one; for a token without `kid`, the keys without one (or
    /// the only key of a one-key set). Only keys whose pinned algorithm
    /// equals `alg` are returned.
    pub fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: &'a str,
    ) -> impl Iterator<Item = &'a Arc<Key>> + 'a {
        let n = self.keys.len();
        self.keys
            .iter()
            .filter(move |k| alg_name(k.alg) == alg && answers_kid(k, kid, n))
    }

    /// A JWKS document with the public half of every asymmetric key (HMAC
    /// keys are never published).
    pub fn to_public_jwks(&self) -> jsonwebtoken::jwk::JwkSet {
        jsonwebtoken::jwk::JwkSet {
            keys: self.keys().filter_map(Key::to_public_jwk).collect(),
        }
    }
}

/// The answer of a [`KeyProvider`] for one token header.
#[derive(Debug, Clone)]
pub enum KeyLookup {
    /// The one key that may verify the token (the usual case: no
    /// allocation).
    One(Arc<Key>),
    /// These keys may verify the token (tried in order).
    Found(Vec<Arc<Key>>),
    /// No key matches, and refreshing would not help (or was just tried).
    NotFound,
    /// A key with the token's `kid` is known, but it does not serve the
    /// token's algorithm (a different fault from an unknown `kid`).
    AlgorithmNotAllowed,
    /// No key matches now; [`KeyProvider::refresh`] may find one.
    Refresh,
    /// The keys cannot be obtained at all right now (e.g. JWKS never loaded).
    Unavailable,
}

impl KeyLookup {
    /// The keys that may verify the token, from matching candidates: `One`
    /// for one, `Found` for several, `None` for none.
    pub fn from_matches<'a>(mut keys: impl Iterator<Item = &'a Arc<Key>>) -> Option<Self> {
        let first = keys.next()?;
        match keys.next() {
            None => Some(Self::One(first.clone())),
            Some(second) => {
                let mut all = vec![first.clone(), second.clone()];
                all.extend(keys.cloned());
                Some(Self::Found(all))
            }
        }
    }

    /// The candidate keys of a `One` or `Found` answer (empty otherwise).
    pub fn keys(&self) -> &[Arc<Key>] {
        match self {
            Self::One(k) => std::slice::from_ref(k),
            Self::Found(v) => v,
            _ => &[],
        }
    }
}

/// A boxed, sendable future, as returned by the async hooks of key providers
/// and stores.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A source of verification keys. Lookups are synchronous and lock-free on
/// the hot path; only a miss may trigger the async [`KeyProvider::refresh`].
pub trait KeyProvider: Send + Sync + fmt::Debug + 'static {
    /// Keys for a token from `issuer` (when known) with this `kid` and `alg`.
    fn lookup(&self, issuer: Option<&str>, kid: Option<&str>, alg: &str) -> KeyLookup;

    /// Try to obtain keys for an unknown `kid` (for example by refetching a
    /// JWKS, single-flight and rate-limited). The default does nothing.
    fn refresh<'a>(&'a self, _issuer: Option<&'a str>, _kid: Option<&'a str>) -> BoxFuture<'a, ()> {
        Box::pin(std::future::ready(()))
    }

    /// Whether lookups depend on the token's `iss` (multi-issuer providers).
    fn needs_issuer(&self) -> bool {
        false
    }

    /// Whether the keys can serve right now (present, not past their
    /// staleness bound); else why not. Default: always ready.
    fn readiness(&self) -> Result<(), String> {
        Ok(())
    }
}

impl KeyProvider for KeySet {
    fn lookup(&self, _issuer: Option<&str>, kid: Option<&str>, alg: &str) -> KeyLookup {
        if let Some(found) = KeyLookup::from_matches(self.candidates(kid, alg)) {
            found
        } else if kid_known(self.keys.iter(), kid) {
            KeyLookup::AlgorithmNotAllowed
        } else {
            KeyLookup::NotFound
        }
    }
}

/// Whether some key answers to the token's `kid` (whatever its algorithm).
pub(crate) fn kid_known<'a>(
    mut keys: impl Iterator<Item = &'a Arc<Key>>,
    kid: Option<&str>,
) -> bool {
    kid.is_some_and(|kid| keys.any(|k| k.kid() == Some(kid)))
}

/// Several issuers at once: keys are resolved by (`iss`, `kid`), so a token
/// claiming issuer A is only ever checked against A's keys.
#[derive(Debug, Default, Clone)]
pub struct MultiIssuer {
    pub(crate) issuers: HashMap<String, Arc<dyn KeyProvider>>,
}

impl MultiIssuer {
    /// No issuers yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trust `keys` for tokens whose `iss` is exactly `issuer`.
    #[must_use]
    pub fn issuer(mut self, issuer: impl Into<String>, keys: Arc<dyn KeyProvider>) -> Self {
        self.issuers.insert(issuer.into(), keys);
        self
    }

    /// The configured issuers (pass each to the verifier's `issuer`).
    pub fn issuers(&self) -> impl Iterator<Item = &str> {
        self.issuers.keys().map(String::as_str)
    }
}

impl KeyProvider for MultiIssuer {
    fn lookup(&self, issuer: Option<&str>, kid: Option<&str>, alg: &str) -> KeyLookup {
        match issuer.and_then(|i| self.issuers.get(i)) {
            Some(p) => p.lookup(issuer, kid, alg),
            None => KeyLookup::NotFound,
        }
    }

    fn refresh<'a>(&'a self, issuer: Option<&'a str>, kid: Option<&'a str>) -> BoxFuture<'a, ()> {
        match issuer.and_then(|i| self.issuers.get(i)) {
            Some(p) => p.refresh(issuer, kid),
            None => Box::pin(std::future::ready(())),
        }
    }

    fn needs_issuer(&self) -> bool {
        true
    }

    fn readiness(&self) -> Result<(), String> {
        let problems: Vec<String> = self
            .issuers
            .iter()
            .filter_map(|(iss, p)| p.readiness().err().map(|e| format!("{iss}: {e}")))
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}
