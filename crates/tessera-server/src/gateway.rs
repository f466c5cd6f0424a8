//! The gateway: static files and public paths without authentication, everything else
//! authenticated and proxied (streaming) to the upstream API with identity headers.
//!
//! Header hygiene: request headers whose names have characters other than letters, digits
//! and `-` are dropped (CGI-style upstreams would merge `X-Tessera_Roles` with
//! `X-Tessera-Roles`); inbound `X-Tessera-*` and other identity-looking headers, and
//! rewrite headers (`X-Original-URL` …) are removed before anything is added; forwarding
//! headers are kept from `trusted_proxies` only, and tessera writes its own
//! `X-Forwarded-For`, `-Proto` and `-Host` (`public_origin`'s); hop-by-hop headers and
//! those named in `Connection` are dropped both ways; tessera's cookies never reach the
//! upstream, and the upstream cannot set them. Public paths must be plain ASCII after one
//! decoding step ([`public_path_is_plain`]); `CONNECT` and `TRACE` are refused
//! ([`refused_method`]).

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::{Body, HttpBody as _};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::ServiceExt;

use crate::assets;
use crate::audit::PeerAddr;
use crate::auth::{self, Identity};
use crate::config::Config;
use crate::cookies;
use crate::error::AppError;
use crate::metrics::inc;
use crate::state::AppState;

/// The upstream API and the pooled HTTP client that reaches it.
#[derive(Clone, Debug)]
pub struct Upstream {
    scheme: axum::http::uri::Scheme,
    authority: axum::http::uri::Authority,
    base_path: String,
    /// Requests with a body (streamed by hyper).
    client: Client<HttpConnector, Body>,
    /// Requests without one: the hot path.
    http1: crate::upstream::Http1,
    /// Proxied requests in flight per client IP (`limits.max_upstream_per_ip`).
    per_ip: Arc<crate::per_ip::PerIp>,
}

impl Upstream {
    /// Parses `http://host:port[/base]`.
    pub fn new(url: &str, config: &Config) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|_| format!("upstream {url:?} is not a URL"))?;
        let scheme = uri.scheme().cloned().ok_or("upstream needs a scheme")?;
        let authority = uri.authority().cloned().ok_or("upstream needs a host")?;
        let base_path = uri.path().trim_end_matches('/').to_owned();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(config.limits.upstream_timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(std::time::Duration::from_secs(30))
            .pool_max_idle_per_host(256)
            .build(connector);
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|_| format!("upstream {url:?} has a bad host"))?;
        let addr = format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(80)
        );
        let http1 = crate::upstream::Http1::new(
            addr,
            host,
            256,
            std::time::Duration::from_secs(30),
            config.limits.upstream_timeout,
        );
        Ok(Upstream {
            scheme,
            authority,
            base_path,
            client,
            http1,
            per_ip: Arc::new(crate::per_ip::PerIp::new(config.limits.max_upstream_per_ip)),
        })
    }
}

/// Why a path was refused: dot segments, encoded separators, empty segments or `;`
/// parameters could make the path mean one thing here and another upstream.
pub fn path_is_canonical(path: &str) -> bool {
    let b = path.as_bytes();
    if b.first() != Some(&b'/') {
        return false;
    }
    // One pass over the bytes (this runs on every proxied request; the `str` searches it
    // replaced cost ten times as much on a short path). `seg` is where the current
    // segment starts.
    let mut seg = 1;
    for (i, &c) in b.iter().enumerate().skip(1) {
        match c {
            b';' | b'\\' => return false,
            b'/' => {
                // An empty segment (`//`), or a dot segment, before this separator.
                if matches!(&b[seg..i], b"" | b"." | b"..") {
                    return false;
                }
                seg = i + 1;
            }
            // Encoded dots, separators and NUL, in either case.
            b'%' => {
                if let Some(&[x, y]) = b.get(i + 1..i + 3) {
                    if matches!(
                        [x, y.to_ascii_lowercase()],
                        [b'2', b'e'] | [b'2', b'f'] | [b'5', b'c'] | [b'0', b'0']
                    ) {
                        return false;
                    }
                }
            }
            _ => {}
        }
    }
    // The last segment may be empty (a trailing `/`), not a dot segment.
    !matches!(&b[seg..], b"." | b"..")
}

/// The stricter rule for public paths, which reach the upstream without any check: after
/// one percent-decoding step the path must be printable ASCII with no `%` and no `;`. So
/// `%25` (a second decoding step would make `%252e%252e` into `..`), `%3B` (upstreams that
/// cut `;` parameters would make `..%3b` into `..`), encoded control bytes, and every
/// non-ASCII byte, raw or encoded (NFKC maps U+FF0E, U+2024 and U+FE52 to `.`, U+2025 to
/// `..`, U+FF0F to `/`, U+FF3C and U+FE68 to `\`; best-fit code-page conversions map
/// U+2215 and U+2044 to `/`) are refused, so that no further decoding or normalisation
/// upstream can turn the path into one outside its public prefix.
/// [`path_is_canonical`] has already refused dot segments, `;`, `\` and encoded `.`, `/`,
/// `\` and NUL.
pub fn public_path_is_plain(path: &str) -> bool {
    let b = path.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let Some(&[x, y]) = b.get(i + 1..i + 3) else {
                return false;
            };
            let (Some(hi), Some(lo)) = (hex(x), hex(y)) else {
                return false;
            };
            let decoded = hi << 4 | lo;
            if !(0x20..0x7f).contains(&decoded) || decoded == b'%' || decoded == b';' {
                return false;
            }
            i += 3;
        } else {
            if !(0x21..0x7f).contains(&c) || c == b';' {
                return false;
            }
            i += 1;
        }
    }
    true
}

