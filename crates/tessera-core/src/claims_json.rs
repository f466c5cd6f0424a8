//! The claims parser of the verification path: a fast path for the layout tessera's
//! signer writes, and serde_json for anything else.
//!
//! Both run only on payloads whose signature has already verified ([`crate::KeyRing`]
//! checks the signature before it parses, and so does `tessera-verify`), so any other
//! layout comes from a signer holding one of our keys: rare, and not worth a second
//! hand-written parser. The fast path exists because serde_json's derive is a large share
//! of a full HS256 check; it reads only the signer's own compact layout and hands anything
//! else, valid or not, to `serde_json::from_str::<AccessClaims>`, so every verdict is the
//! derived one (the differential tests below and the `access_token` fuzz target hold the
//! fast path to it). The rules are the derive's (see [`AccessClaims`]):
//!
//! * RFC 8259 JSON: whitespace between tokens, strings with every escape (surrogate pairs
//!   joined, lone surrogates refused), control characters refused, valid UTF-8 only;
//! * unknown names, duplicate names (also when spelt with escapes), missing names,
//!   `null` where a value is required and trailing data are refused;
//! * numbers must be integers that fit in `u64` (no sign, fraction, exponent or leading
//!   zero); `cnf` may be absent or `null`.
//!
//! The payload is bounded before it gets here ([`crate::MAX_TOKEN_LEN`]). The fast path
//! copies strings once into inline small strings (no allocation up to 24 bytes) and
//! allocates only the `roles` vector.

use std::sync::Arc;

use compact_str::CompactString;

use crate::token::{AccessClaims, Cnf};

/// Parses the decoded payload of an access token. `None` on anything the derived serde
/// implementation of [`AccessClaims`] refuses.
pub(crate) fn parse(bytes: &[u8]) -> Option<AccessClaims> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut claims = empty();
    if canonical(text, &mut claims).is_some() {
        return Some(claims);
    }
    general(text)
}

/// Like [`parse`], but the fast path writes the claims straight into their shared
/// allocation (the verification path hands them out as an `Arc`): no copy of the struct.
pub(crate) fn parse_shared(bytes: &[u8]) -> Option<Arc<AccessClaims>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut shared = Arc::new(empty());
    if canonical(text, Arc::get_mut(&mut shared)?).is_some() {
        return Some(shared);
    }
    general(text).map(Arc::new)
}

/// Any layout but the signer's: serde_json with the derived implementation, from scratch
/// (nothing the fast path filled in survives).
#[cold]
fn general(text: &str) -> Option<AccessClaims> {
    serde_json::from_str(text).ok()
}

fn empty() -> AccessClaims {
    AccessClaims {
        iss: CompactString::default(),
        aud: CompactString::default(),
        sub: CompactString::default(),
        sid: CompactString::default(),
        iat: 0,
        nbf: 0,
        exp: 0,
        jti: CompactString::default(),
        roles: Vec::new(),
        username: CompactString::default(),
        client_id: CompactString::default(),
        amr: Vec::new(),
        auth_time: 0,
        cnf: None,
    }
}

/// The fast path: exactly the layout tessera's signer writes (serde_json's compact output
/// of [`AccessClaims`]: fields in declaration order, no whitespace, `cnf` absent or an
/// object, strings that needed no escape). Fixed literals replace name dispatch,
/// whitespace skipping and duplicate tracking. `None` as soon as the input departs from
/// that layout, valid or not; the caller then runs serde_json from scratch, so every
/// verdict is serde_json's (the differential tests go through here too).
#[inline(always)]
fn canonical(text: &str, c: &mut AccessClaims) -> Option<()> {
    let mut f = Fast {
        s: text,
        b: text.as_bytes(),
        i: 0,
    };
    f.lit(b"{\"iss\":\"")?;
    c.iss = CompactString::new(f.string()?);
    f.lit(b",\"aud\":\"")?;
    c.aud = CompactString::new(f.string()?);
    f.lit(b",\"sub\":\"")?;
    c.sub = CompactString::new(f.string()?);
    f.lit(b",\"sid\":\"")?;
    c.sid = CompactString::new(f.string()?);
    f.lit(b",\"iat\":")?;
    c.iat = read_u64(f.b, &mut f.i)?;
    f.lit(b",\"nbf\":")?;
    c.nbf = read_u64(f.b, &mut f.i)?;
    f.lit(b",\"exp\":")?;
    c.exp = read_u64(f.b, &mut f.i)?;
    f.lit(b",\"jti\":\"")?;
    c.jti = CompactString::new(f.string()?);
    f.lit(b",\"roles\":[")?;
    if f.lit(b"]").is_none() {
        loop {
            f.lit(b"\"")?;
            c.roles.push(CompactString::new(f.string()?));
            if f.lit(b"]").is_some() {
                break;
            }
            f.lit(b",")?;
        }
    }
    f.lit(b",\"username\":\"")?;
    c.username = CompactString::new(f.string()?);
    f.lit(b",\"client_id\":\"")?;
    c.client_id = CompactString::new(f.string()?);
    f.lit(b",\"amr\":[")?;
    if f.lit(b"]").is_none() {
        loop {
            f.lit(b"\"")?;
            c.amr.push(CompactString::new(f.string()?));
            if f.lit(b"]").is_some() {
                break;
            }
            f.lit(b",")?;
        }
    }
    f.lit(b",\"auth_time\":")?;
    c.auth_time = read_u64(f.b, &mut f.i)?;
    if f.lit(b",\"cnf\":{\"jkt\":\"").is_some() {
        let jkt = CompactString::new(f.string()?);
        f.lit(b"}")?;
        c.cnf = Some(Cnf { jkt });
    }
    f.lit(b"}")?;
    (f.i == f.b.len()).then_some(())
}

