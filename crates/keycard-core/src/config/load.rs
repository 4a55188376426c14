//! Reading a configuration: TOML files and `KEYCARD_*` variables.

use crate::ConfigError;

use super::*;

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
            toml::from_str(text).map_err(|e: toml::de::Error| {
                // The message names the key; the position says where. The
                // offending line itself is not repeated: it may hold a secret.
                let (key, at) = match e.span() {
                    Some(span) => {
                        let start = span.start.min(text.len());
                        let before = &text[..start];
                        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
                        let line_no = before.matches('\n').count() + 1;
                        let column = before[line_start..].chars().count() + 1;
                        // The key of the line (the text before `=`) names the
                        // field; what follows `=` is never shown.
                        let line = &text[line_start..];
                        let key = line
                            .split('\n')
                            .next()
                            .and_then(|l| l.split_once('='))
                            .map(|(k, _)| k.trim())
                            .filter(|k| !k.is_empty() && !k.contains(['"', '\'']))
                            .map(|k| format!("{k}: "));
                        (key, format!(" (line {line_no}, column {column})"))
                    }
                    None => (None, String::new()),
                };
                ConfigError::InvalidSetting(format!(
                    "{}{}{at}",
                    key.unwrap_or_default(),
                    e.message().trim_end(),
                ))
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

    pub(crate) fn apply_vars(
        &mut self,
        get: &impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
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
            "providers[0].insecure_any_issuer",
        ];
        if let Some(set) = provider_vars.iter().find(|f| var(f).is_some()) {
            if self.providers.len() > 1 {
                // Which of several providers would an environment variable
                // change? Refuse rather than rebind one silently.
                return Err(field_error(
                    set,
                    "the configuration file has several providers: set provider fields in the file",
                ));
            }
            if self.providers.is_empty() {
                self.providers.push(ProviderConfig::default());
            }
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
            if let Some(v) = var("providers[0].insecure_any_issuer") {
                p.insecure_any_issuer = Some(flag("providers[0].insecure_any_issuer", &v)?);
            }
        }
        if let Some(v) = var("audiences") {
            self.audiences = nonempty_list("audiences", &v)?;
        }
        if let Some(v) = var("algorithms") {
            self.algorithms = Some(nonempty_list("algorithms", &v)?);
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
            self.role_claims = Some(nonempty_list("role_claims", &v)?);
        }
        if let Some(v) = var("scope_claims") {
            self.scope_claims = Some(nonempty_list("scope_claims", &v)?);
        }
        if let Some(v) = var("require_subject") {
            self.require_subject = Some(flag("require_subject", &v)?);
        }
        if let Some(v) = var("sources") {
            self.sources = Some(nonempty_list("sources", &v)?);
        }
        if let Some(v) = var("cookie_name") {
            self.cookie_name = Some(v);
        }
        if let Some(v) = var("allowed_origins") {
            self.allowed_origins = nonempty_list("allowed_origins", &v)?;
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
        if let Some(v) = var("dpop") {
            self.dpop = Some(v);
        }
        if let Some(v) = var("dpop_nonces") {
            self.dpop_nonces = Some(flag("dpop_nonces", &v)?);
        }
        if let Some(v) = var("resource") {
            self.resource = Some(v);
        }
        if let Some(v) = var("scopes_supported") {
            self.scopes_supported = Some(nonempty_list("scopes_supported", &v)?);
        }
        if let Some(v) = var("realm") {
            self.realm = Some(v);
        }
        Ok(())
    }
}

/// A comma-separated list that was set must name something.
fn nonempty_list(field: &str, value: &str) -> Result<Vec<String>, ConfigError> {
    let items = list(value);
    if items.is_empty() {
        return Err(field_error(field, "set but empty"));
    }
    Ok(items)
}
