//! Brute-force throttling of password checks (login and the password grant).
//!
//! * Per client IP: every attempt takes a token from a bucket of `per_ip_per_minute`.
//! * Per username: every *failure* takes a token from a bucket of
//!   `per_username_per_minute`; each time the bucket runs dry the refill slows down
//!   (growing back-off, up to 64×), and a success resets it.
//! * No lockout denial of service: an IP that logged in successfully as a user recently
//!   is not held back by that user's failure bucket, so an attacker hammering a username
//!   does not lock its owner out of the devices they use.
//!
//! Memory is bounded: at most `MAX_ENTRIES` keys per table; idle, full buckets are
//! dropped first.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use tessera_core::UnixTime;

const MAX_ENTRIES: usize = 100_000;
const MAX_GOOD_IPS: usize = 8;

#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    last: u64,
    strikes: u32,
    good_ips: Vec<IpAddr>,
}

impl Bucket {
    fn full(capacity: f64, now: u64) -> Self {
        Bucket {
            tokens: capacity,
            last: now,
            strikes: 0,
            good_ips: Vec::new(),
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
}

fn prune<K: std::hash::Hash + Eq + Clone>(map: &mut HashMap<K, Bucket>, capacity: f64, now: u64) {
    if map.len() < MAX_ENTRIES {
        return;
    }
    map.retain(|_, b| {
        b.refill(capacity, now);
        b.tokens < capacity || !b.good_ips.is_empty()
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
        }
    }

    fn user_key(username: &str) -> String {
        username
            .chars()
            .take(128)
            .collect::<String>()
            .to_lowercase()
    }

    /// Before a password check: `Err(seconds to wait)` if this attempt must be refused.
    pub fn before_attempt(
        &self,
        username: &str,
        ip: Option<IpAddr>,
        now: UnixTime,
    ) -> Result<(), u64> {
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
        let mut users = self.users.lock().map_err(|_| 1u64)?;
        if let Some(b) = users.get_mut(&Self::user_key(username)) {
            b.refill(self.per_user, now);
            let known_device = ip.is_some_and(|ip| b.good_ips.contains(&ip));
            if b.tokens < 1.0 && !known_device {
                return Err(b.wait(self.per_user));
            }
        }
        Ok(())
    }

    /// After a failed password check.
    pub fn failed(&self, username: &str, now: UnixTime) {
        let now = now.0;
        if let Ok(mut users) = self.users.lock() {
            prune(&mut users, self.per_user, now);
            let b = users
                .entry(Self::user_key(username))
                .or_insert_with(|| Bucket::full(self.per_user, now));
            b.refill(self.per_user, now);
            b.tokens -= 1.0;
            if b.tokens < 1.0 {
                b.strikes = (b.strikes + 1).min(6);
                b.tokens = b.tokens.max(0.0);
            }
        }
    }

    /// After a successful password check.
    pub fn succeeded(&self, username: &str, ip: Option<IpAddr>, now: UnixTime) {
        if let Ok(mut users) = self.users.lock() {
            let b = users
                .entry(Self::user_key(username))
                .or_insert_with(|| Bucket::full(self.per_user, now.0));
            b.strikes = 0;
            if let Some(ip) = ip {
                if !b.good_ips.contains(&ip) {
                    if b.good_ips.len() >= MAX_GOOD_IPS {
                        b.good_ips.remove(0);
                    }
                    b.good_ips.push(ip);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, n]))
    }

    #[test]
    fn username_failures_throttle_with_growing_backoff() {
        let rl = RateLimiter::new(5, 1000);
        let t = UnixTime(1000);
        for _ in 0..5 {
            assert!(rl.before_attempt("alice", ip(1), t).is_ok());
            rl.failed("alice", t);
        }
        let wait1 = rl.before_attempt("Alice", ip(2), t).unwrap_err();
        assert!(wait1 >= 12, "one token per 12 s, slowed: {wait1}");
        // After waiting, one more failure empties it again and the wait grows.
        let t2 = t.plus(wait1);
        assert!(rl.before_attempt("alice", ip(1), t2).is_ok());
        rl.failed("alice", t2);
        let wait2 = rl.before_attempt("alice", ip(1), t2).unwrap_err();
        assert!(wait2 > wait1, "back-off grows: {wait1} then {wait2}");
        // Other usernames are unaffected.
        assert!(rl.before_attempt("bob", ip(1), t2).is_ok());
    }

    #[test]
    fn known_device_is_not_locked_out() {
        let rl = RateLimiter::new(5, 1000);
        let t = UnixTime(1000);
        rl.succeeded("alice", ip(7), t);
        for _ in 0..10 {
            rl.failed("alice", t);
        }
        assert!(
            rl.before_attempt("alice", ip(9), t).is_err(),
            "attacker's IP throttled"
        );
        assert!(
            rl.before_attempt("alice", ip(7), t).is_ok(),
            "owner's device still admitted"
        );
    }

    #[test]
    fn per_ip_limit_counts_every_attempt() {
        let rl = RateLimiter::new(1000, 3);
        let t = UnixTime(1000);
        for i in 0..3 {
            assert!(rl.before_attempt(&format!("user{i}"), ip(1), t).is_ok());
        }
        assert!(rl.before_attempt("user9", ip(1), t).is_err());
        assert!(rl.before_attempt("user9", ip(2), t).is_ok());
    }
}
