//! Operating the examples: `/ready`, `/metrics`, logs at `RUST_LOG=trace`
//! that never show a token or a secret, readiness that follows Redis and
//! the identity provider, a start while the identity provider is away, and
//! a graceful stop on SIGTERM and SIGINT that finishes in-flight requests.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use axum::routing::get;
use common::process::{free_port, start_example, start_example_logging, stop_with, Running};
use keycard::{Algorithm, SigningKey, TokenIssuer, TokenType};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

const SECRET: &str = "operations-test-secret-0123456789abcdef";
const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");

fn log_file(name: &str) -> (std::path::PathBuf, Stdio) {
    let path = std::env::temp_dir().join(format!(
        "keycard-ops-{name}-{}-{}.log",
        std::process::id(),
        keycard::random_id()
    ));
    let file = std::fs::File::create(&path).unwrap();
    (path, Stdio::from(file))
}

/// Every piece of a token that must never reach a log.
fn fragments(token: &str) -> Vec<String> {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts.push(token.to_owned());
    parts.retain(|p| p.len() >= 16);
    parts
}

fn assert_log_is_clean(log: &str, secrets: &[String]) {
    for s in secrets {
        assert!(
            !log.contains(s.as_str()),
            "the log shows a secret or a token fragment: {s:.24}..."
        );
    }
}

async fn status_and_body(http: &Client, url: String) -> (StatusCode, String) {
    let res = http.get(url).send().await.unwrap();
    (res.status(), res.text().await.unwrap())
}

/// The value of a Prometheus sample whose line starts with `series`.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A request whose body has not fully arrived when the signal comes: it
/// must still be answered.
struct InFlight {
    stream: TcpStream,
    rest: Vec<u8>,
}

fn start_login(server: &Running) -> InFlight {
    let body = br#"{"username":"alice","password":"alice-password"}"#;
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "POST /login HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body[..10]).unwrap();
    stream.flush().unwrap();
    InFlight {
        stream,
        rest: body[10..].to_vec(),
    }
}

impl InFlight {
    fn finish(mut self) -> String {
        self.stream.write_all(&self.rest).unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        // Read the head and the declared body (the server may keep the
        // connection open until it stops).
        loop {
            let n = self.stream.read(&mut buf).unwrap_or(0);
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&answer);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    })
                    .unwrap_or(0);
                if body.len() >= len {
                    break;
                }
            }
        }
        String::from_utf8_lossy(&answer).into_owned()
    }
}

