//! The one error model: what went wrong, and the single place that decides
//! which HTTP status and RFC 6750 challenge it becomes.
//!
//! Adapters never choose a status or build a challenge themselves; they ask an
//! [`AuthError`] for [`AuthError::status`], [`AuthError::www_authenticate`] and
//! [`AuthError::body`].

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

/// Why a request was not authenticated.
///
/// The list grows as keycard learns new checks, so match with a wildcard arm.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthErrorKind {
    /// No credentials were sent (401, challenge without an error code).
    Missing,
    /// The request carrying the token is malformed: two `Authorization`
    /// headers, an empty or non-b64token Bearer value, duplicate auth cookies,
    /// or a token sent by more than one method (400 `invalid_request`).
    MalformedRequest,
    /// The token is not a well-formed compact JWS (401 `invalid_token`).
    MalformedToken,
    /// The token is larger than the configured cap (401 `invalid_token`).
    TokenTooLarge,
    /// The token header uses something keycard refuses: `crit`, `enc`,
    /// `zip`, a nested token (`cty: JWT`) (401 `invalid_token`).
    UnsupportedHeader,
    /// No configured key matches the token's `kid` and `alg` (401).
    UnknownKey,
    /// A key with the token's `kid` is known, but the token's algorithm is
    /// not allowed for it, or not allowed at all (401 `invalid_token`).
    AlgorithmNotAllowed,
    /// The signature does not verify (401 `invalid_token`).
    BadSignature,
    /// `exp` is in the past (beyond the leeway) (401 `invalid_token`).
    Expired,
    /// `nbf` is in the future (beyond the leeway) (401 `invalid_token`).
    NotYetValid,
    /// `iat` is in the future, or `exp - iat` exceeds the maximum lifetime.
    InvalidLifetime,
    /// A required claim is absent (401 `invalid_token`).
    MissingClaim,
    /// A registered claim has the wrong JSON type (401 `invalid_token`).
    InvalidClaimType,
    /// `iss` is not an accepted issuer (401 `invalid_token`).
    WrongIssuer,
    /// `aud` names none of the accepted audiences (401 `invalid_token`).
    WrongAudience,
    /// The token is of the wrong type, e.g. a refresh token used as an
    /// access token (401 `invalid_token`).
    WrongTokenType,
    /// The token, its family or its subject was revoked (401 `invalid_token`).
    Revoked,
    /// The token is valid but lacks a required role
    /// (403 `insufficient_scope`).
    InsufficientRole,
    /// The token is valid but lacks a required scope
    /// (403 `insufficient_scope`, RFC 6750 §3.1).
    InsufficientScope,
    /// A cookie-authenticated unsafe request came from another site (403).
    CrossSiteRequest,
    /// A store that a check needs (revocation, refresh) cannot answer and the
    /// policy is fail-closed (503).
    StoreUnavailable,
    /// The keys needed to verify the token cannot be obtained right now (503).
    KeysUnavailable,
    /// No authentication layer ran before an extractor that needs one (500).
    LayerMissing,
    /// The DPoP proof is missing, malformed, for another request or key, or
    /// replayed (401 `invalid_dpop_proof`, RFC 9449 §7.1).
    InvalidDpopProof,
    /// The DPoP proof lacks the server's current nonce; the answer carries a
    /// fresh one in `DPoP-Nonce` (401 `use_dpop_nonce`, RFC 9449 §8).
    UseDpopNonce,
    /// The token's key binding does not fit the request: a DPoP-bound token
    /// sent as a Bearer token, an unbound one sent with DPoP, a proof by
    /// another key, or a Bearer token where DPoP is required
    /// (401 `invalid_token`).
    BindingMismatch,
    /// The authorization server says the token is not active (RFC 7662)
    /// (401 `invalid_token`).
    Inactive,
}

