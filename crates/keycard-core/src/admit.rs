//! The one call an adapter makes per request: find and verify the token,
//! apply the optional/required mode, let CORS preflights through, and
//! report the decision (one `keycard.auth` tracing span, metrics). Adapters
//! only store what comes back in their request's extensions, or answer the
//! error. Nothing here knows a web framework.

use std::sync::Arc;
use std::time::Instant;

use tracing::field::Empty;

use crate::error::{AuthError, AuthErrorKind};
use crate::source::{Found, RequestHeaders};
use crate::verify::{Anonymous, Attempt, AuthMode, PendingVerification, Verified, Verifier};

/// What a request that may pass carries on: a verified token, or the mark
/// of an anonymous request (no token, optional mode; or a CORS preflight).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Admitted {
    /// The token passed every check.
    Verified(Verified),
    /// No token and the mode allows it, or a CORS preflight.
    Anonymous(Anonymous),
}

/// The caller's claims type, deserialized by the layer in the walk that
/// checked the token ([`Verifier::admit_request_typed`]). An adapter stores
/// it in the request next to the [`Verified`], and its claims extractor
/// takes it from there instead of deserializing the payload again.
///
/// It is bound to the [`Verified`] it came with: [`PreparedClaims::take_for`]
/// hands `T` over only for that same verification, so a second
/// authentication layer that stored another `Verified` never gets the first
/// layer's claims.
#[derive(Debug, Clone)]
pub struct PreparedClaims<T> {
    claims: T,
    of: Verified,
}

impl<T> PreparedClaims<T> {
    /// `claims`, deserialized from `verified`'s payload.
    pub(crate) fn new(claims: T, of: &Verified) -> Self {
        Self {
            claims,
            of: of.clone(),
        }
    }

    /// The claims, if they were deserialized for `verified` (the same
    /// verification, not merely an equal token).
    pub fn take_for(self, verified: &Verified) -> Option<T> {
        self.of.same_verification(verified).then_some(self.claims)
    }
}

/// What an adapter knows of a request besides its method and headers: its
/// path (which DPoP proofs name) and whether it has a body (a CORS
/// preflight never does). `Option<&str>` and `&str` convert into it, with
/// the body [`BodyHint::Unknown`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Target<'a> {
    path: Option<&'a str>,
    body: BodyHint,
}

impl<'a> Target<'a> {
    /// The request's full path (before any router took a prefix off).
    pub fn path(path: &'a str) -> Self {
        Self {
            path: Some(path),
            body: BodyHint::Unknown,
        }
    }

    /// What the adapter knows of the body.
    #[must_use]
    pub fn body(mut self, body: BodyHint) -> Self {
        self.body = body;
        self
    }
}

impl<'a> From<Option<&'a str>> for Target<'a> {
    fn from(path: Option<&'a str>) -> Self {
        Self {
            path,
            body: BodyHint::Unknown,
        }
    }
}

impl<'a> From<&'a str> for Target<'a> {
    fn from(path: &'a str) -> Self {
        Self::path(path)
    }
}

/// Whether a request has a body, as the transport tells it: over HTTP/2
/// and HTTP/3 a body needs neither `Content-Length` nor
/// `Transfer-Encoding`, so only the body itself (its end-of-stream flag or
/// exact size hint) can say that there is none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyHint {
    /// The adapter cannot tell: only the headers decide (HTTP/1.x framing).
    #[default]
    Unknown,
    /// The body is known to be empty.
    Empty,
    /// The body may hold data.
    MayHaveData,
}

/// The outcome of [`Verifier::admit`].
#[derive(Debug)]
#[must_use]
pub enum Admission {
    /// Decided without waiting.
    Done(Result<Admitted, AuthError>),
    /// The token names a key not known yet; finish after the key refresh.
    Pending(PendingAdmission),
}

