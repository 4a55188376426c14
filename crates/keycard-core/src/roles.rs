//! Roles and scopes: read from configurable claim paths, matched exactly.

use std::sync::Arc;

use crate::error::{AuthError, AuthErrorKind};
use crate::verify::Verified;

/// A path to a claim: dotted (`realm_access.roles`), a JSON Pointer
/// (RFC 6901, starting with `/`: `/https:~1~1example.com~1roles`), or one
/// literal top-level key ([`ClaimPath::key`], e.g. Auth0's namespaced
/// `https://example.com/roles`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPath(pub(crate) Vec<String>);

impl ClaimPath {
    /// A JSON Pointer when it starts with `/`; one literal top-level key
    /// when it holds `://` (a namespaced claim such as Auth0's
    /// `https://example.com/roles`, which no dotted path could name); else
    /// a dotted path. The same text means the same claim under every
    /// provider profile.
    pub fn parse(path: &str) -> Self {
        if !path.starts_with('/') && path.contains("://") {
            return Self::key(path);
        }
        if let Some(pointer) = path.strip_prefix('/') {
            Self(
                pointer
                    .split('/')
                    .map(|seg| seg.replace("~1", "/").replace("~0", "~"))
                    .collect(),
            )
        } else {
            Self(path.split('.').map(str::to_owned).collect())
        }
    }

    /// A single top-level claim named exactly `key` (dots and slashes
    /// included).
    pub fn key(key: &str) -> Self {
        Self(vec![key.to_owned()])
    }

    /// The path's segments.
    pub fn segments(&self) -> &[String] {
        &self.0
    }

    /// The value at this path in a claims object.
    pub fn lookup<'v>(
        &self,
        claims: &'v serde_json::Map<String, serde_json::Value>,
    ) -> Option<&'v serde_json::Value> {
        let (first, rest) = self.0.split_first()?;
        let mut v = claims.get(first)?;
        for seg in rest {
            v = v.as_object()?.get(seg)?;
        }
        Some(v)
    }
}

/// The strings a claim holds: an array's string elements, or a string
/// split on whitespace.
pub(crate) fn strings_of(v: &serde_json::Value) -> Vec<String> {
    match v {
        serde_json::Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        serde_json::Value::Array(a) => a
            .iter()
            .filter_map(|e| e.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// Where the roles live in the claims: one or several [`ClaimPath`]s,
/// whose roles are joined. Default `roles`. An array yields its string
/// elements; a string is split on whitespace; anything else yields none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleClaim {
    paths: Vec<Vec<String>>,
}

impl RoleClaim {
    /// One claim path, dotted (`realm_access.roles`) or a JSON Pointer
    /// (`/https:~1~1example.com~1roles`).
    pub fn new(path: &str) -> Self {
        Self::from_paths([ClaimPath::parse(path)])
    }

    /// Several claim paths; the roles of all of them count (at most 64).
    pub fn from_paths(paths: impl IntoIterator<Item = ClaimPath>) -> Self {
        Self {
            paths: paths.into_iter().take(64).map(|p| p.0).collect(),
        }
    }

    /// The paths' segments.
    pub(crate) fn paths(&self) -> &[Vec<String>] {
        &self.paths
    }

    /// Read the roles from a JSON payload in one pass.
    #[cfg(test)]
    pub(crate) fn extract_from(&self, payload: &[u8]) -> Vec<String> {
        crate::parse::roles_at(payload, &self.paths)
    }
}

impl Default for RoleClaim {
    fn default() -> Self {
        Self::new("roles")
    }
}

/// What a requirement looks at in a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    Roles,
    Scopes,
}

/// A role (or scope) requirement: the caller must hold any one, or all, of
/// some roles or scopes. One type serves every adapter's `RequireRoles` and
/// `RequireScopes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleRequirement {
    roles: Arc<[String]>,
    all: bool,
    held: Held,
}

impl RoleRequirement {
    /// Satisfied when the caller holds at least one of `roles`.
    pub fn any_of<I, S>(roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::make(roles, false, Held::Roles)
    }

