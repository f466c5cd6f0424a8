//! `GET /auth/verify`: forward-auth for nginx `auth_request` and Traefik `forwardAuth`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{no_store, peer};
use crate::auth::{self};
use crate::http::error::AppError;
use crate::state::AppState;

type AppResult<T> = Result<T, AppError>;

/// `GET /auth/verify`: forward-auth for nginx `auth_request` and Traefik `forwardAuth`.
///
/// The original method comes from `X-Forwarded-Method` / `X-Original-Method`, believed
/// from `trusted_proxies` peers only; CSRF rules apply to it. Without one (none sent, or
/// sent by any other peer) the check fails closed: the original request is taken as
/// unsafe, so a cookie needs the CSRF rules' same-origin signals and token to pass.
pub(crate) async fn verify(
    State(state): State<Arc<AppState>>,
    req: Request,
) -> AppResult<Response> {
    let trusted = peer_is_trusted(&state, &req);
    let headers = req.headers();
    let forwarded = if trusted {
        forwarded_method(headers)?
    } else {
        None
    };
    let path = forwarded_path(&state, &req);
    // DPoP's `htm` is the original method when it is known, else this request's.
    let method = forwarded.clone().unwrap_or_else(|| req.method().clone());
    let identity = auth::authenticate(&state, &method, &path, headers).await?;
    if forwarded.is_none() && identity.via == auth::Via::Cookie && !auth::csrf::is_unsafe(&method) {
        // authenticate() skipped the CSRF rules for a safe method; the original one is
        // unknown, so they apply as for an unsafe one.
        auth::csrf::check_origin(&state, headers)?;
        let sid = identity
            .claims
            .session_id()
            .ok_or_else(AppError::unauthenticated)?;
        auth::csrf::check_csrf_token(&state, headers, &sid)?;
    }
    let mut res = StatusCode::OK.into_response();
    crate::upstream::headers::identity_headers(&identity, res.headers_mut());
    no_store(&mut res);
    Ok(res)
}

fn peer_is_trusted(state: &AppState, req: &Request) -> bool {
    peer(req).is_some_and(|p| state.config.trusted_proxies.contains(&p.0.ip()))
}

/// The original method a trusted proxy states in `X-Forwarded-Method` or
/// `X-Original-Method`. Every value of both must name the same method (400 otherwise: a
/// proxy that appends to a client's header instead of replacing it must not leave the
/// choice to tessera).
fn forwarded_method(headers: &HeaderMap) -> AppResult<Option<Method>> {
    let mut method: Option<Method> = None;
    let values = headers
        .get_all("x-forwarded-method")
        .iter()
        .chain(headers.get_all("x-original-method").iter());
    for v in values {
        let m = Method::from_bytes(v.as_bytes())
            .map_err(|_| AppError::invalid_request("bad forwarded method"))?;
        match &method {
            Some(prev) if *prev != m => {
                return Err(AppError::invalid_request("conflicting forwarded methods"))
            }
            _ => method = Some(m),
        }
    }
    Ok(method)
}

/// The original request path for forward-auth, from `X-Forwarded-Uri` / `X-Original-URI`
/// when the peer is a trusted proxy (needed for DPoP's `htu`); otherwise this request's.
fn forwarded_path(state: &AppState, req: &Request) -> String {
    let trusted = peer_is_trusted(state, req);
    let forwarded = req
        .headers()
        .get("x-forwarded-uri")
        .or_else(|| req.headers().get("x-original-uri"))
        .and_then(|v| v.to_str().ok())
        .map(|u| u.split(['?', '#']).next().unwrap_or("/").to_owned());
    match (trusted, forwarded) {
        (true, Some(p)) if p.starts_with('/') => p,
        _ => req.uri().path().to_owned(),
    }
}