fn hex(c: u8) -> Option<u8> {
    char::from(c)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

fn is_public(config: &Config, path: &str) -> bool {
    config.public_paths.iter().any(|p| {
        path.starts_with(p.as_str())
            && (p.ends_with('/') || path.len() == p.len() || path.as_bytes()[p.len()] == b'/')
    })
}

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
const SIGNATURE_INPUT: HeaderName = HeaderName::from_static("signature-input");
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

impl HeaderSink for crate::upstream::RequestHead {
    fn header(&mut self, name: &HeaderName, value: &HeaderValue) {
        crate::upstream::RequestHead::header(self, name, value);
    }
    fn text<'a>(&mut self, name: &HeaderName, parts: impl Iterator<Item = &'a str> + Clone) {
        crate::upstream::RequestHead::text(self, name, parts);
    }
}

const X_TESSERA_USER: HeaderName = HeaderName::from_static("x-tessera-user");
const X_TESSERA_USERNAME: HeaderName = HeaderName::from_static("x-tessera-username");
const X_TESSERA_ROLES: HeaderName = HeaderName::from_static("x-tessera-roles");
const X_TESSERA_SESSION: HeaderName = HeaderName::from_static("x-tessera-session");

/// The identity headers sent upstream and returned by forward-auth, written straight from
/// the claims. A value that is not valid header text (cannot happen for tokens tessera
/// signed) is left out.
pub(crate) fn identity_headers(identity: &Identity, out: &mut impl HeaderSink) {
    let c = &identity.claims;
    out.text(&X_TESSERA_USER, std::iter::once(c.sub.as_str()));
    out.text(&X_TESSERA_USERNAME, std::iter::once(c.username.as_str()));
    out.text(&X_TESSERA_ROLES, c.roles.iter().map(|r| r.as_str()));
    out.text(&X_TESSERA_SESSION, std::iter::once(c.sid.as_str()));
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
fn upstream_request_headers(
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
fn clean_response_headers(h: &mut HeaderMap) {
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

fn is_length_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Forwards `req` to the upstream, streaming both bodies.
pub async fn proxy(
    state: &AppState,
    upstream: &Upstream,
    req: Request,
    caller: Caller<'_>,
    peer: Option<PeerAddr>,
) -> Result<Response, AppError> {
    let (parts, body) = req.into_parts();
    let limit = state.config.limits.max_body_bytes;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(AppError::payload_too_large());
    }
    // The slot is held until the response body is dropped: as long as the exchange holds
    // an upstream connection.
    let slot = match crate::audit::client_ip(state, peer, &parts.headers) {
        Some(ip) => Some(
            upstream
                .per_ip
                .acquire(ip)
                .ok_or_else(|| AppError::rate_limited(1))?,
        ),
        None => None,
    };
    inc(&state.metrics.proxied);
    let timeout = state.config.limits.upstream_timeout;
    // A request without a body (most API reads) takes the lean HTTP/1.1 path.
    if body.is_end_stream() && declared.unwrap_or(0) == 0 {
        let target = upstream_target(upstream, &parts.uri);
        let mut head = upstream
            .http1
            .head(&parts.method, &target, parts.headers.len());
        upstream_request_headers(state, &parts.headers, peer, caller, &mut head);
        // One clock read bounds the exchange and ages the pooled connections.
        let now = tokio::time::Instant::now();
        let exchange = upstream.http1.send(&parts.method, head, now.into_std());
        return answer(now + timeout, exchange, slot).await;
    }
    let uri = upstream_uri(upstream, &parts.uri)?;
    let mut headers = HeaderMap::with_capacity(parts.headers.len() + 8);
    upstream_request_headers(state, &parts.headers, peer, caller, &mut headers);
    let body = Body::new(http_body_util::Limited::new(body, limit));
    let mut out = axum::http::Request::builder().method(parts.method).uri(uri);
    if let Some(h) = out.headers_mut() {
        *h = headers;
    }
    let out = out
        .body(body)
        .map_err(|_| AppError::invalid_request("bad request"))?;
    let deadline = tokio::time::Instant::now() + timeout;
    answer(deadline, upstream.client.request(out), slot).await
}

/// The upstream's answer, from either client, awaited until `deadline` (504 after it; 413
/// if the request body went over its limit, 408 if it stopped arriving; 502 for any other
/// failure), handed on with hop-by-hop fields and tessera's cookies removed; its body
/// holds the client's `slot` until it is dropped.
async fn answer<B, E>(
    deadline: tokio::time::Instant,
    exchange: impl std::future::Future<Output = Result<Response<B>, E>>,
    slot: Option<crate::per_ip::Slot>,
) -> Result<Response, AppError>
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + Unpin + 'static,
    B::Error: Into<axum::BoxError>,
    E: std::error::Error + 'static,
{
    let res = match tokio::time::timeout_at(deadline, exchange).await {
        Err(_) => return Err(AppError::gateway_timeout()),
        Ok(Err(e)) => {
            if is_length_limit(&e) {
                return Err(AppError::payload_too_large());
            }
            if crate::serve::is_body_timeout(&e) {
                return Err(AppError::request_timeout());
            }
            tracing::warn!(error = %e, "upstream request failed");
            return Err(AppError::bad_gateway());
        }
        Ok(Ok(res)) => res,
    };
    let (mut parts, body) = res.into_parts();
    clean_response_headers(&mut parts.headers);
    let body = crate::per_ip::Held::new(body, slot);
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// The origin-form target sent upstream: the configured base path, then the request's
/// path and query (borrowed when there is no base path).
fn upstream_target<'a>(upstream: &Upstream, target: &'a Uri) -> std::borrow::Cow<'a, str> {
    let pq = target.path_and_query().map_or("/", |pq| pq.as_str());
    if upstream.base_path.is_empty() {
        std::borrow::Cow::Borrowed(pq)
    } else {
        std::borrow::Cow::Owned(format!("{}{pq}", upstream.base_path))
    }
}

/// The upstream's URI for a request target: the configured base path, then the target's
/// path and query (shared, not copied, when there is no base path).
fn upstream_uri(upstream: &Upstream, target: &Uri) -> Result<Uri, AppError> {
    let pq = match target.path_and_query() {
        Some(pq) if upstream.base_path.is_empty() => pq.clone(),
        _ => upstream_target(upstream, target)
            .parse()
            .map_err(|_| AppError::invalid_request("bad request target"))?,
    };
    let mut parts = axum::http::uri::Parts::default();
    parts.scheme = Some(upstream.scheme.clone());
    parts.authority = Some(upstream.authority.clone());
    parts.path_and_query = Some(pq);
    Uri::from_parts(parts).map_err(|_| AppError::invalid_request("bad request target"))
}

/// True if `path` names a regular file under `dir` (directories map to `index.html`).
async fn static_exists(dir: &std::path::Path, path: &str) -> bool {
    let mut file: PathBuf = dir.join(path.trim_start_matches('/'));
    if path.ends_with('/') {
        file = file.join("index.html");
    }
    tokio::fs::metadata(&file).await.is_ok_and(|m| m.is_file())
}

/// Marks a response whose `Content-Security-Policy` is `static_csp`'s (or deliberately
/// none): `wrap()` adds no `default-src 'none'` to it.
#[derive(Clone, Copy, Debug)]
pub struct StaticAnswer;

async fn serve_static(state: &AppState, dir: &std::path::Path, req: Request) -> Response {
    let mut res = match tower_http::services::ServeDir::new(dir).oneshot(req).await {
        Ok(r) => r.map(Body::new),
        Err(e) => match e {},
    };
    let csp = &state.config.static_csp;
    if !csp.is_empty() {
        // Validated at start-up; should it not parse, the strict default stays.
        if let Ok(v) = HeaderValue::from_str(csp) {
            res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
        }
        if !res.headers().contains_key(header::CONTENT_SECURITY_POLICY) {
            return res;
        }
    }
    res.extensions_mut().insert(StaticAnswer);
    res
}

/// True when `h` describes a browser navigation (a document load): `Sec-Fetch-Mode:
/// navigate`, `Sec-Fetch-Dest: document`, or an `Accept` naming `text/html` with a weight
/// above 0 (RFC 9110 §12.5.1; a media range `*/*` does not count: `fetch()` sends that by
/// default).
fn is_navigation(h: &HeaderMap) -> bool {
    let is = |name: &str, want: &str| {
        h.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.trim().eq_ignore_ascii_case(want))
        })
    };
    is("sec-fetch-mode", "navigate")
        || is("sec-fetch-dest", "document")
        || h.get_all(header::ACCEPT).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',').any(|range| {
                    let mut parts = range.split(';');
                    parts
                        .next()
                        .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/html"))
                        && !parts.any(|p| {
                            p.split_once('=').is_some_and(|(k, q)| {
                                k.trim().eq_ignore_ascii_case("q")
                                    && q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
                            })
                        })
                })
            })
        })
}

