//! Which request headers reach the upstream and which response headers come back:
//! hop-by-hop, identity, forwarding and rewrite headers, and the identity headers
//! tessera writes.

use axum::http::{header, HeaderMap, HeaderName, HeaderValue};

use crate::auth::Identity;
use crate::http::cookies;
use crate::http::peer::PeerAddr;
use crate::state::AppState;

/// Headers never forwarded in either direction (RFC 9110 §7.6.1) besides those named in
/// `Connection`.
pub(crate) fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// The names a `Connection` header lists (hop-by-hop for this message). Empty, without
/// allocating, when there is none, as on almost every request.
fn connection_listed(h: &HeaderMap) -> Vec<HeaderName> {
    h.get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect()
}

/// Identity-looking request headers a client must never be able to set: tessera's own, and
/// those other authenticating proxies and their applications trust (`Remote-User`,
/// oauth2-proxy's `X-Auth-Request-*` and `X-Forwarded-User/-Email/-Groups/-Access-Token`,
/// Grafana's `X-WEBAUTH-*`, Kong's `X-Consumer-*` and `X-Authenticated-*`, cloud load
/// balancers' `X-Amzn-Oidc-*`, `X-Goog-Authenticated-User-*`, `X-Ms-Client-Principal*`,
/// client-certificate headers). `name` is lower case (as `HeaderName` always is); names
/// spelled with `_` or other separators are dropped before this (see
/// [`is_plain_header_name`]).
fn is_spoofable_identity(name: &str) -> bool {
    const PREFIXES: [&str; 16] = [
        "x-tessera-",
        "x-remote-",
        "x-auth-",
        "x-authenticated-",
        "x-user",
        "x-forwarded-user",
        "x-forwarded-email",
        "x-forwarded-groups",
        "x-forwarded-preferred-username",
        "x-forwarded-access-token",
        "x-webauth-",
        "x-consumer-",
        "x-amzn-oidc-",
        "x-goog-authenticated-user-",
        "x-ms-client-principal",
        "x-ssl-client-",
    ];
    // Most headers start with another letter: one comparison and done.
    if !matches!(name.as_bytes().first(), Some(b'x' | b'r' | b's')) {
        return false;
    }
    PREFIXES.iter().any(|p| name.starts_with(p))
        || matches!(
            name,
            "remote-user"
                | "remote-groups"
                | "x-credential-identifier"
                | "x-client-cert"
                | "x-forwarded-client-cert"
                | "ssl-client-cert"
        )
}

/// True if a request header name is made of ASCII letters, digits and `-` only. Others
/// are dropped on the way upstream, as nginx does by default (`underscores_in_headers
/// off`, `ignore_invalid_headers on`): CGI, WSGI and many frameworks turn `-` and `_` (and
/// some other separators) into the same variable name, so `X-Tessera_Roles` or
/// `X_Forwarded_For` would otherwise arrive there as `X-Tessera-Roles` or
/// `X-Forwarded-For`, past every rule below that matches on names.
fn is_plain_header_name(name: &str) -> bool {
    name.bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Request headers that are tessera's business and never the upstream's: credentials
/// (tessera's cookies are stripped from `Cookie` separately), the client's `Host`, and
/// method overrides, which would let a GET (no CSRF check) act as a DELETE upstream.
fn is_consumed_here(name: &str) -> bool {
    matches!(
        name,
        "authorization"
            | "host"
            | "cookie"
            | "dpop"
            | "x-csrf-token"
            | "x-http-method-override"
            | "x-http-method"
            | "x-method-override"
    )
}

/// Forwarding headers: what a proxy says about the client and the request it received
/// (address, scheme, host, port, prefix). Kept from `trusted_proxies` peers only; from any
/// other peer they are the client's word and are dropped (tessera then writes its own
/// `X-Forwarded-For`, `-Proto` and `-Host`).
fn is_forwarding(name: &str) -> bool {
    name.starts_with("x-forwarded-")
        || matches!(
            name,
            "forwarded"
                | "x-forwarded"
                | "forwarded-for"
                | "x-real-ip"
                | "true-client-ip"
                | "x-client-ip"
                | "client-ip"
                | "cf-connecting-ip"
                | "x-cluster-client-ip"
                | "fastly-client-ip"
                | "x-originating-ip"
                | "x-proxyuser-ip"
                | "x-url-scheme"
                | "front-end-https"
        )
}

/// Rewrite headers: they tell an upstream (IIS, Symfony, Laminas and others) to serve
/// another path, method or host than the request's own. Tessera checked the request's own
/// path and method, so they are dropped from every peer, trusted or not.
fn is_rewrite(name: &str) -> bool {
    matches!(
        name,
        "x-original-url"
            | "x-rewrite-url"
            | "x-original-uri"
            | "x-forwarded-uri"
            | "x-forwarded-path"
            | "x-original-method"
            | "x-forwarded-method"
            | "x-original-host"
            | "x-host"
            | "x-http-host-override"
    )
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) const SIGNATURE_INPUT: HeaderName = HeaderName::from_static("signature-input");
const X_TESSERA_CLIENT: HeaderName = HeaderName::from_static("x-tessera-client");

/// Where [`upstream_request_headers`] puts the upstream's headers: a `HeaderMap` for
/// hyper's client (and forward-auth's answer), or the request head the HTTP/1.1 client
/// writes.
pub(crate) trait HeaderSink {
    /// A header whose value is already a `HeaderValue` (shared, not copied).
    fn header(&mut self, name: &HeaderName, value: &HeaderValue);
    /// A header whose value is `parts` joined with `,`, dropped (as `HeaderValue` would
    /// refuse it) if any byte is a control character other than tab.
    fn text<'a>(&mut self, name: &HeaderName, parts: impl Iterator<Item = &'a str> + Clone);
}