    /// Satisfied when the caller holds every one of `roles`.
    pub fn all_of<I, S>(roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::make(roles, true, Held::Roles)
    }

    /// Satisfied when the token holds at least one of `scopes` (RFC 9068
    /// `scope`, or `scp`; see [`crate::VerifierBuilder::scope_claims`]).
    pub fn scopes_any_of<I, S>(scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::make(scopes, false, Held::Scopes)
    }

    /// Satisfied when the token holds every one of `scopes`.
    pub fn scopes_all_of<I, S>(scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::make(scopes, true, Held::Scopes)
    }

    fn make<I, S>(items: I, all: bool, held: Held) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            roles: items.into_iter().map(Into::into).collect(),
            all,
            held,
        }
    }

    /// Whether a set of held roles (or scopes) satisfies this requirement
    /// (exact, case-sensitive matching).
    pub fn is_satisfied_by<S: AsRef<str>>(&self, held: &[S]) -> bool {
        let has = |r: &String| held.iter().any(|h| h.as_ref() == r);
        if self.all {
            self.roles.iter().all(has)
        } else {
            self.roles.iter().any(has)
        }
    }

    /// Check a verified token: `Ok` or a 403 `insufficient_scope` error whose
    /// challenge names the required roles or scopes.
    pub fn check(&self, token: &Verified) -> Result<(), AuthError> {
        let ok = match self.held {
            Held::Roles => self.is_satisfied_by(token.roles()),
            Held::Scopes => self.is_satisfied_by(token.scopes()),
        };
        if ok {
            Ok(())
        } else {
            let kind = match self.held {
                Held::Roles => AuthErrorKind::InsufficientRole,
                Held::Scopes => AuthErrorKind::InsufficientScope,
            };
            Err(AuthError::new(kind)
                .with_realm(token.realm().clone())
                .with_resource_metadata(token.resource_metadata_url())
                .with_scope(self.roles.join(" ")))
        }
    }

    /// The roles (or scopes) named by this requirement.
    pub fn roles(&self) -> &[String] {
        &self.roles
    }

    /// Whether this requirement is about scopes rather than roles.
    pub fn is_about_scopes(&self) -> bool {
        self.held == Held::Scopes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn claim_shapes() {
        let c = obj(json!({
            "roles": ["user", "admin", 3],
            "role": "admin",
            "scope": "read  write",
            "realm_access": {"roles": ["ops"]},
        }));
        assert_eq!(RoleClaim::new("roles").extract_from(&c), ["user", "admin"]);
        assert_eq!(RoleClaim::new("role").extract_from(&c), ["admin"]);
        assert_eq!(RoleClaim::new("scope").extract_from(&c), ["read", "write"]);
        assert_eq!(
            RoleClaim::new("realm_access.roles").extract_from(&c),
            ["ops"]
        );
        assert!(RoleClaim::new("nope.x").extract_from(&c).is_empty());
        // Auth0-style namespaced claims: a JSON Pointer or a literal key.
        let a = obj(json!({"https://example.com/roles": ["editor"], "a~b": {"c/d": "x y"}}));
        assert_eq!(
            RoleClaim::new("/https:~1~1example.com~1roles").extract_from(&a),
            ["editor"]
        );
        assert_eq!(
            RoleClaim::from_paths([ClaimPath::key("https://example.com/roles")]).extract_from(&a),
            ["editor"]
        );
        assert_eq!(RoleClaim::new("/a~0b/c~1d").extract_from(&a), ["x", "y"]);
    }

    #[test]
    fn any_and_all() {
        let held = ["user", "admin"];
        assert!(RoleRequirement::any_of(["admin", "x"]).is_satisfied_by(&held));
        assert!(!RoleRequirement::all_of(["admin", "x"]).is_satisfied_by(&held));
        assert!(RoleRequirement::all_of(["admin", "user"]).is_satisfied_by(&held));
        assert!(
            !RoleRequirement::any_of(["Admin"]).is_satisfied_by(&held),
            "exact match"
        );
    }
}
