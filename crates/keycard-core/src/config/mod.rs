//! Configuration without code: a [`VerifierConfig`] deserialised from TOML
//! (or any serde format), or read from `KEYCARD_*` environment variables.
//!
//! ```
//! # #[cfg(feature = "toml")] {
//! use keycard_core::config::VerifierConfig;
//!
//! let config = VerifierConfig::from_toml_str(r#"
//!     algorithms = ["HS256"]
//!     leeway_secs = 30
//!
//!     [[providers]]
//!     issuer = "https://auth.example"
//!     audiences = ["orders-api"]
//!     keys = [{ alg = "HS256", kid = "k1", secret_env = "DOC_EXAMPLE_SECRET" }]
//! "#).unwrap();
//! std::env::set_var("DOC_EXAMPLE_SECRET", "a secret of at least thirty-two bytes!");
//! let verifier = config.build().unwrap();
//! # let _ = verifier;
//! # }
//! ```
//!
//! Every field is optional except at least one provider, and each has the
//! default the builder has. Unknown fields are errors, and every error names
//! the field (and, for settings read from the environment, the variable):
//! `leeway_secs (KEYCARD_LEEWAY_SECS): at most 300`.
//!
//! A provider is where keys come from: fixed keys, a JWKS URL, or OIDC
//! discovery from its issuer (when it has neither keys nor a URL). With
//! several providers each must name its issuer, and a token is checked only
//! against the keys of the issuer it names, and against that provider's
//! audiences. Remote key sets are built without waiting for the first fetch:
//! a service starts while its identity provider is away and is ready
//! ([`crate::Verifier::readiness`]) once the keys arrive.
//!
//! Settings that weaken validation keep their `insecure_` names here too.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{Algorithm, ConfigError};

mod build;
mod load;
#[allow(unused_imports)]
use build::*;
#[allow(unused_imports)]
use load::*;

