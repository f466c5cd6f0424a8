//! Secrets at rest: AES-256-GCM under the master key, and per-purpose subkeys (HKDF).

use std::fmt;

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, NONCE_LEN};
use ring::hkdf;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::ids::random_bytes;

/// The cluster's master key: 32 random bytes shared by every node. It encrypts signing
/// keys and client secrets at rest and derives the CSRF and refresh-token keys.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey([u8; 32]);

/// Why a sealed secret could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Too short, tampered with, sealed under another master key or for another label.
    #[error("sealed secret is corrupt or was sealed under another master key")]
    Corrupt,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

impl MasterKey {
    /// A master key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        MasterKey(bytes)
    }

    /// A new random master key.
    pub fn generate() -> Self {
        MasterKey(random_bytes())
    }

    /// Parses the base64 form (standard or url alphabet, padding optional); exactly 32 bytes.
    pub fn parse(s: &str) -> Option<Self> {
        use base64::Engine;
        let s = s.trim();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(s)
            .ok()
            .or_else(|| crate::b64::decode(s.trim_end_matches('=')))?;
        let arr: [u8; 32] = bytes.try_into().ok()?;
        Some(MasterKey(arr))
    }

    /// The base64 (standard alphabet) form, for writing the key file.
    ///
    /// This exposes the secret: only the key-file writer calls it.
    pub fn export_base64(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }

    fn aead_key(&self) -> LessSafeKey {
        // AES-256 accepts any 32-byte key, so this cannot fail.
        match UnboundKey::new(&aead::AES_256_GCM, &self.0) {
            Ok(k) => LessSafeKey::new(k),
            Err(_) => unreachable_key(),
        }
    }

    /// Encrypts `secret` with a random nonce; `label` (e.g. the key id) is bound as AAD so a
    /// sealed blob cannot be moved to another record.
    pub fn seal(&self, label: &str, secret: &[u8]) -> Vec<u8> {
        let nonce_bytes: [u8; NONCE_LEN] = random_bytes();
        let mut out = Vec::with_capacity(NONCE_LEN + secret.len() + 16);
        out.extend_from_slice(&nonce_bytes);
        let mut buf = secret.to_vec();
        let nonce = Nonce::assume_unique_for_key(nonce_bytes);
        // Sealing only fails for inputs larger than GCM's limit (64 GiB).
        if self
            .aead_key()
            .seal_in_place_append_tag(nonce, Aad::from(label.as_bytes()), &mut buf)
            .is_err()
        {
            buf.zeroize();
            return Vec::new();
        }
        out.extend_from_slice(&buf);
        buf.zeroize();
        out
    }

    /// Decrypts what [`MasterKey::seal`] made for the same `label`.
    pub fn open(&self, label: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE_LEN + 16 {
            return Err(SealError::Corrupt);
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Corrupt)?;
        let mut buf = ct.to_vec();
        let plain = self
            .aead_key()
            .open_in_place(nonce, Aad::from(label.as_bytes()), &mut buf)
            .map_err(|_| SealError::Corrupt)?;
        let out = plain.to_vec();
        buf.zeroize();
        Ok(out)
    }

    /// A 32-byte subkey for one purpose (HKDF-SHA256, RFC 5869). One key per purpose:
    /// CSRF tokens, refresh-token derivation and so on never share key material.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        struct Len32;
        impl hkdf::KeyType for Len32 {
            fn len(&self) -> usize {
                32
            }
        }
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"tessera/v1");
        let prk = salt.extract(&self.0);
        let info = [purpose.as_bytes()];
        let mut out = [0u8; 32];
        // expand/fill only fail for lengths over 255 * 32 bytes.
        if let Ok(okm) = prk.expand(&info, Len32) {
            let _ = okm.fill(&mut out);
        }
        out
    }
}

#[cold]
fn unreachable_key() -> LessSafeKey {
    // AES-256-GCM takes 32-byte keys; MasterKey holds exactly 32 bytes.
    #[allow(clippy::panic)]
    {
        panic!("AES-256-GCM rejected a 32-byte key")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_roundtrip_and_label_binding() {
        let mk = MasterKey::generate();
        let sealed = mk.seal("kid-1", b"secret");
        assert_eq!(mk.open("kid-1", &sealed).unwrap(), b"secret");
        assert_eq!(mk.open("kid-2", &sealed), Err(SealError::Corrupt));
        let other = MasterKey::generate();
        assert_eq!(other.open("kid-1", &sealed), Err(SealError::Corrupt));
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(mk.open("kid-1", &tampered), Err(SealError::Corrupt));
        assert_eq!(mk.open("kid-1", &sealed[..10]), Err(SealError::Corrupt));
    }

    #[test]
    fn derive_separates_purposes() {
        let mk = MasterKey::from_bytes([1; 32]);
        assert_ne!(mk.derive("csrf"), mk.derive("refresh"));
        assert_eq!(
            mk.derive("csrf"),
            MasterKey::from_bytes([1; 32]).derive("csrf")
        );
    }

    #[test]
    fn parse_accepts_base64_and_rejects_wrong_length() {
        let mk = MasterKey::generate();
        assert!(MasterKey::parse(&mk.export_base64()).is_some());
        assert!(MasterKey::parse("c2hvcnQ=").is_none());
        assert!(format!("{mk:?}").contains("redacted"));
    }
}
