//! Tessera's HTTP layer: the auth endpoints, CSRF rules, the gateway (static files and
//! the authenticating reverse proxy), TLS and the accept loop.
//!
//! [`app`] builds the axum `Router` from an [`AppState`]; [`serve::run`] serves it. The
//! per-request check is in [`auth`]: signature, claims and an in-memory denylist, with
//! no database access.

pub mod assets;
pub mod audit;
pub mod auth;
pub mod clients;
pub mod config;
pub mod cookies;
pub mod demo;
pub mod dpop;
pub mod error;
pub mod fsutil;
pub mod gateway;
pub mod hashing;
pub mod keys;
pub mod metrics;
pub mod per_ip;
pub mod ratelimit;
pub mod routes;
pub mod serve;
pub mod state;
pub mod sync;
pub mod tls;
pub mod token_endpoint;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{any, get, post};
use axum::Router;

pub use state::{AppState, StateParts};

/// The longest request target (path and query) accepted; longer gets 414.
pub const MAX_URI_BYTES: usize = 8192;

/// Request framing and size checks that come before routing: 414 for long targets, 431
/// for too many header bytes, 400 for `Content-Length` with `Transfer-Encoding` (request
/// smuggling) or CR/LF in header values.
fn check_request_shape(state: &AppState, req: &Request) -> Result<(), error::AppError> {
    use axum::http::StatusCode;
    if req.uri().path_and_query().map_or(0, |pq| pq.as_str().len()) > MAX_URI_BYTES {
        return Err(error::AppError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            "request target too long",
        ));
    }
    let h = req.headers();
    // One pass over every header byte, branch-free so that it vectorises.
    let mut total = 0usize;
    let mut line_break = 0u8;
    for (n, v) in h {
        total += n.as_str().len() + v.len() + 4;
        line_break |= v.as_bytes().iter().fold(0u8, |acc, &b| {
            acc | u8::from(b == b'\r') | u8::from(b == b'\n')
        });
    }
    if total > state.config.limits.max_header_bytes || h.len() > state.config.limits.max_headers {
        return Err(error::AppError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            "request headers too large",
        ));
    }
    if h.contains_key(header::TRANSFER_ENCODING) && h.contains_key(header::CONTENT_LENGTH) {
        return Err(error::AppError::invalid_request(
            "Content-Length with Transfer-Encoding",
        ));
    }
    if line_break != 0 {
        return Err(error::AppError::invalid_request(
            "line break in a header value",
        ));
    }
    Ok(())
}

const X_REQUEST_ID: axum::http::HeaderName = axum::http::HeaderName::from_static("x-request-id");

/// The request id: the client's `X-Request-Id` if it is short and plain, else a new one.
/// It is forwarded upstream and returned, so logs on both sides can be joined.
fn request_id(req: &Request) -> HeaderValue {
    req.headers()
        .get(&X_REQUEST_ID)
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.as_bytes()
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(b))
        })
        .cloned()
        .unwrap_or_else(new_request_id)
}

/// A fresh request id: a random per-process prefix and a counter (unique, not secret;
/// no system call per request, unlike drawing random bytes each time).
fn new_request_id() -> HeaderValue {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static PREFIX: OnceLock<[u8; 6]> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(tessera_core::random_bytes::<6>);
    let mut id = [0u8; 12];
    id[..6].copy_from_slice(prefix);
    id[6..].copy_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes()[2..]);
    let mut text = [0u8; 16];
    tessera_core::b64::encode_slice(id, &mut text)
        .and_then(|n| HeaderValue::from_bytes(&text[..n]).ok())
        .unwrap_or(HeaderValue::from_static("unknown"))
}

/// Credentialed CORS for the configured extra origins only (never `*`, never `null`).
fn cors_origin(state: &AppState, req: &Request) -> Option<HeaderValue> {
    let origin = req.headers().get(header::ORIGIN)?;
    let allowed = origin
        .to_str()
        .is_ok_and(|o| state.config.cors.allowed_origins.iter().any(|a| a == o));
    allowed.then(|| origin.clone())
}

