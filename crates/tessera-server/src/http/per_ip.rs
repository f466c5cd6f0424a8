//! A bound on what one client IP holds at once: proxied requests in flight, each of which
//! holds an upstream connection until its response has been sent (or dropped).
//!
//! Without it, a few clients that never read their responses (or send their bodies slowly)
//! could hold every upstream connection the API will take. The count is exact: a slot is
//! taken when the request is proxied and given back when its response body is dropped.

use std::collections::hash_map::{Entry, HashMap};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};

/// Shards of the table: requests from different IPs rarely meet on one lock.
const SHARDS: usize = 16;

/// Slots in use per client IP, at most `limit` each.
#[derive(Debug)]
pub(crate) struct PerIp {
    limit: usize,
    shards: [Mutex<HashMap<IpAddr, usize>>; SHARDS],
}

impl PerIp {
    /// At most `limit` slots per IP.
    pub(crate) fn new(limit: usize) -> Self {
        PerIp {
            limit,
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
        }
    }

    /// The shard of `ip`: its last byte picks it (no second hash per request; the map in
    /// the shard hashes with its own random key, so the choice only spreads lock
    /// contention and cannot be used to collide entries).
    fn shard(&self, ip: &IpAddr) -> &Mutex<HashMap<IpAddr, usize>> {
        let last = match ip {
            IpAddr::V4(v4) => v4.octets()[3],
            IpAddr::V6(v6) => v6.octets()[15],
        };
        &self.shards[usize::from(last) % SHARDS]
    }

    /// A slot for `ip`, or `None` when it already holds `limit`.
    pub(crate) fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let mut map = self.shard(&ip).lock().ok()?;
        let n = map.entry(ip).or_insert(0);
        if *n >= self.limit {
            return None;
        }
        *n += 1;
        Some(Slot {
            owner: Arc::clone(self),
            ip,
        })
    }

    /// Slots `ip` holds now (for tests).
    #[cfg(test)]
    pub(crate) fn held(&self, ip: IpAddr) -> usize {
        self.shard(&ip)
            .lock()
            .map(|m| m.get(&ip).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

/// One slot, given back when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    owner: Arc<PerIp>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut map) = self.owner.shard(&self.ip).lock() {
            if let Entry::Occupied(mut e) = map.entry(self.ip) {
                if *e.get() <= 1 {
                    e.remove();
                } else {
                    *e.get_mut() -= 1;
                }
            }
        }
    }
}

/// A response body that holds a [`Slot`] until it is dropped.
pub(crate) struct Held<B> {
    inner: B,
    _slot: Option<Slot>,
}

impl<B> Held<B> {
    /// `inner`, holding `slot` as long as it lives.
    pub(crate) fn new(inner: B, slot: Option<Slot>) -> Self {
        Held { inner, _slot: slot }
    }
}

impl<B: Body + Unpin> Body for Held<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_per_ip_and_given_back() {
        let t = Arc::new(PerIp::new(2));
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let s1 = t.acquire(a).expect("first");
        let s2 = t.acquire(a).expect("second");
        assert!(t.acquire(a).is_none(), "a third for the same IP");
        let other = t.acquire(b).expect("another IP is not affected");
        assert_eq!(t.held(a), 2);
        drop(s1);
        assert_eq!(t.held(a), 1);
        let s3 = t.acquire(a).expect("a slot given back is free again");
        drop((s2, s3, other));
        assert_eq!(t.held(a), 0);
        assert_eq!(t.held(b), 0);
        assert!(t
            .shards
            .iter()
            .all(|s| s.lock().map(|m| m.is_empty()).unwrap_or(false)));
    }
}
