//! The gateway: static files and public paths without authentication, everything else
//! authenticated and proxied (streaming) to the upstream API with identity headers.
//!
//! Header hygiene: inbound `X-Tessera-*` and other identity-looking headers are removed
//! before anything is added; hop-by-hop headers and those named in `Connection` are
//! dropped both ways; tessera's cookies never reach the upstream, and the upstream cannot
//! set them.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
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
use crate::routes::identity_headers;
use crate::state::AppState;

/// The upstream API and the pooled HTTP client that reaches it.
#[derive(Clone, Debug)]
pub struct Upstream {
    scheme: axum::http::uri::Scheme,
    authority: axum::http::uri::Authority,
    base_path: String,
    client: Client<HttpConnector, Body>,
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
        Ok(Upstream {
            scheme,
            authority,
            base_path,
            client,
        })
    }
}

/// Why a path was refused: dot segments, encoded separators, empty segments or `;`
/// parameters could make the path mean one thing here and another upstream.
pub fn path_is_canonical(path: &str) -> bool {
    if !path.starts_with('/') || path.contains("//") || path.contains(';') || path.contains('\\') {
        return false;
    }
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2e")
        || lower.contains("%2f")
        || lower.contains("%5c")
        || lower.contains("%00")
    {
        return false;
    }
    !path.split('/').any(|seg| seg == "." || seg == "..")
}

fn is_public(config: &Config, path: &str) -> bool {
    config.public_paths.iter().any(|p| {
        path.starts_with(p.as_str())
            && (p.ends_with('/') || path.len() == p.len() || path.as_bytes()[p.len()] == b'/')
    })
}

/// Headers never forwarded in either direction (RFC 9110 §7.6.1) besides those named in
/// `Connection`.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

fn remove_hop_by_hop(h: &mut HeaderMap) {
    let listed: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in listed {
        h.remove(n);
    }
    for n in HOP_BY_HOP {
        h.remove(n);
    }
    h.remove(header::UPGRADE);
}

/// Identity-looking request headers a client must never be able to set.
fn is_spoofable_identity(name: &str) -> bool {
    name.starts_with("x-tessera-")
        || name.starts_with("x-remote-")
        || name.starts_with("x-auth-")
        || name.starts_with("x-user")
        || name.starts_with("x-forwarded-user")
        || name.starts_with("x-forwarded-email")
        || name.starts_with("x-forwarded-groups")
        || name.starts_with("x-forwarded-preferred-username")
        || name == "remote-user"
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

fn upstream_request_headers(
    state: &AppState,
    src: &HeaderMap,
    peer: Option<PeerAddr>,
    caller: Caller<'_>,
) -> HeaderMap {
    let mut h = src.clone();
    remove_hop_by_hop(&mut h);
    let spoofable: Vec<HeaderName> = h
        .keys()
        .filter(|n| is_spoofable_identity(n.as_str()))
        .cloned()
        .collect();
    for n in spoofable {
        h.remove(n);
    }
    for n in [
        header::AUTHORIZATION,
        header::HOST,
        HeaderName::from_static("dpop"),
        HeaderName::from_static("x-csrf-token"),
        // Method overrides would let a GET (no CSRF check) act as a DELETE upstream.
        HeaderName::from_static("x-http-method-override"),
        HeaderName::from_static("x-http-method"),
        HeaderName::from_static("x-method-override"),
    ] {
        h.remove(n);
    }
    h.remove(header::COOKIE);
    if let Some(c) = cookies::strip(src) {
        h.insert(header::COOKIE, c);
    }
    // Forwarding headers: believed from trusted proxies only, otherwise replaced.
    let peer_trusted = peer.is_some_and(|p| state.config.trusted_proxies.contains(&p.0.ip()));
    if !peer_trusted {
        for n in [
            "x-forwarded-for",
            "x-forwarded-host",
            "x-forwarded-proto",
            "forwarded",
            "x-real-ip",
        ] {
            h.remove(n);
        }
    }
    if let Some(p) = peer {
        let prior = h
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let value = match prior {
            Some(prior) => format!("{prior}, {}", p.0.ip()),
            None => p.0.ip().to_string(),
        };
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert("x-forwarded-for", v);
        }
    }
    if !h.contains_key("x-forwarded-proto") {
        h.insert(
            "x-forwarded-proto",
            HeaderValue::from_static(if state.tls { "https" } else { "http" }),
        );
    }
    if let (Some(host), false) = (src.get(header::HOST), h.contains_key("x-forwarded-host")) {
        h.insert("x-forwarded-host", host.clone());
    }
    match caller {
        Caller::Anonymous => {}
        Caller::User(identity) => {
            for (name, value) in identity_headers(identity) {
                h.insert(name, value);
            }
        }
        Caller::Client(name) => {
            if let Ok(v) = HeaderValue::from_str(name) {
                h.insert("x-tessera-client", v);
            }
            // The signature was for tessera; the upstream gets the verified name instead.
            h.remove("signature");
            h.remove("signature-input");
        }
    }
    h
}

