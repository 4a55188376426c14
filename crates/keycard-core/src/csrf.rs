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
//! one of the allowed origins or the request's own origin, which is
//! `https://` + its `Host` (scheme, host and port all compared: a page on
//! `http://host` is another origin than `https://host`); a request with
//! neither header passes.
//!
//! Why a request with neither `Origin` nor `Sec-Fetch-Site` passes: every
//! browser of the last years sends `Origin` on cross-site unsafe requests
//! (and `Sec-Fetch-Site` on all of them), so such a request does not come
//! from a browser page, and a non-browser client holds the cookie itself: it
//! could send the request anyway. Refusing it would break `curl` and server
//! clients without stopping any attack.
//!
//! A service served over plain `http` (local development only) sets
//! `VerifierBuilder::insecure_plain_http_origin`, making its own origin
//! `http://` + `Host`. Behind a proxy that rewrites `Host`, list the public
//! origin with `allowed_origin`.
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
//! // The same request from the API's own origin passes (https by default).
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
    /// The service's own origin is `http://` + Host instead of `https://`.
    pub(crate) plain_http: bool,
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
                let scheme = if self.plain_http { "http" } else { "https" };
                if self.allowed_origins.iter().any(|o| o == origin)
                    || same_origin(origin, scheme, headers)
                {
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

/// `Origin: scheme://host[:port]` against the request's own origin,
/// `scheme://` + `Host: host[:port]`: scheme, host and port must all match
/// (default ports filled in).
fn same_origin<H: RequestHeaders + ?Sized>(origin: &str, scheme: &str, headers: &H) -> bool {
    let Some(host) = single(headers, "host").and_then(|h| std::str::from_utf8(h).ok()) else {
        return false;
    };
    let Some((origin_scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    if !origin_scheme.eq_ignore_ascii_case(scheme) {
        return false;
    }
    let default_port = match scheme {
        "http" => ":80",
        _ => ":443",
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
    !authority.is_empty() && !authority.contains('/') && norm(authority) == norm(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(h: &[(&str, &str)]) -> bool {
        let p = CsrfPolicy {
            allowed_origins: vec!["https://app.example".into()],
            disabled: false,
            plain_http: false,
        };
        p.check("POST", h).is_ok()
    }

    fn check_http(h: &[(&str, &str)]) -> bool {
        let p = CsrfPolicy {
            plain_http: true,
            ..CsrfPolicy::default()
        };
        p.check("POST", h).is_ok()
    }

    #[test]
    fn scheme_host_and_port_all_count() {
        // An http page is another origin than the https service.
        assert!(!check(&[
            ("origin", "http://h.example"),
            ("host", "h.example")
        ]));
        assert!(check(&[
            ("origin", "https://h.example"),
            ("host", "h.example")
        ]));
        assert!(check(&[
            ("origin", "https://h.example:443"),
            ("host", "h.example")
        ]));
        assert!(!check(&[
            ("origin", "https://h.example:8443"),
            ("host", "h.example")
        ]));
        assert!(!check(&[
            ("origin", "https://h.example.evil"),
            ("host", "h.example")
        ]));
        // Plain-http development: the other way round.
        assert!(check_http(&[
            ("origin", "http://127.0.0.1:3000"),
            ("host", "127.0.0.1:3000")
        ]));
        assert!(!check_http(&[
            ("origin", "https://127.0.0.1:3000"),
            ("host", "127.0.0.1:3000")
        ]));
        assert!(!check_http(&[
            ("origin", "http://127.0.0.1:4000"),
            ("host", "127.0.0.1:3000")
        ]));
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
            ("origin", "https://127.0.0.1:3000"),
            ("host", "127.0.0.1:3000")
        ]));
        assert!(check(&[
            ("origin", "https://localhost"),
            ("host", "localhost:443")
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
