//! The architecture JWT exists for, runnable in one process on loopback:
//! an auth service issues tokens and publishes its JWKS; an API gateway
//! (keycard's tower layer in front of a hyper-util reverse proxy) refuses bad
//! tokens at the edge; an orders service (axum) and a billing service
//! (actix-web) verify every token again through the auth service's JWKS.
//! See docs/architecture.md.
//!
//! `cargo run --example microservices` prints the four base URLs. Environment:
//! `KEYCARD_REDIS_URL` shares revocation and refresh state through Redis;
//! `KEYCARD_ONLY=gateway` with `KEYCARD_AUTH_URL`, `KEYCARD_ORDERS_URL` and
//! `KEYCARD_BILLING_URL` starts only another gateway in front of services
//! that run elsewhere; `KEYCARD_JWKS_COOLDOWN_SECS` (default 1).
//!
//! Demo users: alice / alice-password (user), admin / admin-password (user,
//! admin). `billing` needs role `admin`; `POST {auth}/admin/rotate-key` (role
//! `admin`) rotates the signing key.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use keycard::axum::{Authenticated, JwtAuth, RequireRoles};
use keycard::jwks::RemoteJwks;
use keycard::{
    Algorithm, KeyRing, RefreshStore, RevocationStore, Sessions, SigningKey, TokenIssuer, Verifier,
};
use serde::Deserialize;

const AUDIENCE: &str = "keycard-demo";

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(2)
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The stores every service shares: in memory (one process) or Redis.
#[derive(Clone)]
struct Stores {
    revocation: Arc<dyn RevocationStore>,
    refresh: Option<Arc<dyn RefreshStore>>,
}

async fn stores() -> Stores {
    match env("KEYCARD_REDIS_URL") {
        Some(url) => {
            let s = keycard_redis::RedisStores::connect(&url)
                .await
                .unwrap_or_else(|e| fail(&format!("KEYCARD_REDIS_URL={url}: {e}")));
            Stores {
                revocation: s.revocation(),
                refresh: Some(s.refresh()),
            }
        }
        None => Stores {
            revocation: Arc::new(keycard::InMemoryRevocationStore::new()),
            refresh: None,
        },
    }
}

async fn listen() -> (tokio::net::TcpListener, String) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| fail(&e.to_string()));
    let url = format!("http://{}", l.local_addr().unwrap());
    (l, url)
}

/// A verifier that trusts only the auth service's published keys.
async fn remote_verifier(auth_url: &str, stores: &Stores) -> Verifier {
    let cooldown = env("KEYCARD_JWKS_COOLDOWN_SECS")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let jwks = RemoteJwks::builder(format!("{auth_url}/.well-known/jwks.json"))
        .insecure_allow_http_loopback()
        .cooldown(Duration::from_secs(cooldown))
        .build()
        .await
        .unwrap_or_else(|e| fail(&format!("cannot load the auth service's JWKS: {e}")));
    Verifier::builder()
        .key_provider(Arc::new(jwks))
        .issuer(auth_url)
        .audience(AUDIENCE)
        .revocation(stores.revocation.clone())
        .build()
        .unwrap_or_else(|e| fail(&e.to_string()))
}

// ---------------------------------------------------------------- auth

#[derive(Clone)]
struct Auth {
    sessions: Sessions,
    ring: Arc<KeyRing>,
}

#[derive(Deserialize)]
struct Login {
    username: String,
    password: String,
}

#[derive(Deserialize)]
struct Refresh {
    refresh_token: String,
}

fn roles_of(user: &str, password: &str) -> Option<Vec<&'static str>> {
    match (user, password) {
        ("alice", "alice-password") => Some(vec!["user"]),
        ("admin", "admin-password") => Some(vec!["user", "admin"]),
        _ => None,
    }
}

fn session_error(e: keycard::SessionError) -> Response {
    (
        StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
        [("content-type", "application/json")],
        e.body(),
    )
        .into_response()
}

