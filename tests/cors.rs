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
async fn only_a_browser_shaped_preflight_passes_unauthenticated() {
    // Without a CORS layer a preflight reaches the router as anonymous: a
    // handler that needs a token answers 401, one with an optional token
    // sees none.
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
    let body_of = |res: http::Response<Body>| async move {
        let b = http_body_util::BodyExt::collect(res.into_body())
            .await
            .unwrap()
            .to_bytes();
        String::from_utf8_lossy(&b).into_owned()
    };
    let res = app.clone().oneshot(preflight("/me")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_of(res).await, "anonymous");

    // Anything a browser never sends on a preflight makes it an ordinary,
    // authenticated request: credentials, a body, no Origin.
    let token = access("alice", &["user"]);
    let mut with_token = preflight("/me");
    with_token
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let res = app.clone().oneshot(with_token).await.unwrap();
    assert_eq!(body_of(res).await, "identified");
    let mut garbage = preflight("/me");
    garbage
        .headers_mut()
        .insert("authorization", "Bearer garbage.x.y".parse().unwrap());
    let res = app.clone().oneshot(garbage).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let mut with_cookie = preflight("/me");
    with_cookie
        .headers_mut()
        .insert("cookie", "keycard_access=x.y.z".parse().unwrap());
    let res = app.clone().oneshot(with_cookie).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let mut with_body = preflight("/me");
    with_body
        .headers_mut()
        .insert("content-length", "5".parse().unwrap());
    let res = app.clone().oneshot(with_body).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let mut chunked = preflight("/me");
    chunked
        .headers_mut()
        .insert("transfer-encoding", "chunked".parse().unwrap());
    let res = app.clone().oneshot(chunked).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let mut no_origin = preflight("/me");
    no_origin.headers_mut().remove("origin");
    let res = app.clone().oneshot(no_origin).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_gateway_never_forwards_a_preflight_nobody_authenticated() {
    use keycard::tower::forward::is_unauthenticated_preflight;
    let app = axum::Router::new()
        .route(
            "/{*rest}",
            axum::routing::any(|req: Request<Body>| async move {
                if is_unauthenticated_preflight(&req) {
                    StatusCode::FORBIDDEN
                } else {
                    StatusCode::OK
                }
            }),
        )
        .layer(JwtAuth::new(verifier()));
    let res = app.clone().oneshot(preflight("/orders/1")).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let token = access("alice", &["user"]);
    let res = app
        .oneshot(cors_get("/orders/1", Some(&token)))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

mod actix {
    use super::*;
    use actix_cors::Cors;
    use actix_web::{test, web, App, HttpResponse};
    use keycard_actix::{Authenticated, JwtAuth};

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
                .wrap(keycard_actix::RequireRoles::any_of(["user"]))
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

/// Over HTTP/2 a body needs neither `Content-Length` nor
/// `Transfer-Encoding`, so the headers alone cannot show that an `OPTIONS`
/// "preflight" has none: the layer asks the body itself. A preflight-shaped
/// request whose body streams data is authenticated like any request; a
/// real preflight (no body) still passes. On axum/tower and actix-web.
#[tokio::test]
async fn a_preflight_with_a_body_over_http2_is_authenticated() {
    use axum::routing::any;
    async fn open(t: Option<Authenticated>) -> String {
        t.map_or("anonymous".into(), |t| {
            t.0.subject().unwrap_or("").to_owned()
        })
    }
    let app = axum::Router::new()
        .route("/any", any(open))
        .layer(JwtAuth::new(verifier()));
    let shaped = |body: Body| {
        Request::builder()
            .method("OPTIONS")
            .uri("/any")
            .version(http::Version::HTTP_2)
            .header("origin", ORIGIN)
            .header("access-control-request-method", "POST")
            .body(body)
            .unwrap()
    };
    let streamed = Body::from_stream(futures_util::stream::iter([Ok::<_, std::io::Error>(
        bytes_of("smuggled=1"),
    )]));
    let res = app.clone().oneshot(shaped(streamed)).await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "a body rode on a preflight"
    );
    let res = app
        .clone()
        .oneshot(shaped(Body::from("x=1")))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "a sized body");
    let res = app.clone().oneshot(shaped(Body::empty())).await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "a real preflight still passes"
    );
}

/// actix-web: its HTTP/2 payload cannot say whether data will come, so
/// over HTTP/2 an `OPTIONS` request is authenticated (fail closed; put
/// actix-cors outside keycard's middleware to answer preflights there).
/// Over HTTP/1.1 the headers decide, as before.
#[actix_web::test]
async fn actix_a_preflight_with_a_body_over_http2_is_authenticated() {
    let answers = {
        use actix_web::{test, web, App, HttpResponse};
        async fn open(t: Option<keycard_actix::Authenticated>) -> HttpResponse {
            HttpResponse::Ok()
                .body(t.map_or("anonymous".into(), |t| t.subject().unwrap_or("").to_owned()))
        }
        let app = test::init_service(
            App::new()
                .wrap(keycard_actix::JwtAuth::new(verifier()))
                .route("/any", web::route().to(open)),
        )
        .await;
        let mut out = Vec::new();
        use actix_web::http::Version;
        for (version, body) in [
            (Version::HTTP_2, Some("smuggled=1")),
            (Version::HTTP_2, None),
            (Version::HTTP_11, None),
        ] {
            let mut req = test::TestRequest::default()
                .method(actix_web::http::Method::OPTIONS)
                .uri("/any")
                .version(version)
                .insert_header(("origin", ORIGIN))
                .insert_header(("access-control-request-method", "POST"));
            if let Some(b) = body {
                req = req.set_payload(b);
            }
            out.push(
                test::call_service(&app, req.to_request())
                    .await
                    .status()
                    .as_u16(),
            );
        }
        out
    };
    assert_eq!(
        answers,
        [401, 401, 200],
        "actix-web: h2 with a payload, h2, h1.1"
    );
}

fn bytes_of(s: &'static str) -> axum::body::Bytes {
    axum::body::Bytes::from_static(s.as_bytes())
}
