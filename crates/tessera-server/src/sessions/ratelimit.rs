//! Brute-force throttling of password checks (login and the password grant).
//!
//! * Per client IP: every attempt takes a token from a bucket of `per_ip_per_minute`.
//! * Per username: every *failure* takes a token from a bucket of
//!   `per_username_per_minute`; each time the bucket runs dry the refill slows down
//!   (growing back-off, up to 64×), and a success resets it.
//! * No lockout denial of service, and no exemption an attacker can share: a login that
//!   proves a *known device* — a device token ([`tessera_core::device`]) issued to this
//!   user at an earlier successful login, sent as an HttpOnly cookie or by a mobile
//!   client — is not held back by the user's failure bucket, so an attacker hammering a
//!   username does not lock its owner out. Everyone else meets the per-user limit,
//!   including an attacker on the owner's own network (NAT, office, carrier-grade NAT):
//!   an IP address proves nothing. Each device has a failure bucket of its own, of the
//!   same size, so a stolen device token buys no more guesses than the limit.
//! * Across nodes the per-username failures also count in the store (see
//!   `sessions::password::check_password`): N nodes do not give an attacker N budgets.
//!
//! Memory is bounded: at most `MAX_ENTRIES` keys per table; idle, full buckets are
//! dropped first.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use tessera_core::UnixTime;

use tessera_core::device::DeviceId;

const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    last: u64,
    strikes: u32,
}

impl Bucket {
    fn full(capacity: f64, now: u64) -> Self {
        Bucket {
            tokens: capacity,
            last: now,
            strikes: 0,
        }
    }

    /// Takes one failure; a bucket that runs dry slows its refill.
    fn fail(&mut self, capacity: f64, now: u64) {
        self.refill(capacity, now);
        self.tokens -= 1.0;
        if self.tokens < 1.0 {
            self.strikes = (self.strikes + 1).min(6);
            self.tokens = self.tokens.max(0.0);
        }
    }

    /// Refills at `capacity` per minute, slowed by 2^strikes.
    fn refill(&mut self, capacity: f64, now: u64) {
        let rate = capacity / 60.0 / f64::from(1u32 << self.strikes.min(6));
        let elapsed = now.saturating_sub(self.last) as f64;
        self.tokens = (self.tokens + elapsed * rate).min(capacity);
        self.last = now;
    }

    /// Seconds until one token is available.
    fn wait(&self, capacity: f64) -> u64 {
        let rate = capacity / 60.0 / f64::from(1u32 << self.strikes.min(6));
        (((1.0 - self.tokens) / rate).ceil() as u64).max(1)
    }
}

/// The limiter.
#[derive(Debug)]
pub struct RateLimiter {
    per_user: f64,
    per_ip: f64,
    users: Mutex<HashMap<String, Bucket>>,
    ips: Mutex<HashMap<IpAddr, Bucket>>,
    devices: Mutex<HashMap<DeviceId, Bucket>>,
}

fn prune<K: std::hash::Hash + Eq + Clone>(map: &mut HashMap<K, Bucket>, capacity: f64, now: u64) {
    if map.len() < MAX_ENTRIES {
        return;
    }
    map.retain(|_, b| {
        b.refill(capacity, now);
        b.tokens < capacity
    });
    if map.len() >= MAX_ENTRIES {
        // Still full of active buckets: drop the stalest half rather than grow.
        let mut lasts: Vec<u64> = map.values().map(|b| b.last).collect();
        lasts.sort_unstable();
        let cutoff = lasts[lasts.len() / 2];
        map.retain(|_, b| b.last > cutoff);
    }
}

impl RateLimiter {
    /// A limiter allowing `per_username_per_minute` failures per username and
    /// `per_ip_per_minute` attempts per client IP.
    pub fn new(per_username_per_minute: u32, per_ip_per_minute: u32) -> Self {
        RateLimiter {
            per_user: f64::from(per_username_per_minute.max(1)),
            per_ip: f64::from(per_ip_per_minute.max(1)),
            users: Mutex::new(HashMap::new()),
            ips: Mutex::new(HashMap::new()),
            devices: Mutex::new(HashMap::new()),
        }
    }

    /// The key a username's failures are counted under (case-folded, bounded).
    pub fn user_key(username: &str) -> String {
        username
            .chars()
            .take(128)
            .collect::<String>()
            .to_lowercase()
    }

    /// Before a password check: `Err(seconds to wait)` if this attempt must be refused.
    /// `device` is the known device the attempt proved (a valid device token for this
    /// username), if any; `Ok(true)` means it is trusted for this attempt, so the
    /// per-user limits (here and cluster-wide) do not apply to it.
    pub fn before_attempt(
        &self,
        username: &str,
        ip: Option<IpAddr>,
        device: Option<DeviceId>,
        now: UnixTime,
    ) -> Result<bool, u64> {
        let now = now.0;
        if let Some(ip) = ip {
            let mut ips = self.ips.lock().map_err(|_| 1u64)?;
            prune(&mut ips, self.per_ip, now);
            let b = ips
                .entry(ip)
                .or_insert_with(|| Bucket::full(self.per_ip, now));
            b.refill(self.per_ip, now);
            if b.tokens < 1.0 {
                return Err(b.wait(self.per_ip));
            }
            b.tokens -= 1.0;
        }
        let trusted = match device {
            Some(d) => {
                let mut devices = self.devices.lock().map_err(|_| 1u64)?;
                devices.get_mut(&d).is_none_or(|b| {
                    b.refill(self.per_user, now);
                    b.tokens >= 1.0
                })
            }
            None => false,
        };
        if trusted {
            return Ok(true);
        }
        let mut users = self.users.lock().map_err(|_| 1u64)?;
        if let Some(b) = users.get_mut(&Self::user_key(username)) {
            b.refill(self.per_user, now);
            if b.tokens < 1.0 {
                return Err(b.wait(self.per_user));
            }
        }
        Ok(false)
    }

