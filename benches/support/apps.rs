//! The hello-world apps of the end-to-end load benchmark, one per
//! authentication mode: served by `examples/load_server.rs`, and called
//! in-process by `benches/instructions.rs` (`app-*` modes) so that the
//! server-side cost of a whole request is counted as instructions, not only
//! the verification.
#![allow(dead_code, missing_debug_implementations, unreachable_pub)]

// The ideal floor (`floor.rs`) is declared by whoever includes this file,
// as `crate::floor`: a file may be a module only once per crate.
use crate::floor;

use std::sync::Arc;

use jsonwebtoken::{DecodingKey, Validation};
use keycard::{Algorithm, Key, SigningKey, TokenIssuer, TokenType, Verifier};

#[derive(serde::Deserialize, Clone)]
pub(crate) struct MyClaims {
    pub(crate) sub: String,
}

pub(crate) struct Setup {
    pub(crate) token: String,
    pub(crate) floor: floor::Floor,
    pub(crate) verifier: Verifier,
    pub(crate) cached: Verifier,
    pub(crate) raw_key: DecodingKey,
    pub(crate) validation: Validation,
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture keys")
}

/// Keys, a valid token and the verifiers of every mode (`LOAD_ALG` picks the
/// algorithm: HS256, the default, RS256 or ES256).
pub(crate) fn setup() -> Setup {
    setup_for(&std::env::var("LOAD_ALG").unwrap_or_else(|_| "HS256".into()))
}

/// The same for a given algorithm.
pub(crate) fn setup_for(alg: &str) -> Setup {
    let secret = b"load-benchmark-secret-load-benchmark-secret";
    let (sk, pk, raw_key, alg) = match alg {
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

pub(crate) fn bearer(h: Option<&[u8]>) -> Option<&str> {
    std::str::from_utf8(h?).ok()?.strip_prefix("Bearer ")
}

/// The axum app of one mode, as `load_server` serves it.
pub(crate) fn axum_app(mode: &str, s: Setup) -> axum::Router {
    use axum::extract::Request;
    use axum::middleware::{from_fn, Next};
    use axum::response::Response;
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
    match mode {
        "none" => Router::new().route("/", get(hello)),
        // What any tower layer costs in axum, doing nothing: the baseline
        // of a layer's own allocations.
        "layer" => Router::new()
            .route("/", get(hello))
            .layer(tower::util::MapRequestLayer::new(|r: Request| r)),
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
            hand_layer(Router::new().route("/", get(who_ext)), move |t| {
                jsonwebtoken::decode::<MyClaims>(t, &shared.0, &shared.1)
                    .ok()
                    .map(|data| data.claims)
            })
        }
        "floor" => {
            async fn who_floor(
                axum::Extension(c): axum::Extension<Arc<floor::FloorClaims>>,
            ) -> String {
                c.sub.clone()
            }
            let floor = Arc::new(s.floor);
            hand_layer(Router::new().route("/", get(who_floor)), move |t| {
                floor.verify(t).map(Arc::new)
            })
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
    }
}

/// A hand-written layer as an application would write it with
/// `axum::middleware::from_fn`: the bearer token through `verify`, its
/// claims into the request's extensions, or 401. The floor and the
/// `jsonwebtoken` layer differ only in `verify`.
fn hand_layer<C, F>(router: axum::Router, verify: F) -> axum::Router
where
    C: Clone + Send + Sync + 'static,
    F: Fn(&str) -> Option<C> + Send + Sync + 'static,
{
    use axum::extract::Request;
    use axum::http::StatusCode;
    use axum::middleware::{from_fn, Next};
    use axum::response::IntoResponse;
    let verify = Arc::new(verify);
    router.layer(from_fn(move |mut req: Request, next: Next| {
        let verify = verify.clone();
        async move {
            let token = bearer(req.headers().get("authorization").map(|v| v.as_bytes()));
            match token.and_then(|t| verify(t)) {
                Some(claims) => {
                    req.extensions_mut().insert(claims);
                    next.run(req).await
                }
                None => StatusCode::UNAUTHORIZED.into_response(),
            }
        }
    }))
}

/// One app, called in-process (the benches): the router, the request's
/// `Authorization` value, and a current-thread runtime to drive it.
pub(crate) struct App {
    router: axum::Router,
    authorization: axum::http::HeaderValue,
    runtime: tokio::runtime::Runtime,
}

impl App {
    /// The app of `mode`, for `alg`.
    pub(crate) fn new(mode: &str, alg: &str) -> Self {
        let setup = setup_for(alg);
        let authorization = format!("Bearer {}", setup.token).parse().unwrap();
        Self::with_router(axum_app(mode, setup), authorization)
    }

    /// Another caller of the same router (its own runtime, for another
    /// thread): what a second server worker shares with the first.
    pub(crate) fn another(&self) -> Self {
        Self::with_router(self.router.clone(), self.authorization.clone())
    }

    fn with_router(router: axum::Router, authorization: axum::http::HeaderValue) -> Self {
        Self {
            router,
            authorization,
            runtime: tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
        }
    }

    /// One request through the whole app, to the collected body (`alice`, or
    /// `hello` with no auth): its length.
    pub(crate) fn request(&self) -> usize {
        use http_body_util::BodyExt as _;
        use tower::ServiceExt as _;
        let req = axum::http::Request::get("/")
            .header(
                axum::http::header::AUTHORIZATION,
                self.authorization.clone(),
            )
            .body(axum::body::Body::empty())
            .unwrap();
        self.runtime.block_on(async {
            let res = self.router.clone().oneshot(req).await.unwrap();
            assert_eq!(res.status(), 200, "the bench token was refused");
            res.into_body().collect().await.unwrap().to_bytes().len()
        })
    }
}