struct Fast<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Fast<'a> {
    /// Consumes exactly `l`.
    #[inline(always)]
    fn lit(&mut self, l: &[u8]) -> Option<()> {
        let end = self.i + l.len();
        (self.b.get(self.i..end)? == l).then(|| self.i = end)
    }

    /// The rest of a string whose opening quote is consumed, up to its closing quote
    /// (consumed); `None` if an escape or control byte comes first.
    #[inline(always)]
    fn string(&mut self) -> Option<&'a str> {
        let start = self.i;
        let j = special_at(self.b, start);
        if *self.b.get(j)? != b'"' {
            return None;
        }
        self.i = j + 1;
        self.s.get(start..j)
    }
}

/// A JSON number at `b[*i..]` that is an integer in `u64`; `*i` moves past it.
#[inline(always)]
fn read_u64(b: &[u8], i: &mut usize) -> Option<u64> {
    let first = *b.get(*i)?;
    if !first.is_ascii_digit() {
        return None;
    }
    let mut n = u64::from(first - b'0');
    *i += 1;
    if first == b'0' {
        if b.get(*i).is_some_and(u8::is_ascii_digit) {
            return None;
        }
    } else {
        // Eight digits at a time while they last (timestamps have ten), then one by one.
        if let Some(v) = b.get(*i..*i + 8).and_then(eight_digits) {
            n = n * 100_000_000 + v;
            *i += 8;
        }
        while let Some(&c) = b.get(*i) {
            if !c.is_ascii_digit() {
                break;
            }
            n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
            *i += 1;
        }
    }
    // A fraction or exponent makes it a float, which a u64 field refuses.
    if matches!(b.get(*i), Some(b'.' | b'e' | b'E')) {
        return None;
    }
    Some(n)
}

/// The index of the first `"`, `\\` or control byte at or after `from` (`b.len()` if
/// none), eight bytes at a time (SWAR: the lowest flagged byte of each test is exact).
fn special_at(b: &[u8], from: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let mut j = from;
    while let Some(chunk) = b.get(j..j + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let hits = zero_byte(w ^ (ONES * u64::from(b'"')))
            | zero_byte(w ^ (ONES * u64::from(b'\\')))
            | (w.wrapping_sub(ONES * 0x20) & !w & HIGH);
        if hits != 0 {
            return j + (hits.trailing_zeros() / 8) as usize;
        }
        j += 8;
    }
    while let Some(&c) = b.get(j) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            break;
        }
        j += 1;
    }
    j
}

