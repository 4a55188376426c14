//! The [`JwtAuth`] layer.

use keycard_core::{AuthMode, Verifier};
use tower_layer::Layer;

use crate::rejection::DefaultRejection;
use crate::service::JwtAuthService;

/// A tower [`Layer`] that authenticates every request with a [`Verifier`].
///
/// A verified request carries a [`keycard_core::Verified`] in its
/// extensions; a refused one is answered by the rejection (401/400/403/503)
/// without reaching the inner service. Cheap to clone.
#[derive(Debug, Clone)]
#[must_use]
pub struct JwtAuth<R = DefaultRejection> {
    pub(crate) verifier: Verifier,
    pub(crate) mode: AuthMode,
    pub(crate) rejection: R,
}

impl JwtAuth {
    /// Require a valid token on every request.
    pub fn new(verifier: impl Into<Verifier>) -> Self {
        Self {
            verifier: verifier.into(),
            mode: AuthMode::Required,
            rejection: DefaultRejection,
        }
    }
}

impl<R> JwtAuth<R> {
    /// Let requests without any token through as anonymous (a
    /// [`keycard_core::Verified`] is then absent); a bad token is still
    /// refused.
    pub fn optional(mut self) -> Self {
        self.mode = AuthMode::Optional;
        self
    }

    /// Answer refused requests with `rejection` instead of the default.
    pub fn with_rejection<R2>(self, rejection: R2) -> JwtAuth<R2> {
        JwtAuth {
            verifier: self.verifier,
            mode: self.mode,
            rejection,
        }
    }

    /// The verifier.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }
}

impl<S, R: Clone> Layer<S> for JwtAuth<R> {
    type Service = JwtAuthService<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        JwtAuthService {
            inner,
            verifier: self.verifier.clone(),
            mode: self.mode,
            rejection: self.rejection.clone(),
        }
    }
}
