//! An explicit cookie jar: records `Set-Cookie`, keeps every attribute so tests can assert
//! them, and sends cookies whose `Path` matches the request path.
//!
//! Deliberately simple and strict where browsers are strict:
//! - cookies are host-only (a `Domain` attribute is recorded but not used for matching);
//! - `__Host-` cookies are refused unless `Secure`, `Path=/` and without `Domain`,
//!   `__Secure-` cookies unless `Secure` (RFC 6265bis §4.1.3), like a browser would;
//! - `Max-Age=0` (or negative) deletes the cookie;
//! - cookies are NOT expired by the clock: tests may keep presenting stale cookies, as an
//!   attacker (or a slow tab) could. Use [`SetCookie::expired_at`] to check expiry.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, SET_COOKIE};

/// One parsed `Set-Cookie` header, with every attribute tessera sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetCookie {
    /// Cookie name.
    pub name: String,
    /// Cookie value (as sent, quotes kept).
    pub value: String,
    /// `Path` attribute, if given.
    pub path: Option<String>,
    /// `Domain` attribute, if given.
    pub domain: Option<String>,
    /// `Max-Age` in seconds, if given and numeric.
    pub max_age: Option<i64>,
    /// `Expires` attribute (raw), if given.
    pub expires: Option<String>,
    /// `Secure` present.
    pub secure: bool,
    /// `HttpOnly` present.
    pub http_only: bool,
    /// `SameSite` value (as written), if given.
    pub same_site: Option<String>,
    /// The whole header value.
    pub raw: String,
    /// When it was received.
    pub received: Instant,
}

impl SetCookie {
    /// Parses one `Set-Cookie` value; `None` if it has no `name=value` pair.
    pub fn parse(raw: &str) -> Option<SetCookie> {
        let mut parts = raw.split(';');
        let (name, value) = parts.next()?.split_once('=')?;
        let name = name.trim();
        if name.is_empty() {
            return None;
        }
        let mut c = SetCookie {
            name: name.to_owned(),
            value: value.trim().to_owned(),
            path: None,
            domain: None,
            max_age: None,
            expires: None,
            secure: false,
            http_only: false,
            same_site: None,
            raw: raw.to_owned(),
            received: Instant::now(),
        };
        for attr in parts {
            let (key, val) = match attr.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (attr.trim(), None),
            };
            match key.to_ascii_lowercase().as_str() {
                "path" => c.path = val.map(str::to_owned),
                "domain" => c.domain = val.map(str::to_owned),
                "max-age" => c.max_age = val.and_then(|v| v.parse().ok()),
                "expires" => c.expires = val.map(str::to_owned),
                "secure" => c.secure = true,
                "httponly" => c.http_only = true,
                "samesite" => c.same_site = val.map(str::to_owned),
                _ => {}
            }
        }
        Some(c)
    }

    /// True if the attributes delete the cookie (`Max-Age` ≤ 0).
    pub fn is_deletion(&self) -> bool {
        self.max_age.is_some_and(|m| m <= 0)
    }

    /// True if a browser would have dropped the cookie by `at` (by `Max-Age`).
    pub fn expired_at(&self, at: Instant) -> bool {
        match self.max_age {
            Some(m) if m <= 0 => true,
            Some(m) => at >= self.received + Duration::from_secs(m.unsigned_abs()),
            None => false,
        }
    }

    /// The `SameSite` value, lower-cased (`"strict"`, `"lax"`, `"none"`).
    pub fn same_site_lower(&self) -> Option<String> {
        self.same_site.as_deref().map(str::to_ascii_lowercase)
    }

    /// Why a browser would refuse this cookie under the `__Host-`/`__Secure-` prefix
    /// rules, if it would.
    pub fn prefix_violation(&self) -> Option<&'static str> {
        if self.name.starts_with("__Host-") {
            if !self.secure {
                return Some("__Host- cookie without Secure");
            }
            if self.domain.is_some() {
                return Some("__Host- cookie with Domain");
            }
            if self.path.as_deref() != Some("/") {
                return Some("__Host- cookie without Path=/");
            }
        }
        if self.name.starts_with("__Secure-") && !self.secure {
            return Some("__Secure- cookie without Secure");
        }
        None
    }

    /// The cookie's effective path for a response to `request_path` (RFC 6265 §5.1.4).
    fn effective_path(&self, request_path: &str) -> String {
        match self.path.as_deref() {
            Some(p) if p.starts_with('/') => p.to_owned(),
            _ => default_path(request_path),
        }
    }
}

/// RFC 6265 §5.1.4 default-path.
fn default_path(request_path: &str) -> String {
    if !request_path.starts_with('/') {
        return "/".into();
    }
    match request_path.rfind('/') {
        Some(0) | None => "/".into(),
        Some(i) => request_path[..i].to_owned(),
    }
}

/// RFC 6265 §5.1.4 path-match.
pub fn path_matches(request_path: &str, cookie_path: &str) -> bool {
    if request_path == cookie_path {
        return true;
    }
    request_path.starts_with(cookie_path)
        && (cookie_path.ends_with('/')
            || request_path.as_bytes().get(cookie_path.len()) == Some(&b'/'))
}

/// A stored cookie.
#[derive(Debug, Clone)]
struct Stored {
    path: String,
    cookie: SetCookie,
}

