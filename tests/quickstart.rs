//! The quickstart contract, end to end over HTTP, for the axum and the
//! actix-web demo alike.

mod common;

use std::process::Command;

use base64::Engine as _;
use common::process::{example_path, start_example, Running};
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};

const SECRET: &str = "quickstart-test-secret-0123456789abcdef";

struct Api {
    server: Running,
    http: Client,
}

impl Api {
    fn start(example: &str) -> Self {
        Self {
            server: start_example(example, &[("KEYCARD_SECRET", SECRET.into())]),
            http: Client::new(),
        }
    }

    async fn login(&self, user: &str, pass: &str) -> Response {
        self.http
            .post(self.server.url("/login"))
            .json(&json!({"username": user, "password": pass}))
            .send()
            .await
            .unwrap()
    }

    async fn tokens(&self, user: &str) -> Value {
        let res = self.login(user, &format!("{user}-password")).await;
        assert_eq!(res.status(), StatusCode::OK);
        res.json().await.unwrap()
    }

    async fn get(&self, path: &str, bearer: &str) -> Response {
        self.http
            .get(self.server.url(path))
            .bearer_auth(bearer)
            .send()
            .await
            .unwrap()
    }

    async fn refresh_json(&self, refresh: &str) -> Response {
        self.http
            .post(self.server.url("/refresh"))
            .json(&json!({ "refresh_token": refresh }))
            .send()
            .await
            .unwrap()
    }
}

fn cookies(res: &Response) -> Vec<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

