//! The [`JwtAuth`] and [`RequireRoles`] middleware.

use std::fmt;
use std::future::{ready, Ready};
use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::{Error, HttpMessage, HttpResponse};
use futures_util::future::LocalBoxFuture;
use keycard_core::adapter::{BodyHint, Target};
use keycard_core::{
    Admission, Admitted, AuthError, AuthMode, AuthState, RoleRequirement, Verifier,
};
use serde::de::DeserializeOwned;

use crate::ActixHeaders;

type RejectFn = Arc<dyn Fn(AuthError) -> HttpResponse + Send + Sync>;

fn default_reject() -> RejectFn {
    Arc::new(|e| crate::error_response(&e))
}

/// The rejection response, with the [`AuthError`] in its extensions,
/// whatever rejection built it (the same contract as the tower adapter).
fn reject(reject: &RejectFn, e: AuthError) -> HttpResponse {
    let mut res = reject(e.clone());
    res.extensions_mut().insert(e);
    res
}

/// Middleware that authenticates every request with a [`Verifier`]:
/// `App::new().wrap(JwtAuth::new(verifier))`.
///
/// A verified request carries a [`Verified`](keycard_core::Verified) in its extensions; a refused one
/// is answered without reaching the handler.
#[derive(Clone)]
#[must_use]
pub struct JwtAuth {
    verifier: Verifier,
    mode: AuthMode,
    reject: RejectFn,
    prepare: Option<Prepare>,
}

/// How a typed middleware decides a request and stores the claims it
/// deserialized on the way ([`JwtAuth::claims`]).
type Prepare = fn(&Verifier, AuthMode, &ServiceRequest) -> Admission;

fn prepare<T: DeserializeOwned + 'static>(
    verifier: &Verifier,
    mode: AuthMode,
    req: &ServiceRequest,
) -> Admission {
    let (admission, prepared) = verifier.admit_request_typed::<T, _>(
        mode,
        req.method().as_str(),
        target(req),
        &ActixHeaders(req.headers()),
    );
    if let Some(prepared) = prepared {
        req.extensions_mut().insert(prepared);
    }
    admission
}

/// The request's full path (actix-web's scopes never take it off the
/// URI) and what is known of its body: none at all, or over HTTP/2 and
/// later (where a body needs no `Content-Length`, and actix-web's payload
/// cannot say whether data will come) possibly some, so that an `OPTIONS`
/// request with a body never passes as a CORS preflight. Over HTTP/2,
/// preflights are therefore authenticated: put actix-cors outside this
/// middleware (it answers them itself).
fn target(req: &ServiceRequest) -> Target<'_> {
    let body = match req.parts().1 {
        actix_web::dev::Payload::None => BodyHint::Empty,
        _ if req.version() >= actix_web::http::Version::HTTP_2 => BodyHint::MayHaveData,
        _ => BodyHint::Unknown,
    };
    Target::path(req.path()).body(body)
}

impl fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuth")
            .field("verifier", &self.verifier)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl JwtAuth {
    /// Require a valid token on every request.
    pub fn new(verifier: impl Into<Verifier>) -> Self {
        Self {
            verifier: verifier.into(),
            mode: AuthMode::Required,
            reject: default_reject(),
            prepare: None,
        }
    }

    /// Let requests without any token through as anonymous; a bad token is
    /// still refused.
    pub fn optional(mut self) -> Self {
        self.mode = AuthMode::Optional;
        self
    }

    /// Deserialize the handlers' claims type `T` in the same walk that
    /// checks the token's payload, instead of once more in the
    /// [`crate::Claims`] extractor: one walk over the payload per request
    /// instead of two. The decision does not change; the extractor falls
    /// back to deserializing the payload when the token came from the
    /// verified-token cache or does not fit `T` (and then reports why).
    ///
    /// `T`'s `Deserialize` then runs in that walk, which comes before the
    /// signature check (as the untyped walk always has): the claims of a
    /// forged token are deserialized, bounded by the token size limit, and
    /// dropped. A claims type whose deserialization has side effects or
    /// can panic belongs in the default mode.
    ///
    /// ```
    /// # use keycard_core::{Key, Verifier};
    /// #[derive(serde::Deserialize)]
    /// struct MyClaims { sub: String }
    /// let verifier = Verifier::builder()
    ///     .key(Key::hs256(b"0123456789abcdef0123456789abcdef")?)
    ///     .build()?;
    /// let auth = keycard_actix::JwtAuth::new(verifier).claims::<MyClaims>();
    /// # Ok::<(), keycard_core::ConfigError>(())
    /// ```
    pub fn claims<T: DeserializeOwned + 'static>(mut self) -> Self {
        self.prepare = Some(prepare::<T>);
        self
    }

    /// Answer refused requests with `reject` instead of the default (the
    /// same signature as the tower adapter's rejections). The response
    /// carries the [`AuthError`] in its extensions either way.
    pub fn with_rejection(
        mut self,
        reject: impl Fn(AuthError) -> HttpResponse + Send + Sync + 'static,
    ) -> Self {
        self.reject = Arc::new(reject);
        self
    }
}

