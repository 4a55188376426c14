//! axum integration for keycard: put [`JwtAuth`] on a router and take
//! [`Claims<T>`] in handlers.
//!
//! ```
//! use axum::{body::Body, http::{Request, StatusCode}, routing::get, Router};
//! use keycard_axum::{Claims, JwtAuth};
//! use keycard_core::{Key, Verifier};
//! use tower::ServiceExt;
//!
//! #[derive(serde::Deserialize)]
//! struct MyClaims { sub: String }
//!
//! async fn me(Claims(c): Claims<MyClaims>) -> String { c.sub }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let verifier = Verifier::builder()
//!     .key(Key::hs256(b"an-example-secret-of-32-bytes-or-more")?)
//!     .build()?;
//! let app = Router::new().route("/me", get(me)).layer(JwtAuth::new(verifier));
//!
//! let res = app.oneshot(Request::get("/me").body(Body::empty())?).await?;
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! `Option<Claims<T>>` is `None` when an [`JwtAuth::optional`] layer let an
//! anonymous request through; a bad token is refused by the layer before
//! any handler runs. Without the layer, the extractor answers 500 with a
//! message naming the missing layer.

#![cfg_attr(docsrs, feature(doc_cfg))]

use std::ops::{Deref, DerefMut};

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use keycard_core::{AuthError, AuthState, SessionError, Verified};
use serde::de::DeserializeOwned;

pub use keycard_tower::{
    endpoint_response, error_response, DefaultRejection, JwtAuth, Rejection, RequireRoles,
    RequireScopes,
};

/// The verified claims of the request's token, deserialized into `T`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Claims<T>(pub T);

impl<T> Deref for Claims<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for Claims<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

/// The whole [`Verified`] token (registered claims, roles, raw payload).
#[derive(Debug, Clone)]
pub struct Authenticated(pub Verified);

impl Deref for Authenticated {
    type Target = Verified;
    fn deref(&self) -> &Verified {
        &self.0
    }
}

/// The rejection of keycard's extractors: the core's status, challenge and
/// JSON body.
#[derive(Debug, Clone)]
pub struct AuthRejection(pub AuthError);

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        error_response(self.0)
    }
}

impl std::fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for AuthRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// `?` on an [`AuthError`] in a handler returning `Result<_, AuthRejection>`.
impl From<AuthError> for AuthRejection {
    fn from(e: AuthError) -> Self {
        Self(e)
    }
}

/// A [`SessionError`] as a response: the core's one status table (400
/// `invalid_grant`, 503 when a store is down, 500 when signing failed) and
/// the RFC 6749 §5.2 JSON body. Handlers return `Result<_, SessionRejection>`
/// and use `?` on session calls.
///
/// (A newtype because neither `SessionError` nor `IntoResponse` is this
/// crate's own.)
#[derive(Debug)]
pub struct SessionRejection(pub SessionError);

impl From<SessionError> for SessionRejection {
    fn from(e: SessionError) -> Self {
        Self(e)
    }
}

impl IntoResponse for SessionRejection {
    fn into_response(self) -> Response {
        endpoint_response(keycard_core::EndpointResponse::from(&self.0))
    }
}

impl std::fmt::Display for SessionRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for SessionRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// What the layer left in the request (the decision lives in the core).
fn state(parts: &Parts) -> AuthState<'_> {
    AuthState::new(parts.extensions.get(), parts.extensions.get())
}

impl<T, S> FromRequestParts<S> for Claims<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let v = state(parts).required().map_err(AuthRejection)?;
        v.claims().map(Claims).map_err(AuthRejection)
    }
}

impl<T, S> OptionalFromRequestParts<S> for Claims<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        match state(parts).optional().map_err(AuthRejection)? {
            Some(v) => v.claims().map(|c| Some(Claims(c))).map_err(AuthRejection),
            None => Ok(None),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let v = state(parts).required().map_err(AuthRejection)?;
        Ok(Authenticated(v.clone()))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Authenticated {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(state(parts)
            .optional()
            .map_err(AuthRejection)?
            .map(|v| Authenticated(v.clone())))
    }
}
