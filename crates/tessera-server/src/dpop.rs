//! DPoP (RFC 9449) at the HTTP layer: binding tokens at `/auth/token`, and checking the
//! proof that must accompany every `Authorization: DPoP` request.

use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use tessera_core::dpop::{normalize_htu, verify_proof_once, DpopCheck};

use crate::error::AppError;
use crate::state::AppState;

fn invalid_proof(why: &'static str) -> AppError {
    AppError::new(StatusCode::UNAUTHORIZED, "invalid_dpop_proof", why)
        .challenge("DPoP error=\"invalid_dpop_proof\", algs=\"ES256 EdDSA\"")
}

/// The one `DPoP` header of a request, if any; two are refused (RFC 9449 §4.3 #1).
fn proof_header(headers: &HeaderMap) -> Result<Option<&str>, AppError> {
    const DPOP: axum::http::HeaderName = axum::http::HeaderName::from_static("dpop");
    let mut it = headers.get_all(DPOP).iter();
    let Some(first) = it.next() else {
        return Ok(None);
    };
    if it.next().is_some() {
        return Err(invalid_proof("exactly one DPoP header is allowed"));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| invalid_proof("malformed DPoP header"))
}

/// The URL a proof must name for `path` on this server.
pub fn htu_for(state: &AppState, path: &str) -> Option<String> {
    normalize_htu(&format!("{}{}", state.public_origin, path))
}

/// Verifies a proof for `method` on `path` (and `access_token`, whose hash it must carry),
/// records its `jti`, and returns the key thumbprint.
pub fn check_proof(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
    path: &str,
    access_token: Option<&str>,
) -> Result<Option<String>, AppError> {
    let Some(proof) = proof_header(headers)? else {
        return Ok(None);
    };
    let htu =
        htu_for(state, path).ok_or_else(|| invalid_proof("request URL cannot be normalised"))?;
    let check = DpopCheck {
        method: method.as_str(),
        htu: &htu,
        access_token,
        now: state.clock.now(),
        max_age: state.config.dpop.max_age.as_secs(),
        max_skew: state.config.dpop.max_skew.as_secs(),
        nonce: None,
    };
    match verify_proof_once(proof, &check, &state.dpop_replay) {
        Ok(p) => Ok(Some(p.jkt)),
        Err(e) => {
            tracing::debug!(reason = %e, "DPoP proof refused");
            Err(invalid_proof("DPoP proof refused"))
        }
    }
}

/// The key thumbprint a token request binds to, from its `DPoP` header, if any.
pub fn token_request_binding(state: &AppState, parts: &Parts) -> Result<Option<String>, AppError> {
    check_proof(state, &parts.headers, &parts.method, parts.uri.path(), None).map_err(|e| {
        let code = e.code();
        e.oauth(code)
    })
}
