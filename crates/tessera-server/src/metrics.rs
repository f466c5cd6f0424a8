//! Counters for `/metrics` (Prometheus text format). Plain atomics: nothing here may cost
//! more than an increment on the request path.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds (microseconds) of the credential-check latency histogram.
pub const VERIFY_BUCKETS_US: [u64; 10] = [1, 2, 5, 10, 25, 50, 100, 250, 1000, 5000];

/// Process-wide counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Responses by (route, status).
    pub by_route:
        std::sync::Mutex<std::collections::BTreeMap<String, std::collections::BTreeMap<u16, u64>>>,
    /// Credential-check latency histogram (cumulative per bucket is computed at render).
    pub verify_buckets: [AtomicU64; VERIFY_BUCKETS_US.len() + 1],
    /// Sum of credential-check latencies in nanoseconds.
    pub verify_nanos: AtomicU64,
    /// Responses by status class (1xx..5xx at index 1..5).
    pub responses: [AtomicU64; 6],
    /// Logins that succeeded.
    pub login_success: AtomicU64,
    /// Logins refused for bad credentials.
    pub login_failure: AtomicU64,
    /// Logins refused because hashing was saturated.
    pub login_overloaded: AtomicU64,
    /// Logins refused by rate limits.
    pub login_rate_limited: AtomicU64,
    /// Refresh rotations.
    pub refresh: AtomicU64,
    /// Refresh-token reuse detected (family revoked).
    pub refresh_reuse: AtomicU64,
    /// Requests proxied upstream.
    pub proxied: AtomicU64,
    /// Credential checks that passed.
    pub verify_ok: AtomicU64,
    /// Credential checks that failed.
    pub verify_fail: AtomicU64,
    /// CSRF refusals.
    pub csrf_refused: AtomicU64,
    /// Store errors seen.
    pub store_errors: AtomicU64,
}

/// Increments a counter.
pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// Counts a response of `route` with `status`.
    pub fn count_route(&self, route: &str, status: u16) {
        if let Ok(mut m) = self.by_route.lock() {
            // No allocation once a route has been seen.
            match m.get_mut(route) {
                Some(by_status) => *by_status.entry(status).or_insert(0) += 1,
                None => {
                    m.entry(route.to_owned()).or_default().insert(status, 1);
                }
            }
        }
    }

    /// Records how long one credential check took.
    pub fn observe_verify(&self, took: std::time::Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let i = VERIFY_BUCKETS_US
            .iter()
            .position(|b| us <= *b)
            .unwrap_or(VERIFY_BUCKETS_US.len());
        inc(&self.verify_buckets[i]);
        self.verify_nanos.fetch_add(
            u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Counts a response status.
    pub fn count_status(&self, status: u16) {
        let class = usize::from(status / 100).min(5);
        inc(&self.responses[class]);
    }

    /// Renders the counters plus the given gauges.
    pub fn render(&self, gauges: &[(&str, &str, f64)]) -> String {
        let mut out = String::with_capacity(2048);
        let _ = writeln!(
            out,
            "# HELP tessera_responses_total Responses by status class."
        );
        let _ = writeln!(out, "# TYPE tessera_responses_total counter");
        for (i, c) in self.responses.iter().enumerate().skip(1) {
            let _ = writeln!(
                out,
                "tessera_responses_total{{class=\"{i}xx\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP tessera_logins_total Login attempts by outcome."
        );
        let _ = writeln!(out, "# TYPE tessera_logins_total counter");
        for (outcome, c) in [
            ("success", &self.login_success),
            ("failure", &self.login_failure),
            ("overloaded", &self.login_overloaded),
            ("rate_limited", &self.login_rate_limited),
        ] {
            let _ = writeln!(
                out,
                "tessera_logins_total{{outcome=\"{outcome}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        for (name, help, c) in [
            (
                "tessera_refresh_total",
                "Refresh-token rotations.",
                &self.refresh,
            ),
            (
                "tessera_refresh_reuse_total",
                "Refresh-token reuse detected (session revoked).",
                &self.refresh_reuse,
            ),
            (
                "tessera_proxied_total",
                "Requests proxied upstream.",
                &self.proxied,
            ),
            (
                "tessera_verify_ok_total",
                "Credential checks that passed.",
                &self.verify_ok,
            ),
            (
                "tessera_verify_fail_total",
                "Credential checks that failed.",
                &self.verify_fail,
            ),
            (
                "tessera_csrf_refused_total",
                "Requests refused by CSRF rules.",
                &self.csrf_refused,
            ),
            (
                "tessera_store_errors_total",
                "Store operations that failed.",
                &self.store_errors,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", c.load(Ordering::Relaxed));
        }
        let _ = writeln!(
            out,
            "# HELP tessera_http_responses_total Responses by route and status."
        );
        let _ = writeln!(out, "# TYPE tessera_http_responses_total counter");
        if let Ok(m) = self.by_route.lock() {
            for (route, status, n) in m
                .iter()
                .flat_map(|(r, by)| by.iter().map(move |(s, n)| (r, s, n)))
            {
                let _ = writeln!(
                    out,
                    "tessera_http_responses_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP tessera_verify_duration_seconds Time to check a request's credentials."
        );
        let _ = writeln!(out, "# TYPE tessera_verify_duration_seconds histogram");
        let mut cumulative = 0;
        for (i, b) in VERIFY_BUCKETS_US.iter().enumerate() {
            cumulative += self.verify_buckets[i].load(Ordering::Relaxed);
            let le = *b as f64 / 1e6;
            let _ = writeln!(
                out,
                "tessera_verify_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        cumulative += self.verify_buckets[VERIFY_BUCKETS_US.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "tessera_verify_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(
            out,
            "tessera_verify_duration_seconds_sum {}",
            self.verify_nanos.load(Ordering::Relaxed) as f64 / 1e9
        );
        let _ = writeln!(out, "tessera_verify_duration_seconds_count {cumulative}");
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {v}");
        }
        out
    }
}
