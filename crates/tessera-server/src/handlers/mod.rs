//! Tessera's own endpoints, one module per audience: the browser's session endpoints,
//! the OAuth-shaped endpoints for apps and services, forward-auth for proxies, and the
//! operational ones (keys, health, metrics, built-in files).

pub(crate) mod assets;
pub(crate) mod browser;
pub(crate) mod forward_auth;
pub(crate) mod oauth;
pub(crate) mod ops;

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::response::Response;

use crate::http::peer::PeerAddr;

/// Marks an answer as not to be stored by any cache (RFC 9111 §5.2.2.5).
pub(crate) fn no_store(res: &mut Response) {
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// The connection's peer, which [`crate::App`] puts in the request's extensions.
pub(crate) fn peer(req: &Request) -> Option<PeerAddr> {
    req.extensions().get::<PeerAddr>().copied()
}
