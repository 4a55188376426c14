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
//!
//! Secrets never appear in the configuration itself, nor in what it shows:
//! HMAC keys and the DPoP nonce secret come from an environment variable
//! or a file, `Debug` hides the credentials of URLs
//! (`redis://<redacted>@host:6379`), and errors name a field (in a TOML
//! file, with its line and column) and what is wrong, never a value that
//! could be a secret.

use std::borrow::Cow;
use std::fmt;
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
/// [module documentation](self) for the format. `Debug` shows URLs without
/// their user name and password.
#[derive(Clone, Default, PartialEq, Deserialize, Serialize)]
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
    /// The DPoP nonce secret shared by every node of a cluster, from this
    /// environment variable (at least 32 bytes; implies `dpop_nonces`).
    /// The environment variable `KEYCARD_DPOP_NONCE_SECRET` holds the
    /// secret itself and sets this to its own name: like `secret_env`, the
    /// secret is read from the process environment when the verifier is
    /// built, and never kept in the configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_nonce_secret_env: Option<String>,
    /// The DPoP nonce secret, from this file (trailing newline removed; env
    /// `KEYCARD_DPOP_NONCE_SECRET_FILE`). At most one of this and
    /// `dpop_nonce_secret_env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_nonce_secret_file: Option<PathBuf>,
    /// The realm in `WWW-Authenticate` challenges (env `KEYCARD_REALM`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
}

/// One source of keys: fixed keys, a JWKS URL, or OIDC discovery. `Debug`
/// shows URLs without their user name and password.
#[derive(Clone, Default, PartialEq, Deserialize, Serialize)]
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

/// The environment variable each top-level field is read from. Every one is
/// in the configuration table of the README (a test checks both ways).
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
    (
        "providers[0].insecure_any_issuer",
        "KEYCARD_INSECURE_ANY_ISSUER",
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
    // Holds the secret itself; sets `dpop_nonce_secret_env` to its name.
    ("dpop_nonce_secret_env", "KEYCARD_DPOP_NONCE_SECRET"),
    ("dpop_nonce_secret_file", "KEYCARD_DPOP_NONCE_SECRET_FILE"),
    ("scopes_supported", "KEYCARD_SCOPES_SUPPORTED"),
];

/// The environment variable that names a TOML file to start from.
pub const CONFIG_FILE_ENV: &str = "KEYCARD_CONFIG";

/// The environment variable that holds the DPoP nonce secret itself.
const DPOP_NONCE_SECRET_ENV: &str = "KEYCARD_DPOP_NONCE_SECRET";

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
            "unknown algorithm {}",
            echo(name)
        ))),
    }
}

/// A wrong value as an error may repeat it: quoted when it is a short word
/// (`"maybe"`, `"query"`), otherwise only its length. A secret set in the
/// wrong variable (`KEYCARD_DPOP` for `KEYCARD_DPOP_NONCE_SECRET`) is
/// never shown: every secret keycard takes has at least 32 bytes.
fn echo(value: &str) -> String {
    if value.len() <= 24
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b" -_.:/<>".contains(&b))
    {
        format!("{value:?}")
    } else {
        format!("<{} bytes, not shown>", value.len())
    }
}

impl fmt::Debug for VerifierConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured, so that a new field cannot be forgotten here.
        let Self {
            providers,
            audiences,
            algorithms,
            leeway_secs,
            max_lifetime_secs,
            max_token_bytes,
            profile,
            client_id,
            role_claims,
            scope_claims,
            require_subject,
            sources,
            cookie_name,
            allowed_origins,
            trust_forwarded_origin,
            insecure_plain_http_origin,
            cache_size,
            revocation_url,
            resource,
            scopes_supported,
            dpop,
            dpop_nonces,
            dpop_nonce_secret_env,
            dpop_nonce_secret_file,
            realm,
        } = self;
        f.debug_struct("VerifierConfig")
            .field("providers", providers)
            .field("audiences", audiences)
            .field("algorithms", algorithms)
            .field("leeway_secs", leeway_secs)
            .field("max_lifetime_secs", max_lifetime_secs)
            .field("max_token_bytes", max_token_bytes)
            .field("profile", profile)
            .field("client_id", client_id)
            .field("role_claims", role_claims)
            .field("scope_claims", scope_claims)
            .field("require_subject", require_subject)
            .field("sources", sources)
            .field("cookie_name", cookie_name)
            .field(
                "allowed_origins",
                &allowed_origins
                    .iter()
                    .map(|o| redact_url(o))
                    .collect::<Vec<_>>(),
            )
            .field("trust_forwarded_origin", trust_forwarded_origin)
            .field("insecure_plain_http_origin", insecure_plain_http_origin)
            .field("cache_size", cache_size)
            .field("revocation_url", &revocation_url.as_deref().map(redact_url))
            .field("resource", &resource.as_deref().map(redact_url))
            .field("scopes_supported", scopes_supported)
            .field("dpop", dpop)
            .field("dpop_nonces", dpop_nonces)
            .field("dpop_nonce_secret_env", dpop_nonce_secret_env)
            .field("dpop_nonce_secret_file", dpop_nonce_secret_file)
            .field("realm", realm)
            .finish()
    }
}

impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            issuer,
            jwks_url,
            audiences,
            keys,
            jwks_cooldown_secs,
            jwks_max_staleness_secs,
            insecure_any_issuer,
            insecure_allow_http_loopback,
        } = self;
        f.debug_struct("ProviderConfig")
            .field("issuer", &issuer.as_deref().map(redact_url))
            .field("jwks_url", &jwks_url.as_deref().map(redact_url))
            .field("audiences", audiences)
            .field("keys", keys)
            .field("jwks_cooldown_secs", jwks_cooldown_secs)
            .field("jwks_max_staleness_secs", jwks_max_staleness_secs)
            .field("insecure_any_issuer", insecure_any_issuer)
            .field("insecure_allow_http_loopback", insecure_allow_http_loopback)
            .finish()
    }
}

/// `url` as it may be shown in `Debug` output and errors: its user info
/// replaced (`redis://user:pw@host:6379/0` becomes
/// `redis://<redacted>@host:6379/0`) and the values of credential query
/// parameters (`?password=...`) hidden; the rest stays readable. As with
/// keycard-redis's `redact_url`, everything up to the last `@` after the
/// scheme counts as user info: a password with a raw `/`, `?` or `#` is
/// not valid in a URL but is what people write.
pub(crate) fn redact_url(url: &str) -> Cow<'_, str> {
    let (head, rest, had_user) = match url.split_once("://") {
        Some((scheme, rest)) => match rest.rfind('@') {
            Some(at) => (format!("{scheme}://<redacted>@"), &rest[at + 1..], true),
            None => (format!("{scheme}://"), rest, false),
        },
        None => (String::new(), url, false),
    };
    let (before_fragment, fragment) = match rest.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (rest, None),
    };
    let query = before_fragment.split_once('?');
    let secret_query = query.is_some_and(|(_, q)| q.split('&').any(is_credential_parameter));
    if !had_user && !secret_query {
        return Cow::Borrowed(url);
    }
    let mut shown = head;
    match query {
        Some((path, q)) => {
            shown.push_str(path);
            shown.push('?');
            let params: Vec<Cow<'_, str>> = q
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if is_credential_parameter(p) => format!("{k}=<redacted>").into(),
                    _ => p.into(),
                })
                .collect();
            shown.push_str(&params.join("&"));
        }
        None => shown.push_str(before_fragment),
    }
    if let Some(f) = fragment {
        shown.push('#');
        shown.push_str(f);
    }
    Cow::Owned(shown)
}

/// Whether a query parameter (`name=value`) carries a credential.
fn is_credential_parameter(param: &str) -> bool {
    let name = param.split_once('=').map_or(param, |(k, _)| k);
    matches!(
        name.to_ascii_lowercase().as_str(),
        "user"
            | "username"
            | "pass"
            | "password"
            | "secret"
            | "token"
            | "access_token"
            | "client_secret"
            | "api_key"
            | "apikey"
    ) && param.contains('=')
}

/// The field names a serde struct accepts, as its `Deserialize` declares
/// them: for naming fields in errors without repeating what was found.
#[cfg(any(test, feature = "toml"))]
pub(crate) fn struct_fields<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    use serde::de::{Error as _, Visitor};

    struct Fields<'a>(&'a mut &'static [&'static str]);

    impl<'de> serde::Deserializer<'de> for Fields<'_> {
        type Error = serde::de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(Self::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(Self::Error::custom("fields recorded"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Fields(&mut fields));
    fields
}

#[cfg(test)]
mod tests;
