//! The architecture JWT exists for, runnable in one process on loopback:
//! an auth service issues tokens and publishes its JWKS; an API gateway
//! (keycard's tower layer in front of a hyper-util reverse proxy) refuses bad
//! tokens at the edge; an orders service (axum) and a billing service
//! (actix-web) verify every token again through the auth service's JWKS.
//! See docs/architecture.md.
//!
//! `cargo run --features actix --example microservices` prints the four base URLs. Environment:
//! `KEYCARD_REDIS_URL` (or `KEYCARD_REDIS_CLUSTER`, or
//! `KEYCARD_REDIS_SENTINELS` with `KEYCARD_REDIS_SENTINEL_SERVICE`) shares
//! revocation and refresh state through Redis;
//! `KEYCARD_ONLY=gateway` with `KEYCARD_AUTH_URL`, `KEYCARD_ORDERS_URL` and
//! `KEYCARD_BILLING_URL` starts only another gateway in front of services
//! that run elsewhere; `KEYCARD_JWKS_COOLDOWN_SECS` (the verifiers'
//! unknown-`kid` refetch cooldown, default 30); `KEYCARD_PROPAGATION_DELAY_SECS`
//! (how long a new signing key is published before it signs, default 60).
//!
//! Demo users: alice / alice-password (user), admin / admin-password (user,
//! admin). `billing` needs role `admin`; `POST {auth}/admin/rotate-key` (role
//! `admin`) schedules a key rotation (202; 409 while one is pending).
//! SIGTERM or Ctrl-C stops all four services gracefully.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use keycard::axum::{Authenticated, JwtAuth, RequireRoles, SessionRejection};
use keycard::jwks::RemoteJwks;
use keycard::tower::forward::{
    is_unauthenticated_preflight, prepare_downstream_response, prepare_upstream_request,
    ForwardedBy,
};
use keycard::{
    Algorithm, KeyRing, RefreshStore, RevocationStore, RotationPlan, Sessions, SigningKey,
    TokenIssuer, Verifier,
};
use serde::Deserialize;
use tokio::sync::watch;

const AUDIENCE: &str = "keycard-demo";
/// Largest request body the gateway forwards.
const BODY_LIMIT: usize = 1024 * 1024;
/// How long the gateway waits for an upstream.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(10);

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(2)
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn env_secs(name: &str, default: u64) -> Duration {
    Duration::from_secs(env(name).map_or(default, |v| {
        v.parse()
            .unwrap_or_else(|_| fail(&format!("{name}={v:?} is not a number of seconds")))
    }))
}

/// The stores every service shares: in memory (one process) or Redis.
#[derive(Clone)]
struct Stores {
    revocation: Arc<dyn RevocationStore>,
    refresh: Option<Arc<dyn RefreshStore>>,
}

async fn stores() -> Stores {
    let wanted = [
        "KEYCARD_REDIS_URL",
        "KEYCARD_REDIS_CLUSTER",
        "KEYCARD_REDIS_SENTINELS",
    ]
    .iter()
    .any(|n| env(n).is_some());
    if wanted {
        redis_stores().await
    } else {
        Stores {
            revocation: Arc::new(keycard::InMemoryRevocationStore::new()),
            refresh: None,
        }
    }
}

/// The Redis deployment `KEYCARD_REDIS_URL`, `KEYCARD_REDIS_CLUSTER` or
/// `KEYCARD_REDIS_SENTINELS` names (see `RedisConfig::from_env`).
#[cfg(feature = "redis")]
async fn redis_stores() -> Stores {
    let config = keycard::redis::RedisConfig::from_env()
        .unwrap_or_else(|e| fail(&e))
        .unwrap_or_else(|| fail("no Redis deployment is configured"));
    let shown = config.describe();
    let s = keycard::redis::RedisStores::connect_with(config)
        .await
        .unwrap_or_else(|e| fail(&format!("{shown}: {e}")));
    Stores {
        revocation: s.revocation(),
        refresh: Some(s.refresh()),
    }
}

#[cfg(not(feature = "redis"))]
async fn redis_stores() -> Stores {
    fail("a Redis deployment is configured (KEYCARD_REDIS_*), but this build has no Redis support: run it with `--features actix,redis`")
}

