//! Strict base64url (RFC 4648 §5) without padding, as JWS compact serialization needs.
//!
//! Padding, whitespace, the standard alphabet and non-canonical trailing bits are refused.
//!
//! Decoding, on the verification hot path for every segment, is `base64-simd`'s (SIMD with
//! run-time CPU detection, the decoder the AWS SDK for Rust ships); encoding is the
//! `base64` crate's. A differential test holds the decoder to the `base64` crate's strict
//! engine, verdict for verdict and byte for byte.

use std::mem::MaybeUninit;

use base64_simd::Out;

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

/// Writes the unpadded base64url encoding of `bytes` into `out`, returning its length;
/// `None` if `out` is too short.
pub fn encode_slice(bytes: impl AsRef<[u8]>, out: &mut [u8]) -> Option<usize> {
    STRICT.encode_slice(bytes, out).ok()
}

/// Appends the unpadded base64url encoding of `bytes` to `out`.
pub fn encode_into(bytes: impl AsRef<[u8]>, out: &mut String) {
    STRICT.encode_string(bytes, out)
}

/// Decodes strict unpadded base64url; `None` on any deviation.
pub fn decode(s: &str) -> Option<Vec<u8>> {
    DECODER.decode_to_vec(s.as_bytes()).ok()
}

const DECODER: base64_simd::Base64 = base64_simd::URL_SAFE_NO_PAD;

/// Decodes into `out`, returning the decoded length `n`; `None` on any deviation or if
/// `out` is shorter than `n`. Bytes of `out` past `n` are untouched.
pub fn decode_slice(s: &str, out: &mut [u8]) -> Option<usize> {
    let n = DECODER.decoded_length(s.as_bytes()).ok()?;
    let dst = out.get_mut(..n)?;
    DECODER
        .decode(s.as_bytes(), Out::from_slice(dst))
        .ok()
        .map(|d| d.len())
}

/// Decodes into uninitialised memory (no zeroing of a buffer that is about to be
/// overwritten), returning the decoded bytes; `None` on any deviation or if `out` is
/// too short.
pub fn decode_uninit<'b>(s: &str, out: &'b mut [MaybeUninit<u8>]) -> Option<&'b [u8]> {
    let n = DECODER.decoded_length(s.as_bytes()).ok()?;
    let dst = out.get_mut(..n)?;
    DECODER
        .decode(s.as_bytes(), Out::from_uninit_slice(dst))
        .ok()
        .map(|d| &*d)
}

/// Decodes exactly `N` bytes; `None` if the input is malformed or of another length.
pub fn decode_array<const N: usize>(s: &str) -> Option<[u8; N]> {
    // ceil(N * 4 / 3) characters without padding.
    if s.len() != (N * 4).div_ceil(3) {
        return None;
    }
    let mut out = [0u8; N];
    match decode_slice(s, &mut out) {
        Some(n) if n == N => Some(out),
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
/// Branch-free over the whole input (a table lookup and an AND per byte, eight
/// independent lanes so the lookups overlap): this runs on every request, before any
/// cryptography.
pub fn is_b64url(s: &str) -> bool {
    let chunks = s.as_bytes().chunks_exact(8);
    let rest = chunks.remainder();
    let mut ok = 1u8;
    for c in chunks {
        ok &= (ALPHABET[usize::from(c[0])] & ALPHABET[usize::from(c[1])])
            & (ALPHABET[usize::from(c[2])] & ALPHABET[usize::from(c[3])])
            & ((ALPHABET[usize::from(c[4])] & ALPHABET[usize::from(c[5])])
                & (ALPHABET[usize::from(c[6])] & ALPHABET[usize::from(c[7])]));
    }
    rest.iter().fold(ok, |ok, &b| ok & ALPHABET[usize::from(b)]) == 1
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

    /// The SIMD decoder gives the `base64` crate's strict verdict and bytes on every
    /// input, through each entry point, at lengths that cover its vector loops and tails.
    #[test]
    fn fast_decoder_matches_strict_engine() {
        const CHARS: &[u8] = b"AQgw_-Zaz09+/=. \x00\xff";
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut buf = [0u8; 512];
        let mut uninit = [MaybeUninit::<u8>::uninit(); 512];
        let mut ok = 0;
        for round in 0..200_000u32 {
            let len = match round % 4 {
                0 => (round / 4 % 300) as usize,
                _ => (round % 40) as usize,
            };
            let mut bytes: Vec<u8> = if next() % 2 == 0 {
                // A valid encoding, then maybe one byte changed.
                let raw: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                encode(&raw).into_bytes()
            } else {
                (0..len)
                    .map(|_| CHARS[(next() as usize) % CHARS.len()])
                    .collect()
            };
            if !bytes.is_empty() && next() % 3 == 0 {
                let at = (next() as usize) % bytes.len();
                bytes[at] = CHARS[(next() as usize) % CHARS.len()];
            }
            let Ok(s) = std::str::from_utf8(&bytes) else {
                continue;
            };
            let reference = STRICT.decode(s).ok();
            let fast = decode_slice(s, &mut buf).map(|n| buf[..n].to_vec());
            assert_eq!(fast, reference, "verdicts differ on {s:?}");
            assert_eq!(decode(s), reference, "verdicts differ on {s:?}");
            let into = decode_uninit(s, &mut uninit).map(<[u8]>::to_vec);
            assert_eq!(into, reference, "verdicts differ on {s:?}");
            ok += usize::from(fast.is_some());
        }
        assert!(ok > 50_000, "only {ok} valid inputs exercised");
        // Too short an output buffer is refused, not truncated.
        assert_eq!(decode_slice("AAAA", &mut [0u8; 2]), None);
        assert_eq!(decode_uninit("AAAA", &mut [MaybeUninit::uninit(); 2]), None);
    }

    #[test]
    fn array_length_is_exact() {
        let e = encode([7u8; 16]);
        assert_eq!(decode_array::<16>(&e), Some([7u8; 16]));
        assert!(decode_array::<15>(&e).is_none());
        assert!(decode_array::<16>("short").is_none());
    }
}
