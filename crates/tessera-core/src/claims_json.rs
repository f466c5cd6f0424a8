//! The strict claims parser on the verification hot path.
//!
//! serde_json with `#[derive(Deserialize)]` was 30 % of a full HS256 check (see
//! bench/log/2026-11-23_to_2026-12-02.md); this parser reads exactly the [`AccessClaims`] object and nothing
//! else, with the same verdict as the derived serde implementation on every input
//! (a differential test below and the `access_token` fuzz target hold it to that):
//!
//! * RFC 8259 JSON: whitespace between tokens, strings with every escape (surrogate pairs
//!   joined, lone surrogates refused), control characters refused, valid UTF-8 only;
//! * unknown names, duplicate names (also when spelt with escapes), missing names,
//!   `null` where a value is required and trailing data are refused;
//! * numbers must be integers that fit in `u64` (no sign, fraction, exponent or leading
//!   zero); `cnf` may be absent or `null`.
//!
//! Strings are copied once into inline small strings (no allocation up to 24 bytes);
//! the whole parse allocates only the `roles` vector.

use std::borrow::Cow;
use std::sync::Arc;

use compact_str::CompactString;

use crate::token::{AccessClaims, Cnf};

const ISS: u16 = 1;
const AUD: u16 = 1 << 1;
const SUB: u16 = 1 << 2;
const SID: u16 = 1 << 3;
const IAT: u16 = 1 << 4;
const NBF: u16 = 1 << 5;
const EXP: u16 = 1 << 6;
const JTI: u16 = 1 << 7;
const ROLES: u16 = 1 << 8;
const USERNAME: u16 = 1 << 9;
const CNF: u16 = 1 << 10;
const CLIENT_ID: u16 = 1 << 11;
const fn tag3(k: &[u8; 3]) -> u32 {
    u32::from_le_bytes([k[0], k[1], k[2], 0])
}
const K_ISS: u32 = tag3(b"iss");
const K_AUD: u32 = tag3(b"aud");
const K_SUB: u32 = tag3(b"sub");
const K_SID: u32 = tag3(b"sid");
const K_IAT: u32 = tag3(b"iat");
const K_NBF: u32 = tag3(b"nbf");
const K_EXP: u32 = tag3(b"exp");
const K_JTI: u32 = tag3(b"jti");
const K_CNF: u32 = tag3(b"cnf");

/// The bit of a claim name, `None` for a name that is not a claim.
#[inline(always)]
fn key_bit(k: &[u8]) -> Option<u16> {
    match *k {
        [a, b, c] => match u32::from_le_bytes([a, b, c, 0]) {
            K_ISS => Some(ISS),
            K_AUD => Some(AUD),
            K_SUB => Some(SUB),
            K_SID => Some(SID),
            K_IAT => Some(IAT),
            K_NBF => Some(NBF),
            K_EXP => Some(EXP),
            K_JTI => Some(JTI),
            K_CNF => Some(CNF),
            _ => None,
        },
        [b'r', b'o', b'l', b'e', b's'] => Some(ROLES),
        [b'u', b's', b'e', b'r', b'n', b'a', b'm', b'e'] => Some(USERNAME),
        [b'c', b'l', b'i', b'e', b'n', b't', b'_', b'i', b'd'] => Some(CLIENT_ID),
        _ => None,
    }
}

const REQUIRED: u16 = ISS | AUD | SUB | SID | IAT | NBF | EXP | JTI | ROLES | USERNAME | CLIENT_ID;

/// Parses the decoded payload of an access token. `None` on anything the derived serde
/// implementation of [`AccessClaims`] would refuse.
pub(crate) fn parse(bytes: &[u8]) -> Option<AccessClaims> {
    let mut claims = empty();
    parse_into(bytes, &mut claims)?;
    Some(claims)
}

/// Like [`parse`], but the claims are written straight into their shared allocation (the
/// verification path hands them out as an `Arc`): no copy of the whole struct.
pub(crate) fn parse_shared(bytes: &[u8]) -> Option<Arc<AccessClaims>> {
    let mut shared = Arc::new(empty());
    parse_into(bytes, Arc::get_mut(&mut shared)?)?;
    Some(shared)
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
        cnf: None,
    }
}

/// Parses into `c`, which must be [`empty`] (strings are appended to).
fn parse_into(bytes: &[u8], c: &mut AccessClaims) -> Option<()> {
    let text = std::str::from_utf8(bytes).ok()?;
    if canonical(text, c).is_some() {
        return Some(());
    }
    // Not in the signer's own layout: start again with the general parser.
    *c = empty();
    let mut p = Parser { s: text, i: 0 };
    p.claims(c)?;
    p.ws();
    (p.i == text.len()).then_some(())
}

