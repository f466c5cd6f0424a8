//! A bounded cache of verified tokens, so a token seen before skips signature
//! verification and claim parsing (an EdDSA check then costs about what an HS256 one does).
//!
//! Only the *cryptographic* result is cached. On every hit the time claims, issuer,
//! audience and the denylist are checked again, so expiry and revocation always win over
//! the cache. A hit needs the whole token to match byte for byte, not just the key used to
//! find it. Entries are only ever inserted after full verification. The cache is cleared
//! whenever the key ring changes (a dropped key must stop verifying at once).

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use crate::token::TokenParts;
use crate::AccessClaims;

const SHARDS: usize = 16;
/// Bytes of the signature segment used as the lookup key.
const KEY_LEN: usize = 32;

struct Entry {
    header: Box<str>,
    payload: Box<str>,
    signature: Box<str>,
    claims: Arc<AccessClaims>,
    kid: Arc<str>,
}

/// The cache. Cheap to share (`&self` everywhere).
pub struct VerifyCache {
    shards: Vec<Mutex<HashMap<[u8; KEY_LEN], Arc<Entry>>>>,
    per_shard: usize,
}

impl std::fmt::Debug for VerifyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyCache")
            .field("capacity", &(self.per_shard * SHARDS))
            .finish()
    }
}

fn key_of(signature: &str) -> Option<[u8; KEY_LEN]> {
    let b = signature.as_bytes();
    if b.len() < KEY_LEN {
        return None;
    }
    let mut k = [0u8; KEY_LEN];
    k.copy_from_slice(&b[..KEY_LEN]);
    Some(k)
}

fn shard_of(key: &[u8; KEY_LEN]) -> usize {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() as usize) % SHARDS
}

impl VerifyCache {
    /// A cache of at most `capacity` tokens (0 disables it).
    pub fn new(capacity: usize) -> Self {
        VerifyCache {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS),
        }
    }

    /// The verified claims and key id of exactly this token, if cached.
    pub(crate) fn get(&self, parts: &TokenParts<'_>) -> Option<(Arc<AccessClaims>, Arc<str>)> {
        if self.per_shard == 0 {
            return None;
        }
        let key = key_of(parts.signature)?;
        let entry = {
            let shard = self.shards[shard_of(&key)].lock().ok()?;
            Arc::clone(shard.get(&key)?)
        };
        let same = *entry.signature == *parts.signature
            && *entry.payload == *parts.payload
            && *entry.header == *parts.header;
        same.then(|| (Arc::clone(&entry.claims), Arc::clone(&entry.kid)))
    }

    /// Remembers a token that has just been fully verified.
    pub(crate) fn insert(
        &self,
        parts: &TokenParts<'_>,
        claims: &Arc<AccessClaims>,
        kid: &Arc<str>,
    ) {
        if self.per_shard == 0 {
            return;
        }
        let Some(key) = key_of(parts.signature) else {
            return;
        };
        let Ok(mut shard) = self.shards[shard_of(&key)].lock() else {
            return;
        };
        if shard.len() >= self.per_shard && !shard.contains_key(&key) {
            // Bounded: drop an arbitrary entry (HashMap order is randomised per process).
            if let Some(victim) = shard.keys().next().copied() {
                shard.remove(&victim);
            }
        }
        shard.insert(
            key,
            Arc::new(Entry {
                header: parts.header.into(),
                payload: parts.payload.into(),
                signature: parts.signature.into(),
                claims: Arc::clone(claims),
                kid: Arc::clone(kid),
            }),
        );
    }

    /// Forgets everything (on key-ring change).
    pub fn clear(&self) {
        for s in &self.shards {
            if let Ok(mut s) = s.lock() {
                s.clear();
            }
        }
    }

    /// Number of cached tokens.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |s| s.len()))
            .sum()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
