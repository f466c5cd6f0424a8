//! Device tokens: proof that a login attempt comes from a device that has logged in as
//! this user before (OWASP, "Slow Down Online Guessing Attacks with Device Cookies").
//!
//! A token is `base64url(nonce ‖ issued_at ‖ HMAC-SHA256(device_key, "tessera-device" ‖
//! user ‖ nonce ‖ issued_at)[..16])`, 54 characters: the nonce is the device's id, the
//! time bounds its life, and the MAC binds it to one username (case-folded) so that a
//! token earned as one user proves nothing for another. The key is derived from the
//! master key for this purpose only, so every node of a cluster checks every node's
//! tokens.
//!
//! Browsers keep it in an HttpOnly cookie; mobile and API clients get it in the token
//! response and send it back with the next password grant.

use ring::hmac;

use crate::ids::random_bytes;
use crate::keys::ring_ct_eq;
use crate::{b64, UnixTime};

const NONCE_LEN: usize = 16;
const TIME_LEN: usize = 8;
const TAG_LEN: usize = 16;
const RAW_LEN: usize = NONCE_LEN + TIME_LEN + TAG_LEN;

/// The length of a device token's text.
pub const DEVICE_TOKEN_LEN: usize = 54;

/// A device's id: the nonce of its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceId(pub [u8; NONCE_LEN]);

/// The key that issues and checks device tokens.
pub struct DeviceKey(hmac::Key);

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceKey([redacted])")
    }
}

impl DeviceKey {
    /// A device key from 32 secret bytes (derive them with `MasterKey::derive`).
    pub fn new(secret: &[u8; 32]) -> Self {
        DeviceKey(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    fn tag(&self, user: &str, nonce: &[u8], issued_at: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(b"tessera-device\0");
        ctx.update(user.to_lowercase().as_bytes());
        ctx.update(b"\0");
        ctx.update(nonce);
        ctx.update(issued_at);
        ctx.sign()
    }

    /// A token for `user` on a new device, or for the same device again (`device`): a
    /// device keeps its id across logins, so its failure budget follows it.
    pub fn issue(&self, user: &str, device: Option<DeviceId>, now: UnixTime) -> String {
        let nonce = device.map_or_else(random_bytes::<NONCE_LEN>, |d| d.0);
        let issued_at = now.0.to_be_bytes();
        let tag = self.tag(user, &nonce, &issued_at);
        let mut raw = [0u8; RAW_LEN];
        raw[..NONCE_LEN].copy_from_slice(&nonce);
        raw[NONCE_LEN..NONCE_LEN + TIME_LEN].copy_from_slice(&issued_at);
        raw[NONCE_LEN + TIME_LEN..].copy_from_slice(&tag.as_ref()[..TAG_LEN]);
        b64::encode(raw)
    }

    /// The device `token` names, if this key issued it for `user` within `ttl` seconds
    /// before `now` (and not in the future).
    pub fn verify(&self, user: &str, token: &str, now: UnixTime, ttl: u64) -> Option<DeviceId> {
        if token.len() != DEVICE_TOKEN_LEN {
            return None;
        }
        let raw = b64::decode_array::<RAW_LEN>(token)?;
        let (nonce, rest) = raw.split_at(NONCE_LEN);
        let (issued_at, tag) = rest.split_at(TIME_LEN);
        let expected = self.tag(user, nonce, issued_at);
        if !ring_ct_eq(&expected.as_ref()[..TAG_LEN], tag) {
            return None;
        }
        let mut t = [0u8; TIME_LEN];
        t.copy_from_slice(issued_at);
        let issued = u64::from_be_bytes(t);
        if issued > now.0.saturating_add(60) || now.0.saturating_sub(issued) > ttl {
            return None;
        }
        let mut id = [0u8; NONCE_LEN];
        id.copy_from_slice(nonce);
        Some(DeviceId(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_to_user_key_and_time() {
        let k = DeviceKey::new(&[5; 32]);
        let now = UnixTime(1_000_000);
        let t = k.issue("Alice", None, now);
        assert_eq!(t.len(), DEVICE_TOKEN_LEN);
        let id = k
            .verify("alice", &t, now, 100)
            .expect("same user, case-folded");
        assert_eq!(k.verify("ALICE", &t, now.plus(100), 100), Some(id));
        assert!(k.verify("bob", &t, now, 100).is_none(), "another user");
        assert!(
            k.verify("alice", &t, now.plus(101), 100).is_none(),
            "expired"
        );
        assert!(
            k.verify("alice", &t, UnixTime(now.0 - 61), 100).is_none(),
            "from the future"
        );
        assert!(
            DeviceKey::new(&[6; 32])
                .verify("alice", &t, now, 100)
                .is_none(),
            "another key"
        );
        let again = k.issue("alice", Some(id), now.plus(50));
        assert_ne!(again, t);
        assert_eq!(k.verify("alice", &again, now.plus(50), 100), Some(id));
        for bad in ["", "A", &"A".repeat(54), &"A".repeat(5000)] {
            assert!(k.verify("alice", bad, now, 100).is_none(), "{bad:?}");
        }
        let mut forged = t.into_bytes();
        forged[50] = if forged[50] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap_or_default();
        assert!(k.verify("alice", &forged, now, 100).is_none());
    }
}
