//! Random identifiers: 128-bit, base64url-encoded (22 characters).

use std::fmt;

use ring::rand::{SecureRandom, SystemRandom};

/// `N` bytes from the operating system's CSPRNG.
///
/// # Panics
/// Never in practice: `getrandom` failing means the platform cannot do cryptography at
/// all, and tessera must not continue with weak randomness.
#[allow(clippy::expect_used)]
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .expect("the OS random number generator failed");
    out
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 16]);

        impl $name {
            /// A new random id.
            pub fn random() -> Self {
                $name(random_bytes())
            }
            /// Parses the 22-character base64url form.
            pub fn parse(s: &str) -> Option<Self> {
                crate::b64::decode_array::<16>(s).map($name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&crate::b64::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self)
            }
        }
    };
}

id_type!(
    /// A session id (`sid`): one login and every refresh that follows it (the "family").
    SessionId
);
id_type!(
    /// A stable user id (`sub`).
    UserId
);
