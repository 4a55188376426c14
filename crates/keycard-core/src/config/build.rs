//! Turning a configuration into a verifier, naming the field of every error.

use crate::{Algorithm, ConfigError, Key, KeyProvider, KeySet, TokenSource, VerifierBuilder};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::*;

impl VerifierConfig {
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
        for aud in &self.audiences {
            if aud.trim().is_empty() {
                return Err(field_error("audiences", "an empty audience"));
            }
            b = b.audience(aud.clone());
        }
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
                    // Not a URL: it may be anything pasted here, a secret
                    // too, so only a short plain word is repeated.
                    format!(
                        "{} is not an origin (scheme://host[:port])",
                        if origin.contains("://") {
                            format!("{:?}", redact_url(origin))
                        } else {
                            echo(origin)
                        }
                    ),
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
        if let Some(n) = self.cache_size.filter(|n| *n > 0) {
            #[cfg(feature = "cache")]
            {
                b = b.cache_verified_tokens(n);
            }
            #[cfg(not(feature = "cache"))]
            return Err(field_error(
                "cache_size",
                format!("a cache of {n} tokens needs keycard's `cache` feature"),
            ));
        }
        if let Some(resource) = &self.resource {
            b = b
                .protected_resource(resource.clone())
                .map_err(|e| within("resource", e))?;
        }
        if let Some(scopes) = &self.scopes_supported {
            b = b.scopes_supported(scopes.iter().cloned());
        }
        let policy = match self.dpop.as_deref().map(str::trim) {
            None | Some("bearer") => None,
            Some("allowed") => Some(crate::dpop::DpopPolicy::Allowed),
            Some("required") => Some(crate::dpop::DpopPolicy::Required),
            Some(other) => {
                return Err(field_error(
                    "dpop",
                    format!("{}: expected bearer, allowed or required", echo(other)),
                ))
            }
        };
        let nonce_secret_field = self.dpop_nonce_secret_field()?;
        match policy {
            Some(policy) => {
                let mut cfg = crate::dpop::DpopConfig::new(policy);
                if let Some(origin) = self
                    .resource
                    .as_deref()
                    .and_then(|r| crate::metadata::metadata_location(r).ok())
                    .and_then(|(url, path)| url.strip_suffix(path.as_str()).map(str::to_owned))
                {
                    cfg = cfg.public_origin(origin);
                }
                if self.dpop_nonces == Some(true) {
                    cfg = cfg.require_nonces();
                }
                if nonce_secret_field.is_some() {
                    cfg = self.apply_dpop_nonce_secret(cfg)?;
                }
                b = b.dpop(cfg);
            }
            None if nonce_secret_field.is_some() => {
                return Err(self.dpop_nonce_secret_error("needs dpop = allowed or required"));
            }
            None if self.dpop_nonces == Some(true) => {
                return Err(field_error(
                    "dpop_nonces",
                    "needs dpop = allowed or required",
                ));
            }
            None => {}
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

    /// Which of `dpop_nonce_secret_env` and `dpop_nonce_secret_file` is set
    /// (at most one may be).
    fn dpop_nonce_secret_field(&self) -> Result<Option<&'static str>, ConfigError> {
        match (&self.dpop_nonce_secret_env, &self.dpop_nonce_secret_file) {
            // Only a file (or code) sets both: a variable clears the other.
            (Some(_), Some(_)) => Err(ConfigError::Field {
                field: "dpop_nonce_secret_env".into(),
                env: None,
                message: "give either dpop_nonce_secret_env or dpop_nonce_secret_file, not both"
                    .into(),
            }),
            (Some(_), None) => Ok(Some("dpop_nonce_secret_env")),
            (None, Some(_)) => Ok(Some("dpop_nonce_secret_file")),
            (None, None) => Ok(None),
        }
    }