async fn login(State(a): State<Auth>, Json(req): Json<Login>) -> Response {
    let Some(roles) = roles_of(&req.username, &req.password) else {
        return (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({"error": "invalid_credentials"})),
        )
            .into_response();
    };
    match a
        .sessions
        .login(&req.username, &serde_json::json!({ "roles": roles }))
        .await
    {
        Ok(pair) => Json(pair).into_response(),
        Err(e) => session_error(e),
    }
}

async fn refresh(State(a): State<Auth>, Json(req): Json<Refresh>) -> Response {
    match a.sessions.refresh(&req.refresh_token).await {
        Ok(pair) => Json(pair).into_response(),
        Err(e) => session_error(e),
    }
}

async fn logout(State(a): State<Auth>, Authenticated(t): Authenticated) -> Response {
    match a.sessions.logout(&t).await {
        Ok(()) => Json(serde_json::json!({"logged_out": true})).into_response(),
        Err(e) => session_error(e),
    }
}

async fn jwks(State(a): State<Auth>) -> Response {
    (
        [
            ("content-type", "application/json"),
            ("cache-control", a.ring.cache_control().as_str()),
        ],
        a.ring.jwks_json(),
    )
        .into_response()
}

async fn rotate(State(a): State<Auth>) -> Response {
    let kid = keycard::random_id();
    let key = SigningKey::generate(Algorithm::EdDSA)
        .unwrap_or_else(|e| fail(&e.to_string()))
        .with_kid(&kid);
    match a.ring.rotate(key) {
        Ok(()) => Json(serde_json::json!({ "kid": kid })).into_response(),
        Err(e) => (StatusCode::CONFLICT, e.to_string()).into_response(),
    }
}

async fn start_auth(stores: &Stores) -> String {
    let (listener, url) = listen().await;
    let key = SigningKey::generate(Algorithm::EdDSA)
        .unwrap_or_else(|e| fail(&e.to_string()))
        .with_kid(keycard::random_id());
    let ring = Arc::new(KeyRing::with_grace(key, Duration::from_secs(3600)));
    let issuer = TokenIssuer::builder_with_ring(ring.clone())
        .issuer(url.clone())
        .audience(AUDIENCE)
        .build()
        .unwrap_or_else(|e| fail(&e.to_string()));
    let mut sessions = Sessions::builder(issuer).revocation_store(stores.revocation.clone());
    if let Some(r) = &stores.refresh {
        sessions = sessions.refresh_store(r.clone());
    }
    let sessions = sessions.build().unwrap_or_else(|e| fail(&e.to_string()));
    let auth = Auth {
        sessions: sessions.clone(),
        ring,
    };
    let verifier = sessions.verifier().clone();
    let app = Router::new()
        .route("/logout", post(logout))
        .merge(
            Router::new()
                .route("/admin/rotate-key", post(rotate))
                .route_layer(RequireRoles::any_of(["admin"])),
        )
        .route_layer(JwtAuth::new(verifier))
        .route("/login", post(login))
        .route("/refresh", post(refresh))
        .route("/.well-known/jwks.json", get(jwks))
        .with_state(auth);
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

// ---------------------------------------------------------------- services

fn identity(service: &str, t: &keycard::Verified, path: &str) -> serde_json::Value {
    serde_json::json!({ "service": service, "path": path, "sub": t.subject(), "roles": t.roles(), "kid": t.kid() })
}

async fn start_orders(auth_url: &str, stores: &Stores) -> String {
    let (listener, url) = listen().await;
    let verifier = remote_verifier(auth_url, stores).await;
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = Router::new()
        .route(
            "/orders/{*rest}",
            get(move |Authenticated(t): Authenticated, uri: Uri| {
                counted.fetch_add(1, Ordering::Relaxed);
                async move { Json(identity("orders", &t, uri.path())) }
            }),
        )
        .route_layer(JwtAuth::new(verifier))
        // How many requests reached the handlers: lets the demo show that
        // the gateway forwards nothing that failed authentication.
        .route(
            "/internal/hits",
            get(move || async move { hits.load(Ordering::Relaxed).to_string() }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn start_billing(auth_url: &str, stores: &Stores) -> String {
    use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
    let verifier = remote_verifier(auth_url, stores).await;
    let std_listener =
        std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| fail(&e.to_string()));
    let url = format!("http://{}", std_listener.local_addr().unwrap());
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                App::new().service(
                    web::scope("/billing")
                        .wrap(keycard_actix::RequireRoles::any_of(["admin"]))
                        .wrap(keycard_actix::JwtAuth::new(verifier.clone()))
                        .default_service(web::to(
                            |t: keycard_actix::Authenticated, req: HttpRequest| async move {
                                HttpResponse::Ok().json(identity("billing", &t, req.path()))
                            },
                        )),
                )
            })
            .workers(1)
            .listen(std_listener)
            .unwrap_or_else(|e| fail(&e.to_string()));
            server.run().await
        })
    });
    url
}