async fn quickstart_operations(example: &str, signal: &str) {
    let (log_path, stderr) = log_file(example);
    let server = start_example_logging(
        example,
        &[
            ("KEYCARD_SECRET", SECRET.into()),
            ("RUST_LOG", "trace".into()),
        ],
        stderr,
    );
    let http = Client::new();
    let mut secrets = vec![
        SECRET.to_owned(),
        "alice-password".to_owned(),
        "admin-password".to_owned(),
        "wrong-password-1234".to_owned(),
    ];

    // Neither /ready nor /metrics needs a token.
    let (status, body) = status_and_body(&http, server.url("/ready")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["ready"], true);
    let res = http.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    // Before any token was decided, every series of the bounded label
    // sets is already there at zero (no missing series after a deploy).
    let first = res.text().await.unwrap();
    for series in [
        r#"keycard_auth_requests_total{outcome="verified"} 0"#,
        r#"keycard_auth_requests_total{outcome="rejected",reason="expired"} 0"#,
        r#"keycard_auth_requests_total{outcome="rejected",reason="bad_signature"} 0"#,
        r#"keycard_auth_requests_total{outcome="rejected",reason="revoked"} 0"#,
    ] {
        assert!(
            first.contains(series),
            "{example}: no {series} in:\n{first}"
        );
    }
    assert!(
        first.contains("keycard_auth_duration_seconds"),
        "{example}: the duration histogram is registered:\n{first}"
    );

    // Traffic of every kind.
    let login = |user: &str, pass: &str| {
        http.post(server.url("/login"))
            .json(&json!({"username": user, "password": pass}))
            .send()
    };
    assert_eq!(
        login("alice", "wrong-password-1234")
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let pair: Value = login("alice", "alice-password")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = pair["access_token"].as_str().unwrap().to_owned();
    let refresh = pair["refresh_token"].as_str().unwrap().to_owned();
    secrets.extend(fragments(&access));
    secrets.extend(fragments(&refresh));
    for _ in 0..3 {
        let me = http
            .get(server.url("/me"))
            .bearer_auth(&access)
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), StatusCode::OK);
    }
    let by_cookie = http
        .get(server.url("/me"))
        .header("cookie", format!("keycard_access={access}"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_cookie.status(), StatusCode::OK);
    // A forged signature and garbage.
    let (head, rest) = access.rsplit_once('.').unwrap();
    let forged = format!("{head}.{}", rest.chars().rev().collect::<String>());
    secrets.extend(fragments(&forged));
    for bad in [forged.as_str(), "not-a-token-but-long-enough-to-matter"] {
        let res = http
            .get(server.url("/me"))
            .bearer_auth(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    secrets.push("not-a-token-but-long-enough-to-matter".into());
    let denied = http
        .get(server.url("/admin"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    // Rotation, reuse, cross-site refresh, logout.
    let next: Value = http
        .post(server.url("/refresh"))
        .json(&json!({ "refresh_token": refresh }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let next_access = next["access_token"].as_str().unwrap().to_owned();
    secrets.extend(fragments(&next_access));
    secrets.extend(fragments(next["refresh_token"].as_str().unwrap()));
    let reuse = http
        .post(server.url("/refresh"))
        .json(&json!({ "refresh_token": refresh }))
        .send()
        .await
        .unwrap();
    assert!(reuse.status().is_client_error());
    let other: Value = login("admin", "admin-password")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let other_access = other["access_token"].as_str().unwrap().to_owned();
    let other_refresh = other["refresh_token"].as_str().unwrap().to_owned();
    secrets.extend(fragments(&other_access));
    secrets.extend(fragments(&other_refresh));
    let cross = http
        .post(server.url("/refresh"))
        .header("cookie", format!("keycard_refresh={other_refresh}"))
        .header("origin", "http://evil.test")
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    let out = http
        .post(server.url("/logout"))
        .bearer_auth(&other_access)
        .send()
        .await
        .unwrap();
    assert!(out.status().is_success());

    // The metrics count what happened, with bounded labels only.
    let metrics = http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let verified = sample(
        &metrics,
        r#"keycard_auth_requests_total{outcome="verified"}"#,
    )
    .unwrap_or_else(|| panic!("no verified count in\n{metrics}"));
    assert!(verified >= 5.0, "{verified}\n{metrics}");
    for (series, at_least) in [
        (
            r#"keycard_auth_requests_total{outcome="rejected",reason="bad_signature"}"#,
            1.0,
        ),
        (
            r#"keycard_auth_requests_total{outcome="rejected",reason="malformed_token"}"#,
            1.0,
        ),
        ("keycard_refresh_rotations_total", 1.0),
        ("keycard_refresh_reuse_detected_total", 1.0),
        (r#"keycard_logouts_total{scope="session"}"#, 1.0),
    ] {
        let got = sample(&metrics, series).unwrap_or_else(|| panic!("no {series} in\n{metrics}"));
        assert!(got >= at_least, "{series} = {got}");
    }
    assert!(
        metrics.contains("keycard_auth_duration_seconds"),
        "{metrics}"
    );
    assert!(!metrics.contains("alice") && !metrics.contains("\"admin\""));
    assert_log_is_clean(&metrics, &secrets);

    // A request in flight when the signal arrives is answered; then the
    // process exits 0 within 5 s.
    let in_flight = start_login(&server);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let signal = signal.to_owned();
    let stopper = std::thread::spawn(move || {
        let mut server = server;
        let started = Instant::now();
        let status = stop_with(&mut server, &signal, Duration::from_secs(5));
        (status, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answer = tokio::task::spawn_blocking(move || in_flight.finish())
        .await
        .unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "{example}: the in-flight request was not answered: {answer:.200}"
    );
    let (status, took) = stopper.join().unwrap();
    assert!(status.success(), "{example}: exit status {status:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let answer_body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    if let Ok(v) = serde_json::from_str::<Value>(answer_body) {
        for t in ["access_token", "refresh_token"] {
            if let Some(t) = v[t].as_str() {
                secrets.extend(fragments(t));
            }
        }
    }

    // At trace level the log has the decisions, and no token or secret.
    let log = std::fs::read_to_string(&log_path).unwrap();
    std::fs::remove_file(&log_path).unwrap();
    assert!(
        log.contains("keycard.auth"),
        "{example}: no keycard.auth span at trace:\n{log:.2000}"
    );
    assert!(
        log.contains("bad_signature"),
        "{example}: the refusal reason is not logged"
    );
    assert_log_is_clean(&log, &secrets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_quickstart_ready_metrics_clean_logs_and_sigterm() {
    quickstart_operations("quickstart", "TERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actix_quickstart_ready_metrics_clean_logs_and_sigint() {
    quickstart_operations("quickstart_actix", "INT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actix_quickstart_stops_on_sigterm_too() {
    let mut server = start_example("quickstart_actix", &[("KEYCARD_SECRET", SECRET.into())]);
    let status = stop_with(&mut server, "TERM", Duration::from_secs(5));
    assert!(status.success(), "{status:?}");
}

async fn eventually(http: &Client, url: &str, want: StatusCode, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = match http.get(url).send().await {
            Ok(r) => (r.status(), r.text().await.unwrap_or_default()),
            Err(e) => (StatusCode::IM_A_TEAPOT, e.to_string()),
        };
        if status == want {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{url}: still {status} after {within:?}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// With `KEYCARD_REDIS_URL` set, `/ready` follows Redis: 503 with a reason
/// while it is down, 200 again once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_ready_follows_redis() {
    let mut redis = keycard_redis::testing::RedisServer::start().unwrap();
    let server = start_example(
        "quickstart",
        &[
            ("KEYCARD_SECRET", SECRET.into()),
            ("KEYCARD_REDIS_URL", redis.url()),
        ],
    );
    let http = Client::new();
    let ready = server.url("/ready");
    eventually(&http, &ready, StatusCode::OK, Duration::from_secs(10)).await;
    redis.kill();
    let body = eventually(
        &http,
        &ready,
        StatusCode::SERVICE_UNAVAILABLE,
        Duration::from_secs(20),
    )
    .await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ready"], false);
    assert!(!v["reasons"].as_array().unwrap().is_empty(), "{body}");
    // Liveness is not readiness.
    assert_eq!(
        http.get(server.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    redis.restart().unwrap();
    eventually(&http, &ready, StatusCode::OK, Duration::from_secs(30)).await;
}

fn rs_key() -> SigningKey {
    SigningKey::from_pem(
        Algorithm::RS256,
        std::fs::read(format!("{FIX}rsa2048.pem")).unwrap(),
    )
    .unwrap()
    .with_kid("rs")
}

/// An identity provider serving `key`'s JWKS on `port`.
async fn idp_on(port: u16, key: &SigningKey) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let doc = json!({ "keys": [key.verification_key().to_public_jwk().unwrap()] }).to_string();
    let app = axum::Router::new().route("/jwks.json", get(move || async move { doc }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
}

/// Kubernetes restarts pods while identity providers blip: the resource
/// server starts anyway, answers 503 (and `/ready` 503) until the keys
/// arrive, then verifies; it logs no token at trace; SIGINT stops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_server_starts_while_the_identity_provider_is_down() {
    let idp_port = free_port();
    let (log_path, stderr) = log_file("resource_server");
    let mut server = start_example_logging(
        "resource_server",
        &[
            (
                "KEYCARD_JWKS_URL",
                // Credentials in the URL never show in /ready, logs or errors.
                format!("http://jwks-user:JWKS-PASSWORD@127.0.0.1:{idp_port}/jwks.json?api_key=QUERY-SECRET"),
            ),
            ("KEYCARD_ALLOW_HTTP", "1".into()),
            ("KEYCARD_ISSUER", "https://idp.test".into()),
            ("KEYCARD_AUDIENCE", "orders".into()),
            ("KEYCARD_JWKS_COOLDOWN_SECS", "1".into()),
            ("RUST_LOG", "trace".into()),
        ],
        stderr,
    );
    let http = Client::new();
    let key = rs_key();
    let token = TokenIssuer::builder(key.clone())
        .issuer("https://idp.test")
        .audience("orders")
        .build()
        .unwrap()
        .issue(
            TokenType::Access,
            "alice",
            None,
            &json!({"roles": ["admin"]}),
        )
        .unwrap()
        .token;
    let (status, body) = status_and_body(&http, server.url("/ready")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("\"ready\":false"), "{body}");
    assert!(
        !body.contains("JWKS-PASSWORD") && !body.contains("QUERY-SECRET"),
        "{body}"
    );
    let me = http
        .get(server.url("/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::SERVICE_UNAVAILABLE);

    idp_on(idp_port, &key).await;
    eventually(
        &http,
        &server.url("/ready"),
        StatusCode::OK,
        Duration::from_secs(30),
    )
    .await;
    let me = http
        .get(server.url("/admin"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    // RFC 9728: the metadata (KEYCARD_RESOURCE defaults to this service),
    // and challenges that point to it.
    let meta: Value = http
        .get(server.url("/.well-known/oauth-protected-resource"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["resource"], server.url(""));
    assert_eq!(meta["authorization_servers"], json!(["https://idp.test"]));
    let anon = http.get(server.url("/me")).send().await.unwrap();
    assert_eq!(anon.status(), StatusCode::UNAUTHORIZED);
    assert!(anon.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains(&format!(
            "resource_metadata=\"{}\"",
            server.url("/.well-known/oauth-protected-resource")
        )));
    let metrics = http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        sample(&metrics, r#"keycard_jwks_fetches_total{result="error"}"#).unwrap_or(0.0) >= 1.0,
        "{metrics}"
    );
    assert!(
        sample(&metrics, r#"keycard_jwks_fetches_total{result="ok"}"#).unwrap_or(0.0) >= 1.0,
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "keycard_jwks_keys"),
        Some(1.0),
        "{metrics}"
    );
    assert!(sample(
        &metrics,
        r#"keycard_auth_requests_total{outcome="rejected",reason="keys_unavailable"}"#
    )
    .is_some());

    let status = stop_with(&mut server, "INT", Duration::from_secs(5));
    assert!(status.success(), "{status:?}");
    let log = std::fs::read_to_string(&log_path).unwrap();
    std::fs::remove_file(&log_path).unwrap();
    assert!(log.contains("keycard.auth"), "{log:.2000}");
    let mut secrets = fragments(&token);
    secrets.extend(["JWKS-PASSWORD".to_owned(), "QUERY-SECRET".to_owned()]);
    assert_log_is_clean(&log, &secrets);
}

/// A client that never finishes its request does not hold the process:
/// after the stop signal, in-flight requests get a bounded grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_does_not_stop_the_stop() {
    for example in ["quickstart", "resource_server"] {
        let env: Vec<(&str, String)> = match example {
            "quickstart" => vec![("KEYCARD_SECRET", SECRET.into())],
            _ => vec![
                ("KEYCARD_JWKS_URL", "http://127.0.0.1:9/jwks.json".into()),
                ("KEYCARD_ALLOW_HTTP", "1".into()),
                ("KEYCARD_ISSUER", "https://idp.test".into()),
            ],
        };
        let mut server = start_example(example, &env);
        let mut stalled = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        stalled
            .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n")
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let status = stop_with(&mut server, "TERM", Duration::from_secs(5));
        assert!(status.success(), "{example}: {status:?}");
        drop(stalled);
    }
}