/// The value of eight ASCII digits (SWAR), `None` if any byte is not a digit.
fn eight_digits(chunk: &[u8]) -> Option<u64> {
    let mut word = [0u8; 8];
    word.copy_from_slice(chunk);
    let w = u64::from_le_bytes(word);
    // Every byte in '0'..='9': high nibble 3 and low nibble + 6 below 16.
    let digits = (w & 0xF0F0_F0F0_F0F0_F0F0) == 0x3030_3030_3030_3030
        && ((w + 0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0) == 0x3030_3030_3030_3030;
    if !digits {
        return None;
    }
    let v = w - 0x3030_3030_3030_3030;
    // Pairs, then quads, then the eight digits (first digit in the lowest byte).
    let v = (v * 10 + (v >> 8)) & 0x00FF_00FF_00FF_00FF;
    let v = (v * 100 + (v >> 16)) & 0x0000_FFFF_0000_FFFF;
    Some((v * 10_000 + (v >> 32)) & 0xFFFF_FFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde(bytes: &[u8]) -> Option<AccessClaims> {
        serde_json::from_slice(bytes).ok()
    }

    /// `parse` and `parse_shared` give serde_json's verdict, and so does the fast path
    /// whenever it takes the input: `true` if it did.
    fn agree(bytes: &[u8]) -> bool {
        let reference = serde(bytes);
        let shown = String::from_utf8_lossy(bytes);
        assert_eq!(parse(bytes), reference, "verdicts differ on {shown:?}");
        assert_eq!(
            parse_shared(bytes).map(Arc::unwrap_or_clone),
            reference,
            "shared verdicts differ on {shown:?}"
        );
        let Ok(text) = std::str::from_utf8(bytes) else {
            return false;
        };
        let mut fast = empty();
        if canonical(text, &mut fast).is_none() {
            return false;
        }
        assert_eq!(Some(fast), reference, "the fast path differs on {shown:?}");
        true
    }

    /// The signer's own output (serde_json's compact serialisation) with no escape in it
    /// must take the fast path, or the fast path silently stops paying.
    fn signer_layout_takes_the_fast_path(bytes: &[u8], took_fast_path: bool) {
        let Some(claims) = serde(bytes) else { return };
        let signer = serde_json::to_vec(&claims).expect("serialises");
        if signer == bytes && !bytes.contains(&b'\\') {
            assert!(
                took_fast_path,
                "the fast path refused the signer's layout {:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    const VALID: &str = r#"{"iss":"https://app.example.com","aud":"https://app.example.com","sub":"AQEBAQEBAQEBAQEBAQEBAQ","sid":"AgICAgICAgICAgICAgICAg","iat":1800000000,"nbf":1800000000,"exp":1800000300,"jti":"q1w2e3r4t5y6u7i8o9p0aa","roles":["user","editor"],"username":"alice@example.com","client_id":"browser","amr":["pwd"],"auth_time":1799999000}"#;
    const BOUND: &str = r#" { "iss" : "i" , "aud":"a","sub":"s","sid":"d","iat":0,"nbf":1,"exp":18446744073709551615,"jti":"j","roles":[],"username":"\u00e9l\u00E8ve \ud83d\ude00 \"q\" \\ \/ \b\f\n\r\t","client_id":"api","cnf":{"jkt":"0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}
 "#;

    #[test]
    fn eight_digits_reads_every_value_and_refuses_non_digits() {
        for v in [
            0u64, 1, 9, 10, 12_345_678, 99_999_999, 80_000_000, 10_000_001,
        ] {
            let s = format!("{v:08}");
            assert_eq!(eight_digits(s.as_bytes()), Some(v), "{s}");
        }
        for bad in ["1234567a", "/2345678", ":2345678", "1234 678", "12345.78"] {
            assert_eq!(eight_digits(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn accepts_what_serde_accepts() {
        let a = parse(VALID.as_bytes()).unwrap();
        assert_eq!(a.roles, vec!["user", "editor"]);
        assert_eq!(a.exp, 1_800_000_300);
        agree(VALID.as_bytes());
        let b = parse(BOUND.as_bytes()).unwrap();
        assert_eq!(b.username, "élève 😀 \"q\" \\ / \u{8}\u{c}\n\r\t");
        assert_eq!(b.exp, u64::MAX);
        agree(BOUND.as_bytes());
        agree(VALID.replace("}", r#","cnf":null}"#).as_bytes());
        // An escaped name is the same name.
        let escaped = VALID.replace(r#""iss""#, r#""\u0069ss""#);
        assert_eq!(parse(escaped.as_bytes()), Some(a));
        agree(escaped.as_bytes());
    }

    /// Every rule of the module documentation, one refused case (or more) each; the
    /// verdict is serde_json's derive, and the fast path must not take any of them.
    #[test]
    fn refuses_what_serde_refuses() {
        let cases: Vec<(&str, String)> = vec![
            (
                "number over u64",
                VALID.replace("1800000300", "18446744073709551616"),
            ),
            ("signed number", VALID.replace("1800000300", "-1")),
            ("fraction", VALID.replace("1800000300", "1.0")),
            ("exponent", VALID.replace("1800000300", "1e3")),
            ("leading zero", VALID.replace("1800000300", "01800000300")),
            (
                "mistyped value",
                VALID.replace("1800000300", "\"1800000300\""),
            ),
            ("null number", VALID.replace("1800000300", "null")),
            ("duplicate name", VALID.replace("}", r#","iss":"x"}"#)),
            (
                "escaped duplicate name",
                VALID.replace("}", r#","\u0069ss":"x"}"#),
            ),
            ("unknown name", VALID.replace("}", r#","extra":1}"#)),
            ("trailing comma", VALID.replace("}", ",}")),
            ("trailing data", VALID.replace("}", "}x")),
            ("trailing close", VALID.replace("}", "}}")),
            ("control character", VALID.replace("alice", "al\u{1}ice")),
            (
                "lone high surrogate",
                VALID.replace("alice", r"al\ud800ice"),
            ),
            ("lone low surrogate", VALID.replace("alice", r"al\udc00ice")),
            (
                "high surrogate, no low",
                VALID.replace("alice", r"al\ud800\u0041ice"),
            ),
            ("unknown escape", VALID.replace("alice", r"al\xice")),
            ("short \\u escape", VALID.replace("alice", r"al\u12")),
            (
                "missing name",
                VALID.replace(r#","username":"alice@example.com""#, ""),
            ),
            (
                "trailing comma in roles",
                VALID.replace(r#"["user","editor"]"#, r#"["user",]"#),
            ),
            (
                "mistyped role",
                VALID.replace(r#"["user","editor"]"#, r#"["user",1]"#),
            ),
            ("null roles", VALID.replace(r#"["user","editor"]"#, "null")),
            ("cnf without jkt", VALID.replace("}", r#","cnf":{}}"#)),
            (
                "duplicate jkt",
                VALID.replace("}", r#","cnf":{"jkt":"a","jkt":"b"}}"#),
            ),
            (
                "unknown name in cnf",
                VALID.replace("}", r#","cnf":{"jkt":"a","x":1}}"#),
            ),
            (
                "duplicate null cnf",
                VALID.replace("}", r#","cnf":null,"cnf":null}"#),
            ),
            ("broken literal", VALID.replace("}", r#","cnf":nul}"#)),
            ("empty object", "{}".into()),
            ("empty input", "".into()),
            ("array", "[]".into()),
            ("null", "null".into()),
        ];
        for (rule, case) in &cases {
            assert!(parse(case.as_bytes()).is_none(), "{rule}: accepted {case}");
            assert!(!agree(case.as_bytes()), "{rule}: the fast path took {case}");
        }
        // Every required name, left out of the signer's layout (order kept, so the fast
        // path is tried too).
        let members = [
            r#""iss":"https://app.example.com""#,
            r#""aud":"https://app.example.com""#,
            r#""sub":"AQEBAQEBAQEBAQEBAQEBAQ""#,
            r#""sid":"AgICAgICAgICAgICAgICAg""#,
            r#""iat":1800000000"#,
            r#""nbf":1800000000"#,
            r#""exp":1800000300"#,
            r#""jti":"q1w2e3r4t5y6u7i8o9p0aa""#,
            r#""roles":["user","editor"]"#,
            r#""username":"alice@example.com""#,
            r#""client_id":"browser""#,
        ];
        // `amr` and `auth_time` came later and may be absent (tokens signed before them).
        let optional = [r#""amr":["pwd"]"#, r#""auth_time":1799999000"#];
        let all: Vec<&str> = members.iter().chain(&optional).copied().collect();
        assert_eq!(format!("{{{}}}", all.join(",")), VALID);
        for left_out in 0..optional.len() {
            let kept: Vec<&str> = members
                .iter()
                .copied()
                .chain(
                    (0..optional.len())
                        .filter(|&i| i != left_out)
                        .map(|i| optional[i]),
                )
                .collect();
            let case = format!("{{{}}}", kept.join(","));
            let parsed = parse(case.as_bytes()).expect("an older token still parses");
            assert_eq!(
                Some(parsed),
                serde(case.as_bytes()),
                "without {}",
                optional[left_out]
            );
        }
        let members = &all[..members.len()];
        for left_out in 0..members.len() {
            let kept: Vec<&str> = (0..members.len())
                .filter(|&i| i != left_out)
                .map(|i| members[i])
                .collect();
            let case = format!("{{{}}}", kept.join(","));
            let name = members[left_out];
            assert!(parse(case.as_bytes()).is_none(), "without {name}: accepted");
            assert!(
                !agree(case.as_bytes()),
                "without {name}: the fast path took it"
            );
        }
        agree(b"{\"iss\":\"\xff\"}");
        let mut bad_utf8 = VALID.as_bytes().to_vec();
        bad_utf8[40] = 0xC3;
        agree(&bad_utf8);
    }

    #[test]
    fn the_fast_path_takes_the_signers_layout_and_hands_anything_else_over_whole() {
        let mut c = empty();
        assert!(canonical(VALID, &mut c).is_some());
        assert_eq!(Some(c), serde(VALID.as_bytes()));
        let bound = signed_bound();
        let mut c = empty();
        assert!(canonical(&bound, &mut c).is_some());
        assert!(c.cnf.is_some());
        assert_eq!(Some(c), serde(bound.as_bytes()));
        let mut c = empty();
        assert!(canonical(BOUND, &mut c).is_none());
        // Valid but not the signer's layout: serde_json decides, from scratch.
        // The escape sits in the last string, after the fast path has filled the rest
        // (roles included): nothing of that attempt may survive.
        for other in [
            VALID.replace("alice@", "alice\\u0040"),
            VALID.replace("{\"iss\"", "{ \"iss\""),
            VALID.replace(",\"username\"", ", \"username\""),
        ] {
            let mut c = empty();
            assert!(canonical(&other, &mut c).is_none(), "{other}");
            let parsed = parse(other.as_bytes());
            assert!(parsed.is_some(), "{other}");
            assert_eq!(parsed, serde(other.as_bytes()));
            assert_eq!(parsed.map(|c| c.roles.len()), Some(2));
        }
        // The signer's layout with trailing data, or a float: refused by both.
        for bad in [
            format!("{VALID} x"),
            VALID.replace("1800000300", "1800000300.5"),
        ] {
            assert_eq!(parse(bad.as_bytes()), None, "{bad}");
            assert!(!agree(bad.as_bytes()), "the fast path took {bad}");
        }
    }

    /// DPoP-bound claims exactly as the signer writes them.
    fn signed_bound() -> String {
        let mut c = serde(VALID.as_bytes()).expect("valid");
        c.cnf = Some(Cnf {
            jkt: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into(),
        });
        serde_json::to_string(&c).expect("serialises")
    }

    /// Thousands of mutations of valid claims: the fast path, wherever it takes one, must
    /// agree with serde_json, and must take every mutant still in the signer's layout.
    #[test]
    fn differential_against_serde() {
        const PIECES: &[&str] = &[
            "\"",
            "\\",
            "\\u",
            "\\ud83d",
            "\\ude00",
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            " ",
            "\n",
            "0",
            "1",
            "9",
            "-",
            ".",
            "e",
            "null",
            "true",
            "\"iss\"",
            "\"cnf\"",
            "\"jkt\"",
            "\"roles\"",
            "\u{e9}",
            "\u{1}",
            "18446744073709551615",
            "18446744073709551616",
        ];
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let signed = signed_bound();
        let (mut accepted, mut fast) = (0, 0);
        for round in 0..60_000u32 {
            let base = match round % 3 {
                0 => VALID,
                1 => BOUND,
                _ => &signed,
            };
            let mut s = base.as_bytes().to_vec();
            for _ in 0..=(next() % 3) {
                let at = (next() as usize) % (s.len() + 1);
                match next() % 4 {
                    0 if at < s.len() => {
                        s.remove(at);
                    }
                    1 if at < s.len() => s[at] = (next() % 256) as u8,
                    2 => {
                        let piece = PIECES[(next() as usize) % PIECES.len()];
                        s.splice(at..at, piece.bytes());
                    }
                    _ => {
                        let end = (at + (next() as usize % 8)).min(s.len());
                        s.drain(at..end);
                    }
                }
            }
            if parse(&s).is_some() {
                accepted += 1;
            }
            let took_fast_path = agree(&s);
            fast += usize::from(took_fast_path);
            signer_layout_takes_the_fast_path(&s, took_fast_path);
        }
        // The mutations must exercise the accepting side too, not only refusals, and the
        // fast path's own verdicts as well as serde_json's.
        assert!(accepted > 1_000, "only {accepted} mutants accepted");
        assert!(fast > 1_000, "only {fast} mutants took the fast path");
    }
}
