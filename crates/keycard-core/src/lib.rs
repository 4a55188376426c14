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
//! Modules:
//! - token sources ([`TokenSource`], [`RequestHeaders`]),
//! - keys ([`Key`], [`KeySet`], [`KeyProvider`]),
//! - verification ([`Verifier`], [`Verified`]),
//! - errors ([`AuthError`], [`ConfigError`]),
//! - roles ([`RoleRequirement`]),
//! - issuing ([`TokenIssuer`], [`SigningKey`]),
//! - revocation ([`RevocationStore`], [`InMemoryRevocationStore`]),
//! - sessions with refresh rotation ([`Sessions`], [`RefreshStore`]),
//! - cookies ([`CookieSettings`]) and CSRF ([`csrf`]).

mod admit;
#[cfg(feature = "aws-lc-rs")]
mod aws_lc;
mod b64;
mod cache;
pub mod clock;
pub mod config;
mod cookies;
pub mod csrf;
mod error;
mod issue;
mod json;
#[cfg(feature = "jwks")]
pub mod jwks;
mod key;
mod key_ring;
pub mod observe;
mod parse;
pub mod profile;
mod revocation;
mod roles;
mod session;
mod source;
pub mod testing;
mod verify;

pub use admit::{Admission, Admitted, PendingAdmission};
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
pub use key::{BoxFuture, Key, KeyLookup, KeyProvider, KeySet, MultiIssuer};
pub use key_ring::{
    KeyRing, KeyRingBuilder, RotationPlan, DEFAULT_MAX_KEYS, DEFAULT_PROPAGATION_DELAY,
    DEFAULT_RETENTION,
};
pub use profile::{Profile, TokenMarker};
pub use revocation::{
    Denylist, EntryKind, InMemoryRevocationStore, RevocationEntry, RevocationStore, StoreError,
    TokenFacts, REVOCATION_GRACE,
};
pub use roles::{ClaimPath, RoleClaim, RoleRequirement};
pub use session::{
    Committed, EndpointResponse, InMemoryRefreshStore, NewFamily, RefreshHook, RefreshInput,
    RefreshStore, RotateRequest, Rotation, SessionError, Sessions, SessionsBuilder, TokenPair,
    UserStatus, DEFAULT_MAX_SESSIONS_PER_SUBJECT,
};
pub use source::{Found, RequestHeaders, TokenSource, DEFAULT_ACCESS_COOKIE};
pub use verify::{
    Anonymous, Attempt, AuthMode, AuthState, PendingVerification, Readiness, RegisteredClaims,
    TokenType, Verified, Verifier, VerifierBuilder, DEFAULT_LEEWAY, DEFAULT_MAX_LIFETIME,
    DEFAULT_MAX_TOKEN_BYTES, MAX_LEEWAY,
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