// ---------------------------------------------------------------- gateway

#[derive(Clone)]
struct Upstreams {
    client: Client<HttpConnector, Body>,
    auth: String,
    orders: String,
    billing: String,
}

/// Forward the request, original `Authorization` header included: services
/// verify again and do not trust the network alone.
async fn forward(client: &Client<HttpConnector, Body>, base: &str, mut req: Request) -> Response {
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let Ok(uri) = format!("{base}{path}").parse::<Uri>() else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    *req.uri_mut() = uri;
    req.headers_mut().remove("host");
    match client.request(req).await {
        Ok(res) => res.map(Body::new).into_response(),
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

async fn start_gateway(up: Upstreams, verifier: Verifier) -> String {
    let (listener, url) = listen().await;
    let to_auth = |up: &Upstreams| {
        let up = up.clone();
        any(move |req: Request| async move { forward(&up.client, &up.auth, req).await })
    };
    let orders = {
        let up = up.clone();
        any(move |req: Request| async move { forward(&up.client, &up.orders, req).await })
    };
    let billing = {
        let up = up.clone();
        any(move |req: Request| async move { forward(&up.client, &up.billing, req).await })
    };
    let app = Router::new()
        .route("/orders/{*rest}", orders)
        .route("/billing/{*rest}", billing)
        .route("/logout", to_auth(&up))
        // Refused requests never reach the proxy.
        .route_layer(JwtAuth::new(verifier))
        .route("/login", to_auth(&up))
        .route("/refresh", to_auth(&up));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::main]
async fn main() {
    let stores = stores().await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Body>();
    if env("KEYCARD_ONLY").as_deref() == Some("gateway") {
        let need =
            |n: &str| env(n).unwrap_or_else(|| fail(&format!("KEYCARD_ONLY=gateway needs {n}")));
        let up = Upstreams {
            client,
            auth: need("KEYCARD_AUTH_URL"),
            orders: need("KEYCARD_ORDERS_URL"),
            billing: need("KEYCARD_BILLING_URL"),
        };
        let verifier = remote_verifier(&up.auth, &stores).await;
        let gateway = start_gateway(up, verifier).await;
        println!("gateway {gateway}");
    } else {
        let auth = start_auth(&stores).await;
        let orders = start_orders(&auth, &stores).await;
        let billing = start_billing(&auth, &stores).await;
        let verifier = remote_verifier(&auth, &stores).await;
        let gateway = start_gateway(
            Upstreams {
                client,
                auth: auth.clone(),
                orders: orders.clone(),
                billing: billing.clone(),
            },
            verifier,
        )
        .await;
        println!("auth {auth}");
        println!("orders {orders}");
        println!("billing {billing}");
        println!("gateway {gateway}");
        println!("try: curl -s -X POST {gateway}/login -H 'content-type: application/json' -d '{{\"username\":\"admin\",\"password\":\"admin-password\"}}'");
    }
    // Tests read the lines above through a pipe.
    use std::io::Write;
    let _ = std::io::stdout().flush();
    std::future::pending::<()>().await;
}
