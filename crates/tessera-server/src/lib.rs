//! Tessera's HTTP layer: the auth endpoints, CSRF rules, the gateway (static files and
//! the authenticating reverse proxy), TLS and the accept loop.
//!
//! [`app`] builds the axum `Router` from an [`AppState`]; [`serve::run`] serves it. The
//! per-request check is in [`auth`]: signature, claims and an in-memory denylist, with
//! no database access.

pub mod assets;
pub mod audit;
pub mod auth;
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
pub mod ratelimit;
pub mod routes;
pub mod serve;
pub mod state;
pub mod sync;
pub mod tls;
pub mod token_endpoint;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{any, get, post};
use axum::Router;

pub use state::{AppState, StateParts};

/// Security headers on every response; HSTS when served over TLS.
async fn security_headers(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let mut res = next.run(req).await;
    state.metrics.count_status(res.status().as_u16());
    let h = res.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("strict-origin-when-cross-origin"));
    h.entry(header::X_FRAME_OPTIONS)
        .or_insert(HeaderValue::from_static("DENY"));
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(
            "default-src 'none'; frame-ancestors 'none'",
        ));
    if state.tls {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    res
}

/// The whole application.
pub fn app(state: Arc<AppState>) -> Router {
    let nope = any(gateway::method_not_allowed);
    Router::new()
        .route("/auth/login", post(routes::login).merge(nope.clone()))
        .route("/auth/session", get(routes::session).merge(nope.clone()))
        .route(
            "/auth/refresh",
            post(routes::refresh_browser).merge(nope.clone()),
        )
        .route("/auth/logout", post(routes::logout).merge(nope.clone()))
        .route(
            "/auth/logout-all",
            post(routes::logout_all).merge(nope.clone()),
        )
        .route(
            "/auth/token",
            post(token_endpoint::token).merge(nope.clone()),
        )
        .route(
            "/auth/revoke",
            post(token_endpoint::revoke).merge(nope.clone()),
        )
        .route("/auth/verify", any(routes::verify))
        .route(
            "/.well-known/jwks.json",
            get(routes::jwks).merge(nope.clone()),
        )
        .route("/healthz", get(routes::healthz).merge(nope.clone()))
        .route("/metrics", get(routes::metrics).merge(nope.clone()))
        .route("/tessera.js", get(assets::tessera_js).merge(nope.clone()))
        .route("/tessera.d.ts", get(assets::tessera_dts).merge(nope))
        .fallback(gateway::fallback)
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            security_headers,
        ))
        .with_state(state)
}
