//! Role guards for routing.
//!
//! A failed actix `Guard` means "this route does not match": actix then tries
//! the next route and finally answers 404, never 403. Use guards only to
//! route by role (e.g. an admin and a user variant of one path); to refuse a
//! request with 403 `insufficient_scope`, use [`crate::RequireRoles`].

use actix_web::guard::{Guard, GuardContext};
use keycard_core::{RoleRequirement, Verified};

/// A guard that matches when the verified caller satisfies a role
/// requirement.
#[derive(Debug, Clone)]
pub struct RoleGuard(RoleRequirement);

impl RoleGuard {
    /// A guard for any requirement.
    pub fn new(requirement: RoleRequirement) -> Self {
        Self(requirement)
    }
}

impl Guard for RoleGuard {
    fn check(&self, ctx: &GuardContext<'_>) -> bool {
        ctx.req_data()
            .get::<Verified>()
            .is_some_and(|v| self.0.is_satisfied_by(v.roles()))
    }
}

/// Matches callers holding `role`. See the module docs: no match is a 404.
pub fn has_role(role: impl Into<String>) -> RoleGuard {
    RoleGuard(RoleRequirement::any_of([role.into()]))
}

/// Matches callers holding every one of `roles`.
pub fn has_all_roles<I, S>(roles: I) -> RoleGuard
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    RoleGuard(RoleRequirement::all_of(roles))
}
