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
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Algorithm, ConfigError, Key, KeyProvider, KeySet, TokenSource, VerifierBuilder};

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
    /// The realm in `WWW-Authenticate` challenges (env `KEYCARD_REALM`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
}

/// One source of keys: fixed keys, a JWKS URL, or OIDC discovery.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ProviderConfig {
    /// The `iss` its tokens carry, required and checked (env
    /// `KEYCARD_ISSUER`). Needed with several providers and for discovery.
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

impl VerifierConfig {
    /// An empty configuration: every default, no provider yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Read `KEYCARD_*` environment variables (see each field), on top of
    /// the TOML file named by `KEYCARD_CONFIG` when it is set. Provider
    /// variables (`KEYCARD_ISSUER`, `KEYCARD_JWKS_URL`, ...) set the first
    /// provider. Empty variables count as unset.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// [`from_env`](Self::from_env) with variables from `get` (for tests and
    /// other sources of settings).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut config = match get(CONFIG_FILE_ENV) {
            Some(path) => Self::from_file(&path)?,
            None => Self::default(),
        };
        config.apply_vars(&get)?;
        Ok(config)
    }

    /// Load a TOML file.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Field {
            field: "config file".into(),
            env: Some(CONFIG_FILE_ENV),
            message: format!("cannot read {}: {e}", path.display()),
        })?;
        Self::from_toml_str(&text).map_err(|e| match e {
            ConfigError::InvalidSetting(m) => ConfigError::Field {
                field: "config file".into(),
                env: Some(CONFIG_FILE_ENV),
                message: format!("{}: {m}", path.display()),
            },
            other => other,
        })
    }

    /// Parse TOML. Needs the `toml` feature; any other serde format works
    /// through `Deserialize` directly.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        #[cfg(feature = "toml")]
        {
            toml::from_str(text).map_err(|e| {
                // toml names the key (`unknown field ...`, `invalid type ...
                // for key ...`) and shows the line.
                ConfigError::InvalidSetting(e.to_string().trim_end().to_owned())
            })
        }
        #[cfg(not(feature = "toml"))]
        {
            let _ = text;
            Err(ConfigError::InvalidSetting(
                "reading TOML needs keycard's `toml` feature".into(),
            ))
        }
    }

    fn apply_vars(&mut self, get: &impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn number<T: std::str::FromStr>(field: &str, v: &str) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            v.trim().parse().map_err(|e| field_error(field, e))
        }
        fn flag(field: &str, v: &str) -> Result<bool, ConfigError> {
            match v.trim() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                other => Err(field_error(
                    field,
                    format!("expected 1 or 0, got {other:?}"),
                )),
            }
        }
        let var = |field: &str| {
            ENV_NAMES
                .iter()
                .find(|(f, _)| *f == field)
                .and_then(|(_, env)| get(env))
        };
        // The first provider.
        let provider_vars = [
            "providers[0].issuer",
            "providers[0].jwks_url",
            "providers[0].jwks_cooldown_secs",
            "providers[0].jwks_max_staleness_secs",
            "providers[0].insecure_allow_http_loopback",
        ];
        if provider_vars.iter().any(|f| var(f).is_some()) && self.providers.is_empty() {
            self.providers.push(ProviderConfig::default());
        }
        if let Some(p) = self.providers.first_mut() {
            if let Some(v) = var("providers[0].issuer") {
                p.issuer = Some(v);
            }
            if let Some(v) = var("providers[0].jwks_url") {
                p.jwks_url = Some(v);
            }
            if let Some(v) = var("providers[0].jwks_cooldown_secs") {
                p.jwks_cooldown_secs = Some(number("providers[0].jwks_cooldown_secs", &v)?);
            }
            if let Some(v) = var("providers[0].jwks_max_staleness_secs") {
                p.jwks_max_staleness_secs =
                    Some(number("providers[0].jwks_max_staleness_secs", &v)?);
            }
            if let Some(v) = var("providers[0].insecure_allow_http_loopback") {
                p.insecure_allow_http_loopback =
                    Some(flag("providers[0].insecure_allow_http_loopback", &v)?);
            }
        }
        if let Some(v) = var("audiences") {
            self.audiences = list(&v);
        }
        if let Some(v) = var("algorithms") {
            self.algorithms = Some(list(&v));
        }
        if let Some(v) = var("leeway_secs") {
            self.leeway_secs = Some(number("leeway_secs", &v)?);
        }
        if let Some(v) = var("max_lifetime_secs") {
            self.max_lifetime_secs = Some(number("max_lifetime_secs", &v)?);
        }
        if let Some(v) = var("max_token_bytes") {
            self.max_token_bytes = Some(number("max_token_bytes", &v)?);
        }
        if let Some(v) = var("profile") {
            self.profile = Some(v);
        }
        if let Some(v) = var("client_id") {
            self.client_id = Some(v);
        }
        if let Some(v) = var("role_claims") {
            self.role_claims = Some(list(&v));
        }
        if let Some(v) = var("scope_claims") {
            self.scope_claims = Some(list(&v));
        }
        if let Some(v) = var("require_subject") {
            self.require_subject = Some(flag("require_subject", &v)?);
        }
        if let Some(v) = var("sources") {
            self.sources = Some(list(&v));
        }
        if let Some(v) = var("cookie_name") {
            self.cookie_name = Some(v);
        }
        if let Some(v) = var("allowed_origins") {
            self.allowed_origins = list(&v);
        }
        if let Some(v) = var("trust_forwarded_origin") {
            self.trust_forwarded_origin = Some(flag("trust_forwarded_origin", &v)?);
        }
        if let Some(v) = var("insecure_plain_http_origin") {
            self.insecure_plain_http_origin = Some(flag("insecure_plain_http_origin", &v)?);
        }
        if let Some(v) = var("cache_size") {
            self.cache_size = Some(number("cache_size", &v)?);
        }
        if let Some(v) = var("revocation_url") {
            self.revocation_url = Some(v);
        }
        if let Some(v) = var("realm") {
            self.realm = Some(v);
        }
        Ok(())
    }

    /// The allowed algorithms, parsed.
    pub fn parsed_algorithms(&self) -> Result<Option<Vec<Algorithm>>, ConfigError> {
        self.algorithms
            .as_ref()
            .map(|algs| {
                if algs.is_empty() {
                    return Err(field_error("algorithms", "empty list"));
                }
                algs.iter()
                    .map(|a| parse_algorithm(a.trim()).map_err(|e| within("algorithms", e)))
                    .collect()
            })
            .transpose()
    }

    /// A builder with every setting and the providers' keys (none when no
    /// provider is configured: add them with
    /// [`VerifierBuilder::key_provider`]). Add a revocation store built
    /// from [`revocation_url`](Self::revocation_url) before building.
    /// Remote key sets start fetching in the background when called inside
    /// a Tokio runtime.
    pub fn builder(&self) -> Result<VerifierBuilder, ConfigError> {
        let b = self.apply(crate::Verifier::builder())?;
        self.apply_providers(b, self.parsed_algorithms()?.as_deref())
    }

    /// Apply every setting except the providers to `b`: for verifiers whose
    /// keys the application owns, e.g. through
    /// [`crate::SessionsBuilder::configure_verifiers`]. Deterministic: a
    /// configuration that applied once applies again.
    pub fn apply(&self, b: VerifierBuilder) -> Result<VerifierBuilder, ConfigError> {
        let mut b = b;
        let algorithms = self.parsed_algorithms()?;
        if let Some(algs) = &algorithms {
            b = b.algorithms(algs.iter().copied());
        }
        if let Some(secs) = self.leeway_secs {
            if secs > crate::MAX_LEEWAY.as_secs() {
                return Err(field_error(
                    "leeway_secs",
                    format!("at most {}", crate::MAX_LEEWAY.as_secs()),
                ));
            }
            b = b.leeway(Duration::from_secs(secs));
        }
        if let Some(secs) = self.max_lifetime_secs {
            if secs == 0 {
                return Err(field_error("max_lifetime_secs", "must be positive"));
            }
            b = b.max_lifetime(Duration::from_secs(secs));
        }
        if let Some(n) = self.max_token_bytes {
            if !(64..=64 * 1024).contains(&n) {
                return Err(field_error(
                    "max_token_bytes",
                    "must be between 64 and 65536",
                ));
            }
            b = b.max_token_bytes(n);
        }
        b = self.apply_claims(b)?;
        if self.require_subject == Some(true) {
            b = b.require_subject();
        }
        b = self.apply_sources(b)?;
        for origin in &self.allowed_origins {
            if !(origin.starts_with("https://") || origin.starts_with("http://")) {
                return Err(field_error(
                    "allowed_origins",
                    format!("{origin:?} is not an origin (scheme://host[:port])"),
                ));
            }
            b = b.allowed_origin(origin.trim_end_matches('/'));
        }
        if self.trust_forwarded_origin == Some(true) {
            b = b.trust_forwarded_origin();
        }
        if self.insecure_plain_http_origin == Some(true) {
            b = b.insecure_plain_http_origin();
        }
        if let Some(n) = self.cache_size {
            if n > 0 {
                b = b.cache_verified_tokens(n);
            }
        }
        if let Some(realm) = &self.realm {
            if realm.is_empty()
                || realm.contains(['"', '\\'])
                || realm.chars().any(char::is_control)
            {
                return Err(field_error("realm", "must be non-empty plain text"));
            }
            b = b.realm(realm.clone());
        }
        Ok(b)
    }

    /// Build the verifier (the configuration must name at least one provider).
    pub fn build(&self) -> Result<crate::Verifier, ConfigError> {
        if self.providers.is_empty() {
            return Err(field_error(
                "providers",
                "no key provider configured (set KEYCARD_JWKS_URL or KEYCARD_ISSUER, or [[providers]] in KEYCARD_CONFIG)",
            ));
        }
        self.builder()?.build()
    }

    fn apply_claims(&self, mut b: VerifierBuilder) -> Result<VerifierBuilder, ConfigError> {
        let profile = self.profile.as_deref().unwrap_or("generic");
        let parameter = match profile {
            "auth0" => self
                .role_claims
                .as_ref()
                .and_then(|r| r.first())
                .map(String::as_str),
            _ => self.client_id.as_deref(),
        };
        let p = crate::Profile::by_name(profile, parameter).map_err(|e| match (profile, e) {
            ("auth0", ConfigError::InvalidSetting(m)) => field_error("role_claims", m),
            ("keycloak", ConfigError::InvalidSetting(m)) => field_error("client_id", m),
            (_, e) => within("profile", e),
        })?;
        b = b.profile(p);
        if profile != "keycloak" {
            if let Some(client) = &self.client_id {
                b = b.client_ids([client.clone()]);
            }
        }
        if let Some(roles) = self.role_claims.as_ref().filter(|_| profile != "auth0") {
            if roles.is_empty() {
                return Err(field_error("role_claims", "empty list"));
            }
            b = b.role_claims(roles.iter().map(|p| crate::ClaimPath::parse(p.trim())));
        }
        if let Some(scopes) = &self.scope_claims {
            if scopes.is_empty() {
                return Err(field_error("scope_claims", "empty list"));
            }
            b = b.scope_claims(scopes.iter().map(|s| s.trim()));
        }
        Ok(b)
    }

    fn apply_sources(&self, b: VerifierBuilder) -> Result<VerifierBuilder, ConfigError> {
        let cookie = self
            .cookie_name
            .clone()
            .unwrap_or_else(|| crate::DEFAULT_ACCESS_COOKIE.to_owned());
        if cookie.is_empty()
            || !cookie
                .bytes()
                .all(|c| c.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&c))
        {
            return Err(field_error(
                "cookie_name",
                format!("{cookie:?} is not a cookie name"),
            ));
        }
        let names = match &self.sources {
            Some(s) => s.clone(),
            None if self.cookie_name.is_some() => vec!["bearer".into(), "cookie".into()],
            None => return Ok(b),
        };
        if names.is_empty() {
            return Err(field_error("sources", "empty list"));
        }
        let mut sources = Vec::new();
        for name in &names {
            let name = name.trim();
            sources.push(match name {
                "bearer" => TokenSource::BearerHeader,
                "cookie" => TokenSource::Cookie(cookie.clone()),
                other => match other.strip_prefix("header:") {
                    Some(h) if http::HeaderName::from_bytes(h.as_bytes()).is_ok() => {
                        TokenSource::Header(h.to_ascii_lowercase())
                    }
                    _ => {
                        return Err(field_error(
                            "sources",
                            format!("{other:?}: expected bearer, cookie or header:<name>"),
                        ))
                    }
                },
            });
        }
        Ok(b.sources(sources))
    }

    fn apply_providers(
        &self,
        mut b: VerifierBuilder,
        algorithms: Option<&[Algorithm]>,
    ) -> Result<VerifierBuilder, ConfigError> {
        let several = self.providers.len() > 1;
        let mut multi = crate::MultiIssuer::new();
        for (i, p) in self.providers.iter().enumerate() {
            let at = |f: &str| format!("providers[{i}].{f}");
            let audiences = match &p.audiences {
                Some(a) if a.is_empty() => return Err(field_error(&at("audiences"), "empty list")),
                Some(a) => a.clone(),
                None => self.audiences.clone(),
            };
            let keys = provider_keys(p, i, algorithms)?;
            if several {
                let Some(iss) = &p.issuer else {
                    return Err(field_error(
                        &at("issuer"),
                        "required when there are several providers",
                    ));
                };
                if multi.issuers().any(|known| known == iss) {
                    return Err(field_error(&at("issuer"), format!("{iss:?} appears twice")));
                }
                multi = multi.issuer(iss.clone(), keys);
                b = b.issuer_with_audiences(iss.clone(), audiences);
            } else {
                b = b.key_provider(keys);
                if let Some(iss) = &p.issuer {
                    b = b.issuer(iss.clone());
                }
                for aud in audiences {
                    b = b.audience(aud);
                }
            }
        }
        if several {
            b = b.key_provider(Arc::new(multi));
        }
        Ok(b)
    }
}

