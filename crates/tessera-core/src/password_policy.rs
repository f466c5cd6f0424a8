//! Password policy: what a new password must satisfy before it is hashed
//! (NIST SP 800-63B §5.1.1.2, ASVS 5.0 6.2.1–6.2.12).
//!
//! * at least `min_length` characters and at most `max_length` bytes (no truncation);
//! * not the username, compared exactly and ignoring case;
//! * not one of the 10 000 most common passwords of 8+ characters, ignoring case (a list built into the
//!   binary, see `data/README.md`);
//! * optionally, not in a breached-password corpus: the Have I Been Pwned offline file of
//!   SHA-1 hashes "ordered by hash" (`SHA1HEX:COUNT` lines).
//!
//! No composition rules (SP 800-63B: "SHALL NOT impose other composition rules").
//!
//! The breached list is this crate's one exception to "no I/O": the file is tens of
//! gigabytes, so it is searched where it lies (a binary search over byte offsets: a number
//! of 256-byte reads logarithmic in the file's size) rather than loaded. The
//! search itself works on any `Read + Seek`. Nothing here is async; it runs in the CLI,
//! never on a request path.
//!
//! No message produced here contains the password.
//!
//! ```
//! use tessera_core::password_policy::{PasswordPolicy, PolicyViolation};
//!
//! let policy = PasswordPolicy::new(8, 256);
//! assert!(matches!(policy.check("Password1", "alice"), Err(PolicyViolation::Common)));
//! assert!(policy.check("correct horse battery staple", "alice").is_ok());
//! ```

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use zeroize::Zeroizing;

/// Why a password is refused. The messages never contain the password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyViolation {
    /// Fewer than `min` characters.
    #[error("password too short: at least {min} characters")]
    TooShort {
        /// The minimum, in characters.
        min: usize,
    },
    /// More than `max` bytes.
    #[error("password too long: at most {max} bytes")]
    TooLong {
        /// The maximum, in bytes.
        max: usize,
    },
    /// The username itself, possibly in another case.
    #[error("password must not be the username")]
    SameAsUsername,
    /// In the built-in list of common passwords (case ignored).
    #[error("password is too common (it is on a list of the most used passwords); choose another")]
    Common,
    /// In the configured breached-password list.
    #[error("password has appeared in data breaches ({count} times); choose another")]
    Breached {
        /// How often Have I Been Pwned saw it.
        count: u64,
    },
    /// The breached-password list could not be searched, so the password is not accepted
    /// (fail closed).
    #[error("cannot check the breached-password list: {0}")]
    BreachedListUnusable(#[from] BreachedListError),
}

/// The rules a new password must pass.
#[derive(Debug, Clone)]
pub struct PasswordPolicy {
    /// Fewest characters (Unicode scalar values).
    pub min_length: usize,
    /// Most bytes (UTF-8); bounds the hashing input.
    pub max_length: usize,
    /// A breached-password corpus to refuse passwords from, if any.
    pub breached_list: Option<BreachedList>,
}

impl PasswordPolicy {
    /// A policy with these length bounds, the common-password list, and no breached list.
    pub fn new(min_length: usize, max_length: usize) -> Self {
        PasswordPolicy {
            min_length,
            max_length,
            breached_list: None,
        }
    }

    /// Also refuses passwords found in `list`.
    pub fn with_breached_list(mut self, list: BreachedList) -> Self {
        self.breached_list = Some(list);
        self
    }

    /// Checks `password` for `username`, cheapest rules first (the breached list, which
    /// reads a file, last).
    pub fn check(&self, password: &str, username: &str) -> Result<(), PolicyViolation> {
        if password.chars().count() < self.min_length {
            return Err(PolicyViolation::TooShort {
                min: self.min_length,
            });
        }
        if password.len() > self.max_length {
            return Err(PolicyViolation::TooLong {
                max: self.max_length,
            });
        }
        let lower = Zeroizing::new(password.to_lowercase());
        if *lower == username.to_lowercase() {
            return Err(PolicyViolation::SameAsUsername);
        }
        if common_passwords().contains(lower.as_str()) {
            return Err(PolicyViolation::Common);
        }
        if let Some(list) = &self.breached_list {
            if let Some(count) = list.count(password)? {
                return Err(PolicyViolation::Breached { count });
            }
        }
        Ok(())
    }
}

