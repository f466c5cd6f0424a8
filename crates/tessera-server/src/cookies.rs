//! Tessera's cookies: names, attributes, and a strict reader of the `Cookie` header.

use axum::http::{header, HeaderMap, HeaderValue};

use crate::config::CookieMode;
use crate::error::AppError;

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

/// Every tessera cookie name.
pub const ALL: [&str; 5] = [CLAIMS, SIG, ACCESS, REFRESH, CSRF];

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
}

impl TesseraCookies<'_> {
    /// True if any access-token cookie is present.
    pub fn has_access(&self) -> bool {
        self.claims.is_some() || self.sig.is_some() || self.access.is_some()
    }
}

/// `HeaderValue::to_str` (visible ASCII and tab only), branch-free so that it vectorises:
/// cookie headers are the longest a request carries, and are read twice.
fn visible_str(v: &HeaderValue) -> Option<&str> {
    let bytes = v.as_bytes();
    let bad = bytes.iter().fold(0u8, |acc, &b| {
        acc | u8::from(!(b == b'\t' || (0x20..0x7f).contains(&b)))
    });
    if bad != 0 {
        return None;
    }
    std::str::from_utf8(bytes).ok()
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
                "invalid_request",
                "cookies too large",
            ));
        }
        let Some(s) = visible_str(value) else {
            continue;
        };
        for pair in s.split(';') {
            let Some((name, val)) = pair.trim().split_once('=') else {
                continue;
            };
            let slot = match name.trim() {
                CLAIMS => &mut out.claims,
                SIG => &mut out.sig,
                ACCESS => &mut out.access,
                REFRESH => &mut out.refresh,
                CSRF => &mut out.csrf,
                _ => continue,
            };
            if slot.is_some() {
                return Err(AppError::invalid_request("duplicate tessera cookie"));
            }
            *slot = Some(val.trim().trim_matches('"'));
        }
    }
    Ok(out)
}

/// Removes tessera's cookies from the `Cookie` headers, keeping the others (for the
/// upstream). Returns the rewritten header value, or `None` if nothing is left.
pub fn strip(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut kept = String::new();
    for value in headers.get_all(header::COOKIE) {
        let Some(s) = visible_str(value) else {
            continue;
        };
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
    if kept.is_empty() {
        return None;
    }
    HeaderValue::from_str(&kept).ok()
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

/// Appends `Set-Cookie` headers that delete every tessera cookie (`Max-Age=0`).
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
    fn visible_str_agrees_with_to_str() {
        for b in 0..=255u8 {
            let Ok(v) = HeaderValue::from_bytes(&[b'a', b, b'z']) else {
                continue;
            };
            assert_eq!(visible_str(&v), v.to_str().ok(), "byte {b:#x}");
        }
    }

    #[test]
    fn reads_across_split_headers_and_refuses_duplicates() {
        let h = headers(&["a=1; __Host-tessera-claims=abc", "__Host-tessera-sig=h.s"]);
        let c = read(&h).unwrap();
        assert_eq!(c.claims, Some("abc"));
        assert_eq!(c.sig, Some("h.s"));
        let h = headers(&["__Host-tessera-sig=x; __Host-tessera-sig=y"]);
        assert_eq!(read(&h).unwrap_err().code(), "invalid_request");
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
