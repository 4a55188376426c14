//! Where a token comes from: the `Authorization: Bearer` header, a named
//! cookie, or a custom header; and the strict parsing of each (RFC 6750 §2).
//!
//! The core reads headers through [`RequestHeaders`], so it serves `http` 1.x
//! (tower, axum) and actix-web's own header map alike without depending on
//! either framework.

/// Read-only access to a request's header values, by lower-case name.
///
/// Implemented here for [`http::HeaderMap`]; the actix adapter implements it
/// for actix-web's map.
pub trait RequestHeaders {
    /// Every value of the header `name` (lower-case), in order.
    fn header_values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a [u8]>;
}

impl RequestHeaders for http::HeaderMap {
    fn header_values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a [u8]> {
        // The names keycard asks for on every request, as http's constants:
        // no name parsing per lookup.
        let all = match name {
            "authorization" => self.get_all(http::header::AUTHORIZATION),
            "cookie" => self.get_all(http::header::COOKIE),
            _ => self.get_all(name),
        };
        all.iter().map(|v| v.as_bytes())
    }
}

/// A request's headers and the authority of its URI: over HTTP/2 and
/// HTTP/3 a request names its host in `:authority` and sends no `Host`, so
/// an adapter that has the URI answers `host` from it when the headers have
/// none. Everything that reads `Host` (the CSRF origin check, the URL a
/// DPoP proof must name) then sees the same, validated as a `Host` is.
#[derive(Debug, Clone, Copy)]
pub struct WithAuthority<'a, H: ?Sized> {
    headers: &'a H,
    authority: Option<&'a str>,
}

impl<'a, H: RequestHeaders + ?Sized> WithAuthority<'a, H> {
    /// `headers`, with `authority` (the URI's, if it has one) standing in
    /// for a missing `Host`.
    pub fn new(headers: &'a H, authority: Option<&'a str>) -> Self {
        Self { headers, authority }
    }
}

impl<H: RequestHeaders + ?Sized> RequestHeaders for WithAuthority<'_, H> {
    fn header_values<'b>(&'b self, name: &str) -> impl Iterator<Item = &'b [u8]> {
        let fallback = if name == "host" && self.headers.header_values("host").next().is_none() {
            self.authority.map(str::as_bytes)
        } else {
            None
        };
        self.headers.header_values(name).chain(fallback)
    }
}

/// A plain list of `(name, value)` pairs, useful in tests and for callers
/// that hold headers in their own structure.
impl RequestHeaders for [(&str, &str)] {
    fn header_values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a [u8]> {
        self.iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_bytes())
    }
}

/// One place a token may be carried.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenSource {
    /// `Authorization: Bearer <token>` (RFC 6750 §2.1).
    BearerHeader,
    /// A cookie with this name (HttpOnly in every cookie keycard sets).
    Cookie(String),
    /// A custom header whose whole value is the token, e.g. `x-auth-token`.
    Header(String),
}

/// The default name of the access-token cookie.
pub const DEFAULT_ACCESS_COOKIE: &str = "keycard_access";

/// Where a token was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Found {
    /// The `Authorization` header.
    BearerHeader,
    /// A cookie.
    Cookie,
    /// A custom header.
    Header,
    /// `Authorization: DPoP <token>` (RFC 9449), with its proof.
    DpopHeader,
}

/// Why the token sources refused a request (becomes `MalformedRequest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SourceError {
    Malformed(&'static str),
}

/// The configured, ordered token sources.
#[derive(Debug, Clone)]
pub(crate) struct Sources {
    pub(crate) sources: Vec<TokenSource>,
    /// RFC 6750 §2: "Clients MUST NOT use more than one method". When false
    /// (default) a request with tokens in two places is refused.
    pub(crate) allow_multiple_methods: bool,
    /// Also read `Authorization: DPoP <token>` (RFC 9449).
    pub(crate) dpop: bool,
}

impl Default for Sources {
    fn default() -> Self {
        Self {
            sources: vec![
                TokenSource::BearerHeader,
                TokenSource::Cookie(DEFAULT_ACCESS_COOKIE.to_owned()),
            ],
            allow_multiple_methods: false,
            dpop: false,
        }
    }
}

