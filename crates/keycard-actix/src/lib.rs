//! actix-web integration for keycard: the [`JwtAuth`] middleware, the
//! [`Claims<T>`] extractor, the [`RequireRoles`] middleware (403) and role
//! guards for routing ([`has_role`]).
//!
//! ```
//! use actix_web::{test, web, App, HttpResponse};
//! use keycard_actix::{Claims, JwtAuth};
//! use keycard_core::{Key, Verifier};
//!
//! #[derive(serde::Deserialize)]
//! struct MyClaims { sub: String }
//!
//! async fn me(claims: Claims<MyClaims>) -> HttpResponse {
//!     HttpResponse::Ok().body(claims.sub.clone())
//! }
//!
//! # actix_web::rt::System::new().block_on(async {
//! let verifier = Verifier::builder()
//!     .key(Key::hs256(b"an-example-secret-of-32-bytes-or-more").unwrap())
//!     .build()
//!     .unwrap();
//! let app = test::init_service(
//!     App::new().wrap(JwtAuth::new(verifier)).route("/me", web::get().to(me)),
//! )
//! .await;
//! let res = test::call_service(&app, test::TestRequest::get().uri("/me").to_request()).await;
//! assert_eq!(res.status(), 401);
//! # });
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

mod extract;
mod guard;
mod middleware;

pub use extract::{
    AuthRejection, Authenticated, Claims, OptionalAuthenticated, OptionalClaims, SessionRejection,
};
pub use guard::{has_all_roles, has_role, RoleGuard};
pub use middleware::{
    JwtAuth, JwtAuthMiddleware, RequireRoles, RequireRolesMiddleware, RequireScopes,
};

pub use keycard_core::{AuthError, AuthErrorKind, Verified};

use actix_web::http::header::HeaderMap;
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use keycard_core::{EndpointResponse, RequestHeaders, Verifier};

/// actix-web's header map seen through the core's [`RequestHeaders`].
#[derive(Debug, Clone, Copy)]
pub struct ActixHeaders<'a>(pub &'a HeaderMap);

impl RequestHeaders for ActixHeaders<'_> {
    fn header_values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a [u8]> {
        self.0.get_all(name).map(|v| v.as_bytes())
    }
}

/// The standard response for an [`AuthError`]: the core's status and
/// `WWW-Authenticate` challenge, a JSON body, `Cache-Control: no-store`.
pub fn error_response(error: &AuthError) -> HttpResponse {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut res = HttpResponse::build(status);
    res.content_type("application/json")
        .insert_header(("cache-control", "no-store"));
    if let Some(challenge) = error.www_authenticate() {
        res.insert_header(("www-authenticate", challenge));
    }
    if let Some(nonce) = error.dpop_nonce() {
        res.insert_header(("dpop-nonce", nonce));
    }
    res.body(error.body())
}

/// The RFC 9728 metadata of a verifier that protects a named resource
/// ([`keycard_core::VerifierBuilder::protected_resource`]) as an actix-web
/// resource at its path, for `App::service(..)` outside the authentication
/// middleware. `None` when the verifier names no resource.
pub fn resource_metadata_service(verifier: &Verifier) -> Option<actix_web::Resource> {
    let metadata = verifier.resource_metadata()?.clone();
    let path = metadata.path().to_owned();
    let body = metadata.to_json();
    let cache = metadata.cache_control();
    Some(
        actix_web::web::resource(path).route(actix_web::web::get().to(move || {
            let body = body.clone();
            async move {
                HttpResponse::Ok()
                    .content_type("application/json")
                    .insert_header(("cache-control", cache))
                    .body(body)
            }
        })),
    )
}

/// An [`EndpointResponse`] (from the core's refresh, login and logout
/// helpers) as an actix-web response: its status, JSON body, `Set-Cookie`
/// values and challenge, with `Cache-Control: no-store`.
pub fn endpoint_response(answer: EndpointResponse) -> HttpResponse {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut res = HttpResponse::build(status);
    res.content_type("application/json")
        .insert_header(("cache-control", "no-store"));
    if let Some(challenge) = answer.www_authenticate {
        res.insert_header(("www-authenticate", challenge));
    }
    for cookie in answer.set_cookies {
        res.append_header(("set-cookie", cookie));
    }
    res.body(answer.body)
}
