//! A hello-world server for the end-to-end load benchmark (`scripts/load.py`):
//! one framework, one authentication mode.
//!
//! `load_server <axum|actix> <none|layer|plumbing|floor|keycard|keycard-typed|keycard-cached|jsonwebtoken> <port>`
//! with `LOAD_ALG` = HS256 (default), RS256 or ES256. It prints `token <jwt>`
//! (a valid token for the mode) and then serves `GET /` on 127.0.0.1:<port>.
//! `jsonwebtoken` is the peer-style baseline: a layer calling
//! `jsonwebtoken::decode` (axum), or actix-web-httpauth with
//! `jsonwebtoken::decode` (actix-web). `plumbing` finds the token and inserts
//! its claims without any crypto (axum only). `floor` is the ideal floor of
//! `benches/support/floor.rs` (HS256, axum only): a prepared HMAC key, one header
//! parse, one payload parse into the handler's struct, exp/iss/aud checks.
//! `layer` is a tower layer that does nothing (axum only): what any layer
//! costs. The axum apps live in `benches/support/apps.rs`, which the
//! `instructions`, `allocations` and `requests` benches call in-process.

#[path = "../benches/support/apps.rs"]
mod apps;
#[path = "../benches/support/floor.rs"]
mod floor;

use std::sync::Arc;

use apps::{setup, MyClaims, Setup};

async fn run_axum(mode: &str, port: u16, s: Setup) {
    let app = apps::axum_app(mode, s);
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
        let mut rt = tokio::runtime::Builder::new_multi_thread();
        if let Some(n) = std::env::var("LOAD_WORKERS")
            .ok()
            .and_then(|n| n.parse().ok())
        {
            rt.worker_threads(n);
        }
        rt.enable_all()
            .build()
            .unwrap()
            .block_on(run_axum(mode, port, s));
    }
}
