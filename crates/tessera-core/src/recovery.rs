//! Recovery codes: single-use second factors for a user who lost their authenticator.
//!
//! A set is [`CODE_COUNT`] codes like `7kq2-m9xa-4t`: 10 symbols of lowercase Crockford
//! base32 (no `i`, `l`, `o`, `u`), 5 random bits each, so 50 bits per code. They are shown
//! once and stored only as keyed hashes: HMAC-SHA256 under a key derived from the master
//! key for this purpose (`MasterKey::derive("recovery-codes")`), over the user id and the
//! normalised code. A fast keyed hash is enough: the codes are high-entropy, so there is
//! no dictionary to run, and without the key a stolen table cannot be checked offline.
//!
//! What the user types is normalised first: case, spaces and dashes are ignored, and the
//! letters Crockford maps to digits (`o` → `0`, `i`/`l` → `1`) are read as those digits.
//! Comparison with stored hashes is constant-time.

use std::fmt;

use ring::hmac;
use zeroize::Zeroizing;

use crate::ids::random_bytes;
use crate::keys::ring_ct_eq;

/// Codes in one set.
pub const CODE_COUNT: usize = 10;
/// Symbols of one code (without the dashes).
pub const CODE_SYMBOLS: usize = 10;
/// Random bits of one code.
pub const CODE_BITS: usize = CODE_SYMBOLS * 5;

/// Crockford's base32 alphabet, lowercase.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A code that is not a recovery code at all (wrong length or symbols).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a recovery code")]
pub struct MalformedCode;

/// One recovery code in its display form (`xxxx-xxxx-xx`). Zeroized on drop; `Debug`
/// shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCode(Zeroizing<String>);

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCode([redacted])")
    }
}

impl RecoveryCode {
    /// The display form, to show the user once. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn random() -> Self {
        // 7 bytes = 56 bits; the first 50 pick 10 symbols from 32 (a power of two, so
        // every symbol is equally likely).
        let mut raw: Zeroizing<[u8; 8]> = Zeroizing::new([0; 8]);
        raw[..7].copy_from_slice(&Zeroizing::new(random_bytes::<7>())[..]);
        let mut bits = Zeroizing::new(u64::from_be_bytes(*raw));
        let mut out = Zeroizing::new(String::with_capacity(CODE_SYMBOLS + 2));
        for i in 0..CODE_SYMBOLS {
            if i == 4 || i == 8 {
                out.push('-');
            }
            let idx = (*bits >> 59) as usize;
            *bits <<= 5;
            out.push(char::from(ALPHABET[idx]));
        }
        RecoveryCode(out)
    }
}

/// A new set of [`CODE_COUNT`] distinct codes.
pub fn generate_codes() -> Vec<RecoveryCode> {
    let mut out: Vec<RecoveryCode> = Vec::with_capacity(CODE_COUNT);
    while out.len() < CODE_COUNT {
        let c = RecoveryCode::random();
        // A repeat has probability ~45 / 2^50; drawing again keeps the set's size honest.
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// The canonical form of what a user typed: [`CODE_SYMBOLS`] alphabet symbols, with case,
/// spaces and dashes ignored and `o`, `i`, `l` read as `0`, `1`, `1`.
pub fn normalize(input: &str) -> Result<Zeroizing<[u8; CODE_SYMBOLS]>, MalformedCode> {
    let mut out = Zeroizing::new([0u8; CODE_SYMBOLS]);
    let mut n = 0;
    for b in input.bytes() {
        let b = match b.to_ascii_lowercase() {
            b' ' | b'-' | b'\t' => continue,
            b'o' => b'0',
            b'i' | b'l' => b'1',
            b if ALPHABET.contains(&b) => b,
            _ => return Err(MalformedCode),
        };
        if n == CODE_SYMBOLS {
            return Err(MalformedCode);
        }
        out[n] = b;
        n += 1;
    }
    if n != CODE_SYMBOLS {
        return Err(MalformedCode);
    }
    Ok(out)
}

/// The key recovery codes are hashed under.
pub struct RecoveryKey(hmac::Key);

impl fmt::Debug for RecoveryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryKey([redacted])")
    }
}

impl RecoveryKey {
    /// The master-key derivation label for this key.
    pub const PURPOSE: &'static str = "recovery-codes";

