//! What the quickstart demos share, whatever the framework: configuration
//! from the environment, the demo users, and the session logic.
#![allow(dead_code, unreachable_pub)]

pub mod greeter;
pub mod ops;

use std::sync::Arc;

use keycard::config::VerifierConfig;
use keycard::{
    CookieSettings, EndpointResponse, RequestHeaders, Sessions, SigningKey, TokenIssuer,
    UserStatus, Verifier,
};
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

/// The current roles of a user, or `None` for an unknown one (the refresh
/// hook asks this on every refresh, so a role change or a removed user
/// takes effect at the next refresh).
pub fn roles_of(username: &str) -> Option<Vec<&'static str>> {
    USERS
        .iter()
        .find(|(user, _, _)| *user == username)
        .map(|(_, _, roles)| roles.to_vec())
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

/// Read `PORT`, `KEYCARD_SECRET`, `KEYCARD_ACCESS_TTL_SECS` and the
/// verifier settings of [`VerifierConfig::from_env`] (`KEYCARD_REDIS_URL`,
/// `KEYCARD_LEEWAY_SECS`, `KEYCARD_CONFIG`, ...); exits with a clear
/// message naming the setting when one is wrong or Redis cannot be reached.
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
    // Plain http on loopback: cookies without `Secure`, and the service's
    // own origin is http://<host> for the CSRF check (development only).
    // The refresh cookie goes to every path, so that /logout can end the
    // session from it alone once the access cookie has expired.
    let mut config = VerifierConfig::from_env().unwrap_or_else(|e| fail(&e.to_string()));
    if !config.providers.is_empty() {
        fail("the quickstart verifies the tokens it issues itself: KEYCARD_ISSUER, KEYCARD_JWKS_URL and [[providers]] are for the resource_server example");
    }
    let mut cookies = CookieSettings::new()
        .insecure_http_for_local_development()
        .refresh_path("/");
    match &config.cookie_name {
        Some(name) => {
            let refresh = cookies.refresh_name();
            cookies = cookies.names(name.clone(), refresh);
        }
        None => config.cookie_name = Some(cookies.access_name()),
    }
    config.insecure_plain_http_origin.get_or_insert(true);
    // Check the settings now, so that a wrong one stops the start with its
    // name (applying them again for each verifier gives the same result).
    if let Err(e) = config.apply(Verifier::builder()) {
        fail(&e.to_string());
    }
    let revocation_url = config.revocation_url.clone();
    let mut builder = Sessions::builder(issuer)
        .configure_verifiers(move |b| config.apply(b).unwrap_or_else(|e| fail(&e.to_string())))
        .on_refresh(|sub: String, _claims| async move {
            Ok(match roles_of(&sub) {
                Some(roles) => UserStatus::Active(
                    serde_json::json!({ "roles": roles })
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                ),
                None => UserStatus::Refused,
            })
        });
    if redis_wanted(revocation_url.as_deref()) {
        builder = with_redis(builder, revocation_url.as_deref()).await;
    }
    let sessions = builder.build().unwrap_or_else(|e| fail(&e.to_string()));
    Demo {
        sessions,
        cookies,
        port,
    }
}

/// Whether the environment (`KEYCARD_REDIS_URL`, `KEYCARD_REDIS_CLUSTER`,
/// `KEYCARD_REDIS_SENTINELS`) or the verifier configuration's
/// `revocation_url` names a Redis deployment.
pub fn redis_wanted(url: Option<&str>) -> bool {
    url.is_some()
        || [
            "KEYCARD_REDIS_URL",
            "KEYCARD_REDIS_CLUSTER",
            "KEYCARD_REDIS_SENTINELS",
        ]
        .iter()
        .any(|n| std::env::var_os(n).is_some())
}

/// Connect the Redis stores the environment names (see
/// `RedisConfig::from_env`; a `revocation_url` from the configuration file
/// counts as `KEYCARD_REDIS_URL`); exits with a message naming the setting
/// when one is wrong or Redis cannot be reached.
#[cfg(feature = "redis")]
pub async fn redis_stores(url: Option<&str>) -> keycard::redis::RedisStores {
    let config = keycard::redis::RedisConfig::from_lookup(|name| match name {
        "KEYCARD_REDIS_URL" => std::env::var(name).ok().or(url.map(str::to_owned)),
        _ => std::env::var(name).ok(),
    })
    .unwrap_or_else(|e| fail(&e))
    .unwrap_or_else(|| fail("no Redis deployment is configured"));
    let shown = config.describe();
    let stores = keycard::redis::RedisStores::connect_with(config)
        .await
        .unwrap_or_else(|e| fail(&format!("{shown}: {e}")));
    println!("Sessions and revocations are shared through {shown}.");
    stores
}

/// Share sessions and revocations through Redis (feature `redis`).
#[cfg(feature = "redis")]
async fn with_redis(
    builder: keycard::SessionsBuilder,
    url: Option<&str>,
) -> keycard::SessionsBuilder {
    let stores = redis_stores(url).await;
    builder
        .revocation_store(stores.revocation())
        .refresh_store(stores.refresh())
}

#[cfg(not(feature = "redis"))]
async fn with_redis(_: keycard::SessionsBuilder, _: Option<&str>) -> keycard::SessionsBuilder {
    fail("a Redis deployment is configured (KEYCARD_REDIS_*), but this build has no Redis support: run it with `--features redis`")
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
    /// `POST /login`: a wrong username or password is 401; otherwise the
    /// pair, with cookies when the request passed the CSRF check.
    pub async fn login<H: RequestHeaders + ?Sized>(
        &self,
        method: &str,
        headers: &H,
        req: &LoginRequest,
    ) -> EndpointResponse {
        let Some(roles) = check_user(&req.username, &req.password) else {
            return EndpointResponse::new(
                401,
                r#"{"error":"invalid_credentials","error_description":"wrong username or password"}"#,
            );
        };
        let result = self
            .sessions
            .login(&req.username, &serde_json::json!({ "roles": roles }))
            .await;
        self.sessions
            .login_response(&self.cookies, method, headers, result, req.cookie_only)
    }

    /// `POST /refresh`, with every rule of the library's refresh endpoint.
    pub async fn refresh<H: RequestHeaders + ?Sized>(
        &self,
        method: &str,
        headers: &H,
        body: &[u8],
    ) -> EndpointResponse {
        self.sessions
            .refresh_endpoint(&self.cookies, method, headers, body)
            .await
    }

    /// `POST /logout`: by the access token, or by the refresh cookie alone.
    pub async fn logout<H: RequestHeaders + ?Sized>(
        &self,
        method: &str,
        headers: &H,
    ) -> EndpointResponse {
        self.sessions
            .logout_endpoint(&self.cookies, method, headers)
            .await
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

/// Shared so both frameworks answer identically.
pub type Shared = Arc<Demo>;