impl AuthErrorKind {
    /// Every kind, for metrics created at zero and for tables.
    pub const ALL: [AuthErrorKind; 27] = [
        Self::Missing,
        Self::MalformedRequest,
        Self::MalformedToken,
        Self::TokenTooLarge,
        Self::UnsupportedHeader,
        Self::UnknownKey,
        Self::AlgorithmNotAllowed,
        Self::BadSignature,
        Self::Expired,
        Self::NotYetValid,
        Self::InvalidLifetime,
        Self::MissingClaim,
        Self::InvalidClaimType,
        Self::WrongIssuer,
        Self::WrongAudience,
        Self::WrongTokenType,
        Self::Revoked,
        Self::InsufficientRole,
        Self::InsufficientScope,
        Self::CrossSiteRequest,
        Self::StoreUnavailable,
        Self::KeysUnavailable,
        Self::LayerMissing,
        Self::InvalidDpopProof,
        Self::UseDpopNonce,
        Self::BindingMismatch,
        Self::Inactive,
    ];

    /// The short, stable, non-sensitive sentence used as `error_description`.
    pub fn description(self) -> &'static str {
        match self {
            Self::Missing => "no credentials were sent",
            Self::MalformedRequest => "the request carrying the token is malformed",
            Self::MalformedToken => "the token is malformed",
            Self::TokenTooLarge => "the token is too large",
            Self::UnsupportedHeader => "the token header is not supported",
            Self::UnknownKey => "the token was signed by an unknown key",
            Self::AlgorithmNotAllowed => "the token's algorithm is not allowed for its key",
            Self::BadSignature => "the token signature is invalid",
            Self::Expired => "the token has expired",
            Self::NotYetValid => "the token is not valid yet",
            Self::InvalidLifetime => "the token lifetime is invalid",
            Self::MissingClaim => "the token lacks a required claim",
            Self::InvalidClaimType => "a token claim is missing or has the wrong type",
            Self::WrongIssuer => "the token issuer is not accepted",
            Self::WrongAudience => "the token audience is not accepted",
            Self::WrongTokenType => "the token is not of the expected type",
            Self::Revoked => "the token has been revoked",
            Self::InsufficientRole => "the token lacks a required role",
            Self::InsufficientScope => "the token lacks a required scope",
            Self::CrossSiteRequest => "cross-site request refused",
            Self::StoreUnavailable => "the authentication store is unavailable",
            Self::KeysUnavailable => "the verification keys are unavailable",
            Self::LayerMissing => {
                "no keycard JwtAuth layer ran before this guard or extractor: the JwtAuth layer is missing for this route, or in the wrong order (it must wrap the role guard: in axum, add `.layer(JwtAuth::new(..))` after `.route_layer(RequireRoles::..)`; in actix-web, `.wrap(JwtAuth::new(..))` after the guard's `.wrap`)"
            }
            Self::InvalidDpopProof => "the DPoP proof is invalid",
            Self::UseDpopNonce => "the DPoP proof must carry the server nonce",
            Self::BindingMismatch => "the token's key binding does not fit the request",
            Self::Inactive => "the token is not active",
        }
    }

    /// A stable snake_case name, for logs and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::MalformedRequest => "malformed_request",
            Self::MalformedToken => "malformed_token",
            Self::TokenTooLarge => "token_too_large",
            Self::UnsupportedHeader => "unsupported_header",
            Self::UnknownKey => "unknown_key",
            Self::AlgorithmNotAllowed => "algorithm_not_allowed",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::InvalidLifetime => "invalid_lifetime",
            Self::MissingClaim => "missing_claim",
            Self::InvalidClaimType => "invalid_claim_type",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::WrongTokenType => "wrong_token_type",
            Self::Revoked => "revoked",
            Self::InsufficientRole => "insufficient_role",
            Self::InsufficientScope => "insufficient_scope",
            Self::CrossSiteRequest => "cross_site_request",
            Self::StoreUnavailable => "store_unavailable",
            Self::KeysUnavailable => "keys_unavailable",
            Self::LayerMissing => "layer_missing",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
            Self::BindingMismatch => "binding_mismatch",
            Self::Inactive => "inactive",
        }
    }

    /// The RFC 6750 error code, if this kind has one.
    pub fn error_code(self) -> Option<&'static str> {
        match self {
            Self::Missing
            | Self::CrossSiteRequest
            | Self::StoreUnavailable
            | Self::KeysUnavailable
            | Self::LayerMissing => None,
            Self::MalformedRequest => Some("invalid_request"),
            Self::InsufficientRole | Self::InsufficientScope => Some("insufficient_scope"),
            Self::InvalidDpopProof => Some("invalid_dpop_proof"),
            Self::UseDpopNonce => Some("use_dpop_nonce"),
            _ => Some("invalid_token"),
        }
    }

    /// The HTTP status code for this kind.
    pub fn status(self) -> u16 {
        match self {
            Self::MalformedRequest => 400,
            Self::InsufficientRole | Self::InsufficientScope | Self::CrossSiteRequest => 403,
            Self::StoreUnavailable | Self::KeysUnavailable => 503,
            Self::LayerMissing => 500,
            _ => 401,
        }
    }
}