impl Sources {
    /// Find exactly one token. `Ok(None)` means no credentials at all.
    pub(crate) fn find<'a, H: RequestHeaders + ?Sized>(
        &self,
        headers: &'a H,
    ) -> Result<Option<(&'a str, Found)>, SourceError> {
        let mut chosen: Option<(&'a str, Found)> = None;
        for source in &self.sources {
            let found = match source {
                TokenSource::BearerHeader => authorization(headers, self.dpop)?,
                TokenSource::Cookie(name) => cookie(headers, name)?.map(|t| (t, Found::Cookie)),
                TokenSource::Header(name) => custom(headers, name)?.map(|t| (t, Found::Header)),
            };
            if let Some(found) = found {
                if chosen.is_some() {
                    // A second method: refused unless explicitly allowed, in
                    // which case the first configured source wins. Either way
                    // a bad first token never falls back to the second.
                    if !self.allow_multiple_methods {
                        return Err(SourceError::Malformed(
                            "two token sources in one request (e.g. an Authorization header and a cookie): send the token one way",
                        ));
                    }
                } else {
                    chosen = Some(found);
                }
            }
        }
        Ok(chosen)
    }
}

/// `Authorization: Bearer <b64token>` (or `DPoP <token>` when DPoP is on);
/// `Ok(None)` when there is no `Authorization` header or it uses another
/// scheme.
fn authorization<H: RequestHeaders + ?Sized>(
    headers: &H,
    dpop: bool,
) -> Result<Option<(&str, Found)>, SourceError> {
    let mut values = headers.header_values("authorization");
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(SourceError::Malformed("more than one Authorization header"));
    }
    let value = trim_ows(value);
    let Some((scheme, rest)) = split_scheme(value) else {
        // A bare scheme: "Bearer" with no token is a malformed Bearer request.
        if value.eq_ignore_ascii_case(b"bearer") {
            return Err(SourceError::Malformed("empty bearer token"));
        }
        return Ok(None);
    };
    let found = if scheme.eq_ignore_ascii_case(b"bearer") {
        Found::BearerHeader
    } else if dpop && scheme.eq_ignore_ascii_case(b"dpop") {
        Found::DpopHeader
    } else {
        return Ok(None);
    };
    let token = trim_ows(rest);
    if token.is_empty() {
        return Err(SourceError::Malformed("empty bearer token"));
    }
    // The b64token grammar is checked only when the token fails to parse
    // (see `Verifier`): a valid JWS is a b64token, so the per-byte pass
    // belongs to the failure path.
    std::str::from_utf8(token)
        .map(|t| Some((t, found)))
        .map_err(|_| SourceError::Malformed("bearer token is not a b64token"))
}

fn custom<'a, H: RequestHeaders + ?Sized>(
    headers: &'a H,
    name: &str,
) -> Result<Option<&'a str>, SourceError> {
    let mut values = headers.header_values(name);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(SourceError::Malformed("token header repeated"));
    }
    let token = trim_ows(value);
    if token.is_empty() {
        return Err(SourceError::Malformed("token header is empty or malformed"));
    }
    std::str::from_utf8(token)
        .map(Some)
        .map_err(|_| SourceError::Malformed("token header is empty or malformed"))
}

fn cookie<'a, H: RequestHeaders + ?Sized>(
    headers: &'a H,
    name: &str,
) -> Result<Option<&'a str>, SourceError> {
    let mut found: Option<&'a str> = None;
    for header in headers.header_values("cookie") {
        let Ok(header) = std::str::from_utf8(header) else {
            // Non-UTF-8 bytes in a Cookie header cannot hold our cookie
            // (tokens are ASCII); skip the header rather than fail others.
            continue;
        };
        for pair in cookie::Cookie::split_parse(header) {
            let Ok(c) = pair else { continue };
            if c.name() != name {
                continue;
            }
            if found.is_some() {
                return Err(SourceError::Malformed("duplicate auth cookie"));
            }
            // `value_raw` borrows from the header itself; it is always
            // present for cookies parsed from a string.
            let Some(value) = c.value_raw() else { continue };
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            if value.is_empty() || !is_b64token(value.as_bytes()) {
                return Err(SourceError::Malformed("auth cookie is empty or malformed"));
            }
            found = Some(value);
        }
    }
    Ok(found)
}

