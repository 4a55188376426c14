//! CORS preflights reach a CORS layer placed inside or outside keycard's
//! layer (tower-http's `CorsLayer` on axum, actix-cors on actix-web), instead
//! of getting a 401; `authenticate_cors_preflights()` turns that off.
//! Credentialed CORS requests are still authenticated.

mod common;

use axum::body::Body;
use axum::routing::get;
use common::*;
use http::{HeaderValue, Method, Request, StatusCode};
use keycard::axum::{Authenticated, JwtAuth, RequireRoles};
use tower::ServiceExt;
use tower_http::cors::CorsLayer;

const ORIGIN: &str = "https://app.example";

fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(HeaderValue::from_static(ORIGIN))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([http::header::AUTHORIZATION, http::header::CONTENT_TYPE])
        .allow_credentials(true)
}

fn preflight(path: &str) -> Request<Body> {
    Request::builder()
        .method("OPTIONS")
        .uri(path)
        .header("origin", ORIGIN)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .body(Body::empty())
        .unwrap()
}

fn cors_get(path: &str, token: Option<&str>) -> Request<Body> {
    let mut b = Request::get(path).header("origin", ORIGIN);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::empty()).unwrap()
}

async fn me(Authenticated(t): Authenticated) -> String {
    t.subject().unwrap_or_default().to_owned()
}

fn allows(res: &http::Response<axum::body::Body>) -> bool {
    res.headers()
        .get("access-control-allow-origin")
        .is_some_and(|v| v == ORIGIN)
}

/// The layouts people write: CORS outside keycard, CORS inside keycard,
/// and CORS inside with a role guard on the route.
fn layouts(v: keycard::Verifier) -> Vec<(&'static str, axum::Router)> {
    let outside = axum::Router::new()
        .route("/me", get(me))
        .layer(JwtAuth::new(v.clone()))
        .layer(cors());
    let inside = axum::Router::new()
        .route("/me", get(me))
        .layer(cors())
        .layer(JwtAuth::new(v.clone()));
    let guarded = axum::Router::new()
        .route("/me", get(me))
        .layer(cors())
        .layer(RequireRoles::any_of(["user"]))
        .layer(JwtAuth::new(v));
    vec![
        ("outside", outside),
        ("inside", inside),
        ("guarded", guarded),
    ]
}

#[tokio::test]
async fn axum_preflights_reach_tower_http_cors_wherever_it_sits() {
    let token = access("alice", &["user"]);
    for (name, app) in layouts(verifier()) {
        // The preflight is answered by CorsLayer, not refused by keycard.
        let res = app.clone().oneshot(preflight("/me")).await.unwrap();
        assert!(res.status().is_success(), "{name}: {}", res.status());
        assert!(allows(&res), "{name}: no CORS headers on the preflight");
        assert!(res.headers().get("www-authenticate").is_none(), "{name}");
        // The real request is authenticated as always.
        let res = app
            .clone()
            .oneshot(cors_get("/me", Some(&token)))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{name}");
        assert!(allows(&res), "{name}");
        let res = app.clone().oneshot(cors_get("/me", None)).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{name}");
        // An OPTIONS request that is not a preflight is authenticated by
        // keycard (tower-http's layer, when outside, answers every OPTIONS
        // itself).
        if name == "outside" {
            continue;
        }
        let plain_options = Request::builder()
            .method("OPTIONS")
            .uri("/me")
            .body(Body::empty())
            .unwrap();
        let res = app.clone().oneshot(plain_options).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{name}");
    }
}

