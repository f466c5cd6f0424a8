//! Operational endpoints: the public keys, health and metrics.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::no_store;
use crate::state::AppState;

/// `GET /.well-known/jwks.json`.
pub(crate) async fn jwks(State(state): State<Arc<AppState>>) -> Response {
    let keys = state.keys.load().jwks();
    let mut res = Json(json!({ "keys": keys })).into_response();
    // Short enough that a next key published `prepublish` ahead is seen in time.
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300, stale-while-revalidate=60"),
    );
    res
}

/// `GET /healthz`: cheap enough to be polled hard (no store round trip per call: the
/// store's reachability comes from the background sync, refreshed every second).
pub(crate) async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    let store_ok = !state.degraded.load(std::sync::atomic::Ordering::Relaxed);
    let has_key = state.keys.load().active().is_some();
    let status = if store_ok { "ok" } else { "degraded" };
    let code = if has_key {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut res = (
        code,
        Json(json!({"status": status, "store": store_ok, "signing_key": has_key})),
    )
        .into_response();
    no_store(&mut res);
    res
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let stats = state.denylist.stats();
    let now = state.clock.now();
    let ring = state.keys.load();
    let key_age = ring
        .active()
        .map_or(0.0, |k| now.0.saturating_sub(k.activates_at().0) as f64);
    let degraded = if state.degraded.load(std::sync::atomic::Ordering::Relaxed) {
        1.0
    } else {
        0.0
    };
    let body = state.metrics.render(&[
        (
            "tessera_denylist_sessions",
            "Revoked sessions held in memory.",
            stats.sessions as f64,
        ),
        (
            "tessera_denylist_users",
            "Users with a not-before time in memory.",
            stats.users as f64,
        ),
        (
            "tessera_signing_key_age_seconds",
            "Age of the active signing key.",
            key_age,
        ),
        (
            "tessera_keys",
            "Keys in the ring (next, active, retired).",
            ring.keys().len() as f64,
        ),
        (
            "tessera_store_degraded",
            "1 while the store is unreachable.",
            degraded,
        ),
    ]);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}
