//! [`VerifierBuilder`]: every setting, with the weakening ones named so.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;

use crate::csrf::CsrfPolicy;
use crate::error::{ConfigError, DEFAULT_REALM};
use crate::key::{ensure_crypto, Key, KeyProvider, KeySet};
use crate::revocation::RevocationStore;
use crate::roles::RoleClaim;
use crate::source::{Sources, TokenSource};

use super::*;

/// Builds a [`Verifier`]. Every step that weakens a default says so in its
/// name (`insecure_*`, `allow_*`).
#[must_use]
#[derive(Default)]
pub struct VerifierBuilder {
    pub(crate) keys: KeySet,
    pub(crate) provider: Option<Arc<dyn KeyProvider>>,
    pub(crate) sources: Option<Vec<TokenSource>>,
    pub(crate) allow_multiple_methods: bool,
    pub(crate) issuers: Vec<String>,
    pub(crate) audiences: Vec<String>,
    pub(crate) issuer_audiences: Vec<(String, Vec<String>)>,
    pub(crate) ignore_audience: bool,
    pub(crate) leeway: Option<Duration>,
    pub(crate) max_lifetime: Option<Option<Duration>>,
    pub(crate) max_token_bytes: Option<usize>,
    pub(crate) token_type: Option<Option<TokenType>>,
    pub(crate) require_sub: bool,
    pub(crate) role_claim: Option<RoleClaim>,
    pub(crate) scope_claims: Option<Vec<crate::roles::ClaimPath>>,
    pub(crate) realm: Option<String>,
    pub(crate) resource: Option<crate::metadata::ResourceMetadata>,
    pub(crate) scopes_supported: Vec<String>,
    pub(crate) dpop: Option<crate::dpop::DpopConfig>,
    #[cfg(feature = "introspection")]
    pub(crate) introspection: Option<crate::introspection::Introspector>,
    pub(crate) revocation: Option<Arc<dyn RevocationStore>>,
    pub(crate) fail_open: bool,
    pub(crate) csrf: CsrfPolicy,
    pub(crate) reference_signatures: bool,
    #[cfg(feature = "cache")]
    pub(crate) cache_capacity: Option<u64>,
    pub(crate) clock: Option<Arc<dyn crate::clock::Clock>>,
    pub(crate) algorithms: Option<Vec<Algorithm>>,
    pub(crate) authenticate_preflights: bool,
    pub(crate) typ_marker: Option<crate::profile::TokenMarker>,
    pub(crate) client_ids: Vec<String>,
    pub(crate) client_id_claim: Option<crate::roles::ClaimPath>,
    pub(crate) error: Option<ConfigError>,
}

impl fmt::Debug for VerifierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifierBuilder")
            .field("keys", &self.keys)
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .finish_non_exhaustive()
    }
}

impl VerifierBuilder {
    /// Add a verification key (several keys: rotation by `kid`).
    pub fn key(mut self, key: Key) -> Self {
        match std::mem::take(&mut self.keys).with(key) {
            Ok(keys) => self.keys = keys,
            Err(e) => self.error = Some(e),
        }
        self
    }

    /// Use a whole key set.
    pub fn keys(mut self, keys: KeySet) -> Self {
        self.keys = keys;
        self
    }

    /// Use a dynamic key provider (e.g. a remote JWKS) instead of fixed keys.
    pub fn key_provider(mut self, provider: Arc<dyn KeyProvider>) -> Self {
        self.provider = Some(provider);
        self
    }

    /// Accept tokens whose `iss` equals this value (call again for several).
    /// Once set, `iss` is required.
    pub fn issuer(mut self, iss: impl Into<String>) -> Self {
        self.issuers.push(iss.into());
        self
    }

    /// For tokens from `issuer`, require `aud` to contain one of `audiences`
    /// instead of the verifier-wide [`audience`](Self::audience) list: one
    /// verifier, several identity providers, each with its own audience.
    /// Also trusts `issuer` (as [`issuer`](Self::issuer) does).
    pub fn issuer_with_audiences<I, S>(mut self, issuer: impl Into<String>, audiences: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let issuer = issuer.into();
        self.issuers.push(issuer.clone());
        self.issuer_audiences
            .push((issuer, audiences.into_iter().map(Into::into).collect()));
        self
    }

