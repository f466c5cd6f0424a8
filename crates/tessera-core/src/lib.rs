//! Tessera's core: the access-token format, the key ring, CSRF tokens, refresh-token
//! derivation, the revocation denylist, the clock, and the second factors' codes (TOTP and
//! recovery codes).
//!
//! Purpose: everything tessera decides about a credential is a pure function of its
//! inputs here, so it can be tested with test vectors and a fake clock, benchmarked,
//! and fuzzed. Non-goals: I/O of any kind (no sockets, files, database or async runtime).
//!
//! The only way from bytes to a trusted token is [`KeyRing::verify`]: the algorithm comes
//! from the key ring entry named by `kid`, never from the token header.
//!
//! ```
//! use tessera_core::{Algorithm, AccessClaims, KeyRing, SigningKey, Denylist, Verifier, UnixTime};
//!
//! let key = SigningKey::generate(Algorithm::HS256, UnixTime(1_000)).unwrap();
//! let ring = KeyRing::new(vec![key], UnixTime(1_000));
//! let claims = AccessClaims::example(UnixTime(1_000));
//! let token = ring.sign(&claims).unwrap();
//! let verifier = Verifier::new("https://issuer.example", "https://app.example", 30);
//! let denylist = Denylist::new();
//! let verified = ring.verify(&token, &verifier, &denylist, UnixTime(1_010)).unwrap();
//! assert_eq!(verified.claims().username, "alice");
//! ```

pub mod b64;
mod cache;
mod claims_json;
mod clock;
pub mod csrf;
mod denylist;
pub mod device;
pub mod dpop;
mod error;
pub mod httpsig;
mod ids;
mod keys;
pub mod password;
pub mod password_policy;
pub mod recovery;
pub mod refresh;
pub mod replay;
mod seal;
mod token;
pub mod totp;

pub use cache::VerifyCache;
pub use clock::{Clock, ManualClock, SystemClock, UnixTime};
pub use compact_str::CompactString;
pub use denylist::{Denylist, DenylistStats};
pub use error::TokenError;
pub use ids::{random_bytes, SessionId, UserId};
pub use keys::{Algorithm, KeyError, KeyRing, KeyStatus, PublicJwk, SigningKey};
pub use seal::{MasterKey, SealError};
pub use token::{AccessClaims, Cnf, TokenParts, VerifiedToken, Verifier, MAX_TOKEN_LEN};
