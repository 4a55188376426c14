//! The framework-neutral core of keycard: find one token in a request's
//! headers, verify it, and return a [`Verified`] token or an [`AuthError`]
//! that already knows its HTTP status and RFC 6750 challenge.
//!
//! ```
//! use keycard_core::{AuthErrorKind, Key, SigningKey, TokenIssuer, TokenType, Verifier};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let secret = b"an-example-secret-of-32-bytes-or-more";
//! let issuer = TokenIssuer::builder(SigningKey::hs256(secret)?)
//!     .issuer("auth")
//!     .audience("api")
//!     .build()?;
//! let verifier = Verifier::builder()
//!     .key(Key::hs256(secret)?)
//!     .issuer("auth")
//!     .audience("api")
//!     .build()?;
//!
//! let token = issuer.issue(TokenType::Access, "alice", None, &serde_json::json!({"roles": ["admin"]}))?;
//! let bearer = format!("Bearer {}", token.token);
//! let headers: &[(&str, &str)] = &[("authorization", bearer.as_str())];
//! let verified = verifier.authenticate("GET", headers).await?;
//! assert_eq!(verified.subject(), Some("alice"));
//! assert!(verified.has_role("admin"));
//!
//! // No credentials: 401 with a bare challenge.
//! let err = verifier.authenticate("GET", &[][..]).await.unwrap_err();
//! assert_eq!(err.kind(), AuthErrorKind::Missing);
//! assert_eq!(err.status(), 401);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! What you use, at the root:
//! - token sources ([`TokenSource`]),
//! - keys ([`Key`], [`KeySet`], [`KeyProvider`], [`KeyRing`], remote ones in
//!   `jwks`),
//! - verification ([`Verifier`], [`Verified`]),
//! - errors ([`AuthError`], [`ConfigError`]),
//! - roles ([`RoleRequirement`]),
//! - issuing ([`TokenIssuer`], [`SigningKey`]),
//! - revocation ([`RevocationStore`], [`InMemoryRevocationStore`]),
//! - sessions with refresh rotation ([`Sessions`], [`RefreshStore`]),
//! - cookies ([`CookieSettings`]) and CSRF ([`csrf`]),
//! - configuration without code ([`VerifierConfig`]), metrics and logs
//!   ([`observe`]).
//!
//! What you implement against, in modules: [`adapter`] (a framework
//! adapter), [`keys`] (a key source), [`stores`] (a revocation or refresh
//! store).

#![cfg_attr(docsrs, feature(doc_cfg))]

mod admit;
#[cfg(feature = "aws-lc-rs")]
mod aws_lc;
mod b64;
mod cache;
pub mod clock;
pub mod config;
mod cookies;
pub mod csrf;
pub mod dpop;
mod error;
#[cfg(feature = "introspection")]
#[cfg_attr(docsrs, doc(cfg(feature = "introspection")))]
pub mod introspection;
mod issue;
#[cfg(feature = "jwks")]
#[cfg_attr(docsrs, doc(cfg(feature = "jwks")))]
pub mod jwks;
mod key;
mod key_ring;
pub mod metadata;
pub mod observe;
mod parse;
pub mod profile;
mod revocation;
mod roles;
mod session;
mod source;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
mod typed;
mod verify;

pub use clock::{Clock, ManualClock, SkewedClock, SystemClock};
pub use config::VerifierConfig;
pub use cookies::{CookieSettings, DEFAULT_REFRESH_COOKIE};
pub use error::{AuthError, AuthErrorKind, ConfigError, DEFAULT_REALM};
pub use issue::{
    random_id, IssueError, IssuedToken, SigningKey, TokenIssuer, TokenIssuerBuilder,
    DEFAULT_ACCESS_TTL, DEFAULT_REFRESH_TTL, DEFAULT_SESSION_TTL,
};
pub use jsonwebtoken::jwk;
pub use jsonwebtoken::Algorithm;
pub use key::{Key, KeyProvider, KeySet, MultiIssuer};
pub use key_ring::{
    KeyRing, KeyRingBuilder, RotationPlan, DEFAULT_MAX_KEYS, DEFAULT_PROPAGATION_DELAY,
    DEFAULT_RETENTION,
};
pub use profile::{Profile, TokenMarker};
pub use revocation::{InMemoryRevocationStore, RevocationStore, StoreError, REVOCATION_GRACE};
pub use roles::{ClaimPath, RoleClaim, RoleRequirement};
pub use session::{
    EndpointResponse, InMemoryRefreshStore, RefreshHook, RefreshStore, SessionError, Sessions,
    SessionsBuilder, TokenPair, UserStatus, DEFAULT_MAX_SESSIONS_PER_SUBJECT,
};
pub use source::{Found, RequestHeaders, TokenSource, DEFAULT_ACCESS_COOKIE};
pub use verify::{
    Readiness, RegisteredClaims, TokenType, Verified, Verifier, VerifierBuilder, DEFAULT_LEEWAY,
    DEFAULT_MAX_LIFETIME, DEFAULT_MAX_TOKEN_BYTES, MAX_LEEWAY,
};

/// For authors of framework adapters (keycard's own tower, axum and actix
/// crates use exactly this): the one call per request
/// ([`Verifier::admit`]), what it leaves in the request, and the one place
/// that reads it back ([`adapter::AuthState`]).
pub mod adapter {
    pub use crate::admit::{
        Admission, Admitted, BodyHint, PendingAdmission, PreparedClaims, Target,
    };
    pub use crate::source::{Found, RequestHeaders, WithAuthority};
    pub use crate::verify::{Anonymous, Attempt, AuthMode, AuthState, PendingVerification};
}

/// For authors of key sources: what a [`KeyProvider`] answers and returns.
pub mod keys {
    pub use crate::key::{BoxFuture, Key, KeyLookup, KeyProvider, KeySet, MultiIssuer};
}

/// For authors of revocation and refresh stores (keycard-redis implements
/// these): the denylist, what a store is asked, and what it answers.
pub mod stores {
    pub use crate::key::BoxFuture;
    pub use crate::revocation::{
        Denylist, EntryKind, InMemoryRevocationStore, RevocationEntry, RevocationStore, StoreError,
        TokenFacts, REVOCATION_GRACE,
    };
    pub use crate::session::{
        Committed, InMemoryRefreshStore, NewFamily, RefreshInput, RefreshStore, RotateRequest,
        Rotation,
    };
}

// The same items at the root, for code written before the modules above
// existed; hidden from the documentation.
#[doc(hidden)]
pub use adapter::{
    Admission, Admitted, Anonymous, Attempt, AuthMode, AuthState, PendingAdmission,
    PendingVerification,
};
#[doc(hidden)]
pub use keys::{BoxFuture, KeyLookup};
#[doc(hidden)]
pub use stores::{
    Committed, Denylist, EntryKind, NewFamily, RefreshInput, RevocationEntry, RotateRequest,
    Rotation, TokenFacts,
};

/// Select jsonwebtoken's crypto backend for this process (aws-lc-rs when
/// both backend features are enabled). keycard calls it whenever it builds a
/// key; call it yourself before using `jsonwebtoken` directly in a process
/// where feature unification enabled both backends, or jsonwebtoken panics.
pub fn ensure_crypto_backend() -> Result<(), ConfigError> {
    key::ensure_crypto()
}

/// Seconds since the Unix epoch, as used in `exp`, `nbf` and `iat`.
pub fn unix_now() -> i64 {
    verify::now_secs()
}
