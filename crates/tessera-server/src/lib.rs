//! Tessera's HTTP layer: the auth endpoints, CSRF rules, the gateway (static files and
//! the authenticating reverse proxy), TLS and the accept loop.
//!
//! [`App`] is the one entrance: it sends tessera's own routes (the table below) through
//! an axum router and every other request straight to the [`gateway`]; [`http::serve`]
//! accepts connections and feeds them to it. The per-request check is in [`auth`]:
//! signature, claims and an in-memory denylist, with no database access. The rooms and
//! the path of a request through them: docs/architecture.md.

pub mod auth;
pub mod cluster;
pub mod config;
pub mod fsutil;
pub(crate) mod gateway;
pub(crate) mod handlers;
pub mod http;
pub(crate) mod metrics;
pub(crate) mod sessions;
pub(crate) mod startup;
pub(crate) mod state;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware;
use axum::response::Response;

use crate::handlers::{assets, browser, forward_auth, oauth, ops};
use crate::http::error;
use crate::http::middleware::{security_headers, wrap};
use axum::routing::{any, get, post};
use axum::Router;

pub use cluster::keys::schedule as key_schedule;
pub use startup::{StartError, StateParts};
pub use state::AppState;

/// Starts this node's background work: following the revocation feed and the key
/// schedule ([`cluster::spawn`]) and reloading the service clients.
pub fn spawn_background(state: Arc<AppState>) {
    cluster::spawn(Arc::clone(&state));
    auth::clients::spawn_reload(state);
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
        ("/auth/login", post(browser::login).merge(nope(POST))),
        ("/auth/session", get(browser::session).merge(nope(GET))),
        (
            "/auth/refresh",
            post(browser::refresh_browser).merge(nope(POST)),
        ),
        ("/auth/logout", post(browser::logout).merge(nope(POST))),
        (
            "/auth/logout-all",
            post(browser::logout_all).merge(nope(POST)),
        ),
        ("/auth/token", post(oauth::token).merge(nope(POST))),
        ("/auth/revoke", post(oauth::revoke).merge(nope(POST))),
        ("/auth/verify", any(forward_auth::verify)),
        ("/.well-known/jwks.json", get(ops::jwks).merge(nope(GET))),
        (
            "/.well-known/oauth-authorization-server",
            get(oauth::authorization_server_metadata).merge(nope(GET)),
        ),
        ("/healthz", get(ops::healthz).merge(nope(GET))),
        ("/metrics", get(ops::metrics).merge(nope(GET))),
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

/// Tessera's own routes as one axum `Router`, under the middleware; [`App`] sends only
/// their paths here.
fn app(state: Arc<AppState>) -> Router {
    own_routes()
        .into_iter()
        .fold(Router::new(), |r, (path, route)| r.route(path, route))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            security_headers,
        ))
        .with_state(state)
}

/// The application as [`http::serve::run`] serves it: requests for tessera's own routes go
/// through the [`app`] router; all others (the gateway: most requests) go straight to the
/// gateway under the same checks and headers, without the router's matching, boxing and
/// middleware layers (what that saves is in bench/log/).
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
        let peer = peer.map(crate::http::peer::PeerAddr);
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