async fn contract(example: &str) {
    let api = Api::start(example);
    let health = api
        .http
        .get(api.server.url("/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);

    // Login: JSON pair, HttpOnly SameSite cookies for both tokens.
    let res = api.login("alice", "alice-password").await;
    assert_eq!(res.status(), StatusCode::OK);
    let set = cookies(&res);
    let access_cookie = set
        .iter()
        .find(|c| c.starts_with("keycard_access="))
        .expect("access cookie");
    let refresh_cookie = set
        .iter()
        .find(|c| c.starts_with("keycard_refresh="))
        .expect("refresh cookie");
    for c in [access_cookie, refresh_cookie] {
        assert!(c.contains("HttpOnly") && c.contains("SameSite"), "{c}");
    }
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let access = body["access_token"].as_str().unwrap().to_owned();
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let claims = payload(&access);
    assert_eq!(claims["iss"], "keycard-quickstart");
    assert_eq!(claims["aud"], "keycard-quickstart");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["roles"], json!(["user"]));
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    assert!(claims["jti"].is_string());

    // Browser pages ask for cookie-only answers: no token in the body.
    let quiet = api
        .http
        .post(api.server.url("/login"))
        .json(&json!({"username": "alice", "password": "alice-password", "cookie_only": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(quiet.status(), StatusCode::OK);
    assert_eq!(cookies(&quiet).len(), 2);
    let quiet: Value = quiet.json().await.unwrap();
    assert!(
        quiet.get("access_token").is_none() && quiet.get("refresh_token").is_none(),
        "{quiet}"
    );

    assert_eq!(
        api.login("alice", "wrong").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.login("mallory", "alice-password").await.status(),
        StatusCode::UNAUTHORIZED
    );

    // /me by header and by cookie.
    let me: Value = api.get("/me", &access).await.json().await.unwrap();
    assert_eq!(me, json!({"sub": "alice", "roles": ["user"]}));
    let by_cookie = api
        .http
        .get(api.server.url("/me"))
        .header("cookie", format!("keycard_access={access}"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_cookie.status(), StatusCode::OK);
    let anon = api.http.get(api.server.url("/me")).send().await.unwrap();
    assert_eq!(anon.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        anon.headers()["www-authenticate"],
        "Bearer realm=\"keycard\""
    );

    // /admin: 403 insufficient_scope for alice, 200 for admin.
    let denied = api.get("/admin", &access).await;
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    assert!(denied.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("insufficient_scope"));
    let admin = api.tokens("admin").await;
    assert_eq!(
        api.get("/admin", admin["access_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::OK
    );

    // Refresh by JSON, then reuse of the spent token revokes the family.
    let res = api.refresh_json(&refresh).await;
    assert_eq!(res.status(), StatusCode::OK);
    let next: Value = res.json().await.unwrap();
    let next_access = next["access_token"].as_str().unwrap();
    assert_eq!(api.get("/me", next_access).await.status(), StatusCode::OK);
    let reuse = api.refresh_json(&refresh).await;
    assert!(
        matches!(reuse.status().as_u16(), 400 | 401),
        "{}",
        reuse.status()
    );
    assert_eq!(
        api.refresh_json(next["refresh_token"].as_str().unwrap())
            .await
            .status()
            .as_u16(),
        400
    );
    assert_eq!(
        api.get("/me", next_access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // Wrong type: an access token is not a refresh token.
    assert_eq!(
        api.refresh_json(admin["access_token"].as_str().unwrap())
            .await
            .status()
            .as_u16(),
        400
    );

    // Refresh by cookie.
    let pair = api.tokens("alice").await;
    let res = api
        .http
        .post(api.server.url("/refresh"))
        .header(
            "cookie",
            format!(
                "keycard_refresh={}",
                pair["refresh_token"].as_str().unwrap()
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // ...but not from another origin.
    let fresh: Value = res.json().await.unwrap();
    let cross = api
        .http
        .post(api.server.url("/refresh"))
        .header(
            "cookie",
            format!(
                "keycard_refresh={}",
                fresh["refresh_token"].as_str().unwrap()
            ),
        )
        .header("origin", "http://evil.test")
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        api.refresh_json(fresh["refresh_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::OK,
        "a refused request changes nothing"
    );

    // Logout ends that session only, at once, and clears the cookies.
    let laptop = api.tokens("alice").await;
    let phone = api.tokens("alice").await;
    let out = api
        .http
        .post(api.server.url("/logout"))
        .bearer_auth(laptop["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert!(out.status().is_success(), "{}", out.status());
    let cleared = cookies(&out);
    assert!(
        cleared
            .iter()
            .any(|c| c.starts_with("keycard_access=;") && c.contains("Max-Age=0")),
        "{cleared:?}"
    );
    assert!(
        cleared.iter().any(|c| c.starts_with("keycard_refresh=;")),
        "{cleared:?}"
    );
    assert_eq!(
        api.get("/me", laptop["access_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.refresh_json(laptop["refresh_token"].as_str().unwrap())
            .await
            .status()
            .as_u16(),
        400
    );
    assert_eq!(
        api.get("/me", phone["access_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::OK
    );
    // Logout by cookie from the page's own origin works too.
    let by_cookie = api
        .http
        .post(api.server.url("/logout"))
        .header(
            "cookie",
            format!("keycard_access={}", phone["access_token"].as_str().unwrap()),
        )
        .header("origin", api.server.url(""))
        .send()
        .await
        .unwrap();
    assert!(by_cookie.status().is_success());
    assert_eq!(
        api.get("/me", phone["access_token"].as_str().unwrap())
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

/// December audit: `/logout` needed a live access cookie, so once it had
/// expired the user could not log out and the refresh session lived on.
/// Now the refresh cookie alone ends the session (after the CSRF check), a
/// text/plain body never reaches `/refresh`, and a cross-site logout
/// changes nothing.
async fn logout_and_refresh_hardening(example: &str) {
    let api = Api::start(example);
    let origin = api.server.url("");
    let pair = api.tokens("alice").await;
    let refresh = pair["refresh_token"].as_str().unwrap();
    let access = pair["access_token"].as_str().unwrap();
    // The browser dropped the expired access cookie; only the refresh
    // cookie is left.
    let cross = api
        .http
        .post(api.server.url("/logout"))
        .header("cookie", format!("keycard_refresh={refresh}"))
        .header("origin", "http://evil.test")
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    assert!(
        cookies(&cross).is_empty(),
        "a cross-site logout cleared cookies"
    );
    let res = api
        .http
        .post(api.server.url("/logout"))
        .header("cookie", format!("keycard_refresh={refresh}"))
        .header("origin", &origin)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{example}: logout by refresh cookie"
    );
    assert!(
        cookies(&res)
            .iter()
            .any(|c| c.starts_with("keycard_refresh=;")),
        "{example}: cookies not cleared"
    );
    let again = api.refresh_json(refresh).await;
    assert_eq!(
        again.status(),
        StatusCode::BAD_REQUEST,
        "{example}: the session lived on"
    );
    assert_eq!(
        api.get("/me", access).await.status(),
        StatusCode::UNAUTHORIZED,
        "{example}: the session's access token lived on"
    );
    // No credentials at all: 401, as before.
    let none = api
        .http
        .post(api.server.url("/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);

    // A token in a body that is not JSON-typed is never read.
    let attacker = api.tokens("admin").await;
    let form = api
        .http
        .post(api.server.url("/refresh"))
        .header("content-type", "text/plain")
        .header("origin", "http://evil.test")
        .body(format!(
            r#"{{"refresh_token":"{}","x":"="}}"#,
            attacker["refresh_token"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(cookies(&form).is_empty(), "login CSRF set cookies");
}

#[tokio::test]
async fn axum_logout_and_refresh_hardening() {
    logout_and_refresh_hardening("quickstart").await;
}

#[tokio::test]
async fn actix_logout_and_refresh_hardening() {
    logout_and_refresh_hardening("quickstart_actix").await;
}

#[tokio::test]
async fn axum_quickstart_contract() {
    contract("quickstart").await;
}

#[tokio::test]
async fn actix_quickstart_contract() {
    contract("quickstart_actix").await;
}

#[test]
fn a_short_secret_is_refused_with_a_clear_message() {
    for example in ["quickstart", "quickstart_actix"] {
        let out = Command::new(example_path(example))
            .env("KEYCARD_SECRET", "too-short")
            .env("PORT", "1")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{example}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("KEYCARD_SECRET") && err.contains("32"),
            "{example}: {err}"
        );
    }
}

/// Two quickstart processes (one axum, one actix) sharing one Redis: a
/// login on one works on the other, refresh rotates across them, and a
/// logout on one is refused by the other.
#[tokio::test]
async fn two_processes_share_sessions_through_redis() {
    let redis = keycard_redis::testing::RedisServer::start().unwrap();
    share_sessions(&[("KEYCARD_REDIS_URL", redis.url())]).await;
}

/// The same through a Redis Cluster (`KEYCARD_REDIS_CLUSTER`).
#[tokio::test]
async fn two_processes_share_sessions_through_a_redis_cluster() {
    let cluster = keycard_redis::testing::RedisCluster::start(3, 0).unwrap();
    share_sessions(&[("KEYCARD_REDIS_CLUSTER", cluster.seeds().join(","))]).await;
}

/// The same behind Redis Sentinel (`KEYCARD_REDIS_SENTINELS`).
#[tokio::test]
async fn two_processes_share_sessions_behind_redis_sentinel() {
    let set = keycard_redis::testing::RedisSentinel::start(1).unwrap();
    share_sessions(&[
        ("KEYCARD_REDIS_SENTINELS", set.sentinels().join(",")),
        (
            "KEYCARD_REDIS_SENTINEL_SERVICE",
            keycard_redis::testing::RedisSentinel::SERVICE.to_owned(),
        ),
    ])
    .await;
}

async fn share_sessions(redis: &[(&str, String)]) {
    let mut env = vec![("KEYCARD_SECRET", SECRET.to_owned())];
    env.extend(redis.iter().cloned());
    let a = Api {
        server: start_example("quickstart", &env),
        http: Client::new(),
    };
    let b = Api {
        server: start_example("quickstart_actix", &env),
        http: Client::new(),
    };
    let pair = a.tokens("alice").await;
    let access = pair["access_token"].as_str().unwrap();
    assert_eq!(b.get("/me", access).await.status(), StatusCode::OK);

    // Refresh on B, then replaying the spent token on A is reuse.
    let next: Value = b
        .refresh_json(pair["refresh_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert!(next["access_token"].is_string(), "{next}");
    assert_eq!(
        a.refresh_json(pair["refresh_token"].as_str().unwrap())
            .await
            .status()
            .as_u16(),
        400
    );

    // Logout on A is refused on B.
    let s = a.tokens("alice").await;
    let token = s["access_token"].as_str().unwrap();
    let out = a
        .http
        .post(a.server.url("/logout"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert!(out.status().is_success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let status = b.get("/me", token).await.status();
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "B still accepts a logged-out token ({status})"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
