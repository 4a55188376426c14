//! [`ResponseFuture`]: a small state machine — call the inner service, answer
//! a rejection, or first wait for a key refresh.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::{Request, Response};
use keycard_core::{Anonymous, AuthError, AuthMode, Verified};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::rejection::Rejection;

type VerifyFuture = Pin<Box<dyn Future<Output = Result<Verified, AuthError>> + Send>>;

pin_project! {
    /// The response future of keycard's tower services.
    pub struct ResponseFuture<S, ReqB, R>
    where
        S: Service<Request<ReqB>>,
    {
        #[pin]
        state: State<S, ReqB, R>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqB, R>
    where
        S: Service<Request<ReqB>>,
    {
        Inner { #[pin] fut: S::Future },
        Rejected { response: Option<S::Response> },
        Verifying {
            fut: VerifyFuture,
            req: Option<Request<ReqB>>,
            inner: S,
            mode: AuthMode,
            rejection: R,
            realm: Arc<str>,
        },
    }
}

impl<S, ReqB, R> ResponseFuture<S, ReqB, R>
where
    S: Service<Request<ReqB>>,
{
    pub(crate) fn inner(fut: S::Future) -> Self {
        Self {
            state: State::Inner { fut },
        }
    }

    pub(crate) fn rejected(response: S::Response) -> Self {
        Self {
            state: State::Rejected {
                response: Some(response),
            },
        }
    }

    pub(crate) fn verifying(
        fut: VerifyFuture,
        req: Request<ReqB>,
        inner: S,
        mode: AuthMode,
        rejection: R,
        realm: Arc<str>,
    ) -> Self {
        Self {
            state: State::Verifying {
                fut,
                req: Some(req),
                inner,
                mode,
                rejection,
                realm,
            },
        }
    }
}

impl<S, ReqB, ResB, R> Future for ResponseFuture<S, ReqB, R>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    R: Rejection<ResB>,
{
    type Output = Result<Response<ResB>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let mut this = self.as_mut().project();
            match this.state.as_mut().project() {
                StateProj::Inner { fut } => return fut.poll(cx),
                StateProj::Rejected { response } => {
                    let response = response
                        .take()
                        .expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(response));
                }
                StateProj::Verifying {
                    fut,
                    req,
                    inner,
                    mode,
                    rejection,
                    realm,
                } => {
                    let result = ready!(fut.as_mut().poll(cx));
                    let mut req = req.take().expect("ResponseFuture polled after completion");
                    let next = match mode.apply(result) {
                        Ok(verified) => {
                            if let Some(v) = verified {
                                req.extensions_mut().insert(v);
                            } else {
                                req.extensions_mut().insert(Anonymous::new(realm.clone()));
                            }
                            State::Inner {
                                fut: inner.call(req),
                            }
                        }
                        Err(e) => State::Rejected {
                            response: Some(rejection.reject(e)),
                        },
                    };
                    this.state.set(next);
                }
            }
        }
    }
}