impl HeaderSink for HeaderMap {
    fn header(&mut self, name: &HeaderName, value: &HeaderValue) {
        self.append(name.clone(), value.clone());
    }
    fn text<'a>(&mut self, name: &HeaderName, parts: impl Iterator<Item = &'a str> + Clone) {
        if let Ok(v) = HeaderValue::from_str(&parts.collect::<Vec<_>>().join(",")) {
            self.append(name.clone(), v);
        }
    }
}

impl HeaderSink for crate::upstream::client::RequestHead {
    fn header(&mut self, name: &HeaderName, value: &HeaderValue) {
        crate::upstream::client::RequestHead::header(self, name, value);
    }
    fn text<'a>(&mut self, name: &HeaderName, parts: impl Iterator<Item = &'a str> + Clone) {
        crate::upstream::client::RequestHead::text(self, name, parts);
    }
}

const X_TESSERA_USER: HeaderName = HeaderName::from_static("x-tessera-user");
const X_TESSERA_USERNAME: HeaderName = HeaderName::from_static("x-tessera-username");
const X_TESSERA_ROLES: HeaderName = HeaderName::from_static("x-tessera-roles");
const X_TESSERA_SESSION: HeaderName = HeaderName::from_static("x-tessera-session");
const X_TESSERA_AMR: HeaderName = HeaderName::from_static("x-tessera-amr");
const X_TESSERA_AUTH_TIME: HeaderName = HeaderName::from_static("x-tessera-auth-time");

/// The identity headers sent upstream and returned by forward-auth, written straight from
/// the claims. A value that is not valid header text (cannot happen for tokens tessera
/// signed) is left out.
pub(crate) fn identity_headers(identity: &Identity, out: &mut impl HeaderSink) {
    let c = &identity.claims;
    out.text(&X_TESSERA_USER, std::iter::once(c.sub.as_str()));
    out.text(&X_TESSERA_USERNAME, std::iter::once(c.username.as_str()));
    out.text(&X_TESSERA_ROLES, c.roles.iter().map(|r| r.as_str()));
    out.text(&X_TESSERA_SESSION, std::iter::once(c.sid.as_str()));
    if !c.amr.is_empty() {
        out.text(&X_TESSERA_AMR, c.amr.iter().map(|m| m.as_str()));
    }
    if c.auth_time != 0 {
        let mut digits = [0u8; 20];
        out.text(
            &X_TESSERA_AUTH_TIME,
            std::iter::once(decimal(c.auth_time, &mut digits)),
        );
    }
}

/// `n` in decimal, written into `buf` (no allocation on the proxy path).
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

