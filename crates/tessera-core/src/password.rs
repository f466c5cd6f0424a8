//! Password hashing: Argon2id (RFC 9106) in PHC string format.
//!
//! Hashing is CPU-bound and deliberately slow; callers run it off the async runtime on a
//! bounded pool. Unknown users are checked against a dummy hash with the same parameters
//! so that both paths cost the same.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::ids::random_bytes;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    /// Memory in KiB (OWASP: 19456 = 19 MiB).
    pub m_cost: u32,
    /// Iterations (OWASP: 2).
    pub t_cost: u32,
    /// Parallelism (OWASP: 1).
    pub p_cost: u32,
}

impl Default for HashParams {
    fn default() -> Self {
        HashParams {
            m_cost: 19456,
            t_cost: 2,
            p_cost: 1,
        }
    }
}

/// Why a password could not be hashed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// The parameters are outside what Argon2 accepts.
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
}

/// The outcome of checking a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Wrong password (or malformed stored hash, or the dummy path).
    Mismatch,
    /// Right password, hash is current.
    Match,
    /// Right password, but the stored hash uses other parameters or another algorithm:
    /// store a fresh hash.
    MatchNeedsRehash,
}

fn argon2(params: HashParams) -> Result<Argon2<'static>, PasswordError> {
    let p = Params::new(params.m_cost, params.t_cost, params.p_cost, None)
        .map_err(|e| PasswordError::Params(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, p))
}

/// Hashes `password` with a fresh random salt.
pub fn hash_password(password: &str, params: HashParams) -> Result<String, PasswordError> {
    let salt_bytes: [u8; 16] = random_bytes();
    let salt =
        SaltString::encode_b64(&salt_bytes).map_err(|e| PasswordError::Params(e.to_string()))?;
    argon2(params)?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Params(e.to_string()))
}

/// Checks `password` against a stored PHC hash (argon2id/argon2i/argon2d or bcrypt).
pub fn verify_password(stored: &str, password: &str, current: HashParams) -> Verdict {
    if stored.starts_with("$2") {
        return match bcrypt_verify(stored, password) {
            true => Verdict::MatchNeedsRehash,
            false => Verdict::Mismatch,
        };
    }
    let Ok(parsed) = PasswordHash::new(stored) else {
        return Verdict::Mismatch;
    };
    let Ok(a) = argon2(current) else {
        return Verdict::Mismatch;
    };
    if a.verify_password(password.as_bytes(), &parsed).is_err() {
        return Verdict::Mismatch;
    }
    let same_params = parsed.algorithm.as_str() == "argon2id"
        && Params::try_from(&parsed).is_ok_and(|p| {
            p.m_cost() == current.m_cost
                && p.t_cost() == current.t_cost
                && p.p_cost() == current.p_cost
        });
    if same_params {
        Verdict::Match
    } else {
        Verdict::MatchNeedsRehash
    }
}

fn bcrypt_verify(stored: &str, password: &str) -> bool {
    bcrypt::verify(password, stored).unwrap_or(false)
}

/// True if `stored` is a hash tessera can check (argon2 PHC or bcrypt).
pub fn is_supported_hash(stored: &str) -> bool {
    if stored.starts_with("$2") {
        return stored.parse::<bcrypt::HashParts>().is_ok();
    }
    PasswordHash::new(stored).is_ok_and(|h| h.algorithm.as_str().starts_with("argon2"))
}

/// A hash of a random password with `params`, for the unknown-user path.
pub fn dummy_hash(params: HashParams) -> Result<String, PasswordError> {
    let pw = crate::b64::encode(random_bytes::<16>());
    hash_password(&pw, params)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: HashParams = HashParams {
        m_cost: 256,
        t_cost: 1,
        p_cost: 1,
    };

    #[test]
    fn hash_and_verify() {
        let h = hash_password("correct horse", FAST).unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert_eq!(verify_password(&h, "correct horse", FAST), Verdict::Match);
        assert_eq!(verify_password(&h, "wrong", FAST), Verdict::Mismatch);
        let stronger = HashParams { t_cost: 2, ..FAST };
        assert_eq!(
            verify_password(&h, "correct horse", stronger),
            Verdict::MatchNeedsRehash
        );
        assert_eq!(verify_password("garbage", "x", FAST), Verdict::Mismatch);
    }

    #[test]
    fn bcrypt_hashes_verify_and_ask_for_rehash() {
        let h = bcrypt::hash("hunter2hunter2", 4).unwrap();
        assert!(is_supported_hash(&h));
        assert_eq!(
            verify_password(&h, "hunter2hunter2", FAST),
            Verdict::MatchNeedsRehash
        );
        assert_eq!(verify_password(&h, "nope", FAST), Verdict::Mismatch);
    }
}
