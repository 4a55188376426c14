//! A tonic gRPC server behind `keycard::tower::JwtAuth` and `RequireRoles`,
//! with `GrpcRejection`: refusals are `UNAUTHENTICATED` (16) and
//! `PERMISSION_DENIED` (7) with a proper `grpc-status`, and the verified
//! claims reach the handler through the request extensions. Run:
//! `cargo run --example grpc_server`, then call it with the printed tokens,
//! e.g. `grpcurl -plaintext -H "authorization: Bearer <token>" ...` (the
//! service takes and returns `message Hello { string name = 1; }`).
//!
//! Environment: `PORT` (50051), `KEYCARD_SECRET` (HS256, ≥ 32 bytes;
//! random when unset). Services: `demo.Greeter/Greet` (any valid token) on
//! `PORT`, the same behind role `admin` on `PORT + 1`.

mod common;

use keycard::tower::{GrpcRejection, JwtAuth, RequireRoles};
use keycard::{SigningKey, TokenIssuer, TokenType};

use common::fail;
use common::greeter::Greeter;

#[tokio::main]
async fn main() {
    let port = common::ops::port_from_env(50051);
    let secret = std::env::var("KEYCARD_SECRET")
        .unwrap_or_else(|_| format!("{}{}", keycard::random_id(), keycard::random_id()));
    let issuer = TokenIssuer::builder(
        SigningKey::hs256(secret.as_bytes())
            .unwrap_or_else(|e| fail(&format!("KEYCARD_SECRET is unusable: {e}"))),
    )
    .issuer("grpc-demo")
    .audience("grpc-demo")
    .build()
    .unwrap_or_else(|e| fail(&e.to_string()));
    let verifier = issuer
        .verifier()
        .build()
        .unwrap_or_else(|e| fail(&e.to_string()));
    for (user, roles) in [("alice", vec!["user"]), ("admin", vec!["user", "admin"])] {
        let t = issuer
            .issue(
                TokenType::Access,
                user,
                None,
                &serde_json::json!({ "roles": roles }),
            )
            .unwrap_or_else(|e| fail(&e.to_string()));
        println!("token for {user}: {}", t.token);
    }
    let auth = JwtAuth::new(verifier).with_rejection(GrpcRejection);
    let open = tonic::transport::Server::builder()
        .layer(auth.clone())
        .add_service(Greeter)
        .serve_with_shutdown(([127, 0, 0, 1], port).into(), common::ops::stop_signal());
    let admin = tonic::transport::Server::builder()
        .layer(auth)
        .layer(RequireRoles::any_of(["admin"]).with_rejection(GrpcRejection))
        .add_service(Greeter)
        .serve_with_shutdown(
            ([127, 0, 0, 1], port + 1).into(),
            common::ops::stop_signal(),
        );
    println!(
        "gRPC on 127.0.0.1:{port} (any token) and 127.0.0.1:{} (role admin)",
        port + 1
    );
    let (a, b) = tokio::join!(open, admin);
    a.and(b).unwrap_or_else(|e| fail(&e.to_string()));
}
