//! Shared by the cross-crate tests: token factories, the three adapter
//! harnesses, and one runner so the adapters cannot drift apart.
#![allow(dead_code, unreachable_pub)]

pub mod process;

use std::convert::Infallible;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::{Request, Response};
use http_body_util::BodyExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use keycard::{Key, SigningKey, TokenIssuer, TokenType, Verifier, VerifierBuilder};
use serde_json::{json, Value};
use tower::ServiceExt;

pub const SECRET: &[u8] = b"conformance-test-secret-0123456789abcdef";
pub const OTHER_SECRET: &[u8] = b"another-secret-another-secret-another-secret";
pub const ISS: &str = "https://issuer.test";
pub const AUD: &str = "api";

pub fn now() -> i64 {
    keycard::unix_now()
}

pub fn issuer() -> TokenIssuer {
    TokenIssuer::builder(SigningKey::hs256(SECRET).unwrap())
        .issuer(ISS)
        .audience(AUD)
        .build()
        .unwrap()
}

pub fn verifier_builder() -> VerifierBuilder {
    Verifier::builder()
        .key(Key::hs256(SECRET).unwrap())
        .issuer(ISS)
        .audience(AUD)
}

pub fn verifier() -> Verifier {
    verifier_builder().build().unwrap()
}

/// A valid access token for `sub` with `roles`.
pub fn access(sub: &str, roles: &[&str]) -> String {
    issuer()
        .issue(TokenType::Access, sub, None, &json!({ "roles": roles }))
        .unwrap()
        .token
}

/// Standard valid claims, to be tweaked by a case.
pub fn claims() -> Value {
    json!({
        "iss": ISS, "aud": AUD, "sub": "alice", "roles": ["user"],
        "iat": now(), "nbf": now(), "exp": now() + 600, "jti": "j-1",
    })
}

/// Sign arbitrary claims with HS256 and `typ: at+jwt` (or `typ`).
pub fn hs256(claims: &Value, typ: Option<&str>, secret: &[u8]) -> String {
    keycard::ensure_crypto_backend().unwrap();
    let mut h = Header::new(Algorithm::HS256);
    h.typ = typ.map(str::to_owned);
    jsonwebtoken::encode(&h, claims, &EncodingKey::from_secret(secret)).unwrap()
}

