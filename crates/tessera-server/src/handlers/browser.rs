//! The browser's session endpoints: login, session, refresh, logout, logout everywhere.
//! Answers set tessera's cookies (docs/http-api.md).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use tessera_core::refresh;
use tessera_store::{Session, User};

use super::{no_store, peer};
use crate::auth::{self, Identity};
use crate::http::body::json_body;
use crate::http::cookies::{self, Issued};
use crate::http::error::AppError;
use crate::http::peer::PeerAddr;
use crate::metrics::inc;
use crate::sessions::audit::{self, Event};
use crate::sessions::password::{check_password, issue_device_token, PasswordCheck};
use crate::sessions::{self, Grant, RefreshResult};
use crate::state::AppState;

type AppResult<T> = Result<T, AppError>;

#[derive(Deserialize)]
struct LoginRequest {
    username: String,
    password: String,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .finish()
    }
}

fn user_json(user: &User) -> serde_json::Value {
    json!({"id": user.id.to_string(), "username": user.username, "roles": user.roles})
}

/// The browser answer to a login or refresh: JSON body plus cookies.
fn browser_grant(state: &AppState, user: &User, session: &Session, grant: &Grant) -> Response {
    let csrf_token = state.csrf.issue(&session.id);
    let body = json!({
        "user": user_json(user),
        "session": {"id": session.id.to_string(), "expires_at": session.expires_at.0},
        "csrf_token": csrf_token,
        "access_token_expires_at": grant.claims.exp,
    });
    let mut res = Json(body).into_response();
    let now = state.clock.now();
    cookies::append_issued(
        res.headers_mut(),
        state.config.cookies.mode,
        &Issued {
            access_token: &grant.access_token,
            access_ttl: state.access_ttl(),
            refresh_token: &grant.refresh_token,
            refresh_max_age: session
                .expires_at
                .0
                .saturating_sub(now.0)
                .min(state.config.tokens.refresh_ttl.as_secs()),
            csrf_token: &csrf_token,
        },
    );
    no_store(&mut res);
    res
}

/// `POST /auth/login`.
pub(crate) async fn login(State(state): State<Arc<AppState>>, req: Request) -> AppResult<Response> {
    let (parts, body) = req.into_parts();
    let origin = audit::origin(
        &state,
        parts.extensions.get::<PeerAddr>().copied(),
        &parts.headers,
    );
    // Login CSRF: a foreign page must not log the victim into the attacker's account.
    auth::csrf::check_origin(&state, &parts.headers)?;
    let body: LoginRequest = json_body(&parts.headers, body).await?;
    let presented_device = cookies::read(&parts.headers)
        .ok()
        .and_then(|c| c.device.map(str::to_owned));
    let user = match check_password(
        &state,
        &body.username,
        &body.password,
        origin.ip,
        presented_device.as_deref(),
    )
    .await?
    {
        PasswordCheck::Ok(user) => user,
        PasswordCheck::Bad => {
            inc(&state.metrics.login_failure);
            audit::record(
                &state,
                &origin,
                Event {
                    kind: "login_failure",
                    username: Some(&body.username),
                    ..Default::default()
                },
            );
            return Err(AppError::invalid_credentials());
        }
    };
    let (session, grant) = sessions::start_session(&state, &user, "browser", None, &origin).await?;
    let mut res = browser_grant(&state, &user, &session, &grant);
    let device = issue_device_token(&state, &body.username, presented_device.as_deref());
    cookies::append_device(
        res.headers_mut(),
        &device,
        state.config.rate_limit.device_ttl.as_secs(),
    );
    Ok(res)
}

/// `GET /auth/session`.
pub(crate) async fn session(
    State(state): State<Arc<AppState>>,
    req: Request,
) -> AppResult<Response> {
    let Identity { claims, .. } =
        auth::authenticate(&state, req.method(), req.uri().path(), req.headers()).await?;
    let sid = claims.session_id().ok_or_else(AppError::unauthenticated)?;
    let expires_at = match state.store.session(sid).await {
        Ok(Some(s)) => Some(s.expires_at.0),
        Ok(None) => return Err(AppError::unauthenticated()),
        // The token is valid on its own; the store only adds the session's end.
        Err(_) => None,
    };
    let mut res = Json(json!({
        "user": {"id": claims.sub, "username": claims.username, "roles": claims.roles},
        "session": {"id": claims.sid, "expires_at": expires_at},
        "claims": &*claims,
    }))
    .into_response();
    no_store(&mut res);
    Ok(res)
}

