//! Refusals as gRPC answers, for tonic (or any gRPC server on tower)
//! behind [`crate::JwtAuth`]: `router.layer(JwtAuth::new(v).with_rejection(GrpcRejection))`.
//!
//! gRPC clients read the status from `grpc-status`, not from the HTTP
//! status, so a refusal is a "trailers-only" response: HTTP 200,
//! `content-type: application/grpc`, an empty body, and
//!
//! | keycard | `grpc-status` |
//! |---|---|
//! | 401 (no, bad or revoked token) | 16 `UNAUTHENTICATED` |
//! | 403 (role or scope missing, cross-site) | 7 `PERMISSION_DENIED` |
//! | 400 (malformed request) | 3 `INVALID_ARGUMENT` |
//! | 503 (keys or store unavailable) | 14 `UNAVAILABLE` |
//! | 500 | 13 `INTERNAL` |
//!
//! `grpc-message` carries the error's description (never the token), and
//! the RFC 6750 challenge stays in `www-authenticate` metadata. The
//! [`AuthError`] is in the response extensions, as with every rejection.

use http::header::{HeaderValue, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::Response;
use keycard_core::AuthError;

use crate::rejection::Rejection;

/// The gRPC rejection (see the [module documentation](self)).
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcRejection;

/// The gRPC status code for an [`AuthError`].
pub fn grpc_status(error: &AuthError) -> u8 {
    match error.status() {
        401 => 16,
        403 => 7,
        400 => 3,
        503 => 14,
        _ => 13,
    }
}

/// `grpc-message` is percent-encoded (gRPC over HTTP/2, "Responses").
fn grpc_message(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl<B: Default> Rejection<B> for GrpcRejection {
    fn reject(&self, error: AuthError) -> Response<B> {
        let mut res = Response::new(B::default());
        let headers = res.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert(
            "grpc-status",
            HeaderValue::from(u16::from(grpc_status(&error))),
        );
        if let Ok(v) = HeaderValue::from_str(&grpc_message(&error.error_description())) {
            headers.insert("grpc-message", v);
        }
        if let Some(v) = error
            .www_authenticate()
            .and_then(|c| HeaderValue::from_str(&c).ok())
        {
            headers.insert(WWW_AUTHENTICATE, v);
        }
        res.extensions_mut().insert(error);
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keycard_core::AuthErrorKind;

    #[test]
    fn statuses_and_trailers_only_shape() {
        for (kind, status) in [
            (AuthErrorKind::Missing, "16"),
            (AuthErrorKind::Expired, "16"),
            (AuthErrorKind::InsufficientRole, "7"),
            (AuthErrorKind::MalformedRequest, "3"),
            (AuthErrorKind::StoreUnavailable, "14"),
            (AuthErrorKind::LayerMissing, "13"),
        ] {
            let res: Response<String> = GrpcRejection.reject(AuthError::new(kind));
            assert_eq!(res.status(), 200);
            assert_eq!(res.headers()["content-type"], "application/grpc");
            assert_eq!(res.headers()["grpc-status"], status, "{kind:?}");
            assert!(res.body().is_empty());
            assert!(res.extensions().get::<AuthError>().is_some());
        }
        assert_eq!(grpc_message("50% off\n"), "50%25 off%0A");
    }
}
