//! What keycard tells an operator: one `tracing` span per authentication
//! decision and metrics through the `metrics` facade (bring your own
//! exporter: Prometheus, OpenTelemetry, StatsD). No token, signature, key
//! material or claim value other than `iss` and `kid` is ever recorded, and
//! every metric label has a bounded set of values (no `sub`, `jti` or
//! `kid`).
//!
//! Building a [`crate::Verifier`] creates the series of the decision
//! metrics at zero (every `outcome` and `reason`, the cache's `result`
//! when it has a cache) and registers the duration histogram, so that the
//! first scrape after a deploy already has them: install the recorder
//! before building the verifier.
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

use std::time::Instant;

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

// The metrics of an admitted request name their metric and labels as
// literals, so that `metrics` builds a static key: no allocation and no
// hashing per request (a label value held in a variable costs a `Vec` each
// time). A refusal's `reason` is such a variable: the failure path pays it.
// The literals equal `names::*`: `tests::decisions_use_the_documented_names`.

/// How long a decision took, read off the clock only when a histogram
/// records it: without a metrics recorder, the request pays no second clock
/// read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Since(pub(crate) Instant);

impl metrics::IntoF64 for Since {
    fn into_f64(self) -> f64 {
        self.0.elapsed().as_secs_f64()
    }
}

/// A verified request, and when its decision started.
pub(crate) fn verified(since: Since) {
    metrics::counter!("keycard_auth_requests_total", "outcome" => "verified").increment(1);
    metrics::histogram!("keycard_auth_duration_seconds", "outcome" => "verified").record(since);
}

/// A request let through as anonymous (optional mode, CORS preflight).
pub(crate) fn anonymous(since: Since) {
    metrics::counter!("keycard_auth_requests_total", "outcome" => "anonymous").increment(1);
    metrics::histogram!("keycard_auth_duration_seconds", "outcome" => "anonymous").record(since);
}

/// A refused request, with the [`crate::AuthErrorKind`] name as `reason`.
pub(crate) fn rejected(reason: &'static str, since: Since) {
    metrics::counter!(names::AUTH_REQUESTS, "outcome" => "rejected", "reason" => reason)
        .increment(1);
    metrics::histogram!("keycard_auth_duration_seconds", "outcome" => "rejected").record(since);
}

/// Create every series of a verifier's bounded label sets at zero, so that
/// the first scrape after a deploy already has them (Prometheus'
/// instrumentation guidance: "avoid missing metrics"; `rate()` and alerts
/// on absent series misbehave otherwise). `increment(0)` never resets a
/// series another verifier already counts in. Histograms are registered
/// with no sample. Call after the metrics recorder is installed.
pub(crate) fn register(cache: bool) {
    for outcome in ["verified", "anonymous", "rejected"] {
        let _ = metrics::histogram!(names::AUTH_DURATION, "outcome" => outcome);
    }
    metrics::counter!(names::AUTH_REQUESTS, "outcome" => "verified").increment(0);
    metrics::counter!(names::AUTH_REQUESTS, "outcome" => "anonymous").increment(0);
    for kind in crate::AuthErrorKind::ALL {
        metrics::counter!(names::AUTH_REQUESTS, "outcome" => "rejected", "reason" => kind.name())
            .increment(0);
    }
    if cache {
        metrics::counter!(names::CACHE, "result" => "hit").increment(0);
        metrics::counter!(names::CACHE, "result" => "miss").increment(0);
    }
}

pub(crate) fn cache(hit: bool) {
    if hit {
        metrics::counter!("keycard_verified_cache_total", "result" => "hit").increment(1);
    } else {
        metrics::counter!("keycard_verified_cache_total", "result" => "miss").increment(1);
    }
}

pub(crate) fn counter(name: &'static str) {
    metrics::counter!(name).increment(1);
}

pub(crate) fn logout(scope: &'static str) {
    metrics::counter!(names::LOGOUTS, "scope" => scope).increment(1);
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use metrics::{
        Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
        SharedString, Unit,
    };

    use super::names;

    /// Every key registered, as `name{label=value,...}`, and each value.
    #[derive(Default)]
    struct Seen(Arc<Mutex<Vec<(String, f64)>>>);

    struct Handle(String, Arc<Mutex<Vec<(String, f64)>>>);

    impl CounterFn for Handle {
        fn increment(&self, value: u64) {
            self.1.lock().unwrap().push((self.0.clone(), value as f64));
        }
        fn absolute(&self, _: u64) {}
    }

    impl HistogramFn for Handle {
        fn record(&self, value: f64) {
            self.1.lock().unwrap().push((self.0.clone(), value));
        }
    }

    fn render(key: &Key) -> String {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        format!("{}{{{}}}", key.name(), labels.join(","))
    }

    impl Recorder for Seen {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(Arc::new(Handle(render(key), self.0.clone())))
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::from_arc(Arc::new(Handle(render(key), self.0.clone())))
        }
    }

    #[test]
    fn decisions_use_the_documented_names() {
        let seen = Seen::default();
        let log = seen.0.clone();
        let start = super::Since(std::time::Instant::now());
        metrics::with_local_recorder(&seen, || {
            super::verified(start);
            super::anonymous(start);
            super::rejected("bad_signature", start);
            super::cache(true);
            super::cache(false);
        });
        let log = log.lock().unwrap().clone();
        let req = names::AUTH_REQUESTS;
        let dur = names::AUTH_DURATION;
        let keys: Vec<&str> = log.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                format!("{req}{{outcome=verified}}"),
                format!("{dur}{{outcome=verified}}"),
                format!("{req}{{outcome=anonymous}}"),
                format!("{dur}{{outcome=anonymous}}"),
                format!("{req}{{outcome=rejected,reason=bad_signature}}"),
                format!("{dur}{{outcome=rejected}}"),
                format!("{}{{result=hit}}", names::CACHE),
                format!("{}{{result=miss}}", names::CACHE),
            ]
        );
        for (key, value) in &log {
            if key.starts_with(dur) {
                // A duration since `start`, read when recorded.
                assert!((0.0..10.0).contains(value), "{key} = {value}");
            } else {
                assert_eq!(*value, 1.0, "{key}");
            }
        }
    }
}
