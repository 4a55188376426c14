//! # keycard
//!
//! JWT authentication for tower, axum and actix-web: the front desk issues
//! tokens, the card is a signed JWT, and the door lock checks it on every
//! request. Secure by default: one algorithm pinned per key (never taken from
//! the token), `exp` required, `iss`/`aud` enforced once configured, bounded
//! input, access and refresh tokens never interchangeable, RFC 6750 errors.
//!
//! Verify a token and read its claims:
//!
//! ```
//! use keycard::{Key, SigningKey, TokenIssuer, Verifier};
//!
//! #[derive(serde::Deserialize)]
//! struct Me { sub: String, roles: Vec<String> }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let secret = b"an-example-secret-of-32-bytes-or-more";
//! // The front desk mints a token ...
//! let issuer = TokenIssuer::builder(SigningKey::hs256(secret)?).audience("my-api").build()?;
//! let token = issuer.access_token("alice", &serde_json::json!({"roles": ["admin"]}))?;
//! // ... and the door lock checks it.
//! let verifier = Verifier::builder().key(Key::hs256(secret)?).audience("my-api").build()?;
//! let verified = verifier.verify(&token).await?;
//! let me: Me = verified.claims()?;
//! assert_eq!((me.sub.as_str(), me.roles[0].as_str()), ("alice", "admin"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! Protect an axum route (the same layer serves plain tower; actix-web has
//! its own middleware in [`actix`]):
//!
//! ```
//! use axum::{body::Body, http::{Request, StatusCode}, routing::get, Router};
//! use keycard::axum::{Claims, JwtAuth};
//! use keycard::{Key, Verifier};
//! use tower::ServiceExt;
//!
//! #[derive(serde::Deserialize)]
//! struct Me { sub: String }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let verifier = Verifier::builder()
//!     .key(Key::hs256(b"an-example-secret-of-32-bytes-or-more")?)
//!     .audience("my-api")
//!     .build()?;
//! let app = Router::new()
//!     .route("/me", get(|Claims(me): Claims<Me>| async move { me.sub }))
//!     .layer(JwtAuth::new(verifier));
//!
//! let res = app.oneshot(Request::get("/me").body(Body::empty())?).await?;
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! ## Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `aws-lc-rs` | yes | the aws-lc-rs crypto backend (fast) |
//! | `rust-crypto` | no | the pure-Rust RustCrypto backend; if both are on, aws-lc-rs is used |
//! | `tower` | yes | `tower`: the `JwtAuth` layer and `RequireRoles` |
//! | `axum` | yes | `axum`: the `Claims<T>` extractor (implies `tower`) |
//! | `jwks` | yes | remote JWKS key sets and OIDC discovery (`RemoteJwks`) |
//! | `toml` | yes | `VerifierConfig` from TOML files (`KEYCARD_CONFIG`) |
//! | `actix` | no | `actix`: middleware, extractor and role guards for actix-web |
//! | `redis` | no | `redis`: revocation, refresh and DPoP replay stores shared by a cluster |
//! | `introspection` | no | RFC 7662 token introspection: opaque tokens behind the same layer |
//! | `cache` | no | the opt-in verified-token cache (`VerifierBuilder::cache_verified_tokens`) |
//! | `testing` | no | `testing::TestKit` (and `redis::testing` with `redis`), for your tests |

#![cfg_attr(docsrs, feature(doc_cfg))]

#[doc(inline)]
pub use keycard_core::*;

/// The tower adapter (feature `tower`).
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower {
    #[doc(inline)]
    pub use keycard_tower::*;
}

/// The axum adapter (feature `axum`).
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum {
    #[doc(inline)]
    pub use keycard_axum::*;
}

/// Redis-backed stores for clusters (feature `redis`).
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis {
    #[doc(inline)]
    pub use keycard_redis::*;
}

/// The actix-web adapter (feature `actix`).
#[cfg(feature = "actix")]
#[cfg_attr(docsrs, doc(cfg(feature = "actix")))]
pub mod actix {
    #[doc(inline)]
    pub use keycard_actix::*;
}

/// The README's code blocks, compiled and run as doctests (with the
/// features they use).
#[cfg(all(doctest, feature = "actix", feature = "redis", feature = "testing"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