/// Whether a `GET`/`HEAD` for `path` that named no static file gets `spa_fallback`: a
/// navigation, to a path whose last segment has no dot (a missing `/assets/app.js` stays a
/// miss), outside tessera's reserved prefixes, `public_paths` and `api_prefixes`.
fn wants_spa_fallback(config: &Config, path: &str, h: &HeaderMap) -> bool {
    let last = path.rsplit('/').next().unwrap_or("");
    !last.contains('.')
        && !path.starts_with("/auth/")
        && !path.starts_with("/.well-known/")
        && !crate::is_own_route(path)
        && !is_public(config, path)
        && !config.api_prefixes.iter().any(|p| {
            path.starts_with(p.as_str())
                && (p.ends_with('/') || path.len() == p.len() || path.as_bytes()[p.len()] == b'/')
        })
        && is_navigation(h)
}

/// `spa_fallback` answered for `req` (its path rewritten to the file's), `no-cache` so a
/// new build is picked up, `Vary` on what made it a navigation.
async fn serve_spa_fallback(
    state: &AppState,
    dir: &std::path::Path,
    file: &std::path::Path,
    mut req: Request,
) -> Response {
    let target = format!("/{}", file.to_string_lossy().trim_start_matches('/'));
    match target.parse::<Uri>() {
        Ok(uri) => *req.uri_mut() = uri,
        Err(_) => return AppError::not_found().into_response(),
    }
    let mut res = serve_static(state, dir, req).await;
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.append(
        header::VARY,
        HeaderValue::from_static("Accept, Sec-Fetch-Mode, Sec-Fetch-Dest"),
    );
    res
}

/// Everything that is not one of tessera's own routes.
pub async fn fallback(
    State(state): State<Arc<AppState>>,
    req: Request,
) -> Result<Response, AppError> {
    let peer = req.extensions().get::<PeerAddr>().copied();
    gateway(state, req, peer).await
}

