//! The in-memory revocation denylist: revoked session ids and per-user "not before" times.
//!
//! Checked on every request, so it is a hash lookup under a read lock. Entries carry the
//! time after which no token they could deny is still valid, and [`Denylist::purge`]
//! drops them then, which keeps the list bounded by the revocations of one token lifetime.
//! Memory: a session entry is a 16-byte id and a 4-byte time plus hash-table slack; a
//! million revoked sessions must fit in 64 MiB (`tests/denylist_memory.rs` holds that).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::RwLock;

use crate::{SessionId, UnixTime, UserId};

/// Ids are 128-bit CSPRNG output chosen by tessera and reach the lookup only after the
/// token signature verified, so the first 8 bytes are already a uniform hash and an
/// attacker cannot choose them to collide.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // [u8; 16] hashes as its 16 bytes; take the first 8 (after a length prefix, if any).
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(b);
        }
    }
    fn write_usize(&mut self, _: usize) {}
}

type IdMap<V> = HashMap<[u8; 16], V, BuildHasherDefault<IdHasher>>;

#[derive(Default)]
struct Inner {
    /// Revoked session → until when an access token of it could still be valid.
    sessions: IdMap<u32>,
    /// User → (not before, until when the entry matters).
    users: IdMap<(u32, u32)>,
}

/// Revoked sessions and per-user not-before times.
#[derive(Default)]
pub struct Denylist {
    inner: RwLock<Inner>,
}

/// Sizes, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DenylistStats {
    /// Revoked sessions held.
    pub sessions: usize,
    /// Users with a not-before time.
    pub users: usize,
}

fn secs32(t: UnixTime) -> u32 {
    u32::try_from(t.0).unwrap_or(u32::MAX)
}

impl Denylist {
    /// An empty denylist.
    pub fn new() -> Self {
        Self::default()
    }

    /// True if a token of session `sid` for user `sub` issued at `iat` is revoked.
    pub fn denies(&self, sid: &SessionId, sub: &UserId, iat: UnixTime) -> bool {
        let inner = match self.inner.read() {
            Ok(g) => g,
            // A poisoned lock means a writer panicked mid-update: fail closed.
            Err(_) => return true,
        };
        if inner.sessions.contains_key(&sid.0) {
            return true;
        }
        match inner.users.get(&sub.0) {
            Some(&(not_before, _)) => secs32(iat) < not_before,
            None => false,
        }
    }

    /// Revokes session `sid`; the entry may go after `until`.
    pub fn revoke_session(&self, sid: SessionId, until: UnixTime) {
        if let Ok(mut inner) = self.inner.write() {
            let e = inner.sessions.entry(sid.0).or_insert(0);
            *e = (*e).max(secs32(until));
        }
    }

    /// Denies every token of `sub` issued before `not_before`; the entry may go after `until`.
    pub fn revoke_user_before(&self, sub: UserId, not_before: UnixTime, until: UnixTime) {
        if let Ok(mut inner) = self.inner.write() {
            let e = inner.users.entry(sub.0).or_insert((0, 0));
            e.0 = e.0.max(secs32(not_before));
            e.1 = e.1.max(secs32(until));
        }
    }

    /// Drops entries that can no longer deny any valid token.
    pub fn purge(&self, now: UnixTime) {
        let now = secs32(now);
        if let Ok(mut inner) = self.inner.write() {
            inner.sessions.retain(|_, until| *until > now);
            inner.users.retain(|_, (_, until)| *until > now);
        }
    }

    /// Current sizes.
    pub fn stats(&self) -> DenylistStats {
        match self.inner.read() {
            Ok(i) => DenylistStats {
                sessions: i.sessions.len(),
                users: i.users.len(),
            },
            Err(_) => DenylistStats {
                sessions: 0,
                users: 0,
            },
        }
    }

    /// Reserves room for `n` more session entries (bulk loads).
    pub fn reserve(&self, n: usize) {
        if let Ok(mut inner) = self.inner.write() {
            inner.sessions.reserve(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_and_user_revocation_and_purge() {
        let d = Denylist::new();
        let (s1, s2) = (SessionId([1; 16]), SessionId([2; 16]));
        let u = UserId([9; 16]);
        assert!(!d.denies(&s1, &u, UnixTime(100)));
        d.revoke_session(s1, UnixTime(200));
        assert!(d.denies(&s1, &u, UnixTime(100)));
        assert!(!d.denies(&s2, &u, UnixTime(100)));
        d.revoke_user_before(u, UnixTime(150), UnixTime(300));
        assert!(d.denies(&s2, &u, UnixTime(149)));
        assert!(!d.denies(&s2, &u, UnixTime(150)));
        d.purge(UnixTime(250));
        assert!(
            !d.denies(&s1, &u, UnixTime(200)),
            "session entry purged after until"
        );
        assert!(
            d.denies(&s2, &u, UnixTime(149)),
            "user entry kept until 300"
        );
        d.purge(UnixTime(301));
        assert_eq!(
            d.stats(),
            DenylistStats {
                sessions: 0,
                users: 0
            }
        );
    }
}
