//! CSRF tokens: signed double-submit tokens bound to one session.
//!
//! A token is `base64url(nonce ‖ HMAC-SHA256(csrf_key, "tessera-csrf" ‖ sid ‖ nonce)[..16])`,
//! 43 characters. It is worthless for any other session, and a forged one fails the
//! constant-time MAC comparison. The CSRF key is derived from the master key for this
//! purpose only.

use ring::hmac;

use crate::ids::random_bytes;
use crate::keys::ring_ct_eq;
use crate::{b64, SessionId};

const TAG_LEN: usize = 16;
const NONCE_LEN: usize = 16;

/// The key that makes and checks CSRF tokens.
pub struct CsrfKey(hmac::Key);

impl std::fmt::Debug for CsrfKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfKey([redacted])")
    }
}

impl CsrfKey {
    /// A CSRF key from 32 secret bytes (derive them with `MasterKey::derive("csrf")`).
    pub fn new(secret: &[u8; 32]) -> Self {
        CsrfKey(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    fn tag(&self, sid: &SessionId, nonce: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(b"tessera-csrf\0");
        ctx.update(&sid.0);
        ctx.update(nonce);
        ctx.sign()
    }

    /// A new token for session `sid`.
    pub fn issue(&self, sid: &SessionId) -> String {
        let nonce: [u8; NONCE_LEN] = random_bytes();
        let tag = self.tag(sid, &nonce);
        let mut raw = [0u8; NONCE_LEN + TAG_LEN];
        raw[..NONCE_LEN].copy_from_slice(&nonce);
        raw[NONCE_LEN..].copy_from_slice(&tag.as_ref()[..TAG_LEN]);
        b64::encode(raw)
    }

    /// True if `token` was issued by this key for session `sid`.
    pub fn verify(&self, sid: &SessionId, token: &str) -> bool {
        let Some(raw) = b64::decode_array::<{ NONCE_LEN + TAG_LEN }>(token) else {
            return false;
        };
        let tag = self.tag(sid, &raw[..NONCE_LEN]);
        ring_ct_eq(&tag.as_ref()[..TAG_LEN], &raw[NONCE_LEN..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_to_session_and_key() {
        let k = CsrfKey::new(&[3; 32]);
        let (a, b) = (SessionId([1; 16]), SessionId([2; 16]));
        let t = k.issue(&a);
        assert_eq!(t.len(), 43);
        assert!(k.verify(&a, &t));
        assert!(!k.verify(&b, &t), "token of another session");
        assert!(!CsrfKey::new(&[4; 32]).verify(&a, &t), "another key");
        let mut forged = t.clone().into_bytes();
        forged[40] = if forged[40] == b'A' { b'B' } else { b'A' };
        assert!(!k.verify(&a, std::str::from_utf8(&forged).unwrap()));
        assert!(!k.verify(&a, ""));
        assert!(!k.verify(&a, &"A".repeat(5000)));
    }
}
