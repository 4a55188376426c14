//! A hello-world server for the end-to-end load benchmark (`scripts/load.sh`):
//! one framework, one authentication mode.
//!
//! `load_server <axum|actix> <none|plumbing|floor|keycard|keycard-typed|keycard-cached|jsonwebtoken> <port>`
//! with `LOAD_ALG` = HS256 (default), RS256 or ES256. It prints `token <jwt>`
//! (a valid token for the mode) and then serves `GET /` on 127.0.0.1:<port>.
//! `jsonwebtoken` is the peer-style baseline: a layer calling
//! `jsonwebtoken::decode` (axum), or actix-web-httpauth with
//! `jsonwebtoken::decode` (actix-web). `plumbing` finds the token and inserts
//! its claims without any crypto (axum only). `floor` is the ideal floor of
//! `benches/support/floor.rs` (HS256, axum only): a prepared HMAC key, one header
//! parse, one payload parse into the handler's struct, exp/iss/aud checks.

#[path = "../benches/support/floor.rs"]
mod floor;

use std::sync::Arc;

use jsonwebtoken::{DecodingKey, Validation};
use keycard::{Algorithm, Key, SigningKey, TokenIssuer, TokenType, Verifier};

#[derive(serde::Deserialize, Clone)]
struct MyClaims {
    sub: String,
}

struct Setup {
    token: String,
    floor: floor::Floor,
    verifier: Verifier,
    cached: Verifier,
    raw_key: DecodingKey,
    validation: Validation,
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture keys")
}

fn setup() -> Setup {
    let alg = std::env::var("LOAD_ALG").unwrap_or_else(|_| "HS256".into());
    let secret = b"load-benchmark-secret-load-benchmark-secret";
    let (sk, pk, raw_key, alg) = match alg.as_str() {
        "RS256" => (
            SigningKey::from_pem(Algorithm::RS256, fixture("rsa2048.pem")).unwrap(),
            Key::from_pem(Algorithm::RS256, fixture("rsa2048.pub.pem")).unwrap(),
            DecodingKey::from_rsa_pem(&fixture("rsa2048.pub.pem")).unwrap(),
            Algorithm::RS256,
        ),
        "ES256" => (
            SigningKey::from_pem(Algorithm::ES256, fixture("p256.pem")).unwrap(),
            Key::from_pem(Algorithm::ES256, fixture("p256.pub.pem")).unwrap(),
            DecodingKey::from_ec_pem(&fixture("p256.pub.pem")).unwrap(),
            Algorithm::ES256,
        ),
        _ => (
            SigningKey::hs256(secret).unwrap(),
            Key::hs256(secret).unwrap(),
            DecodingKey::from_secret(secret),
            Algorithm::HS256,
        ),
    };
    let issuer = TokenIssuer::builder(sk)
        .issuer("load")
        .audience("api")
        .access_ttl(std::time::Duration::from_secs(3600))
        .build()
        .unwrap();
    let token = issuer
        .issue(
            TokenType::Access,
            "alice",
            None,
            &serde_json::json!({"roles": ["user"]}),
        )
        .unwrap()
        .token;
    let build = |cache: bool| {
        let mut b = Verifier::builder()
            .key(pk.clone())
            .issuer("load")
            .audience("api");
        if cache {
            b = b.cache_verified_tokens(10_000);
        }
        b.build().unwrap()
    };
    let mut validation = Validation::new(alg);
    validation.set_audience(&["api"]);
    validation.set_issuer(&["load"]);
    Setup {
        token,
        floor: floor::Floor::new(secret, "load", "api"),
        verifier: build(false),
        cached: build(true),
        raw_key,
        validation,
    }
}

fn bearer(h: Option<&[u8]>) -> Option<&str> {
    std::str::from_utf8(h?).ok()?.strip_prefix("Bearer ")
}

