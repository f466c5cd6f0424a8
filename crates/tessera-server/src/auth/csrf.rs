//! The CSRF rules for cookie-authenticated requests whose method is not GET, HEAD or
//! OPTIONS (docs/http-api.md):
//! 1. `Sec-Fetch-Site` present and not `same-origin`/`none` → 403 `csrf_failed`;
//! 2. `Origin` present and not the public origin (or an allowed CORS origin) → 403;
//! 3. `X-CSRF-Token` missing or not a valid token bound by MAC to this session → 403.

use axum::http::{header, HeaderMap, Method};

use tessera_core::SessionId;

use crate::http::error::AppError;
use crate::metrics::inc;
use crate::state::AppState;

/// Header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The origin a request came to, as a DPoP proof's `htu` or a signature's `@target-uri`
/// must name it (RFC 9449 §4.3, RFC 9421 §2.2.2: the request's target URI): the
/// `origin_aliases` entry whose authority is the request's `Host` (HTTP/2's `:authority`
/// is copied there on arrival), else `public_origin`. Only tessera's own configured names
/// count: a proof made for another server is never accepted by naming that server in
/// `Host`.
pub fn request_origin<'a>(state: &'a AppState, headers: &HeaderMap) -> &'a str {
    let aliases = &state.config.origin_aliases;
    if aliases.is_empty() {
        return &state.public_origin;
    }
    let Some(host) = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
    else {
        return &state.public_origin;
    };
    aliases
        .iter()
        .find(|a| same_authority(a, host))
        .map_or(&state.public_origin, String::as_str)
}

/// True if `origin` (`scheme://host[:port]`) has the authority `host` (a `Host` value),
/// ASCII case ignored, a default port (80, 443) written or not.
fn same_authority(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let default = if scheme == "https" { ":443" } else { ":80" };
    let strip = |a: &'_ str| {
        a.strip_suffix(default)
            .map(str::to_owned)
            .unwrap_or(a.to_owned())
    };
    strip(authority).eq_ignore_ascii_case(&strip(host))
}

/// True for methods that may change state.
pub fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Rules 1 and 2: the request must come from our own origin when a browser says where it
/// comes from.
pub fn check_origin(state: &AppState, headers: &HeaderMap) -> Result<(), AppError> {
    let refuse = |why: &'static str| {
        inc(&state.metrics.csrf_refused);
        Err(AppError::csrf_failed(why))
    };
    const SEC_FETCH_SITE: axum::http::HeaderName =
        axum::http::HeaderName::from_static("sec-fetch-site");
    let mut sites = headers.get_all(SEC_FETCH_SITE).iter();
    if let Some(site) = sites.next() {
        if sites.next().is_some() || !matches!(site.as_bytes(), b"same-origin" | b"none") {
            return refuse("cross-site request refused");
        }
    }
    let mut origins = headers.get_all(header::ORIGIN).iter();
    if let Some(origin) = origins.next() {
        let ok = origins.next().is_none()
            && origin.to_str().is_ok_and(|o| {
                o == state.public_origin || state.config.cors.allowed_origins.iter().any(|a| a == o)
            });
        if !ok {
            return refuse("request from a foreign origin refused");
        }
    }
    Ok(())
}

/// Rule 3: a valid CSRF token for `sid` in `X-CSRF-Token`.
pub fn check_csrf_token(
    state: &AppState,
    headers: &HeaderMap,
    sid: &SessionId,
) -> Result<(), AppError> {
    let mut values = headers.get_all(CSRF_HEADER).iter();
    let token = values.next().and_then(|v| v.to_str().ok());
    let ok = values.next().is_none() && token.is_some_and(|t| state.csrf.verify(sid, t));
    if ok {
        Ok(())
    } else {
        inc(&state.metrics.csrf_refused);
        Err(AppError::csrf_failed(if token.is_none() {
            "missing X-CSRF-Token header"
        } else {
            "invalid X-CSRF-Token"
        }))
    }
}
