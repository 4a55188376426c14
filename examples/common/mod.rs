//! What the quickstart demos share, whatever the framework: configuration
//! from the environment, the demo users, and the session logic.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use keycard::{CookieSettings, Sessions, SigningKey, TokenIssuer, TokenPair};
use serde::Deserialize;

/// `iss` and `aud` of the demo's tokens.
pub const DEMO_ISSUER: &str = "keycard-quickstart";

/// The demo's configuration and sessions.
#[derive(Clone)]
pub struct Demo {
    pub sessions: Sessions,
    pub cookies: CookieSettings,
    pub port: u16,
}

#[derive(Deserialize)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// Browser pages send `true`: the tokens then travel only in HttpOnly
    /// cookies, never in the response body that JavaScript can read.
    #[serde(default)]
    pub cookie_only: bool,
}

#[derive(Deserialize, Default)]
pub struct RefreshRequest {
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub cookie_only: bool,
}

/// The JSON body for a fresh pair: the whole pair, or without the tokens
/// for cookie-only clients.
pub fn pair_body(pair: &TokenPair, cookie_only: bool) -> serde_json::Value {
    if cookie_only {
        serde_json::json!({ "token_type": pair.token_type, "expires_in": pair.expires_in })
    } else {
        serde_json::to_value(pair).unwrap_or_default()
    }
}

/// The demo users: (username, password, roles).
const USERS: &[(&str, &str, &[&str])] = &[
    ("alice", "alice-password", &["user"]),
    ("admin", "admin-password", &["user", "admin"]),
];

/// Compare without an early exit, so timing does not reveal how much of a
/// password matched.
fn same(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

/// The roles of a user whose password is right.
pub fn check_user(username: &str, password: &str) -> Option<Vec<&'static str>> {
    let mut found = None;
    for (user, pass, roles) in USERS {
        let ok =
            same(user.as_bytes(), username.as_bytes()) & same(pass.as_bytes(), password.as_bytes());
        if ok {
            found = Some(roles.to_vec());
        }
    }
    found
}

/// Read `PORT`, `KEYCARD_SECRET` and `KEYCARD_REDIS_URL`; exits with a
/// clear message when the secret is too short or Redis cannot be reached.
pub async fn demo_from_env(default_port: u16) -> Demo {
    let port = match std::env::var("PORT") {
        Ok(p) => p
            .parse()
            .unwrap_or_else(|_| fail(&format!("PORT={p:?} is not a port number"))),
        Err(_) => default_port,
    };
    let secret = match std::env::var("KEYCARD_SECRET") {
        Ok(s) => s,
        Err(_) => {
            let s = format!(
                "{}{}{}",
                keycard::random_id(),
                keycard::random_id(),
                keycard::random_id()
            );
            println!("KEYCARD_SECRET is not set: generated a random secret (tokens will not survive a restart).");
            s
        }
    };
    let key = SigningKey::hs256(secret.as_bytes()).unwrap_or_else(|e| {
        fail(&format!(
            "KEYCARD_SECRET is unusable: {e}. Use at least 32 random bytes."
        ))
    });
    let mut issuer = TokenIssuer::builder(key)
        .issuer(DEMO_ISSUER)
        .audience(DEMO_ISSUER);
    if let Some(secs) = env_secs("KEYCARD_ACCESS_TTL_SECS") {
        issuer = issuer.access_ttl(std::time::Duration::from_secs(secs));
    }
    let issuer = issuer.build().unwrap_or_else(|e| fail(&e.to_string()));
    // Plain http on loopback: cookies without `Secure` (development only).
    let cookies = CookieSettings::new().insecure_http_for_local_development();
    let access_cookie = cookies.access_name();
    let mut builder = Sessions::builder(issuer)
        .configure_verifiers(move |b| b.cookie_name(access_cookie.clone()));
    if let Ok(url) = std::env::var("KEYCARD_REDIS_URL") {
        let stores = keycard_redis::RedisStores::connect(&url)
            .await
            .unwrap_or_else(|e| fail(&format!("KEYCARD_REDIS_URL={url}: {e}")));
        println!("Sessions and revocations are shared through Redis at {url}.");
        builder = builder
            .revocation_store(stores.revocation())
            .refresh_store(stores.refresh());
    }
    let sessions = builder.build().unwrap_or_else(|e| fail(&e.to_string()));
    Demo {
        sessions,
        cookies,
        port,
    }
}

fn env_secs(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.parse()
            .unwrap_or_else(|_| fail(&format!("{name}={v:?} is not a number of seconds"))),
    )
}

pub fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(2)
}

impl Demo {
    /// Log a user in, or `None` for a wrong username or password.
    pub async fn login(
        &self,
        req: &LoginRequest,
    ) -> Option<Result<TokenPair, keycard::SessionError>> {
        let roles = check_user(&req.username, &req.password)?;
        Some(
            self.sessions
                .login(&req.username, &serde_json::json!({ "roles": roles }))
                .await,
        )
    }

    /// The `Set-Cookie` values for a fresh pair.
    pub fn set_cookies(&self, pair: &TokenPair) -> [String; 2] {
        [
            self.cookies
                .access_cookie(&pair.access_token, pair.expires_in),
            self.cookies
                .refresh_cookie(&pair.refresh_token, pair.refresh_expires_in),
        ]
    }

    /// The `Set-Cookie` values that clear both cookies.
    pub fn clear_cookies(&self) -> [String; 2] {
        [self.cookies.clear_access(), self.cookies.clear_refresh()]
    }

    pub fn banner(&self, framework: &str) {
        let port = self.port;
        println!("keycard quickstart ({framework}) listening on http://127.0.0.1:{port}");
        println!(
            "  demo users: alice / alice-password (user), admin / admin-password (user, admin)"
        );
        println!(
            "  try: curl -s -X POST localhost:{port}/login -H 'content-type: application/json' \\"
        );
        println!("         -d '{{\"username\":\"alice\",\"password\":\"alice-password\"}}'");
    }
}

/// Why a refresh request is refused before the session is consulted.
pub enum Refusal {
    /// A cookie-borne refresh from another origin (403).
    Csrf(keycard::AuthError),
    /// A malformed body or no refresh token (400, with this JSON body).
    BadRequest(&'static str),
}

impl Demo {
    /// The refresh token of a `POST /refresh`: from the JSON body, or else
    /// from the refresh cookie after the CSRF check. Returns the token and
    /// whether the client asked for a cookie-only answer.
    pub fn refresh_input<H: keycard::RequestHeaders + ?Sized>(
        &self,
        method: &str,
        headers: &H,
        body: &[u8],
    ) -> Result<(String, bool), Refusal> {
        let req = if body.iter().all(u8::is_ascii_whitespace) {
            RefreshRequest::default()
        } else {
            serde_json::from_slice::<RefreshRequest>(body).map_err(|_| {
                Refusal::BadRequest(
                    r#"{"error":"invalid_request","error_description":"body must be JSON {\"refresh_token\": \"...\"}"}"#,
                )
            })?
        };
        if let Some(token) = req.refresh_token {
            return Ok((token, req.cookie_only));
        }
        let cookie = self
            .cookies
            .refresh_token_checked(self.sessions.refresh_verifier(), method, headers)
            .map_err(Refusal::Csrf)?;
        match cookie {
            Some(t) => Ok((t.to_owned(), req.cookie_only)),
            None => Err(Refusal::BadRequest(
                r#"{"error":"invalid_request","error_description":"no refresh token"}"#,
            )),
        }
    }
}

/// Shared so both frameworks answer identically.
pub type Shared = Arc<Demo>;
