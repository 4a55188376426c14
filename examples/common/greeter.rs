//! The gRPC greeter of the `grpc_server` example and of `tests/grpc.rs`:
//! `service Greeter { rpc Greet (Hello) returns (Hello); }` with
//! `message Hello { string name = 1; }`, written as prost/tonic would
//! generate them (no build step). The handler reads the verified token from
//! the request extensions.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::task::{Context, Poll};

use keycard::Verified;
use tonic::body::Body;
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

/// `message Hello { string name = 1; }`
#[derive(Clone, PartialEq, prost::Message)]
pub struct Hello {
    #[prost(string, tag = "1")]
    pub name: String,
}

#[derive(Clone)]
pub struct Greeter;

impl NamedService for Greeter {
    const NAME: &'static str = "demo.Greeter";
}

#[derive(Clone)]
struct Greet;

impl UnaryService<Hello> for Greet {
    type Response = Hello;
    type Future = std::future::Ready<Result<Response<Hello>, Status>>;

    fn call(&mut self, req: Request<Hello>) -> Self::Future {
        let sub = req
            .extensions()
            .get::<Verified>()
            .and_then(|v| v.subject().map(str::to_owned))
            .unwrap_or_default();
        std::future::ready(Ok(Response::new(Hello {
            name: format!("hello {}, from {sub}", req.get_ref().name),
        })))
    }
}

impl tower::Service<http::Request<Body>> for Greeter {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Infallible>> + Send>,
    >;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        Box::pin(async move {
            let mut grpc = Grpc::new(ProstCodec::<Hello, Hello>::default());
            Ok(grpc.unary(Greet, req).await)
        })
    }
}
