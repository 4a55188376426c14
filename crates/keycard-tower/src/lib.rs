//! tower middleware for keycard: [`JwtAuth`] authenticates every request,
//! [`RequireRoles`] answers 403 without the right role.
//!
//! ```
//! use http::{Request, Response, StatusCode};
//! use keycard_core::{Key, Verifier};
//! use keycard_tower::JwtAuth;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let verifier = Verifier::builder()
//!     .key(Key::hs256(b"an-example-secret-of-32-bytes-or-more")?)
//!     .build()?;
//! let svc = ServiceBuilder::new()
//!     .layer(JwtAuth::new(verifier))
//!     .service(service_fn(|_req: Request<String>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(String::from("hello")))
//!     }));
//!
//! let res = svc.oneshot(Request::new(String::new())).await?;
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(res.headers()["www-authenticate"], "Bearer realm=\"keycard\"");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod forward;
mod future;
pub mod grpc;
mod layer;
mod rejection;
mod roles;
mod service;

pub use future::ResponseFuture;
pub use grpc::GrpcRejection;
pub use layer::JwtAuth;
pub use rejection::{
    endpoint_response, error_response, resource_metadata_response, DefaultRejection, Rejection,
};
pub use roles::{check_roles, RequireRoles, RequireRolesService, RequireScopes};
pub use service::{take_claims, JwtAuthService};

pub use keycard_core::{Anonymous, AuthError, AuthErrorKind, Verified};
