//! `Set-Cookie` values for the access and refresh tokens, and the cookies
//! that clear them on logout.
//!
//! Defaults: `HttpOnly`, `Secure`, `SameSite=Lax`, access cookie on `Path=/`,
//! refresh cookie only on the refresh endpoint's path. With
//! [`CookieSettings::host_prefix`] the access cookie is `__Host-` prefixed
//! (and the refresh cookie `__Secure-`, since `__Host-` requires `Path=/`).

use cookie::time::Duration as CookieDuration;
use cookie::{Cookie, SameSite};

use crate::source::DEFAULT_ACCESS_COOKIE;

/// The default name of the refresh-token cookie.
pub const DEFAULT_REFRESH_COOKIE: &str = "keycard_refresh";

/// How keycard's cookies are named and flagged.
#[derive(Debug, Clone)]
#[must_use]
pub struct CookieSettings {
    access_name: String,
    refresh_name: String,
    refresh_path: String,
    secure: bool,
    same_site: SameSite,
    host_prefix: bool,
}

impl Default for CookieSettings {
    fn default() -> Self {
        Self {
            access_name: DEFAULT_ACCESS_COOKIE.into(),
            refresh_name: DEFAULT_REFRESH_COOKIE.into(),
            refresh_path: "/refresh".into(),
            secure: true,
            same_site: SameSite::Lax,
            host_prefix: false,
        }
    }
}

impl CookieSettings {
    /// The defaults described in the module docs.
    pub fn new() -> Self {
        Self::default()
    }

    /// The path the refresh cookie is sent to (default `/refresh`).
    pub fn refresh_path(mut self, path: impl Into<String>) -> Self {
        self.refresh_path = path.into();
        self
    }

    /// Base cookie names (default `keycard_access`, `keycard_refresh`).
    pub fn names(mut self, access: impl Into<String>, refresh: impl Into<String>) -> Self {
        self.access_name = access.into();
        self.refresh_name = refresh.into();
        self
    }

    /// `SameSite=Strict` instead of `Lax`.
    pub fn same_site_strict(mut self) -> Self {
        self.same_site = SameSite::Strict;
        self
    }

    /// Prefix the cookie names with `__Host-` (access) and `__Secure-`
    /// (refresh), which browsers only accept from secure origins.
    pub fn host_prefix(mut self) -> Self {
        self.host_prefix = true;
        self.secure = true;
        self
    }

    /// Drop the `Secure` flag so cookies work over plain `http://` during
    /// local development. Never use this in production.
    pub fn insecure_http_for_local_development(mut self) -> Self {
        self.secure = false;
        self.host_prefix = false;
        self
    }

    /// The access cookie's full name (with any prefix).
    pub fn access_name(&self) -> String {
        if self.host_prefix {
            format!("__Host-{}", self.access_name)
        } else {
            self.access_name.clone()
        }
    }

    /// The refresh cookie's full name (with any prefix).
    pub fn refresh_name(&self) -> String {
        if self.host_prefix {
            format!("__Secure-{}", self.refresh_name)
        } else {
            self.refresh_name.clone()
        }
    }

    fn build(&self, name: String, value: String, path: String, max_age: i64) -> String {
        Cookie::build((name, value))
            .path(path)
            .http_only(true)
            .secure(self.secure)
            .same_site(self.same_site)
            .max_age(CookieDuration::seconds(max_age))
            .build()
            .to_string()
    }

    /// `Set-Cookie` for an access token living `max_age` seconds.
    pub fn access_cookie(&self, token: &str, max_age: u64) -> String {
        let age = i64::try_from(max_age).unwrap_or(i64::MAX);
        self.build(self.access_name(), token.into(), "/".into(), age)
    }

    /// `Set-Cookie` for a refresh token living `max_age` seconds.
    pub fn refresh_cookie(&self, token: &str, max_age: u64) -> String {
        let age = i64::try_from(max_age).unwrap_or(i64::MAX);
        self.build(
            self.refresh_name(),
            token.into(),
            self.refresh_path.clone(),
            age,
        )
    }

