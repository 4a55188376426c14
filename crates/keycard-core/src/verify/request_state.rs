//! What an authentication layer leaves in a request: the mode, the
//! anonymous marker and the one decision between verified, anonymous and
//! "no layer ran".

use std::sync::Arc;

use crate::error::{AuthError, AuthErrorKind};

use super::*;

/// Whether a request without credentials may pass (as anonymous).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AuthMode {
    /// Every request needs a valid token (default).
    #[default]
    Required,
    /// A request without any token passes as anonymous; a request with a bad
    /// token is still refused.
    Optional,
}

impl AuthMode {
    /// Apply the mode to an authentication result: `Ok(None)` is anonymous.
    pub fn apply(self, result: Result<Verified, AuthError>) -> Result<Option<Verified>, AuthError> {
        match result {
            Ok(v) => Ok(Some(v)),
            Err(e) if self == Self::Optional && e.kind() == AuthErrorKind::Missing => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The marker an adapter stores for a request that passed an optional
/// authentication layer without any token.
#[derive(Debug, Clone)]
pub struct Anonymous {
    pub(crate) realm: Arc<str>,
    pub(crate) resource_metadata: Option<Arc<str>>,
    pub(crate) preflight: bool,
}

impl Anonymous {
    /// A marker for a layer whose challenges use `realm`.
    pub fn new(realm: Arc<str>) -> Self {
        Self {
            realm,
            resource_metadata: None,
            preflight: false,
        }
    }

    /// The marker of a CORS preflight let through (see
    /// [`Verifier::admit`]): role and scope guards let it pass on to the
    /// CORS layer too; extractors still see an anonymous request.
    pub fn preflight(realm: Arc<str>) -> Self {
        Self {
            realm,
            resource_metadata: None,
            preflight: true,
        }
    }

    /// The same marker, whose challenges name the resource metadata.
    #[must_use]
    pub(crate) fn with_resource_metadata(mut self, url: Option<Arc<str>>) -> Self {
        self.resource_metadata = url;
        self
    }

    /// Whether this is a CORS preflight let through.
    pub fn is_preflight(&self) -> bool {
        self.preflight
    }

    /// The error for a handler that needs a token on an anonymous request:
    /// 401 with a bare challenge.
    pub fn missing(&self) -> AuthError {
        AuthError::new(AuthErrorKind::Missing)
            .with_realm(self.realm.clone())
            .with_resource_metadata(self.resource_metadata.clone())
    }
}

/// What an authentication layer left in a request's extensions. This is the
/// one place that decides between "verified", "anonymous" (an optional
/// layer let a request without a token through) and "no layer ran", so
/// every adapter's extractors and role checks answer alike.
#[derive(Debug, Clone, Copy)]
pub struct AuthState<'a> {
    pub(crate) verified: Option<&'a Verified>,
    pub(crate) anonymous: Option<&'a Anonymous>,
}

impl<'a> AuthState<'a> {
    /// The state from the two extension values a layer may have inserted.
    pub fn new(verified: Option<&'a Verified>, anonymous: Option<&'a Anonymous>) -> Self {
        Self {
            verified,
            anonymous,
        }
    }

    /// `Ok(Some)` verified, `Ok(None)` anonymous, `Err` (500) when no
    /// authentication layer ran.
    pub fn optional(self) -> Result<Option<&'a Verified>, AuthError> {
        match (self.verified, self.anonymous) {
            (Some(v), _) => Ok(Some(v)),
            (None, Some(_)) => Ok(None),
            (None, None) => Err(AuthError::new(AuthErrorKind::LayerMissing)
                .with_detail("no keycard JwtAuth layer or middleware ran for this request")),
        }
    }

    /// The verified token, or 401 (bare challenge) for an anonymous request,
    /// or 500 when no authentication layer ran.
    pub fn required(self) -> Result<&'a Verified, AuthError> {
        match (self.optional()?, self.anonymous) {
            (Some(v), _) => Ok(v),
            (None, Some(anon)) => Err(anon.missing()),
            (None, None) => Err(AuthErrorKind::LayerMissing.into()),
        }
    }

    /// What a role or scope guard layer decides: pass a CORS preflight that
    /// the authentication layer let through (so that a CORS layer further
    /// in answers it), otherwise [`AuthState::require`].
    pub fn guard(self, requirement: &crate::RoleRequirement) -> Result<(), AuthError> {
        if self.verified.is_none() && self.anonymous.is_some_and(Anonymous::is_preflight) {
            return Ok(());
        }
        self.require(requirement).map(|_| ())
    }

    /// [`AuthState::required`], then the role check (403 `insufficient_scope`).
    pub fn require(self, requirement: &crate::RoleRequirement) -> Result<&'a Verified, AuthError> {
        let v = self.required()?;
        requirement.check(v)?;
        Ok(v)
    }
}

#[cfg(test)]
mod auth_state_tests {
    use super::*;

    #[test]
    pub(crate) fn the_three_states() {
        let anon = Anonymous::new(Arc::from("r"));
        assert!(matches!(
            AuthState::new(None, Some(&anon)).optional(),
            Ok(None)
        ));
        let e = AuthState::new(None, Some(&anon)).required().unwrap_err();
        assert_eq!((e.kind(), e.status()), (AuthErrorKind::Missing, 401));
        assert_eq!(e.www_authenticate().unwrap(), "Bearer realm=\"r\"");
        let e = AuthState::new(None, None).optional().unwrap_err();
        assert_eq!((e.kind(), e.status()), (AuthErrorKind::LayerMissing, 500));
        let req = crate::RoleRequirement::any_of(["admin"]);
        assert_eq!(
            AuthState::new(None, None)
                .require(&req)
                .unwrap_err()
                .status(),
            500
        );
        assert_eq!(
            AuthState::new(None, Some(&anon))
                .require(&req)
                .unwrap_err()
                .status(),
            401
        );
    }
}
