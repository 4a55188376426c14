//! How a refused request is answered. The default answers with the core's
//! status, `WWW-Authenticate` challenge and a small JSON body; any
//! `Fn(AuthError) -> Response<B>` replaces it.

use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use keycard_core::{AuthError, EndpointResponse};

/// Turns an [`AuthError`] into a response. Implemented by
/// [`DefaultRejection`] and by every `Fn(AuthError) -> Response<B>`.
pub trait Rejection<B>: Clone + Send + Sync + 'static {
    /// Build the response for a refused request.
    fn reject(&self, error: AuthError) -> Response<B>;
}

/// The standard rejection: status and `WWW-Authenticate` from the core, a
/// JSON body `{"error", "error_description"}`, `Cache-Control: no-store`, and
/// the [`AuthError`] in the response extensions.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultRejection;

impl<B: From<String>> Rejection<B> for DefaultRejection {
    fn reject(&self, error: AuthError) -> Response<B> {
        error_response(error)
    }
}

impl<B, F> Rejection<B> for F
where
    F: Fn(AuthError) -> Response<B> + Clone + Send + Sync + 'static,
{
    fn reject(&self, error: AuthError) -> Response<B> {
        self(error)
    }
}

/// The standard response for an [`AuthError`] (see [`DefaultRejection`]).
pub fn error_response<B: From<String>>(error: AuthError) -> Response<B> {
    let mut res = Response::new(B::from(error.body()));
    *res.status_mut() =
        StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = res.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(challenge) = error.www_authenticate() {
        // The core keeps challenges to visible ASCII; fall back to a bare
        // challenge rather than drop the header.
        let value = HeaderValue::from_str(&challenge)
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
        headers.insert(WWW_AUTHENTICATE, value);
    }
    if let Some(nonce) = error
        .dpop_nonce()
        .and_then(|n| HeaderValue::from_str(n).ok())
    {
        headers.insert("dpop-nonce", nonce);
    }
    res.extensions_mut().insert(error);
    res
}

/// An [`EndpointResponse`] (from the core's refresh, login and logout
/// helpers) as an HTTP response: its status, JSON body, `Set-Cookie` values
/// and challenge, with `Cache-Control: no-store`.
pub fn endpoint_response<B: From<String>>(answer: EndpointResponse) -> Response<B> {
    let mut res = Response::new(B::from(answer.body));
    *res.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = res.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(challenge) = answer.www_authenticate {
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            headers.insert(WWW_AUTHENTICATE, v);
        }
    }
    for cookie in answer.set_cookies {
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            headers.append(http::header::SET_COOKIE, v);
        }
    }
    res
}

/// The RFC 9728 protected resource metadata document as a response: 200,
/// JSON, cacheable. Serve it at `metadata.path()`, without authentication.
pub fn resource_metadata_response<B: From<String>>(
    metadata: &keycard_core::metadata::ResourceMetadata,
) -> Response<B> {
    let mut res = Response::new(B::from(metadata.to_json()));
    let headers = res.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static(metadata.cache_control()),
    );
    res
}