/// An admission that waits for the key provider.
#[derive(Debug)]
pub struct PendingAdmission {
    pending: PendingVerification,
    mode: AuthMode,
    span: tracing::Span,
    start: Instant,
    /// What the log may say about the token, read while the headers were
    /// at hand (only when the span is enabled).
    described: Option<(Found, Option<&'static str>, Option<String>)>,
}

impl PendingAdmission {
    /// Refresh the keys (single-flight) and decide.
    pub async fn finish(self) -> Result<Admitted, AuthError> {
        let result = {
            let fut = self.pending.finish();
            tracing::Instrument::instrument(fut, self.span.clone()).await
        };
        conclude(self.mode, result, &self.span, self.start, || self.described)
    }
}

/// A CORS preflight as browsers send it (Fetch §4.8, "CORS-preflight
/// request"): `OPTIONS` with `Origin` and `Access-Control-Request-Method`,
/// and never credentials or a body. Anything else that claims to be one is
/// authenticated like any request, so that a client cannot carry a body or
/// credentials past the layer under a preflight's name.
fn is_preflight<H: RequestHeaders + ?Sized>(
    verifier: &Verifier,
    method: &str,
    body: BodyHint,
    headers: &H,
) -> bool {
    let has = |name: &str| headers.header_values(name).next().is_some();
    method == "OPTIONS"
        && body != BodyHint::MayHaveData
        && has("access-control-request-method")
        && has("origin")
        && !has("authorization")
        && !has("transfer-encoding")
        && headers
            .header_values("content-length")
            .all(|v| v.trim_ascii() == b"0")
        && verifier.carries_no_token(headers)
}

fn source_name(found: Found) -> &'static str {
    match found {
        Found::BearerHeader => "bearer",
        Found::Cookie => "cookie",
        Found::Header => "header",
        Found::DpopHeader => "dpop",
    }
}

