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
use keycard_core::adapter::PreparedClaims;
use keycard_core::{AuthError, AuthState, SessionError, Verified};
use serde::de::DeserializeOwned;

pub use keycard_tower::{
    endpoint_response, error_response, DefaultRejection, JwtAuth, Rejection, RequireRoles,
    RequireScopes,
};

/// The RFC 9728 metadata route of a verifier that protects a named resource
/// ([`keycard_core::VerifierBuilder::protected_resource`]): its path and a
/// handler, for `router.route(&path, axum::routing::get(handler))`, outside
/// the authentication layer. `None` when the verifier names no resource.
///
/// ```
/// use axum::{routing::get, Router};
/// use keycard_axum::{resource_metadata, JwtAuth};
/// use keycard_core::{Key, Verifier};
///
/// let verifier = Verifier::builder()
///     .key(Key::hs256(b"an-example-secret-of-32-bytes-or-more")?)
///     .issuer("https://auth.example.com")
///     .audience("https://api.example.com/mcp")
///     .protected_resource("https://api.example.com/mcp")?
///     .build()?;
/// let (path, handler) = resource_metadata(&verifier).expect("a named resource");
/// let app: Router = Router::new()
///     .route("/mcp", get(|| async { "ok" }))
///     .layer(JwtAuth::new(verifier))
///     .route(&path, get(handler));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn resource_metadata(
    verifier: &keycard_core::Verifier,
) -> Option<(
    String,
    impl Fn() -> std::future::Ready<Response> + Clone + Send + Sync + 'static,
)> {
    let metadata = std::sync::Arc::new(verifier.resource_metadata()?.clone());
    let path = metadata.path().to_owned();
    Some((path, move || {
        std::future::ready(keycard_tower::resource_metadata_response::<
            axum_core::body::Body,
        >(&metadata))
    }))
}

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

/// A [`SessionError`] as a response: the core's one status table (400
/// `invalid_grant`, 503 when a store is down, 500 when signing failed) and
/// the RFC 6749 §5.2 JSON body. Handlers return `Result<_, SessionRejection>`
/// and use `?` on session calls.
///
/// (A newtype because neither `SessionError` nor `IntoResponse` is this
/// crate's own.)
#[derive(Debug)]
pub struct SessionRejection(pub SessionError);

keycard_core::rejection_newtype!(AuthRejection, AuthError);
keycard_core::rejection_newtype!(SessionRejection, SessionError);

impl IntoResponse for SessionRejection {
    fn into_response(self) -> Response {
        endpoint_response(keycard_core::EndpointResponse::from(&self.0))
    }
}

/// What the layer left in the request (the decision lives in the core).
fn state(parts: &Parts) -> AuthState<'_> {
    AuthState::new(parts.extensions.get(), parts.extensions.get())
}

/// The claims of `v`: what a typed layer ([`JwtAuth::claims`]) already
/// deserialized for this verification, or else `v`'s payload now.
fn claims_of<T>(prepared: Option<PreparedClaims<T>>, v: &Verified) -> Result<T, AuthRejection>
where
    T: DeserializeOwned,
{
    match prepared.and_then(|p| p.take_for(v)) {
        Some(claims) => Ok(claims),
        None => v.claims().map_err(AuthRejection),
    }
}

impl<T, S> FromRequestParts<S> for Claims<T>
where
    T: DeserializeOwned + Send + Sync + 'static,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let prepared = parts.extensions.remove::<PreparedClaims<T>>();
        let v = state(parts).required().map_err(AuthRejection)?;
        claims_of(prepared, v).map(Claims)
    }
}

impl<T, S> OptionalFromRequestParts<S> for Claims<T>
where
    T: DeserializeOwned + Send + Sync + 'static,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        let prepared = parts.extensions.remove::<PreparedClaims<T>>();
        match state(parts).optional().map_err(AuthRejection)? {
            Some(v) => claims_of(prepared, v).map(|c| Some(Claims(c))),
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::extract::FromRequestParts;
    use axum::response::IntoResponse;
    use http::Request;
    use keycard_core::adapter::Anonymous;
    use keycard_core::{AuthErrorKind, Key, SigningKey, TokenIssuer, TokenType, Verifier};

    use super::*;

    const SECRET: &[u8] = b"axum-unit-test-secret-0123456789abcdef!!";

    #[derive(serde::Deserialize, Debug)]
    struct Mine {
        sub: String,
        level: u8,
    }

    async fn verified(claims: serde_json::Value) -> Verified {
        let token = TokenIssuer::builder(SigningKey::hs256(SECRET).unwrap())
            .audience("api")
            .build()
            .unwrap()
            .issue(TokenType::Access, "alice", None, &claims)
            .unwrap()
            .token;
        Verifier::builder()
            .key(Key::hs256(SECRET).unwrap())
            .audience("api")
            .build()
            .unwrap()
            .verify(&token)
            .await
            .unwrap()
    }

    fn parts_with(ext: impl FnOnce(&mut http::Extensions)) -> http::request::Parts {
        let (mut parts, ()) = Request::get("/").body(()).unwrap().into_parts();
        ext(&mut parts.extensions);
        parts
    }

    #[tokio::test]
    async fn claims_come_from_what_the_layer_left() {
        let v = verified(serde_json::json!({"level": 3})).await;
        let mut parts = parts_with(|e| {
            e.insert(v);
        });
        let Claims(mine) =
            <Claims<Mine> as FromRequestParts<()>>::from_request_parts(&mut parts, &())
                .await
                .unwrap();
        assert_eq!((mine.sub.as_str(), mine.level), ("alice", 3));
        // Claims that do not fit the type: 401 invalid_token, no value quoted.
        let v = verified(serde_json::json!({"level": "SECRET-LEVEL"})).await;
        let mut parts = parts_with(|e| {
            e.insert(v);
        });
        let err = <Claims<Mine> as FromRequestParts<()>>::from_request_parts(&mut parts, &())
            .await
            .unwrap_err();
        assert_eq!(err.0.kind(), AuthErrorKind::InvalidClaimType);
        assert!(!err.to_string().contains("SECRET-LEVEL"));
        assert!(!format!("{:?}", err.0.detail()).contains("SECRET-LEVEL"));
    }

    #[tokio::test]
    async fn anonymous_and_missing_layer_are_told_apart() {
        let mut anon = parts_with(|e| {
            e.insert(Anonymous::new(Arc::from("keycard")));
        });
        let err = <Authenticated as FromRequestParts<()>>::from_request_parts(&mut anon, &())
            .await
            .unwrap_err();
        assert_eq!(err.into_response().status(), 401);
        let mut nothing = parts_with(|_| {});
        let err = <Authenticated as FromRequestParts<()>>::from_request_parts(&mut nothing, &())
            .await
            .unwrap_err();
        assert_eq!(err.0.kind(), AuthErrorKind::LayerMissing);
        assert_eq!(err.into_response().status(), 500);
    }

    #[test]
    fn rejections_are_errors_and_convert_from_the_core_ones() {
        fn handler() -> Result<(), AuthRejection> {
            Err(AuthError::new(AuthErrorKind::Expired))?;
            Ok(())
        }
        let e = handler().unwrap_err();
        let as_error: &dyn std::error::Error = &e;
        assert!(!as_error.to_string().is_empty());
        let res = e.into_response();
        assert_eq!(res.status(), 401);
        assert!(res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token"));
        assert!(res.extensions().get::<AuthError>().is_some());
    }
}
