//! Counters for `/metrics` (Prometheus text format). Plain atomics: nothing here may cost
//! more than an increment on the request path.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds (microseconds) of the credential-check latency histogram.
pub(crate) const VERIFY_BUCKETS_US: [u64; 10] = [1, 2, 5, 10, 25, 50, 100, 250, 1000, 5000];

/// Routes whose responses are counted without a lock: the gateway (every proxied
/// request, index 0) and tessera's own routes (`/auth/verify` is the hot path of
/// forward-auth), indices 1 and on.
const HOT_ROUTES: usize = 1 + crate::OWN_ROUTES.len();

/// `route`'s index among the hot routes.
fn hot_route(route: &str) -> Option<usize> {
    if route == "gateway" {
        return Some(0);
    }
    crate::OWN_ROUTES
        .iter()
        .position(|r| *r == route)
        .map(|i| i + 1)
}

/// The hot route at `index`.
fn hot_route_name(index: usize) -> &'static str {
    index
        .checked_sub(1)
        .and_then(|i| crate::OWN_ROUTES.get(i))
        .copied()
        .unwrap_or("gateway")
}
/// Statuses 100..=599, one counter each per hot route.
const STATUSES: usize = 500;

/// Response counters of the hot routes: `[route * STATUSES + status - 100]`.
#[derive(Debug)]
struct RouteCounts(Box<[AtomicU64]>);

impl Default for RouteCounts {
    fn default() -> Self {
        RouteCounts(
            (0..HOT_ROUTES * STATUSES)
                .map(|_| AtomicU64::new(0))
                .collect(),
        )
    }
}

type ByStatus = std::collections::BTreeMap<u16, u64>;

/// Process-wide counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Responses of the hot routes by status.
    route_counts: RouteCounts,
    /// Responses of any other route (or with a status outside 100..=599), by route and
    /// status.
    by_route: std::sync::Mutex<std::collections::BTreeMap<String, ByStatus>>,
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
pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// Counts a response of `route` with `status`.
    pub fn count_route(&self, route: &str, status: u16) {
        if let (Some(r), 100..=599) = (hot_route(route), status) {
            if let Some(c) = self
                .route_counts
                .0
                .get(r * STATUSES + usize::from(status - 100))
            {
                inc(c);
                return;
            }
        }
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

    /// Every route's responses by status, ordered by route then status.
    fn responses_by_route(&self) -> std::collections::BTreeMap<String, ByStatus> {
        let mut all = self.by_route.lock().map(|m| m.clone()).unwrap_or_default();
        for r in 0..HOT_ROUTES {
            let route = hot_route_name(r);
            for (i, c) in self.route_counts.0[r * STATUSES..(r + 1) * STATUSES]
                .iter()
                .enumerate()
            {
                let n = c.load(Ordering::Relaxed);
                if n > 0 {
                    // `i` < 500.
                    let status = 100 + u16::try_from(i).unwrap_or(0);
                    *all.entry(route.to_owned())
                        .or_default()
                        .entry(status)
                        .or_insert(0) += n;
                }
            }
        }
        all
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
        for (route, status, n) in self
            .responses_by_route()
            .iter()
            .flat_map(|(r, by)| by.iter().map(move |(s, n)| (r, s, n)))
        {
            let _ = writeln!(
                out,
                "tessera_http_responses_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hot_routes_are_the_gateway_and_tesseras_own() {
        assert_eq!(hot_route_name(0), "gateway");
        for r in 1..HOT_ROUTES {
            assert!(crate::is_own_route(hot_route_name(r)), "{r}");
            assert_eq!(hot_route(hot_route_name(r)), Some(r));
        }
    }

    #[test]
    fn responses_are_counted_by_route_and_status() {
        let m = Metrics::default();
        for _ in 0..3 {
            m.count_route("gateway", 200);
        }
        m.count_route("gateway", 502);
        m.count_route("/auth/verify", 401);
        m.count_route("/other", 404);
        // Outside the lock-free range.
        m.count_route("gateway", 999);
        m.count_route("gateway", 99);
        let text = m.render(&[]);
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("tessera_http_responses_total{"))
            .collect();
        assert_eq!(
            lines,
            [
                "tessera_http_responses_total{route=\"/auth/verify\",status=\"401\"} 1",
                "tessera_http_responses_total{route=\"/other\",status=\"404\"} 1",
                "tessera_http_responses_total{route=\"gateway\",status=\"99\"} 1",
                "tessera_http_responses_total{route=\"gateway\",status=\"200\"} 3",
                "tessera_http_responses_total{route=\"gateway\",status=\"502\"} 1",
                "tessera_http_responses_total{route=\"gateway\",status=\"999\"} 1",
            ]
        );
    }
}
