//! Password hashing: Argon2id (RFC 9106) in PHC string format.
//!
//! Hashing is CPU-bound and deliberately slow; callers run it off the async runtime on a
//! bounded pool. Unknown users are checked against a dummy hash with the same parameters
//! so that both paths cost the same.

use std::cell::RefCell;

use argon2::password_hash::{PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

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

/// Memory blocks kept by a hashing thread and reused by every hash it computes: Argon2
/// needs `m_cost` KiB per hash (19 MiB at OWASP parameters). Allocating that per login
/// let glibc keep freed blocks in each thread's arena, and resident memory grew under a
/// login flood; a hashing thread now owns one block
/// array for its life. Other threads (start-up, the CLI) and larger-than-usual requests
/// (an imported hash with a bigger `m`) use a temporary array, freed at once.
const KEEP_BLOCKS_MAX: usize = 256 * 1024;

thread_local! {
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
    static KEEP: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Makes this thread keep its Argon2 memory between hashes. For the threads of a
/// dedicated hashing pool.
pub fn keep_memory_on_this_thread() {
    KEEP.with(|k| k.set(true));
}

/// Runs `f` with `count` memory blocks (reused when this thread keeps them).
fn with_blocks<R>(count: usize, f: impl FnOnce(&mut [Block]) -> R) -> R {
    if !KEEP.with(std::cell::Cell::get) || count > KEEP_BLOCKS_MAX {
        return f(&mut vec![Block::default(); count]);
    }
    BLOCKS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut kept) => {
            if kept.len() < count {
                kept.resize(count, Block::default());
            }
            f(&mut kept[..count])
        }
        Err(_) => f(&mut vec![Block::default(); count]),
    })
}

/// Argon2 over `password` and `salt` into `out`, on this thread's reused memory.
fn argon2_into(
    a: &Argon2<'_>,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> bool {
    with_blocks(params.block_count(), |blocks| {
        a.hash_password_into_with_memory(password, salt, out, blocks)
            .is_ok()
    })
}

/// Hashes `password` with a fresh random salt.
pub fn hash_password(password: &str, params: HashParams) -> Result<String, PasswordError> {
    let salt_bytes: [u8; 16] = random_bytes();
    let salt =
        SaltString::encode_b64(&salt_bytes).map_err(|e| PasswordError::Params(e.to_string()))?;
    let a = argon2(params)?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    if !argon2_into(&a, a.params(), password.as_bytes(), &salt_bytes, &mut out) {
        return Err(PasswordError::Params("argon2 refused the input".into()));
    }
    let output = argon2::password_hash::Output::new(&out)
        .map_err(|e| PasswordError::Params(e.to_string()))?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: argon2::password_hash::ParamsString::try_from(a.params())
            .map_err(|e| PasswordError::Params(e.to_string()))?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

/// Checks an Argon2 PHC hash (any variant and version it names) on reused memory; the
/// tags are compared in constant time.
fn argon2_verify(parsed: &PasswordHash<'_>, password: &[u8]) -> bool {
    let (Ok(alg), Some(expected), Some(salt)) = (
        Algorithm::try_from(parsed.algorithm),
        parsed.hash.as_ref(),
        parsed.salt.as_ref(),
    ) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::V0x13,
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(parsed) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let mut out = [0u8; 64];
    let Some(out) = out.get_mut(..expected.len()) else {
        return false;
    };
    let a = Argon2::new(alg, version, params.clone());
    argon2_into(&a, &params, password, salt, out)
        && crate::keys::ring_ct_eq(out, expected.as_bytes())
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
    if !argon2_verify(&parsed, password.as_bytes()) {
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

    /// Our reused-memory hashing agrees with the argon2 crate's own hasher and verifier,
    /// for every variant and version a PHC string can name.
    #[test]
    fn reused_memory_agrees_with_the_argon2_crate() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let ours = hash_password("correct horse", FAST).unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(argon2(FAST)
            .unwrap()
            .verify_password(b"correct horse", &parsed)
            .is_ok());
        assert!(argon2(FAST)
            .unwrap()
            .verify_password(b"correct hors", &parsed)
            .is_err());
        let salt = SaltString::encode_b64(&[9u8; 16]).unwrap();
        for alg in [Algorithm::Argon2id, Algorithm::Argon2i, Algorithm::Argon2d] {
            for version in [Version::V0x13, Version::V0x10] {
                let p = Params::new(300, 2, 2, Some(24)).unwrap();
                let theirs = Argon2::new(alg, version, p)
                    .hash_password(b"pw", &salt)
                    .unwrap()
                    .to_string();
                let v = verify_password(&theirs, "pw", FAST);
                assert_eq!(v, Verdict::MatchNeedsRehash, "{theirs}");
                assert_eq!(verify_password(&theirs, "pW", FAST), Verdict::Mismatch);
            }
        }
        // Kept memory: bigger than the kept array, then smaller: both correct.
        keep_memory_on_this_thread();
        let big = HashParams {
            m_cost: 2048,
            ..FAST
        };
        let h = hash_password("x-password", big).unwrap();
        assert_eq!(verify_password(&h, "x-password", big), Verdict::Match);
        assert_eq!(
            verify_password(&ours, "correct horse", FAST),
            Verdict::Match
        );
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
