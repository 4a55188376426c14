//! Adapter behaviour beyond the shared table: optional authentication,
//! missing layers, custom rejections, actix guards.

mod common;

use axum::body::Body;
use axum::routing::get;
use common::*;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use keycard::axum::{Claims, JwtAuth};
use serde::Deserialize;
use tower::ServiceExt;

#[derive(Deserialize)]
struct Me {
    sub: String,
}

async fn maybe(claims: Option<Claims<Me>>) -> String {
    claims.map_or_else(|| "anonymous".to_owned(), |c| c.sub.clone())
}

async fn axum_get(app: axum::Router, req: Request<Body>) -> (StatusCode, String) {
    let res = app.oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn axum_optional_mode() {
    let app = axum::Router::new()
        .route("/", get(maybe))
        .layer(JwtAuth::new(verifier()).optional());
    let (s, b) = axum_get(app.clone(), Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!((s, b.as_str()), (StatusCode::OK, "anonymous"));
    let token = access("alice", &[]);
    let req = Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let (s, b) = axum_get(app.clone(), req).await;
    assert_eq!((s, b.as_str()), (StatusCode::OK, "alice"));
    // A bad token is still refused.
    let req = Request::get("/")
        .header("authorization", "Bearer a.b.c")
        .body(Body::empty())
        .unwrap();
    let (s, _) = axum_get(app.clone(), req).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // A required extractor on an anonymous request: 401 with a bare challenge.
    let strict = axum::Router::new()
        .route("/", get(|Claims(me): Claims<Me>| async move { me.sub }))
        .layer(JwtAuth::new(verifier()).optional());
    let res = strict
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.headers()["www-authenticate"],
        "Bearer realm=\"keycard\""
    );
}

#[tokio::test]
async fn axum_without_the_layer_names_it() {
    let app = axum::Router::new().route("/", get(|Claims(me): Claims<Me>| async move { me.sub }));
    let (s, body) = axum_get(app, Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("JwtAuth layer is missing"), "{body}");
    let opt = axum::Router::new().route("/", get(maybe));
    let (s, _) = axum_get(opt, Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(
        s,
        StatusCode::INTERNAL_SERVER_ERROR,
        "Option<Claims> without a layer is still an error"
    );
}

#[tokio::test]
async fn axum_route_layer_and_custom_rejection() {
    let app = axum::Router::new()
        .route("/me", get(maybe))
        .route_layer(
            JwtAuth::new(verifier()).with_rejection(|e: keycard::AuthError| {
                let mut res = http::Response::new(Body::from(format!("custom {}", e.status())));
                *res.status_mut() = StatusCode::from_u16(e.status()).unwrap();
                res
            }),
        )
        .route("/open", get(|| async { "open" }));
    let (s, b) = axum_get(
        app.clone(),
        Request::get("/me").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!((s, b.as_str()), (StatusCode::UNAUTHORIZED, "custom 401"));
    let (s, b) = axum_get(
        app.clone(),
        Request::get("/open").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!((s, b.as_str()), (StatusCode::OK, "open"));
    // Unknown routes stay 404 under route_layer.
    let (s, _) = axum_get(app, Request::get("/nope").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn tower_rejection_carries_the_error_in_extensions() {
    let a = call_tower(&verifier(), &Call::get("/me").bearer("x.y.z")).await;
    assert_eq!(a.status, 401);
    use keycard::tower::JwtAuth as Layer;
    use tower::Layer as _;
    let svc = Layer::new(verifier()).layer(tower::service_fn(|_r: Request<String>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    }));
    let res = svc.oneshot(Request::new(String::new())).await.unwrap();
    let err = res.extensions().get::<keycard::AuthError>().unwrap();
    assert_eq!(err.kind(), keycard::AuthErrorKind::Missing);
}

mod actix {
    use super::*;
    use actix_web::{test, web, App, HttpResponse};
    use keycard_actix::{has_role, Claims, JwtAuth, OptionalClaims};

    async fn who(c: OptionalClaims<Me>) -> HttpResponse {
        HttpResponse::Ok().body(c.0.map_or_else(|| "anonymous".to_owned(), |c| c.sub))
    }

    #[actix_web::test]
    async fn optional_mode() {
        let app = test::init_service(
            App::new()
                .wrap(JwtAuth::new(verifier()).optional())
                .route("/", web::get().to(who)),
        )
        .await;
        let res =
            test::call_and_read_body(&app, test::TestRequest::get().uri("/").to_request()).await;
        assert_eq!(res, "anonymous");
        let token = access("alice", &[]);
        let req = test::TestRequest::get()
            .uri("/")
            .insert_header(("authorization", format!("Bearer {token}")))
            .to_request();
        assert_eq!(test::call_and_read_body(&app, req).await, "alice");
        let req = test::TestRequest::get()
            .uri("/")
            .insert_header(("authorization", "Bearer a.b.c"))
            .to_request();
        assert_eq!(test::call_service(&app, req).await.status(), 401);
    }

    #[actix_web::test]
    async fn without_the_middleware_names_it() {
        let app = test::init_service(App::new().route(
            "/",
            web::get().to(|c: Claims<Me>| async move { HttpResponse::Ok().body(c.sub.clone()) }),
        ))
        .await;
        let res = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
        assert_eq!(res.status(), 500);
        let body = test::read_body(res).await;
        assert!(String::from_utf8_lossy(&body).contains("JwtAuth layer is missing"));
    }

    #[actix_web::test]
    async fn guards_route_by_role_and_a_failed_guard_is_404() {
        let app = test::init_service(
            App::new()
                .wrap(JwtAuth::new(verifier()))
                .route(
                    "/panel",
                    web::get()
                        .guard(has_role("admin"))
                        .to(|| async { "admin panel" }),
                )
                .route("/panel", web::get().to(|| async { "user panel" }))
                .route(
                    "/admin-only",
                    web::get()
                        .guard(has_role("admin"))
                        .to(|| async { "secret" }),
                ),
        )
        .await;
        let get = |path: &str, token: &str| {
            test::TestRequest::get()
                .uri(path)
                .insert_header(("authorization", format!("Bearer {token}")))
                .to_request()
        };
        let admin = access("root", &["admin"]);
        let alice = access("alice", &["user"]);
        assert_eq!(
            test::call_and_read_body(&app, get("/panel", &admin)).await,
            "admin panel"
        );
        assert_eq!(
            test::call_and_read_body(&app, get("/panel", &alice)).await,
            "user panel"
        );
        assert_eq!(
            test::call_service(&app, get("/admin-only", &alice))
                .await
                .status(),
            404
        );
    }

    #[actix_web::test]
    async fn custom_rejection() {
        let app = test::init_service(
            App::new()
                .wrap(JwtAuth::new(verifier()).with_rejection(|e| {
                    HttpResponse::build(actix_web::http::StatusCode::from_u16(e.status()).unwrap())
                        .body("custom")
                }))
                .route("/", web::get().to(who)),
        )
        .await;
        let res = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
        assert_eq!(res.status(), 401);
        assert_eq!(test::read_body(res).await, "custom");
    }
}

/// Optional extraction means the same on every adapter: only "no token,
/// optional layer" is `None`; a missing layer is a 500 and claims that do
/// not fit the type are a 401. On 496403a, actix's `Option<Claims<T>>`
/// read both as anonymous.
mod optional_everywhere {
    use super::*;
    use actix_web::{test as atest, web, App, HttpResponse};
    use keycard::actix::{OptionalAuthenticated, OptionalClaims};
    use serde_json::json;

    #[derive(Deserialize)]
    struct Typed {
        count: u64,
    }

    /// (path, token, layer?) → expected status and body prefix.
    fn cases() -> Vec<(&'static str, Option<String>, bool, u16, &'static str)> {
        let alice = access("alice", &[]);
        let mut c = claims();
        c["count"] = json!("not a number");
        let wrong_shape = at(&c);
        vec![
            ("/opt", None, true, 200, "anonymous"),
            ("/opt", Some(alice.clone()), true, 200, "alice"),
            ("/opt", Some("a.b.c".into()), true, 401, ""),
            ("/opt", None, false, 500, ""),
            ("/opt", Some(alice.clone()), false, 500, ""),
            ("/typed", Some(wrong_shape), true, 401, ""),
            ("/verified", None, true, 200, "anonymous"),
            ("/verified", None, false, 500, ""),
        ]
    }

    fn tower_answer(path: &str, token: Option<&str>, layer: bool) -> (u16, String) {
        use keycard::AuthState;
        let svc = tower::service_fn(|req: Request<String>| async move {
            let ext = req.extensions();
            let state = AuthState::new(ext.get(), ext.get()).optional();
            let out = match (req.uri().path(), state) {
                (_, Err(e)) => Err(e),
                ("/typed", Ok(v)) => v
                    .map(|v| v.claims::<Typed>().map(|t| t.count.to_string()))
                    .transpose()
                    .map(|c| c.unwrap_or_else(|| "anonymous".into())),
                (_, Ok(v)) => Ok(v
                    .and_then(|v| v.subject().map(str::to_owned))
                    .unwrap_or_else(|| "anonymous".into())),
            };
            Ok::<_, std::convert::Infallible>(match out {
                Ok(body) => http::Response::new(body),
                Err(e) => keycard::tower::error_response(e),
            })
        });
        let mut req = Request::get(path).body(String::new()).unwrap();
        if let Some(t) = token {
            req.headers_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let res = rt.block_on(async {
            if layer {
                let svc = tower::ServiceBuilder::new()
                    .layer(keycard::tower::JwtAuth::new(verifier()).optional())
                    .service(svc);
                svc.oneshot(req).await.unwrap()
            } else {
                svc.oneshot(req).await.unwrap()
            }
        });
        (res.status().as_u16(), res.into_body())
    }

    fn axum_answer(path: &str, token: Option<&str>, layer: bool) -> (u16, String) {
        let mut app = axum::Router::new()
            .route("/opt", get(maybe))
            .route(
                "/typed",
                get(|c: Option<Claims<Typed>>| async move {
                    c.map_or("anonymous".to_owned(), |c| c.count.to_string())
                }),
            )
            .route(
                "/verified",
                get(|v: Option<keycard::axum::Authenticated>| async move {
                    v.map_or("anonymous".to_owned(), |v| {
                        v.subject().unwrap_or_default().to_owned()
                    })
                }),
            );
        if layer {
            app = app.layer(JwtAuth::new(verifier()).optional());
        }
        let mut req = Request::get(path).body(Body::empty()).unwrap();
        if let Some(t) = token {
            req.headers_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (s, b) = rt.block_on(axum_get(app, req));
        (s.as_u16(), b)
    }

    fn actix_answer(path: &str, token: Option<&str>, layer: bool) -> (u16, String) {
        let path = path.to_owned();
        let token = token.map(str::to_owned);
        actix_web::rt::System::new().block_on(async move {
            let routes = |cfg: &mut web::ServiceConfig| {
                cfg.route(
                    "/opt",
                    web::get().to(|c: OptionalClaims<Me>| async move {
                        HttpResponse::Ok().body(c.0.map_or("anonymous".to_owned(), |c| c.sub))
                    }),
                )
                .route(
                    "/typed",
                    web::get().to(|c: OptionalClaims<Typed>| async move {
                        HttpResponse::Ok()
                            .body(c.0.map_or("anonymous".to_owned(), |c| c.count.to_string()))
                    }),
                )
                .route(
                    "/verified",
                    web::get().to(|v: OptionalAuthenticated| async move {
                        HttpResponse::Ok().body(v.0.map_or("anonymous".to_owned(), |v| {
                            v.subject().unwrap_or_default().to_owned()
                        }))
                    }),
                );
            };
            let mut req = atest::TestRequest::get().uri(&path);
            if let Some(t) = &token {
                req = req.insert_header(("authorization", format!("Bearer {t}")));
            }
            let (status, body) = if layer {
                let app = atest::init_service(
                    App::new()
                        .wrap(keycard::actix::JwtAuth::new(verifier()).optional())
                        .configure(routes),
                )
                .await;
                let res = atest::call_service(&app, req.to_request()).await;
                (res.status().as_u16(), atest::read_body(res).await)
            } else {
                let app = atest::init_service(App::new().configure(routes)).await;
                let res = atest::call_service(&app, req.to_request()).await;
                (res.status().as_u16(), atest::read_body(res).await)
            };
            (status, String::from_utf8_lossy(&body).into_owned())
        })
    }

    #[test]
    fn the_same_answers_on_every_adapter() {
        let mut wrong = Vec::new();
        for (path, token, layer, status, body) in cases() {
            for (name, answer) in [
                ("tower", tower_answer(path, token.as_deref(), layer)),
                ("axum", axum_answer(path, token.as_deref(), layer)),
                ("actix", actix_answer(path, token.as_deref(), layer)),
            ] {
                if answer.0 != status || !answer.1.starts_with(body) {
                    wrong.push(format!(
                        "{name} {path} token={} layer={layer}: {answer:?}, expected {status} {body:?}",
                        token.is_some()
                    ));
                }
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }
}

/// `SessionError` is a response on both frameworks, with the core's one
/// status table and RFC 6749 §5.2 body, so handlers use `?`.
mod session_rejection {
    use axum::response::IntoResponse;
    use http_body_util::BodyExt;
    use keycard::{AuthErrorKind, EndpointResponse, SessionError, StoreError};

    fn errors() -> Vec<SessionError> {
        vec![
            SessionError::InvalidGrant(AuthErrorKind::Expired.into()),
            SessionError::ReuseDetected,
            SessionError::UserRefused,
            SessionError::Store(StoreError::Unavailable("redis down".into())),
        ]
    }

    #[tokio::test]
    async fn axum_and_actix_answer_session_errors_alike() {
        for e in errors() {
            let want = EndpointResponse::from(&e);
            let expected_status = e.status();
            let expected_code = e.error_code();

            let axum_res = keycard::axum::SessionRejection(e).into_response();
            assert_eq!(axum_res.status().as_u16(), expected_status);
            assert_eq!(axum_res.headers()["content-type"], "application/json");
            assert_eq!(axum_res.headers()["cache-control"], "no-store");
            let body = axum_res.into_body().collect().await.unwrap().to_bytes();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["error"], expected_code);
            assert_eq!(want.status, expected_status);
        }
        for e in errors() {
            let expected_status = e.status();
            let expected_code = e.error_code();
            let err =
                actix_web::ResponseError::error_response(&keycard::actix::SessionRejection(e));
            assert_eq!(err.status().as_u16(), expected_status);
            assert_eq!(err.headers().get("cache-control").unwrap(), "no-store");
            let body = actix_web::body::to_bytes(err.into_body()).await.unwrap();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["error"], expected_code);
        }
    }

    #[test]
    fn a_handler_uses_the_question_mark() {
        fn handler(e: SessionError) -> Result<(), keycard::axum::SessionRejection> {
            Err(e)?;
            Ok(())
        }
        assert_eq!(
            handler(SessionError::ReuseDetected).unwrap_err().0.status(),
            400
        );
    }
}

/// One rejection contract: every adapter's rejection types are errors whose
/// source is the core error, show it, and come from it with `?`.
#[test]
fn every_rejection_is_an_error_made_from_the_core_error() {
    use keycard::{AuthError, AuthErrorKind, SessionError};
    fn contract<R, E>(make: fn() -> E)
    where
        R: std::error::Error + From<E> + 'static,
        E: std::error::Error + 'static,
    {
        let inner = make();
        let shown = inner.to_string();
        let r = R::from(make());
        assert_eq!(r.to_string(), shown);
        assert!(r.source().is_some_and(|s| s.to_string() == shown));
    }
    let auth = || AuthError::new(AuthErrorKind::Expired);
    let session = || SessionError::ReuseDetected;
    contract::<keycard::axum::AuthRejection, _>(auth);
    contract::<keycard::axum::SessionRejection, _>(session);
    contract::<keycard::actix::AuthRejection, _>(auth);
    contract::<keycard::actix::SessionRejection, _>(session);
}

/// Errors that point at the fix: a claims type that does not fit names
/// the field and says missing or mistyped; a guard outside its layer says
/// the order may be wrong; a token sent two ways says so.
#[tokio::test]
async fn errors_point_at_the_fix() {
    use keycard::axum::RequireRoles;
    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Needs {
        tenant: String,
    }
    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Typed {
        roles: u8,
    }
    let token = access("alice", &["user"]);
    let bearer = |path: &str| {
        Request::get(path)
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    let app = axum::Router::new()
        .route("/needs", get(|_: Claims<Needs>| async { "" }))
        .route("/typed", get(|_: Claims<Typed>| async { "" }))
        .layer(JwtAuth::new(verifier()));
    let (s, body) = axum_get(app.clone(), bearer("/needs")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(body.contains("missing field `tenant`"), "{body}");
    let (s, body) = axum_get(app.clone(), bearer("/typed")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(body.contains("wrong type"), "{body}");
    assert!(!body.contains("user"), "no claim value is repeated: {body}");

    // The guard outside the layer (axum runs the last `.layer` first).
    let wrong_order = axum::Router::new()
        .route("/admin", get(|| async { "" }))
        .layer(JwtAuth::new(verifier()))
        .layer(RequireRoles::any_of(["admin"]));
    let (s, body) = axum_get(wrong_order, bearer("/admin")).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("wrong order"), "{body}");

    // A header and a cookie together.
    let req = Request::get("/needs")
        .header("authorization", format!("Bearer {token}"))
        .header("cookie", format!("keycard_access={token}"))
        .body(Body::empty())
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("two token sources"), "{challenge}");
}
