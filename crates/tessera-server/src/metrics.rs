//! Counters for `/metrics` (Prometheus text format). Plain atomics: nothing here may cost
//! more than an increment on the request path.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Process-wide counters.
#[derive(Debug, Default)]
pub struct Metrics {
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
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {v}");
        }
        out
    }
}
