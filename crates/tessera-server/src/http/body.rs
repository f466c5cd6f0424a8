//! Reading request bodies: bounded in size and (through `serve`'s body deadline) in time.

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap};

use crate::http::error::AppError;

/// Largest body accepted by tessera's own JSON/form endpoints.
pub const AUTH_BODY_LIMIT: usize = 16 * 1024;

type AppResult<T> = Result<T, AppError>;

/// Reads a bounded body; 413 beyond the limit.
pub async fn read_body(body: Body, limit: usize) -> AppResult<Bytes> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        if crate::http::serve::is_body_timeout(&e) {
            AppError::request_timeout()
        } else {
            AppError::payload_too_large()
        }
    })
}

/// True if the request's content type is `essence` (parameters ignored).
pub fn content_type_is(headers: &HeaderMap, essence: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(essence))
}

/// Parses a JSON body; only `application/json` is accepted (no forms, no text/plain:
/// those are what cross-site forms can send).
pub async fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
) -> AppResult<T> {
    if !content_type_is(headers, "application/json") {
        return Err(AppError::unsupported_media_type());
    }
    let bytes = read_body(body, AUTH_BODY_LIMIT).await?;
    serde_json::from_slice(&bytes).map_err(|_| AppError::invalid_request("malformed JSON body"))
}
