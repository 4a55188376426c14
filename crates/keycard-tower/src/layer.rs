//! The [`JwtAuth`] layer.

use keycard_core::adapter::Admission;
use keycard_core::{AuthMode, Verifier};
use serde::de::DeserializeOwned;
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
    pub(crate) prepare: Option<Prepare>,
}

/// How a typed layer decides a request and stores the claims it
/// deserialized on the way ([`JwtAuth::claims`]).
pub(crate) type Prepare = fn(
    &Verifier,
    AuthMode,
    &str,
    keycard_core::adapter::Target<'_>,
    &keycard_core::adapter::WithAuthority<'_, http::HeaderMap>,
    &mut http::Extensions,
) -> Admission;

fn prepare<T>(
    verifier: &Verifier,
    mode: AuthMode,
    method: &str,
    target: keycard_core::adapter::Target<'_>,
    headers: &keycard_core::adapter::WithAuthority<'_, http::HeaderMap>,
    extensions: &mut http::Extensions,
) -> Admission
where
    T: DeserializeOwned + Clone + Send + Sync + 'static,
{
    let (admission, prepared) = verifier.admit_request_typed::<T, _>(mode, method, target, headers);
    if let Some(prepared) = prepared {
        extensions.insert(prepared);
    }
    admission
}

impl JwtAuth {
    /// Require a valid token on every request.
    pub fn new(verifier: impl Into<Verifier>) -> Self {
        Self {
            verifier: verifier.into(),
            mode: AuthMode::Required,
            rejection: DefaultRejection,
            prepare: None,
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
            prepare: self.prepare,
        }
    }

    /// Deserialize the handlers' claims type `T` in the same walk that
    /// checks the token's payload, instead of once more in the handler's
    /// extractor: one walk over the payload per request instead of two.
    ///
    /// The decision does not change. A verified request then also carries
    /// a [`keycard_core::adapter::PreparedClaims`] in its extensions, which keycard's `Claims<T>`
    /// extractors (axum and actix-web, and [`crate::take_claims`] for plain tower)
    /// take instead of deserializing the payload again. It is absent when
    /// the token came from the verified-token cache or does not fit `T`;
    /// the extractor then deserializes as usual and reports why it does not
    /// fit. `T` is `Clone` because request extensions are.
    ///
    /// `T`'s `Deserialize` then runs in that walk, which comes before the
    /// signature check (as the untyped walk always has): the claims of a
    /// forged token are deserialized, bounded by the token size limit, and
    /// dropped. A claims type whose deserialization has side effects or
    /// can panic belongs in the default mode.
    ///
    /// ```
    /// # use keycard_core::{Key, Verifier};
    /// # use keycard_tower::JwtAuth;
    /// #[derive(Clone, serde::Deserialize)]
    /// struct MyClaims { sub: String }
    /// let verifier = Verifier::builder()
    ///     .key(Key::hs256(b"0123456789abcdef0123456789abcdef")?)
    ///     .build()?;
    /// let layer = JwtAuth::new(verifier).claims::<MyClaims>();
    /// # Ok::<(), keycard_core::ConfigError>(())
    /// ```
    pub fn claims<T>(mut self) -> Self
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        self.prepare = Some(prepare::<T>);
        self
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
            prepare: self.prepare,
        }
    }
}
