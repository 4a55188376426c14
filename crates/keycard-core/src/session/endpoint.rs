//! The HTTP side of refresh, logout and login endpoints, framework-neutral:
//! read the refresh token safely, decide whether the answer may touch
//! cookies, and build the answer (status, JSON body, `Set-Cookie` values)
//! that an adapter or a hand-written handler sends as is.
//!
//! The rules, each closing a way a browser can be tricked:
//! - A token in the body counts only with `Content-Type: application/json`:
//!   an HTML form cannot send that without a CORS preflight, so a
//!   cross-site `<form enctype="text/plain">` never gets a body parsed.
//! - A token from the refresh cookie counts only after the CSRF check (the
//!   browser attaches cookies to cross-site requests too).
//! - Any answer that sets or clears cookies passes the CSRF check first: a
//!   cross-site request never changes the browser's cookies (no login CSRF,
//!   no forced logout).
//! - A store outage (503) never clears cookies: the session may be fine.

use serde::Deserialize;

use crate::cookies::CookieSettings;
use crate::error::{AuthError, AuthErrorKind};
use crate::source::RequestHeaders;

use super::{SessionError, Sessions, TokenPair};

/// A framework-neutral HTTP answer: send `status`, the JSON `body` (with
/// `Content-Type: application/json`), one `Set-Cookie` header per entry of
/// `set_cookies`, and `WWW-Authenticate` when present. `Debug` never shows
/// the body or cookie values (they may hold tokens).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointResponse {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body.
    pub body: String,
    /// `Set-Cookie` values.
    pub set_cookies: Vec<String>,
    /// The `WWW-Authenticate` value, for 401/403 answers.
    pub www_authenticate: Option<String>,
}

impl std::fmt::Debug for EndpointResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cookie_names: Vec<&str> = self
            .set_cookies
            .iter()
            .map(|c| c.split('=').next().unwrap_or(""))
            .collect();
        f.debug_struct("EndpointResponse")
            .field("status", &self.status)
            .field("body", &format_args!("<{} bytes>", self.body.len()))
            .field("set_cookies", &cookie_names)
            .field("www_authenticate", &self.www_authenticate)
            .finish()
    }
}

impl EndpointResponse {
    /// An answer with this status and JSON body, setting no cookies.
    pub fn new(status: u16, body: impl Into<String>) -> Self {
        Self::json(status, body.into())
    }

    fn json(status: u16, body: String) -> Self {
        Self {
            status,
            body,
            set_cookies: Vec::new(),
            www_authenticate: None,
        }
    }

    fn invalid_request(why: &str) -> Self {
        Self::json(
            400,
            serde_json::json!({"error": "invalid_request", "error_description": why}).to_string(),
        )
    }

    fn from_auth(e: &AuthError) -> Self {
        Self {
            status: e.status(),
            body: e.body(),
            set_cookies: Vec::new(),
            www_authenticate: e.www_authenticate(),
        }
    }

    fn from_session(e: &SessionError) -> Self {
        Self::json(e.status(), e.body())
    }
}

/// A session failure as an HTTP answer: its status and JSON body.
impl From<&SessionError> for EndpointResponse {
    fn from(e: &SessionError) -> Self {
        Self::from_session(e)
    }
}

impl EndpointResponse {
    /// Add `Set-Cookie` values.
    #[must_use]
    pub fn with_cookies(mut self, cookies: impl IntoIterator<Item = String>) -> Self {
        self.set_cookies.extend(cookies);
        self
    }
}

/// A refresh request, read by [`Sessions::read_refresh_request`].
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RefreshInput {
    /// The refresh token.
    pub token: String,
    /// Whether it came from the refresh cookie (else from the JSON body).
    pub from_cookie: bool,
    /// The client asked for an answer without tokens in the body.
    pub cookie_only: bool,
    /// Whether the answer may set or clear cookies (the request passed the
    /// CSRF check).
    pub may_set_cookies: bool,
}

impl std::fmt::Debug for RefreshInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshInput")
            .field("token", &"<redacted>")
            .field("from_cookie", &self.from_cookie)
            .field("cookie_only", &self.cookie_only)
            .field("may_set_cookies", &self.may_set_cookies)
            .finish()
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: Option<String>,
    #[serde(default)]
    cookie_only: bool,
}

/// Whether the request's `Content-Type` is `application/json` (parameters
/// such as `charset` allowed; exactly one header).
fn is_json<H: RequestHeaders + ?Sized>(headers: &H) -> bool {
    let mut values = headers.header_values("content-type");
    let (Some(v), None) = (values.next(), values.next()) else {
        return false;
    };
    let Ok(v) = std::str::from_utf8(v) else {
        return false;
    };
    let media = v.split(';').next().unwrap_or("").trim();
    media.eq_ignore_ascii_case("application/json")
}