async fn listen() -> (tokio::net::TcpListener, String) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| fail(&e.to_string()));
    let url = format!("http://{}", l.local_addr().unwrap());
    (l, url)
}

/// Resolves once shutdown was asked for (SIGTERM or Ctrl-C).
async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// A verifier that trusts only the auth service's published keys.
async fn remote_verifier(auth_url: &str, stores: &Stores) -> Verifier {
    let jwks = RemoteJwks::builder(format!("{auth_url}/.well-known/jwks.json"))
        .insecure_allow_http_loopback()
        .cooldown(env_secs("KEYCARD_JWKS_COOLDOWN_SECS", 30))
        // Follow the auth service's max-age (half its propagation delay),
        // even when short: it is our own service.
        .ttl(
            Duration::from_secs(300),
            Duration::from_secs(1),
            Duration::from_secs(3600),
        )
        .build()
        .await
        .unwrap_or_else(|e| fail(&format!("cannot load the auth service's JWKS: {e}")));
    Verifier::builder()
        .key_provider(Arc::new(jwks))
        .issuer(auth_url)
        .audience(AUDIENCE)
        .revocation(stores.revocation.clone())
        // Plain http on loopback; behind the gateway, the public origin
        // comes from the X-Forwarded-* headers the gateway writes.
        .insecure_plain_http_origin()
        .trust_forwarded_origin()
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

async fn login(State(a): State<Auth>, Json(req): Json<Login>) -> Response {
    let Some(roles) = roles_of(&req.username, &req.password) else {
        return (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({"error": "invalid_credentials"})),
        )
            .into_response();
    };
    // `SessionRejection` answers session errors with the one status table.
    let login = a
        .sessions
        .login(&req.username, &serde_json::json!({ "roles": roles }))
        .await;
    match login.map_err(SessionRejection) {
        Ok(pair) => Json(pair).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn refresh(
    State(a): State<Auth>,
    Json(req): Json<Refresh>,
) -> Result<Json<keycard::TokenPair>, SessionRejection> {
    Ok(Json(a.sessions.refresh(&req.refresh_token).await?))
}

async fn logout(
    State(a): State<Auth>,
    Authenticated(t): Authenticated,
) -> Result<Json<serde_json::Value>, SessionRejection> {
    a.sessions.logout(&t).await?;
    Ok(Json(serde_json::json!({"logged_out": true})))
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

/// Schedule a rotation: the new key is published now and signs after the
/// propagation delay. One rotation at a time: a storm of calls gets 409.
async fn rotate(State(a): State<Auth>) -> Response {
    let kid = keycard::random_id();
    let key = SigningKey::generate(Algorithm::EdDSA)
        .unwrap_or_else(|e| fail(&e.to_string()))
        .with_kid(&kid);
    match a.ring.rotate(key) {
        Ok(RotationPlan::Scheduled { kid, signs_at }) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "kid": kid, "signs_at": signs_at })),
        )
            .into_response(),
        Ok(plan) => (StatusCode::ACCEPTED, format!("{plan:?}")).into_response(),
        Err(e) => (
            StatusCode::CONFLICT,
            Json(serde_json::json!({"error": "rotation_refused", "error_description": e.to_string()})),
        )
            .into_response(),
    }
}

async fn start_auth(stores: &Stores, stop: watch::Receiver<bool>) -> (String, Server) {
    let (listener, url) = listen().await;
    let key = SigningKey::generate(Algorithm::EdDSA)
        .unwrap_or_else(|e| fail(&e.to_string()))
        .with_kid(keycard::random_id());
    let ring = Arc::new(
        KeyRing::builder(key)
            .propagation_delay(env_secs("KEYCARD_PROPAGATION_DELAY_SECS", 60))
            .build()
            .unwrap_or_else(|e| fail(&e.to_string())),
    );
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
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(stopped(stop))
            .await;
    });
    (url, Server::Tokio(server))
}

// ---------------------------------------------------------------- services

