//! Forwarding a verified request to an upstream service, for gateways and
//! reverse proxies behind [`crate::JwtAuth`]: what a proxy must strip and
//! what it must say about the client. It holds no client and opens no
//! connection; put it in front of whatever HTTP client the gateway uses.
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use keycard_tower::forward::{prepare_upstream_request, ForwardedBy};
//!
//! let mut req = http::Request::get("/orders/1")
//!     .header("host", "api.example")
//!     .header("connection", "keep-alive, x-secret")
//!     .header("x-secret", "do not pass on")
//!     .header("x-forwarded-for", "6.6.6.6") // the client's claim: replaced
//!     .header("authorization", "Bearer t")
//!     .body(())
//!     .unwrap();
//! let peer = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
//! prepare_upstream_request(&mut req, &ForwardedBy::new(peer, "https"));
//! assert!(req.headers().get("x-secret").is_none());
//! assert!(req.headers().get("connection").is_none());
//! assert_eq!(req.headers()["x-forwarded-for"], "203.0.113.7");
//! assert_eq!(req.headers()["x-forwarded-host"], "api.example");
//! assert_eq!(req.headers()["x-forwarded-proto"], "https");
//! assert_eq!(req.headers()["forwarded"], "for=203.0.113.7;host=api.example;proto=https");
//! // The token goes on: upstream services verify it again.
//! assert_eq!(req.headers()["authorization"], "Bearer t");
//! ```

use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// Hop-by-hop headers (RFC 9110 §7.6.1), plus the legacy and proxy ones that
/// must never travel past a proxy.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The proxy's own view of a request, written into the forwarding headers
/// instead of whatever the client claimed.
#[derive(Debug, Clone)]
pub struct ForwardedBy {
    peer: IpAddr,
    proto: &'static str,
}

impl ForwardedBy {
    /// The TCP peer the proxy accepted the request from, and the scheme it
    /// was received over (`"https"` behind TLS termination, else `"http"`).
    pub fn new(peer: IpAddr, proto: &'static str) -> Self {
        Self { peer, proto }
    }
}

/// Remove hop-by-hop headers: `Connection` and every header it names,
/// `Keep-Alive`, `Proxy-*`, `TE` (except `TE: trailers`, which gRPC needs),
/// `Trailer`, `Transfer-Encoding`, `Upgrade`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    let te_trailers = headers
        .get_all(http::header::TE)
        .iter()
        .all(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"))
        && headers.contains_key(http::header::TE);
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    if te_trailers {
        headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
    }
}

/// Prepare a request the gateway accepted for its upstream: strip
/// hop-by-hop headers and replace the client's `X-Forwarded-For`,
/// `X-Forwarded-Host`, `X-Forwarded-Proto` and `Forwarded` with the proxy's
/// own view (RFC 7239), so an upstream never trusts what a client claimed.
/// The `Authorization` header is kept: upstream services verify the token
/// again. Upstreams that check CSRF on cookie requests can then take the
/// public origin from `X-Forwarded-Proto`/`X-Forwarded-Host`
/// (`VerifierBuilder::trust_forwarded_origin`).
pub fn prepare_upstream_request<B>(req: &mut http::Request<B>, by: &ForwardedBy) {
    let authority = req
        .uri()
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
    let headers = req.headers_mut();
    strip_hop_by_hop(headers);
    let host = headers.get(http::header::HOST).cloned().or(authority);
    for name in [
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-forwarded-port",
        "x-real-ip",
        "forwarded",
    ] {
        headers.remove(name);
    }
    let peer = by.peer.to_string();
    if let Ok(v) = HeaderValue::from_str(&peer) {
        headers.insert("x-forwarded-for", v);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static(by.proto));
    let node = match by.peer {
        IpAddr::V4(_) => peer.clone(),
        IpAddr::V6(_) => format!("\"[{peer}]\""),
    };
    let mut forwarded = format!("for={node}");
    if let Some(host) = host.as_ref().and_then(|h| h.to_str().ok()) {
        if let Ok(v) = HeaderValue::from_str(host) {
            headers.insert("x-forwarded-host", v);
        }
        forwarded.push_str(&format!(";host={host}"));
    }
    forwarded.push_str(&format!(";proto={}", by.proto));
    if let Ok(v) = HeaderValue::from_str(&forwarded) {
        headers.insert("forwarded", v);
    }
}

/// Whether `req` is a CORS preflight that [`crate::JwtAuth`] let through
/// unauthenticated (see `VerifierBuilder::authenticate_cors_preflights`).
/// A gateway must not forward one: upstream services would receive a
/// request nobody authenticated. Answer it with the gateway's own CORS
/// layer, or refuse it (the microservices example answers 403).
pub fn is_unauthenticated_preflight<B>(req: &http::Request<B>) -> bool {
    req.extensions().get::<keycard_core::Verified>().is_none()
        && req
            .extensions()
            .get::<keycard_core::adapter::Anonymous>()
            .is_some_and(keycard_core::adapter::Anonymous::is_preflight)
}

/// Strip hop-by-hop headers from an upstream's response before the gateway
/// returns it.
pub fn prepare_downstream_response<B>(res: &mut http::Response<B>) {
    strip_hop_by_hop(res.headers_mut());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn te_trailers_survives_other_te_does_not() {
        let mut h = HeaderMap::new();
        h.insert("te", HeaderValue::from_static("trailers"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h["te"], "trailers");
        let mut h = HeaderMap::new();
        h.insert("te", HeaderValue::from_static("gzip"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert(
            "proxy-authorization",
            HeaderValue::from_static("Basic eA=="),
        );
        strip_hop_by_hop(&mut h);
        assert!(h.is_empty(), "{h:?}");
    }

    #[test]
    fn ipv6_peers_are_quoted_in_forwarded() {
        let mut req = http::Request::get("/").body(()).unwrap();
        let by = ForwardedBy::new("2001:db8::1".parse().unwrap(), "http");
        prepare_upstream_request(&mut req, &by);
        assert_eq!(
            req.headers()["forwarded"],
            "for=\"[2001:db8::1]\";proto=http"
        );
        assert_eq!(req.headers()["x-forwarded-for"], "2001:db8::1");
    }
}
