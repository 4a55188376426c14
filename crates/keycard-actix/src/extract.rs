//! The [`Claims<T>`] and [`Authenticated`] extractors.

use std::future::{ready, Ready};
use std::ops::{Deref, DerefMut};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use keycard_core::{AuthError, AuthState, Verified};
use serde::de::DeserializeOwned;

/// The verified claims of the request's token, deserialized into `T`.
///
/// For optional authentication take [`OptionalClaims<T>`], not
/// `Option<Claims<T>>`: actix-web's blanket `Option<T>` extractor turns
/// every error into `None`, so a forgotten middleware (a 500 elsewhere) or
/// claims that do not fit `T` (a 401) would read as "anonymous".
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

/// The whole [`Verified`] token. For optional authentication take
/// [`OptionalAuthenticated`] (see [`Claims`] for why not `Option<_>`).
#[derive(Debug, Clone)]
pub struct Authenticated(pub Verified);

/// The claims of the request's token, or `None` when an optional
/// middleware ([`crate::JwtAuth::optional`]) let a request without any
/// token through. The same semantics as axum's `Option<Claims<T>>`: a
/// missing middleware is still a 500 and claims that do not fit `T` are
/// still a 401, never `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OptionalClaims<T>(pub Option<T>);

/// The verified token, or `None` for an anonymous request let through by
/// an optional middleware; errors stay errors (see [`OptionalClaims`]).
#[derive(Debug, Clone, Default)]
pub struct OptionalAuthenticated(pub Option<Verified>);

impl Deref for Authenticated {
    type Target = Verified;
    fn deref(&self) -> &Verified {
        &self.0
    }
}

/// The error of keycard's extractors, answered with the core's status and
/// challenge.
#[derive(Debug, Clone)]
pub struct AuthRejection(pub AuthError);

/// A [`keycard_core::SessionError`] as an actix-web error: the core's one
/// status table and RFC 6749 §5.2 JSON body. Handlers return
/// `Result<_, SessionRejection>` and use `?` on session calls.
#[derive(Debug)]
pub struct SessionRejection(pub keycard_core::SessionError);

keycard_core::rejection_newtype!(AuthRejection, AuthError);
keycard_core::rejection_newtype!(SessionRejection, keycard_core::SessionError);

impl ResponseError for SessionRejection {
    fn status_code(&self) -> actix_web::http::StatusCode {
        actix_web::http::StatusCode::from_u16(self.0.status())
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        crate::endpoint_response(keycard_core::EndpointResponse::from(&self.0))
    }
}

impl ResponseError for AuthRejection {
    fn status_code(&self) -> actix_web::http::StatusCode {
        actix_web::http::StatusCode::from_u16(self.0.status())
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        crate::error_response(&self.0)
    }
}

/// What the middleware left in the request (the decision lives in the core).
fn verified(req: &HttpRequest) -> Result<Verified, AuthError> {
    let ext = req.extensions();
    AuthState::new(ext.get(), ext.get())
        .required()
        .cloned()
        .inspect_err(|e| {
            if e.kind() == keycard_core::AuthErrorKind::LayerMissing {
                // Loud, because actix-web's `Option<_>` would swallow it.
                tracing::error!(
                    path = req.path(),
                    "keycard: no JwtAuth middleware ran for this request; if the handler takes \
                     Option<Claims<_>>, actix-web turned this 500 into None: use OptionalClaims"
                );
            }
        })
}

fn optional(req: &HttpRequest) -> Result<Option<Verified>, AuthError> {
    let ext = req.extensions();
    AuthState::new(ext.get(), ext.get())
        .optional()
        .map(|v| v.cloned())
}

/// The claims of `v`: what a typed middleware ([`crate::JwtAuth::claims`])
/// already deserialized for this verification, or else `v`'s payload now.
fn claims_of<T: DeserializeOwned + 'static>(
    req: &HttpRequest,
    v: &Verified,
) -> Result<T, AuthError> {
    let prepared = req
        .extensions_mut()
        .remove::<keycard_core::adapter::PreparedClaims<T>>();
    match prepared.and_then(|p| p.take_for(v)) {
        Some(claims) => Ok(claims),
        None => v.claims(),
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Claims<T> {
    type Error = AuthRejection;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            verified(req)
                .and_then(|v| claims_of(req, &v).map(Claims))
                .map_err(AuthRejection),
        )
    }
}

impl FromRequest for Authenticated {
    type Error = AuthRejection;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(verified(req).map(Authenticated).map_err(AuthRejection))
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for OptionalClaims<T> {
    type Error = AuthRejection;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            optional(req)
                .and_then(|v| v.map(|v| claims_of(req, &v)).transpose())
                .map(OptionalClaims)
                .map_err(AuthRejection),
        )
    }
}

impl FromRequest for OptionalAuthenticated {
    type Error = AuthRejection;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            optional(req)
                .map(OptionalAuthenticated)
                .map_err(AuthRejection),
        )
    }
}