impl Sessions {
    /// Read a refresh request: the token from a JSON body (`Content-Type:
    /// application/json`, `{"refresh_token": "...", "cookie_only": bool}`),
    /// or else from the refresh cookie after the CSRF check. On refusal the
    /// error is the answer to send (it never touches cookies).
    pub fn read_refresh_request<H: RequestHeaders + ?Sized>(
        &self,
        cookies: &CookieSettings,
        method: &str,
        headers: &H,
        body: &[u8],
    ) -> Result<RefreshInput, EndpointResponse> {
        let csrf = self.refresh_verifier().check_csrf(method, headers);
        let may_set_cookies = csrf.is_ok();
        let req = if body.iter().all(u8::is_ascii_whitespace) {
            RefreshBody::default()
        } else if !is_json(headers) {
            return Err(EndpointResponse::json(
                415,
                serde_json::json!({
                    "error": "invalid_request",
                    "error_description": "a refresh body must be Content-Type: application/json"
                })
                .to_string(),
            ));
        } else {
            serde_json::from_slice::<RefreshBody>(body).map_err(|_| {
                EndpointResponse::invalid_request(
                    "body must be JSON {\"refresh_token\": \"...\", \"cookie_only\": false}",
                )
            })?
        };
        if let Some(token) = req.refresh_token {
            return Ok(RefreshInput {
                token,
                from_cookie: false,
                cookie_only: req.cookie_only,
                may_set_cookies,
            });
        }
        let Some(token) = cookies.refresh_token_from(headers) else {
            return Err(EndpointResponse::invalid_request("no refresh token"));
        };
        if let Err(e) = csrf {
            return Err(EndpointResponse::from_auth(&e));
        }
        Ok(RefreshInput {
            token: token.to_owned(),
            from_cookie: true,
            cookie_only: req.cookie_only,
            may_set_cookies,
        })
    }

    /// A whole refresh endpoint (`POST /refresh`): read the request, rotate,
    /// answer with the new pair and its cookies. A refused refresh token
    /// from the cookie clears the cookies (400 `invalid_grant`); an outage
    /// (503) and a cross-site request leave them alone.
    pub async fn refresh_endpoint<H: RequestHeaders + ?Sized>(
        &self,
        cookies: &CookieSettings,
        method: &str,
        headers: &H,
        body: &[u8],
    ) -> EndpointResponse {
        let input = match self.read_refresh_request(cookies, method, headers, body) {
            Ok(i) => i,
            Err(answer) => return answer,
        };
        match self.refresh(&input.token).await {
            Ok(pair) => pair_response(cookies, &pair, input.cookie_only, input.may_set_cookies),
            Err(e) => {
                let answer = EndpointResponse::from_session(&e);
                if input.from_cookie && input.may_set_cookies && e.status() == 400 {
                    answer.with_cookies(clear(cookies))
                } else {
                    answer
                }
            }
        }
    }

    /// A whole login answer for a finished [`Sessions::login`]: the pair
    /// (or, with `cookie_only`, no tokens in the body) and its cookies when
    /// the request passed the CSRF check.
    pub fn login_response<H: RequestHeaders + ?Sized>(
        &self,
        cookies: &CookieSettings,
        method: &str,
        headers: &H,
        result: Result<TokenPair, SessionError>,
        cookie_only: bool,
    ) -> EndpointResponse {
        let may_set_cookies = self.verifier().check_csrf(method, headers).is_ok();
        match result {
            Ok(pair) => pair_response(cookies, &pair, cookie_only, may_set_cookies),
            Err(e) => EndpointResponse::from_session(&e),
        }
    }