    /// Seconds to wait when the cluster-wide count says the user's budget is spent.
    pub fn cluster_wait(&self) -> u64 {
        (60.0 / self.per_user).ceil().max(1.0) as u64
    }

    /// The per-username failures allowed per minute.
    pub fn per_user_per_minute(&self) -> u32 {
        self.per_user as u32
    }

    /// After a failed password check (from `device`, if the attempt proved one).
    pub fn failed(&self, username: &str, device: Option<DeviceId>, now: UnixTime) {
        let now = now.0;
        if let Ok(mut users) = self.users.lock() {
            prune(&mut users, self.per_user, now);
            users
                .entry(Self::user_key(username))
                .or_insert_with(|| Bucket::full(self.per_user, now))
                .fail(self.per_user, now);
        }
        if let (Some(d), Ok(mut devices)) = (device, self.devices.lock()) {
            prune(&mut devices, self.per_user, now);
            devices
                .entry(d)
                .or_insert_with(|| Bucket::full(self.per_user, now))
                .fail(self.per_user, now);
        }
    }

    /// After a successful password check: the user's back-off starts over.
    pub fn succeeded(&self, username: &str, now: UnixTime) {
        if let Ok(mut users) = self.users.lock() {
            let b = users
                .entry(Self::user_key(username))
                .or_insert_with(|| Bucket::full(self.per_user, now.0));
            b.strikes = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, n]))
    }

    fn dev(n: u8) -> Option<DeviceId> {
        Some(DeviceId([n; 16]))
    }

    #[test]
    fn username_failures_throttle_with_growing_backoff() {
        let rl = RateLimiter::new(5, 1000);
        let t = UnixTime(1000);
        for _ in 0..5 {
            assert!(rl.before_attempt("alice", ip(1), None, t).is_ok());
            rl.failed("alice", None, t);
        }
        let wait1 = rl.before_attempt("Alice", ip(2), None, t).unwrap_err();
        assert!(wait1 >= 12, "one token per 12 s, slowed: {wait1}");
        // After waiting, one more failure empties it again and the wait grows.
        let t2 = t.plus(wait1);
        assert!(rl.before_attempt("alice", ip(1), None, t2).is_ok());
        rl.failed("alice", None, t2);
        let wait2 = rl.before_attempt("alice", ip(1), None, t2).unwrap_err();
        assert!(wait2 > wait1, "back-off grows: {wait1} then {wait2}");
        // Other usernames are unaffected.
        assert!(rl.before_attempt("bob", ip(1), None, t2).is_ok());
    }

    #[test]
    fn the_owners_ip_is_no_exemption_a_known_device_is() {
        let rl = RateLimiter::new(5, 1000);
        let t = UnixTime(1000);
        // The owner logged in from 10.0.0.7 before; an attacker behind the same NAT.
        rl.succeeded("alice", t);
        for _ in 0..10 {
            rl.failed("alice", None, t);
        }
        assert!(
            rl.before_attempt("alice", ip(7), None, t).is_err(),
            "the owner's IP without the device token is throttled"
        );
        assert_eq!(
            rl.before_attempt("alice", ip(7), dev(1), t),
            Ok(true),
            "the owner's known device is admitted"
        );
    }

    #[test]
    fn a_device_that_keeps_failing_loses_its_trust() {
        let rl = RateLimiter::new(5, 1000);
        let t = UnixTime(1000);
        for _ in 0..5 {
            assert_eq!(rl.before_attempt("alice", ip(1), dev(2), t), Ok(true));
            rl.failed("alice", dev(2), t);
        }
        // A stolen device token buys no more than the per-user limit.
        assert!(rl.before_attempt("alice", ip(1), dev(2), t).is_err());
        // Another known device of the owner still works.
        assert_eq!(rl.before_attempt("alice", ip(1), dev(3), t), Ok(true));
    }

    #[test]
    fn per_ip_limit_counts_every_attempt() {
        let rl = RateLimiter::new(1000, 3);
        let t = UnixTime(1000);
        for i in 0..3 {
            assert!(rl
                .before_attempt(&format!("user{i}"), ip(1), None, t)
                .is_ok());
        }
        assert!(rl.before_attempt("user9", ip(1), None, t).is_err());
        assert!(rl.before_attempt("user9", ip(2), dev(1), t).is_ok());
        assert!(
            rl.before_attempt("user9", ip(1), dev(1), t).is_err(),
            "a device does not lift the per-IP limit"
        );
    }
}