/// An authentication failure that knows its HTTP status and challenge.
///
/// Its `Display` and body never contain the token or key material.
#[derive(Clone)]
pub struct AuthError {
    kind: AuthErrorKind,
    realm: Option<Arc<str>>,
    resource_metadata: Option<Arc<str>>,
    dpop: Option<Arc<DpopChallenge>>,
    scope: Option<Arc<str>>,
    detail: Option<Cow<'static, str>>,
    /// Whether `detail` may be told to the client too (never a token,
    /// claim value or secret: static texts and field names only).
    public: bool,
    source: Option<Arc<dyn StdError + Send + Sync>>,
}

impl AuthError {
    /// A new error of this kind.
    pub fn new(kind: AuthErrorKind) -> Self {
        Self {
            kind,
            realm: None,
            resource_metadata: None,
            dpop: None,
            scope: None,
            detail: None,
            public: false,
            source: None,
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> AuthErrorKind {
        self.kind
    }

    /// Attach the realm used in the `WWW-Authenticate` challenge.
    #[must_use]
    pub fn with_realm(mut self, realm: Arc<str>) -> Self {
        self.realm = Some(realm);
        self
    }

    /// Attach the URL of the protected resource's metadata (RFC 9728
    /// §5.1): the challenge then carries `resource_metadata="<url>"`.
    #[must_use]
    pub fn with_resource_metadata(mut self, url: Option<Arc<str>>) -> Self {
        self.resource_metadata = url;
        self
    }

    /// Challenge with the DPoP scheme too (RFC 9449 §7.1): `algs` lists the
    /// proof algorithms; `only` makes it the sole challenge (DPoP required,
    /// or a DPoP error), otherwise it follows the Bearer challenge.
    #[must_use]
    pub fn with_dpop_challenge(mut self, algs: Arc<str>, only: bool) -> Self {
        let nonce = self.dpop.as_ref().and_then(|d| d.nonce.clone());
        self.dpop = Some(Arc::new(DpopChallenge {
            algs,
            only: only
                || matches!(
                    self.kind,
                    AuthErrorKind::InvalidDpopProof | AuthErrorKind::UseDpopNonce
                ),
            nonce,
        }));
        self
    }

    /// Attach a fresh DPoP nonce, for the `DPoP-Nonce` response header.
    #[must_use]
    pub(crate) fn with_dpop_nonce(mut self, nonce: String) -> Self {
        let nonce: Arc<str> = Arc::from(nonce);
        match &mut self.dpop {
            Some(d) => Arc::make_mut(d).nonce = Some(nonce),
            None => {
                self.dpop = Some(Arc::new(DpopChallenge {
                    algs: Arc::from(""),
                    only: true,
                    nonce: Some(nonce),
                }))
            }
        }
        self
    }

    /// The nonce for a `DPoP-Nonce` response header (with `use_dpop_nonce`).
    pub fn dpop_nonce(&self) -> Option<&str> {
        self.dpop.as_ref().and_then(|d| d.nonce.as_deref())
    }

    /// The resource metadata URL the challenge names, if any.
    pub fn resource_metadata(&self) -> Option<&str> {
        self.resource_metadata.as_deref()
    }

    /// Attach the scope that was required (for `insufficient_scope`).
    #[must_use]
    pub fn with_scope(mut self, scope: impl Into<Arc<str>>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Attach a detail that is also told to the client, after the kind's
    /// sentence in `error_description` (and kept for logs): only static
    /// texts and names from the application's own types, never a value
    /// taken from the token or the request.
    #[must_use]
    pub(crate) fn with_public_detail(mut self, detail: impl Into<Cow<'static, str>>) -> Self {
        self.detail = Some(detail.into());
        self.public = true;
        self
    }

    /// The `error_description` sent to the client: the kind's sentence,
    /// and what the request got wrong where that can be told safely (e.g.
    /// "the request carrying the token is malformed: token sent by more
    /// than one method").
    pub fn error_description(&self) -> Cow<'static, str> {
        match self.detail.as_ref().filter(|_| self.public) {
            None => Cow::Borrowed(self.kind.description()),
            Some(p) => {
                let mut out = String::from(self.kind.description());
                out.push_str(": ");
                out.extend(
                    p.chars()
                        .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
                        .take(160),
                );
                Cow::Owned(out)
            }
        }
    }

    /// Attach an internal detail for logs (never sent to clients).
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<Cow<'static, str>>) -> Self {
        self.detail = Some(detail.into());
        self.public = false;
        self
    }

    /// Attach the underlying cause (available through `source()`, never sent
    /// to clients).
    #[must_use]
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// The realm attached to this error, or the default one.
    pub(crate) fn realm_or_default(&self) -> Arc<str> {
        self.realm
            .clone()
            .unwrap_or_else(|| Arc::from(DEFAULT_REALM))
    }

    /// The internal detail, for logs.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// The scope that was required, for `insufficient_scope` errors.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// The HTTP status code: 400, 401, 403, 500 or 503.
    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// The value of the `WWW-Authenticate` header (RFC 6750 §3), or `None`
    /// for statuses that carry no Bearer challenge (500, 503, CSRF 403).
    pub fn www_authenticate(&self) -> Option<String> {
        let status = self.status();
        if !matches!(status, 400 | 401 | 403) || self.kind == AuthErrorKind::CrossSiteRequest {
            return None;
        }
        let dpop_only = self.dpop.as_ref().is_some_and(|d| d.only);
        let mut out = String::from(if dpop_only {
            "DPoP realm=\""
        } else {
            "Bearer realm=\""
        });
        push_quoted(&mut out, self.realm.as_deref().unwrap_or(DEFAULT_REALM));
        out.push('"');
        if let Some(code) = self.kind.error_code() {
            out.push_str(", error=\"");
            out.push_str(code);
            out.push_str("\", error_description=\"");
            out.push_str(&self.error_description());
            out.push('"');
        }
        if let (AuthErrorKind::InsufficientRole | AuthErrorKind::InsufficientScope, Some(scope)) =
            (self.kind, &self.scope)
        {
            out.push_str(", scope=\"");
            push_quoted(&mut out, scope);
            out.push('"');
        }
        if let Some(url) = &self.resource_metadata {
            out.push_str(", resource_metadata=\"");
            push_quoted(&mut out, url);
            out.push('"');
        }
        match &self.dpop {
            Some(d) if d.only => {
                out.push_str(", algs=\"");
                push_quoted(&mut out, &d.algs);
                out.push('"');
            }
            // Bearer and DPoP both accepted: a second challenge.
            Some(d) if !d.algs.is_empty() => {
                out.push_str(", DPoP algs=\"");
                push_quoted(&mut out, &d.algs);
                out.push('"');
            }
            _ => {}
        }
        Some(out)
    }

    /// A small JSON body: `{"error": "...", "error_description": "..."}`.
    pub fn body(&self) -> String {
        let code = self.kind.error_code().unwrap_or(match self.kind {
            AuthErrorKind::Missing => "unauthorized",
            AuthErrorKind::CrossSiteRequest => "forbidden",
            AuthErrorKind::LayerMissing => "server_error",
            _ => "temporarily_unavailable",
        });
        serde_json::json!({
            "error": code,
            "error_description": self.error_description(),
        })
        .to_string()
    }
}

/// The DPoP part of a challenge.
#[derive(Clone, Debug)]
struct DpopChallenge {
    algs: Arc<str>,
    only: bool,
    nonce: Option<Arc<str>>,
}

/// The realm used when none is configured.
pub const DEFAULT_REALM: &str = "keycard";

/// Quoted-string content: drop what cannot appear in one (quotes, backslashes
/// and control characters) rather than escape it, so a realm can never break
/// out of the header.
fn push_quoted(out: &mut String, value: &str) {
    out.extend(
        value
            .chars()
            .filter(|c| *c != '"' && *c != '\\' && !c.is_control()),
    );
}

impl From<AuthErrorKind> for AuthError {
    fn from(kind: AuthErrorKind) -> Self {
        Self::new(kind)
    }
}

impl fmt::Debug for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthError")
            .field("kind", &self.kind)
            .field("detail", &self.detail)
            .field("scope", &self.scope)
            .field("source", &self.source.as_ref().map(|s| s.to_string()))
            .finish()
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.description())?;
        if let Some(detail) = &self.detail {
            write!(f, " ({detail})")?;
        }
        Ok(())
    }
}

