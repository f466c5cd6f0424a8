//! Tessera's cookies: names, attributes, and a strict reader of the `Cookie` header.

use axum::http::{header, HeaderMap, HeaderValue};

use crate::config::CookieMode;
use crate::http::error::{AppError, ErrorCode};

/// Split mode: the JWT payload segment, readable by script.
pub const CLAIMS: &str = "__Host-tessera-claims";
/// Split mode: `header.signature`, HttpOnly.
pub const SIG: &str = "__Host-tessera-sig";
/// Whole mode: the whole JWT, HttpOnly.
pub const ACCESS: &str = "__Host-tessera-access";
/// The refresh token, HttpOnly, only sent to `/auth`.
pub const REFRESH: &str = "__Secure-tessera-refresh";
/// The CSRF token, readable by script.
pub const CSRF: &str = "__Host-tessera-csrf";
/// The device token (a known device for the per-user login limit), HttpOnly, only sent to
/// `/auth`. It outlives sessions: logout does not clear it.
pub const DEVICE: &str = "__Secure-tessera-device";

/// Every tessera cookie name.
pub const ALL: [&str; 6] = [CLAIMS, SIG, ACCESS, REFRESH, CSRF, DEVICE];

/// Most bytes of `Cookie` headers read (RFC 6265 user agents keep ≤ 4096 per cookie).
const MAX_COOKIE_HEADER: usize = 8192;

/// The tessera cookies a request carries.
#[derive(Debug, Default, Clone)]
pub struct TesseraCookies<'a> {
    /// `__Host-tessera-claims`.
    pub claims: Option<&'a str>,
    /// `__Host-tessera-sig`.
    pub sig: Option<&'a str>,
    /// `__Host-tessera-access`.
    pub access: Option<&'a str>,
    /// `__Secure-tessera-refresh`.
    pub refresh: Option<&'a str>,
    /// `__Host-tessera-csrf`.
    pub csrf: Option<&'a str>,
    /// `__Secure-tessera-device`.
    pub device: Option<&'a str>,
    /// Something besides tessera's cookies is there (another cookie, or a pair without
    /// `=`): exactly when [`strip`] leaves anything for the upstream.
    pub others: bool,
}

impl TesseraCookies<'_> {
    /// True if any access-token cookie is present.
    pub fn has_access(&self) -> bool {
        self.claims.is_some() || self.sig.is_some() || self.access.is_some()
    }
}

/// `HeaderValue::to_str`'s rule (visible ASCII and tab only), branch-free so that it
/// vectorises: cookie headers are the longest a request carries. A header that breaks it
/// is ignored whole, as before.
fn visible(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |acc, &b| {
        acc | u8::from(!(b == b'\t' || (0x20..0x7f).contains(&b)))
    }) == 0
}

/// The `;`-separated pairs of one visible `Cookie` header, trimmed (SIMD search for the
/// separators: this runs twice on every proxied request).
fn pairs(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    memchr::memchr_iter(b';', bytes)
        .chain(std::iter::once(bytes.len()))
        .map(move |end| {
            let pair = &bytes[start..end];
            start = end + 1;
            pair.trim_ascii()
        })
}

/// A pair's name and value (`None` without `=`), both trimmed.
fn split_pair(pair: &[u8]) -> Option<(&[u8], &[u8])> {
    let eq = memchr::memchr(b'=', pair)?;
    Some((pair[..eq].trim_ascii(), pair[eq + 1..].trim_ascii()))
}

/// Reads tessera's cookies from every `Cookie` header (HTTP/2 may split them).
/// A tessera cookie given twice (cookie injection or tossing) is refused with 400; other
/// cookies are ignored.
pub fn read(headers: &HeaderMap) -> Result<TesseraCookies<'_>, AppError> {
    let mut out = TesseraCookies::default();
    let mut total = 0usize;
    for value in headers.get_all(header::COOKIE) {
        total += value.len();
        if total > MAX_COOKIE_HEADER {
            return Err(AppError::new(
                axum::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                ErrorCode::InvalidRequest,
                "cookies too large",
            ));
        }
        let bytes = value.as_bytes();
        if !visible(bytes) {
            continue;
        }
        for pair in pairs(bytes) {
            let Some((name, val)) = split_pair(pair) else {
                out.others |= !pair.is_empty();
                continue;
            };
            let slot = match name {
                n if n == CLAIMS.as_bytes() => &mut out.claims,
                n if n == SIG.as_bytes() => &mut out.sig,
                n if n == ACCESS.as_bytes() => &mut out.access,
                n if n == REFRESH.as_bytes() => &mut out.refresh,
                n if n == CSRF.as_bytes() => &mut out.csrf,
                n if n == DEVICE.as_bytes() => &mut out.device,
                _ => {
                    out.others = true;
                    continue;
                }
            };
            if slot.is_some() {
                return Err(AppError::invalid_request("duplicate tessera cookie"));
            }
            let mut val = val;
            while let [b'"', rest @ ..] = val {
                val = rest;
            }
            while let [rest @ .., b'"'] = val {
                val = rest;
            }
            // `visible` let only tab and visible ASCII through, so this cannot fail.
            let text = std::str::from_utf8(val)
                .map_err(|_| AppError::invalid_request("cookie value is not text"))?;
            *slot = Some(text);
        }
    }
    Ok(out)
}

