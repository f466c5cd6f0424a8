//! Who is calling: credentials from `Authorization` or cookies, verified in memory, and the
//! CSRF rules for cookie-authenticated unsafe requests.
//!
//! The CSRF rules are in [`csrf`].
//!
//! Requests carrying `Authorization` are authenticated by it alone and cookies are ignored;
//! a stray `Authorization` header cannot switch CSRF checks off for cookie credentials,
//! because then the cookies are not used at all.

pub mod clients;
pub mod csrf;
pub(crate) mod dpop;
pub(crate) mod signatures;

use axum::http::{header, HeaderMap, Method};
use std::sync::Arc;

use tessera_core::{AccessClaims, TokenError, TokenParts};

use crate::config::CookieMode;
use crate::http::cookies;
use crate::http::error::AppError;
use crate::metrics::inc;
use crate::state::AppState;
use csrf::{check_csrf_token, check_origin, is_unsafe};

/// How a request was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Browser cookies (CSRF rules apply).
    Cookie,
    /// `Authorization: Bearer`.
    Bearer,
    /// `Authorization: DPoP` with a proof by the bound key.
    Dpop,
}

/// A verified caller.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The verified token claims (shared with the verified-token cache).
    pub claims: Arc<AccessClaims>,
    /// How.
    pub via: Via,
    /// The `Cookie` headers were read and hold tessera's cookies only, so nothing of them
    /// goes upstream (false when unknown: tokens from `Authorization`).
    pub only_tessera_cookies: bool,
}

fn refused(state: &AppState, e: TokenError) -> AppError {
    inc(&state.metrics.verify_fail);
    tracing::debug!(reason = %e, "credential refused");
    AppError::unauthenticated()
}

/// Verifies a compact access token (no DPoP binding allowed on this path).
pub fn verify_bearer(state: &AppState, token: &str) -> Result<Arc<AccessClaims>, AppError> {
    unbound(state, verify_token(state, TokenParts::from_compact(token))?)
}

/// The one place a token is checked: the key ring (with the verified-token cache), the
/// verifier's claims rules and the denylist.
fn verify_token(
    state: &AppState,
    parts: Result<TokenParts<'_>, TokenError>,
) -> Result<Arc<AccessClaims>, AppError> {
    let ring = state.keys.load();
    parts
        .and_then(|p| {
            ring.verify_parts_cached(
                p,
                &state.verifier,
                &state.denylist,
                state.clock.now(),
                &state.verify_cache,
            )
        })
        .map(tessera_core::VerifiedToken::into_shared_claims)
        .map_err(|e| refused(state, e))
}

/// Refuses a DPoP-bound token presented without its proof (as Bearer or in cookies,
/// RFC 9449 §7.1).
fn unbound(state: &AppState, claims: Arc<AccessClaims>) -> Result<Arc<AccessClaims>, AppError> {
    if claims.cnf.is_some() {
        return Err(refused(state, TokenError::BindingMismatch));
    }
    inc(&state.metrics.verify_ok);
    Ok(claims)
}

/// Verifies a DPoP-bound access token and the proof that must come with it: the proof's
/// key must be the one the token is bound to (`cnf.jkt`), for this method and URL, carry
/// the token's hash, and be fresh and unseen (on any node, see
/// [`crate::cluster::sync::claim_once`]).
pub async fn verify_dpop(
    state: &AppState,
    method: &Method,
    path: &str,
    token: &str,
    headers: &HeaderMap,
) -> Result<Arc<AccessClaims>, AppError> {
    let claims = verify_token(state, TokenParts::from_compact(token))?;
    let Some(bound) = claims.cnf.as_ref().map(|c| c.jkt.as_str()) else {
        // An unbound token does not become bound by sending it as DPoP.
        return Err(refused(state, TokenError::BindingMismatch));
    };
    let jkt = crate::auth::dpop::check_proof(state, headers, method, path, Some(token))
        .await?
        .ok_or_else(|| {
            AppError::unauthenticated().challenge("DPoP error=\"invalid_dpop_proof\"")
        })?;
    if jkt != bound {
        return Err(refused(state, TokenError::BindingMismatch)
            .challenge("DPoP error=\"invalid_dpop_proof\""));
    }
    inc(&state.metrics.verify_ok);
    Ok(claims)
}

/// Verifies the access-token cookies of the configured mode.
pub fn verify_cookies(
    state: &AppState,
    c: &cookies::TesseraCookies<'_>,
) -> Result<Arc<AccessClaims>, AppError> {
    let parts = match state.config.cookies.mode {
        CookieMode::Split => match (c.claims, c.sig) {
            (Some(claims), Some(sig)) => TokenParts::from_split(claims, sig),
            _ => return Err(AppError::unauthenticated()),
        },
        CookieMode::Whole => match c.access {
            Some(token) => TokenParts::from_compact(token),
            None => return Err(AppError::unauthenticated()),
        },
    };
    unbound(state, verify_token(state, parts)?)
}

/// Authenticates a request for `method` (which may differ from the request's own method
/// for forward-auth) on `path` (for DPoP's `htu`) and applies the CSRF rules to cookie
/// credentials. Async only for DPoP, whose proof's `jti` may be claimed in the store (the
/// verify-time histogram then includes that round trip); other credentials never wait.
pub async fn authenticate(
    state: &AppState,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<Identity, AppError> {
    let started = std::time::Instant::now();
    let result = authenticate_inner(state, method, path, headers).await;
    state.metrics.observe_verify(started.elapsed());
    result
}

async fn authenticate_inner(
    state: &AppState,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<Identity, AppError> {
    let mut auth = headers.get_all(header::AUTHORIZATION).iter();
    if let Some(value) = auth.next() {
        if auth.next().is_some() {
            return Err(AppError::invalid_request(
                "more than one Authorization header",
            ));
        }
        let value = value
            .to_str()
            .map_err(|_| AppError::invalid_request("malformed Authorization header"))?;
        let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("dpop") {
            let claims = verify_dpop(state, method, path, token.trim(), headers).await?;
            return Ok(Identity {
                claims,
                via: Via::Dpop,
                only_tessera_cookies: false,
            });
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AppError::unauthenticated().challenge("Bearer"));
        }
        let claims = verify_bearer(state, token.trim())
            .map_err(|e| e.challenge("Bearer error=\"invalid_token\""))?;
        return Ok(Identity {
            claims,
            via: Via::Bearer,
            only_tessera_cookies: false,
        });
    }
    let jar = cookies::read(headers)?;
    let claims = verify_cookies(state, &jar)?;
    if is_unsafe(method) {
        check_origin(state, headers)?;
        let sid = claims.session_id().ok_or_else(AppError::unauthenticated)?;
        check_csrf_token(state, headers, &sid)?;
    }
    Ok(Identity {
        claims,
        via: Via::Cookie,
        only_tessera_cookies: !jar.others,
    })
}
