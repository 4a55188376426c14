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
//! `http://` + `Host`. Behind a gateway that rewrites `Host`, either list the
//! public origin with `allowed_origin`, or let the gateway say it
//! (`X-Forwarded-Proto` and `X-Forwarded-Host`, as
//! `keycard_tower::forward::prepare_upstream_request` writes them) and set
//! `VerifierBuilder::trust_forwarded_origin`. A browser cannot attach those
//! headers to a cross-site request without a CORS preflight, so trusting
//! them gives a CSRF attacker nothing; only set it where a proxy overwrites
//! them, so that they always tell the truth.
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
    /// Take the own origin from `X-Forwarded-Proto`/`X-Forwarded-Host`.
    pub(crate) trust_forwarded: bool,
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
                let mut scheme = if self.plain_http { "http" } else { "https" };
                let mut host = single(headers, "host");
                if self.trust_forwarded {
                    if let Some(h) = single(headers, "x-forwarded-host") {
                        host = Some(h);
                        match single(headers, "x-forwarded-proto") {
                            Some(b"http") => scheme = "http",
                            Some(b"https") => scheme = "https",
                            _ => {}
                        }
                    }
                }
                let host = host.and_then(|h| std::str::from_utf8(h).ok());
                if self.allowed_origins.iter().any(|o| o == origin)
                    || same_origin(origin, scheme, host)
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
fn same_origin(origin: &str, scheme: &str, host: Option<&str>) -> bool {
    let Some(host) = host else {
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
            ..CsrfPolicy::default()
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
    fn forwarded_origin_only_when_trusted() {
        let trusting = CsrfPolicy {
            trust_forwarded: true,
            ..CsrfPolicy::default()
        };
        let via_gateway = [
            ("origin", "http://127.0.0.1:8080"),
            ("host", "127.0.0.1:9001"),
            ("x-forwarded-host", "127.0.0.1:8080"),
            ("x-forwarded-proto", "http"),
        ];
        assert!(trusting.check("POST", &via_gateway[..]).is_ok());
        assert!(CsrfPolicy::default()
            .check("POST", &via_gateway[..])
            .is_err());
        let lying = [
            ("origin", "http://evil.example"),
            ("host", "127.0.0.1:9001"),
            ("x-forwarded-host", "127.0.0.1:8080"),
            ("x-forwarded-proto", "http"),
        ];
        assert!(trusting.check("POST", &lying[..]).is_err());
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