/// True if `password`, ignoring case, is one of the built-in common passwords.
pub fn is_common(password: &str) -> bool {
    let lower = Zeroizing::new(password.to_lowercase());
    common_passwords().contains(lower.as_str())
}

/// The top 10 000 entries of 8+ characters of zxcvbn-ts's common-password list, lowercase, one per line, most
/// used first (provenance and licence: `data/README.md`).
const COMMON_PASSWORDS: &str = include_str!("../data/common-passwords.txt");

/// The built-in list as a set, built on first use; a lookup is then one hash.
fn common_passwords() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        COMMON_PASSWORDS
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect()
    })
}

/// Why the breached-password list cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BreachedListError {
    /// Opening or reading the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The list's path.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The file is not a Have I Been Pwned SHA-1 file ordered by hash.
    #[error("{path}: {problem}")]
    Format {
        /// The list's path.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
}

/// A Have I Been Pwned "ordered by hash" SHA-1 file: lines `SHA1HEX:COUNT`, 40 hex digits
/// (upper case as HIBP writes them; lower case is accepted), sorted by hash, LF or CRLF.
///
/// Nothing is loaded: each lookup opens the file and binary-searches it by byte offset,
/// so a replaced file is picked up by the next lookup.
#[derive(Debug, Clone)]
pub struct BreachedList {
    path: PathBuf,
}

/// Lines sampled by [`BreachedList::open`] to check the file is ordered by hash.
const ORDER_SAMPLES: u64 = 64;

impl BreachedList {
    /// Checks that `path` is a readable regular file that looks like the HIBP SHA-1 file
    /// ordered by hash: 64 lines spread over it (the first line among them) and the lines
    /// of its last 256 bytes parse as `SHA1HEX:COUNT` and are in ascending order. The file
    /// "ordered by prevalence", or NTLM hashes, are refused here rather than silently
    /// missing lookups. About 70 small reads, whatever the size of the file.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, BreachedListError> {
        let list = BreachedList { path: path.into() };
        let meta = std::fs::metadata(&list.path).map_err(|e| list.io(e))?;
        // Not a FIFO or a device: those could block or never end.
        if !meta.is_file() {
            return Err(list.format("not a regular file"));
        }
        let (mut file, len) = list.open_file()?;
        if len == 0 {
            return Err(list.format("empty file"));
        }
        // Sample lines spread over the file, then every line of its last 256 bytes;
        // `floor` keeps the positions moving forward so each line is compared with the
        // one before it in the file.
        let mut previous = None;
        let mut floor = 0;
        for i in 0..ORDER_SAMPLES {
            let pos = (len * i / ORDER_SAMPLES).max(floor);
            match list.check_line(&mut file, len, pos, &mut previous)? {
                Some(next) => floor = next,
                None => break,
            }
        }
        let mut pos = len.saturating_sub(2 * MAX_LINE as u64).max(floor);
        while let Some(next) = list.check_line(&mut file, len, pos, &mut previous)? {
            pos = next;
        }
        Ok(list)
    }

    /// The file searched.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How often `password` appears in the list (its `COUNT`), or `None` if it does not.
    pub fn count(&self, password: &str) -> Result<Option<u64>, BreachedListError> {
        let key = sha1_upper_hex(password);
        let (mut file, len) = self.open_file()?;
        search(&mut file, len, &key).map_err(|e| self.search_error(e))
    }

    /// Reads the first line at or after `pos` and checks it parses and does not sort
    /// before `previous` (start, hash), which it then becomes. Returns where the next line
    /// starts, or `None` past the last line.
    fn check_line(
        &self,
        file: &mut File,
        len: u64,
        pos: u64,
        previous: &mut Option<(u64, [u8; 40])>,
    ) -> Result<Option<u64>, BreachedListError> {
        let Some(line) = line_at_or_after(file, len, pos).map_err(|e| self.search_error(e))? else {
            return Ok(None);
        };
        let Some((hash, _)) = parse_entry(line.bytes()) else {
            return Err(self.format(format!(
                "line at byte {} is not SHA1HEX:COUNT; use the SHA-1 file ordered by hash \
                 (NTLM hashes are not supported)",
                line.start
            )));
        };
        if let Some((at, before)) = previous {
            if hash < *before {
                return Err(self.format(format!(
                    "not sorted by hash (the line at byte {} sorts before the line at byte \
                     {at}); use the file ordered by hash, not the one ordered by prevalence",
                    line.start
                )));
            }
        }
        *previous = Some((line.start, hash));
        Ok(Some(line.next))
    }

    fn open_file(&self) -> Result<(File, u64), BreachedListError> {
        let file = File::open(&self.path).map_err(|e| self.io(e))?;
        let len = file.metadata().map_err(|e| self.io(e))?.len();
        Ok((file, len))
    }

    fn io(&self, source: io::Error) -> BreachedListError {
        BreachedListError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn format(&self, problem: impl Into<String>) -> BreachedListError {
        BreachedListError::Format {
            path: self.path.clone(),
            problem: problem.into(),
        }
    }

    fn search_error(&self, e: SearchError) -> BreachedListError {
        match e {
            SearchError::Io(e) => self.io(e),
            SearchError::BadLine(at) => self.format(format!(
                "line at byte {at} is not SHA1HEX:COUNT (or is longer than {MAX_LINE} bytes)"
            )),
        }
    }
}