fn add_cors(h: &mut axum::http::HeaderMap, origin: HeaderValue) {
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    h.append(header::VARY, HeaderValue::from_static("Origin"));
}

/// The axum middleware around tessera's own routes: see [`wrap`].
async fn security_headers(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let matched = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .cloned();
    wrap(&state, req, matched.as_ref().map(|m| m.as_str()), |req| {
        next.run(req)
    })
    .await
}

/// Before the handler: request-shape checks and CORS preflights. After: security headers
/// on every response (HSTS when served over TLS) and CORS headers for allowed origins.
/// `route` is tessera's own route, `None` for the gateway (no request timeout here: the
/// proxy bounds the upstream's time itself).
async fn wrap<F, Fut>(state: &AppState, req: Request, route: Option<&str>, next: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    use axum::response::IntoResponse;
    let mut req = req;
    let request_id = request_id(&req);
    req.headers_mut().insert(X_REQUEST_ID, request_id.clone());
    let own_route = route.is_some();
    let route = route.unwrap_or("gateway");
    let cors = cors_origin(state, &req);
    let preflight = req.method() == axum::http::Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut res = if let Err(e) = check_request_shape(state, &req) {
        e.into_response()
    } else if let Some(refused) = gateway::refused_method(req.method()) {
        refused
    } else if let (Some(origin), true) = (cors.clone(), preflight) {
        let mut res = axum::http::StatusCode::NO_CONTENT.into_response();
        let h = res.headers_mut();
        add_cors(h, origin);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("content-type, x-csrf-token, authorization, dpop"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        res
    } else {
        use tracing::Instrument;
        let span = tracing::info_span!(
            "request",
            request_id = request_id.to_str().unwrap_or(""),
            method = %req.method(),
            route = %route
        );
        let work = next(req).instrument(span);
        // tessera's own endpoints get `limits.request_timeout`; proxied requests are bounded
        // by `limits.upstream_timeout` in the proxy instead.
        let mut res = if own_route {
            match tokio::time::timeout(state.config.limits.request_timeout, work).await {
                Ok(res) => res,
                Err(_) => error::AppError::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "timeout",
                    "the request took too long",
                )
                .retry_after(1)
                .into_response(),
            }
        } else {
            work.await
        };
        if let Some(origin) = cors {
            add_cors(res.headers_mut(), origin);
        }
        res
    };
    state.metrics.count_status(res.status().as_u16());
    state.metrics.count_route(route, res.status().as_u16());
    res.headers_mut().insert(X_REQUEST_ID, request_id);
    let h = res.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("strict-origin-when-cross-origin"));
    h.entry(header::X_FRAME_OPTIONS)
        .or_insert(HeaderValue::from_static("DENY"));
    // Never replaces what a handler or the upstream set (`or_insert`); files from
    // `static_dir` carry `static_csp` (or, when it is "", deliberately none).
    if res.extensions().get::<gateway::StaticAnswer>().is_none() {
        res.headers_mut()
            .entry(header::CONTENT_SECURITY_POLICY)
            .or_insert(HeaderValue::from_static(
                "default-src 'none'; frame-ancestors 'none'",
            ));
    }
    let h = res.headers_mut();
    if state.tls {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    res
}

/// Tessera's own routes (exact paths, as axum matches them); every other path belongs to
/// the gateway (static files, then the upstream).
pub fn is_own_route(path: &str) -> bool {
    OWN_ROUTES.contains(&path)
}

/// Tessera's own routes (exact paths, as axum matches them), in the order of the router's
/// table `own_routes` (a test holds the two to each other).
pub const OWN_ROUTES: [&str; 15] = [
    "/auth/login",
    "/auth/session",
    "/auth/refresh",
    "/auth/logout",
    "/auth/logout-all",
    "/auth/token",
    "/auth/revoke",
    "/auth/verify",
    "/.well-known/jwks.json",
    "/.well-known/oauth-authorization-server",
    "/healthz",
    "/metrics",
    "/openapi.json",
    "/tessera.js",
    "/tessera.d.ts",
];