/// The gateway for a request from `peer`: static files, then the upstream. [`crate::App`]
/// calls it with the peer from the connection (no request extension to allocate).
pub async fn gateway(
    state: Arc<AppState>,
    req: Request,
    peer: Option<PeerAddr>,
) -> Result<Response, AppError> {
    let path = req.uri().path();
    if !path_is_canonical(path) {
        return Err(AppError::invalid_request("non-canonical path"));
    }
    if req.method() == Method::GET || req.method() == Method::HEAD {
        if let Some(dir) = &state.config.static_dir {
            if static_exists(dir, path).await {
                return Ok(serve_static(&state, dir, req).await);
            }
            if let Some(file) = &state.config.spa_fallback {
                if wants_spa_fallback(&state.config, path, req.headers()) {
                    return Ok(serve_spa_fallback(&state, dir, file, req).await);
                }
            }
        } else if state.demo_assets {
            if let Some(res) = assets::demo(path) {
                return Ok(res);
            }
        }
    }
    route_upstream(state, req, peer).await
}

async fn route_upstream(
    state: Arc<AppState>,
    req: Request,
    peer: Option<PeerAddr>,
) -> Result<Response, AppError> {
    let Some(upstream) = &state.upstream else {
        return Err(AppError::not_found());
    };
    if is_public(&state.config, req.uri().path()) {
        if !public_path_is_plain(req.uri().path()) {
            return Err(AppError::invalid_request(
                "public paths must be printable ASCII after one percent-decoding, without % or ;",
            ));
        }
        return proxy(&state, upstream, req, Caller::Anonymous, peer).await;
    }
    let h = req.headers();
    if !h.contains_key(header::AUTHORIZATION) && h.contains_key(&SIGNATURE_INPUT) {
        return signed_request(&state, upstream, req, peer).await;
    }
    let identity =
        auth::authenticate(&state, req.method(), req.uri().path(), req.headers()).await?;
    proxy(&state, upstream, req, Caller::User(&identity), peer).await
}

fn one_header<'a>(h: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, AppError> {
    let mut it = h.get_all(name).iter();
    let first = it.next();
    if it.next().is_some() {
        return Err(AppError::invalid_request("repeated signature header"));
    }
    first
        .map(|v| {
            v.to_str()
                .map_err(|_| AppError::invalid_request("malformed header"))
        })
        .transpose()
}

fn signature_refused(why: impl std::fmt::Display) -> AppError {
    tracing::debug!(reason = %why, "request signature refused");
    AppError::unauthenticated().challenge("Signature")
}

/// 503 `overloaded`: `signatures.max_buffered_bytes` of signed bodies are held already.
fn bodies_overloaded() -> AppError {
    AppError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "overloaded",
        "too many signed request bodies at once; try again shortly",
    )
    .retry_after(1)
}

/// 408 `request_timeout`: the body did not arrive within `signatures.body_timeout`.
fn body_too_slow() -> AppError {
    AppError::new(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        "the request body took too long",
    )
}

/// The `Content-Length` a request declares, if any; one that is not a number is 400.
fn declared_length(h: &HeaderMap) -> Result<Option<u64>, AppError> {
    match h.get(header::CONTENT_LENGTH) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| AppError::invalid_request("malformed Content-Length")),
    }
}

/// Why a body could not be read.
#[derive(Debug, PartialEq, Eq)]
enum BodyError {
    /// More than the bytes allowed.
    TooLarge,
    /// The client went away or broke the framing.
    Aborted,
}

/// Reads at most `most` bytes of `body` into one buffer that never holds more than
/// `most` bytes of capacity (grown exactly, not doubled past it).
async fn read_bounded(mut body: Body, most: usize) -> Result<axum::body::Bytes, BodyError> {
    use http_body_util::BodyExt as _;
    let mut buf: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|_| BodyError::Aborted)?.into_data() else {
            continue;
        };
        let needed = buf.len().saturating_add(data.len());
        if needed > most {
            return Err(BodyError::TooLarge);
        }
        if needed > buf.capacity() {
            let grown = needed.max(buf.capacity().saturating_mul(2)).min(most);
            buf.reserve_exact(grown - buf.len());
        }
        buf.extend_from_slice(&data);
    }
    Ok(axum::body::Bytes::from(buf))
}

