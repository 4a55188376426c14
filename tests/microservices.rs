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
    let (child, m) = start_printing(
        "microservices",
        &[],
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

    // Rotation: old tokens keep working; new ones carry the new kid and are
    // accepted by both services without restart.
    let old_kid = kid(admin_at);
    let rotated: Value = http
        .post(format!("{auth}/admin/rotate-key"))
        .bearer_auth(admin_at)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_kid = rotated["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid);
    assert_eq!(
        http.post(format!("{auth}/admin/rotate-key"))
            .bearer_auth(alice_at)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    tokio::time::sleep(Duration::from_millis(1100)).await; // the services' unknown-kid cooldown
    let fresh = login(&http, &gateway, "admin").await;
    let fresh_at = fresh["access_token"].as_str().unwrap();
    assert_eq!(kid(fresh_at), new_kid);
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