    /// A key from 32 secret bytes (derive them with
    /// `MasterKey::derive(RecoveryKey::PURPOSE)`).
    pub fn new(secret: &[u8; 32]) -> Self {
        RecoveryKey(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// The stored form of `code` for user `user` (the user id): the HMAC of the
    /// normalised code, bound to the user so a row moved to another user is worthless.
    pub fn hash(&self, user: &str, code: &str) -> Result<[u8; 32], MalformedCode> {
        let canonical = normalize(code)?;
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(b"tessera-recovery\0");
        ctx.update(user.as_bytes());
        ctx.update(b"\0");
        ctx.update(&canonical[..]);
        let tag = ctx.sign();
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    /// The stored forms of a whole set, in its order.
    pub fn hash_all(&self, user: &str, codes: &[RecoveryCode]) -> Vec<[u8; 32]> {
        codes
            .iter()
            // A generated code is always well-formed; a failure would only drop it.
            .filter_map(|c| self.hash(user, c.expose()).ok())
            .collect()
    }

    /// True if `code` is the code `stored` was made from (for this user). Constant-time.
    pub fn verify(&self, user: &str, code: &str, stored: &[u8; 32]) -> bool {
        match self.hash(user, code) {
            Ok(h) => ring_ct_eq(&h, stored),
            Err(_) => false,
        }
    }

    /// Which of the user's unused `stored` hashes `code` matches, comparing with every
    /// one in constant time (no early exit), or `None`. `Err` if `code` is not a
    /// recovery code at all.
    pub fn find(
        &self,
        user: &str,
        code: &str,
        stored: &[[u8; 32]],
    ) -> Result<Option<usize>, MalformedCode> {
        let h = self.hash(user, code)?;
        let mut found = None;
        for (i, s) in stored.iter().enumerate() {
            if ring_ct_eq(&h, s) && found.is_none() {
                found = Some(i);
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::collections::HashSet;

    use super::*;
    use crate::MasterKey;

    fn key() -> RecoveryKey {
        RecoveryKey::new(&MasterKey::from_bytes([9; 32]).derive(RecoveryKey::PURPOSE))
    }

    #[test]
    fn a_set_is_ten_distinct_well_formed_codes() {
        let codes = generate_codes();
        assert_eq!(codes.len(), CODE_COUNT);
        let distinct: HashSet<&str> = codes.iter().map(|c| c.expose()).collect();
        assert_eq!(distinct.len(), CODE_COUNT);
        for c in &codes {
            let s = c.expose();
            assert_eq!(s.len(), 12, "{s}");
            let parts: Vec<&str> = s.split('-').collect();
            assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [4, 4, 2]);
            for b in s.bytes().filter(|&b| b != b'-') {
                assert!(ALPHABET.contains(&b), "{s}");
                assert!(!b"ilou".contains(&b), "{s}");
            }
            assert_eq!(&normalize(s).unwrap()[..], s.replace('-', "").as_bytes());
        }
        const { assert!(CODE_BITS >= 50) };
    }

    #[test]
    fn symbols_are_uniform_enough() {
        // 200 sets × 10 codes × 10 symbols = 20 000 draws over 32 symbols: 625 expected
        // each. A stuck or biased bit would move some symbol far off (bound: ±25 %).
        let mut counts = [0u32; 32];
        for _ in 0..200 {
            for c in generate_codes() {
                for b in c.expose().bytes().filter(|&b| b != b'-') {
                    let i = ALPHABET.iter().position(|&a| a == b).unwrap();
                    counts[i] += 1;
                }
            }
        }
        for (i, &n) in counts.iter().enumerate() {
            assert!(
                (469..=781).contains(&n),
                "symbol {} seen {n} times",
                ALPHABET[i] as char
            );
        }
    }

    #[test]
    fn normalisation_ignores_case_dashes_spaces_and_maps_lookalikes() {
        let k = key();
        let stored = k.hash("user-1", "7kq2-m9xa-41").unwrap();
        for typed in [
            "7kq2-m9xa-41",
            "7KQ2-M9XA-41",
            "7kq2m9xa41",
            " 7kq2 m9xa 41 ",
            "7kq2--m9xa-4-1",
            "7kq2-m9xa-4l",
            "7kq2-m9xa-4I",
            "\t7kq2-m9xa-41",
        ] {
            assert!(k.verify("user-1", typed, &stored), "{typed:?}");
        }
        // `o` is read as zero.
        assert_eq!(
            normalize("0000-0000-00").unwrap(),
            normalize("oOoo-0o0O-o0").unwrap()
        );
        for bad in [
            "",
            "7kq2-m9xa-4",
            "7kq2-m9xa-411",
            "7kq2-m9xa-4u",
            "7kq2_m9xa_41",
            "7kq2-m9xa-4!",
            "7kq2-m9xá-41",
            "７kq2-m9xa-41",
        ] {
            assert_eq!(normalize(bad).unwrap_err(), MalformedCode, "{bad:?}");
            assert!(!k.verify("user-1", bad, &stored), "{bad:?}");
        }
        assert!(!k.verify("user-1", "7kq2-m9xa-42", &stored));
    }

    #[test]
    fn hashes_are_keyed_and_bound_to_the_user() {
        let k = key();
        let codes = generate_codes();
        let hashes = k.hash_all("u1", &codes);
        assert_eq!(hashes.len(), CODE_COUNT);
        let c = codes[3].expose();
        assert_eq!(k.find("u1", c, &hashes), Ok(Some(3)));
        assert_eq!(k.find("u1", &c.to_uppercase(), &hashes), Ok(Some(3)));
        assert_eq!(k.find("u2", c, &hashes), Ok(None), "another user's code");
        let other = RecoveryKey::new(&MasterKey::from_bytes([8; 32]).derive(RecoveryKey::PURPOSE));
        assert_eq!(other.find("u1", c, &hashes), Ok(None), "another key");
        // The recovery key is not the CSRF key or any other derived key.
        let mk = MasterKey::from_bytes([9; 32]);
        assert_ne!(mk.derive(RecoveryKey::PURPOSE), mk.derive("csrf"));
        assert_eq!(k.find("u1", "not a code", &hashes), Err(MalformedCode));
        assert_eq!(k.find("u1", "0000-0000-00", &[]), Ok(None));
        // The hash is not the code: no byte string of the code appears in it.
        assert_ne!(&hashes[3][..10], &normalize(c).unwrap()[..]);
    }

    #[test]
    fn debug_shows_no_secret() {
        let codes = generate_codes();
        let d = format!("{codes:?} {:?}", key());
        for c in &codes {
            assert!(!d.contains(c.expose()), "{d}");
        }
        assert!(d.contains("redacted"));
    }
}