/// Everything a [`crate::Verifier`] needs, as data. See the
/// [module documentation](self) for the format.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct VerifierConfig {
    /// Where keys come from, with their issuers and audiences (at least one).
    #[serde(default)]
    pub providers: Vec<ProviderConfig>,
    /// Audiences for providers that name none (env `KEYCARD_AUDIENCE`,
    /// comma-separated).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    /// The allowed algorithms, e.g. `["RS256", "ES256"]` (env
    /// `KEYCARD_ALGORITHMS`). Default: every algorithm a key serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithms: Option<Vec<String>>,
    /// Clock leeway for `exp`, `nbf` and `iat`, at most 300 (env
    /// `KEYCARD_LEEWAY_SECS`; default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leeway_secs: Option<u64>,
    /// The longest lifetime (`exp - iat`) accepted (env
    /// `KEYCARD_MAX_LIFETIME_SECS`; default one day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lifetime_secs: Option<u64>,
    /// The longest token accepted, 64..=65536 bytes (env
    /// `KEYCARD_MAX_TOKEN_BYTES`; default 8192).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_token_bytes: Option<usize>,
    /// An identity provider's conventions: `generic`, `keycloak`, `auth0`,
    /// `entra`, `cognito`, `okta`, `google` (env `KEYCARD_PROFILE`). See
    /// [`crate::profile`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The client: Keycloak's client (whose roles are read), otherwise the
    /// only `client_id` accepted (env `KEYCARD_CLIENT_ID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Where roles are read: dotted paths or JSON Pointers (env
    /// `KEYCARD_ROLE_CLAIM`, comma-separated). With the `auth0` profile, the
    /// first is its namespaced roles claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_claims: Option<Vec<String>>,
    /// Where scopes are read (env `KEYCARD_SCOPE_CLAIM`, comma-separated;
    /// default `scope` and `scp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_claims: Option<Vec<String>>,
    /// Require `sub` (env `KEYCARD_REQUIRE_SUBJECT=1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_subject: Option<bool>,
    /// Token sources in order: `bearer`, `cookie` (named by `cookie_name`),
    /// `header:<name>` (env `KEYCARD_TOKEN_SOURCES`, comma-separated;
    /// default `bearer`, `cookie`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<String>>,
    /// The access-token cookie (env `KEYCARD_COOKIE_NAME`; default
    /// `keycard_access`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie_name: Option<String>,
    /// Origins allowed to send cookie-authenticated unsafe requests besides
    /// the service's own (env `KEYCARD_ALLOWED_ORIGINS`, comma-separated).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_origins: Vec<String>,
    /// Take the service's own origin from `X-Forwarded-Proto`/`-Host` (env
    /// `KEYCARD_TRUST_FORWARDED_ORIGIN=1`); only behind a proxy that sets them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_forwarded_origin: Option<bool>,
    /// The service runs on plain http: local development only (env
    /// `KEYCARD_INSECURE_PLAIN_HTTP_ORIGIN=1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_plain_http_origin: Option<bool>,
    /// Cache this many verified tokens (env `KEYCARD_CACHE_SIZE`; default
    /// no cache).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_size: Option<u64>,
    /// The shared revocation and session store, e.g. `redis://...` (env
    /// `KEYCARD_REDIS_URL`). The core does not connect: the application
    /// passes a store built from it (keycard-redis) to
    /// [`VerifierConfig::builder`]'s result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_url: Option<String>,
    /// This service's resource identifier (RFC 9728), e.g.
    /// `https://api.example.com/mcp` (env `KEYCARD_RESOURCE`): it publishes
    /// protected resource metadata and its challenges point to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The scopes listed in the resource metadata (env
    /// `KEYCARD_SCOPES_SUPPORTED`, comma-separated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes_supported: Option<Vec<String>>,
    /// DPoP (RFC 9449): `bearer` (the default), `allowed` or `required`
    /// (env `KEYCARD_DPOP`). Proof URLs are compared with the origin of
    /// `resource` when it is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop: Option<String>,
    /// Require DPoP server nonces (env `KEYCARD_DPOP_NONCES=1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_nonces: Option<bool>,
    /// The realm in `WWW-Authenticate` challenges (env `KEYCARD_REALM`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
}

/// One source of keys: fixed keys, a JWKS URL, or OIDC discovery.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ProviderConfig {
    /// The `iss` its tokens must carry (env `KEYCARD_ISSUER`). Required
    /// (unless `insecure_any_issuer`), and the base of OIDC discovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Its JWKS URL (env `KEYCARD_JWKS_URL`). Without it and without `keys`,
    /// keys are found by OIDC discovery from `issuer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// The audiences its tokens must name one of; default: the top-level
    /// `audiences`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audiences: Option<Vec<String>>,
    /// Fixed keys instead of a JWKS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeyConfig>,
    /// Minimum time between refetches for unknown `kid`s (env
    /// `KEYCARD_JWKS_COOLDOWN_SECS`; default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_cooldown_secs: Option<u64>,
    /// How long keys stay usable while the JWKS endpoint fails (env
    /// `KEYCARD_JWKS_MAX_STALENESS_SECS`; default one day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_max_staleness_secs: Option<u64>,
    /// Accept tokens whatever their `iss` (env
    /// `KEYCARD_INSECURE_ANY_ISSUER=1`): only for a key set that one issuer
    /// alone signs with. Without it, `issuer` is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_any_issuer: Option<bool>,
    /// Allow a plain-http loopback JWKS or issuer URL (tests, local
    /// development; env `KEYCARD_ALLOW_HTTP=1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_allow_http_loopback: Option<bool>,
}

/// One fixed key. Secrets are never written in the configuration itself:
/// they come from an environment variable or a file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct KeyConfig {
    /// The algorithm this key serves, e.g. `HS256`, `RS256`, `EdDSA`.
    pub alg: String,
    /// Its key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// An HMAC secret, from this environment variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    /// An HMAC secret, from this file (trailing newline removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// A public key, PEM, from this file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pem_file: Option<PathBuf>,
    /// A public key, PEM, inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pem: Option<String>,
}