fn identity(service: &str, t: &keycard::Verified, path: &str) -> serde_json::Value {
    serde_json::json!({ "service": service, "path": path, "sub": t.subject(), "roles": t.roles(), "kid": t.kid() })
}

async fn start_orders(
    auth_url: &str,
    stores: &Stores,
    stop: watch::Receiver<bool>,
) -> (String, Server) {
    let (listener, url) = listen().await;
    let verifier = remote_verifier(auth_url, stores).await;
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = Router::new()
        .route(
            "/orders/{*rest}",
            any(
                move |Authenticated(t): Authenticated, uri: Uri, headers: axum::http::HeaderMap| {
                    counted.fetch_add(1, Ordering::Relaxed);
                    let seen = |h: &str| {
                        headers
                            .get(h)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned)
                    };
                    let mut body = identity("orders", &t, uri.path());
                    let hop_by_hop: Vec<&str> =
                        ["x-secret", "keep-alive", "proxy-authorization", "upgrade"]
                            .into_iter()
                            .filter(|h| headers.contains_key(*h))
                            .collect();
                    // What the gateway passed on, for the demo's tests.
                    body["forwarded"] = serde_json::json!({
                        "x-forwarded-for": seen("x-forwarded-for"),
                        "x-forwarded-host": seen("x-forwarded-host"),
                        "forwarded": seen("forwarded"),
                        "hop-by-hop": hop_by_hop,
                    });
                    async move { Json(body) }
                },
            ),
        )
        .route_layer(JwtAuth::new(verifier))
        // How many requests reached the handlers: lets the demo show that
        // the gateway forwards nothing that failed authentication.
        .route(
            "/internal/hits",
            get(move || async move { hits.load(Ordering::Relaxed).to_string() }),
        );
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(stopped(stop))
            .await;
    });
    (url, Server::Tokio(server))
}

async fn start_billing(auth_url: &str, stores: &Stores) -> (String, Server) {
    use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
    let verifier = remote_verifier(auth_url, stores).await;
    let std_listener =
        std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| fail(&e.to_string()));
    let url = format!("http://{}", std_listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                App::new().service(
                    web::scope("/billing")
                        .wrap(keycard::actix::RequireRoles::any_of(["admin"]))
                        .wrap(keycard::actix::JwtAuth::new(verifier.clone()))
                        .default_service(web::to(
                            |t: keycard::actix::Authenticated, req: HttpRequest| async move {
                                HttpResponse::Ok().json(identity("billing", &t, req.path()))
                            },
                        )),
                )
            })
            .workers(1)
            // Signals are handled by main, which stops every service.
            .disable_signals()
            .shutdown_timeout(4)
            .listen(std_listener)
            .unwrap_or_else(|e| fail(&e.to_string()))
            .run();
            let _ = tx.send(server.handle());
            server.await
        })
    });
    let handle = rx
        .recv()
        .unwrap_or_else(|_| fail("the billing service did not start"));
    (url, Server::Actix(handle, thread))
}

// ---------------------------------------------------------------- gateway

#[derive(Clone)]
struct Upstreams {
    client: Client<HttpConnector, Body>,
    auth: String,
    orders: String,
    billing: String,
}

/// Forward the request, original `Authorization` header included (services
/// verify again and do not trust the network alone), with hop-by-hop
/// headers removed, the forwarding headers replaced by the gateway's own
/// view, a body limit and an upstream timeout.
async fn forward(
    client: &Client<HttpConnector, Body>,
    base: &str,
    peer: SocketAddr,
    req: Request,
) -> Response {
    // A CORS preflight passes the gateway's JwtAuth unauthenticated; it is
    // never forwarded (this demo has no CORS layer to answer it).
    if is_unauthenticated_preflight(&req) {
        return StatusCode::FORBIDDEN.into_response();
    }
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let Ok(uri) = format!("{base}{path}").parse::<Uri>() else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    // Read the body within the limit before anything goes upstream. The
    // rest of an oversized body stays unread, so the connection closes:
    // say so, or the client may reuse it.
    let Ok(bytes) = axum::body::to_bytes(body, BODY_LIMIT).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, [("connection", "close")]).into_response();
    };
    parts.uri = uri;
    let mut req = Request::from_parts(parts, Body::from(bytes));
    prepare_upstream_request(&mut req, &ForwardedBy::new(peer.ip(), "http"));
    // The upstream's own authority, not the client's.
    req.headers_mut().remove("host");
    match tokio::time::timeout(UPSTREAM_TIMEOUT, client.request(req)).await {
        Ok(Ok(res)) => {
            let mut res = res.map(Body::new);
            prepare_downstream_response(&mut res);
            res.into_response()
        }
        Ok(Err(_)) => StatusCode::BAD_GATEWAY.into_response(),
        Err(_) => StatusCode::GATEWAY_TIMEOUT.into_response(),
    }
}