/// Who the upstream is told made the request.
#[derive(Debug, Clone, Copy)]
pub enum Caller<'a> {
    /// A public path: no identity headers.
    Anonymous,
    /// A user with a verified token.
    User(&'a Identity),
    /// A service client with a verified request signature.
    Client(&'a str),
}

/// The headers the upstream gets, handed to `out` one by one (client values shared, not
/// copied; tessera's written straight from the claims): the client's headers that may go
/// on, then tessera's own. Both upstream clients take their headers from here, so the
/// rules cannot drift apart.
pub(crate) fn upstream_request_headers(
    state: &AppState,
    src: &HeaderMap,
    peer: Option<PeerAddr>,
    caller: Caller<'_>,
    out: &mut impl HeaderSink,
) {
    let peer_trusted = peer.is_some_and(|p| state.config.trusted_proxies.contains(&p.0.ip()));
    let signed = matches!(caller, Caller::Client(_));
    let listed = connection_listed(src);
    // What a trusted proxy in front of tessera said about the client, kept only from one.
    let mut prior_for: Option<String> = None;
    let mut has_proto = false;
    let mut has_host = false;
    for (name, value) in src {
        let n = name.as_str();
        let dropped = !is_plain_header_name(n)
            || is_hop_by_hop(n)
            || is_spoofable_identity(n)
            || is_consumed_here(n)
            || is_rewrite(n)
            || (!peer_trusted && is_forwarding(n))
            // The signature was for tessera; the upstream gets the verified name instead.
            || (signed && (n == "signature" || n == "signature-input"))
            || listed.contains(name);
        if dropped {
            continue;
        }
        if name == X_FORWARDED_FOR {
            // Joined with the peer's address below (every value, in order).
            if let Ok(v) = value.to_str() {
                match &mut prior_for {
                    Some(p) => {
                        p.push_str(", ");
                        p.push_str(v);
                    }
                    None => prior_for = Some(v.to_owned()),
                }
            }
            continue;
        }
        has_proto |= name == X_FORWARDED_PROTO;
        has_host |= name == X_FORWARDED_HOST;
        out.header(name, value);
    }
    // The cookie reader already saw whether anything but tessera's cookies is there.
    let nothing_to_keep = matches!(caller, Caller::User(id) if id.only_tessera_cookies);
    if !nothing_to_keep {
        if let Some(c) = cookies::strip(src) {
            out.header(&header::COOKIE, &c);
        }
    }
    if let Some(p) = peer {
        let value = match prior_for {
            Some(mut prior) => {
                prior.push_str(", ");
                push_ip(&mut prior, p.0.ip());
                prior
            }
            None => {
                let mut s = String::with_capacity(15);
                push_ip(&mut s, p.0.ip());
                s
            }
        };
        out.text(&X_FORWARDED_FOR, std::iter::once(value.as_str()));
    }
    if !has_proto {
        out.text(
            &X_FORWARDED_PROTO,
            std::iter::once(if state.tls { "https" } else { "http" }),
        );
    }
    if !has_host {
        // The host the browser was told to use, never the client's `Host` (or HTTP/2
        // `:authority`): a client may send any, and upstreams build links and redirects
        // from this one.
        out.text(&X_FORWARDED_HOST, std::iter::once(public_host(state)));
    }
    match caller {
        Caller::Anonymous => {}
        Caller::User(identity) => identity_headers(identity, out),
        Caller::Client(name) => out.text(&X_TESSERA_CLIENT, std::iter::once(name)),
    }
}

/// `public_origin` without its scheme: `host[:port]`.
fn public_host(state: &AppState) -> &str {
    let o = state.public_origin.as_str();
    o.split_once("://").map_or(o, |(_, rest)| rest)
}

/// Appends `ip` in its usual text form; IPv4 (nearly every peer) without the formatting
/// machinery, which cost more than the rest of this header's work together.
fn push_ip(out: &mut String, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                if octet >= 100 {
                    out.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    out.push(char::from(b'0' + octet / 10 % 10));
                }
                out.push(char::from(b'0' + octet % 10));
            }
        }
        std::net::IpAddr::V6(v6) => {
            use std::fmt::Write as _;
            let _ = write!(out, "{v6}");
        }
    }
}

