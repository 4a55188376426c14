//! Identity-provider profiles: where each provider puts roles, scopes and
//! the client id, and how its access tokens are told apart from its ID
//! tokens when they are not typed `at+jwt` (RFC 9068). One builder call:
//! `Verifier::builder().profile(Profile::keycloak("my-client"))`.
//!
//! A profile relaxes the token-type check only through
//! [`TokenMarker`]: a token whose header says `typ: JWT` (or nothing) is
//! accepted as an access token only when its payload carries the
//! provider's access-token mark (Keycloak `"typ": "Bearer"`, Cognito
//! `"token_use": "access"`, ...), so the provider's ID tokens stay refused.
//! `at+jwt` tokens are always accepted. It never changes the signature,
//! issuer, audience or lifetime checks.
//!
//! How far each profile is tested is part of its docs
//! ([`Profile::tested`]): run against the real product, or checked against
//! token shapes taken from the provider's documentation.

use crate::roles::ClaimPath;

/// How a profile tells the provider's access tokens from its other tokens
/// when their header `typ` is `JWT` or absent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenMarker {
    /// The claim holds exactly this string (Keycloak `typ: Bearer`,
    /// Cognito `token_use: access`).
    ClaimEquals(ClaimPath, String),
    /// At least one of these claims is present (Entra `scp` or `roles`,
    /// Okta `scp`, Auth0 `scope`).
    AnyClaimPresent(Vec<ClaimPath>),
    /// Every token the keys sign is a credential for this API (Google ID
    /// tokens used as service-to-service bearer tokens): accept it.
    AnyToken,
}

impl TokenMarker {
    /// Whether the claims carry the mark.
    pub fn holds(&self, claims: &serde_json::Map<String, serde_json::Value>) -> bool {
        match self {
            Self::ClaimEquals(path, want) => path
                .lookup(claims)
                .and_then(serde_json::Value::as_str)
                .is_some_and(|v| v == want),
            Self::AnyClaimPresent(paths) => paths.iter().any(|p| p.lookup(claims).is_some()),
            Self::AnyToken => true,
        }
    }
}

/// How far a profile has been tested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Tested {
    /// Against tokens shaped as the provider's documentation shows them,
    /// signed by a test key (no run against the real product).
    DocumentedTokenShape,
    /// Against the real, running product.
    RealProduct,
}

/// A provider's conventions, applied by [`crate::VerifierBuilder::profile`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Profile {
    pub(crate) name: &'static str,
    pub(crate) role_claims: Vec<ClaimPath>,
    pub(crate) scope_claims: Vec<ClaimPath>,
    pub(crate) client_id_claim: ClaimPath,
    pub(crate) marker: Option<TokenMarker>,
    tested: Tested,
}

impl Profile {
    /// RFC 9068 access tokens, nothing provider-specific: roles in
    /// `roles`, scopes in `scope`/`scp`, client in `client_id`, `typ:
    /// at+jwt` required. What keycard's own issuer and certified OpenID
    /// providers (e.g. node `oidc-provider`, run in this repository's
    /// tests) produce.
    pub fn generic() -> Self {
        Self {
            name: "generic",
            role_claims: vec![ClaimPath::parse("roles")],
            scope_claims: vec![ClaimPath::parse("scope"), ClaimPath::parse("scp")],
            client_id_claim: ClaimPath::parse("client_id"),
            marker: None,
            tested: Tested::RealProduct,
        }
    }

    /// Keycloak: realm roles (`realm_access.roles`) and the roles of
    /// `client` (`resource_access.<client>.roles`); scopes in `scope`; the
    /// client in `azp`. Access tokens are `typ: JWT` in the header and
    /// `"typ": "Bearer"` in the payload (ID tokens say `"ID"`). Issuer:
    /// `https://<host>/realms/<realm>`.
    pub fn keycloak(client: &str) -> Self {
        Self {
            name: "keycloak",
            role_claims: vec![
                ClaimPath::parse("realm_access.roles"),
                ClaimPath(vec![
                    "resource_access".into(),
                    client.into(),
                    "roles".into(),
                ]),
            ],
            scope_claims: vec![ClaimPath::parse("scope")],
            client_id_claim: ClaimPath::parse("azp"),
            marker: Some(TokenMarker::ClaimEquals(
                ClaimPath::parse("typ"),
                "Bearer".into(),
            )),
            tested: Tested::DocumentedTokenShape,
        }
    }

    /// Auth0: roles in a namespaced custom claim (an Action adds it, e.g.
    /// `https://example.com/roles`: pass that key); scopes in `scope` and
    /// RBAC `permissions`; the client in `azp`. Access tokens carry
    /// `scope` (ID tokens do not); tenants on the RFC 9068 dialect send
    /// `typ: at+jwt`. Issuer `https://<tenant>.auth0.com/` (trailing
    /// slash); audience: your API identifier.
    pub fn auth0(roles_claim_key: &str) -> Self {
        Self {
            name: "auth0",
            // As `ClaimPath::parse` reads it, as under every profile: a
            // namespaced URL is one key, `/...` a JSON Pointer.
            role_claims: vec![ClaimPath::parse(roles_claim_key)],
            scope_claims: vec![ClaimPath::parse("scope"), ClaimPath::parse("permissions")],
            client_id_claim: ClaimPath::parse("azp"),
            marker: Some(TokenMarker::AnyClaimPresent(vec![ClaimPath::parse(
                "scope",
            )])),
            tested: Tested::DocumentedTokenShape,
        }
    }