/// The SHA-1 of `password` in upper-case hex, the form of HIBP's keys.
///
/// SHA-1 is used only because it is what the HIBP corpus is keyed by (lookup
/// compatibility); it protects nothing here. Passwords are stored with Argon2id.
fn sha1_upper_hex(password: &str) -> Zeroizing<[u8; 40]> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, password.as_bytes());
    let mut out = Zeroizing::new([0u8; 40]);
    for (pair, byte) in out.chunks_exact_mut(2).zip(digest.as_ref()) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0x0f)];
    }
    out
}

/// Longest accepted line including its line break: 40 hex digits, `:`, a count of at most
/// 20 digits and CRLF make 63; the rest is slack.
const MAX_LINE: usize = 128;

#[derive(Debug)]
enum SearchError {
    Io(io::Error),
    /// The line starting at this byte offset is malformed or too long.
    BadLine(u64),
}

impl From<io::Error> for SearchError {
    fn from(e: io::Error) -> Self {
        SearchError::Io(e)
    }
}

/// One line read from the list: where it starts, where the next one starts, its bytes
/// (without the line break).
struct Line {
    start: u64,
    next: u64,
    buf: [u8; MAX_LINE],
    len: usize,
}

impl Line {
    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Binary search of a sorted `SHA1HEX:COUNT` file of `len` bytes for `key` (upper-case
/// hex): the count on the matching line, or `None`.
///
/// Invariant: a line holding `key`, if any, starts in `lo..hi`; `lo` is always a line
/// start. Each step reads the first line starting at or after the midpoint and moves `lo`
/// past it or `hi` down to it, so the range shrinks every time: about log2(len) steps.
fn search<R: Read + Seek>(r: &mut R, len: u64, key: &[u8; 40]) -> Result<Option<u64>, SearchError> {
    let (mut lo, mut hi) = (0u64, len);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let line = match line_at_or_after(r, len, mid)? {
            Some(line) if line.start < hi => line,
            // No line starts in mid..hi: look in lo..mid.
            _ => {
                hi = mid;
                continue;
            }
        };
        let (hash, count) = parse_entry(line.bytes()).ok_or(SearchError::BadLine(line.start))?;
        match hash.cmp(key) {
            std::cmp::Ordering::Less => lo = line.next,
            std::cmp::Ordering::Greater => hi = line.start,
            std::cmp::Ordering::Equal => return Ok(Some(count)),
        }
    }
    Ok(None)
}

/// The first line of the file that starts at or after `pos`, or `None` if none does.
/// One read of at most 2 × `MAX_LINE` bytes.
fn line_at_or_after<R: Read + Seek>(
    r: &mut R,
    len: u64,
    pos: u64,
) -> Result<Option<Line>, SearchError> {
    if pos >= len {
        return Ok(None);
    }
    // Read from the byte before `pos`: if it is a line break, a line starts at `pos`.
    let from = pos.saturating_sub(1);
    let mut buf = [0u8; 2 * MAX_LINE];
    let n = read_at(r, from, &mut buf)?;
    let window = &buf[..n];
    let start_idx = if pos == 0 {
        0
    } else {
        match window.iter().position(|&b| b == b'\n') {
            Some(i) => i + 1,
            // Still inside the last line, which runs to the end of the file.
            None if from + n as u64 >= len => return Ok(None),
            None => return Err(SearchError::BadLine(from)),
        }
    };
    let start = from + start_idx as u64;
    if start >= len {
        return Ok(None);
    }
    let rest = &window[start_idx..];
    let (line_len, next) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (i, start + i as u64 + 1),
        // The last line, without a final line break.
        None if start + rest.len() as u64 >= len => (rest.len(), len),
        None => return Err(SearchError::BadLine(start)),
    };
    let content = rest[..line_len]
        .strip_suffix(b"\r")
        .unwrap_or(&rest[..line_len]);
    if content.len() > MAX_LINE {
        return Err(SearchError::BadLine(start));
    }
    let mut line = Line {
        start,
        next,
        buf: [0u8; MAX_LINE],
        len: content.len(),
    };
    line.buf[..content.len()].copy_from_slice(content);
    Ok(Some(line))
}