fn provider_keys(
    p: &ProviderConfig,
    i: usize,
    algorithms: Option<&[Algorithm]>,
) -> Result<Arc<dyn KeyProvider>, ConfigError> {
    let at = |f: &str| format!("providers[{i}].{f}");
    if !p.keys.is_empty() {
        if p.jwks_url.is_some() {
            return Err(field_error(
                &at("keys"),
                "use either keys or jwks_url, not both",
            ));
        }
        let mut set = KeySet::new();
        for (k, key) in p.keys.iter().enumerate() {
            let field = format!("providers[{i}].keys[{k}]");
            let key = key_from_config(key).map_err(|e| within(&field, e))?;
            set = set.with(key).map_err(|e| within(&field, e))?;
        }
        return Ok(Arc::new(set));
    }
    remote_keys(p, i, algorithms)
}

#[cfg(feature = "jwks")]
fn remote_keys(
    p: &ProviderConfig,
    i: usize,
    algorithms: Option<&[Algorithm]>,
) -> Result<Arc<dyn KeyProvider>, ConfigError> {
    let at = |f: &str| format!("providers[{i}].{f}");
    let (mut jwks, field) = match (&p.jwks_url, &p.issuer) {
        (Some(url), _) => (
            crate::jwks::RemoteJwks::builder(url.clone()),
            at("jwks_url"),
        ),
        (None, Some(iss)) => (
            crate::jwks::RemoteJwks::from_issuer(iss.clone()),
            at("issuer"),
        ),
        (None, None) => {
            return Err(field_error(
                &at("jwks_url"),
                "a provider needs keys, a jwks_url, or an issuer for OIDC discovery",
            ))
        }
    };
    if p.insecure_allow_http_loopback == Some(true) {
        jwks = jwks.insecure_allow_http_loopback();
    }
    if let Some(algs) = algorithms {
        jwks = jwks.algorithms(algs.iter().copied());
    }
    if let Some(secs) = p.jwks_cooldown_secs {
        jwks = jwks.cooldown(Duration::from_secs(secs));
    }
    if let Some(secs) = p.jwks_max_staleness_secs {
        jwks = jwks.max_staleness(Duration::from_secs(secs));
    }
    let jwks = jwks.build_lazy().map_err(|e| match e {
        crate::jwks::JwksError::Config(c) => within(&field, c),
        other => field_error(&field, other),
    })?;
    Ok(Arc::new(jwks))
}