pub fn at(claims: &Value) -> String {
    hs256(claims, Some("at+jwt"), SECRET)
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Sign a raw header JSON and claims JSON with HS256 and `SECRET`.
pub fn raw_hs256(header: &str, payload: &str) -> String {
    keycard::ensure_crypto_backend().unwrap();
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let sig = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &EncodingKey::from_secret(SECRET),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{input}.{sig}")
}

/// What an adapter answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub challenge: Option<String>,
    /// The `DPoP-Nonce` header (RFC 9449 §8), if any.
    pub dpop_nonce: Option<String>,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// One request against an adapter app that has `GET|POST /me` (any valid
/// token) and `GET /admin` (role `admin`).
#[derive(Debug, Clone)]
pub struct Call {
    pub method: &'static str,
    pub path: &'static str,
    pub headers: Vec<(String, String)>,
}

impl Call {
    pub fn get(path: &'static str) -> Self {
        Self {
            method: "GET",
            path,
            headers: Vec::new(),
        }
    }
    pub fn post(path: &'static str) -> Self {
        Self {
            method: "POST",
            path,
            headers: Vec::new(),
        }
    }
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }
    pub fn cookie(self, token: &str) -> Self {
        self.header("cookie", format!("keycard_access={token}"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapter {
    Tower,
    Axum,
    Actix,
}

pub const ADAPTERS: [Adapter; 3] = [Adapter::Tower, Adapter::Axum, Adapter::Actix];

fn http_request(call: &Call) -> Request<String> {
    let mut b = Request::builder().method(call.method).uri(call.path);
    for (n, v) in &call.headers {
        // As bytes: a test may send what a raw client can (hyper accepts
        // obs-text, such as UTF-8, in a header value).
        b = b.header(
            n.as_str(),
            http::HeaderValue::from_bytes(v.as_bytes()).unwrap(),
        );
    }
    b.body(String::new()).unwrap()
}

/// The handler body all adapters answer with on success: the caller's sub.
fn me_body(v: &keycard::Verified) -> String {
    json!({ "sub": v.subject(), "roles": v.roles() }).to_string()
}

/// The claims type of the typed layers ([`call_typed`]): what the handlers
/// answer with, read through `Claims<Seen>`.
#[derive(Clone, serde::Deserialize)]
pub struct Seen {
    pub sub: Option<String>,
}

/// How many requests a typed handler served from the claims its layer
/// prepared (rather than by deserializing the payload again).
pub static PREPARED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The typed handlers' body: the same as [`me_body`], with `sub` read
/// from the claims type.
fn typed_body(c: &Seen, v: &keycard::Verified) -> String {
    assert_eq!(c.sub.as_deref(), v.subject(), "claims of another token");
    json!({ "sub": c.sub, "roles": v.roles() }).to_string()
}

pub async fn call_tower(verifier: &Verifier, call: &Call) -> Answer {
    call_tower_mode(verifier, call, false).await
}

async fn call_tower_mode(verifier: &Verifier, call: &Call, typed: bool) -> Answer {
    use keycard::tower::{JwtAuth, RequireRoles};
    use tower::{service_fn, Layer};
    let handler = service_fn(move |mut req: Request<String>| async move {
        let v = req.extensions().get::<keycard::Verified>().cloned();
        let body = match v {
            Some(v) if typed => {
                if req
                    .extensions()
                    .get::<keycard::adapter::PreparedClaims<Seen>>()
                    .is_some()
                {
                    PREPARED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                let c = keycard::tower::take_claims::<Seen>(req.extensions_mut()).unwrap();
                typed_body(&c, &v)
            }
            v => v.as_ref().map_or_else(|| "anonymous".to_owned(), me_body),
        };
        Ok::<_, Infallible>(Response::new(body))
    });
    let auth = JwtAuth::new(verifier.clone());
    let auth = if typed { auth.claims::<Seen>() } else { auth };
    let res = if call.path.starts_with("/admin") {
        let svc = auth.layer(RequireRoles::any_of(["admin"]).layer(handler));
        svc.oneshot(http_request(call)).await.unwrap()
    } else {
        auth.layer(handler)
            .oneshot(http_request(call))
            .await
            .unwrap()
    };
    Answer {
        status: res.status().as_u16(),
        dpop_nonce: res
            .headers()
            .get("dpop-nonce")
            .map(|v| v.to_str().unwrap().to_owned()),
        challenge: res
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned()),
        body: res.into_body(),
    }
}

/// The table's routes: `/me` (GET, POST) and `/admin` (role `admin`).
fn axum_routes(
    me: axum::routing::MethodRouter,
    admin: axum::routing::MethodRouter,
) -> axum::Router {
    use keycard::axum::RequireRoles;
    axum::Router::new().route("/me", me).merge(
        axum::Router::new()
            .route("/admin", admin)
            .route_layer(RequireRoles::any_of(["admin"])),
    )
}

pub fn axum_app(verifier: &Verifier) -> axum::Router {
    use axum::routing::get;
    use keycard::axum::{Authenticated, JwtAuth};
    async fn me(Authenticated(v): Authenticated) -> String {
        me_body(&v)
    }
    axum_routes(get(me).post(me), get(me)).layer(JwtAuth::new(verifier.clone()))
}

/// [`axum_app`] with a typed layer and handlers taking `Claims<Seen>`.
fn axum_typed_app(verifier: &Verifier) -> axum::Router {
    use axum::routing::get;
    use keycard::axum::{Authenticated, Claims, JwtAuth};
    async fn me(Authenticated(v): Authenticated, Claims(c): Claims<Seen>) -> String {
        typed_body(&c, &v)
    }
    axum_routes(get(me).post(me), get(me)).layer(JwtAuth::new(verifier.clone()).claims::<Seen>())
}

pub async fn call_axum(verifier: &Verifier, call: &Call) -> Answer {
    call_axum_mode(verifier, call, false).await
}

async fn call_axum_mode(verifier: &Verifier, call: &Call, typed: bool) -> Answer {
    let req = http_request(call).map(axum::body::Body::from);
    let app = if typed {
        axum_typed_app(verifier)
    } else {
        axum_app(verifier)
    };
    let res = app.oneshot(req).await.unwrap();
    let status = res.status().as_u16();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let dpop_nonce = res
        .headers()
        .get("dpop-nonce")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        challenge,
        dpop_nonce,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

pub async fn call_actix(verifier: &Verifier, call: &Call) -> Answer {
    call_actix_mode(verifier, call, false).await
}

async fn call_actix_mode(verifier: &Verifier, call: &Call, typed: bool) -> Answer {
    use actix_web::{test, web, App, HttpResponse};
    use keycard_actix::{Authenticated, Claims, JwtAuth, RequireRoles};
    async fn me(v: Authenticated) -> HttpResponse {
        HttpResponse::Ok().body(me_body(&v))
    }
    async fn me_typed(v: Authenticated, c: Claims<Seen>) -> HttpResponse {
        HttpResponse::Ok().body(typed_body(&c, &v))
    }
    let auth = JwtAuth::new(verifier.clone());
    let route = |m: actix_web::http::Method| {
        if typed {
            web::method(m).to(me_typed)
        } else {
            web::method(m).to(me)
        }
    };
    use actix_web::http::Method;
    let app = test::init_service(
        App::new().service(
            web::scope("")
                .wrap(if typed { auth.claims::<Seen>() } else { auth })
                .route("/me", route(Method::GET))
                .route("/me", route(Method::POST))
                .service(
                    web::resource("/admin")
                        .wrap(RequireRoles::any_of(["admin"]))
                        .route(route(Method::GET)),
                ),
        ),
    )
    .await;
    let mut req = test::TestRequest::default()
        .method(call.method.parse().unwrap())
        .uri(call.path);
    for (n, v) in &call.headers {
        req = req.append_header((
            n.as_str(),
            actix_web::http::header::HeaderValue::from_bytes(v.as_bytes()).unwrap(),
        ));
    }
    let res = test::call_service(&app, req.to_request()).await;
    let status = res.status().as_u16();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let dpop_nonce = res
        .headers()
        .get("dpop-nonce")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = test::read_body(res).await;
    Answer {
        status,
        challenge,
        dpop_nonce,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Run one call against one adapter (actix needs its own runtime).
pub fn call(adapter: Adapter, verifier: &Verifier, call: &Call) -> Answer {
    call_in_mode(adapter, verifier, call, false)
}

/// [`call`] through the adapter's typed mode (`JwtAuth::claims::<Seen>()`),
/// with handlers that take their claims as `Seen`.
pub fn call_typed(adapter: Adapter, verifier: &Verifier, call: &Call) -> Answer {
    call_in_mode(adapter, verifier, call, true)
}

fn call_in_mode(adapter: Adapter, verifier: &Verifier, call: &Call, typed: bool) -> Answer {
    match adapter {
        Adapter::Tower => tokio_rt().block_on(call_tower_mode(verifier, call, typed)),
        Adapter::Axum => tokio_rt().block_on(call_axum_mode(verifier, call, typed)),
        Adapter::Actix => {
            actix_web::rt::System::new().block_on(call_actix_mode(verifier, call, typed))
        }
    }
}

pub fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// What a case expects: status, and the RFC 6750 error code in the
/// challenge (`None`: a bare challenge or none at all).
#[derive(Debug, Clone)]
pub struct Expect {
    pub status: u16,
    pub error: Option<&'static str>,
}

pub const OK: Expect = Expect {
    status: 200,
    error: None,
};
pub const MISSING: Expect = Expect {
    status: 401,
    error: None,
};
pub const INVALID_TOKEN: Expect = Expect {
    status: 401,
    error: Some("invalid_token"),
};
pub const INVALID_REQUEST: Expect = Expect {
    status: 400,
    error: Some("invalid_request"),
};
pub const INSUFFICIENT: Expect = Expect {
    status: 403,
    error: Some("insufficient_scope"),
};
pub const FORBIDDEN: Expect = Expect {
    status: 403,
    error: None,
};

/// Check an answer against an expectation; returns a description of the
/// mismatch.
pub fn check(answer: &Answer, expect: &Expect) -> Result<(), String> {
    if answer.status != expect.status {
        return Err(format!("status {} != {}", answer.status, expect.status));
    }
    match (expect.status, expect.error, &answer.challenge) {
        (200, _, _) => Ok(()),
        (401, None, Some(c)) if c == "Bearer realm=\"keycard\"" => Ok(()),
        (_, Some(code), Some(c)) if c.contains(&format!("error=\"{code}\"")) => {
            if answer.json()["error"] == code {
                Ok(())
            } else {
                Err(format!("body error code != {code}: {}", answer.body))
            }
        }
        (403, None, None) => Ok(()),
        _ => Err(format!(
            "challenge {:?} does not match {:?}",
            answer.challenge, expect.error
        )),
    }
}

/// Run a table of cases against all three adapters, once with the prepared
/// fast path and once with jsonwebtoken's reference signature check; fail
/// listing every mismatch.
///
/// Everything runs under a tracing subscriber at TRACE level, and the log
/// must not show any fragment of any token the cases sent.
///
/// The subscriber is the test binary's global one, set once: a scoped
/// (`with_default`) subscriber races with tests on other threads that hit
/// the same callsites first, and `tracing` may then cache "never" for them.
/// A global subscriber also means every test in the binary is checked.
pub fn run_table(builder: impl Fn() -> VerifierBuilder, cases: &[(&str, Call, Expect)]) {
    let text = match global_log() {
        Some(log) => {
            run_table_inner(builder, cases);
            log.text()
        }
        None => {
            // Someone else owns the global subscriber: fall back to a
            // scoped one.
            let log = LogCapture::default();
            tracing::subscriber::with_default(trace_subscriber(log.clone()), || {
                tracing::callsite::rebuild_interest_cache();
                run_table_inner(builder, cases)
            });
            log.text()
        }
    };
    assert!(
        text.contains("keycard.auth"),
        "the table ran without a keycard.auth span at TRACE"
    );
    for (name, c, _) in cases {
        for fragment in token_fragments(c) {
            assert!(
                !text.contains(&fragment),
                "{name}: the log at TRACE shows a token fragment {fragment:.20}..."
            );
        }
    }
}

fn trace_subscriber(log: LogCapture) -> impl tracing::Subscriber + Send + Sync {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(log)
        .finish()
}

/// The binary's global TRACE subscriber and its log, installed on first use
/// (`None` when another global subscriber was set first).
fn global_log() -> Option<LogCapture> {
    static LOG: std::sync::OnceLock<Option<LogCapture>> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let log = LogCapture::default();
        tracing::subscriber::set_global_default(trace_subscriber(log.clone()))
            .ok()
            .map(|()| log)
    })
    .clone()
}

/// Pieces of every token-like value a call carries (≥ 16 characters).
pub fn token_fragments(c: &Call) -> Vec<String> {
    let mut out = Vec::new();
    for (_, v) in &c.headers {
        for word in v.split([' ', ';', ',', '=']) {
            if word.contains('.') {
                out.extend(word.split('.').filter(|p| p.len() >= 16).map(str::to_owned));
            }
        }
    }
    out
}

/// A `tracing` writer that keeps everything in memory.
#[derive(Clone, Default)]
pub struct LogCapture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogCapture {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn run_table_inner(builder: impl Fn() -> VerifierBuilder, cases: &[(&str, Call, Expect)]) {
    let mut failures = Vec::new();
    let paths = [
        ("fast", builder().build().unwrap()),
        (
            "reference",
            builder().reference_signature_check().build().unwrap(),
        ),
        (
            "cached",
            builder().cache_verified_tokens(1000).build().unwrap(),
        ),
        // The typed layers (`JwtAuth::claims::<T>()`): the same answers.
        ("typed", builder().build().unwrap()),
        (
            "typed, cached",
            builder().cache_verified_tokens(1000).build().unwrap(),
        ),
    ];
    for (path, verifier) in &paths {
        for adapter in ADAPTERS {
            for (name, c, expect) in cases {
                let answer = if path.starts_with("typed") {
                    call_typed(adapter, verifier, c)
                } else {
                    call(adapter, verifier, c)
                };
                if let Err(why) = check(&answer, expect) {
                    failures.push(format!("{adapter:?} ({path}) / {name}: {why}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
