//! [`ResponseFuture`]: a small state machine — call the inner service, answer
//! a rejection, or first wait for a key refresh.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::{Request, Response};
use keycard_core::{Admitted, AuthError};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::rejection::Rejection;

type VerifyFuture = Pin<Box<dyn Future<Output = Result<Admitted, AuthError>> + Send>>;

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
            rejection: R,
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

    pub(crate) fn verifying(fut: VerifyFuture, req: Request<ReqB>, inner: S, rejection: R) -> Self {
        Self {
            state: State::Verifying {
                fut,
                req: Some(req),
                inner,
                rejection,
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
                    rejection,
                } => {
                    let result = ready!(fut.as_mut().poll(cx));
                    let mut req = req.take().expect("ResponseFuture polled after completion");
                    let next = match result {
                        Ok(admitted) => {
                            crate::service::store(&mut req, admitted);
                            State::Inner {
                                fut: inner.call(req),
                            }
                        }
                        Err(e) => State::Rejected {
                            response: Some(crate::service::reject(rejection, e)),
                        },
                    };
                    this.state.set(next);
                }
            }
        }
    }
}