#[cfg(not(feature = "jwks"))]
fn remote_keys(
    _p: &ProviderConfig,
    i: usize,
    _algorithms: Option<&[Algorithm]>,
) -> Result<Arc<dyn KeyProvider>, ConfigError> {
    Err(field_error(
        &format!("providers[{i}].jwks_url"),
        "remote keys need keycard's `jwks` feature; or give fixed keys",
    ))
}

fn key_from_config(k: &KeyConfig) -> Result<Key, ConfigError> {
    let alg = parse_algorithm(k.alg.trim()).map_err(|e| within("alg", e))?;
    let given = [
        k.secret_env.is_some(),
        k.secret_file.is_some(),
        k.pem_file.is_some(),
        k.pem.is_some(),
    ]
    .iter()
    .filter(|g| **g)
    .count();
    if given != 1 {
        return Err(field_error(
            "secret_env",
            "give exactly one of secret_env, secret_file, pem_file, pem",
        ));
    }
    let key = if let Some(var) = &k.secret_env {
        let secret = std::env::var(var)
            .map_err(|_| field_error("secret_env", format!("the variable {var} is not set")))?;
        Key::hmac(alg, secret.as_bytes())?
    } else if let Some(path) = &k.secret_file {
        let secret = std::fs::read(path).map_err(|e| {
            field_error(
                "secret_file",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        let secret = secret.strip_suffix(b"\n").unwrap_or(&secret);
        let secret = secret.strip_suffix(b"\r").unwrap_or(secret);
        Key::hmac(alg, secret)?
    } else if let Some(path) = &k.pem_file {
        let pem = std::fs::read(path)
            .map_err(|e| field_error("pem_file", format!("cannot read {}: {e}", path.display())))?;
        Key::from_pem(alg, pem)?
    } else {
        Key::from_pem(alg, k.pem.as_deref().unwrap_or_default())?
    };
    Ok(match &k.kid {
        Some(kid) => key.with_kid(kid),
        None => key,
    })
}