/// `POST /auth/refresh` (browser): rotates the refresh cookie.
pub(crate) async fn refresh_browser(
    State(state): State<Arc<AppState>>,
    req: Request,
) -> AppResult<Response> {
    let headers = req.headers();
    let origin = audit::origin(&state, peer(&req), headers);
    auth::csrf::check_origin(&state, headers)?;
    let jar = cookies::read(headers)?;
    let token = jar
        .refresh
        .filter(|t| refresh::is_well_formed(t))
        .ok_or_else(|| AppError::unauthenticated().clearing_cookies())?;
    // CSRF: the token must be bound to the session this refresh token belongs to.
    let session = state
        .store
        .session_for_refresh(&refresh::hash(token))
        .await?
        .ok_or_else(|| AppError::unauthenticated().clearing_cookies())?;
    auth::csrf::check_csrf_token(&state, headers, &session.id)?;
    if session.dpop_jkt.is_some() || session.client != "browser" {
        return Err(AppError::unauthenticated());
    }
    match sessions::rotate(&state, token, &origin, "browser").await? {
        RefreshResult::Rotated(rotated) => {
            let (session, user, grant) = *rotated;
            Ok(browser_grant(&state, &user, &session, &grant))
        }
        RefreshResult::Reused(_) => Err(AppError::refresh_token_reused()),
        RefreshResult::Invalid => Err(AppError::unauthenticated().clearing_cookies()),
    }
}

fn cleared(status: StatusCode) -> Response {
    let mut res = status.into_response();
    cookies::append_clear_all(res.headers_mut());
    no_store(&mut res);
    res
}

/// `POST /auth/logout`: ends this session; always clears the cookies.
pub(crate) async fn logout(
    State(state): State<Arc<AppState>>,
    req: Request,
) -> AppResult<Response> {
    let headers = req.headers();
    let origin = audit::origin(&state, peer(&req), headers);
    auth::csrf::check_origin(&state, headers)?;
    let jar = cookies::read(headers)?;
    // Which session: the access token's, else the refresh token's.
    let mut sid = auth::verify_cookies(&state, &jar)
        .ok()
        .and_then(|c| c.session_id());
    if sid.is_none() {
        if let Some(token) = jar.refresh.filter(|t| refresh::is_well_formed(t)) {
            sid = match state.store.session_for_refresh(&refresh::hash(token)).await {
                Ok(s) => s.map(|s| s.id),
                Err(e) => return Err(AppError::from(e).clearing_cookies()),
            };
        }
    }
    let Some(sid) = sid else {
        return Ok(cleared(StatusCode::NO_CONTENT));
    };
    auth::csrf::check_csrf_token(&state, headers, &sid)?;
    sessions::revoke_session(&state, sid).await?;
    audit::record(
        &state,
        &origin,
        Event {
            kind: "logout",
            session_id: Some(sid.to_string()),
            ..Default::default()
        },
    );
    Ok(cleared(StatusCode::NO_CONTENT))
}

/// `POST /auth/logout-all`: ends every session of the caller.
pub(crate) async fn logout_all(
    State(state): State<Arc<AppState>>,
    req: Request,
) -> AppResult<Response> {
    let origin = audit::origin(&state, peer(&req), req.headers());
    let identity =
        auth::authenticate(&state, req.method(), req.uri().path(), req.headers()).await?;
    let user = identity
        .claims
        .user_id()
        .ok_or_else(AppError::unauthenticated)?;
    let n = sessions::revoke_user(&state, user).await?;
    audit::record(
        &state,
        &origin,
        Event {
            kind: "logout_all",
            username: Some(&identity.claims.username),
            user_id: Some(identity.claims.sub.to_string()),
            session_id: Some(identity.claims.sid.to_string()),
            detail: Some(format!("{n} sessions")),
        },
    );
    Ok(cleared(StatusCode::NO_CONTENT))
}
