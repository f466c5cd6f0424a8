//! DPoP (RFC 9449) at the HTTP layer: binding tokens at `/auth/token`, and checking the
//! proof that must accompany every `Authorization: DPoP` request.

use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use tessera_core::dpop::{normalize_htu, verify_proof, DpopCheck};
use tessera_store::ReplayKind;

use crate::http::error::{AppError, ErrorCode};
use crate::state::AppState;

fn invalid_proof(why: &'static str) -> AppError {
    AppError::new(StatusCode::UNAUTHORIZED, ErrorCode::InvalidDpopProof, why)
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

/// The URL a proof must name for `path` on this server, reached as `headers` say
/// ([`crate::auth::csrf::request_origin`]).
pub(crate) fn htu_for(state: &AppState, headers: &HeaderMap, path: &str) -> Option<String> {
    normalize_htu(&format!(
        "{}{}",
        crate::auth::csrf::request_origin(state, headers),
        path
    ))
}

/// Verifies a proof for `method` on `path` (and `access_token`, whose hash it must carry),
/// claims its `jti` on this node and, with `dpop.shared_replay`, in the store for every
/// node ([`crate::cluster::sync::claim_once`]), and returns the key thumbprint. A proof seen before
/// anywhere is 401 `invalid_dpop_proof`; a store that cannot say is 503 `unavailable`.
pub(crate) async fn check_proof(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
    path: &str,
    access_token: Option<&str>,
) -> Result<Option<String>, AppError> {
    let Some(proof) = proof_header(headers)? else {
        return Ok(None);
    };
    let htu = htu_for(state, headers, path)
        .ok_or_else(|| invalid_proof("request URL cannot be normalised"))?;
    let check = DpopCheck {
        method: method.as_str(),
        htu: &htu,
        access_token,
        now: state.clock.now(),
        max_age: state.config.dpop.max_age.as_secs(),
        max_skew: state.config.dpop.max_skew.as_secs(),
        nonce: None,
    };
    let p = verify_proof(proof, &check).map_err(|e| {
        tracing::debug!(reason = %e, "DPoP proof refused");
        invalid_proof("DPoP proof refused")
    })?;
    let key = p.replay_key();
    let expires = p.replay_expires(&check);
    match crate::cluster::sync::claim_once(state, ReplayKind::Dpop, &key, expires).await {
        Ok(()) => Ok(Some(p.jkt)),
        Err(crate::cluster::sync::ClaimError::Unavailable(detail)) => Err(AppError::from(detail)),
        Err(e) => {
            tracing::debug!(reason = ?e, "DPoP proof refused");
            Err(invalid_proof("DPoP proof refused"))
        }
    }
}

/// The key thumbprint a token request binds to, from its `DPoP` header, if any.
pub(crate) async fn token_request_binding(
    state: &AppState,
    parts: &Parts,
) -> Result<Option<String>, AppError> {
    check_proof(state, &parts.headers, &parts.method, parts.uri.path(), None)
        .await
        .map_err(|e| {
            let code = e.code();
            e.oauth(code)
        })
}