async fn run_axum(mode: &str, port: u16, s: Setup) {
    use axum::extract::Request;
    use axum::http::StatusCode;
    use axum::middleware::{from_fn, Next};
    use axum::response::{IntoResponse, Response};
    use axum::routing::get;
    use axum::Router;
    use keycard::axum::{Claims, JwtAuth};

    async fn hello() -> &'static str {
        "hello"
    }
    async fn who(Claims(c): Claims<MyClaims>) -> String {
        c.sub
    }
    async fn who_ext(axum::Extension(c): axum::Extension<MyClaims>) -> String {
        c.sub
    }
    let app = match mode {
        "none" => Router::new().route("/", get(hello)),
        "keycard" => Router::new()
            .route("/", get(who))
            .layer(JwtAuth::new(s.verifier)),
        "keycard-cached" => Router::new()
            .route("/", get(who))
            .layer(JwtAuth::new(s.cached)),
        "keycard-typed" => Router::new()
            .route("/", get(who))
            .layer(JwtAuth::new(s.verifier).claims::<MyClaims>()),
        "jsonwebtoken" => {
            let shared = Arc::new((s.raw_key, s.validation));
            Router::new().route("/", get(who_ext)).layer(from_fn(
                move |mut req: Request, next: Next| {
                    let shared = shared.clone();
                    async move {
                        let token =
                            bearer(req.headers().get("authorization").map(|v| v.as_bytes()));
                        match token.and_then(|t| {
                            jsonwebtoken::decode::<MyClaims>(t, &shared.0, &shared.1).ok()
                        }) {
                            Some(data) => {
                                req.extensions_mut().insert(data.claims);
                                next.run(req).await
                            }
                            None => StatusCode::UNAUTHORIZED.into_response(),
                        }
                    }
                },
            ))
        }
        "floor" => {
            async fn who_floor(
                axum::Extension(c): axum::Extension<Arc<floor::FloorClaims>>,
            ) -> String {
                c.sub.clone()
            }
            let floor = Arc::new(s.floor);
            Router::new().route("/", get(who_floor)).layer(from_fn(
                move |mut req: Request, next: Next| {
                    let floor = floor.clone();
                    async move {
                        let token =
                            bearer(req.headers().get("authorization").map(|v| v.as_bytes()));
                        match token.and_then(|t| floor.verify(t)) {
                            Some(c) => {
                                req.extensions_mut().insert(Arc::new(c));
                                next.run(req).await
                            }
                            None => StatusCode::UNAUTHORIZED.into_response(),
                        }
                    }
                },
            ))
        }
        "plumbing" => Router::new().route("/", get(who_ext)).layer(from_fn(
            |mut req: Request, next: Next| async move {
                use base64::Engine as _;
                let claims = bearer(req.headers().get("authorization").map(|v| v.as_bytes()))
                    .and_then(|t| t.split('.').nth(1))
                    .and_then(|p| {
                        base64::engine::general_purpose::URL_SAFE_NO_PAD
                            .decode(p)
                            .ok()
                    })
                    .and_then(|b| serde_json::from_slice::<MyClaims>(&b).ok());
                match claims {
                    Some(c) => {
                        req.extensions_mut().insert(c);
                        next.run(req).await
                    }
                    None => Response::builder()
                        .status(401)
                        .body(axum::body::Body::empty())
                        .unwrap(),
                }
            },
        )),
        other => panic!("unknown mode {other}"),
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    axum::serve(listener, app).await.unwrap();
}

fn run_actix(mode: &str, port: u16, s: Setup) -> std::io::Result<()> {
    use actix_web::{web, App, HttpMessage, HttpResponse, HttpServer};
    use actix_web_httpauth::extractors::bearer::BearerAuth;
    use actix_web_httpauth::middleware::HttpAuthentication;
    let mode = mode.to_owned();
    let verifier = s.verifier;
    let cached = s.cached;
    let shared = Arc::new((s.raw_key, s.validation));
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(move || {
            let app = App::new();
            match mode.as_str() {
                "none" => app.route("/", web::get().to(|| async { "hello" })),
                "keycard" | "keycard-cached" | "keycard-typed" => {
                    let v = if mode == "keycard-cached" {
                        cached.clone()
                    } else {
                        verifier.clone()
                    };
                    let auth = keycard::actix::JwtAuth::new(v);
                    let auth = if mode == "keycard-typed" {
                        auth.claims::<MyClaims>()
                    } else {
                        auth
                    };
                    app.service(web::resource("/").wrap(auth).route(
                        web::get().to(|c: keycard::actix::Claims<MyClaims>| async move { c.0.sub }),
                    ))
                }
                "jsonwebtoken" => {
                    let shared = shared.clone();
                    let auth = HttpAuthentication::bearer(move |req, cred: BearerAuth| {
                        let shared = shared.clone();
                        async move {
                            match jsonwebtoken::decode::<MyClaims>(
                                cred.token(),
                                &shared.0,
                                &shared.1,
                            ) {
                                Ok(data) => {
                                    req.extensions_mut().insert(data.claims);
                                    Ok(req)
                                }
                                Err(_) => {
                                    Err((actix_web::error::ErrorUnauthorized("invalid token"), req))
                                }
                            }
                        }
                    });
                    app.service(web::resource("/").wrap(auth).route(web::get().to(
                        |req: actix_web::HttpRequest| async move {
                            let sub = req
                                .extensions()
                                .get::<MyClaims>()
                                .map(|c| c.sub.clone())
                                .unwrap_or_default();
                            HttpResponse::Ok().body(sub)
                        },
                    )))
                }
                other => panic!("unknown mode {other}"),
            }
        })
        .workers(2)
        .bind(("127.0.0.1", port))?
        .run()
        .await
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (framework, mode, port) = match args.as_slice() {
        [_, f, m, p] => (f.as_str(), m.as_str(), p.parse::<u16>().expect("port")),
        _ => {
            eprintln!("usage: load_server <axum|actix> <mode> <port>");
            std::process::exit(2);
        }
    };
    let s = setup();
    println!("token {}", s.token);
    use std::io::Write;
    let _ = std::io::stdout().flush();
    if framework == "actix" {
        run_actix(mode, port, s).unwrap();
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(run_axum(mode, port, s));
    }
}
