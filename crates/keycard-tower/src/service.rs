//! The [`JwtAuthService`] that [`crate::JwtAuth`] produces.

use std::task::{Context, Poll};

use http::{Request, Response};
use keycard_core::{Admission, Admitted, AuthMode, Verifier};
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::rejection::Rejection;

/// Authenticates each request, then calls the inner service or answers with
/// the rejection. Never returns an error of its own.
#[derive(Debug, Clone)]
pub struct JwtAuthService<S, R> {
    pub(crate) inner: S,
    pub(crate) verifier: Verifier,
    pub(crate) mode: AuthMode,
    pub(crate) rejection: R,
}

impl<S, ReqB, ResB, R> Service<Request<ReqB>> for JwtAuthService<S, R>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone,
    R: Rejection<ResB>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqB, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        match self
            .verifier
            .admit(self.mode, req.method().as_str(), req.headers())
        {
            Admission::Done(Ok(admitted)) => {
                store(&mut req, admitted);
                ResponseFuture::inner(self.inner.call(req))
            }
            Admission::Done(Err(e)) => ResponseFuture::rejected(reject(&self.rejection, e)),
            Admission::Pending(pending) => {
                // The token names a key we do not know yet: wait for the key
                // provider, holding the readied service (clone-and-swap).
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::verifying(
                    Box::pin(pending.finish()),
                    req,
                    inner,
                    self.rejection.clone(),
                )
            }
        }
    }
}

/// Store what the core admitted in the request's extensions.
pub(crate) fn store<B>(req: &mut Request<B>, admitted: Admitted) {
    match admitted {
        Admitted::Verified(v) => {
            req.extensions_mut().insert(v);
        }
        Admitted::Anonymous(a) => {
            req.extensions_mut().insert(a);
        }
        // Future admission kinds carry nothing to store.
        #[allow(unreachable_patterns)]
        _ => {}
    }
}

/// The rejection response, with the [`keycard_core::AuthError`] in its
/// extensions, whatever rejection built it.
pub(crate) fn reject<R: Rejection<B>, B>(rejection: &R, e: keycard_core::AuthError) -> Response<B> {
    let mut res = rejection.reject(e.clone());
    res.extensions_mut().insert(e);
    res
}