#[tokio::test]
async fn axum_preflights_are_refused_when_told_to_authenticate_them() {
    let strict = verifier_builder()
        .authenticate_cors_preflights()
        .build()
        .unwrap();
    let app = axum::Router::new()
        .route("/me", get(me))
        .layer(cors())
        .layer(JwtAuth::new(strict));
    let res = app.oneshot(preflight("/me")).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_preflight_carries_no_identity_to_a_handler() {
    // Without a CORS layer the preflight reaches the router as anonymous:
    // a handler that needs a token answers 401, one with an optional
    // token sees none.
    let app = axum::Router::new()
        .route(
            "/me",
            get(me).options(
                |t: Option<keycard::axum::Claims<serde_json::Value>>| async move {
                    if t.is_some() {
                        "identified"
                    } else {
                        "anonymous"
                    }
                },
            ),
        )
        .layer(JwtAuth::new(verifier()));
    let mut req = preflight("/me");
    let token = access("alice", &["user"]);
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let res = app.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&body[..], b"anonymous");
}

mod actix {
    use super::*;
    use actix_cors::Cors;
    use actix_web::{test, web, App, HttpResponse};
    use keycard::actix::{Authenticated, JwtAuth};

    async fn me(t: Authenticated) -> HttpResponse {
        HttpResponse::Ok().body(t.subject().unwrap_or_default().to_owned())
    }

    fn cors() -> Cors {
        Cors::default()
            .allowed_origin(ORIGIN)
            .allowed_methods(["GET", "POST"])
            .allowed_headers([http::header::AUTHORIZATION.as_str()])
            .supports_credentials()
    }

    fn preflight() -> test::TestRequest {
        test::TestRequest::default()
            .method(actix_web::http::Method::OPTIONS)
            .uri("/me")
            .insert_header(("origin", ORIGIN))
            .insert_header(("access-control-request-method", "GET"))
            .insert_header(("access-control-request-headers", "authorization"))
    }

    fn allows(res: &actix_web::dev::ServiceResponse) -> bool {
        res.headers()
            .get("access-control-allow-origin")
            .is_some_and(|v| v == ORIGIN)
    }

    macro_rules! check {
        ($name:expr, $app:expr) => {{
            let (name, app) = ($name, $app);
            let res = test::call_service(app, preflight().to_request()).await;
            assert!(res.status().is_success(), "{name}: {}", res.status());
            assert!(allows(&res.map_into_boxed_body()), "{name}");
            let token = access("alice", &["user"]);
            let res = test::call_service(
                app,
                test::TestRequest::get()
                    .uri("/me")
                    .insert_header(("origin", ORIGIN))
                    .insert_header(("authorization", format!("Bearer {token}")))
                    .to_request(),
            )
            .await;
            assert_eq!(res.status(), 200, "{name}");
            let res = test::call_service(
                app,
                test::TestRequest::get()
                    .uri("/me")
                    .insert_header(("origin", ORIGIN))
                    .to_request(),
            )
            .await;
            assert_eq!(res.status(), 401, "{name}");
        }};
    }
    #[actix_web::test]
    async fn actix_preflights_reach_actix_cors_wherever_it_sits() {
        // In actix-web the last `wrap` is the outermost.
        let cors_outside = test::init_service(
            App::new()
                .wrap(JwtAuth::new(verifier()))
                .wrap(cors())
                .route("/me", web::get().to(me)),
        )
        .await;
        check!("outside", &cors_outside);
        let cors_inside = test::init_service(
            App::new()
                .wrap(cors())
                .wrap(JwtAuth::new(verifier()))
                .route("/me", web::get().to(me)),
        )
        .await;
        check!("inside", &cors_inside);
        let guarded = test::init_service(
            App::new()
                .wrap(cors())
                .wrap(keycard::actix::RequireRoles::any_of(["user"]))
                .wrap(JwtAuth::new(verifier()))
                .route("/me", web::get().to(me)),
        )
        .await;
        check!("guarded", &guarded);
    }

    #[actix_web::test]
    async fn actix_preflights_are_refused_when_told_to_authenticate_them() {
        let strict = verifier_builder()
            .authenticate_cors_preflights()
            .build()
            .unwrap();
        let app = test::init_service(
            App::new()
                .wrap(cors())
                .wrap(JwtAuth::new(strict))
                .route("/me", web::get().to(me)),
        )
        .await;
        let res = test::call_service(&app, preflight().to_request()).await;
        assert_eq!(res.status(), 401);
    }
}
