//! Strict base64url (RFC 4648 §5) without padding, as JWS compact serialization needs.
//!
//! Padding, whitespace, the standard alphabet and non-canonical trailing bits are refused.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;

const STRICT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

/// Encodes `bytes` as unpadded base64url.
pub fn encode(bytes: impl AsRef<[u8]>) -> String {
    STRICT.encode(bytes)
}

/// Appends the unpadded base64url encoding of `bytes` to `out`.
pub fn encode_into(bytes: impl AsRef<[u8]>, out: &mut String) {
    STRICT.encode_string(bytes, out)
}

/// Decodes strict unpadded base64url; `None` on any deviation.
pub fn decode(s: &str) -> Option<Vec<u8>> {
    STRICT.decode(s).ok()
}

/// Decodes into `out` (cleared first); `false` on any deviation.
pub fn decode_into(s: &str, out: &mut Vec<u8>) -> bool {
    out.clear();
    STRICT.decode_vec(s, out).is_ok()
}

/// Decodes exactly `N` bytes; `None` if the input is malformed or of another length.
pub fn decode_array<const N: usize>(s: &str) -> Option<[u8; N]> {
    // ceil(N * 4 / 3) characters without padding.
    if s.len() != (N * 4).div_ceil(3) {
        return None;
    }
    let mut out = [0u8; N];
    match STRICT.decode_slice(s, &mut out) {
        Ok(n) if n == N => Some(out),
        _ => None,
    }
}

const fn alphabet_table() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            t[i] = 1;
        }
        i += 1;
    }
    t
}

static ALPHABET: [u8; 256] = alphabet_table();

/// True if every byte is in the base64url alphabet (`A-Z a-z 0-9 - _`).
///
/// Branch-free over the whole input (a table lookup and an AND per byte): this runs on
/// every request, before any cryptography.
pub fn is_b64url(s: &str) -> bool {
    s.bytes().fold(1u8, |ok, b| ok & ALPHABET[usize::from(b)]) == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_padding_whitespace_and_std_alphabet() {
        assert_eq!(decode("YQ").as_deref(), Some(&b"a"[..]));
        assert!(decode("YQ==").is_none());
        assert!(decode("Y Q").is_none());
        assert!(decode("a+/b").is_none());
        // Non-canonical trailing bits: "YR" decodes to 'a' with a stray bit set.
        assert!(decode("YR").is_none());
    }

    #[test]
    fn array_length_is_exact() {
        let e = encode([7u8; 16]);
        assert_eq!(decode_array::<16>(&e), Some([7u8; 16]));
        assert!(decode_array::<15>(&e).is_none());
        assert!(decode_array::<16>("short").is_none());
    }
}