impl StdError for AuthError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

/// A configuration mistake found when building a verifier, issuer or store.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No verification key was configured.
    #[error("no verification key configured")]
    NoKey,
    /// An HMAC secret is shorter than the hash output.
    #[error("{alg:?} needs a secret of at least {min} bytes, got {got}")]
    WeakSecret {
        /// The algorithm.
        alg: crate::Algorithm,
        /// Minimum length in bytes.
        min: usize,
        /// Given length in bytes.
        got: usize,
    },
    /// An RSA key is shorter than 2048 bits.
    #[error("RSA keys must have at least 2048 bits, got {0}")]
    WeakRsaKey(usize),
    /// The key does not fit the algorithm (wrong family or curve).
    #[error("key does not match algorithm {0:?}")]
    KeyAlgorithmMismatch(crate::Algorithm),
    /// The key's type does not fit the algorithm's family, e.g. an EC or OKP
    /// public key labelled `HS256` (it would become an HMAC secret).
    #[error("a {key} key cannot be used with {alg:?}")]
    KeyTypeMismatch {
        /// The algorithm the key was to serve.
        alg: crate::Algorithm,
        /// The key's type.
        key: &'static str,
    },
    /// The key material could not be parsed.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// Two keys share a `kid`.
    #[error("duplicate key id {0:?}")]
    DuplicateKid(String),
    /// A setting is out of its allowed range.
    #[error("invalid setting: {0}")]
    InvalidSetting(String),
    /// A configuration field is wrong ([`crate::config::VerifierConfig`]):
    /// the field's path, the environment variable it is read from, and why.
    #[error("{field}{}: {message}", env.map(|e| format!(" ({e})")).unwrap_or_default())]
    Field {
        /// The field's path, e.g. `providers[0].keys[1].alg`.
        field: String,
        /// The `KEYCARD_*` variable it is read from, if any.
        env: Option<&'static str>,
        /// What is wrong.
        message: String,
    },
    /// No crypto backend feature is enabled.
    #[error("no crypto backend: enable the `aws-lc-rs` or `rust-crypto` feature")]
    NoCryptoBackend,
}