impl<S, B> Transform<S, ServiceRequest> for JwtAuth
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = JwtAuthMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(JwtAuthMiddleware {
            service: Rc::new(service),
            config: self.clone(),
        }))
    }
}

/// The service produced by [`JwtAuth`].
pub struct JwtAuthMiddleware<S> {
    service: Rc<S>,
    config: JwtAuth,
}

impl<S> fmt::Debug for JwtAuthMiddleware<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuthMiddleware")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn store(req: &ServiceRequest, admitted: Admitted) {
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

impl<S, B> Service<ServiceRequest> for JwtAuthMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let cfg = &self.config;
        let admission = match cfg.prepare {
            None => cfg.verifier.admit_request(
                cfg.mode,
                req.method().as_str(),
                target(&req),
                &ActixHeaders(req.headers()),
            ),
            Some(prepare) => prepare(&cfg.verifier, cfg.mode, &req),
        };
        match admission {
            Admission::Done(Ok(admitted)) => {
                store(&req, admitted);
                let fut = self.service.call(req);
                Box::pin(async move { fut.await.map(ServiceResponse::map_into_left_body) })
            }
            Admission::Done(Err(e)) => {
                let res = req
                    .into_response(reject(&cfg.reject, e))
                    .map_into_right_body();
                Box::pin(ready(Ok(res)))
            }
            Admission::Pending(pending) => {
                let service = Rc::clone(&self.service);
                let reject_fn = cfg.reject.clone();
                Box::pin(async move {
                    match pending.finish().await {
                        Ok(admitted) => {
                            store(&req, admitted);
                            service
                                .call(req)
                                .await
                                .map(ServiceResponse::map_into_left_body)
                        }
                        Err(e) => Ok(req
                            .into_response(reject(&reject_fn, e))
                            .map_into_right_body()),
                    }
                })
            }
        }
    }
}

/// Middleware that answers 403 `insufficient_scope` unless the caller holds
/// the required roles. Wrap it inside [`JwtAuth`] (actix runs the last
/// `wrap` first, so register `JwtAuth` after `RequireRoles`, or put
/// `RequireRoles` on an inner scope).
#[derive(Clone)]
#[must_use]
pub struct RequireRoles {
    requirement: RoleRequirement,
    reject: RejectFn,
}

impl fmt::Debug for RequireRoles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireRoles")
            .field("requirement", &self.requirement)
            .finish_non_exhaustive()
    }
}

impl RequireRoles {
    /// Require at least one of `roles`.
    pub fn any_of<I, S>(roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::new(RoleRequirement::any_of(roles))
    }

    /// Require every one of `roles`.
    pub fn all_of<I, S>(roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::new(RoleRequirement::all_of(roles))
    }

    /// Require `requirement`.
    pub fn new(requirement: RoleRequirement) -> Self {
        Self {
            requirement,
            reject: default_reject(),
        }
    }

    /// Answer refused requests with `reject` instead of the default (the
    /// same signature as the tower adapter's rejections). The response
    /// carries the [`AuthError`] in its extensions either way.
    pub fn with_rejection(
        mut self,
        reject: impl Fn(AuthError) -> HttpResponse + Send + Sync + 'static,
    ) -> Self {
        self.reject = Arc::new(reject);
        self
    }
}

/// Require scopes (RFC 9068 `scope`, or `scp`): `RequireScopes::any_of(["orders:read"])`
/// is a [`RequireRoles`] middleware that checks the token's scopes and
/// answers 403 `insufficient_scope` with `scope="…"` naming them.
#[derive(Debug, Clone, Copy)]
pub struct RequireScopes;

impl RequireScopes {
    /// Require at least one of `scopes`.
    pub fn any_of<I, S>(scopes: I) -> RequireRoles
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RequireRoles::new(RoleRequirement::scopes_any_of(scopes))
    }

    /// Require every one of `scopes`.
    pub fn all_of<I, S>(scopes: I) -> RequireRoles
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RequireRoles::new(RoleRequirement::scopes_all_of(scopes))
    }
}

impl<S, B> Transform<S, ServiceRequest> for RequireRoles
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = RequireRolesMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequireRolesMiddleware {
            service,
            config: self.clone(),
        }))
    }
}

/// The service produced by [`RequireRoles`].
pub struct RequireRolesMiddleware<S> {
    service: S,
    config: RequireRoles,
}