fn clean_response_headers(h: &mut HeaderMap) {
    remove_hop_by_hop(h);
    // The upstream may not set, replace or clear tessera's cookies.
    let kept: Vec<HeaderValue> = h
        .get_all(header::SET_COOKIE)
        .iter()
        .filter(|v| {
            let name = v
                .to_str()
                .ok()
                .and_then(|s| s.split('=').next())
                .map(str::trim)
                .unwrap_or("");
            !cookies::ALL.iter().any(|c| c.eq_ignore_ascii_case(name))
        })
        .cloned()
        .collect();
    h.remove(header::SET_COOKIE);
    for v in kept {
        h.append(header::SET_COOKIE, v);
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
    let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let uri = Uri::builder()
        .scheme(upstream.scheme.clone())
        .authority(upstream.authority.clone())
        .path_and_query(format!("{}{}", upstream.base_path, path_and_query))
        .build()
        .map_err(|_| AppError::invalid_request("bad request target"))?;
    let peer = parts.extensions.get::<PeerAddr>().copied();
    let headers = upstream_request_headers(state, &parts.headers, peer, caller);
    let body = Body::new(http_body_util::Limited::new(body, limit));
    let mut out = axum::http::Request::builder().method(parts.method).uri(uri);
    if let Some(h) = out.headers_mut() {
        *h = headers;
    }
    let out = out
        .body(body)
        .map_err(|_| AppError::invalid_request("bad request"))?;
    inc(&state.metrics.proxied);
    let res = match tokio::time::timeout(
        state.config.limits.upstream_timeout,
        upstream.client.request(out),
    )
    .await
    {
        Err(_) => return Err(AppError::gateway_timeout()),
        Ok(Err(e)) => {
            if is_length_limit(&e) {
                return Err(AppError::payload_too_large());
            }
            tracing::warn!(error = %e, "upstream request failed");
            return Err(AppError::bad_gateway());
        }
        Ok(Ok(res)) => res,
    };
    let (mut parts, body) = res.into_parts();
    clean_response_headers(&mut parts.headers);
    Ok(Response::from_parts(
        parts,
        Body::new(body.map_err(axum::Error::new)),
    ))
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
    let path = req.uri().path().to_owned();
    if !path_is_canonical(&path) {
        return Err(AppError::invalid_request("non-canonical path"));
    }
    let method = req.method().clone();
    if method == Method::GET || method == Method::HEAD {
        if let Some(dir) = &state.config.static_dir {
            if static_exists(dir, &path).await {
                return Ok(serve_static(dir, req).await);
            }
        } else if state.demo_assets {
            if let Some(res) = assets::demo(&path) {
                return Ok(res);
            }
        }
    }
    route_upstream(state, req, &path).await
}

async fn route_upstream(
    state: Arc<AppState>,
    req: Request,
    path: &str,
) -> Result<Response, AppError> {
    let Some(upstream) = state.upstream.clone() else {
        return Err(AppError::not_found());
    };
    if is_public(&state.config, path) {
        return proxy(&state, &upstream, req, Caller::Anonymous).await;
    }
    let h = req.headers();
    if !h.contains_key(header::AUTHORIZATION) && h.contains_key("signature-input") {
        return signed_request(&state, &upstream, req).await;
    }
    let identity = auth::authenticate(&state, req.method(), path, req.headers())?;
    proxy(&state, &upstream, req, Caller::User(&identity)).await
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
    proxy(state, upstream, req, Caller::Client(&client.name)).await
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
    }
}
