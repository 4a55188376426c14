//! The microservices example end to end: login through the gateway, both
//! services answer with the caller's identity, roles, key rotation without
//! restarts, logout refused everywhere at once; with Redis, across two
//! gateway processes.

mod common;

use std::collections::HashMap;
use std::process::Child;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::process::start_printing;
use keycard_redis::testing::RedisServer;
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn login(http: &Client, gateway: &str, user: &str) -> Value {
    let res = http
        .post(format!("{gateway}/login"))
        .json(&json!({"username": user, "password": format!("{user}-password")}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

async fn get(http: &Client, url: String, token: &str) -> (StatusCode, Value) {
    let res = http.get(url).bearer_auth(token).send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn kid(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    serde_json::from_slice::<Value>(&bytes).unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn eventually_status(http: &Client, url: String, token: &str, want: StatusCode) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, _) = get(http, url.clone(), token).await;
        if status == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url}: {status}, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn urls(m: &HashMap<String, String>) -> (String, String, String, String) {
    (
        m["auth"].clone(),
        m["gateway"].clone(),
        m["orders"].clone(),
        m["billing"].clone(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_system_in_one_process() {
    // A realistic unknown-kid cooldown (the default 30 s); a short
    // propagation delay so the test does not wait a minute.
    let (child, m) = start_printing(
        "microservices",
        &[("KEYCARD_PROPAGATION_DELAY_SECS", "4".into())],
        &["auth", "gateway", "orders", "billing"],
    );
    let _guard = Killed(child);
    let (auth, gateway, orders, billing) = urls(&m);
    let http = Client::new();

    let alice = login(&http, &gateway, "alice").await;
    let admin = login(&http, &gateway, "admin").await;
    let alice_at = alice["access_token"].as_str().unwrap();
    let admin_at = admin["access_token"].as_str().unwrap();

    // Through the gateway, both services answer with the caller's identity.
    let (s, body) = get(&http, format!("{gateway}/orders/42"), alice_at).await;
    assert_eq!(
        (s, &body["service"], &body["sub"]),
        (StatusCode::OK, &json!("orders"), &json!("alice"))
    );
    let (s, body) = get(&http, format!("{gateway}/billing/invoices"), admin_at).await;
    assert_eq!(
        (s, &body["service"], &body["sub"]),
        (StatusCode::OK, &json!("billing"), &json!("admin"))
    );
    // A user without the role gets 403 from billing.
    assert_eq!(
        get(&http, format!("{gateway}/billing/invoices"), alice_at)
            .await
            .0,
        StatusCode::FORBIDDEN
    );

    // The gateway refuses bad tokens at the edge and forwards nothing.
    let hits = || async {
        http.get(format!("{orders}/internal/hits"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let before = hits().await;
    assert_eq!(
        get(&http, format!("{gateway}/orders/1"), "not.a.token")
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        http.get(format!("{gateway}/orders/1"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        hits().await,
        before,
        "a refused request reached the orders service"
    );
    // Services verify again: no trust in the network alone.
    assert_eq!(
        http.get(format!("{orders}/orders/1"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        http.get(format!("{billing}/billing/x"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(&http, format!("{orders}/orders/1"), alice_at).await.0,
        StatusCode::OK
    );

    // Rotation, staged: the new key is published at once and signs only
    // after the propagation delay, by when every verifier has it, although
    // their unknown-kid refetch cooldown is a realistic 30 s. Nobody sees a
    // 401 for a fresh token, and old tokens keep working.
    let old_kid = kid(admin_at);
    let rotation = http
        .post(format!("{auth}/admin/rotate-key"))
        .bearer_auth(admin_at)
        .send()
        .await
        .unwrap();
    assert_eq!(rotation.status(), StatusCode::ACCEPTED);
    let rotated: Value = rotation.json().await.unwrap();
    let new_kid = rotated["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid);
    // A rotation storm: refused while one is pending.
    for _ in 0..64 {
        assert_eq!(
            http.post(format!("{auth}/admin/rotate-key"))
                .bearer_auth(admin_at)
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::CONFLICT
        );
    }
    assert_eq!(
        http.post(format!("{auth}/admin/rotate-key"))
            .bearer_auth(alice_at)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    // Until it signs, tokens still carry the old kid.
    let early = login(&http, &gateway, "admin").await;
    assert_eq!(kid(early["access_token"].as_str().unwrap()), old_kid);
    let signs_at = rotated["signs_at"].as_i64().unwrap();
    let mut fresh = early.clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    while kid(fresh["access_token"].as_str().unwrap()) != new_kid {
        assert!(Instant::now() < deadline, "the new key never signed");
        tokio::time::sleep(Duration::from_millis(200)).await;
        fresh = login(&http, &gateway, "admin").await;
        // Every token issued meanwhile works everywhere, whichever key signed it.
        let at = fresh["access_token"].as_str().unwrap();
        for url in [
            format!("{gateway}/orders/7"),
            format!("{billing}/billing/7"),
        ] {
            assert_eq!(
                get(&http, url.clone(), at).await.0,
                StatusCode::OK,
                "{url} refused a fresh token"
            );
        }
    }
    assert!(keycard::unix_now() >= signs_at);
    let fresh_at = fresh["access_token"].as_str().unwrap();
    for url in [
        format!("{gateway}/orders/7"),
        format!("{gateway}/billing/7"),
        format!("{orders}/orders/7"),
        format!("{billing}/billing/7"),
    ] {
        assert_eq!(
            get(&http, url.clone(), fresh_at).await.0,
            StatusCode::OK,
            "new kid at {url}"
        );
        assert_eq!(
            get(&http, url.clone(), admin_at).await.0,
            StatusCode::OK,
            "old kid at {url}"
        );
    }
    // A refresh token signed by the retired key still refreshes: rotation
    // never logs anyone out.
    let renewed = http
        .post(format!("{gateway}/refresh"))
        .json(&json!({"refresh_token": admin["refresh_token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(renewed.status(), StatusCode::OK);
    let renewed: Value = renewed.json().await.unwrap();
    assert_eq!(kid(renewed["access_token"].as_str().unwrap()), new_kid);

    // The gateway forwards no hop-by-hop header and no client claim about
    // forwarding; it says who the client is itself.
    let res = http
        .post(format!("{gateway}/orders/forwarding"))
        .bearer_auth(fresh_at)
        .header("connection", "x-secret")
        .header("x-secret", "not for upstream")
        .header("proxy-authorization", "Basic eDp5")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let seen: Value = res.json().await.unwrap();
    let fwd = &seen["forwarded"];
    assert_eq!(fwd["hop-by-hop"], json!([]), "{seen}");
    assert_eq!(fwd["x-forwarded-for"], "127.0.0.1", "{seen}");
    let gateway_host = gateway.trim_start_matches("http://");
    assert_eq!(fwd["x-forwarded-host"], gateway_host, "{seen}");
    // A cookie-authenticated POST from the page's own origin passes the
    // CSRF check at the gateway and at the service behind it, although the
    // gateway rewrote Host; another origin is refused at the edge.
    let by_cookie = |origin: &str| {
        http.post(format!("{gateway}/orders/by-cookie"))
            .header("cookie", format!("keycard_access={fresh_at}"))
            .header("origin", origin)
            .send()
    };
    assert_eq!(by_cookie(&gateway).await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        by_cookie("http://evil.example").await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    // A body over the gateway's limit never goes upstream.
    let big = http
        .post(format!("{gateway}/orders/big"))
        .bearer_auth(fresh_at)
        .body(vec![b'x'; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // Logout at the auth service: refused at the gateway and both services at once.
    let out = http
        .post(format!("{auth}/logout"))
        .bearer_auth(fresh_at)
        .send()
        .await
        .unwrap();
    assert!(out.status().is_success());
    for url in [
        format!("{gateway}/orders/7"),
        format!("{gateway}/billing/7"),
        format!("{orders}/orders/7"),
        format!("{billing}/billing/7"),
    ] {
        assert_eq!(
            get(&http, url.clone(), fresh_at).await.0,
            StatusCode::UNAUTHORIZED,
            "after logout at {url}"
        );
    }
    // Other sessions keep working; refresh goes through the gateway too.
    assert_eq!(
        get(&http, format!("{gateway}/billing/7"), admin_at).await.0,
        StatusCode::OK
    );
    let res = http
        .post(format!("{gateway}/refresh"))
        .json(&json!({"refresh_token": alice["refresh_token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_logout_reaches_two_gateway_processes() {
    let redis = RedisServer::start().unwrap();
    let env = [("KEYCARD_REDIS_URL", redis.url())];
    let (first, m) = start_printing(
        "microservices",
        &env,
        &["auth", "gateway", "orders", "billing"],
    );
    let _first = Killed(first);
    let (auth, gateway, orders, billing) = urls(&m);
    let second_env = [
        ("KEYCARD_REDIS_URL", redis.url()),
        ("KEYCARD_ONLY", "gateway".to_owned()),
        ("KEYCARD_AUTH_URL", auth.clone()),
        ("KEYCARD_ORDERS_URL", orders),
        ("KEYCARD_BILLING_URL", billing),
    ];
    let (second, m2) = start_printing("microservices", &second_env, &["gateway"]);
    let _second = Killed(second);
    let gateway2 = m2["gateway"].clone();
    let http = Client::new();

    let s = login(&http, &gateway, "admin").await;
    let at = s["access_token"].as_str().unwrap();
    assert_eq!(
        get(&http, format!("{gateway2}/billing/1"), at).await.0,
        StatusCode::OK
    );
    // A refresh through one gateway, a replay of the spent token through the other: reuse.
    let next: Value = http
        .post(format!("{gateway}/refresh"))
        .json(&json!({"refresh_token": s["refresh_token"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let replay = http
        .post(format!("{gateway2}/refresh"))
        .json(&json!({"refresh_token": s["refresh_token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    let next_at = next["access_token"].as_str().unwrap();
    eventually_status(
        &http,
        format!("{gateway2}/orders/1"),
        next_at,
        StatusCode::UNAUTHORIZED,
    )
    .await;

    let other = login(&http, &gateway2, "alice").await;
    let other_at = other["access_token"].as_str().unwrap();
    assert_eq!(
        get(&http, format!("{gateway}/orders/1"), other_at).await.0,
        StatusCode::OK
    );
    let out = http
        .post(format!("{auth}/logout"))
        .bearer_auth(other_at)
        .send()
        .await
        .unwrap();
    assert!(out.status().is_success());
    eventually_status(
        &http,
        format!("{gateway}/orders/1"),
        other_at,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    eventually_status(
        &http,
        format!("{gateway2}/orders/1"),
        other_at,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

/// Every service of the example stops on SIGTERM: in-flight requests
/// finish, the process exits 0 within 5 s (on 496403a only the actix-web
/// part stopped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_every_service_gracefully() {
    let (mut child, m) = start_printing(
        "microservices",
        &[],
        &["auth", "gateway", "orders", "billing"],
    );
    let (auth, gateway, orders, billing) = urls(&m);
    let http = Client::new();
    let admin = login(&http, &gateway, "admin").await;
    let at = admin["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        get(&http, format!("{gateway}/orders/1"), &at).await.0,
        StatusCode::OK
    );
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let start = Instant::now();
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(6),
            "still running 6 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "exit status {exit:?}");
    for url in [auth, gateway, orders, billing] {
        let addr = url.trim_start_matches("http://");
        assert!(
            std::net::TcpStream::connect(addr).is_err(),
            "{url} still accepts connections"
        );
    }
}
