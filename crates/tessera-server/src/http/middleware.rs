//! The middleware every request passes: request ids, shape and size checks, refused
//! methods, CORS, security headers, the own routes' request timeout.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::http::error::{self, AppError, ErrorCode};
use crate::state::AppState;

/// The longest request target (path and query) accepted; longer gets 414.
pub(crate) const MAX_URI_BYTES: usize = 8192;

/// Request framing and size checks that come before routing: 414 for long targets, 431
/// for too many header bytes, 400 for `Content-Length` with `Transfer-Encoding` (request
/// smuggling) or CR/LF in header values.
fn check_request_shape(state: &AppState, req: &Request) -> Result<(), error::AppError> {
    use axum::http::StatusCode;
    if req.uri().path_and_query().map_or(0, |pq| pq.as_str().len()) > MAX_URI_BYTES {
        return Err(error::AppError::new(
            StatusCode::URI_TOO_LONG,
            ErrorCode::UriTooLong,
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
            ErrorCode::HeadersTooLarge,
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
pub(crate) async fn security_headers(
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
pub(crate) async fn wrap<F, Fut>(
    state: &AppState,
    req: Request,
    route: Option<&str>,
    next: F,
) -> Response
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
    } else if let Some(refused) = refused_method(req.method()) {
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
                    ErrorCode::Timeout,
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
    if res.extensions().get::<error::StoreFailure>().is_some() {
        crate::metrics::inc(&state.metrics.store_errors);
    }
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
    if res.extensions().get::<StaticAnswer>().is_none() {
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

/// The methods tessera serves and forwards, for the `Allow` header of a refused method
/// (extension methods other than the refused ones are forwarded too, and treated as
/// unsafe by the CSRF rules).
pub(crate) const ALLOWED_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// 405 for `CONNECT` and `TRACE` (and `TRACK`, its old alias), on every path, before any
/// routing: a `CONNECT` forwarded upstream and answered 2xx turns the client's connection
/// into a tunnel (RFC 9110 §9.3.6), and `TRACE` echoes the request, credentials included,
/// back to the client (RFC 9110 §9.3.8: a client must not send credentials in it, and a
/// gateway has no reason to pass it on).
pub(crate) fn refused_method(method: &Method) -> Option<Response> {
    if *method != Method::CONNECT && *method != Method::TRACE && method.as_str() != "TRACK" {
        return None;
    }
    let mut res = AppError::method_not_allowed().into_response();
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(ALLOWED_METHODS));
    Some(res)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header;
    use std::sync::atomic::Ordering;

    async fn state() -> (Arc<AppState>, std::path::PathBuf) {
        let mut config = crate::config::Config::default();
        config.passwords.m_cost = 8192;
        config.passwords.t_cost = 1;
        config.passwords.workers = 1;
        let db = std::env::temp_dir().join(format!(
            "tessera-mw-{}.db",
            tessera_core::b64::encode(tessera_core::random_bytes::<8>())
        ));
        let store = tessera_store::open(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let state = AppState::build(crate::StateParts {
            config,
            public_origin: "https://gw.test".into(),
            store,
            master: tessera_core::MasterKey::from_bytes([7; 32]),
            clock: Arc::new(tessera_core::ManualClock::new(tessera_core::UnixTime(
                1_700_000_000,
            ))),
            upstream: None,
            demo_assets: false,
            tls: true,
        })
        .await
        .unwrap();
        (state, db)
    }

    /// A store failure is counted once per request, however many layers it crossed, and
    /// answered 503 `unavailable`; answers that are not store failures are not counted.
    #[tokio::test]
    async fn a_store_failure_counts_once_in_store_errors() {
        let (state, db) = state().await;
        let req = || {
            Request::builder()
                .uri("/auth/session")
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let res = wrap(&state, req(), Some("/auth/session"), |_| async {
            let failed: Result<(), AppError> =
                Err(tessera_store::StoreError::Unavailable("connection refused".into()).into());
            failed
                .map_err(|e| e.clearing_cookies())
                .unwrap_err()
                .into_response()
        })
        .await;
        assert_eq!(res.status(), axum::http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(state.metrics.store_errors.load(Ordering::Relaxed), 1);
        let res = wrap(&state, req(), Some("/auth/session"), |_| async {
            AppError::unauthenticated().into_response()
        })
        .await;
        assert_eq!(res.status(), axum::http::StatusCode::UNAUTHORIZED);
        let res = wrap(&state, req(), Some("/auth/session"), |_| async {
            AppError::no_signing_key().into_response()
        })
        .await;
        assert_eq!(res.status(), axum::http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(state.metrics.store_errors.load(Ordering::Relaxed), 1);
        let _ = std::fs::remove_file(db);
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

/// Marks a response whose `Content-Security-Policy` is `static_csp`'s (or deliberately
/// none): `wrap()` adds no `default-src 'none'` to it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StaticAnswer;