/// A buffered signed body that keeps its share of `signatures.max_buffered_bytes` until
/// the upstream client has taken and dropped it.
struct HeldBody {
    data: Option<axum::body::Bytes>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl http_body::Body for HeldBody {
    type Data = axum::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::task::Poll::Ready(
            self.get_mut()
                .data
                .take()
                .map(|d| Ok(http_body::Frame::data(d))),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

/// A request signed by a service client (RFC 9421, `hmac-sha256`).
///
/// Everything the headers can decide is decided before a byte of the body is read, so a
/// caller without a client's secret never gets a body buffered: `Content-Length` within
/// `limits.max_body_bytes` (413), the signature fields' shape and the covered components
/// (401), a known key id and a MAC that verifies over the signature base — which holds
/// the `Content-Digest` value, not the body — (401, unknown key ids answered like bad
/// signatures), `created` within the window (401), a `Content-Digest` when a body is
/// declared (401). Then the nonce is claimed, on this node and in the store for every
/// node ([`crate::sync::claim_once`]; 401 if seen, 503 if the store cannot say): consumed
/// now rather than after the body, so two racing copies of one signed request cannot both
/// have their bodies read, and a body that then fails its digest has burnt a nonce only a
/// holder of the signed headers could send. Only then is the body read: its bytes
/// reserved from `signatures.max_buffered_bytes` (503 `overloaded` when they do not fit,
/// no queue), within `signatures.body_timeout` (408), checked against the digest (401),
/// and forwarded with `X-Tessera-Client`.
async fn signed_request(
    state: &AppState,
    upstream: &Upstream,
    req: Request,
    peer: Option<PeerAddr>,
) -> Result<Response, AppError> {
    use tessera_core::httpsig;
    let (parts, body) = req.into_parts();
    let h = &parts.headers;
    let limit = state.config.limits.max_body_bytes;
    let declared = declared_length(h)?;
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(AppError::payload_too_large());
    }
    let target_uri = format!(
        "{}{}",
        auth::request_origin(state, h),
        parts.uri.path_and_query().map_or("/", |pq| pq.as_str())
    );
    let signed = httpsig::SignedRequest {
        method: parts.method.as_str(),
        target_uri: &target_uri,
        content_digest: one_header(h, "content-digest")?,
        content_type: one_header(h, "content-type")?,
        content_length: one_header(h, "content-length")?,
        has_body: declared.is_some_and(|n| n > 0),
        signature_input: one_header(h, "signature-input")?.unwrap_or_default(),
        signature: one_header(h, "signature")?
            .ok_or_else(|| signature_refused("no Signature header"))?,
    };
    let keyid = httpsig::parse(&signed)
        .map_err(signature_refused)?
        .params
        .keyid;
    let client = crate::clients::lookup(state, &keyid).await;
    let window = state.config.signatures.window.as_secs();
    let head = httpsig::verify_head(
        &signed,
        |_| client.as_ref().map(|c| c.secret.clone()),
        state.clock.now(),
        window,
    )
    .map_err(signature_refused)?;
    let Some(client) = client else {
        return Err(signature_refused("unknown key id"));
    };
    let params = &head.params;
    let claimed = crate::sync::claim_once(
        state,
        tessera_store::ReplayKind::Signature,
        &params.replay_key(),
        params.replay_expires(window),
    )
    .await;
    match claimed {
        Ok(()) => {}
        Err(crate::sync::ClaimError::Unavailable(detail)) => {
            return Err(AppError::unavailable(detail))
        }
        Err(e) => return Err(signature_refused(format!("nonce: {e:?}"))),
    }
    let timeout = state.config.signatures.body_timeout;
    let body = if body.is_end_stream() {
        head.check_body(b"").map_err(signature_refused)?;
        Body::empty()
    } else if !head.body_allowed() {
        // No digest covered: only an empty body (e.g. an empty chunked one) may follow, and
        // a single byte of it is refused, so nothing is buffered.
        match tokio::time::timeout(timeout, read_bounded(body, 0)).await {
            Err(_) => return Err(body_too_slow()),
            Ok(Err(BodyError::TooLarge)) => {
                return Err(signature_refused("a body the signature does not cover"))
            }
            Ok(Err(BodyError::Aborted)) => {
                return Err(AppError::invalid_request("request body could not be read"))
            }
            Ok(Ok(_)) => Body::empty(),
        }
    } else {
        // `declared` is within `limit`, and `limit` within the semaphore's size and u32
        // (config validation), so the reservation can succeed once the node has room.
        let most = declared.map_or(limit, |n| usize::try_from(n).unwrap_or(limit));
        let permit = u32::try_from(most)
            .ok()
            .and_then(|n| {
                Arc::clone(&state.sig_body_bytes)
                    .try_acquire_many_owned(n)
                    .ok()
            })
            .ok_or_else(bodies_overloaded)?;
        let bytes = match tokio::time::timeout(timeout, read_bounded(body, most)).await {
            Err(_) => return Err(body_too_slow()),
            Ok(Err(BodyError::TooLarge)) => return Err(AppError::payload_too_large()),
            Ok(Err(BodyError::Aborted)) => {
                return Err(AppError::invalid_request("request body could not be read"))
            }
            Ok(Ok(b)) => b,
        };
        head.check_body(&bytes).map_err(signature_refused)?;
        if bytes.is_empty() {
            Body::empty()
        } else {
            Body::new(HeldBody {
                data: Some(bytes),
                _permit: permit,
            })
        }
    };
    inc(&state.metrics.verify_ok);
    let req = Request::from_parts(parts, body);
    proxy(state, upstream, req, Caller::Client(&client.name), peer).await
}

/// The methods tessera serves and forwards, for the `Allow` header of a refused method
/// (extension methods other than the refused ones are forwarded too, and treated as
/// unsafe by the CSRF rules).
pub const ALLOWED_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// 405 for `CONNECT` and `TRACE` (and `TRACK`, its old alias), on every path, before any
/// routing: a `CONNECT` forwarded upstream and answered 2xx turns the client's connection
/// into a tunnel (RFC 9110 §9.3.6), and `TRACE` echoes the request, credentials included,
/// back to the client (RFC 9110 §9.3.8: a client must not send credentials in it, and a
/// gateway has no reason to pass it on).
pub fn refused_method(method: &Method) -> Option<Response> {
    if *method != Method::CONNECT && *method != Method::TRACE && method.as_str() != "TRACK" {
        return None;
    }
    let mut res = AppError::method_not_allowed().into_response();
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(ALLOWED_METHODS));
    Some(res)
}

/// `OPTIONS` and unknown methods on tessera's own JSON routes.
pub async fn method_not_allowed() -> impl IntoResponse {
    AppError::method_not_allowed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_paths() {
        for ok in ["/", "/api/notes", "/api/notes/1", "/a.b/c"] {
            assert!(path_is_canonical(ok), "{ok}");
        }
        for bad in [
            "/api/../admin",
            "/api/./x",
            "//evil",
            "/api/%2e%2e/admin",
            "/api%2fadmin",
            "/a;jsessionid=1",
            "/a\\b",
            "api",
        ] {
            assert!(!path_is_canonical(bad), "{bad}");
        }
    }

    /// The byte loop refuses exactly what the `str` version it replaced refused.
    #[test]
    fn canonical_paths_match_the_str_reference() {
        fn reference(path: &str) -> bool {
            if !path.starts_with('/')
                || path.contains("//")
                || path.contains(';')
                || path.contains('\\')
            {
                return false;
            }
            let encoded_special = path.as_bytes().windows(3).any(|w| {
                w[0] == b'%'
                    && matches!(
                        [w[1], w[2].to_ascii_lowercase()],
                        [b'2', b'e'] | [b'2', b'f'] | [b'5', b'c'] | [b'0', b'0']
                    )
            });
            !encoded_special && !path.split('/').any(|seg| seg == "." || seg == "..")
        }
        let alphabet = [
            "/", ".", "%", "2", "e", "E", "f", "F", "5", "c", "C", "0", ";", "\\", "a", "..", "é",
        ];
        let mut seed = 11u64;
        for _ in 0..200_000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = (seed >> 60) as usize;
            // Mostly absolute, so the rest of the rules get exercised.
            let mut path = String::from(if seed & 15 == 0 { "" } else { "/" });
            for k in 0..len {
                let r = seed.rotate_left(5 * k as u32 + 3) >> 58;
                path.push_str(alphabet[r as usize % alphabet.len()]);
            }
            assert_eq!(path_is_canonical(&path), reference(&path), "{path:?}");
        }
    }

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
        let up = crate::upstream::Http1::new(
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

    #[test]
    fn public_paths_must_be_plain_ascii_after_one_decoding() {
        for ok in [
            "/public/",
            "/public/a-b_c.txt",
            "/public/my%20file",
            "/p/%41%7e",
        ] {
            assert!(public_path_is_plain(ok), "{ok}");
        }
        for bad in [
            "/public/..%3b/x",
            "/public/..%3B/x",
            "/public/%252e%252e/x",
            "/public/%25",
            "/public/%",
            "/public/%2",
            "/public/%zz",
            "/public/%0a",
            "/public/%7F",
            "/public/%EF%BC%8E%EF%BC%8E%EF%BC%8Fx",
            "/public/%e2%80%a4",
            "/public/\u{FF0E}\u{FF0E}\u{FF0F}x",
            "/public/\u{2215}",
            "/public/;x",
        ] {
            assert!(!public_path_is_plain(bad), "{bad}");
        }
        // Every encoded byte: allowed exactly when printable ASCII other than `%` and `;`.
        for b in 0..=255u8 {
            for path in [format!("/p/%{b:02x}"), format!("/p/%{b:02X}")] {
                let want = (0x20..0x7f).contains(&b) && b != b'%' && b != b';';
                assert_eq!(public_path_is_plain(&path), want, "{path}");
            }
        }
    }

    #[test]
    fn navigations_are_told_from_api_calls() {
        let nav = |headers: &[(&str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in headers {
                h.append(
                    HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                );
            }
            super::is_navigation(&h)
        };
        assert!(nav(&[(
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        )]));
        assert!(nav(&[("accept", "application/json, TEXT/HTML ; q=0.5")]));
        assert!(nav(&[("sec-fetch-mode", "navigate")]));
        assert!(nav(&[("sec-fetch-dest", "document")]));
        assert!(nav(&[
            ("accept", "application/json"),
            ("accept", "text/html")
        ]));
        assert!(!nav(&[]));
        assert!(!nav(&[("accept", "*/*")]));
        assert!(!nav(&[("accept", "text/*")]));
        assert!(!nav(&[("accept", "application/json")]));
        assert!(!nav(&[("accept", "text/html;q=0, application/json")]));
        assert!(!nav(&[("accept", "text/html; q=0.000")]));
        assert!(!nav(&[("accept", "text/htmlx")]));
        assert!(!nav(&[
            ("sec-fetch-mode", "cors"),
            ("sec-fetch-dest", "empty")
        ]));
    }

    #[test]
    fn connect_and_trace_are_refused_with_allow() {
        for m in [
            Method::CONNECT,
            Method::TRACE,
            Method::from_bytes(b"TRACK").unwrap(),
        ] {
            let res = refused_method(&m).unwrap();
            assert_eq!(res.status(), axum::http::StatusCode::METHOD_NOT_ALLOWED);
            assert_eq!(res.headers()[header::ALLOW], ALLOWED_METHODS);
        }
        for m in [Method::GET, Method::POST, Method::OPTIONS, Method::DELETE] {
            assert!(refused_method(&m).is_none(), "{m}");
        }
    }
}

/// The pre-body checks of [`signed_request`], in process: every refusal that the headers
/// can decide is made without the body being polled once.
#[cfg(test)]
mod signed_body_tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::state::StateParts;
    use tessera_core::httpsig;

    const ORIGIN: &str = "https://gw.test";

    /// A request body that records whether it was ever polled; it yields `chunks` of
    /// `size` bytes each and then, if `stall`, never ends.
    struct Probe {
        polled: Arc<AtomicBool>,
        chunks: usize,
        size: usize,
        stall: bool,
    }

    impl http_body::Body for Probe {
        type Data = axum::body::Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
            let me = self.get_mut();
            me.polled.store(true, Ordering::SeqCst);
            if me.chunks > 0 {
                me.chunks -= 1;
                let data = axum::body::Bytes::from(vec![b'x'; me.size]);
                return std::task::Poll::Ready(Some(Ok(http_body::Frame::data(data))));
            }
            if me.stall {
                std::task::Poll::Pending
            } else {
                std::task::Poll::Ready(None)
            }
        }
        fn is_end_stream(&self) -> bool {
            false
        }
    }