fn split_scheme(value: &[u8]) -> Option<(&[u8], &[u8])> {
    let pos = value.iter().position(|b| *b == b' ' || *b == b'\t')?;
    Some((&value[..pos], &value[pos + 1..]))
}

fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// RFC 6750 §2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`
pub(crate) fn is_b64token(v: &[u8]) -> bool {
    const fn table() -> [bool; 256] {
        let mut t = [false; 256];
        let mut i = 0;
        while i < 256 {
            let b = i as u8;
            t[i] =
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
            i += 1;
        }
        t
    }
    static B64TOKEN: [bool; 256] = table();
    let body_end = v.iter().rposition(|b| *b != b'=').map_or(0, |p| p + 1);
    body_end > 0 && v[..body_end].iter().all(|b| B64TOKEN[usize::from(*b)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(h: &[(&str, &str)]) -> Result<Option<(&'static str, Found)>, SourceError> {
        let s = Sources::default();
        // Leak for a 'static borrow in tests only.
        let h: &'static [(&'static str, &'static str)] = Box::leak(
            h.iter()
                .map(|(a, b)| (&*a.to_string().leak(), &*b.to_string().leak()))
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        );
        s.find(h)
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for v in [
            "Bearer a.b.c",
            "bearer a.b.c",
            "BEARER a.b.c",
            "Bearer   a.b.c  ",
        ] {
            assert_eq!(
                find(&[("Authorization", v)]),
                Ok(Some(("a.b.c", Found::BearerHeader)))
            );
        }
    }

    #[test]
    fn other_schemes_are_no_credentials() {
        assert_eq!(find(&[("authorization", "Basic Zm9vOmJhcg==")]), Ok(None));
        assert_eq!(find(&[]), Ok(None));
    }

    #[test]
    fn malformed_bearer_requests() {
        // The b64token grammar is judged on the failure path of the whole
        // verification: every one of these is a 400, never a 401.
        let v = crate::Verifier::builder()
            .key(crate::Key::hs256([7u8; 32]).unwrap())
            .build()
            .unwrap();
        for value in [
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "Bearer a,b",
            "Bearer é",
            "Bearer =abc",
        ] {
            let h = [("authorization", value)];
            let crate::Attempt::Done(Err(e)) = v.authenticate_now("GET", &h[..]) else {
                panic!("{value}: accepted");
            };
            assert_eq!(
                (e.kind(), e.status()),
                (crate::AuthErrorKind::MalformedRequest, 400),
                "{value}"
            );
        }
        assert!(find(&[("authorization", "Bearer a"), ("authorization", "Bearer b")]).is_err());
    }

    #[test]
    fn cookie_source() {
        assert_eq!(
            find(&[("cookie", "theme=dark; keycard_access=x.y.z; other=1")]),
            Ok(Some(("x.y.z", Found::Cookie)))
        );
        assert!(find(&[("cookie", "keycard_access=a; keycard_access=b")]).is_err());
        assert!(find(&[
            ("cookie", "keycard_access=a"),
            ("cookie", "keycard_access=b")
        ])
        .is_err());
        assert!(find(&[("cookie", "keycard_access=")]).is_err());
    }

    #[test]
    fn header_and_cookie_is_refused_by_default() {
        let h = [
            ("authorization", "Bearer a.b.c"),
            ("cookie", "keycard_access=x.y.z"),
        ];
        assert!(find(&h).is_err());
        let s = Sources {
            allow_multiple_methods: true,
            ..Sources::default()
        };
        assert_eq!(s.find(&h[..]), Ok(Some(("a.b.c", Found::BearerHeader))));
    }

    #[test]
    fn b64token_grammar() {
        assert!(is_b64token(b"abc-._~+/=="));
        assert!(!is_b64token(b"=="));
        assert!(!is_b64token(b"a=b"));
        assert!(!is_b64token(b""));
    }
}
