//! The [`JwtAuthService`] that [`crate::JwtAuth`] produces.

use std::task::{Context, Poll};

use http::{Request, Response};
use keycard_core::{Anonymous, Attempt, AuthMode, Verifier};
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
        let result = match self
            .verifier
            .authenticate_now(req.method().as_str(), req.headers())
        {
            Attempt::Done(result) => result,
            Attempt::Pending(pending) => {
                // The token names a key we do not know yet: wait for the key
                // provider, holding the readied service (clone-and-swap).
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                return ResponseFuture::verifying(
                    Box::pin(pending.finish()),
                    req,
                    inner,
                    self.mode,
                    self.rejection.clone(),
                    self.verifier.realm().clone(),
                );
            }
        };
        match self.mode.apply(result) {
            Ok(Some(verified)) => {
                req.extensions_mut().insert(verified);
                ResponseFuture::inner(self.inner.call(req))
            }
            Ok(None) => {
                req.extensions_mut()
                    .insert(Anonymous::new(self.verifier.realm().clone()));
                ResponseFuture::inner(self.inner.call(req))
            }
            Err(e) => ResponseFuture::rejected(self.rejection.reject(e)),
        }
    }
}
