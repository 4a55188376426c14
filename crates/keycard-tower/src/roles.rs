//! [`RequireRoles`]: a layer that answers 403 `insufficient_scope` unless the
//! authenticated caller holds the required roles. Put it inside (after)
//! [`crate::JwtAuth`], e.g. on a sub-router with `route_layer`.

use std::task::{Context, Poll};

use http::{Request, Response};
use keycard_core::{AuthError, AuthState, RoleRequirement};
use tower_layer::Layer;
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::rejection::{DefaultRejection, Rejection};

/// A layer that checks roles on requests already authenticated by
/// [`crate::JwtAuth`].
#[derive(Debug, Clone)]
#[must_use]
pub struct RequireRoles<R = DefaultRejection> {
    requirement: RoleRequirement,
    rejection: R,
}

impl RequireRoles {
    /// Require at least one of `roles`.
    pub fn any_of<I, S>(roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::new(RoleRequirement::any_of(roles))
    }

    /// Require every one of `roles`.
    pub fn all_of<I, S>(roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::new(RoleRequirement::all_of(roles))
    }

    /// Require `requirement`.
    pub fn new(requirement: RoleRequirement) -> Self {
        Self {
            requirement,
            rejection: DefaultRejection,
        }
    }
}

/// Require scopes (RFC 9068 `scope`, or `scp`): `RequireScopes::any_of(["orders:read"])`
/// is a [`RequireRoles`] layer that checks the token's scopes and answers 403
/// `insufficient_scope` with `scope="…"` naming them.
#[derive(Debug, Clone, Copy)]
pub struct RequireScopes;

impl RequireScopes {
    /// Require at least one of `scopes`.
    pub fn any_of<I, S>(scopes: I) -> RequireRoles
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RequireRoles::new(RoleRequirement::scopes_any_of(scopes))
    }

    /// Require every one of `scopes`.
    pub fn all_of<I, S>(scopes: I) -> RequireRoles
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RequireRoles::new(RoleRequirement::scopes_all_of(scopes))
    }
}

impl<R> RequireRoles<R> {
    /// Answer refused requests with `rejection` instead of the default.
    pub fn with_rejection<R2>(self, rejection: R2) -> RequireRoles<R2> {
        RequireRoles {
            requirement: self.requirement,
            rejection,
        }
    }
}

impl<S, R: Clone> Layer<S> for RequireRoles<R> {
    type Service = RequireRolesService<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireRolesService {
            inner,
            requirement: self.requirement.clone(),
            rejection: self.rejection.clone(),
        }
    }
}

/// The service produced by [`RequireRoles`].
#[derive(Debug, Clone)]
pub struct RequireRolesService<S, R> {
    inner: S,
    requirement: RoleRequirement,
    rejection: R,
}

/// The role check shared by the tower and axum adapters: `Ok` when the
/// request's verified token satisfies `requirement` (or the request is a
/// CORS preflight the authentication layer let through).
pub fn check_roles(
    extensions: &http::Extensions,
    requirement: &RoleRequirement,
) -> Result<(), AuthError> {
    AuthState::new(extensions.get(), extensions.get()).guard(requirement)
}

impl<S, ReqB, ResB, R> Service<Request<ReqB>> for RequireRolesService<S, R>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    R: Rejection<ResB>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqB, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        match check_roles(req.extensions(), &self.requirement) {
            Ok(()) => ResponseFuture::inner(self.inner.call(req)),
            Err(e) => ResponseFuture::rejected(crate::service::reject(&self.rejection, e)),
        }
    }
}
