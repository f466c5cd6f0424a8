//! A bounded replay cache: remembers one-time values (DPoP `jti`s, request-signature
//! nonces) until they could no longer be accepted anyway, and says when one comes again.
//!
//! Purpose: RFC 9449 §11.1 and RFC 9421 §7.2.2 — a DPoP proof or a signed request is accepted at
//! most once within its validity window. Time is a parameter; there is no I/O and no
//! background task: expired entries are dropped by the calls themselves.
//!
//! Fail closed: when the cache is full of live entries, new values are refused with
//! [`ReplayError::Full`] rather than evicting a live entry (evicting would let that value
//! be replayed). Size `capacity` for the peak rate × window you expect, e.g. 1 000
//! requests/s × 300 s = 300 000 entries.
//!
//! Memory: only a 16-byte truncated SHA-256 of each key is kept, plus its expiry, in a
//! hash map and a min-heap. Nothing grows beyond `capacity` entries.
//!
//! Scope: one cache is local to one process. In a cluster a value replayed against
//! another node is not caught here; the server pairs it with the store's shared record of
//! one-time values (`Store::record_once` in tessera-store), asked only when this cache
//! says "new".
//!
//! ```
//! use tessera_core::replay::{ReplayCache, ReplayError};
//! use tessera_core::UnixTime;
//!
//! let cache = ReplayCache::new(1_000);
//! let now = UnixTime(1_000);
//! assert!(cache.check_and_insert("jkt:jti-1", now.plus(60), now).is_ok());
//! assert_eq!(cache.check_and_insert("jkt:jti-1", now.plus(60), now.plus(1)), Err(ReplayError::Replayed));
//! // After its expiry the value is forgotten (the proof itself would be refused as stale).
//! assert!(cache.check_and_insert("jkt:jti-1", now.plus(200), now.plus(61)).is_ok());
//! ```

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Mutex;

use ring::digest;

use crate::UnixTime;

/// Why a value was refused by [`ReplayCache::check_and_insert`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// The value was seen before and its entry has not expired: a replay.
    #[error("replayed value")]
    Replayed,
    /// The cache holds `capacity` live entries; the value cannot be remembered, so it is
    /// refused (fail closed). Also returned if the cache's lock was poisoned.
    #[error("replay cache full")]
    Full,
    /// `expires` is already before `now`: the caller's validity check should have refused
    /// the value, so this is a caller bug and the value is refused.
    #[error("value already expired")]
    Expired,
}

type Digest16 = [u8; 16];

#[derive(Default)]
struct Inner {
    /// Key digest → expiry (inclusive, seconds).
    live: HashMap<Digest16, u64>,
    /// The same entries ordered by expiry, earliest first. Kept exactly in step with
    /// `live`: every key is in both or in neither.
    by_expiry: BinaryHeap<Reverse<(u64, Digest16)>>,
}

impl Inner {
    /// Drops every entry whose expiry is before `now`. Amortised O(log n) per entry.
    fn purge(&mut self, now: u64) {
        while let Some(Reverse((expires, key))) = self.by_expiry.peek().copied() {
            if expires >= now {
                break;
            }
            self.by_expiry.pop();
            self.live.remove(&key);
        }
    }
}

/// Remembers one-time values until they expire; see the [module docs](self).
///
/// `Send + Sync`: share one behind an `Arc`. All methods take `&self`.
pub struct ReplayCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for ReplayCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayCache")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

fn digest16(key: &[u8]) -> Digest16 {
    let d = digest::digest(&digest::SHA256, key);
    let mut out = [0u8; 16];
    out.copy_from_slice(&d.as_ref()[..16]);
    out
}

impl ReplayCache {
    /// An empty cache that holds at most `capacity` live entries (0 refuses everything).
    pub fn new(capacity: usize) -> Self {
        ReplayCache {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The most entries this cache holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Entries currently held (live or expired but not yet dropped).
    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.live.len()).unwrap_or(0)
    }

    /// True if no entries are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records `key` as used until `expires` (inclusive), unless it is already recorded.
    ///
    /// An entry is live while `now <= expires`; pass the last second at which the value
    /// could still pass its own freshness check (DPoP: `iat + max_age`, see
    /// [`crate::dpop::DpopProof::replay_expires`]; signed requests: `created + window`).
    ///
    /// Returns [`ReplayError::Replayed`] if `key` is live, [`ReplayError::Full`] if the
    /// cache is full of live entries even after dropping expired ones (no live entry is
    /// ever evicted), and [`ReplayError::Expired`] if `expires < now`. On `Ok` the key is
    /// recorded. Keys of different kinds must not collide: prefix them by kind
    /// (`"dpop:"`, `"sig:"`) as the helpers in this crate do.
    pub fn check_and_insert(
        &self,
        key: impl AsRef<[u8]>,
        expires: UnixTime,
        now: UnixTime,
    ) -> Result<(), ReplayError> {
        if expires < now {
            return Err(ReplayError::Expired);
        }
        let digest = digest16(key.as_ref());
        let Ok(mut inner) = self.inner.lock() else {
            // A poisoned lock means a panic mid-update; the two structures may disagree.
            return Err(ReplayError::Full);
        };
        inner.purge(now.0);
        // After the purge every entry held is live.
        if inner.live.contains_key(&digest) {
            return Err(ReplayError::Replayed);
        }
        if inner.live.len() >= self.capacity {
            return Err(ReplayError::Full);
        }
        inner.live.insert(digest, expires.0);
        inner.by_expiry.push(Reverse((expires.0, digest)));
        Ok(())
    }