    struct Fixture {
        state: Arc<AppState>,
        keyid: String,
        secret: Vec<u8>,
        upstream_hits: Arc<AtomicUsize>,
        db: std::path::PathBuf,
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            for ext in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{ext}", self.db.display()));
            }
        }
    }

    async fn fixture(edit: impl FnOnce(&mut Config)) -> Fixture {
        // An upstream that answers 200 with the number of body bytes it got.
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&hits);
        let api = axum::Router::new().fallback(move |body: axum::body::Bytes| {
            let counted = Arc::clone(&counted);
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                body.len().to_string()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api_addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, api).await });

        let mut config = Config::default();
        config.passwords.m_cost = 8192;
        config.passwords.t_cost = 1;
        config.passwords.workers = 1;
        config.limits.max_body_bytes = 4096;
        config.signatures.max_buffered_bytes = 8192;
        config.signatures.body_timeout = Duration::from_millis(300);
        edit(&mut config);
        let hex: String = tessera_core::random_bytes::<8>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let db = std::env::temp_dir().join(format!("tessera-gw-{hex}.db"));
        let store = tessera_store::open(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let master = tessera_core::MasterKey::from_bytes([9; 32]);
        let now = tessera_core::Clock::now(&tessera_core::SystemClock);
        let (stored, secret) = crate::clients::add(store.as_ref(), &master, "svc", now)
            .await
            .unwrap();
        let state = AppState::build(StateParts {
            config,
            public_origin: ORIGIN.to_owned(),
            store,
            master,
            clock: Arc::new(tessera_core::SystemClock),
            upstream: Some(format!("http://{api_addr}")),
            demo_assets: false,
            tls: true,
        })
        .await
        .unwrap();
        Fixture {
            state,
            keyid: stored.key_id,
            secret: tessera_core::b64::decode(&secret).unwrap(),
            upstream_hits: hits,
            db,
        }
    }

    impl Fixture {
        /// A POST to `/api/x` signed with `secret` under `keyid`, covering `digest`.
        fn request(
            &self,
            keyid: &str,
            secret: &[u8],
            digest: Option<&str>,
            created: u64,
            content_length: Option<usize>,
            body: Body,
        ) -> Request {
            let nonce = tessera_core::b64::encode(tessera_core::random_bytes::<12>());
            let (input, sig) = httpsig::sign(
                "POST",
                &format!("{ORIGIN}/api/x"),
                digest,
                keyid,
                &nonce,
                created,
                secret,
            )
            .unwrap();
            let mut b = axum::http::Request::builder()
                .method("POST")
                .uri("/api/x")
                .header("signature-input", input)
                .header("signature", sig);
            if let Some(d) = digest {
                b = b.header("content-digest", d);
            }
            if let Some(n) = content_length {
                b = b.header("content-length", n);
            }
            b.body(body).unwrap()
        }

        fn now(&self) -> u64 {
            self.state.clock.now().0
        }

        async fn send(&self, req: Request) -> (u16, serde_json::Value, HeaderMap) {
            let res = match gateway(Arc::clone(&self.state), req, None).await {
                Ok(r) => r,
                Err(e) => e.into_response(),
            };
            let status = res.status().as_u16();
            let headers = res.headers().clone();
            let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
                .await
                .unwrap();
            let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
            (status, json, headers)
        }
    }

    fn probe(chunks: usize, size: usize, stall: bool) -> (Body, Arc<AtomicBool>) {
        let polled = Arc::new(AtomicBool::new(false));
        let body = Body::new(Probe {
            polled: Arc::clone(&polled),
            chunks,
            size,
            stall,
        });
        (body, polled)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refusals_decided_by_the_headers_never_read_the_body() {
        let f = fixture(|_| {}).await;
        let digest = httpsig::content_digest(&[b'x'; 1000]);
        let now = f.now();
        let wrong = [0x33u8; 32];
        let cases: Vec<(&str, Request, u16, &str)> = vec![
            (
                "unknown key id",
                f.request(
                    "nobody",
                    &wrong,
                    Some(&digest),
                    now,
                    Some(1000),
                    probe(1, 1000, false).0,
                ),
                401,
                "unauthenticated",
            ),
            (
                "known key id, wrong secret",
                f.request(
                    &f.keyid,
                    &wrong,
                    Some(&digest),
                    now,
                    Some(1000),
                    probe(1, 1000, false).0,
                ),
                401,
                "unauthenticated",
            ),
            (
                "created outside the window",
                f.request(
                    &f.keyid,
                    &f.secret,
                    Some(&digest),
                    now - 600,
                    Some(1000),
                    probe(1, 1000, false).0,
                ),
                401,
                "unauthenticated",
            ),
            (
                "a declared body the signature does not cover",
                f.request(
                    &f.keyid,
                    &f.secret,
                    None,
                    now,
                    Some(1000),
                    probe(1, 1000, false).0,
                ),
                401,
                "unauthenticated",
            ),
            (
                "Content-Length over limits.max_body_bytes",
                f.request(
                    &f.keyid,
                    &f.secret,
                    Some(&digest),
                    now,
                    Some(4097),
                    probe(1, 1000, false).0,
                ),
                413,
                "payload_too_large",
            ),
        ];
        for (what, req, status, code) in cases {
            // Swap in a body whose polling we can see (the builder took the first one).
            let (parts, _) = req.into_parts();
            let (body, polled) = probe(1, 1000, false);
            let (got, json, _) = f.send(Request::from_parts(parts, body)).await;
            assert_eq!(
                (got, json["error"].as_str()),
                (status, Some(code)),
                "{what}: {json}"
            );
            assert!(!polled.load(Ordering::SeqCst), "{what}: the body was read");
        }
        // A malformed Signature-Input.
        let (body, polled) = probe(1, 1000, false);
        let req = axum::http::Request::builder()
            .method("POST")
            .uri("/api/x")
            .header("signature-input", "sig1=(")
            .header("signature", "sig1=:AAAA:")
            .header("content-length", 1000)
            .body(body)
            .unwrap();
        let (got, _, _) = f.send(req).await;
        assert_eq!(got, 401);
        assert!(
            !polled.load(Ordering::SeqCst),
            "malformed fields: the body was read"
        );

        // A replayed nonce: the first use goes through, the copy is refused unread.
        let body = vec![b'x'; 1000];
        let req = f.request(
            &f.keyid,
            &f.secret,
            Some(&digest),
            now,
            Some(1000),
            Body::from(body),
        );
        let (parts, first_body) = req.into_parts();
        let copy = Request::from_parts(parts.clone(), probe(1, 1000, false).0);
        let (got, _, _) = f.send(Request::from_parts(parts, first_body)).await;
        assert_eq!(got, 200);
        let (copy_parts, _) = copy.into_parts();
        let (body, polled) = probe(1, 1000, false);
        let (got, json, _) = f.send(Request::from_parts(copy_parts, body)).await;
        assert_eq!(
            (got, json["error"].as_str()),
            (401, Some("unauthenticated"))
        );
        assert!(!polled.load(Ordering::SeqCst), "replay: the body was read");
        assert_eq!(f.upstream_hits.load(Ordering::SeqCst), 1);
        // Every reservation was given back.
        assert_eq!(f.state.sig_body_bytes.available_permits(), 8192);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn buffered_bytes_are_capped_and_slow_bodies_time_out() {
        let f = fixture(|_| {}).await;
        let now = f.now();
        let digest = httpsig::content_digest(&[b'x'; 4096]);
        // Two stalled bodies of 4096 declared bytes hold the node's 8192 bytes...
        let mut held = Vec::new();
        for _ in 0..2 {
            let (body, _) = probe(1, 100, true);
            let req = f.request(&f.keyid, &f.secret, Some(&digest), now, Some(4096), body);
            let state = Arc::clone(&f.state);
            held.push(tokio::spawn(async move {
                let started = std::time::Instant::now();
                let res = match gateway(state, req, None).await {
                    Ok(r) => r,
                    Err(e) => e.into_response(),
                };
                (res.status().as_u16(), started.elapsed())
            }));
        }
        let waited = std::time::Instant::now();
        while f.state.sig_body_bytes.available_permits() > 0 {
            assert!(
                waited.elapsed() < Duration::from_secs(2),
                "bodies never reserved"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // ...so a third verified request is refused at once, its body unread.
        let (body, polled) = probe(1, 10, false);
        let req = f.request(&f.keyid, &f.secret, Some(&digest), now, Some(10), body);
        let (got, json, headers) = f.send(req).await;
        assert_eq!(
            (got, json["error"].as_str()),
            (503, Some("overloaded")),
            "{json}"
        );
        assert!(headers.contains_key(header::RETRY_AFTER));
        assert!(!polled.load(Ordering::SeqCst));
        // The stalled ones end with 408 after signatures.body_timeout (300 ms).
        for h in held {
            let (status, took) = h.await.unwrap();
            assert_eq!(status, 408);
            assert!(
                took >= Duration::from_millis(300) && took < Duration::from_secs(3),
                "{took:?}"
            );
        }
        assert_eq!(f.state.sig_body_bytes.available_permits(), 8192);
        // With room again, a whole body of unknown length (no Content-Length) goes
        // through: it reserves limits.max_body_bytes while it is read.
        let body = vec![b'x'; 3000];
        let digest = httpsig::content_digest(&body);
        let (b, _) = probe(3, 1000, false);
        let req = f.request(&f.keyid, &f.secret, Some(&digest), now, None, b);
        let (got, json, _) = f.send(req).await;
        assert_eq!(got, 200, "{json}");
        assert_eq!(json, serde_json::json!(3000));
        // Over the limit without a Content-Length: 413 once the limit is passed.
        let (b, _) = probe(5, 1000, false);
        let req = f.request(&f.keyid, &f.secret, Some(&digest), now, None, b);
        let (got, json, _) = f.send(req).await;
        assert_eq!(
            (got, json["error"].as_str()),
            (413, Some("payload_too_large"))
        );
        assert_eq!(f.state.sig_body_bytes.available_permits(), 8192);
    }

    /// The buffer cap must hold one whole body, fit the semaphore's u32 reservations, and
    /// the body deadline be sane.
    #[test]
    fn signature_limits_are_validated() {
        let key = |edit: fn(&mut Config)| {
            let mut c = Config::default();
            edit(&mut c);
            c.validate().err().map(|e| e.key)
        };
        assert_eq!(key(|_| {}), None);
        assert_eq!(
            key(|c| c.signatures.max_buffered_bytes = c.limits.max_body_bytes - 1),
            Some("signatures.max_buffered_bytes".to_owned())
        );
        assert_eq!(
            key(|c| c.signatures.max_buffered_bytes = 1 << 33),
            Some("signatures.max_buffered_bytes".to_owned())
        );
        assert_eq!(
            key(|c| c.signatures.max_buffered_bytes = c.limits.max_body_bytes),
            None
        );
        assert_eq!(
            key(|c| c.signatures.body_timeout = Duration::from_millis(99)),
            Some("signatures.body_timeout".to_owned())
        );
        assert_eq!(
            key(|c| c.signatures.body_timeout = Duration::from_secs(601)),
            Some("signatures.body_timeout".to_owned())
        );
    }
}