/// Fills `buf` from byte `offset` until it is full or the input ends; returns the count.
fn read_at<R: Read + Seek>(r: &mut R, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    r.seek(SeekFrom::Start(offset))?;
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Parses `SHA1HEX:COUNT` into the upper-cased hash and the count.
fn parse_entry(line: &[u8]) -> Option<([u8; 40], u64)> {
    let (hex, count) = (line.get(..40)?, line.get(40..)?.strip_prefix(b":")?);
    if !hex.iter().all(u8::is_ascii_hexdigit)
        || count.is_empty()
        || count.len() > 20
        || !count.iter().all(u8::is_ascii_digit)
    {
        return None;
    }
    let mut hash = [0u8; 40];
    for (h, b) in hash.iter_mut().zip(hex) {
        *h = b.to_ascii_uppercase();
    }
    let count = std::str::from_utf8(count).ok()?.parse().ok()?;
    Some((hash, count))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::Cursor;

    fn policy() -> PasswordPolicy {
        PasswordPolicy::new(8, 64)
    }

    #[test]
    fn each_violation() {
        let p = policy();
        assert!(matches!(
            p.check("short1!", "alice"),
            Err(PolicyViolation::TooShort { min: 8 })
        ));
        // Characters, not bytes: eight two-byte characters pass the minimum.
        assert!(p.check("éàüößñçø", "alice").is_ok());
        assert!(matches!(
            p.check(&"x".repeat(65), "alice"),
            Err(PolicyViolation::TooLong { max: 64 })
        ));
        // Bytes, not characters: 33 two-byte characters are 66 bytes.
        assert!(matches!(
            p.check(&"é".repeat(33), "alice"),
            Err(PolicyViolation::TooLong { max: 64 })
        ));
        assert!(p.check(&"x7".repeat(32), "alice").is_ok());
        assert!(matches!(
            p.check("alice.smith", "alice.smith"),
            Err(PolicyViolation::SameAsUsername)
        ));
        assert!(matches!(
            p.check("password1", "alice"),
            Err(PolicyViolation::Common)
        ));
        assert!(p.check("mauve-otter-quietly-sings", "alice").is_ok());
    }

    #[test]
    fn username_is_compared_ignoring_case_only_for_equality() {
        let p = policy();
        assert!(matches!(
            p.check("Alice.Smith", "alice.smith"),
            Err(PolicyViolation::SameAsUsername)
        ));
        assert!(matches!(
            p.check("ÉLODIE-MARTIN", "élodie-martin"),
            Err(PolicyViolation::SameAsUsername)
        ));
        // Containing the username is allowed (equality only, by design).
        assert!(p.check("alice.smith-rides-north", "alice.smith").is_ok());
    }

    #[test]
    fn common_passwords_ignore_case() {
        for pw in [
            "password1",
            "Password1",
            "PASSWORD1",
            "Password123",
            "QwErTy123",
        ] {
            assert!(is_common(pw), "{pw}");
            assert!(
                matches!(policy().check(pw, "alice"), Err(PolicyViolation::Common)),
                "{pw}"
            );
        }
        assert!(!is_common("mauve-otter-quietly-sings"));
        assert!(!is_common(""));
    }

    #[test]
    fn the_built_in_list_is_what_data_readme_says() {
        let lines: Vec<&str> = COMMON_PASSWORDS.lines().collect();
        assert_eq!(lines.len(), 10_000);
        assert_eq!(lines[..3], ["password", "12345678", "123456789"]);
        assert_eq!(common_passwords().len(), 10_000, "duplicates in the list");
        for l in lines {
            assert!(!l.is_empty() && l.trim() == l, "{l:?}");
            assert_eq!(l, l.to_lowercase(), "not lowercase: {l:?}");
            // Shorter ones are refused by `min_length` (at least 8) anyway.
            assert!(l.chars().count() >= 8, "shorter than 8: {l:?}");
        }
    }

    #[test]
    fn violations_never_echo_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pwned.txt");
        let pw = "Zebra-Crossing-42";
        let hash = String::from_utf8(sha1_upper_hex(pw).to_vec()).unwrap();
        std::fs::write(&path, format!("{hash}:7\n")).unwrap();
        let p = policy().with_breached_list(BreachedList::open(&path).unwrap());
        let cases = [
            ("Zebra!1", "alice"),
            (pw, pw),
            ("Password123", "alice"),
            (pw, "alice"),
        ];
        for (candidate, user) in cases {
            let err = p.check(candidate, user).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains(candidate), "{shown}");
            assert!(!shown.to_lowercase().contains(&candidate.to_lowercase()));
        }
        let err = p.check(pw, "alice").unwrap_err();
        assert!(
            matches!(err, PolicyViolation::Breached { count: 7 }),
            "{err}"
        );
        assert!(err.to_string().contains("7 times"), "{err}");
    }

    #[test]
    fn sha1_matches_known_vectors() {
        // FIPS 180 "abc", and the HIBP key of "password".
        assert_eq!(
            &sha1_upper_hex("abc")[..],
            b"A9993E364706816ABA3E25717850C26C9CD0D89D"
        );
        assert_eq!(
            &sha1_upper_hex("password")[..],
            b"5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8"
        );
    }

    /// A sorted HIBP-style file of the SHA-1s of `pw0`…`pw{n-1}` (count = index + 1).
    fn hibp_text(n: usize, eol: &str, final_eol: bool) -> (String, Vec<(String, u64)>) {
        let mut entries: Vec<(String, u64)> = (0..n)
            .map(|i| {
                let h = sha1_upper_hex(&format!("pw{i}"));
                (String::from_utf8(h.to_vec()).unwrap(), i as u64 + 1)
            })
            .collect();
        entries.sort();
        let mut text = entries
            .iter()
            .map(|(h, c)| format!("{h}:{c}"))
            .collect::<Vec<_>>()
            .join(eol);
        if final_eol && n > 0 {
            text.push_str(eol);
        }
        (text, entries)
    }

    fn find(text: &str, key: &str) -> Option<u64> {
        let key: [u8; 40] = key.as_bytes().try_into().unwrap();
        search(&mut Cursor::new(text.as_bytes()), text.len() as u64, &key).unwrap()
    }

    /// `h` with its last hex digit one up or down (`None` past F or 0).
    fn step(h: &str, up: bool) -> Option<String> {
        const DIGITS: &str = "0123456789ABCDEF";
        let d = DIGITS.find(char::from(h.as_bytes()[39]))?;
        let d = if up {
            Some(d + 1).filter(|&d| d < 16)?
        } else {
            d.checked_sub(1)?
        };
        Some(format!("{}{}", &h[..39], &DIGITS[d..=d]))
    }

    #[test]
    fn search_finds_every_entry_and_nothing_else() {
        for n in [0, 1, 2, 3, 4, 5, 7, 8, 16, 31, 100, 257] {
            for eol in ["\n", "\r\n"] {
                for final_eol in [true, false] {
                    let (text, entries) = hibp_text(n, eol, final_eol);
                    let label = format!("n={n} eol={eol:?} final={final_eol}");
                    for (h, c) in &entries {
                        assert_eq!(find(&text, h), Some(*c), "{label} {h}");
                        for up in [true, false] {
                            let Some(other) = step(h, up) else { continue };
                            if !entries.iter().any(|(e, _)| *e == other) {
                                assert_eq!(find(&text, &other), None, "{label} {other}");
                            }
                        }
                    }
                    // Before the first line, after the last.
                    assert_eq!(find(&text, &"0".repeat(40)), None, "{label}");
                    assert_eq!(find(&text, &"F".repeat(40)), None, "{label}");
                    for i in 0..50 {
                        let miss = sha1_upper_hex(&format!("miss{i}"));
                        let miss = std::str::from_utf8(&miss[..]).unwrap().to_owned();
                        assert_eq!(find(&text, &miss), None, "{label}");
                    }
                }
            }
        }
    }

    #[test]
    fn search_edges_first_last_middle_and_extremes() {
        let lines = [
            "0000000000000000000000000000000000000000:5",
            "0000000000000000000000000000000000000002:1",
            "7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF:123456789",
            "8000000000000000000000000000000000000001:3",
            "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF:42",
        ];
        for (eol, final_eol) in [("\n", true), ("\n", false), ("\r\n", true), ("\r\n", false)] {
            let mut text = lines.join(eol);
            if final_eol {
                text.push_str(eol);
            }
            let first = &lines[0][..40];
            assert_eq!(find(&text, first), Some(5));
            assert_eq!(find(&text, &lines[2][..40]), Some(123_456_789));
            assert_eq!(find(&text, &lines[4][..40]), Some(42));
            // Between entries, just either side of the middle one.
            assert_eq!(
                find(&text, "0000000000000000000000000000000000000001"),
                None
            );
            assert_eq!(
                find(&text, "7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFE"),
                None
            );
            assert_eq!(
                find(&text, "8000000000000000000000000000000000000000"),
                None
            );
            assert_eq!(
                find(&text, "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFE"),
                None
            );
            // Lower-case files work too.
            assert_eq!(find(&text.to_lowercase(), &lines[3][..40]), Some(3));
        }
    }

    #[test]
    fn malformed_lines_are_errors_not_misses() {
        let text = "not a hash\nnot a hash either\n";
        let key = [b'A'; 40];
        let err = search(&mut Cursor::new(text.as_bytes()), text.len() as u64, &key);
        assert!(matches!(err, Err(SearchError::BadLine(_))), "{err:?}");
        let long = "A".repeat(1000);
        let err = search(&mut Cursor::new(long.as_bytes()), long.len() as u64, &key);
        assert!(matches!(err, Err(SearchError::BadLine(_))), "{err:?}");
        assert!(parse_entry(b"5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:").is_none());
        assert!(parse_entry(b"5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD:1").is_none());
        assert!(parse_entry(b"5BAA61E4C9B93F3F0682250B6CF8331B7EE68FDG:1").is_none());
        assert!(parse_entry(b"5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:1x").is_none());
        assert_eq!(
            parse_entry(b"5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8:10").map(|(_, c)| c),
            Some(10)
        );
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn file_lookups_with_each_line_ending() {
        let dir = tempfile::tempdir().unwrap();
        let target = "Zebra-Crossing-42";
        for (name, eol, final_eol) in [
            ("lf.txt", "\n", true),
            ("lf-no-final.txt", "\n", false),
            ("crlf.txt", "\r\n", true),
            ("crlf-no-final.txt", "\r\n", false),
        ] {
            let (mut text, entries) = hibp_text(1000, eol, false);
            // The target as an extra entry, keeping the order.
            let hash = String::from_utf8(sha1_upper_hex(target).to_vec()).unwrap();
            let mut all: Vec<String> = text.split(eol).map(str::to_owned).collect();
            all.push(format!("{hash}:99"));
            all.sort();
            text = all.join(eol);
            if final_eol {
                text.push_str(eol);
            }
            let list = BreachedList::open(write(dir.path(), name, &text)).unwrap();
            assert_eq!(list.count(target).unwrap(), Some(99), "{name}");
            assert_eq!(list.count("pw0").unwrap(), Some(1), "{name}");
            assert_eq!(list.count("pw999").unwrap(), Some(1000), "{name}");
            assert_eq!(list.count("not-in-there").unwrap(), None, "{name}");
            assert_eq!(
                list.count("zebra-crossing-42").unwrap(),
                None,
                "HIBP is exact"
            );
            assert_eq!(entries.len(), 1000);
        }
    }

    #[test]
    fn open_refuses_what_would_silently_miss() {
        let dir = tempfile::tempdir().unwrap();
        let err = |path: PathBuf| BreachedList::open(path).unwrap_err().to_string();

        let missing = dir.path().join("missing.txt");
        assert!(err(missing).contains("missing.txt"));
        assert!(err(dir.path().to_owned()).contains("not a regular file"));
        assert!(err(write(dir.path(), "empty.txt", "")).contains("empty"));
        // NTLM hashes are 32 hex digits.
        let ntlm = "8846F7EAEE8FB117AD06BDD830B7586C:1\n";
        assert!(err(write(dir.path(), "ntlm.txt", ntlm)).contains("NTLM"));
        // Ordered by prevalence rather than by hash.
        let (text, _) = hibp_text(500, "\n", true);
        let mut lines: Vec<&str> = text.lines().collect();
        lines.reverse();
        let reversed = lines.join("\n");
        assert!(err(write(dir.path(), "prevalence.txt", &reversed)).contains("ordered by hash"));
        assert!(BreachedList::open(write(dir.path(), "ok.txt", &text)).is_ok());
    }

    #[test]
    fn an_unreadable_list_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let (text, _) = hibp_text(10, "\n", true);
        let path = write(dir.path(), "pwned.txt", &text);
        let p = policy().with_breached_list(BreachedList::open(&path).unwrap());
        std::fs::remove_file(&path).unwrap();
        let err = p.check("mauve-otter-quietly-sings", "alice").unwrap_err();
        assert!(
            matches!(err, PolicyViolation::BreachedListUnusable(_)),
            "{err}"
        );
    }

    /// The cost of a check, printed: `cargo test --release -p tessera-core
    /// password_policy::tests::lookup_cost -- --ignored --nocapture`. Set
    /// `TESSERA_HIBP_FILE` to time a real corpus.
    #[test]
    #[ignore = "a measurement, not a test"]
    fn lookup_cost() {
        use std::time::Instant;

        let t = Instant::now();
        let n = common_passwords().len();
        println!("common list: built {n} entries in {:?}", t.elapsed());
        let probes = ["password1", "Mauve-Otter-Quietly-Sings", "QWERTY123", "x"];
        let rounds = 250_000;
        let t = Instant::now();
        let mut hits = 0;
        for i in 0..rounds {
            hits += usize::from(is_common(probes[i % probes.len()]));
        }
        println!(
            "common list: {:?} per lookup ({hits} hits)",
            t.elapsed() / rounds as u32
        );

        let dir = tempfile::tempdir().unwrap();
        let path = match std::env::var_os("TESSERA_HIBP_FILE") {
            Some(p) => PathBuf::from(p),
            None => {
                let (text, _) = hibp_text(1_000_000, "\r\n", true);
                write(dir.path(), "pwned.txt", &text)
            }
        };
        let size = std::fs::metadata(&path).unwrap().len();
        let t = Instant::now();
        let list = BreachedList::open(&path).unwrap();
        println!(
            "breached list: {size} bytes, opened and checked in {:?}",
            t.elapsed()
        );
        let t = Instant::now();
        let first = list.count("first-lookup-of-this-run").unwrap();
        println!("breached list: first lookup {:?} ({first:?})", t.elapsed());
        let rounds = 2_000;
        let t = Instant::now();
        for _ in 0..rounds {
            list.count("the-same-password").unwrap();
        }
        println!(
            "breached list: {:?} per lookup of one password (pages cached)",
            t.elapsed() / rounds
        );
        let t = Instant::now();
        let mut hits = 0;
        for i in 0..rounds {
            let pw = if i % 2 == 0 {
                format!("pw{i}")
            } else {
                format!("miss{i}")
            };
            hits += usize::from(list.count(&pw).unwrap().is_some());
        }
        println!(
            "breached list: {:?} per lookup of {rounds} different passwords ({hits} hits)",
            t.elapsed() / rounds
        );
        // Reads per lookup, counted through the generic search.
        struct Counting(File, u32);
        impl Read for Counting {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.1 += 1;
                self.0.read(buf)
            }
        }
        impl Seek for Counting {
            fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
                self.0.seek(pos)
            }
        }
        let mut file = Counting(File::open(&path).unwrap(), 0);
        for i in 0..100 {
            search(&mut file, size, &sha1_upper_hex(&format!("probe{i}"))).unwrap();
        }
        println!(
            "breached list: {} reads of 256 bytes per lookup",
            file.1 / 100
        );
    }
}