fn conclude(
    mode: AuthMode,
    result: Result<Verified, AuthError>,
    span: &tracing::Span,
    start: Instant,
    describe: impl FnOnce() -> Option<(Found, Option<&'static str>, Option<String>)>,
) -> Result<Admitted, AuthError> {
    // The metrics first: the duration is the time to decide, read before
    // any span or log work (read at all only when a histogram records it).
    let since = crate::observe::Since(start);
    match result {
        Ok(v) => {
            crate::observe::verified(since);
            if !span.is_disabled() {
                span.record("outcome", "verified");
                if let Some(alg) = v.algorithm() {
                    span.record("alg", crate::key::alg_name(alg));
                }
                if let Some(kid) = v.kid() {
                    span.record("kid", kid);
                }
                if let Some(iss) = v.issuer() {
                    span.record("iss", iss);
                }
                span.record("source", source_name(v.found_in()));
                span.record("cached", v.from_cache());
                tracing::trace!(parent: span, "request verified");
            }
            Ok(Admitted::Verified(v))
        }
        Err(e) if mode == AuthMode::Optional && e.kind() == AuthErrorKind::Missing => {
            crate::observe::anonymous(since);
            span.record("outcome", "anonymous");
            tracing::trace!(parent: span, "no token: anonymous");
            Ok(Admitted::Anonymous(
                Anonymous::new(e.realm_or_default())
                    .with_resource_metadata(e.resource_metadata().map(Arc::from)),
            ))
        }
        Err(e) => {
            crate::observe::rejected(e.kind().name(), since);
            if !span.is_disabled() {
                span.record("outcome", "rejected");
                span.record("kind", e.kind().name());
                if let Some((found, alg, kid)) = describe() {
                    span.record("source", source_name(found));
                    if let Some(alg) = alg {
                        span.record("alg", alg);
                    }
                    if let Some(kid) = kid {
                        span.record("kid", kid.as_str());
                    }
                }
                // The detail is for operators; it never holds a token,
                // signature, key or claim value other than iss/kid.
                tracing::debug!(
                    parent: span,
                    kind = e.kind().name(),
                    status = e.status(),
                    detail = e.detail().unwrap_or(""),
                    "request refused"
                );
            }
            Err(e)
        }
    }
}

impl Verifier {
    /// Decide a request, as every adapter does: `Verified` or `Anonymous`
    /// to store in the request's extensions, or the error to answer.
    ///
    /// CORS preflights (`OPTIONS` with `Access-Control-Request-Method`)
    /// pass as anonymous so that a CORS layer inside the authentication
    /// layer can answer them (browsers never send credentials on a
    /// preflight); [`crate::VerifierBuilder::authenticate_cors_preflights`]
    /// turns that off.
    pub fn admit<H: RequestHeaders + ?Sized>(
        &self,
        mode: AuthMode,
        method: &str,
        headers: &H,
    ) -> Admission {
        self.admit_request(mode, method, None, headers)
    }

    /// [`Verifier::admit`] with the request's target (its path), which DPoP
    /// proofs name. The adapters call this.
    pub fn admit_request<'t, H: RequestHeaders + ?Sized>(
        &self,
        mode: AuthMode,
        method: &str,
        target: impl Into<Target<'t>>,
        headers: &H,
    ) -> Admission {
        self.admit_with(
            mode,
            method,
            target,
            headers,
            |v, method, target, headers| v.authenticate_now_at(method, target, headers),
        )
    }

    /// [`Verifier::admit_request`] that also deserializes the caller's
    /// claims type `T` in the walk that checks the payload (see
    /// [`Verifier::authenticate_now_typed`]): the same decision, and `T`
    /// when the request was verified from a freshly walked token. Adapters
    /// store it as [`PreparedClaims`] next to the [`Verified`].
    pub fn admit_request_typed<'t, T, H>(
        &self,
        mode: AuthMode,
        method: &str,
        target: impl Into<Target<'t>>,
        headers: &H,
    ) -> (Admission, Option<PreparedClaims<T>>)
    where
        T: serde::de::DeserializeOwned,
        H: RequestHeaders + ?Sized,
    {
        let mut claims = None;
        let admission = self.admit_with(
            mode,
            method,
            target,
            headers,
            |v, method, target, headers| {
                let (attempt, t) = v.authenticate_now_typed::<T, H>(method, target, headers);
                claims = t;
                attempt
            },
        );
        let prepared = match (&admission, claims) {
            (Admission::Done(Ok(Admitted::Verified(v))), Some(c)) => {
                Some(PreparedClaims::new(c, v))
            }
            _ => None,
        };
        (admission, prepared)
    }

    fn admit_with<'t, H: RequestHeaders + ?Sized>(
        &self,
        mode: AuthMode,
        method: &str,
        target: impl Into<Target<'t>>,
        headers: &H,
        authenticate: impl FnOnce(&Self, &str, Option<&str>, &H) -> Attempt,
    ) -> Admission {
        let start = Instant::now();
        let Target { path: target, body } = target.into();
        if self.cors_preflights_pass() && is_preflight(self, method, body, headers) {
            crate::observe::anonymous(crate::observe::Since(start));
            return Admission::Done(Ok(Admitted::Anonymous(Anonymous::preflight(
                self.realm().clone(),
            ))));
        }
        let span = tracing::debug_span!(
            "keycard.auth",
            outcome = Empty,
            kind = Empty,
            alg = Empty,
            kid = Empty,
            iss = Empty,
            source = Empty,
            cached = Empty,
        );
        let attempt = {
            let _entered = span.enter();
            authenticate(self, method, target, headers)
        };
        match attempt {
            Attempt::Done(result) => Admission::Done(conclude(mode, result, &span, start, || {
                self.describe_token(headers)
            })),
            Attempt::Pending(pending) => Admission::Pending(PendingAdmission {
                described: if span.is_disabled() {
                    None
                } else {
                    self.describe_token(headers)
                },
                pending,
                mode,
                span,
                start,
            }),
        }
    }
}