/// The environment variable each top-level field is read from.
const ENV_NAMES: &[(&str, &str)] = &[
    ("providers[0].issuer", "KEYCARD_ISSUER"),
    ("providers[0].jwks_url", "KEYCARD_JWKS_URL"),
    (
        "providers[0].jwks_cooldown_secs",
        "KEYCARD_JWKS_COOLDOWN_SECS",
    ),
    (
        "providers[0].jwks_max_staleness_secs",
        "KEYCARD_JWKS_MAX_STALENESS_SECS",
    ),
    (
        "providers[0].insecure_allow_http_loopback",
        "KEYCARD_ALLOW_HTTP",
    ),
    ("audiences", "KEYCARD_AUDIENCE"),
    ("algorithms", "KEYCARD_ALGORITHMS"),
    ("leeway_secs", "KEYCARD_LEEWAY_SECS"),
    ("max_lifetime_secs", "KEYCARD_MAX_LIFETIME_SECS"),
    ("max_token_bytes", "KEYCARD_MAX_TOKEN_BYTES"),
    ("profile", "KEYCARD_PROFILE"),
    ("client_id", "KEYCARD_CLIENT_ID"),
    ("role_claims", "KEYCARD_ROLE_CLAIM"),
    ("scope_claims", "KEYCARD_SCOPE_CLAIM"),
    ("require_subject", "KEYCARD_REQUIRE_SUBJECT"),
    ("sources", "KEYCARD_TOKEN_SOURCES"),
    ("cookie_name", "KEYCARD_COOKIE_NAME"),
    ("allowed_origins", "KEYCARD_ALLOWED_ORIGINS"),
    ("trust_forwarded_origin", "KEYCARD_TRUST_FORWARDED_ORIGIN"),
    (
        "insecure_plain_http_origin",
        "KEYCARD_INSECURE_PLAIN_HTTP_ORIGIN",
    ),
    ("cache_size", "KEYCARD_CACHE_SIZE"),
    ("revocation_url", "KEYCARD_REDIS_URL"),
    ("realm", "KEYCARD_REALM"),
    ("resource", "KEYCARD_RESOURCE"),
    ("dpop", "KEYCARD_DPOP"),
    ("dpop_nonces", "KEYCARD_DPOP_NONCES"),
    ("scopes_supported", "KEYCARD_SCOPES_SUPPORTED"),
];

/// The environment variable that names a TOML file to start from.
pub const CONFIG_FILE_ENV: &str = "KEYCARD_CONFIG";

fn field_error(field: &str, message: impl std::fmt::Display) -> ConfigError {
    ConfigError::Field {
        field: field.to_owned(),
        env: ENV_NAMES.iter().find(|(f, _)| *f == field).map(|(_, e)| *e),
        message: message.to_string(),
    }
}

/// `err`, found inside `field`: nested field paths are joined
/// (`providers[0].keys[1]` + `alg`), other errors become the message.
fn within(field: &str, err: ConfigError) -> ConfigError {
    match err {
        ConfigError::Field {
            field: inner,
            env,
            message,
        } => ConfigError::Field {
            field: format!("{field}.{inner}"),
            env: env.or_else(|| ENV_NAMES.iter().find(|(f, _)| *f == field).map(|(_, e)| *e)),
            message,
        },
        ConfigError::InvalidSetting(m) => field_error(field, m),
        other => field_error(field, other),
    }
}

fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parse an algorithm name (RFC 9864's `Ed25519` reads as `EdDSA`).
pub fn parse_algorithm(name: &str) -> Result<Algorithm, ConfigError> {
    let name = if name == "Ed25519" { "EdDSA" } else { name };
    match name.parse::<Algorithm>() {
        Ok(a) => Ok(a),
        Err(_) => Err(ConfigError::InvalidSetting(format!(
            "unknown algorithm {name:?}"
        ))),
    }
}