/// The cookie jar. Clone it to keep a copy of the cookies aside (e.g. before a logout).
#[derive(Debug, Clone, Default)]
pub struct Jar {
    cookies: Vec<Stored>,
    rejected: Vec<(SetCookie, &'static str)>,
}

impl Jar {
    /// An empty jar.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores one cookie received in a response to `request_path`. Returns false if a
    /// browser would refuse it (prefix rules) or it deleted a cookie.
    pub fn store(&mut self, cookie: SetCookie, request_path: &str) -> bool {
        if let Some(why) = cookie.prefix_violation() {
            self.rejected.push((cookie, why));
            return false;
        }
        let path = cookie.effective_path(request_path);
        self.cookies
            .retain(|s| !(s.cookie.name == cookie.name && s.path == path));
        if cookie.is_deletion() {
            return false;
        }
        self.cookies.push(Stored { path, cookie });
        true
    }

    /// Records every `Set-Cookie` of a response to `request_path`; returns them parsed
    /// (including refused and deleting ones).
    pub fn store_response(&mut self, headers: &HeaderMap, request_path: &str) -> Vec<SetCookie> {
        let mut out = Vec::new();
        for v in headers.get_all(SET_COOKIE) {
            let Ok(s) = v.to_str() else { continue };
            if let Some(c) = SetCookie::parse(s) {
                self.store(c.clone(), request_path);
                out.push(c);
            }
        }
        out
    }

    /// Sets a cookie by hand (as if received with `Path=path`).
    pub fn insert(&mut self, name: &str, value: &str, path: &str) {
        let raw = format!("{name}={value}; Path={path}; Secure");
        if let Some(c) = SetCookie::parse(&raw) {
            self.cookies
                .retain(|s| !(s.cookie.name == name && s.path == path));
            self.cookies.push(Stored {
                path: path.to_owned(),
                cookie: c,
            });
        }
    }

    /// Removes every cookie called `name`.
    pub fn remove(&mut self, name: &str) {
        self.cookies.retain(|s| s.cookie.name != name);
    }

    /// The cookie called `name` (the first stored, if several paths).
    pub fn get(&self, name: &str) -> Option<&SetCookie> {
        self.cookies
            .iter()
            .find(|s| s.cookie.name == name)
            .map(|s| &s.cookie)
    }

    /// The value of the cookie called `name`.
    pub fn value(&self, name: &str) -> Option<String> {
        self.get(name).map(|c| c.value.clone())
    }

    /// Names of the stored cookies.
    pub fn names(&self) -> Vec<String> {
        self.cookies.iter().map(|s| s.cookie.name.clone()).collect()
    }

    /// Number of stored cookies.
    pub fn len(&self) -> usize {
        self.cookies.len()
    }

    /// True if no cookie is stored.
    pub fn is_empty(&self) -> bool {
        self.cookies.is_empty()
    }

    /// Cookies a browser refused (and why).
    pub fn rejected(&self) -> &[(SetCookie, &'static str)] {
        &self.rejected
    }

    /// The `Cookie` header for a request to `request_path` (longer paths first, RFC 6265
    /// §5.4), or `None` if no cookie matches.
    pub fn cookie_header(&self, request_path: &str) -> Option<String> {
        let path = request_path.split(['?', '#']).next().unwrap_or("/");
        let mut matching: Vec<&Stored> = self
            .cookies
            .iter()
            .filter(|s| path_matches(path, &s.path))
            .collect();
        matching.sort_by_key(|s| std::cmp::Reverse(s.path.len()));
        if matching.is_empty() {
            return None;
        }
        Some(
            matching
                .iter()
                .map(|s| format!("{}={}", s.cookie.name, s.cookie.value))
                .collect::<Vec<_>>()
                .join("; "),
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn parses_attributes() {
        let c =
            SetCookie::parse("__Host-a=v1; Path=/; Max-Age=600; Secure; SameSite=Lax; HttpOnly")
                .unwrap();
        assert_eq!(c.name, "__Host-a");
        assert_eq!(c.value, "v1");
        assert_eq!(c.path.as_deref(), Some("/"));
        assert_eq!(c.max_age, Some(600));
        assert!(c.secure && c.http_only);
        assert_eq!(c.same_site_lower().as_deref(), Some("lax"));
        assert!(c.prefix_violation().is_none());
        assert!(SetCookie::parse("__Host-a=1; Path=/auth; Secure")
            .unwrap()
            .prefix_violation()
            .is_some());
    }

    #[test]
    fn path_matching_and_deletion() {
        let mut jar = Jar::new();
        assert!(jar.store(
            SetCookie::parse("a=1; Path=/; Secure").unwrap(),
            "/auth/login"
        ));
        assert!(jar.store(
            SetCookie::parse("r=2; Path=/auth; Secure").unwrap(),
            "/auth/login"
        ));
        assert_eq!(jar.cookie_header("/api/notes").as_deref(), Some("a=1"));
        assert_eq!(
            jar.cookie_header("/auth/refresh").as_deref(),
            Some("r=2; a=1")
        );
        assert_eq!(jar.cookie_header("/auth").as_deref(), Some("r=2; a=1"));
        assert_eq!(jar.cookie_header("/authx").as_deref(), Some("a=1"));
        assert!(!jar.store(
            SetCookie::parse("r=; Path=/auth; Max-Age=0; Secure").unwrap(),
            "/auth/logout"
        ));
        assert_eq!(jar.cookie_header("/auth/refresh").as_deref(), Some("a=1"));
        assert_eq!(default_path("/auth/login"), "/auth");
        assert_eq!(default_path("/x"), "/");
    }
}
