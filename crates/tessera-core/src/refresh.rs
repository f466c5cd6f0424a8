//! Refresh tokens: opaque 256-bit random strings, stored only as SHA-256 hashes.
//!
//! Rotation derives the successor deterministically, `successor = HMAC(refresh_key, old)`,
//! so that during the grace period the *same* old token yields the *same* successor on
//! every node without the plaintext successor ever being stored.

use ring::{digest, hmac};

use crate::b64;
use crate::ids::random_bytes;

/// Length of a refresh token's text form.
pub const TOKEN_LEN: usize = 43;

/// A refresh token's storage form.
pub type TokenHash = [u8; 32];

/// The key successors are derived with (derive it with `MasterKey::derive("refresh")`).
pub struct RefreshKey(hmac::Key);

impl std::fmt::Debug for RefreshKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshKey([redacted])")
    }
}

impl RefreshKey {
    /// A key from 32 secret bytes.
    pub fn new(secret: &[u8; 32]) -> Self {
        RefreshKey(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// The successor of `token` (its text form). Only meaningful for a well-formed token.
    pub fn successor(&self, token: &str) -> String {
        let tag = hmac::sign(&self.0, token.as_bytes());
        b64::encode(tag.as_ref())
    }
}

/// A new random refresh token.
pub fn generate() -> String {
    b64::encode(random_bytes::<32>())
}

/// True if `token` has the shape of a refresh token (43 base64url characters).
pub fn is_well_formed(token: &str) -> bool {
    token.len() == TOKEN_LEN && b64::decode_array::<32>(token).is_some()
}

/// The hash stored in place of the token.
pub fn hash(token: &str) -> TokenHash {
    let d = digest::digest(&digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successor_is_deterministic_and_keyed() {
        let k = RefreshKey::new(&[1; 32]);
        let t = generate();
        assert!(is_well_formed(&t));
        assert_eq!(k.successor(&t), k.successor(&t));
        assert!(is_well_formed(&k.successor(&t)));
        assert_ne!(k.successor(&t), RefreshKey::new(&[2; 32]).successor(&t));
        assert_ne!(hash(&t), hash(&k.successor(&t)));
        assert!(!is_well_formed("short"));
        assert!(!is_well_formed(&format!("{t}=")));
    }
}