    /// Accept tokens whose `aud` contains this value (call again for
    /// several). Once set, `aud` is required.
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.audiences.push(aud.into());
        self
    }

    /// Accept tokens that carry an `aud` although this verifier has no
    /// audience configured. Weakens RFC 7519 §4.1.3; prefer [`Self::audience`].
    pub fn insecure_ignore_audience(mut self) -> Self {
        self.ignore_audience = true;
        self
    }

    /// Clock-skew leeway for `exp`, `nbf` and `iat` (default 30 s, at most
    /// 5 minutes).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = Some(leeway);
        self
    }

    /// Maximum accepted `exp - iat` (default 24 h).
    pub fn max_lifetime(mut self, max: Duration) -> Self {
        self.max_lifetime = Some(Some(max));
        self
    }

    /// Accept tokens of any lifetime.
    pub fn insecure_unlimited_lifetime(mut self) -> Self {
        self.max_lifetime = Some(None);
        self
    }

    /// Cap on the token's length in bytes (default 8 KiB, at most 64 KiB).
    pub fn max_token_bytes(mut self, max: usize) -> Self {
        self.max_token_bytes = Some(max);
        self
    }

    /// The token type to accept (default [`TokenType::Access`]).
    pub fn token_type(mut self, t: TokenType) -> Self {
        self.token_type = Some(Some(t));
        self
    }

    /// Accept tokens without (or with any) `typ` header, e.g. from identity
    /// providers that do not type their access tokens. This lets a refresh
    /// token or an ID token stand in for an access token: only use it when
    /// the issuer signs nothing but access tokens with these keys.
    pub fn insecure_accept_any_token_type(mut self) -> Self {
        self.token_type = Some(None);
        self
    }

    /// Require a `sub` claim.
    pub fn require_subject(mut self) -> Self {
        self.require_sub = true;
        self
    }

    /// The claim the roles are read from (default `roles`): a dotted path
    /// (`realm_access.roles`) or a JSON Pointer (`/https:~1~1example.com~1roles`).
    pub fn role_claim(mut self, path: &str) -> Self {
        self.role_claim = Some(RoleClaim::new(path));
        self
    }

    /// Read roles from several claims at once (their roles are joined),
    /// e.g. Keycloak's realm and client roles.
    pub fn role_claims(mut self, paths: impl IntoIterator<Item = crate::roles::ClaimPath>) -> Self {
        self.role_claim = Some(RoleClaim::from_paths(paths));
        self
    }

    /// The claims scopes are read from (default `scope` and `scp`): dotted
    /// paths or JSON Pointers. Replaces the defaults.
    pub fn scope_claims<I, S>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.scope_claims = Some(
            paths
                .into_iter()
                .map(|p| crate::roles::ClaimPath::parse(p.as_ref()))
                .collect(),
        );
        self
    }

    /// This verifier protects the resource `resource` (an `https` URL, e.g.
    /// `https://api.example.com/mcp`): it publishes RFC 9728 metadata
    /// ([`Verifier::resource_metadata`]) and every challenge carries
    /// `resource_metadata="<url>"`. To bind tokens to the resource (RFC
    /// 8707, as the MCP spec requires) also make it an
    /// [`audience`](Self::audience).
    pub fn protected_resource(mut self, resource: impl Into<String>) -> Result<Self, ConfigError> {
        self.resource = Some(crate::metadata::ResourceMetadata::new(resource.into())?);
        Ok(self)
    }

    /// Accept DPoP-bound tokens (RFC 9449) as `config` says: Bearer only,
    /// DPoP only, or either (see [`crate::dpop`]). A token bound with
    /// `cnf.jkt` is refused as a Bearer token whatever this says.
    pub fn dpop(mut self, config: crate::dpop::DpopConfig) -> Self {
        self.dpop = Some(config);
        self
    }

    /// Ask this introspection endpoint (RFC 7662) about tokens that are not
    /// JWTs (opaque tokens), and about JWTs too when the introspector says
    /// so. A verifier may have no keys at all then.
    #[cfg(feature = "introspection")]
    #[cfg_attr(docsrs, doc(cfg(feature = "introspection")))]
    pub fn introspection(mut self, introspector: crate::introspection::Introspector) -> Self {
        self.introspection = Some(introspector);
        self
    }

    /// The scopes this resource understands, for its metadata document.
    pub fn scopes_supported<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes_supported = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// The realm in `WWW-Authenticate` challenges (default `keycard`).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// Token sources, in order (default: Bearer header, then the
    /// `keycard_access` cookie).
    pub fn sources(mut self, sources: impl IntoIterator<Item = TokenSource>) -> Self {
        self.sources = Some(sources.into_iter().collect());
        self
    }

    /// Read the access token from the cookie `name` (and the Bearer header).
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.sources = Some(vec![
            TokenSource::BearerHeader,
            TokenSource::Cookie(name.into()),
        ]);
        self
    }

    /// Accept a request that carries tokens by more than one method; the
    /// first configured source wins. RFC 6750 §2 forbids clients to do this.
    pub fn allow_multiple_token_methods(mut self) -> Self {
        self.allow_multiple_methods = true;
        self
    }

    /// Consult this revocation store for every token. Expiry is then judged
    /// by the store's clock ([`RevocationStore::now`]) unless
    /// [`VerifierBuilder::clock`] sets another: the store keeps and prunes
    /// its entries by that clock.
    pub fn revocation(mut self, store: Arc<dyn RevocationStore>) -> Self {
        self.revocation = Some(store);
        self
    }

    /// When the revocation store cannot answer, accept the token instead of
    /// answering 503. Revoked tokens then work during a store outage.
    pub fn insecure_fail_open(mut self) -> Self {
        self.fail_open = true;
        self
    }

    /// An origin (`scheme://host[:port]`) allowed to send cookie-authenticated
    /// unsafe requests, besides the request's own host (call again for
    /// several). See [`crate::csrf`].
    pub fn allowed_origin(mut self, origin: impl Into<String>) -> Self {
        self.csrf.allowed_origins.push(origin.into());
        self
    }

    /// This service is served over plain `http` (local development): its
    /// own origin, for the CSRF check, is `http://` + `Host` instead of
    /// `https://` + `Host`. Never in production: there, an `http://` page on
    /// the same host (e.g. injected by a network attacker) would count as
    /// the service's own origin.
    pub fn insecure_plain_http_origin(mut self) -> Self {
        self.csrf.plain_http = true;
        self
    }

    /// For the CSRF check, take this service's own origin from
    /// `X-Forwarded-Proto` and `X-Forwarded-Host` when present: for services
    /// behind a gateway that rewrites `Host` and sets those headers (see
    /// [`crate::csrf`] for why this gives a CSRF attacker nothing). Only
    /// where a proxy overwrites them.
    pub fn trust_forwarded_origin(mut self) -> Self {
        self.csrf.trust_forwarded = true;
        self
    }

    /// Authenticate CORS preflights like any request (they then get 401,
    /// since browsers never send credentials on them). By default a
    /// preflight (`OPTIONS` with `Access-Control-Request-Method`) passes as
    /// anonymous, so that a CORS layer inside keycard's layer answers it;
    /// an application whose own `OPTIONS` handlers must not run
    /// unauthenticated turns this on.
    pub fn authenticate_cors_preflights(mut self) -> Self {
        self.authenticate_preflights = true;
        self
    }

    /// Turn off the CSRF check for cookie-authenticated requests. Only safe
    /// when cookies are `SameSite=Strict` and every subdomain is trusted, or
    /// when another layer already defends against CSRF.
    pub fn insecure_disable_csrf_check(mut self) -> Self {
        self.csrf.disabled = true;
        self
    }

    /// Cache up to `capacity` verified tokens, so a repeated token costs a
    /// lookup instead of a signature check (worth it for RS*, PS*, ES* and
    /// EdDSA; HS256 verifies about as fast as it hashes). Every hit still
    /// checks `exp`/`nbf` and revocation, compares the token byte for byte,
    /// and requires the verifying key to still be in the key set; entries
    /// never outlive their token.
    #[cfg(feature = "cache")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
    pub fn cache_verified_tokens(mut self, capacity: u64) -> Self {
        self.cache_capacity = Some(capacity);
        self
    }

    /// Check signatures through `jsonwebtoken::crypto::verify` instead of
    /// the keys prepared once at configuration time. Slower (the key is set
    /// up on every call); used to cross-check the fast path in tests.
    pub fn reference_signature_check(mut self) -> Self {
        self.reference_signatures = true;
        self
    }

    /// Apply an identity provider's conventions in one call: where its
    /// roles, scopes and client id live, and how its access tokens are told
    /// apart from its ID tokens when not typed `at+jwt` (see
    /// [`crate::profile`]). Issuer and audience stay yours to set.
    pub fn profile(mut self, profile: crate::profile::Profile) -> Self {
        self.role_claim = Some(RoleClaim::from_paths(profile.role_claims));
        self.scope_claims = Some(profile.scope_claims);
        self.client_id_claim = Some(profile.client_id_claim);
        if let Some(marker) = profile.marker {
            self = self.accept_untyped_access_tokens_marked_by(marker);
        }
        self
    }

    /// Accept access tokens whose header `typ` is `JWT` or absent, as many
    /// identity providers send them, but only when their payload carries
    /// `marker` (the provider's access-token mark), so that its ID tokens
    /// and other tokens signed by the same keys stay refused. `at+jwt`
    /// tokens are accepted as always. Profiles use this; see
    /// [`crate::profile::TokenMarker`].
    pub fn accept_untyped_access_tokens_marked_by(
        mut self,
        marker: crate::profile::TokenMarker,
    ) -> Self {
        self.typ_marker = Some(marker);
        self
    }

    /// Accept only tokens issued to one of these clients (RFC 9068
    /// `client_id`, or the claim a profile names: `azp`, `cid`, ...). Off by
    /// default.
    pub fn client_ids<I, S>(mut self, ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.client_ids = ids.into_iter().map(Into::into).collect();
        self
    }

    /// Accept only tokens signed with one of these algorithms (Spring and
    /// Nimbus call this the JWS algorithm set), on top of each key's own
    /// algorithm. Default: whatever the keys serve.
    pub fn algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algs.into_iter().collect());
        self
    }

    /// Judge `exp`, `nbf` and `iat` by this clock instead of the system
    /// clock (e.g. a cluster clock; [`crate::Sessions`] sets its store's).
    pub fn clock(mut self, clock: Arc<dyn crate::clock::Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Check the whole configuration and freeze it.
    pub fn build(self) -> Result<Verifier, ConfigError> {
        ensure_crypto()?;
        if let Some(e) = self.error {
            return Err(e);
        }
        let keys: Arc<dyn KeyProvider> = match self.provider {
            Some(p) => {
                if !self.keys.is_empty() {
                    return Err(ConfigError::InvalidSetting(
                        "use either fixed keys or a key provider, not both".into(),
                    ));
                }
                p
            }
            #[cfg(feature = "introspection")]
            None if self.keys.is_empty() && self.introspection.is_some() => {
                Arc::new(crate::key::KeySet::new())
            }
            None if self.keys.is_empty() => return Err(ConfigError::NoKey),
            None => Arc::new(self.keys),
        };
        if self.audiences.is_empty() && self.issuer_audiences.is_empty() && !self.ignore_audience {
            // It can work (tokens without `aud`, such as Cognito access
            // tokens), and it half works for most providers: say so once.
            tracing::info!(
                "keycard verifier built without an audience: tokens that carry `aud` will be refused \
                 (RFC 7519 4.1.3); configure the audience this service accepts \
                 (VerifierBuilder::audience, KEYCARD_AUDIENCE)"
            );
        }
        #[cfg(feature = "cache")]
        let cached = self.cache_capacity.is_some();
        #[cfg(not(feature = "cache"))]
        let cached = false;
        crate::observe::register(cached);
        let leeway = self.leeway.unwrap_or(DEFAULT_LEEWAY);
        if leeway > MAX_LEEWAY {
            return Err(ConfigError::InvalidSetting("leeway above 5 minutes".into()));
        }
        let max_token_bytes = self.max_token_bytes.unwrap_or(DEFAULT_MAX_TOKEN_BYTES);
        if !(64..=64 * 1024).contains(&max_token_bytes) {
            return Err(ConfigError::InvalidSetting(
                "max_token_bytes must be between 64 and 65536".into(),
            ));
        }
        let dpop = match self.dpop.clone() {
            Some(mut cfg) => {
                if let Some(origin) = cfg.public_origin.take() {
                    // An origin (scheme://host[:port]) the operator trusts,
                    // normalized once as the proofs' `htu` will be.
                    let normalized = origin
                        .split_once("://")
                        .filter(|(_, rest)| !rest.contains(['/', '?', '#']))
                        .and_then(|(scheme, authority)| {
                            crate::dpop::normalize_origin(scheme, authority)
                        })
                        .ok_or_else(|| {
                            ConfigError::InvalidSetting(format!(
                                "the DPoP public origin {origin:?} is not scheme://host[:port] \
                                 (http or https, no path)"
                            ))
                        })?;
                    cfg.public_origin = Some(normalized);
                }
                Some(Arc::new(super::DpopState::new(cfg)))
            }
            None => None,
        };
        let dpop_scheme = dpop.as_ref().is_some_and(|d| d.accepts_dpop_scheme());
        if dpop.as_ref().is_some_and(|d| d.cfg.algorithms.is_empty()) {
            return Err(ConfigError::InvalidSetting(
                "DPoP needs at least one asymmetric proof algorithm".into(),
            ));
        }
        let mut sources = match self.sources {
            Some(s) if s.is_empty() => {
                return Err(ConfigError::InvalidSetting("no token source".into()))
            }
            Some(sources) => Sources {
                sources,
                allow_multiple_methods: self.allow_multiple_methods,
                dpop: false,
            },
            None => Sources {
                allow_multiple_methods: self.allow_multiple_methods,
                ..Sources::default()
            },
        };
        sources.dpop = dpop_scheme;
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        let realm: Arc<str> = Arc::from(self.realm.as_deref().unwrap_or(DEFAULT_REALM));
        let metadata = self.resource.map(|mut m| {
            let mut servers: Vec<String> = self.issuers.clone();
            servers.dedup();
            m.authorization_servers = servers;
            m.scopes_supported = self.scopes_supported.clone();
            // What this server enforces: Bearer in the header only when
            // that source is on and DPoP is not required; DPoP's
            // algorithms and whether binding is required.
            let required = dpop
                .as_ref()
                .is_some_and(|d| d.cfg.policy == crate::dpop::DpopPolicy::Required);
            let bearer_header = sources
                .sources
                .iter()
                .any(|s| matches!(s, crate::TokenSource::BearerHeader));
            m.bearer_methods_supported = if bearer_header && !required {
                vec!["header".into()]
            } else {
                Vec::new()
            };
            if let Some(d) = &dpop {
                // `Authorization: DPoP` is read by the Authorization
                // header source: without it, no DPoP token is read either.
                if d.accepts_dpop_scheme() && bearer_header {
                    m.dpop_signing_alg_values_supported = d
                        .cfg
                        .algorithms
                        .iter()
                        .map(|a| crate::key::alg_name(*a).to_owned())
                        .collect();
                }
                m.dpop_bound_access_tokens_required = Some(required);
            }
            if let Some(algs) = &self.algorithms {
                m.resource_signing_alg_values_supported = algs
                    .iter()
                    .map(|a| crate::key::alg_name(*a).to_owned())
                    .collect();
            }
            Arc::new(m)
        });
        let metadata_url: Option<Arc<str>> = metadata.as_ref().map(|m| Arc::from(m.url()));
        // Entries of a shared denylist are kept and pruned by the store's
        // clock: judge expiry by the same one, unless told otherwise.
        let clock = self.clock.or_else(|| {
            self.revocation
                .clone()
                .map(|r| Arc::new(crate::revocation::StoreClock(r)) as Arc<dyn crate::clock::Clock>)
        });
        Ok(Verifier(Arc::new(Settings {
            keys,
            sources,
            issuers: self.issuers,
            audiences: self.audiences,
            issuer_audiences: self.issuer_audiences,
            ignore_audience: self.ignore_audience,
            leeway: secs(leeway),
            max_lifetime: self
                .max_lifetime
                .unwrap_or(Some(DEFAULT_MAX_LIFETIME))
                .map(secs),
            max_token_bytes,
            token_type: self.token_type.unwrap_or(Some(TokenType::Access)),
            require_sub: self.require_sub,
            claims_config: Arc::new(ClaimsConfig {
                role_claim: self.role_claim.unwrap_or_default(),
                scope_claims: self.scope_claims.unwrap_or_else(|| {
                    vec![
                        crate::roles::ClaimPath::parse("scope"),
                        crate::roles::ClaimPath::parse("scp"),
                    ]
                }),
                realm: realm.clone(),
                resource_metadata: metadata_url.clone(),
            }),
            realm,
            dpop,
            #[cfg(feature = "introspection")]
            introspection: self.introspection,
            metadata,
            metadata_url,
            revocation: self.revocation,
            fail_open: self.fail_open,
            csrf: self.csrf,
            reference_signatures: self.reference_signatures,
            #[cfg(feature = "cache")]
            cache: self.cache_capacity.map(crate::cache::TokenCache::new),
            #[cfg(not(feature = "cache"))]
            cache: None,
            clock,
            algorithms: self
                .algorithms
                .map(|a| a.into_iter().map(crate::key::alg_name).collect()),
            authenticate_preflights: self.authenticate_preflights,
            typ_marker: self.typ_marker,
            client_ids: self.client_ids,
            client_id_claim: self
                .client_id_claim
                .unwrap_or_else(|| crate::roles::ClaimPath::parse("client_id")),
        })))
    }
}

impl TryFrom<Key> for Verifier {
    type Error = ConfigError;

    /// A verifier with one key and every default.
    fn try_from(key: Key) -> Result<Self, ConfigError> {
        Verifier::builder().key(key).build()
    }
}
