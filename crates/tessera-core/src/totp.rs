//! Time-based one-time passwords (RFC 6238) as every authenticator app computes them:
//! HMAC-SHA-1, 6 digits, 30-second steps, counted from the Unix epoch.
//!
//! A [`TotpSecret`] is 20 random bytes (160 bits, the length RFC 4226 §4 recommends). It is
//! shown to the user once, base32-encoded inside an `otpauth://` URI (the Key Uri Format
//! authenticator apps scan), and stored sealed under the master key by the caller. It is
//! wiped from memory when dropped and never printed by `Debug`.
//!
//! [`TotpSecret::verify`] accepts the code of the current step or of one step either side
//! (RFC 6238 §5.2's recommended network delay), compares in constant time, and refuses a
//! step at or before the last one the user spent: each code is accepted once (§5.2). The
//! caller stores the returned step atomically (the store's "use the step" compare-and-set),
//! so a code spent on one node is refused on every other.

use std::fmt;

use totp_rs::{Algorithm, TOTP};

use crate::clock::UnixTime;
use crate::ids::random_bytes;
use crate::keys::ring_ct_eq;

/// Digits of a code.
pub const DIGITS: usize = 6;
/// Seconds of one time step.
pub const STEP_SECS: u64 = 30;
/// Bytes of a generated secret.
pub const SECRET_LEN: usize = 20;
/// Steps accepted either side of the current one.
pub const SKEW_STEPS: u64 = 1;

/// Shortest secret accepted when one is read back (128 bits, RFC 4226 §4's minimum).
const MIN_SECRET_LEN: usize = 16;
/// Longest secret accepted when one is read back (a sanity bound on stored data).
const MAX_SECRET_LEN: usize = 64;

/// Why a code or a secret was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    /// Not exactly six ASCII digits (spaces, letters, too short or too long).
    #[error("a code is exactly 6 digits")]
    Malformed,
    /// Well-formed, but not the code of any accepted step.
    #[error("wrong code")]
    Invalid,
    /// The code of a step at or before the last one used: each code is accepted once.
    #[error("code already used")]
    Replayed,
    /// A secret of the wrong length or encoding.
    #[error("not a TOTP secret")]
    BadSecret,
}

/// The time step `now` falls in (`T` of RFC 6238 §4.2, with `T0 = 0`, `X = 30`).
pub fn step_at(now: UnixTime) -> u64 {
    now.0 / STEP_SECS
}

/// A user's TOTP secret. Zeroized on drop (`totp-rs`'s `zeroize` feature); `Debug` shows
/// nothing of it.
#[derive(Clone)]
pub struct TotpSecret {
    totp: TOTP,
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret([redacted])")
    }
}

impl TotpSecret {
    fn from_vec(secret: Vec<u8>) -> Self {
        TotpSecret {
            // The parameters are RFC 6238's defaults and the length is checked by every
            // constructor, so `new_unchecked` checks nothing that could fail.
            totp: TOTP::new_unchecked(
                Algorithm::SHA1,
                DIGITS,
                // Unused: `verify` walks the steps itself to learn which one matched.
                SKEW_STEPS as u8,
                STEP_SECS,
                secret,
                None,
                String::new(),
            ),
        }
    }