    /// Microsoft Entra ID (v1 and v2 tokens): app roles in `roles`,
    /// delegated scopes in `scp` (space-separated); the client in `azp`
    /// (v2) or `appid` (v1). Header `typ: JWT`; access tokens carry `scp`
    /// or `roles`. Issuers: `https://login.microsoftonline.com/<tenant>/v2.0`
    /// (v2) and `https://sts.windows.net/<tenant>/` (v1): configure the one
    /// your API's `accessTokenAcceptedVersion` produces, or both. Audience:
    /// the API's client id (v2) or its App ID URI (v1).
    pub fn entra() -> Self {
        Self {
            name: "entra",
            role_claims: vec![ClaimPath::parse("roles")],
            scope_claims: vec![ClaimPath::parse("scp")],
            client_id_claim: ClaimPath::parse("azp"),
            marker: Some(TokenMarker::AnyClaimPresent(vec![
                ClaimPath::parse("scp"),
                ClaimPath::parse("roles"),
            ])),
            tested: Tested::DocumentedTokenShape,
        }
    }

    /// Amazon Cognito user pools: groups in `cognito:groups`, scopes in
    /// `scope`. Access tokens have no `typ` and no `aud`; they carry
    /// `"token_use": "access"` and the app client in `client_id`: configure
    /// no audience and check the client with
    /// [`crate::VerifierBuilder::client_ids`] (ID tokens, which do carry an
    /// `aud`, are then refused). Issuer
    /// `https://cognito-idp.<region>.amazonaws.com/<user pool id>`.
    pub fn cognito() -> Self {
        Self {
            name: "cognito",
            role_claims: vec![ClaimPath::key("cognito:groups")],
            scope_claims: vec![ClaimPath::parse("scope")],
            client_id_claim: ClaimPath::parse("client_id"),
            marker: Some(TokenMarker::ClaimEquals(
                ClaimPath::parse("token_use"),
                "access".into(),
            )),
            tested: Tested::DocumentedTokenShape,
        }
    }

    /// Okta (custom authorization servers): groups in `groups` (when a
    /// groups claim is configured), scopes in `scp` (an array); the client
    /// in `cid`. No header `typ`; access tokens carry `scp` (ID tokens do
    /// not). Issuer `https://<org>.okta.com/oauth2/<server id>` (e.g.
    /// `default`); audience e.g. `api://default`.
    pub fn okta() -> Self {
        Self {
            name: "okta",
            role_claims: vec![ClaimPath::parse("groups")],
            scope_claims: vec![ClaimPath::parse("scp")],
            client_id_claim: ClaimPath::parse("cid"),
            marker: Some(TokenMarker::AnyClaimPresent(vec![ClaimPath::parse("scp")])),
            tested: Tested::DocumentedTokenShape,
        }
    }

    /// Google: Google's access tokens are opaque; what services verify are
    /// Google-signed ID tokens used as bearer credentials (Cloud Run, IAP,
    /// service-to-service), `typ: JWT`, with the audience you asked for.
    /// No roles or scopes; the client in `azp`. Issuer
    /// `https://accounts.google.com` (older tokens: `accounts.google.com`,
    /// configure both); JWKS `https://www.googleapis.com/oauth2/v3/certs`.
    pub fn google() -> Self {
        Self {
            name: "google",
            role_claims: vec![ClaimPath::parse("roles")],
            scope_claims: vec![],
            client_id_claim: ClaimPath::parse("azp"),
            marker: Some(TokenMarker::AnyToken),
            tested: Tested::DocumentedTokenShape,
        }
    }

    /// A profile by name (`keycloak`, `auth0`, `entra`, `cognito`, `okta`,
    /// `google`, `generic`), for configuration from the environment.
    /// `keycloak` takes the client id, `auth0` the roles claim key.
    pub fn by_name(name: &str, parameter: Option<&str>) -> Result<Self, crate::ConfigError> {
        let need = |what: &str| {
            parameter.ok_or_else(|| {
                crate::ConfigError::InvalidSetting(format!("the {name} profile needs {what}"))
            })
        };
        Ok(match name {
            "generic" => Self::generic(),
            "keycloak" => Self::keycloak(need("the client id")?),
            "auth0" => Self::auth0(need("the roles claim (e.g. https://example.com/roles)")?),
            "entra" => Self::entra(),
            "cognito" => Self::cognito(),
            "okta" => Self::okta(),
            "google" => Self::google(),
            other => {
                return Err(crate::ConfigError::InvalidSetting(format!(
                    "unknown provider profile {other:?} (keycloak, auth0, entra, cognito, okta, google, generic)"
                )))
            }
        })
    }

    /// The profile's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// How far the profile has been tested.
    pub fn tested(&self) -> Tested {
        self.tested
    }

    /// The access-token mark accepted in place of `typ: at+jwt`.
    pub fn marker(&self) -> Option<&TokenMarker> {
        self.marker.as_ref()
    }
}