/// Removes tessera's cookies from the `Cookie` headers, keeping the others (for the
/// upstream). Returns the rewritten header value, or `None` if nothing is left.
pub fn strip(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut kept: Vec<u8> = Vec::new();
    for value in headers.get_all(header::COOKIE) {
        let bytes = value.as_bytes();
        if !visible(bytes) {
            continue;
        }
        for pair in pairs(bytes) {
            let name = split_pair(pair).map_or(pair, |(n, _)| n);
            if pair.is_empty() || ALL.iter().any(|c| c.as_bytes() == name) {
                continue;
            }
            if !kept.is_empty() {
                kept.extend_from_slice(b"; ");
            }
            kept.extend_from_slice(pair);
        }
    }
    if kept.is_empty() {
        return None;
    }
    HeaderValue::from_bytes(&kept).ok()
}

/// A `Set-Cookie` value. Every tessera cookie is `Secure`, has an explicit `SameSite` and
/// no `Domain`; `__Host-` cookies have `Path=/`.
fn set(
    name: &str,
    value: &str,
    max_age: u64,
    http_only: bool,
    same_site: &str,
    path: &str,
) -> Option<HeaderValue> {
    let mut s =
        format!("{name}={value}; Path={path}; Max-Age={max_age}; Secure; SameSite={same_site}");
    if http_only {
        s.push_str("; HttpOnly");
    }
    HeaderValue::from_str(&s).ok()
}

/// What a login or refresh sets.
pub struct Issued<'a> {
    /// The access token (compact JWS).
    pub access_token: &'a str,
    /// Its lifetime in seconds.
    pub access_ttl: u64,
    /// The refresh token.
    pub refresh_token: &'a str,
    /// Seconds until the session's absolute end (bounds the refresh cookie).
    pub refresh_max_age: u64,
    /// The CSRF token.
    pub csrf_token: &'a str,
}

/// Appends the `Set-Cookie` headers for a fresh access token, refresh token and CSRF token.
pub fn append_issued(headers: &mut HeaderMap, mode: CookieMode, issued: &Issued<'_>) {
    let mut add = |v: Option<HeaderValue>| {
        if let Some(v) = v {
            headers.append(header::SET_COOKIE, v);
        }
    };
    match mode {
        CookieMode::Split => {
            if let Some((payload, sig)) =
                tessera_core::TokenParts::split_cookies(issued.access_token)
            {
                add(set(CLAIMS, &payload, issued.access_ttl, false, "Lax", "/"));
                add(set(SIG, &sig, issued.access_ttl, true, "Lax", "/"));
            }
        }
        CookieMode::Whole => add(set(
            ACCESS,
            issued.access_token,
            issued.access_ttl,
            true,
            "Lax",
            "/",
        )),
    }
    add(set(
        REFRESH,
        issued.refresh_token,
        issued.refresh_max_age,
        true,
        "Strict",
        "/auth",
    ));
    // The CSRF cookie lives as long as the session can, so the SPA can refresh with it.
    add(set(
        CSRF,
        issued.csrf_token,
        issued.refresh_max_age,
        false,
        "Strict",
        "/",
    ));
}

/// Appends the `Set-Cookie` header of a device token that lives `max_age` seconds.
pub fn append_device(headers: &mut HeaderMap, token: &str, max_age: u64) {
    if let Some(v) = set(DEVICE, token, max_age, true, "Strict", "/auth") {
        headers.append(header::SET_COOKIE, v);
    }
}