    /// True if `key` is recorded and live at `now`; does not record it.
    pub fn contains(&self, key: impl AsRef<[u8]>, now: UnixTime) -> bool {
        let digest = digest16(key.as_ref());
        match self.inner.lock() {
            Ok(inner) => inner.live.get(&digest).is_some_and(|&e| e >= now.0),
            // Fail closed: report everything as seen.
            Err(_) => true,
        }
    }

    /// Drops entries expired at `now`, returning how many are left. Optional: every
    /// [`check_and_insert`](Self::check_and_insert) purges too; call this from a timer to
    /// release memory after a burst.
    pub fn purge(&self, now: UnixTime) -> usize {
        match self.inner.lock() {
            Ok(mut inner) => {
                inner.purge(now.0);
                if inner.live.capacity() > 4 * inner.live.len().max(1024) {
                    inner.live.shrink_to_fit();
                    inner.by_expiry.shrink_to_fit();
                }
                inner.live.len()
            }
            Err(_) => 0,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const T: UnixTime = UnixTime(1_700_000_000);

    #[test]
    fn first_use_passes_second_is_replay() {
        let c = ReplayCache::new(10);
        assert_eq!(c.check_and_insert("a", T.plus(60), T), Ok(()));
        assert_eq!(
            c.check_and_insert("a", T.plus(60), T),
            Err(ReplayError::Replayed)
        );
        assert_eq!(
            c.check_and_insert(b"a".as_slice(), T.plus(600), T.plus(60)),
            Err(ReplayError::Replayed),
            "live through its expiry second, whatever the new expiry"
        );
        assert_eq!(c.check_and_insert("b", T.plus(60), T), Ok(()));
        assert!(c.contains("a", T));
        assert!(!c.contains("c", T));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn expired_entries_are_forgotten() {
        let c = ReplayCache::new(10);
        c.check_and_insert("a", T.plus(60), T).unwrap();
        assert!(!c.contains("a", T.plus(61)));
        assert_eq!(c.check_and_insert("a", T.plus(200), T.plus(61)), Ok(()));
        assert_eq!(
            c.check_and_insert("a", T.plus(200), T.plus(62)),
            Err(ReplayError::Replayed)
        );
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn full_cache_fails_closed_and_never_evicts_live_entries() {
        let c = ReplayCache::new(3);
        for k in ["a", "b", "c"] {
            c.check_and_insert(k, T.plus(100), T).unwrap();
        }
        assert_eq!(
            c.check_and_insert("d", T.plus(100), T),
            Err(ReplayError::Full)
        );
        // Every earlier entry is still there.
        for k in ["a", "b", "c"] {
            assert_eq!(
                c.check_and_insert(k, T.plus(100), T.plus(50)),
                Err(ReplayError::Replayed)
            );
        }
        // Once one expires there is room again.
        let c = ReplayCache::new(3);
        c.check_and_insert("a", T.plus(10), T).unwrap();
        c.check_and_insert("b", T.plus(100), T).unwrap();
        c.check_and_insert("c", T.plus(100), T).unwrap();
        assert_eq!(
            c.check_and_insert("d", T.plus(100), T.plus(10)),
            Err(ReplayError::Full)
        );
        assert_eq!(c.check_and_insert("d", T.plus(100), T.plus(11)), Ok(()));
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn zero_capacity_refuses_everything() {
        let c = ReplayCache::new(0);
        assert_eq!(
            c.check_and_insert("a", T.plus(1), T),
            Err(ReplayError::Full)
        );
    }

    #[test]
    fn already_expired_value_is_refused() {
        let c = ReplayCache::new(10);
        assert_eq!(
            c.check_and_insert("a", T.minus(1), T),
            Err(ReplayError::Expired)
        );
        assert_eq!(c.check_and_insert("a", T, T), Ok(()));
    }

    #[test]
    fn purge_keeps_structures_in_step_and_bounded() {
        let c = ReplayCache::new(1000);
        for i in 0..1000u64 {
            c.check_and_insert(i.to_be_bytes(), T.plus(i % 10), T)
                .unwrap();
        }
        // Expiries T+0..T+9; at T+5 those before T+5 go, T+5 itself is still live.
        assert_eq!(c.purge(T.plus(5)), 500);
        {
            let inner = c.inner.lock().unwrap();
            assert_eq!(inner.live.len(), inner.by_expiry.len());
        }
        // Many rounds of insert-and-expire never exceed the capacity.
        for round in 0..50u64 {
            for i in 0..1000u64 {
                let now = T.plus(100 + round * 10);
                let _ = c.check_and_insert(
                    [round.to_be_bytes(), i.to_be_bytes()].concat(),
                    now.plus(5),
                    now,
                );
            }
            let inner = c.inner.lock().unwrap();
            assert!(inner.live.len() <= 1000);
            assert_eq!(inner.live.len(), inner.by_expiry.len());
        }
    }

    #[test]
    fn is_send_and_sync_and_works_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ReplayCache>();
        let c = std::sync::Arc::new(ReplayCache::new(100_000));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    (0..1000u32)
                        .filter(|i| c.check_and_insert(i.to_be_bytes(), T.plus(60), T).is_ok())
                        .count()
                })
            })
            .collect();
        let accepted: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(
            accepted, 1000,
            "each value is accepted exactly once overall"
        );
    }
}