/// `Display` (the inner error's), `Error` (with the inner error as its
/// source) and `From<inner>` for an adapter's rejection newtype
/// `struct Name(pub Inner)`, so that every adapter's rejections make the
/// same contract. For adapter crates; not a stable API.
#[doc(hidden)]
#[macro_export]
macro_rules! rejection_newtype {
    ($name:ident, $inner:ty) => {
        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::fmt::Display::fmt(&self.0, f)
            }
        }

        impl ::std::error::Error for $name {
            fn source(&self) -> ::std::option::Option<&(dyn ::std::error::Error + 'static)> {
                ::std::option::Option::Some(&self.0)
            }
        }

        impl ::std::convert::From<$inner> for $name {
            fn from(e: $inner) -> Self {
                Self(e)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    /// `ALL` lists every kind once, in order: the match has no wildcard,
    /// so a new kind does not compile until it has a place here (and in
    /// `ALL`, which this test then checks).
    #[test]
    fn all_lists_every_kind_once() {
        fn place(k: AuthErrorKind) -> usize {
            match k {
                AuthErrorKind::Missing => 0,
                AuthErrorKind::MalformedRequest => 1,
                AuthErrorKind::MalformedToken => 2,
                AuthErrorKind::TokenTooLarge => 3,
                AuthErrorKind::UnsupportedHeader => 4,
                AuthErrorKind::UnknownKey => 5,
                AuthErrorKind::AlgorithmNotAllowed => 6,
                AuthErrorKind::BadSignature => 7,
                AuthErrorKind::Expired => 8,
                AuthErrorKind::NotYetValid => 9,
                AuthErrorKind::InvalidLifetime => 10,
                AuthErrorKind::MissingClaim => 11,
                AuthErrorKind::InvalidClaimType => 12,
                AuthErrorKind::WrongIssuer => 13,
                AuthErrorKind::WrongAudience => 14,
                AuthErrorKind::WrongTokenType => 15,
                AuthErrorKind::Revoked => 16,
                AuthErrorKind::InsufficientRole => 17,
                AuthErrorKind::InsufficientScope => 18,
                AuthErrorKind::CrossSiteRequest => 19,
                AuthErrorKind::StoreUnavailable => 20,
                AuthErrorKind::KeysUnavailable => 21,
                AuthErrorKind::LayerMissing => 22,
                AuthErrorKind::InvalidDpopProof => 23,
                AuthErrorKind::UseDpopNonce => 24,
                AuthErrorKind::BindingMismatch => 25,
                AuthErrorKind::Inactive => 26,
            }
        }
        for (i, k) in AuthErrorKind::ALL.iter().enumerate() {
            assert_eq!(place(*k), i, "{k:?}");
        }
    }

    use super::*;

    #[test]
    fn missing_has_no_error_code() {
        let e = AuthError::new(AuthErrorKind::Missing);
        assert_eq!(e.status(), 401);
        assert_eq!(e.www_authenticate().unwrap(), "Bearer realm=\"keycard\"");
    }

    #[test]
    fn mapping_is_rfc6750() {
        let cases = [
            (
                AuthErrorKind::MalformedRequest,
                400,
                Some("invalid_request"),
            ),
            (AuthErrorKind::Expired, 401, Some("invalid_token")),
            (AuthErrorKind::BadSignature, 401, Some("invalid_token")),
            (
                AuthErrorKind::InsufficientRole,
                403,
                Some("insufficient_scope"),
            ),
            (AuthErrorKind::StoreUnavailable, 503, None),
        ];
        for (kind, status, code) in cases {
            let e = AuthError::new(kind);
            assert_eq!(e.status(), status, "{kind:?}");
            let header = e.www_authenticate();
            match code {
                Some(code) => assert!(header.unwrap().contains(&format!("error=\"{code}\""))),
                None => assert!(header.is_none()),
            }
        }
    }

    #[test]
    fn scope_and_realm_are_sanitised() {
        let e = AuthError::new(AuthErrorKind::InsufficientRole)
            .with_realm(Arc::from("my \"realm\"\r\n"))
            .with_scope("admin");
        let h = e.www_authenticate().unwrap();
        assert_eq!(
            h,
            "Bearer realm=\"my realm\", error=\"insufficient_scope\", \
             error_description=\"the token lacks a required role\", scope=\"admin\""
        );
        let body: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(body["error"], "insufficient_scope");
    }
}
