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
    use keycard_actix::{has_role, Claims, JwtAuth};

    async fn who(c: Option<Claims<Me>>) -> HttpResponse {
        HttpResponse::Ok().body(c.map_or_else(|| "anonymous".to_owned(), |c| c.sub.clone()))
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
