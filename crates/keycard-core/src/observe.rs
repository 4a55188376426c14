//! What keycard tells an operator: one `tracing` span per authentication
//! decision and metrics through the `metrics` facade (bring your own
//! exporter: Prometheus, OpenTelemetry, StatsD). No token, signature, key
//! material or claim value other than `iss` and `kid` is ever recorded, and
//! every metric label has a bounded set of values (no `sub`, `jti` or
//! `kid`).
//!
//! Metric names ([`names`]):
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `keycard_auth_requests_total` | counter | `outcome` (`verified`, `anonymous`, `rejected`), `reason` (the [`crate::AuthErrorKind`] name, rejections only) |
//! | `keycard_auth_duration_seconds` | histogram | `outcome` |
//! | `keycard_verified_cache_total` | counter | `result` (`hit`, `miss`) |
//! | `keycard_jwks_fetches_total` | counter | `result` (`ok`, `error`) |
//! | `keycard_jwks_keys` | gauge | — |
//! | `keycard_jwks_age_seconds` | gauge | — (seconds since the last good fetch, updated by the refresher and by readiness checks) |
//! | `keycard_revocation_view_current` | gauge | — (1 or 0; Redis stores) |
//! | `keycard_revocation_view_lag_seconds` | gauge | — (Redis stores) |
//! | `keycard_revocation_rewrites_total` | counter | — (Redis stores: own acknowledged revocations written again because they were never announced, e.g. acknowledged by a primary that then failed over) |
//! | `keycard_revocation_resyncs_total` | counter | — (Redis stores: subscription rebuilt and snapshot reloaded after a failure, failover or slot move) |
//! | `keycard_refresh_rotations_total` | counter | — |
//! | `keycard_refresh_reuse_detected_total` | counter | — |
//! | `keycard_logouts_total` | counter | `scope` (`session`, `everywhere`) |

/// The metric names keycard emits.
pub mod names {
    /// Authentication decisions, by outcome and refusal reason.
    pub const AUTH_REQUESTS: &str = "keycard_auth_requests_total";
    /// Time to decide, by outcome.
    pub const AUTH_DURATION: &str = "keycard_auth_duration_seconds";
    /// Verified-token cache lookups, by result.
    pub const CACHE: &str = "keycard_verified_cache_total";
    /// JWKS fetches, by result.
    pub const JWKS_FETCHES: &str = "keycard_jwks_fetches_total";
    /// Keys in the current JWKS snapshot.
    pub const JWKS_KEYS: &str = "keycard_jwks_keys";
    /// Seconds since the last good JWKS fetch.
    pub const JWKS_AGE: &str = "keycard_jwks_age_seconds";
    /// Whether a cluster revocation view is current (1) or not (0).
    pub const REVOCATION_CURRENT: &str = "keycard_revocation_view_current";
    /// Own acknowledged revocations written again because they were never
    /// announced (acknowledged by a primary that then lost them).
    pub const REVOCATION_REWRITES: &str = "keycard_revocation_rewrites_total";
    /// Times a cluster revocation view resynced (rebuilt its subscription
    /// and reloaded the snapshot) after its first sync.
    pub const REVOCATION_RESYNCS: &str = "keycard_revocation_resyncs_total";
    /// Seconds since a cluster revocation view was last proven current.
    pub const REVOCATION_LAG: &str = "keycard_revocation_view_lag_seconds";
    /// Refresh-token rotations.
    pub const ROTATIONS: &str = "keycard_refresh_rotations_total";
    /// Refresh-token reuse detections (each revoked a session).
    pub const REUSE: &str = "keycard_refresh_reuse_detected_total";
    /// Logouts, by scope.
    pub const LOGOUTS: &str = "keycard_logouts_total";
}

/// Count a finished decision.
pub(crate) fn decision(outcome: &'static str, reason: Option<&'static str>, seconds: f64) {
    match reason {
        Some(r) => metrics::counter!(names::AUTH_REQUESTS, "outcome" => outcome, "reason" => r)
            .increment(1),
        None => metrics::counter!(names::AUTH_REQUESTS, "outcome" => outcome).increment(1),
    }
    metrics::histogram!(names::AUTH_DURATION, "outcome" => outcome).record(seconds);
}

pub(crate) fn cache(hit: bool) {
    metrics::counter!(names::CACHE, "result" => if hit { "hit" } else { "miss" }).increment(1);
}

pub(crate) fn counter(name: &'static str) {
    metrics::counter!(name).increment(1);
}

pub(crate) fn logout(scope: &'static str) {
    metrics::counter!(names::LOGOUTS, "scope" => scope).increment(1);
}