fn proxy_to(up: &Upstreams, pick: fn(&Upstreams) -> &String) -> axum::routing::MethodRouter {
    let up = up.clone();
    any(
        move |ConnectInfo(peer): ConnectInfo<SocketAddr>, req: Request| async move {
            forward(&up.client, pick(&up), peer, req).await
        },
    )
}

async fn start_gateway(
    up: Upstreams,
    verifier: Verifier,
    stop: watch::Receiver<bool>,
) -> (String, Server) {
    let (listener, url) = listen().await;
    let app = Router::new()
        .route("/orders/{*rest}", proxy_to(&up, |u| &u.orders))
        .route("/billing/{*rest}", proxy_to(&up, |u| &u.billing))
        .route("/logout", proxy_to(&up, |u| &u.auth))
        // Refused requests never reach the proxy.
        .route_layer(JwtAuth::new(verifier))
        .route("/login", proxy_to(&up, |u| &u.auth))
        .route("/refresh", proxy_to(&up, |u| &u.auth));
    let server = tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(stopped(stop))
        .await;
    });
    (url, Server::Tokio(server))
}

/// A running service, to be stopped on shutdown.
enum Server {
    Tokio(tokio::task::JoinHandle<()>),
    Actix(
        actix_web::dev::ServerHandle,
        std::thread::JoinHandle<std::io::Result<()>>,
    ),
}

/// Wait for SIGTERM or Ctrl-C.
async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).unwrap_or_else(|e| fail(&e.to_string()));
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

#[tokio::main]
async fn main() {
    let stores = stores().await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Body>();
    let (stop_tx, stop) = watch::channel(false);
    let mut servers = Vec::new();
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
        let (gateway, s) = start_gateway(up, verifier, stop.clone()).await;
        servers.push(s);
        println!("gateway {gateway}");
    } else {
        let (auth, s) = start_auth(&stores, stop.clone()).await;
        servers.push(s);
        let (orders, s) = start_orders(&auth, &stores, stop.clone()).await;
        servers.push(s);
        let (billing, s) = start_billing(&auth, &stores).await;
        servers.push(s);
        let verifier = remote_verifier(&auth, &stores).await;
        let (gateway, s) = start_gateway(
            Upstreams {
                client,
                auth: auth.clone(),
                orders: orders.clone(),
                billing: billing.clone(),
            },
            verifier,
            stop.clone(),
        )
        .await;
        servers.push(s);
        println!("auth {auth}");
        println!("orders {orders}");
        println!("billing {billing}");
        println!("gateway {gateway}");
        println!("try: curl -s -X POST {gateway}/login -H 'content-type: application/json' -d '{{\"username\":\"admin\",\"password\":\"admin-password\"}}'");
    }
    // Tests read the lines above through a pipe.
    use std::io::Write;
    let _ = std::io::stdout().flush();

    signal().await;
    // Whoever read our stdout may be gone: never panic on a closed pipe.
    let _ = writeln!(std::io::stdout(), "shutting down");
    let _ = stop_tx.send(true);
    let drain = async {
        for s in servers {
            match s {
                Server::Tokio(task) => {
                    let _ = task.await;
                }
                Server::Actix(handle, thread) => {
                    handle.stop(true).await;
                    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
                }
            }
        }
    };
    // In-flight requests finish; whatever hangs is cut off at 5 s.
    if tokio::time::timeout(Duration::from_secs(5), drain)
        .await
        .is_err()
    {
        eprintln!("some requests did not finish within 5 s");
    }
}
