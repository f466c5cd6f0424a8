//! The upstream: the API tessera protects, the pooled clients that reach it, and the
//! proxying of one request to it (streaming both ways, bounded in size and time).

pub(crate) mod client;
pub(crate) mod headers;

pub use client::{
    fuzz_parse, FuzzAnswer, Http1, RequestHead, Streaming, UpstreamBody, UpstreamError,
};

use std::sync::Arc;

use axum::body::{Body, HttpBody as _};
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Uri};
use axum::response::Response;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::config::Config;
use crate::http::error::AppError;
use crate::http::peer::PeerAddr;
use crate::metrics::inc;
use crate::state::AppState;
use headers::{clean_response_headers, upstream_request_headers, Caller};

/// Why `upstream` is not a usable URL.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamUrlError {
    /// Not a URL at all.
    #[error("configuration key `upstream`: not a URL")]
    NotAUrl,
    /// No `http://`.
    #[error("configuration key `upstream`: needs a scheme (http://host:port)")]
    NoScheme,
    /// No host.
    #[error("configuration key `upstream`: needs a host")]
    NoHost,
    /// A host that cannot be a `Host` header.
    #[error("configuration key `upstream`: bad host")]
    BadHost,
}

/// The upstream API and the pooled HTTP client that reaches it.
#[derive(Clone, Debug)]
pub struct Upstream {
    scheme: axum::http::uri::Scheme,
    authority: axum::http::uri::Authority,
    base_path: String,
    /// Requests with a body (streamed by hyper).
    client: Client<HttpConnector, Body>,
    /// Requests without one: the hot path.
    http1: crate::upstream::client::Http1,
    /// Proxied requests in flight per client IP (`limits.max_upstream_per_ip`).
    per_ip: Arc<crate::http::per_ip::PerIp>,
}

impl Upstream {
    /// Parses `http://host:port[/base]`.
    pub fn new(url: &str, config: &Config) -> Result<Self, UpstreamUrlError> {
        let uri: Uri = url.parse().map_err(|_| UpstreamUrlError::NotAUrl)?;
        let scheme = uri.scheme().cloned().ok_or(UpstreamUrlError::NoScheme)?;
        let authority = uri.authority().cloned().ok_or(UpstreamUrlError::NoHost)?;
        let base_path = uri.path().trim_end_matches('/').to_owned();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(config.limits.upstream_timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(std::time::Duration::from_secs(30))
            .pool_max_idle_per_host(256)
            .build(connector);
        let host =
            HeaderValue::from_str(authority.as_str()).map_err(|_| UpstreamUrlError::BadHost)?;
        let addr = format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(80)
        );
        let http1 = crate::upstream::client::Http1::new(
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
            per_ip: Arc::new(crate::http::per_ip::PerIp::new(
                config.limits.max_upstream_per_ip,
            )),
        })
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
    let slot = match crate::http::peer::client_ip(state, peer, &parts.headers) {
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
    slot: Option<crate::http::per_ip::Slot>,
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
            if crate::http::serve::is_body_timeout(&e) {
                return Err(AppError::request_timeout());
            }
            tracing::warn!(error = %e, "upstream request failed");
            return Err(AppError::bad_gateway());
        }
        Ok(Ok(res)) => res,
    };
    let (mut parts, body) = res.into_parts();
    clean_response_headers(&mut parts.headers);
    let body = crate::http::per_ip::Held::new(body, slot);
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