/// Appends `Set-Cookie` headers that delete every tessera cookie of a session
/// (`Max-Age=0`); the device cookie stays, since it is about the device, not the session.
pub fn append_clear_all(headers: &mut HeaderMap) {
    for (name, http_only, same_site, path) in [
        (CLAIMS, false, "Lax", "/"),
        (SIG, true, "Lax", "/"),
        (ACCESS, true, "Lax", "/"),
        (REFRESH, true, "Strict", "/auth"),
        (CSRF, false, "Strict", "/"),
    ] {
        if let Some(v) = set(name, "", 0, http_only, same_site, path) {
            headers.append(header::SET_COOKIE, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::COOKIE, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn visible_agrees_with_to_str() {
        for b in 0..=255u8 {
            let Ok(v) = HeaderValue::from_bytes(&[b'a', b, b'z']) else {
                continue;
            };
            assert_eq!(visible(v.as_bytes()), v.to_str().is_ok(), "byte {b:#x}");
        }
    }

    /// The byte-level reader and stripper give what the `str` versions they replaced gave.
    #[test]
    fn byte_level_parsing_matches_the_str_reference() {
        fn reference_strip(h: &HeaderMap) -> Option<String> {
            let mut kept = String::new();
            for value in h.get_all(header::COOKIE) {
                let Ok(s) = value.to_str() else { continue };
                for pair in s.split(';') {
                    let pair = pair.trim();
                    let name = pair.split_once('=').map_or(pair, |(n, _)| n).trim();
                    if pair.is_empty() || ALL.contains(&name) {
                        continue;
                    }
                    if !kept.is_empty() {
                        kept.push_str("; ");
                    }
                    kept.push_str(pair);
                }
            }
            (!kept.is_empty()).then_some(kept)
        }
        /// The old reader: every tessera cookie, or `Err` for a duplicate.
        fn reference_read(h: &HeaderMap) -> Result<Vec<Option<String>>, ()> {
            let mut found: Vec<Option<String>> = vec![None; ALL.len()];
            for value in h.get_all(header::COOKIE) {
                let Ok(s) = value.to_str() else { continue };
                for pair in s.split(';') {
                    let Some((n, v)) = pair.trim().split_once('=') else {
                        continue;
                    };
                    let Some(i) = ALL.iter().position(|c| *c == n.trim()) else {
                        continue;
                    };
                    if found[i].is_some() {
                        return Err(());
                    }
                    found[i] = Some(v.trim().trim_matches('"').to_owned());
                }
            }
            Ok(found)
        }
        let pieces = [
            "a=1",
            " b = 2 ",
            "__Host-tessera-sig=h.s",
            "__Host-tessera-sig = \"q.r\" ",
            "\t__Host-tessera-claims=abc",
            "__Host-tessera-claimsx=1",
            "c",
            "",
            " ",
            "=v",
            "d=e=f",
            "__Secure-tessera-refresh=r",
            "x=\"\"",
            "\u{e9}=1",
            "y=\x01",
        ];
        let mut seed = 7u64;
        for _ in 0..5_000 {
            let mut h = HeaderMap::new();
            for _ in 0..(seed % 2 + 1) {
                let mut v = String::new();
                for i in 0..(seed % 5) {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    if i > 0 {
                        v.push(';');
                    }
                    v.push_str(pieces[(seed >> 33) as usize % pieces.len()]);
                }
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                if let Ok(v) = HeaderValue::from_bytes(v.as_bytes()) {
                    h.append(header::COOKIE, v);
                }
            }
            assert_eq!(
                strip(&h).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
                reference_strip(&h),
                "{h:?}"
            );
            if let Ok(c) = read(&h) {
                assert_eq!(c.others, strip(&h).is_some(), "{h:?}");
            }
            let got = read(&h).map(|c| {
                [c.claims, c.sig, c.access, c.refresh, c.csrf, c.device]
                    .map(|v| v.map(str::to_owned))
                    .to_vec()
            });
            assert_eq!(got.map_err(|_| ()), reference_read(&h), "{h:?}");
        }
    }

    #[test]
    fn reads_across_split_headers_and_refuses_duplicates() {
        let h = headers(&["a=1; __Host-tessera-claims=abc", "__Host-tessera-sig=h.s"]);
        let c = read(&h).unwrap();
        assert_eq!(c.claims, Some("abc"));
        assert_eq!(c.sig, Some("h.s"));
        let h = headers(&["__Host-tessera-sig=x; __Host-tessera-sig=y"]);
        assert_eq!(
            read(&h).unwrap_err().code(),
            crate::http::error::ErrorCode::InvalidRequest
        );
        let big = format!("x={}", "a".repeat(9000));
        assert!(read(&headers(&[&big])).is_err());
    }

    #[test]
    fn strip_keeps_foreign_cookies_only() {
        let h = headers(&[
            "a=1; __Host-tessera-sig=x; b=2",
            "__Secure-tessera-refresh=r",
        ]);
        assert_eq!(strip(&h).unwrap(), "a=1; b=2");
        assert!(strip(&headers(&["__Host-tessera-csrf=z"])).is_none());
    }
}
