//! OAuth 2.0 Protected Resource Metadata (RFC 9728): the document a
//! protected resource publishes at `/.well-known/oauth-protected-resource`,
//! and the `resource_metadata` parameter of its challenges (§5.1), so that a
//! client that got a 401 finds the authorization server on its own. The
//! Model Context Protocol's authorization spec requires both.
//!
//! ```
//! use keycard_core::{Key, Verifier};
//!
//! let verifier = Verifier::builder()
//!     .key(Key::hs256(b"an-example-secret-of-32-bytes-or-more")?)
//!     .issuer("https://auth.example.com")
//!     // RFC 8707: tokens must be issued for this resource.
//!     .audience("https://api.example.com/mcp")
//!     .protected_resource("https://api.example.com/mcp")?
//!     .scopes_supported(["mcp:read", "mcp:write"])
//!     .build()?;
//!
//! let meta = verifier.resource_metadata().expect("a protected resource");
//! assert_eq!(meta.path(), "/.well-known/oauth-protected-resource/mcp");
//! assert_eq!(
//!     meta.url(),
//!     "https://api.example.com/.well-known/oauth-protected-resource/mcp"
//! );
//! let doc: serde_json::Value = serde_json::from_str(&meta.to_json())?;
//! assert_eq!(doc["resource"], "https://api.example.com/mcp");
//! assert_eq!(doc["authorization_servers"][0], "https://auth.example.com");
//!
//! // Every challenge now points at the document.
//! let err = verifier.verify_now("not-a-token");
//! # let _ = err;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use serde::Serialize;

use crate::ConfigError;

/// The path prefix RFC 9728 §3 registers.
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// A protected resource's metadata document (RFC 9728 §2), built from the
/// verifier's own configuration by [`crate::Verifier::resource_metadata`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ResourceMetadata {
    /// The resource identifier: an `https` URL without a fragment (§2).
    pub resource: String,
    /// The issuers the verifier trusts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub authorization_servers: Vec<String>,
    /// The scopes this resource understands.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// How Bearer tokens may be sent: `header` (RFC 6750 §2.1) when the
    /// `Authorization: Bearer` source is on and DPoP is not required; else
    /// empty (`[]`, RFC 9728 §2: no Bearer method). keycard never reads
    /// tokens from the body or the query string, and a cookie or a custom
    /// header is no RFC 6750 method: a cookie-only deployment publishes
    /// `[]`, which is true for the clients that read this document.
    pub bearer_methods_supported: Vec<String>,
    /// The DPoP proof algorithms accepted (RFC 9728 §2, RFC 9449), when
    /// the verifier accepts the DPoP scheme.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dpop_signing_alg_values_supported: Vec<String>,
    /// Whether every access token must be DPoP-bound (`true` with
    /// `DpopPolicy::Required`), published whenever DPoP is configured, so
    /// that a client never reads the RFC's default (`false`) by omission.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dpop_bound_access_tokens_required: Option<bool>,
    /// The JWS algorithms the verifier accepts, when restricted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resource_signing_alg_values_supported: Vec<String>,
    /// A human-readable name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// A page for developers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_documentation: Option<String>,
    #[serde(skip)]
    url: String,
    #[serde(skip)]
    path: String,
}

/// Where a resource's metadata lives (RFC 9728 §3.1): the well-known
/// segment goes between the host and the resource's path.
pub(crate) fn metadata_location(resource: &str) -> Result<(String, String), ConfigError> {
    let bad = |why: &str| {
        ConfigError::InvalidSetting(format!(
            "protected resource {:?}: {why}",
            crate::config::redact_url(resource)
        ))
    };
    let (scheme, rest) = resource
        .split_once("://")
        .ok_or_else(|| bad("not an absolute URL"))?;
    if !matches!(scheme, "https" | "http") {
        return Err(bad(
            "the scheme must be https (or http for local development)",
        ));
    }
    if resource.contains('#') {
        return Err(bad("a resource identifier has no fragment (RFC 9728 §2)"));
    }
    if resource.contains('?') {
        return Err(bad("a query in the resource identifier is not supported"));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') || authority.chars().any(char::is_whitespace)
    {
        return Err(bad("no valid host"));
    }
    let path = path.trim_end_matches('/');
    let well_known = format!("{WELL_KNOWN}{path}");
    Ok((format!("{scheme}://{authority}{well_known}"), well_known))
}

impl ResourceMetadata {
    pub(crate) fn new(resource: String) -> Result<Self, ConfigError> {
        let (url, path) = metadata_location(&resource)?;
        Ok(Self {
            resource,
            authorization_servers: Vec::new(),
            scopes_supported: Vec::new(),
            bearer_methods_supported: vec!["header".into()],
            dpop_signing_alg_values_supported: Vec::new(),
            dpop_bound_access_tokens_required: None,
            resource_signing_alg_values_supported: Vec::new(),
            resource_name: None,
            resource_documentation: None,
            url,
            path,
        })
    }

    /// The document's URL, as the challenges name it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The path to serve it at on this service.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The JSON document.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// `Cache-Control` for the document: it changes only with configuration.
    pub fn cache_control(&self) -> &'static str {
        "public, max-age=3600"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_well_known_segment_goes_between_host_and_path() {
        for (resource, url) in [
            (
                "https://api.example.com",
                "https://api.example.com/.well-known/oauth-protected-resource",
            ),
            (
                "https://api.example.com/",
                "https://api.example.com/.well-known/oauth-protected-resource",
            ),
            (
                "https://api.example.com/mcp",
                "https://api.example.com/.well-known/oauth-protected-resource/mcp",
            ),
            (
                "http://127.0.0.1:8080/tenant/a",
                "http://127.0.0.1:8080/.well-known/oauth-protected-resource/tenant/a",
            ),
        ] {
            assert_eq!(metadata_location(resource).unwrap().0, url, "{resource}");
        }
        for bad in [
            "api.example.com",
            "ftp://api.example.com",
            "https://api.example.com/#x",
            "https://api.example.com/?q=1",
            "https://user@api.example.com/",
            "https:///mcp",
        ] {
            assert!(metadata_location(bad).is_err(), "{bad}");
        }
    }
}
