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
    /// other sources of settings). `KEYCARD_DPOP_NONCE_SECRET` holds a
    /// secret: like a key's `secret_env`, it is read from the process
    /// environment when the verifier is built, and `get` only says whether
    /// it is set.
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
                let mut message = describe_toml_error(text, e.message(), e.span());
                // Say why an inline secret is refused, not only that the
                // field is unknown.
                if [
                    "`secret`",
                    "`client_secret`",
                    "`password`",
                    "`nonce_secret`",
                ]
                .iter()
                .any(|f| e.message().starts_with(&format!("unknown field {f}")))
                {
                    message.push_str(
                        ": secrets are never written in the configuration (it is read, logged \
                         and committed); name where the secret is instead: `secret_env` (an \
                         environment variable) or `secret_file` (a file)",
                    );
                }
                ConfigError::InvalidSetting(message)
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
                    format!("expected 1 or 0, got {}", echo(other)),
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
        // The secret itself is read when the verifier is built, from the
        // process environment, like a key's `secret_env`: it is never kept
        // in the configuration (which is `Debug`, `Serialize`, `Clone`).
        let secret_env = var("dpop_nonce_secret_env").map(|_| ());
        let secret_file = var("dpop_nonce_secret_file");
        match (secret_env, secret_file) {
            (Some(()), Some(_)) => return Err(field_error(
                "dpop_nonce_secret_env",
                "set either KEYCARD_DPOP_NONCE_SECRET or KEYCARD_DPOP_NONCE_SECRET_FILE, not both",
            )),
            (Some(()), None) => {
                self.dpop_nonce_secret_env = Some(DPOP_NONCE_SECRET_ENV.to_owned());
                self.dpop_nonce_secret_file = None;
            }
            (None, Some(path)) => {
                self.dpop_nonce_secret_file = Some(PathBuf::from(path));
                self.dpop_nonce_secret_env = None;
            }
            (None, None) => {}
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

/// A TOML error as the field, what is wrong and where: never the value
/// found there, nor the line it is on, which may hold a secret (serde's
/// `invalid type: string "..."` repeats the value; toml's `Display` quotes
/// the line).
#[cfg(feature = "toml")]
fn describe_toml_error(text: &str, message: &str, span: Option<std::ops::Range<usize>>) -> String {
    let what = describe_serde_message(message.trim_end());
    let Some(span) = span else {
        return what;
    };
    let start = floor_char_boundary(text, span.start.min(text.len()));
    let before = &text[..start];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line_no = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    let line = text[line_start..].split('\n').next().unwrap_or_default();
    match toml_key(line, start - line_start) {
        Some(key) => format!("{key}: {what} (line {line_no}, column {column})"),
        None => format!("{what} (line {line_no}, column {column})"),
    }
}

#[cfg(feature = "toml")]
fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The field a TOML error at byte `at` of `line` is about: the key of the
/// nearest `key =` before it (`alg` in `keys = [{ alg = 7 }]`), else the
/// line's first key, else the table a header names. Only a field keycard
/// knows is named, so nothing else from the line can come out.
#[cfg(feature = "toml")]
fn toml_key(line: &str, at: usize) -> Option<&'static str> {
    fn known(candidate: &str) -> Option<&'static str> {
        let name = candidate.trim().rsplit('.').next()?.trim();
        [
            struct_fields::<VerifierConfig>(),
            struct_fields::<ProviderConfig>(),
            struct_fields::<KeyConfig>(),
        ]
        .into_iter()
        .flatten()
        .find(|f| **f == name)
        .copied()
    }
    let prefix = &line[..floor_char_boundary(line, at.min(line.len()))];
    let nearest = prefix.rfind('=').and_then(|eq| {
        let key = prefix[..eq].trim_end();
        let from = key
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .map_or(0, |i| i + 1);
        known(&key[from..])
    });
    nearest
        .or_else(|| line.split_once('=').and_then(|(k, _)| known(k)))
        .or_else(|| {
            let header = line.trim().trim_start_matches('[');
            known(header.split(']').next()?)
        })
}

/// serde's message without the value it quotes: `invalid type: string
/// "hunter2", expected u64` becomes `invalid type: string, expected u64`.
/// Field and variant names from keycard's own types stay.
#[cfg(feature = "toml")]
fn describe_serde_message(message: &str) -> String {
    for kind in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(kind) {
            // The expected part comes from keycard's types; the unexpected
            // one is `string "..."`, `integer `5``, `map`, ...
            let (found, expected) = rest
                .rsplit_once(", expected ")
                .map_or((rest, None), |(f, e)| (f, Some(e)));
            let found = found
                .split(['"', '`', '\''])
                .next()
                .unwrap_or_default()
                .trim();
            let found = if !found.is_empty()
                && found.len() <= 20
                && found.bytes().all(|b| b.is_ascii_lowercase() || b == b' ')
            {
                found
            } else {
                "a value"
            };
            return match expected {
                Some(e) => format!("{kind}{found}, expected {}", scrub(e)),
                None => format!("{kind}{found}"),
            };
        }
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        let expected = rest.split_once(", expected ").map(|(_, e)| e);
        return match expected {
            Some(e) => format!("unknown variant, expected {}", scrub(e)),
            None => "unknown variant".into(),
        };
    }
    scrub(message)
}

/// Anything quoted in a message is kept only when it is punctuation
/// (`` `=` ``) or a lower-case identifier such as a field name: a value,
/// or a key that looks like one, becomes `…`.
#[cfg(feature = "toml")]
fn scrub(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(open) = rest.find(['`', '"']) {
        out.push_str(&rest[..open]);
        let quote = &rest[open..=open];
        let after = &rest[open + 1..];
        let (inner, next) = match after.find(quote) {
            Some(close) => (&after[..close], &after[close + 1..]),
            None => (after, ""),
        };
        let safe = inner.chars().count() <= 2
            || (inner.len() <= 40
                && inner
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
        out.push_str(quote);
        out.push_str(if safe { inner } else { "…" });
        out.push_str(quote);
        rest = next;
    }
    out.push_str(rest);
    out
}
