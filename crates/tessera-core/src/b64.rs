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

/// Decodes into `out`, returning the decoded length `n`; `None` on any deviation or if
/// `out` is shorter than `n`. Bytes of `out` past `n` may be overwritten.
///
/// The verification hot path's decoder: four characters become three bytes through four
/// shifted lookup tables and three ORs, with no branch per character; a character outside
/// the alphabet sets bit 24, checked once at the end. Same verdicts as the strict engine
/// above (a differential test holds it to that): unpadded, URL alphabet, canonical
/// trailing bits, no length ≡ 1 (mod 4).
pub fn decode_slice(s: &str, out: &mut [u8]) -> Option<usize> {
    let src = s.as_bytes();
    let full = src.len() / 4;
    let n = full * 3
        + match src.len() % 4 {
            0 => 0,
            2 => 1,
            3 => 2,
            _ => return None,
        };
    if out.len() < n {
        return None;
    }
    let (body, tail) = src.split_at(full * 4);
    let mut bad = 0u32;
    let mut stray = 0u32;
    let (mut i, mut o) = (0, 0);
    // Eight characters at a time, six bytes written as one eight-byte store (the two
    // extra bytes are overwritten next round); stores were the bottleneck of 3-byte writes.
    while let (Some(q), Some(dst)) = (body.get(i..i + 8), out.get_mut(o..o + 8)) {
        let a = quad(q[0], q[1], q[2], q[3]);
        let b = quad(q[4], q[5], q[6], q[7]);
        bad |= a | b;
        let v = (u64::from(a) << 40) | (u64::from(b & 0xFF_FFFF) << 16);
        dst.copy_from_slice(&v.to_be_bytes());
        i += 8;
        o += 6;
    }
    while let (Some(q), Some(dst)) = (body.get(i..i + 4), out.get_mut(o..o + 3)) {
        let w = quad(q[0], q[1], q[2], q[3]);
        bad |= w;
        dst.copy_from_slice(&w.to_be_bytes()[1..]);
        i += 4;
        o += 3;
    }
    let out_tail = out.get_mut(o..n)?;
    let w = match *tail {
        [] => 0,
        // Two characters carry one byte; the last character's low 4 bits must be zero.
        [a, b] => {
            let w = D0[usize::from(a)] | D1[usize::from(b)];
            bad |= w & INVALID;
            stray = w & 0xFFFF;
            w
        }
        // Three characters carry two bytes; the last character's low 2 bits must be zero.
        [a, b, c] => {
            let w = D0[usize::from(a)] | D1[usize::from(b)] | D2[usize::from(c)];
            bad |= w & INVALID;
            stray = w & 0xFF;
            w
        }
        _ => return None,
    };
    for (k, o) in out_tail.iter_mut().enumerate() {
        *o = (w >> (16 - 8 * k)) as u8;
    }
    // Bit 24 marks a character outside the alphabet; `stray` holds the tail's trailing
    // bits, which must be zero (canonical encoding).
    (bad & INVALID == 0 && stray == 0).then_some(n)
}

const INVALID: u32 = 1 << 24;

/// Four characters as 24 bits, bit 24 set if any is outside the alphabet.
#[inline(always)]
fn quad(a: u8, b: u8, c: u8, d: u8) -> u32 {
    D0[usize::from(a)] | D1[usize::from(b)] | D2[usize::from(c)] | D3[usize::from(d)]
}

const fn sextet(b: u8) -> Option<u32> {
    match b {
        b'A'..=b'Z' => Some((b - b'A') as u32),
        b'a'..=b'z' => Some((b - b'a') as u32 + 26),
        b'0'..=b'9' => Some((b - b'0') as u32 + 52),
        b'-' => Some(62),
        b'_' => Some(63),
        _ => None,
    }
}

const fn decode_table(shift: u32) -> [u32; 256] {
    let mut t = [INVALID; 256];
    let mut i = 0;
    while i < 256 {
        if let Some(v) = sextet(i as u8) {
            t[i] = v << shift;
        }
        i += 1;
    }
    t
}

static D0: [u32; 256] = decode_table(18);
static D1: [u32; 256] = decode_table(12);
static D2: [u32; 256] = decode_table(6);
static D3: [u32; 256] = decode_table(0);

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

    /// The hand-written decoder gives the strict engine's verdict and bytes on every input.
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
        let mut buf = [0u8; 64];
        let mut ok = 0;
        for round in 0..200_000u32 {
            let len = (round % 40) as usize;
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
            let fast = decode_slice(s, &mut buf).map(|n| buf[..n].to_vec());
            assert_eq!(fast, decode(s), "verdicts differ on {s:?}");
            ok += usize::from(fast.is_some());
        }
        assert!(ok > 50_000, "only {ok} valid inputs exercised");
        // Too short an output buffer is refused, not truncated.
        assert_eq!(decode_slice("AAAA", &mut [0u8; 2]), None);
    }

    #[test]
    fn array_length_is_exact() {
        let e = encode([7u8; 16]);
        assert_eq!(decode_array::<16>(&e), Some([7u8; 16]));
        assert!(decode_array::<15>(&e).is_none());
        assert!(decode_array::<16>("short").is_none());
    }
}
