//! Roles and scopes: read from a configurable claim path, matched exactly.

use std::sync::Arc;

use serde_json::{Map, Value};

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

    /// Read the roles from a claims object.
    pub(crate) fn extract(&self, claims: &Map<String, Value>) -> Vec<String> {
        let mut segments = self.path.iter();
        let Some(first) = segments.next() else {
            return Vec::new();
        };
        let mut value = claims.get(first);
        for seg in segments {
            value = value.and_then(|v| v.get(seg));
        }
        match value {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
            _ => Vec::new(),
        }
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

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn claim_shapes() {
        let c = obj(json!({
            "roles": ["user", "admin", 3],
            "role": "admin",
            "scope": "read  write",
            "realm_access": {"roles": ["ops"]},
        }));
        assert_eq!(RoleClaim::new("roles").extract(&c), ["user", "admin"]);
        assert_eq!(RoleClaim::new("role").extract(&c), ["admin"]);
        assert_eq!(RoleClaim::new("scope").extract(&c), ["read", "write"]);
        assert_eq!(RoleClaim::new("realm_access.roles").extract(&c), ["ops"]);
        assert!(RoleClaim::new("nope.x").extract(&c).is_empty());
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