impl<S> fmt::Debug for RequireRolesMiddleware<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireRolesMiddleware")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S, B> Service<ServiceRequest> for RequireRolesMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let check = {
            let ext = req.extensions();
            AuthState::new(ext.get(), ext.get()).guard(&self.config.requirement)
        };
        match check {
            Ok(()) => {
                let fut = self.service.call(req);
                Box::pin(async move { fut.await.map(ServiceResponse::map_into_left_body) })
            }
            Err(e) => {
                let res = req
                    .into_response(reject(&self.config.reject, e))
                    .map_into_right_body();
                Box::pin(ready(Ok(res)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_web::{test, web, App, HttpResponse};
    use keycard_core::{AuthError, AuthErrorKind, Key, SigningKey, TokenIssuer, TokenType};

    use super::*;
    use crate::{Authenticated, OptionalAuthenticated};

    const SECRET: &[u8] = b"actix-unit-test-secret-0123456789abcdef!";

    fn verifier() -> Verifier {
        Verifier::builder()
            .key(Key::hs256(SECRET).unwrap())
            .audience("api")
            .build()
            .unwrap()
    }

    fn token(roles: &[&str]) -> String {
        TokenIssuer::builder(SigningKey::hs256(SECRET).unwrap())
            .audience("api")
            .build()
            .unwrap()
            .issue(
                TokenType::Access,
                "alice",
                None,
                &serde_json::json!({ "roles": roles }),
            )
            .unwrap()
            .token
    }

    async fn me(t: Authenticated) -> HttpResponse {
        HttpResponse::Ok().body(t.subject().unwrap_or_default().to_owned())
    }

    async fn maybe(t: OptionalAuthenticated) -> HttpResponse {
        HttpResponse::Ok().body(if t.0.is_some() {
            "verified"
        } else {
            "anonymous"
        })
    }

    #[actix_web::test]
    async fn the_middleware_stores_the_token_and_guards_by_role() {
        let app = test::init_service(
            App::new()
                .wrap(JwtAuth::new(verifier()))
                .route("/me", web::get().to(me))
                .service(
                    web::resource("/admin")
                        .wrap(RequireRoles::any_of(["admin"]))
                        .to(me),
                ),
        )
        .await;
        let bearer = format!("Bearer {}", token(&["user"]));
        let req = test::TestRequest::get()
            .uri("/me")
            .insert_header(("authorization", bearer.clone()))
            .to_request();
        let res = test::call_service(&app, req).await;
        assert_eq!(res.status(), 200);
        assert_eq!(test::read_body(res).await, "alice");
        let req = test::TestRequest::get()
            .uri("/admin")
            .insert_header(("authorization", bearer))
            .to_request();
        let res = test::call_service(&app, req).await;
        assert_eq!(res.status(), 403);
        assert!(res
            .headers()
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("insufficient_scope"));
        // The refusal carries the error, for logging middleware further out.
        let kind = res
            .response()
            .extensions()
            .get::<AuthError>()
            .map(AuthError::kind);
        assert_eq!(kind, Some(AuthErrorKind::InsufficientRole));
    }

    #[actix_web::test]
    async fn a_custom_rejection_gets_the_error_and_keeps_it_attached() {
        let app = test::init_service(
            App::new()
                .wrap(JwtAuth::new(verifier()).with_rejection(|e: AuthError| {
                    HttpResponse::build(actix_web::http::StatusCode::from_u16(e.status()).unwrap())
                        .body(format!("custom: {}", e.kind().name()))
                }))
                .route("/me", web::get().to(me)),
        )
        .await;
        let res = test::call_service(&app, test::TestRequest::get().uri("/me").to_request()).await;
        assert_eq!(res.status(), 401);
        assert!(res.response().extensions().get::<AuthError>().is_some());
        assert_eq!(test::read_body(res).await, "custom: missing");
    }

    #[actix_web::test]
    async fn optional_mode_lets_anonymous_through_and_refuses_bad_tokens() {
        let app = test::init_service(
            App::new()
                .wrap(JwtAuth::new(verifier()).optional())
                .route("/", web::get().to(maybe)),
        )
        .await;
        let res = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
        assert_eq!(test::read_body(res).await, "anonymous");
        let req = test::TestRequest::get()
            .uri("/")
            .insert_header(("authorization", "Bearer a.b.c"))
            .to_request();
        let res = test::call_service(&app, req).await;
        assert_eq!(res.status(), 401);
        let req = test::TestRequest::get()
            .uri("/")
            .insert_header(("authorization", format!("Bearer {}", token(&[]))))
            .to_request();
        let res = test::call_service(&app, req).await;
        assert_eq!(test::read_body(res).await, "verified");
    }
}