/// Hop-by-hop headers and tessera's cookies are dropped from the upstream's answer; the
/// map is only rebuilt when one is there (rare), after one read-only pass.
pub(crate) fn clean_response_headers(h: &mut HeaderMap) {
    let tessera_cookie = |v: &HeaderValue| {
        let name = v
            .to_str()
            .ok()
            .and_then(|s| s.split('=').next())
            .map(str::trim)
            .unwrap_or("");
        cookies::ALL.iter().any(|c| c.eq_ignore_ascii_case(name))
    };
    let listed = connection_listed(h);
    let drop = |name: &HeaderName, value: &HeaderValue| {
        is_hop_by_hop(name.as_str())
            || listed.contains(name)
            // The upstream may not set, replace or clear tessera's cookies.
            || (name == header::SET_COOKIE && tessera_cookie(value))
    };
    if !h.iter().any(|(n, v)| drop(n, v)) {
        return;
    }
    let old = std::mem::take(h);
    h.reserve(old.len());
    for (name, value) in &old {
        if !drop(name, value) {
            h.append(name.clone(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderName, Method};

    #[test]
    fn peer_addresses_are_written_as_std_writes_them() {
        for ip in [
            "0.0.0.0",
            "1.2.3.4",
            "10.0.99.100",
            "127.0.0.1",
            "255.255.255.255",
            "192.168.10.9",
            "::1",
            "2001:db8::8:800:200c:417a",
            "::ffff:1.2.3.4",
        ] {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            let mut s = String::new();
            push_ip(&mut s, ip);
            assert_eq!(s, ip.to_string());
        }
        for n in 0..=255u8 {
            let ip = std::net::IpAddr::from([n, n / 3, 255 - n, n % 10]);
            let mut s = String::new();
            push_ip(&mut s, ip);
            assert_eq!(s, ip.to_string());
        }
    }

    #[test]
    fn both_sinks_take_the_same_text() {
        let up = crate::upstream::client::Http1::new(
            "127.0.0.1:1".into(),
            HeaderValue::from_static("api"),
            1,
            std::time::Duration::from_secs(1),
            std::time::Duration::from_secs(1),
        );
        let name = HeaderName::from_static("x-t");
        for b in 0..=255u8 {
            let s = String::from_utf8_lossy(&[b'a', b]).into_owned();
            let mut map = HeaderMap::new();
            HeaderSink::text(&mut map, &name, [s.as_str(), "z"].into_iter());
            let mut head = up.head(&Method::GET, "/", 1);
            let written = head.text(&name, [s.as_str(), "z"]);
            assert_eq!(written, map.contains_key(&name), "byte {b:#x}");
        }
    }

    #[test]
    fn decimal_writes_what_to_string_writes() {
        for n in [0, 1, 9, 10, 99, 1_799_999_000, u64::MAX] {
            let mut buf = [0u8; 20];
            assert_eq!(decimal(n, &mut buf), n.to_string());
        }
    }

    #[test]
    fn identity_headers_from_clients_are_spoofable() {
        for n in [
            "x-tessera-user",
            "x-remote-user",
            "x-forwarded-user",
            "x-user-id",
            "x-auth-request-email",
            "remote-user",
        ] {
            assert!(is_spoofable_identity(n), "{n}");
        }
        assert!(!is_spoofable_identity("x-request-id"));
        for n in [
            "x-authenticated-userid",
            "x-webauth-user",
            "x-consumer-username",
            "x-amzn-oidc-identity",
            "x-goog-authenticated-user-email",
            "x-ms-client-principal-name",
            "x-forwarded-access-token",
            "x-forwarded-client-cert",
            "remote-groups",
        ] {
            assert!(is_spoofable_identity(n), "{n}");
        }
    }

    /// Only letters, digits and `-`: every name a CGI/WSGI upstream could merge with
    /// another (`_`, `.`, `~` …) is dropped, as nginx drops them by default.
    #[test]
    fn header_names_with_other_characters_are_not_plain() {
        for ok in ["x-tessera-user", "content-type", "sec-ch-ua", "x-h2"] {
            assert!(is_plain_header_name(ok), "{ok}");
        }
        for bad in [
            "x-tessera_user",
            "x_tessera_roles",
            "x-forwarded_for",
            "x-tessera.user",
            "x-tessera~roles",
            "remote_user",
            "x-a!b",
            "x-a+b",
        ] {
            assert!(!is_plain_header_name(bad), "{bad}");
            assert!(HeaderName::from_bytes(bad.as_bytes()).is_ok(), "{bad}");
        }
    }

    #[test]
    fn rewrite_and_forwarding_headers_are_recognised() {
        for n in [
            "x-original-url",
            "x-rewrite-url",
            "x-original-uri",
            "x-forwarded-uri",
            "x-forwarded-method",
            "x-original-method",
            "x-host",
        ] {
            assert!(is_rewrite(n), "{n}");
        }
        for n in [
            "x-forwarded-for",
            "x-forwarded-host",
            "x-forwarded-prefix",
            "x-forwarded-port",
            "x-forwarded-scheme",
            "x-forwarded-server",
            "forwarded",
            "x-real-ip",
            "true-client-ip",
            "x-client-ip",
            "cf-connecting-ip",
        ] {
            assert!(is_forwarding(n), "{n}");
        }
        assert!(!is_forwarding("x-request-id") && !is_rewrite("x-request-id"));
    }
}