    /// A whole logout endpoint (`POST /logout`): ends the session of the
    /// access token (Bearer or cookie) or, when there is no live access
    /// token, of the refresh cookie, and clears the cookies. Cross-site
    /// requests change nothing (403); no credentials at all is 401.
    pub async fn logout_endpoint<H: RequestHeaders + ?Sized>(
        &self,
        cookies: &CookieSettings,
        method: &str,
        headers: &H,
    ) -> EndpointResponse {
        let csrf = self.verifier().check_csrf(method, headers);
        let refresh_cookie = cookies.refresh_token_from(headers);
        let ended = match self.verifier().authenticate(method, headers).await {
            Ok(access) => self.logout(&access).await,
            Err(e) if e.kind() == AuthErrorKind::StoreUnavailable => {
                return EndpointResponse::from_auth(&e)
            }
            Err(e) if e.kind() == AuthErrorKind::CrossSiteRequest => {
                return EndpointResponse::from_auth(&e)
            }
            // An expired or already revoked access token of ours: its
            // signature still names the session, so a logout that failed
            // half way, or one after expiry, is finished.
            Err(e) if matches!(e.kind(), AuthErrorKind::Revoked | AuthErrorKind::Expired) => {
                if let Err(csrf) = &csrf {
                    return EndpointResponse::from_auth(csrf);
                }
                match self
                    .verifier()
                    .find_token(headers)
                    .map(|t| self.verifier().authentic_sid(t))
                {
                    Some(Ok(Some(sid))) => self.end_session(&sid).await,
                    Some(Ok(None)) => Ok(()),
                    _ => match refresh_cookie {
                        Some(refresh) => self.logout_refresh(refresh).await,
                        None => return EndpointResponse::from_auth(&e),
                    },
                }
            }
            // No live access token: the refresh cookie names the session.
            Err(e) => match refresh_cookie {
                Some(refresh) => {
                    if let Err(csrf) = &csrf {
                        return EndpointResponse::from_auth(csrf);
                    }
                    self.logout_refresh(refresh).await
                }
                None => return EndpointResponse::from_auth(&e),
            },
        };
        match ended {
            Ok(()) => {
                let answer = EndpointResponse::json(200, r#"{"logged_out":true}"#.into());
                if csrf.is_ok() {
                    answer.with_cookies(clear(cookies))
                } else {
                    answer
                }
            }
            Err(e) => EndpointResponse::from_session(&e),
        }
    }
}

fn clear(cookies: &CookieSettings) -> [String; 2] {
    [cookies.clear_access(), cookies.clear_refresh()]
}

fn pair_response(
    cookies: &CookieSettings,
    pair: &TokenPair,
    cookie_only: bool,
    may_set_cookies: bool,
) -> EndpointResponse {
    let body = if cookie_only {
        serde_json::json!({ "token_type": pair.token_type, "expires_in": pair.expires_in })
    } else {
        serde_json::to_value(pair).unwrap_or_default()
    };
    let answer = EndpointResponse::json(200, body.to_string());
    if may_set_cookies {
        answer.with_cookies([
            cookies.access_cookie(&pair.access_token, pair.expires_in),
            cookies.refresh_cookie(&pair.refresh_token, pair.refresh_expires_in),
        ])
    } else {
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SigningKey, TokenIssuer};

    fn sessions() -> Sessions {
        let issuer = TokenIssuer::builder(SigningKey::hs256([9u8; 32]).unwrap())
            .audience("api")
            .build()
            .unwrap();
        Sessions::in_memory(issuer).unwrap()
    }

    fn rt<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn a_cross_site_text_plain_form_changes_nothing() {
        rt(async {
            let s = sessions();
            let c = CookieSettings::new();
            let attacker = s.login("mallory", &serde_json::json!({})).await.unwrap();
            let form = format!(r#"{{"refresh_token":"{}"}}"#, attacker.refresh_token);
            let victim_cookie = "keycard_refresh=victim.refresh.token";
            let cross = [
                ("content-type", "text/plain"),
                ("origin", "https://evil.example"),
                ("host", "api.example"),
                ("cookie", victim_cookie),
            ];
            // Login CSRF: the attacker's token in a text/plain body.
            let a = s
                .refresh_endpoint(&c, "POST", &cross[..], form.as_bytes())
                .await;
            assert_eq!(a.status, 415);
            assert!(a.set_cookies.is_empty());
            // Forced logout: garbage in the body.
            let a = s.refresh_endpoint(&c, "POST", &cross[..], b"garbage").await;
            assert!(a.set_cookies.is_empty() && a.status >= 400);
            // The victim's cookie from another origin: 403, untouched.
            let a = s.refresh_endpoint(&c, "POST", &cross[..3], b"").await;
            assert_eq!(a.status, 400, "no token at all");
            let a = s.refresh_endpoint(&c, "POST", &cross[1..], b"").await;
            assert_eq!(a.status, 403);
            assert!(a.set_cookies.is_empty());
            // A cross-origin JSON request (only possible after a CORS
            // preflight) gets its tokens but never cookies.
            let json = [
                ("content-type", "application/json; charset=utf-8"),
                ("origin", "https://evil.example"),
                ("host", "api.example"),
            ];
            let a = s
                .refresh_endpoint(&c, "POST", &json[..], form.as_bytes())
                .await;
            assert_eq!(a.status, 200);
            assert!(a.set_cookies.is_empty());
        });
    }

    #[test]
    fn logout_works_from_the_refresh_cookie_alone() {
        rt(async {
            let s = sessions();
            let c = CookieSettings::new();
            let pair = s.login("alice", &serde_json::json!({})).await.unwrap();
            let cookie = format!("keycard_refresh={}", pair.refresh_token);
            let h = [("cookie", cookie.as_str())];
            let a = s.logout_endpoint(&c, "POST", &h[..]).await;
            assert_eq!(a.status, 200, "{a:?}");
            assert_eq!(a.set_cookies.len(), 2);
            assert!(s.refresh(&pair.refresh_token).await.is_err());
            assert!(s.verifier().verify(&pair.access_token).await.is_err());
            // Cross-site: refused, nothing cleared.
            let pair = s.login("alice", &serde_json::json!({})).await.unwrap();
            let cookie = format!("keycard_refresh={}", pair.refresh_token);
            let h = [
                ("cookie", cookie.as_str()),
                ("origin", "https://evil.example"),
                ("host", "api.example"),
            ];
            let a = s.logout_endpoint(&c, "POST", &h[..]).await;
            assert_eq!(a.status, 403);
            assert!(a.set_cookies.is_empty());
            assert!(s.refresh(&pair.refresh_token).await.is_ok());
            // Nothing at all: 401 with a challenge.
            let a = s.logout_endpoint(&c, "POST", &[][..]).await;
            assert_eq!(a.status, 401);
            assert!(a.www_authenticate.is_some());
        });
    }
}