    /// An error about the DPoP nonce secret, naming its field and, when it
    /// comes from `KEYCARD_DPOP_NONCE_SECRET` or
    /// `KEYCARD_DPOP_NONCE_SECRET_FILE`, that variable.
    fn dpop_nonce_secret_error(&self, message: impl fmt::Display) -> ConfigError {
        match (&self.dpop_nonce_secret_env, &self.dpop_nonce_secret_file) {
            (Some(var), _) => ConfigError::Field {
                field: "dpop_nonce_secret_env".into(),
                // Compares the variable's name, not the secret.
                env: var
                    .as_str()
                    .eq(DPOP_NONCE_SECRET_ENV)
                    .then_some(DPOP_NONCE_SECRET_ENV),
                message: message.to_string(),
            },
            _ => field_error("dpop_nonce_secret_file", message),
        }
    }

    /// Read the DPoP nonce secret (from the variable `dpop_nonce_secret_env`
    /// names, or the file `dpop_nonce_secret_file`) into `cfg`. No error
    /// shows any of it.
    fn apply_dpop_nonce_secret(
        &self,
        cfg: crate::dpop::DpopConfig,
    ) -> Result<crate::dpop::DpopConfig, ConfigError> {
        let (secret, named) = match (&self.dpop_nonce_secret_env, &self.dpop_nonce_secret_file) {
            (Some(var), _) => {
                let secret = std::env::var_os(var).ok_or_else(|| {
                    self.dpop_nonce_secret_error(format!("the variable {var} is not set"))
                })?;
                (secret.into_encoded_bytes(), format!("the variable {var}"))
            }
            (None, Some(path)) => {
                let mut secret = std::fs::read(path).map_err(|e| {
                    self.dpop_nonce_secret_error(format!("cannot read {}: {e}", path.display()))
                })?;
                if secret.ends_with(b"\n") {
                    secret.pop();
                    if secret.ends_with(b"\r") {
                        secret.pop();
                    }
                }
                (secret, format!("the file {}", path.display()))
            }
            (None, None) => return Ok(cfg),
        };
        cfg.nonce_secret(&secret).map_err(|e| match e {
            ConfigError::InvalidSetting(m) => self.dpop_nonce_secret_error(format!("{named}: {m}")),
            other => self.dpop_nonce_secret_error(format!("{named}: {other}")),
        })
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

    pub(crate) fn apply_claims(
        &self,
        mut b: VerifierBuilder,
    ) -> Result<VerifierBuilder, ConfigError> {
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
            // Its message quotes the name: only as `echo` would.
            (_, ConfigError::InvalidSetting(m)) => field_error(
                "profile",
                m.replace(&format!("{profile:?}"), &echo(profile)),
            ),
            (_, e) => within("profile", e),
        })?;
        b = b.profile(p);
        if profile != "keycloak" {
            if let Some(client) = &self.client_id {
                b = b.client_ids([client.clone()]);
            }
        }
        if let Some(roles) = self.role_claims.as_ref() {
            if roles.is_empty() {
                return Err(field_error("role_claims", "empty list"));
            }
            // Auth0 adds custom claims to access tokens only when they are
            // namespaced (a URL): any other top-level name never arrives.
            if profile == "auth0" {
                for r in roles {
                    let path = crate::ClaimPath::parse(r.trim());
                    let top = path.segments().first().map_or("", String::as_str);
                    if !top.contains("://") {
                        tracing::warn!(
                            role_claim = %echo(r),
                            "KEYCARD_ROLE_CLAIM under the auth0 profile names a claim that is not namespaced (https://...): Auth0 does not put such claims in access tokens, so no role will ever be found there"
                        );
                    }
                }
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

    pub(crate) fn apply_sources(&self, b: VerifierBuilder) -> Result<VerifierBuilder, ConfigError> {
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
                format!("{} is not a cookie name", echo(&cookie)),
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
                            format!("{}: expected bearer, cookie or header:<name>", echo(other)),
                        ))
                    }
                },
            });
        }
        Ok(b.sources(sources))
    }

    pub(crate) fn apply_providers(
        &self,
        mut b: VerifierBuilder,
        algorithms: Option<&[Algorithm]>,
    ) -> Result<VerifierBuilder, ConfigError> {
        let several = self.providers.len() > 1;
        let mut multi = crate::MultiIssuer::new();
        for (i, p) in self.providers.iter().enumerate() {
            let at = |f: &str| format!("providers[{i}].{f}");
            let own_audiences = match &p.audiences {
                Some(a) if a.is_empty() => return Err(field_error(&at("audiences"), "empty list")),
                other => other.clone(),
            };
            // Keys first, so that a wrong URL is named before a missing issuer.
            let keys = provider_keys(p, i, algorithms)?;
            let any_issuer = p.insecure_any_issuer == Some(true);
            let issuer = match (&p.issuer, any_issuer) {
                (Some(_), true) => {
                    return Err(field_error(
                        &at("insecure_any_issuer"),
                        "contradicts the issuer that is set",
                    ))
                }
                (Some(iss), false) => Some(iss.clone()),
                (None, true) if several => {
                    return Err(field_error(
                        &at("issuer"),
                        "required when there are several providers",
                    ))
                }
                (None, true) => None,
                (None, false) => {
                    return Err(field_error(
                        &at("issuer"),
                        "required: tokens are checked to come from this issuer (insecure_any_issuer = true, or KEYCARD_INSECURE_ANY_ISSUER=1, accepts any)",
                    ))
                }
            };
            if several {
                let iss = issuer.unwrap_or_default();
                if multi.issuers().any(|known| known == iss) {
                    return Err(field_error(
                        &at("issuer"),
                        format!("{:?} appears twice", redact_url(&iss)),
                    ));
                }
                multi = multi.issuer(iss.clone(), keys);
                b = b.issuer_with_audiences(
                    iss,
                    own_audiences.unwrap_or_else(|| self.audiences.clone()),
                );
            } else {
                b = b.key_provider(keys);
                match (issuer, own_audiences) {
                    (Some(iss), Some(auds)) => b = b.issuer_with_audiences(iss, auds),
                    (Some(iss), None) => b = b.issuer(iss),
                    (None, Some(auds)) => {
                        for aud in auds {
                            b = b.audience(aud);
                        }
                    }
                    (None, None) => {}
                }
            }
        }
        if several {
            b = b.key_provider(Arc::new(multi));
        }
        Ok(b)
    }
}

