//! Roles and scopes: read from a configurable claim path, matched exactly.

use std::sync::Arc;

use crate::error::{AuthError, AuthErrorKind};
use crate::verify::Verified;

/// Where the roles live in the claims, as a dotted path: `roles` (array),
/// `role` (string), `scope` (space-separated string), `realm_access.roles`
/// (nested). An array yields its string elements; a string is split on
/// whitespace. Anything else yields no roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleClaim {
    path: Vec<String>,
}

impl RoleClaim {
    /// A claim path such as `roles` or `realm_access.roles`.
    pub fn new(path: &str) -> Self {
        Self {
            path: path.split('.').map(str::to_owned).collect(),
        }
    }

    /// The path segments.
    pub(crate) fn path(&self) -> &[String] {
        &self.path
    }

    /// Read the roles from a JSON payload in one pass.
    #[cfg(test)]
    pub(crate) fn extract_from(&self, payload: &[u8]) -> Vec<String> {
        crate::parse::roles_at(payload, &self.path)
    }
}

impl Default for RoleClaim {
    fn default() -> Self {
        Self::new("roles")
    }
}

/// A role requirement: the caller must hold any one, or all, of some roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleRequirement {
    roles: Arc<[String]>,
    all: bool,
}

impl RoleRequirement {
    /// Satisfied when the caller holds at least one of `roles`.
    pub fn any_of<I, S>(roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            roles: roles.into_iter().map(Into::into).collect(),
            all: false,
        }
    }

    /// Satisfied when the caller holds every one of `roles`.
    pub fn all_of<I, S>(roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            roles: roles.into_iter().map(Into::into).collect(),
            all: true,
        }
    }

    /// Whether a set of held roles satisfies this requirement (exact,
    /// case-sensitive matching).
    pub fn is_satisfied_by<S: AsRef<str>>(&self, held: &[S]) -> bool {
        let has = |r: &String| held.iter().any(|h| h.as_ref() == r);
        if self.all {
            self.roles.iter().all(has)
        } else {
            self.roles.iter().any(has)
        }
    }

    /// Check a verified token: `Ok` or a 403 `insufficient_scope` error whose
    /// challenge names the required roles.
    pub fn check(&self, token: &Verified) -> Result<(), AuthError> {
        if self.is_satisfied_by(token.roles()) {
            Ok(())
        } else {
            Err(AuthError::new(AuthErrorKind::InsufficientRole)
                .with_realm(token.realm().clone())
                .with_scope(self.roles.join(" ")))
        }
    }

    /// The roles named by this requirement.
    pub fn roles(&self) -> &[String] {
        &self.roles
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
