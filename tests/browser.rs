//! The cookie flow in a real browser: headless Chromium (Debian's
//! `chromium` and `chromium-driver`) driven over WebDriver with fantoccini,
//! against the axum quickstart's page at `/`.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::routing::get;
use common::process::{free_port, start_example};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_chromedriver() -> (Driver, u16) {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver must be installed (Debian package chromium-driver; CI installs it)");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Driver(child), port)
}

async fn browser(driver_port: u16, profile: &std::path::Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::rustls()
        .expect("TLS roots")
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .expect("a WebDriver session in headless Chromium")
}

/// Click a button on the page and wait for the output to change.
async fn click(c: &Client, id: &str) -> (String, String) {
    let before = c
        .execute(
            "return document.getElementById('out').dataset.seq || ''",
            vec![],
        )
        .await
        .unwrap();
    c.find(Locator::Id(id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = c
            .execute("const o = document.getElementById('out'); return [o.dataset.seq || '', o.dataset.status, o.textContent];", vec![])
            .await
            .unwrap();
        if v[0] != before {
            return (
                v[1].as_str().unwrap_or("").to_owned(),
                v[2].as_str().unwrap_or("").to_owned(),
            );
        }
        assert!(Instant::now() < deadline, "clicking {id} changed nothing");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn cookie(c: &Client, name: &str) -> Option<String> {
    c.get_all_cookies()
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.name() == name && !k.value().is_empty())
        .map(|k| k.value().to_owned())
}

/// A page on a second local origin that submits `form` (HTML) at once.
async fn attacker_site(form: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let page =
        format!("<!doctype html>{form}<script>document.getElementById('f').submit()</script>");
    let app =
        axum::Router::new().route("/", get(move || async move { axum::response::Html(page) }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

/// Open the attacker's page, wait until its form landed on the API, and
/// return the API's answer as the browser shows it.
async fn submit_cross_site(c: &Client, base: &str, form: String) -> String {
    let evil = attacker_site(form).await;
    c.goto(&format!("{evil}/")).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let url = c.current_url().await.unwrap();
        if url.as_str().starts_with(base) {
            let text: Value = c
                .execute("return document.body.innerText", vec![])
                .await
                .unwrap();
            return text.as_str().unwrap_or("").to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "the cross-site form did not submit"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A `text/plain` form whose body reads as JSON: `name=value` with the
/// `=` swallowed into a string.
fn text_plain_json_form(action: &str, json_prefix: &str) -> String {
    format!(
        "<form id=f method=POST enctype=\"text/plain\" action=\"{action}\">\
         <input type=hidden name='{json_prefix}' value='\"}}'></form>"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cookie_flow_in_headless_chromium() {
    let api = start_example(
        "quickstart",
        &[
            (
                "KEYCARD_SECRET",
                "browser-test-secret-0123456789abcdefgh".into(),
            ),
            ("KEYCARD_ACCESS_TTL_SECS", "3".into()),
        ],
    );
    let base = api.url("");
    let (_driver, driver_port) = start_chromedriver();
    let profile = std::env::temp_dir().join(format!("keycard-chromium-{}", std::process::id()));
    let c = browser(driver_port, &profile).await;

    c.goto(&format!("{base}/")).await.unwrap();
    // Login sets both cookies; JavaScript sees neither token.
    let (status, body) = click(&c, "login-btn").await;
    assert_eq!(status, "200", "{body}");
    assert!(
        !body.contains("access_token"),
        "the page received a token: {body}"
    );
    let access = cookie(&c, "keycard_access").await.expect("access cookie");
    assert!(cookie(&c, "keycard_access").await.is_some());
    let js_cookies = c.execute("return document.cookie", vec![]).await.unwrap();
    let js_cookies = js_cookies.as_str().unwrap();
    assert!(
        !js_cookies.contains(&access) && !js_cookies.contains("keycard_"),
        "visible to JS: {js_cookies}"
    );

    // "Who am I" works through the cookie alone.
    let (status, body) = click(&c, "whoami").await;
    assert_eq!(status, "200", "{body}");
    assert!(body.contains("\"alice\""), "{body}");

    // The access token expires; the page renews it through the refresh
    // cookie without a new login.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let (status, body) = click(&c, "whoami").await;
    assert_eq!(status, "200", "after expiry: {body}");
    let renewed = cookie(&c, "keycard_access")
        .await
        .expect("a renewed access cookie");
    assert_ne!(renewed, access, "the access token was renewed");

    // A form on a second local origin posting to the API with the user's
    // cookies is refused and changes nothing.
    let http = reqwest::Client::new();
    let text = submit_cross_site(
        &c,
        &base,
        format!("<form id=f method=POST action=\"{base}/logout\"></form>"),
    )
    .await;
    assert!(text.contains("forbidden"), "{text}");

    // Login CSRF through /refresh: a text/plain form carrying the
    // attacker's own refresh token must not plant the attacker's session
    // in the victim's browser...
    let attacker: Value = http
        .post(format!("{base}/login"))
        .json(&json!({"username": "admin", "password": "admin-password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let attacker_refresh = attacker["refresh_token"].as_str().unwrap();
    let before_access = cookie(&c, "keycard_access").await;
    let before_refresh = cookie(&c, "keycard_refresh").await;
    let text = submit_cross_site(
        &c,
        &base,
        text_plain_json_form(
            &format!("{base}/refresh"),
            &format!(r#"{{"refresh_token":"{attacker_refresh}","x":""#),
        ),
    )
    .await;
    assert!(!text.contains("access_token"), "{text}");
    assert_eq!(
        cookie(&c, "keycard_access").await,
        before_access,
        "login CSRF: the access cookie changed"
    );
    assert_eq!(
        cookie(&c, "keycard_refresh").await,
        before_refresh,
        "login CSRF: the refresh cookie changed"
    );
    // ...and garbage posted to /refresh must not clear the victim's cookies.
    let _ = submit_cross_site(
        &c,
        &base,
        text_plain_json_form(&format!("{base}/refresh"), "garbage"),
    )
    .await;
    assert_eq!(
        cookie(&c, "keycard_access").await,
        before_access,
        "forced logout: the access cookie changed"
    );
    assert_eq!(
        cookie(&c, "keycard_refresh").await,
        before_refresh,
        "forced logout: the refresh cookie changed"
    );
    // The victim is still themselves.
    c.goto(&format!("{base}/")).await.unwrap();
    let (status, body) = click(&c, "whoami").await;
    assert_eq!(status, "200", "{body}");
    assert!(body.contains("\"alice\""), "{body}");

    let still = http
        .get(format!("{base}/me"))
        .bearer_auth(&renewed)
        .send()
        .await
        .unwrap();
    assert_eq!(
        still.status(),
        200,
        "the cross-site request logged the user out"
    );
    c.goto(&format!("{base}/")).await.unwrap();
    let (status, _) = click(&c, "whoami").await;
    assert_eq!(status, "200");

    // Logout clears the cookies, and the old access token no longer works
    // even when another client replays it.
    let (status, _) = click(&c, "logout").await;
    assert_eq!(status, "200");
    assert!(
        cookie(&c, "keycard_access").await.is_none(),
        "access cookie not cleared"
    );
    let (status, _) = click(&c, "whoami").await;
    assert_eq!(status, "401");
    let replay = http
        .get(format!("{base}/me"))
        .bearer_auth(&renewed)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 401);

    c.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&profile);
}
