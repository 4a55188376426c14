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
    /// was received over (`"https"` behind TLS termination, else `"http"`;
    /// a value that is not a URI scheme is left out of the headers).
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
/// The host comes from `Host` (or the URI's authority, without user info)
/// and is passed on only when it is a plain `host[:port]`; otherwise both
/// `X-Forwarded-Host` and `host=` are left out. `Forwarded` values that are
/// not RFC 7239 tokens (`[2001:db8::1]`, `api.example:8443`) are quoted.
/// The `Authorization` header is kept: upstream services verify the token
/// again. Upstreams that check CSRF on cookie requests can then take the
/// public origin from `X-Forwarded-Proto`/`X-Forwarded-Host`
/// (`VerifierBuilder::trust_forwarded_origin`).
pub fn prepare_upstream_request<B>(req: &mut http::Request<B>, by: &ForwardedBy) {
    // From the URI only host and port: never its user info.
    let authority = req.uri().authority().map(|a| match a.port() {
        Some(port) => format!("{}:{port}", a.host()),
        None => a.host().to_owned(),
    });
    let headers = req.headers_mut();
    strip_hop_by_hop(headers);
    // What the client sent as `Host` is passed on only when it is a plain
    // `host[:port]`: anything else could carry extra `Forwarded` elements
    // or parameters, or a second `X-Forwarded-Host` value.
    let host = match headers.get(http::header::HOST) {
        Some(h) => h.to_str().ok().map(str::to_owned),
        None => authority,
    }
    .filter(|h| is_host_authority(h));
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
    // RFC 7239 §6: an IPv6 node is bracketed (and so quoted).
    let node = match by.peer {
        IpAddr::V4(_) => peer,
        IpAddr::V6(_) => format!("[{peer}]"),
    };
    let mut forwarded = format!("for={}", forwarded_value(&node));
    if let Some(host) = &host {
        if let Ok(v) = HeaderValue::from_str(host) {
            headers.insert("x-forwarded-host", v);
        }
        forwarded.push_str(";host=");
        forwarded.push_str(&forwarded_value(host));
    }
    // The scheme is the proxy's own, but a malformed one is left out
    // rather than written into either header.
    if is_uri_scheme(by.proto) {
        headers.insert("x-forwarded-proto", HeaderValue::from_static(by.proto));
        forwarded.push_str(";proto=");
        forwarded.push_str(&forwarded_value(by.proto));
    }
    if let Ok(v) = HeaderValue::from_str(&forwarded) {
        headers.insert("forwarded", v);
    }
}

/// Whether `s` is a `host[:port]` authority (RFC 3986 §3.2 without user
/// info): a registered name of letters, digits, `-`, `.`, `_` and `~`, an
/// IPv4 address, or a bracketed IPv6 address, then an optional port of 1
/// to 5 digits, at most 65535. No `,`, `;`, `=`, `"`, `/`, `@`, space or
/// non-ASCII byte gets through.
fn is_host_authority(s: &str) -> bool {
    let (host_ok, port) = if let Some(rest) = s.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, after)) => (
                v6.parse::<std::net::Ipv6Addr>().is_ok(),
                match after {
                    "" => None,
                    _ => match after.strip_prefix(':') {
                        Some(p) => Some(p),
                        None => return false,
                    },
                },
            ),
            None => return false,
        }
    } else {
        let (host, port) = match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        };
        (
            !host.is_empty()
                && host.len() <= 253
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')),
            port,
        )
    };
    host_ok
        && port.is_none_or(|p| {
            !p.is_empty()
                && p.len() <= 5
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse::<u32>().is_ok_and(|n| n <= 65535)
        })
}

/// Whether `s` is a URI scheme (RFC 3986 §3.1):
/// `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`.
fn is_uri_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// A `Forwarded` parameter value (RFC 7239 §4): a `token` as it is,
/// anything else as a `quoted-string` with `"` and `\` escaped. Callers
/// pass only validated values; quoting is what keeps `:`, `[` and `]` (and
/// anything a validator missed) inside the one parameter.
fn forwarded_value(value: &str) -> std::borrow::Cow<'_, str> {
    let is_tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if !value.is_empty() && value.bytes().all(is_tchar) {
        return value.into();
    }
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        if matches!(c, '"' | '\\') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted.into()
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

    fn forwarded_for(host: &str) -> http::Request<()> {
        let mut req = http::Request::get("/")
            .header("host", host)
            .body(())
            .unwrap();
        let by = ForwardedBy::new("203.0.113.7".parse().unwrap(), "https");
        prepare_upstream_request(&mut req, &by);
        req
    }

    #[test]
    fn a_host_cannot_add_forwarded_elements_or_parameters() {
        for host in [
            "api.example, for=10.0.0.1;host=internal",
            "api.example;for=10.0.0.1",
            "api.example\"",
            "user@api.example",
            "api.example/path",
            "api.example:99999",
            "api.example:",
            "[::1",
            "[not-v6]:443",
            "",
        ] {
            let req = forwarded_for(host);
            assert_eq!(
                req.headers()["forwarded"],
                "for=203.0.113.7;proto=https",
                "Host {host:?}"
            );
            assert!(
                req.headers().get("x-forwarded-host").is_none(),
                "Host {host:?}"
            );
        }
    }

    #[test]
    fn hosts_that_are_not_tokens_are_quoted_in_forwarded() {
        let req = forwarded_for("[::1]:8080");
        assert_eq!(
            req.headers()["forwarded"],
            "for=203.0.113.7;host=\"[::1]:8080\";proto=https"
        );
        assert_eq!(req.headers()["x-forwarded-host"], "[::1]:8080");
        let req = forwarded_for("api.example:8443");
        assert_eq!(
            req.headers()["forwarded"],
            "for=203.0.113.7;host=\"api.example:8443\";proto=https"
        );
        let req = forwarded_for("api.example");
        assert_eq!(
            req.headers()["forwarded"],
            "for=203.0.113.7;host=api.example;proto=https"
        );
    }

    #[test]
    fn the_uri_authority_is_used_without_its_user_info() {
        let mut req = http::Request::get("http://user:pw@api.example:8080/")
            .body(())
            .unwrap();
        let by = ForwardedBy::new("203.0.113.7".parse().unwrap(), "http");
        prepare_upstream_request(&mut req, &by);
        assert_eq!(req.headers()["x-forwarded-host"], "api.example:8080");
        assert_eq!(
            req.headers()["forwarded"],
            "for=203.0.113.7;host=\"api.example:8080\";proto=http"
        );
    }

    #[test]
    fn a_malformed_proto_is_left_out_not_written_or_panicked_on() {
        for proto in ["https, for=1.2.3.4", "h\"s", "", "1http", "http\r\nx: y"] {
            let mut req = http::Request::get("/")
                .header("host", "api.example")
                .body(())
                .unwrap();
            let by = ForwardedBy::new("203.0.113.7".parse().unwrap(), proto);
            prepare_upstream_request(&mut req, &by);
            assert_eq!(
                req.headers()["forwarded"],
                "for=203.0.113.7;host=api.example",
                "proto {proto:?}"
            );
            assert!(req.headers().get("x-forwarded-proto").is_none());
        }
    }

    #[test]
    fn forwarded_values_escape_quotes_and_backslashes() {
        assert_eq!(forwarded_value("a.b-c_1"), "a.b-c_1");
        assert_eq!(forwarded_value("[::1]"), "\"[::1]\"");
        assert_eq!(forwarded_value("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(forwarded_value(""), "\"\"");
    }
}