/// The fast path: exactly the layout tessera's signer writes (serde_json's compact output
/// of [`AccessClaims`]: fields in declaration order, no whitespace, `cnf` absent or an
/// object, strings that needed no escape). Fixed literals replace name dispatch,
/// whitespace skipping and duplicate tracking. `None` as soon as the input departs from
/// that layout, valid or not; the caller then runs the general parser from scratch, so
/// every verdict is the general parser's (the differential tests go through here too).
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

struct Parser<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Parser<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.s.as_bytes()
    }

    #[inline(always)]
    fn ws(&mut self) {
        let b = self.bytes();
        while let Some(&c) = b.get(self.i) {
            if !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                break;
            }
            self.i += 1;
        }
    }

    /// The next non-whitespace byte, not consumed.
    #[inline(always)]
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.bytes().get(self.i).copied()
    }

    #[inline(always)]
    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    fn claims(&mut self, c: &mut AccessClaims) -> Option<()> {
        self.eat(b'{')?;
        let mut seen = 0u16;
        if self.peek()? == b'}' {
            // An empty object lacks every required name.
            return None;
        }
        loop {
            let key = self.string()?;
            self.eat(b':')?;
            // Names are told apart by length and packed bytes (one integer compare, not a
            // string compare per candidate); duplicates are refused before the value is read.
            let bit = key_bit(key.as_bytes())?;
            if seen & bit != 0 {
                return None;
            }
            seen |= bit;
            match bit {
                ISS => self.string_into(&mut c.iss)?,
                AUD => self.string_into(&mut c.aud)?,
                SUB => self.string_into(&mut c.sub)?,
                SID => self.string_into(&mut c.sid)?,
                IAT => c.iat = self.u64()?,
                NBF => c.nbf = self.u64()?,
                EXP => c.exp = self.u64()?,
                JTI => self.string_into(&mut c.jti)?,
                ROLES => c.roles = self.string_array()?,
                USERNAME => self.string_into(&mut c.username)?,
                CLIENT_ID => self.string_into(&mut c.client_id)?,
                _ => c.cnf = self.cnf()?,
            }
            if !self.next_or_close(b'}')? {
                break;
            }
        }
        (seen & REQUIRED == REQUIRED).then_some(())
    }

    /// `null` or `{"jkt": "..."}`.
    fn cnf(&mut self) -> Option<Option<Cnf>> {
        if self.peek()? == b'n' {
            self.literal("null")?;
            return Some(None);
        }
        self.eat(b'{')?;
        let mut jkt = None;
        if self.peek()? == b'}' {
            return None;
        }
        loop {
            let key = self.string()?;
            self.eat(b':')?;
            if key != "jkt" || jkt.is_some() {
                return None;
            }
            jkt = Some(self.small_string()?);
            if !self.next_or_close(b'}')? {
                break;
            }
        }
        jkt.map(|jkt| Some(Cnf { jkt }))
    }

    /// After a member or element: `,` (another follows: `true`) or `close` (done:
    /// `false`), consumed; anything else is refused.
    fn next_or_close(&mut self, close: u8) -> Option<bool> {
        let c = self.peek()?;
        if c != b',' && c != close {
            return None;
        }
        self.i += 1;
        Some(c == b',')
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        let end = self.i.checked_add(word.len())?;
        (self.s.get(self.i..end)? == word).then(|| self.i = end)
    }

    fn string_array(&mut self) -> Option<Vec<CompactString>> {
        self.eat(b'[')?;
        let mut out = Vec::new();
        if self.peek()? == b']' {
            self.i += 1;
            return Some(out);
        }
        loop {
            out.push(self.small_string()?);
            if !self.next_or_close(b']')? {
                return Some(out);
            }
        }
    }

    fn small_string(&mut self) -> Option<CompactString> {
        self.string().map(|s| CompactString::new(s.as_ref()))
    }

    /// Parses a string into `dst` in place (no move of the result through the stack).
    #[inline(always)]
    fn string_into(&mut self, dst: &mut CompactString) -> Option<()> {
        let s = self.string()?;
        dst.push_str(&s);
        Some(())
    }

    /// A JSON string, unescaped. Borrowed unless it holds an escape.
    #[inline(always)]
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.eat(b'"')?;
        let b = self.bytes();
        let start = self.i;
        // Fast scan: most strings hold no escape.
        let mut j = special_at(b, start);
        match *b.get(j)? {
            b'"' => {
                self.i = j + 1;
                return self.s.get(start..j).map(Cow::Borrowed);
            }
            b'\\' => {}
            _ => return None,
        }
        let mut out = String::with_capacity(j - start + 8);
        out.push_str(self.s.get(start..j)?);
        loop {
            match *b.get(j)? {
                b'"' => {
                    self.i = j + 1;
                    return Some(Cow::Owned(out));
                }
                b'\\' => {
                    let esc = *b.get(j + 1)?;
                    j += 2;
                    let ch = match esc {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = hex4(b, j)?;
                            j += 4;
                            let code = match hi {
                                0xD800..=0xDBFF => {
                                    if b.get(j) != Some(&b'\\') || b.get(j + 1) != Some(&b'u') {
                                        return None;
                                    }
                                    let lo = hex4(b, j + 2)?;
                                    if !(0xDC00..=0xDFFF).contains(&lo) {
                                        return None;
                                    }
                                    j += 6;
                                    0x10000
                                        + ((u32::from(hi) - 0xD800) << 10)
                                        + (u32::from(lo) - 0xDC00)
                                }
                                0xDC00..=0xDFFF => return None,
                                _ => u32::from(hi),
                            };
                            char::from_u32(code)?
                        }
                        _ => return None,
                    };
                    out.push(ch);
                }
                c if c < 0x20 => return None,
                _ => {
                    // Copy the run up to the next quote, backslash or control byte.
                    let run = j;
                    j = special_at(b, j);
                    out.push_str(self.s.get(run..j)?);
                }
            }
        }
    }

    /// A JSON number that is an integer in `u64`.
    #[inline(always)]
    fn u64(&mut self) -> Option<u64> {
        self.ws();
        read_u64(self.bytes(), &mut self.i)
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

fn hex4(b: &[u8], at: usize) -> Option<u16> {
    let mut v = 0u16;
    for k in 0..4 {
        let d = char::from(*b.get(at + k)?).to_digit(16)?;
        v = (v << 4) | d as u16;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde(bytes: &[u8]) -> Option<AccessClaims> {
        serde_json::from_slice(bytes).ok()
    }

    fn agree(bytes: &[u8]) {
        assert_eq!(
            parse(bytes),
            serde(bytes),
            "verdicts differ on {:?}",
            String::from_utf8_lossy(bytes)
        );
    }

    const VALID: &str = r#"{"iss":"https://app.example.com","aud":"https://app.example.com","sub":"AQEBAQEBAQEBAQEBAQEBAQ","sid":"AgICAgICAgICAgICAgICAg","iat":1800000000,"nbf":1800000000,"exp":1800000300,"jti":"q1w2e3r4t5y6u7i8o9p0aa","roles":["user","editor"],"username":"alice@example.com","client_id":"browser"}"#;
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

    #[test]
    fn refuses_what_serde_refuses() {
        let cases: Vec<String> = vec![
            VALID.replace("1800000300", "18446744073709551616"),
            VALID.replace("1800000300", "-1"),
            VALID.replace("1800000300", "1.0"),
            VALID.replace("1800000300", "1e3"),
            VALID.replace("1800000300", "01800000300"),
            VALID.replace("1800000300", "\"1800000300\""),
            VALID.replace("1800000300", "null"),
            VALID.replace("}", r#","iss":"x"}"#),
            VALID.replace("}", r#","\u0069ss":"x"}"#),
            VALID.replace("}", r#","extra":1}"#),
            VALID.replace("}", ",}"),
            VALID.replace("}", "}x"),
            VALID.replace("}", "}}"),
            VALID.replace("alice", "al\u{1}ice"),
            VALID.replace("alice", r"al\ud800ice"),
            VALID.replace("alice", r"al\udc00ice"),
            VALID.replace("alice", r"al\ud800\u0041ice"),
            VALID.replace("alice", r"al\xice"),
            VALID.replace("alice", r"al\u12"),
            VALID.replace(r#","username":"alice@example.com""#, ""),
            VALID.replace(r#"["user","editor"]"#, r#"["user",]"#),
            VALID.replace(r#"["user","editor"]"#, r#"["user",1]"#),
            VALID.replace(r#"["user","editor"]"#, "null"),
            VALID.replace("}", r#","cnf":{}}"#),
            VALID.replace("}", r#","cnf":{"jkt":"a","jkt":"b"}}"#),
            VALID.replace("}", r#","cnf":{"jkt":"a","x":1}}"#),
            VALID.replace("}", r#","cnf":null,"cnf":null}"#),
            VALID.replace("}", r#","cnf":nul}"#),
            "{}".into(),
            "".into(),
            "[]".into(),
            "null".into(),
        ];
        for case in &cases {
            assert!(parse(case.as_bytes()).is_none(), "accepted {case}");
            agree(case.as_bytes());
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
        // Valid but not the signer's layout: the general parser decides, from scratch.
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
            agree(bad.as_bytes());
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

    /// Thousands of mutations of valid claims: both parsers must agree on every one.
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
        let mut accepted = 0;
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
            agree(&s);
        }
        // The mutations must exercise the accepting side too, not only refusals.
        assert!(accepted > 1_000, "only {accepted} mutants accepted");
    }
}