    /// `Set-Cookie` that deletes the access cookie.
    pub fn clear_access(&self) -> String {
        self.build(self.access_name(), String::new(), "/".into(), 0)
    }

    /// `Set-Cookie` that deletes the refresh cookie.
    pub fn clear_refresh(&self) -> String {
        self.build(
            self.refresh_name(),
            String::new(),
            self.refresh_path.clone(),
            0,
        )
    }

    /// The refresh token of a request that carries it in the refresh cookie,
    /// after the CSRF check every cookie-borne unsafe request needs (the
    /// browser attaches the cookie to cross-site requests too). `Ok(None)`:
    /// no refresh cookie. Use this, not [`Self::refresh_token_from`], in a
    /// refresh endpoint.
    pub fn refresh_token_checked<'a, H: crate::RequestHeaders + ?Sized>(
        &self,
        verifier: &crate::Verifier,
        method: &str,
        headers: &'a H,
    ) -> Result<Option<&'a str>, crate::AuthError> {
        verifier.check_csrf(method, headers)?;
        Ok(self.refresh_token_from(headers))
    }

    /// Read the refresh token from request headers (`Cookie`), if present
    /// exactly once. This performs no CSRF check: see
    /// [`Self::refresh_token_checked`].
    pub fn refresh_token_from<'a, H: crate::RequestHeaders + ?Sized>(
        &self,
        headers: &'a H,
    ) -> Option<&'a str> {
        let name = self.refresh_name();
        let mut found = None;
        for header in headers.header_values("cookie") {
            let Ok(header) = std::str::from_utf8(header) else {
                continue;
            };
            for c in Cookie::split_parse(header).flatten() {
                if c.name() == name {
                    if found.is_some() {
                        return None;
                    }
                    found = c.value_raw();
                }
            }
        }
        found.filter(|v| !v.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        let c = CookieSettings::new();
        let a = c.access_cookie("tok", 900);
        assert!(a.starts_with("keycard_access=tok"), "{a}");
        for flag in [
            "HttpOnly",
            "Secure",
            "SameSite=Lax",
            "Path=/",
            "Max-Age=900",
        ] {
            assert!(a.contains(flag), "{a} lacks {flag}");
        }
        let r = c.refresh_cookie("rt", 60);
        assert!(r.contains("Path=/refresh"), "{r}");
        let cleared = c.clear_access();
        assert!(cleared.contains("Max-Age=0"), "{cleared}");
        let h = CookieSettings::new().host_prefix();
        assert!(h
            .access_cookie("t", 1)
            .starts_with("__Host-keycard_access=t"));
        assert!(h
            .refresh_cookie("t", 1)
            .starts_with("__Secure-keycard_refresh=t"));
        let dev = CookieSettings::new().insecure_http_for_local_development();
        assert!(!dev.access_cookie("t", 1).contains("Secure"));
    }

    #[test]
    fn the_checked_read_refuses_cross_site_requests() {
        let v = crate::Verifier::builder()
            .key(crate::Key::hs256([7u8; 32]).unwrap())
            .build()
            .unwrap();
        let c = CookieSettings::new();
        let cross = [
            ("cookie", "keycard_refresh=r.t.x"),
            ("origin", "https://evil.test"),
            ("host", "api.test"),
        ];
        let err = c.refresh_token_checked(&v, "POST", &cross[..]).unwrap_err();
        assert_eq!(err.status(), 403);
        let same = [
            ("cookie", "keycard_refresh=r.t.x"),
            ("origin", "https://api.test"),
            ("host", "api.test"),
        ];
        assert_eq!(
            c.refresh_token_checked(&v, "POST", &same[..]).unwrap(),
            Some("r.t.x")
        );
        assert_eq!(c.refresh_token_checked(&v, "POST", &[][..]).unwrap(), None);
    }

    #[test]
    fn reads_refresh_cookie() {
        let c = CookieSettings::new();
        let h = [("cookie", "a=1; keycard_refresh=r.t.x")];
        assert_eq!(c.refresh_token_from(&h[..]), Some("r.t.x"));
        let dup = [("cookie", "keycard_refresh=a; keycard_refresh=b")];
        assert_eq!(c.refresh_token_from(&dup[..]), None);
    }
}