pub(crate) fn provider_keys(
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
pub(crate) fn remote_keys(
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
        (None, Some(iss)) => {
            // Discovery starts from the issuer: a value that is no URL
            // would build and then fail every fetch, forever.
            crate::jwks::check_url(iss, p.insecure_allow_http_loopback == Some(true)).map_err(
                |e| match e {
                    crate::jwks::JwksError::Config(c) => within(&at("issuer"), c),
                    other => field_error(&at("issuer"), other),
                },
            )?;
            (
                crate::jwks::RemoteJwks::from_issuer(iss.clone()),
                at("issuer"),
            )
        }
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
pub(crate) fn remote_keys(
    _p: &ProviderConfig,
    i: usize,
    _algorithms: Option<&[Algorithm]>,
) -> Result<Arc<dyn KeyProvider>, ConfigError> {
    Err(field_error(
        &format!("providers[{i}].jwks_url"),
        "remote keys need keycard's `jwks` feature; or give fixed keys",
    ))
}

pub(crate) fn key_from_config(k: &KeyConfig) -> Result<Key, ConfigError> {
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
        Key::hmac(alg, secret.as_bytes())
            .map_err(|e| field_error("secret_env", format!("the variable {var}: {e}")))?
    } else if let Some(path) = &k.secret_file {
        let secret = std::fs::read(path).map_err(|e| {
            field_error(
                "secret_file",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        let secret = secret.strip_suffix(b"\n").unwrap_or(&secret);
        let secret = secret.strip_suffix(b"\r").unwrap_or(secret);
        Key::hmac(alg, secret)
            .map_err(|e| field_error("secret_file", format!("the file {}: {e}", path.display())))?
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
