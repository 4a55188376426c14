//! gRPC through tonic: a tonic server behind `keycard::tower::JwtAuth` and
//! `RequireRoles` with the ready-made `GrpcRejection`, called by tonic's own
//! client. Refusals are `UNAUTHENTICATED` / `PERMISSION_DENIED` with a proper
//! `grpc-status`; claims reach the handler through the request extensions.

mod common;
/// The example's greeter service (one definition for both).
#[path = "../examples/common/greeter.rs"]
mod greeter;

use common::*;
use greeter::{Greeter, Hello};
use http::uri::PathAndQuery;
use keycard::tower::{GrpcRejection, JwtAuth, RequireRoles};
use tonic::{Code, Request, Status};
use tonic_prost::ProstCodec;

/// A tonic server on a free port, with `layers` around the service.
async fn serve(admin_only: bool) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = futures_util::stream::unfold(listener, |l| async move {
        let next = l.accept().await.map(|(s, _)| s);
        Some((next, l))
    });
    let auth = JwtAuth::new(verifier()).with_rejection(GrpcRejection);
    tokio::spawn(async move {
        let mut builder = tonic::transport::Server::builder().layer(auth);
        if admin_only {
            builder
                .layer(RequireRoles::any_of(["admin"]).with_rejection(GrpcRejection))
                .add_service(Greeter)
                .serve_with_incoming(incoming)
                .await
        } else {
            builder
                .add_service(Greeter)
                .serve_with_incoming(incoming)
                .await
        }
        .unwrap()
    });
    format!("http://{addr}")
}

async fn greet(url: &str, path: &'static str, token: Option<&str>) -> Result<String, Status> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.unwrap();
    let mut req = Request::new(Hello {
        name: "grpc".into(),
    });
    if let Some(t) = token {
        req.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    client
        .unary::<Hello, Hello, _>(req, PathAndQuery::from_static(path), ProstCodec::default())
        .await
        .map(|r| r.into_inner().name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonic_behind_jwt_auth_and_require_roles() {
    let url = serve(false).await;
    let admin_url = serve(true).await;
    let alice = access("alice", &["user"]);
    let root = access("root", &["user", "admin"]);

    let ok = greet(&url, "/demo.Greeter/Greet", Some(&alice))
        .await
        .unwrap();
    assert_eq!(ok, "hello grpc, from alice");

    let none = greet(&url, "/demo.Greeter/Greet", None).await.unwrap_err();
    assert_eq!(none.code(), Code::Unauthenticated);
    assert!(none
        .metadata()
        .get("www-authenticate")
        .is_some_and(|v| v.to_str().unwrap().starts_with("Bearer")));
    let bad = greet(&url, "/demo.Greeter/Greet", Some("a.b.c"))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::Unauthenticated);
    assert!(!bad.message().contains("a.b.c"));

    let denied = greet(&admin_url, "/demo.Greeter/Greet", Some(&alice))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let admin = greet(&admin_url, "/demo.Greeter/Greet", Some(&root))
        .await
        .unwrap();
    assert_eq!(admin, "hello grpc, from root");
}