type Routes = Vec<(&'static str, axum::routing::MethodRouter<Arc<AppState>>)>;

fn own_routes() -> Routes {
    const GET: &str = "GET, HEAD";
    const POST: &str = "POST";
    vec![
        ("/auth/login", post(routes::login).merge(nope(POST))),
        ("/auth/session", get(routes::session).merge(nope(GET))),
        (
            "/auth/refresh",
            post(routes::refresh_browser).merge(nope(POST)),
        ),
        ("/auth/logout", post(routes::logout).merge(nope(POST))),
        (
            "/auth/logout-all",
            post(routes::logout_all).merge(nope(POST)),
        ),
        ("/auth/token", post(token_endpoint::token).merge(nope(POST))),
        (
            "/auth/revoke",
            post(token_endpoint::revoke).merge(nope(POST)),
        ),
        ("/auth/verify", any(routes::verify)),
        ("/.well-known/jwks.json", get(routes::jwks).merge(nope(GET))),
        (
            "/.well-known/oauth-authorization-server",
            get(routes::authorization_server_metadata).merge(nope(GET)),
        ),
        ("/healthz", get(routes::healthz).merge(nope(GET))),
        ("/metrics", get(routes::metrics).merge(nope(GET))),
        ("/openapi.json", get(assets::openapi).merge(nope(GET))),
        ("/tessera.js", get(assets::tessera_js).merge(nope(GET))),
        ("/tessera.d.ts", get(assets::tessera_dts).merge(nope(GET))),
    ]
}

/// Every other method on one of tessera's own routes: 405 with the `Allow` header
/// (RFC 9110 §15.5.6) naming the ones it takes.
fn nope(allow: &'static str) -> axum::routing::MethodRouter<Arc<AppState>> {
    any(move || async move { error::AppError::method_not_allowed().allow(allow) })
}

/// The whole application as one axum `Router` (tessera's routes, the gateway as its
/// fallback).
pub fn app(state: Arc<AppState>) -> Router {
    own_routes()
        .into_iter()
        .fold(Router::new(), |r, (path, route)| r.route(path, route))
        .fallback(gateway::fallback)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            security_headers,
        ))
        .with_state(state)
}

/// The application as [`serve::run`] serves it: requests for tessera's own routes go
/// through the [`app`] router; all others (the gateway: most requests) go straight to the
/// gateway under the same checks and headers, without the router's matching, boxing and
/// middleware layers (see bench/log/2026-11-23_to_2026-12-02.md for what that saves per proxied request).
#[derive(Clone)]
pub struct App(Arc<(Router, Arc<AppState>)>);

impl App {
    /// The application for `state`.
    pub fn new(state: Arc<AppState>) -> Self {
        App(Arc::new((app(Arc::clone(&state)), state)))
    }

    /// Answers one request from `peer` (the connection's remote address). Only tessera's
    /// own routes get it as a request extension (their handlers read it there); the
    /// gateway takes it as an argument, which saves three allocations per proxied request.
    pub async fn handle(&self, mut req: Request, peer: Option<SocketAddr>) -> Response {
        use axum::response::IntoResponse;
        use tower::ServiceExt;
        let (router, state) = &*self.0;
        let peer = peer.map(audit::PeerAddr);
        // HTTP/2 names the host in `:authority` and usually sends no `Host`: one place to
        // read it (RFC 9113 §8.3.1).
        if !req.headers().contains_key(header::HOST) {
            if let Some(host) = req
                .uri()
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            {
                req.headers_mut().insert(header::HOST, host);
            }
        }
        if is_own_route(req.uri().path()) {
            if let Some(p) = peer {
                req.extensions_mut().insert(p);
            }
            return match router.clone().oneshot(req).await {
                Ok(res) => res,
                Err(e) => match e {},
            };
        }
        wrap(state, req, None, |req| async move {
            gateway::gateway(Arc::clone(state), req, peer)
                .await
                .into_response()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    /// The router's table and the constant list that routing and the route counters read
    /// name the same paths in the same order, so neither can drift from the other.
    #[test]
    fn own_routes_table_and_constant_list_agree() {
        let table: Vec<&str> = super::own_routes().into_iter().map(|(p, _)| p).collect();
        assert_eq!(table, super::OWN_ROUTES);
    }
}
