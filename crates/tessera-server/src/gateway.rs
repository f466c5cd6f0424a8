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

async fn serve_static(dir: &std::path::Path, req: Request) -> Response {
    match tower_http::services::ServeDir::new(dir).oneshot(req).await {
        Ok(r) => r.map(Body::new),
        Err(e) => match e {},
    }
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
                return Ok(serve_static(dir, req).await);
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
    let identity = auth::authenticate(&state, req.method(), req.uri().path(), req.headers())?;
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

/// A request signed by a service client (RFC 9421, `hmac-sha256`): the body is read (within
/// the body limit) to check its `Content-Digest`, the signature and time window are
/// checked against the client's secret, the nonce must be new, and the request is
/// forwarded with `X-Tessera-Client`.
async fn signed_request(
    state: &AppState,
    upstream: &Upstream,
    req: Request,
    peer: Option<PeerAddr>,
) -> Result<Response, AppError> {
    use tessera_core::httpsig;
    let (parts, body) = req.into_parts();
    let body = crate::routes::read_body(body, state.config.limits.max_body_bytes).await?;
    let h = &parts.headers;
    let target_uri = format!(
        "{}{}",
        state.public_origin,
        parts.uri.path_and_query().map_or("/", |pq| pq.as_str())
    );
    let signed = httpsig::SignedRequest {
        method: parts.method.as_str(),
        target_uri: &target_uri,
        content_digest: one_header(h, "content-digest")?,
        content_type: one_header(h, "content-type")?,
        content_length: one_header(h, "content-length")?,
        has_body: !body.is_empty(),
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
    httpsig::verify_request(
        &signed,
        &body,
        |_| client.as_ref().map(|c| c.secret.clone()),
        &state.sig_replay,
        state.clock.now(),
        window,
    )
    .map_err(signature_refused)?;
    let Some(client) = client else {
        return Err(signature_refused("unknown key id"));
    };
    inc(&state.metrics.verify_ok);
    let req = Request::from_parts(parts, Body::from(body));
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
