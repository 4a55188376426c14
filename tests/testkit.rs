//! The user-facing test kit: one line to authenticate a request in a test,
//! in axum and actix-web.

use axum::body::Body;
use http::Request;
use keycard::testing::TestKit;
use tower::ServiceExt;

#[derive(serde::Deserialize)]
struct Me {
    sub: String,
}

#[tokio::test]
async fn axum_handlers_with_the_layer_and_without_it() {
    use axum::routing::get;
    use keycard::axum::{Claims, JwtAuth, RequireRoles};
    let kit = TestKit::new();
    let app = axum::Router::new()
        .route(
            "/admin",
            get(|Claims(me): Claims<Me>| async move { me.sub }),
        )
        .route_layer(RequireRoles::any_of(["admin"]))
        .layer(JwtAuth::new(kit.verifier()));

    let req = Request::get("/admin").header("authorization", kit.bearer("root", ["admin"]));
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let req = Request::get("/admin").header("authorization", kit.bearer("alice", ["user"]));
    let res = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(res.status(), 403);

    // Handler alone: put a Verified into the extensions.
    let bare = axum::Router::new().route("/", get(|Claims(me): Claims<Me>| async move { me.sub }));
    let mut req = Request::get("/").body(Body::empty()).unwrap();
    req.extensions_mut().insert(kit.verified("alice", []));
    assert_eq!(bare.oneshot(req).await.unwrap().status(), 200);
}

#[actix_web::test]
async fn actix_handlers() {
    use actix_web::{test, web, App, HttpResponse};
    use keycard_actix::{Claims, JwtAuth};
    let kit = TestKit::new();
    let app = test::init_service(App::new().wrap(JwtAuth::new(kit.verifier())).route(
        "/",
        web::get().to(|me: Claims<Me>| async move { HttpResponse::Ok().body(me.sub.clone()) }),
    ))
    .await;
    let req = test::TestRequest::get()
        .uri("/")
        .insert_header(("authorization", kit.bearer("alice", [])))
        .to_request();
    assert_eq!(test::call_and_read_body(&app, req).await, "alice");
    // Tokens from another kit are refused: each kit has its own key.
    let other = TestKit::new();
    let req = test::TestRequest::get()
        .uri("/")
        .insert_header(("authorization", other.bearer("alice", [])))
        .to_request();
    assert_eq!(test::call_service(&app, req).await.status(), 401);
}
