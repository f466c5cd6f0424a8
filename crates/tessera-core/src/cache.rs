//! A bounded cache of verified tokens, so a token seen before skips signature
//! verification and claim parsing (an EdDSA check then costs about what an HS256 one does).
//!
//! Only the *cryptographic* result is cached. On every hit the time claims, issuer,
//! audience and the denylist are checked again, so expiry and revocation always win over
//! the cache. A hit needs the whole token to match byte for byte, not just the key used to
//! find it. Entries are only ever inserted after full verification. The cache is cleared
//! whenever the key ring changes (a dropped key must stop verifying at once).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
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

type Shard = HashMap<[u8; KEY_LEN], Arc<Entry>, BuildHasherDefault<PrefixHasher>>;

/// The cache. Cheap to share (`&self` everywhere).
pub struct VerifyCache {
    shards: Vec<Mutex<Shard>>,
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

/// Eight bytes of the key from `at`, mixed (a multiply and a shift spread them over all
/// 64 bits, high and low, which the map and the shard index read).
fn mix(key: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    if let Some(b) = key.get(at..at + 8) {
        word.copy_from_slice(b);
    }
    let x = u64::from_le_bytes(word).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^ (x >> 29)
}

/// The keys need no keyed hash: a key is the start of a signature that verified before it
/// was inserted, so no one can choose keys that collide without the signing key (a
/// lookup with a chosen key only walks entries that are there). Their first bytes are
/// already uniform; hashing them with SipHash cost two hashes per request.
#[derive(Default)]
struct PrefixHasher(u64);

impl Hasher for PrefixHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0 ^= mix(bytes, 0);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

fn shard_of(key: &[u8; KEY_LEN]) -> usize {
    // Other bytes than the map's hash, so a shard's keys still spread over its map.
    (mix(key, 8) as usize) % SHARDS
}

impl VerifyCache {
    /// A cache of at most `capacity` tokens (0 disables it).
    pub fn new(capacity: usize) -> Self {
        VerifyCache {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(HashMap::default()))
                .collect(),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Signature-like keys (base64url text of random bytes) spread over every shard, and
    /// the mix keeps both the high bits (the map's control bytes) and the low bits (its
    /// buckets) varied.
    #[test]
    fn signature_keys_spread_over_shards_and_bits() {
        let mut per_shard = [0usize; SHARDS];
        let mut low = std::collections::HashSet::new();
        let mut high = std::collections::HashSet::new();
        for _ in 0..4096 {
            let sig = crate::b64::encode(crate::random_bytes::<32>());
            let key = key_of(&sig).unwrap();
            per_shard[shard_of(&key)] += 1;
            let mut h = PrefixHasher::default();
            h.write(&key);
            low.insert(h.finish() & 0xff);
            high.insert(h.finish() >> 57);
        }
        // 256 expected per shard; a shard under 160 or over 360 would mean a broken mix.
        assert!(
            per_shard.iter().all(|&n| (160..360).contains(&n)),
            "{per_shard:?}"
        );
        assert!(low.len() > 240, "{} low bytes", low.len());
        assert_eq!(high.len(), 128, "high 7 bits");
        // Keys differing only after the first eight bytes land in one shard by design of
        // the map's hash, but the shard index reads other bytes.
        let a = *b"AAAAAAAAbbbbbbbbCCCCCCCCdddddddd";
        let mut b = a;
        b[8] = b'z';
        let (mut ha, mut hb) = (PrefixHasher::default(), PrefixHasher::default());
        ha.write(&a);
        hb.write(&b);
        assert_eq!(ha.finish(), hb.finish());
        assert_ne!(mix(&a, 8), mix(&b, 8));
    }
}
