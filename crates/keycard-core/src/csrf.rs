//! Cross-site request forgery defence for cookie-authenticated requests.
//!
//! A browser attaches cookies to requests that another site triggers, so a
//! request that authenticates by cookie with an unsafe method (anything but
//! GET, HEAD, OPTIONS, TRACE) must prove it came from an allowed origin.
//! Bearer-header requests need no such proof: a browser never adds them on
//! its own.
//!
//! The check, in order: `Sec-Fetch-Site: same-origin` (or `none`, a
//! user-initiated navigation) passes; otherwise the `Origin` header must be
//! one of the allowed origins or match the request's own `Host`; a request
//! with neither header (not a modern browser) passes.
//!
//! ```
//! use keycard_core::{Key, SigningKey, TokenIssuer, TokenType, Verifier};
//!
//! let secret = b"an-example-secret-of-32-bytes-or-more";
//! let issuer = TokenIssuer::builder(SigningKey::hs256(secret)?).build()?;
//! let token = issuer.issue(TokenType::Access, "alice", None, &serde_json::json!({}))?.token;
//! let verifier = Verifier::builder().key(Key::hs256(secret)?).build()?;
//! let cookie = format!("keycard_access={token}");
//!
//! // A form on another site posts with the user's cookie: 403, nothing runs.
//! let cross: &[(&str, &str)] = &[("cookie", &cookie), ("origin", "https://evil.example"), ("host", "api.example")];
//! let rt = tokio::runtime::Builder::new_current_thread().build()?;
//! assert_eq!(rt.block_on(verifier.authenticate("POST", cross)).unwrap_err().status(), 403);
//!
//! // The same request from the API's own origin passes.
//! let same: &[(&str, &str)] = &[("cookie", &cookie), ("origin", "https://api.example"), ("host", "api.example")];
//! assert!(rt.block_on(verifier.authenticate("POST", same)).is_ok());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::error::{AuthError, AuthErrorKind};
use crate::source::RequestHeaders;

/// The CSRF policy of a verifier.
#[derive(Debug, Clone, Default)]
pub struct CsrfPolicy {
    pub(crate) allowed_origins: Vec<String>,
    pub(crate) disabled: bool,
}

/// Whether an HTTP method is safe (RFC 9110 §9.2.1).
pub fn is_safe_method(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE")
}

fn single<'a, H: RequestHeaders + ?Sized>(headers: &'a H, name: &str) -> Option<&'a [u8]> {
    let mut it = headers.header_values(name);
    let first = it.next()?;
    // Two values of a header that must be single is itself suspicious:
    // treat it as an unknown, cross-site value.
    if it.next().is_some() {
        return Some(b"\0");
    }
    Some(first)
}

impl CsrfPolicy {
    /// Check a cookie-authenticated request with `method`.
    pub fn check<H: RequestHeaders + ?Sized>(
        &self,
        method: &str,
        headers: &H,
    ) -> Result<(), AuthError> {
        if self.disabled || is_safe_method(method) {
            return Ok(());
        }
        let fetch_site = single(headers, "sec-fetch-site");
        if matches!(fetch_site, Some(b"same-origin" | b"none")) {
            return Ok(());
        }
        let origin = single(headers, "origin");
        match origin {
            Some(origin) => {
                let origin = std::str::from_utf8(origin).unwrap_or("");
                if self.allowed_origins.iter().any(|o| o == origin) || same_host(origin, headers) {
                    Ok(())
                } else {
                    Err(refused("origin not allowed"))
                }
            }
            // A browser that sends Sec-Fetch-Site but says the request is
            // cross-site or same-site without an Origin: refuse.
            None if fetch_site.is_some() => Err(refused("cross-site fetch without origin")),
            None => Ok(()),
        }
    }
}

fn refused(why: &'static str) -> AuthError {
    AuthError::new(AuthErrorKind::CrossSiteRequest).with_detail(why)
}

/// `Origin: scheme://host[:port]` against `Host: host[:port]`.
fn same_host<H: RequestHeaders + ?Sized>(origin: &str, headers: &H) -> bool {
    let Some(host) = single(headers, "host").and_then(|h| std::str::from_utf8(h).ok()) else {
        return false;
    };
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let default_port = match scheme {
        "http" => ":80",
        "https" => ":443",
        _ => return false,
    };
    let norm = |a: &str| {
        let a = a.to_ascii_lowercase();
        if a.rsplit_once(':')
            .is_some_and(|(_, p)| p.chars().all(|c| c.is_ascii_digit()) && !a.ends_with(']'))
        {
            a
        } else {
            format!("{a}{default_port}")
        }
    };
    !authority.is_empty() && norm(authority) == norm(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(h: &[(&str, &str)]) -> bool {
        let p = CsrfPolicy {
            allowed_origins: vec!["https://app.example".into()],
            disabled: false,
        };
        p.check("POST", h).is_ok()
    }

    #[test]
    fn policy() {
        assert!(check(&[]), "non-browser client");
        assert!(check(&[("sec-fetch-site", "same-origin")]));
        assert!(!check(&[("sec-fetch-site", "cross-site")]));
        assert!(!check(&[
            ("sec-fetch-site", "same-site"),
            ("origin", "http://127.0.0.1:4000"),
            ("host", "127.0.0.1:3000")
        ]));
        assert!(check(&[
            ("origin", "http://127.0.0.1:3000"),
            ("host", "127.0.0.1:3000")
        ]));
        assert!(check(&[
            ("origin", "http://localhost"),
            ("host", "localhost:80")
        ]));
        assert!(check(&[
            ("origin", "https://app.example"),
            ("host", "api.example")
        ]));
        assert!(!check(&[
            ("origin", "https://evil.example"),
            ("host", "api.example")
        ]));
        assert!(!check(&[("origin", "null"), ("host", "api.example")]));
        let p = CsrfPolicy::default();
        assert!(p
            .check("GET", &[("sec-fetch-site", "cross-site")][..])
            .is_ok());
    }
}