    /// A new secret of [`SECRET_LEN`] bytes from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut bytes: [u8; SECRET_LEN] = random_bytes();
        let secret = TotpSecret::from_vec(bytes.to_vec());
        zeroize::Zeroize::zeroize(&mut bytes);
        secret
    }

    /// A secret from its raw bytes (what [`TotpSecret::expose_bytes`] gave, after
    /// unsealing): 16 to 64 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TotpError> {
        if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&bytes.len()) {
            return Err(TotpError::BadSecret);
        }
        Ok(TotpSecret::from_vec(bytes.to_vec()))
    }

    /// A secret from its base32 form (RFC 4648; case, spaces and padding are ignored).
    pub fn from_base32(s: &str) -> Result<Self, TotpError> {
        let mut clean: String = s
            .chars()
            .filter(|c| !c.is_ascii_whitespace() && *c != '=')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let decoded = totp_rs::Secret::Encoded(clean.clone()).to_bytes();
        zeroize::Zeroize::zeroize(&mut clean);
        let mut bytes = decoded.map_err(|_| TotpError::BadSecret)?;
        let out = TotpSecret::from_bytes(&bytes);
        zeroize::Zeroize::zeroize(&mut bytes);
        out
    }

    /// The raw secret, for sealing under the master key. Never log it.
    pub fn expose_bytes(&self) -> &[u8] {
        &self.totp.secret
    }

    /// The base32 form (RFC 4648, no padding) a user types into an app that cannot scan.
    /// Shown once at setup; never log it.
    pub fn to_base32(&self) -> String {
        self.totp.get_secret_base32()
    }

    /// The Key Uri Format URI an authenticator app scans:
    /// `otpauth://totp/ISSUER:ACCOUNT?secret=…&issuer=ISSUER`, issuer and account
    /// percent-encoded (RFC 3986; a `:` inside either becomes `%3A`, so it cannot be
    /// taken for the separator). SHA-1, 6 digits and 30 s are the format's defaults and
    /// are therefore not spelled out. An empty issuer is left out.
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> String {
        let issuer = (!issuer.is_empty()).then(|| issuer.to_owned());
        let labelled = TOTP::new_unchecked(
            Algorithm::SHA1,
            DIGITS,
            SKEW_STEPS as u8,
            STEP_SECS,
            self.totp.secret.clone(),
            issuer,
            account.to_owned(),
        );
        labelled.get_url()
    }

    /// The code of time step `step` (what an authenticator shows during that step).
    pub fn code_for_step(&self, step: u64) -> String {
        self.totp.generate(step.saturating_mul(STEP_SECS))
    }

    /// The code an authenticator shows at `now`.
    pub fn code_at(&self, now: UnixTime) -> String {
        self.code_for_step(step_at(now))
    }

    /// Checks `code` at `now`: the current step first, then the previous and the next one.
    /// `last_used_step` is the last step this user spent (0 if none: step 0 is 1970).
    ///
    /// `Ok(step)`: the code is the one of `step`, later than `last_used_step`; the caller
    /// must now record `step` as used, atomically, and only then accept the login.
    /// Each comparison is constant-time; only a match ends the walk early (which step a
    /// right code belongs to is not a secret).
    pub fn verify(&self, code: &str, now: UnixTime, last_used_step: u64) -> Result<u64, TotpError> {
        if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TotpError::Malformed);
        }
        let current = step_at(now);
        let candidates = [
            Some(current),
            current.checked_sub(SKEW_STEPS),
            current.checked_add(SKEW_STEPS),
        ];
        let mut replayed = false;
        for step in candidates.into_iter().flatten() {
            let expected = self.code_for_step(step);
            if ring_ct_eq(expected.as_bytes(), code.as_bytes()) {
                if step > last_used_step {
                    return Ok(step);
                }
                replayed = true;
            }
        }
        Err(if replayed {
            TotpError::Replayed
        } else {
            TotpError::Invalid
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// RFC 6238 Appendix B, SHA-1 rows: (time, 8-digit TOTP). The seed is the ASCII
    /// string "12345678901234567890" (Appendix A's `seed`, 20 bytes).
    const RFC6238_SHA1: &[(u64, &str)] = &[
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ];
    const RFC_SEED: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc6238_appendix_b_sha1_eight_digits() {
        // The HOTP truncation (RFC 4226 §5.3) as totp-rs does it, configured for the
        // appendix's 8 digits.
        let eight = TOTP::new_unchecked(
            Algorithm::SHA1,
            8,
            1,
            30,
            RFC_SEED.to_vec(),
            None,
            String::new(),
        );
        for &(time, want) in RFC6238_SHA1 {
            assert_eq!(eight.generate(time), want, "T = {time}");
        }
    }

    #[test]
    fn rfc6238_appendix_b_sha1_six_digits_verify() {
        // 6 digits are the same truncated value mod 10^6: the last six of the eight.
        let secret = TotpSecret::from_bytes(RFC_SEED).unwrap();
        for &(time, eight) in RFC6238_SHA1 {
            let six = &eight[2..];
            assert_eq!(secret.code_at(UnixTime(time)), six, "T = {time}");
            assert_eq!(
                secret.verify(six, UnixTime(time), 0),
                Ok(time / 30),
                "T = {time}"
            );
        }
    }

    #[test]
    fn accepts_one_step_either_side_and_no_more() {
        let s = TotpSecret::generate();
        let now = UnixTime(1_800_000_015);
        let cur = step_at(now);
        assert_eq!(s.verify(&s.code_for_step(cur), now, 0), Ok(cur));
        assert_eq!(s.verify(&s.code_for_step(cur - 1), now, 0), Ok(cur - 1));
        assert_eq!(s.verify(&s.code_for_step(cur + 1), now, 0), Ok(cur + 1));
        for far in [cur - 2, cur + 2, cur - 100] {
            let code = s.code_for_step(far);
            // A 1-in-10^6 chance that a far code equals a near one; skip that case.
            if [cur - 1, cur, cur + 1]
                .iter()
                .any(|&n| s.code_for_step(n) == code)
            {
                continue;
            }
            assert_eq!(s.verify(&code, now, 0), Err(TotpError::Invalid), "{far}");
        }
    }

    #[test]
    fn each_step_is_accepted_once() {
        let s = TotpSecret::from_bytes(RFC_SEED).unwrap();
        let now = UnixTime(1_111_111_111);
        let cur = step_at(now);
        let code = s.code_at(now);
        let step = s.verify(&code, now, 0).unwrap();
        assert_eq!(step, cur);
        assert_eq!(s.verify(&code, now, step), Err(TotpError::Replayed));
        // The previous step's code after the current one was used: also refused.
        let prev = s.code_for_step(cur - 1);
        assert_eq!(s.verify(&prev, now, step), Err(TotpError::Replayed));
        // The next step's code is still good, once.
        let next = s.code_for_step(cur + 1);
        assert_eq!(s.verify(&next, now, step), Ok(cur + 1));
        assert_eq!(s.verify(&next, now, cur + 1), Err(TotpError::Replayed));
    }

    #[test]
    fn malformed_codes_are_a_distinct_error() {
        let s = TotpSecret::from_bytes(RFC_SEED).unwrap();
        let now = UnixTime(59);
        assert_eq!(s.verify("287082", now, 0), Ok(1));
        for bad in [
            "",
            "28708",
            "2870820",
            "94287082",
            " 287082",
            "287082 ",
            "287 082",
            "28708a",
            "ABCDEF",
            "２８７０８２",
            "287-82",
            "+28708",
            "-28708",
            "\u{0}87082",
        ] {
            assert_eq!(s.verify(bad, now, 0), Err(TotpError::Malformed), "{bad:?}");
        }
        // Well-formed but wrong.
        let wrong = if s.code_at(now) == "000000" {
            "000001"
        } else {
            "000000"
        };
        assert_eq!(s.verify(wrong, now, 0), Err(TotpError::Invalid));
    }

    #[test]
    fn near_the_epoch_there_is_no_previous_step() {
        let s = TotpSecret::from_bytes(RFC_SEED).unwrap();
        assert_eq!(
            s.verify(&s.code_for_step(0), UnixTime(0), 0),
            Err(TotpError::Replayed)
        );
        assert_eq!(s.verify(&s.code_for_step(1), UnixTime(0), 0), Ok(1));
    }

    #[test]
    fn generate_base32_and_bytes_roundtrip() {
        let a = TotpSecret::generate();
        let b = TotpSecret::generate();
        assert_eq!(a.expose_bytes().len(), SECRET_LEN);
        assert_ne!(a.expose_bytes(), b.expose_bytes());
        let b32 = a.to_base32();
        assert_eq!(b32.len(), 32);
        assert!(b32
            .bytes()
            .all(|c| c.is_ascii_uppercase() || (b'2'..=b'7').contains(&c)));
        let back = TotpSecret::from_base32(&b32.to_lowercase()).unwrap();
        assert_eq!(back.expose_bytes(), a.expose_bytes());
        let back = TotpSecret::from_bytes(a.expose_bytes()).unwrap();
        assert_eq!(
            back.code_at(UnixTime(1_800_000_000)),
            a.code_at(UnixTime(1_800_000_000))
        );
        // RFC 4648 §10's "foobar" vector, padded, spaced and in lower case: 6 bytes,
        // too short for a TOTP secret.
        assert_eq!(
            TotpSecret::from_base32("mzxw 6ytb oi======").unwrap_err(),
            TotpError::BadSecret
        );
        assert_eq!(
            TotpSecret::from_base32("not base32!").unwrap_err(),
            TotpError::BadSecret
        );
        assert_eq!(
            TotpSecret::from_bytes(&[0; 15]).unwrap_err(),
            TotpError::BadSecret
        );
        assert_eq!(
            TotpSecret::from_bytes(&[0; 65]).unwrap_err(),
            TotpError::BadSecret
        );
        assert!(TotpSecret::from_bytes(&[0; 16]).is_ok());
    }

    #[test]
    fn debug_shows_no_secret() {
        let s = TotpSecret::from_bytes(RFC_SEED).unwrap();
        let dbg = format!("{s:?}");
        assert_eq!(dbg, "TotpSecret([redacted])");
        assert!(!dbg.contains(&s.to_base32()));
    }

    #[test]
    fn otpauth_uri_is_the_key_uri_format_with_escaping() {
        let s = TotpSecret::from_bytes(RFC_SEED).unwrap();
        let b32 = s.to_base32();
        assert_eq!(b32, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(
            s.otpauth_uri("Tessera", "alice"),
            format!("otpauth://totp/Tessera:alice?secret={b32}&issuer=Tessera")
        );
        assert_eq!(
            s.otpauth_uri("Acme Corp", "bob@example.com"),
            format!("otpauth://totp/Acme%20Corp:bob%40example.com?secret={b32}&issuer=Acme%20Corp")
        );
        // A colon, an ampersand or a query in either part cannot change the URI's shape.
        let uri = s.otpauth_uri("a:b&c", "x:y?secret=AAAA&z#f");
        assert_eq!(
            uri,
            format!(
                "otpauth://totp/a%3Ab%26c:x%3Ay%3Fsecret%3DAAAA%26z%23f?secret={b32}&issuer=a%3Ab%26c"
            )
        );
        assert_eq!(uri.matches(':').count(), 2, "{uri}");
        assert_eq!(
            s.otpauth_uri("", "alice"),
            format!("otpauth://totp/alice?secret={b32}")
        );
    }
}
