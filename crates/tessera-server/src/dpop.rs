//! DPoP (RFC 9449) at the HTTP layer: binding tokens at `/auth/token` and checking proofs
//! on requests that present `Authorization: DPoP`.

use axum::http::request::Parts;

use crate::error::AppError;
use crate::state::AppState;

/// The key thumbprint a token request binds to, from its `DPoP` header, if any.
pub fn token_request_binding(_state: &AppState, parts: &Parts) -> Result<Option<String>, AppError> {
    if parts.headers.contains_key("dpop") {
        return Err(
            AppError::invalid_request("DPoP proofs are not supported yet")
                .oauth("invalid_dpop_proof"),
        );
    }
    Ok(None)
}
