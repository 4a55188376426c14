//! The ideal floor for HS256, the yardstick of the performance goals: what
//! a hand-written, single-purpose layer does at least. A prepared HMAC key,
//! one header parse, one payload parse straight into the handler's struct,
//! and the `exp`/`iss`/`aud` checks. No duplicate-member refusal, no
//! algorithm pinning beyond HS256, no token types, no revocation, no
//! error model: keycard does all of those on top.
//!
//! Shared by the criterion and instruction benches (`#[path]`-included) and
//! by `examples/load_server.rs`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// The handler's own claims type, as a hand-optimised app would write it
/// (the registered claims it checks live in it too).
#[derive(serde::Deserialize)]
#[allow(dead_code)]
pub(crate) struct FloorClaims {
    pub(crate) sub: String,
    #[serde(default)]
    pub(crate) roles: Vec<String>,
    pub(crate) exp: i64,
    pub(crate) iss: String,
    pub(crate) aud: String,
}

#[derive(serde::Deserialize)]
struct FloorHeader<'a> {
    alg: &'a str,
}

/// The prepared key and the expected `iss`/`aud`.
pub(crate) struct Floor {
    key: aws_lc::hmac::Key,
    iss: String,
    aud: String,
}

impl Floor {
    pub(crate) fn new(secret: &[u8], iss: &str, aud: &str) -> Self {
        Self {
            key: aws_lc::hmac::Key::new(aws_lc::hmac::HMAC_SHA256, secret),
            iss: iss.into(),
            aud: aud.into(),
        }
    }

    /// The token's claims, or `None` for anything the floor refuses.
    pub(crate) fn verify(&self, token: &str) -> Option<FloorClaims> {
        let (input, sig) = token.rsplit_once('.')?;
        let (h, p) = input.split_once('.')?;
        let mut buf = [0u8; 256];
        let n = URL_SAFE_NO_PAD.decode_slice(h, &mut buf).ok()?;
        let header: FloorHeader<'_> = serde_json::from_slice(&buf[..n]).ok()?;
        if header.alg != "HS256" {
            return None;
        }
        let mut mac = [0u8; 64];
        let n = URL_SAFE_NO_PAD.decode_slice(sig, &mut mac).ok()?;
        aws_lc::hmac::verify(&self.key, input.as_bytes(), &mac[..n]).ok()?;
        let payload = URL_SAFE_NO_PAD.decode(p).ok()?;
        let claims: FloorClaims = serde_json::from_slice(&payload).ok()?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs() as i64;
        (claims.exp + 30 >= now && claims.iss == self.iss && claims.aud == self.aud)
            .then_some(claims)
    }
}
