//! Tessera's own endpoints: login, session, refresh, logout, forward-auth, JWKS, health.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use tessera_core::password::{self, Verdict};
use tessera_core::{b64, random_bytes, refresh, AccessClaims, SessionId, UnixTime, UserId};
use tessera_store::{RotateOutcome, Rotation, Session, User};

use crate::audit::{self, Event, PeerAddr};
use crate::auth::{self, Identity};
use crate::cookies::{self, Issued};
use crate::error::AppError;
use crate::metrics::inc;
use crate::state::AppState;

/// Largest body accepted by tessera's own JSON/form endpoints.
pub const AUTH_BODY_LIMIT: usize = 16 * 1024;

type AppResult<T> = Result<T, AppError>;

/// Reads a bounded body; 413 beyond the limit.
pub async fn read_body(body: Body, limit: usize) -> AppResult<Bytes> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        if crate::serve::is_body_timeout(&e) {
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

/// The outcome of checking a username and password.
pub enum PasswordCheck {
    /// Good credentials.
    Ok(User),
    /// Unknown user, wrong password or disabled account (indistinguishable to the client).
    Bad,
}

/// Checks credentials on the hashing pool. Unknown users are checked against the dummy
/// hash so both paths cost one Argon2id run; a hash with old parameters is upgraded.
///
/// Throttled first (`ratelimit`): per client IP, and per username unless `device_token`
/// proves a known device of this user. The per-username failures are also counted in the
/// store, so the budget is one for the whole cluster: at most
/// `rate_limit.per_username_per_minute` failures in any 60 s across all nodes (plus the
/// attempts already past this check when the budget runs out, at most the hashing pool's
/// places per node).
pub async fn check_password(
    state: &Arc<AppState>,
    username: &str,
    password: &str,
    ip: Option<std::net::IpAddr>,
    device_token: Option<&str>,
) -> AppResult<PasswordCheck> {
    if username.is_empty() || username.len() > 128 || password.is_empty() {
        return Err(AppError::invalid_request(
            "username and password are required",
        ));
    }
    if password.len() > state.config.passwords.max_length {
        return Err(AppError::invalid_request("password too long"));
    }
    let now = state.clock.now();
    let device = known_device(state, username, device_token, now);
    let trusted = match state.limiter.before_attempt(username, ip, device, now) {
        Ok(trusted) => trusted,
        Err(wait) => {
            inc(&state.metrics.login_rate_limited);
            return Err(AppError::rate_limited(wait));
        }
    };
    let key = crate::ratelimit::RateLimiter::user_key(username);
    if !trusted {
        let failures = state
            .store
            .login_failures_since(&key, UnixTime(now.0.saturating_sub(59)))
            .await
            .map_err(|e| {
                inc(&state.metrics.store_errors);
                AppError::unavailable(e)
            })?;
        if failures >= state.limiter.per_user_per_minute() {
            inc(&state.metrics.login_rate_limited);
            return Err(AppError::rate_limited(state.limiter.cluster_wait()));
        }
    }
    let result = check_password_unthrottled(state, username, password).await;
    match &result {
        Ok(PasswordCheck::Ok(_)) => state.limiter.succeeded(username, now),
        Ok(PasswordCheck::Bad) => {
            state.limiter.failed(username, device, now);
            if let Err(e) = state.store.record_login_failure(&key, now).await {
                inc(&state.metrics.store_errors);
                tracing::warn!(error = %e, "login failure not counted in the store");
            }
        }
        Err(_) => {}
    }
    result
}

/// The known device `token` proves for `username`, if it is one of ours and still valid.
fn known_device(
    state: &AppState,
    username: &str,
    token: Option<&str>,
    now: UnixTime,
) -> Option<tessera_core::device::DeviceId> {
    let ttl = state.config.rate_limit.device_ttl.as_secs();
    state.device_key.verify(username, token?, now, ttl)
}

/// A device token for `username` after a successful login: the same device id as the
/// token presented (if it was valid for this user), else a new one.
pub fn issue_device_token(state: &AppState, username: &str, presented: Option<&str>) -> String {
    let now = state.clock.now();
    let device = known_device(state, username, presented, now);
    state.device_key.issue(username, device, now)
}

async fn check_password_unthrottled(
    state: &Arc<AppState>,
    username: &str,
    password: &str,
) -> AppResult<PasswordCheck> {
    // The place on the hashing pool comes first: a flood beyond its capacity is turned
    // away before it costs a store lookup.
    let place = state.hash_pool.admit().map_err(|_| {
        inc(&state.metrics.login_overloaded);
        AppError::overloaded()
    })?;
    let user = state.store.user_by_name(username).await.map_err(|e| {
        inc(&state.metrics.store_errors);
        AppError::unavailable(e)
    })?;
    let stored = user
        .as_ref()
        .map_or_else(|| state.dummy_hash.clone(), |u| u.password_hash.clone());
    let params = state.config.passwords.params();
    let pw = zeroize::Zeroizing::new(password.to_owned());
    let pw2 = pw.clone();
    let verdict = place
        .run(move || password::verify_password(&stored, &pw2, params))
        .await
        .map_err(|_| {
            inc(&state.metrics.login_overloaded);
            AppError::overloaded()
        })?;
    let Some(user) = user else {
        return Ok(PasswordCheck::Bad);
    };
    match verdict {
        Verdict::Mismatch => Ok(PasswordCheck::Bad),
        _ if user.disabled => Ok(PasswordCheck::Bad),
        Verdict::Match => Ok(PasswordCheck::Ok(user)),
        Verdict::MatchNeedsRehash => {
            // Upgrade old parameters or imported bcrypt hashes; a failure only logs.
            let id = user.id;
            if let Ok(Ok(new_hash)) = state
                .hash_pool
                .run(move || password::hash_password(&pw, params))
                .await
            {
                match state.store.set_password_hash(id, &new_hash).await {
                    Ok(_) => tracing::info!(user = %id, "password hash upgraded"),
                    Err(e) => tracing::warn!(error = %e, "password rehash not stored"),
                }
            }
            Ok(PasswordCheck::Ok(user))
        }
    }
}

/// Freshly issued credentials of a session.
pub struct Grant {
    /// The access token.
    pub access_token: String,
    /// Its claims.
    pub claims: AccessClaims,
    /// The refresh token.
    pub refresh_token: String,
}

/// Signs an access token for `user` in `session`.
pub fn sign_access_token(
    state: &AppState,
    user: &User,
    session: &Session,
    now: UnixTime,
) -> AppResult<(String, AccessClaims)> {
    let claims = AccessClaims {
        iss: state.verifier.issuer().into(),
        aud: state.verifier.audience().into(),
        sub: user.id.to_string().into(),
        sid: session.id.to_string().into(),
        iat: now.0,
        nbf: now.0,
        exp: now.0 + state.access_ttl(),
        jti: b64::encode(random_bytes::<16>()).into(),
        roles: user.roles.iter().map(|r| r.as_str().into()).collect(),
        username: user.username.as_str().into(),
        client_id: session.client.as_str().into(),
        cnf: session
            .dpop_jkt
            .as_deref()
            .map(|jkt| tessera_core::Cnf { jkt: jkt.into() }),
    };
    let token = state
        .keys
        .load()
        .sign(&claims)
        .ok_or_else(|| AppError::unavailable("no active signing key"))?;
    Ok((token, claims))
}

/// Starts a session for `user`, issues its first tokens, and counts and audits the login.
pub async fn start_session(
    state: &Arc<AppState>,
    user: &User,
    client: &str,
    dpop_jkt: Option<String>,
    origin: &audit::Origin,
) -> AppResult<(Session, Grant)> {
    let now = state.clock.now();
    let session = Session {
        id: SessionId::random(),
        user_id: user.id,
        created_at: now,
        expires_at: now.plus(state.config.tokens.session_max.as_secs()),
        revoked_at: None,
        dpop_jkt,
        client: client.to_owned(),
    };
    let refresh_token = refresh::generate();
    state
        .store
        .create_session(&session, &refresh::hash(&refresh_token))
        .await
        .map_err(|e| {
            inc(&state.metrics.store_errors);
            AppError::unavailable(e)
        })?;
    let (access_token, claims) = sign_access_token(state, user, &session, now)?;
    inc(&state.metrics.login_success);
    audit::record(
        state,
        origin,
        Event {
            kind: "login_success",
            username: Some(&user.username),
            user_id: Some(user.id.to_string()),
            session_id: Some(session.id.to_string()),
            detail: Some(client.to_owned()),
        },
    );
    Ok((
        session,
        Grant {
            access_token,
            claims,
            refresh_token,
        },
    ))
}

/// What a rotation led to.
pub enum RefreshResult {
    /// New tokens.
    Rotated(Box<(Session, User, Grant)>),
    /// The token was reused after the grace: the session is revoked.
    Reused(Session),
    /// Unknown, expired or revoked.
    Invalid,
}

/// Rotates `token` (already checked well-formed) per the store's rules, applies a
/// detected reuse to the local denylist at once (other nodes get it from the feed), and
/// records the audit event (`channel` says which endpoint).
pub async fn rotate(
    state: &Arc<AppState>,
    token: &str,
    origin: &audit::Origin,
    channel: &str,
) -> AppResult<RefreshResult> {
    let result = rotate_unaudited(state, token).await?;
    match &result {
        RefreshResult::Rotated(rotated) => {
            let (session, user, _) = &**rotated;
            audit::record(
                state,
                origin,
                Event {
                    kind: "refresh",
                    username: Some(&user.username),
                    user_id: Some(user.id.to_string()),
                    session_id: Some(session.id.to_string()),
                    detail: Some(channel.to_owned()),
                },
            );
        }
        RefreshResult::Reused(session) => audit::record(
            state,
            origin,
            Event {
                kind: "refresh_reuse",
                user_id: Some(session.user_id.to_string()),
                session_id: Some(session.id.to_string()),
                detail: Some(format!("{channel}: session revoked")),
                ..Default::default()
            },
        ),
        RefreshResult::Invalid => {}
    }
    Ok(result)
}

async fn rotate_unaudited(state: &AppState, token: &str) -> AppResult<RefreshResult> {
    let now = state.clock.now();
    let successor = state.refresh_key.successor(token);
    let rotation = Rotation {
        hash: refresh::hash(token),
        successor_hash: refresh::hash(&successor),
        now,
        grace: state.config.tokens.refresh_grace.as_secs(),
        idle_ttl: state.config.tokens.refresh_ttl.as_secs(),
        revoke_until: now.plus(state.token_life()),
    };
    let outcome = state
        .store
        .rotate_refresh_token(&rotation)
        .await
        .map_err(|e| {
            inc(&state.metrics.store_errors);
            AppError::unavailable(e)
        })?;
    match outcome {
        RotateOutcome::Rotated { session, .. } => {
            let user = match state.store.user_by_id(session.user_id).await {
                Ok(Some(u)) if !u.disabled => u,
                Ok(_) => return Ok(RefreshResult::Invalid),
                Err(e) => return Err(AppError::unavailable(e)),
            };
            let (access_token, claims) = sign_access_token(state, &user, &session, now)?;
            inc(&state.metrics.refresh);
            Ok(RefreshResult::Rotated(Box::new((
                session,
                user,
                Grant {
                    access_token,
                    claims,
                    refresh_token: successor,
                },
            ))))
        }
        RotateOutcome::Reused { session } => {
            state
                .denylist
                .revoke_session(session.id, rotation.revoke_until);
            inc(&state.metrics.refresh_reuse);
            Ok(RefreshResult::Reused(session))
        }
        RotateOutcome::NotFound | RotateOutcome::Ended => Ok(RefreshResult::Invalid),
    }
}

fn no_store(res: &mut Response) {
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
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

fn peer(req: &Request) -> Option<PeerAddr> {
    req.extensions().get::<PeerAddr>().copied()
}

/// `POST /auth/login`.
pub async fn login(State(state): State<Arc<AppState>>, req: Request) -> AppResult<Response> {
    let (parts, body) = req.into_parts();
    let origin = audit::origin(
        &state,
        parts.extensions.get::<PeerAddr>().copied(),
        &parts.headers,
    );
    // Login CSRF: a foreign page must not log the victim into the attacker's account.
    auth::check_origin(&state, &parts.headers)?;
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
    let (session, grant) = start_session(&state, &user, "browser", None, &origin).await?;
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
pub async fn session(State(state): State<Arc<AppState>>, req: Request) -> AppResult<Response> {
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
pub async fn refresh_browser(
    State(state): State<Arc<AppState>>,
    req: Request,
) -> AppResult<Response> {
    let headers = req.headers();
    let origin = audit::origin(&state, peer(&req), headers);
    auth::check_origin(&state, headers)?;
    let jar = cookies::read(headers)?;
    let token = jar
        .refresh
        .filter(|t| refresh::is_well_formed(t))
        .ok_or_else(|| AppError::unauthenticated().clearing_cookies())?;
    // CSRF: the token must be bound to the session this refresh token belongs to.
    let session = state
        .store
        .session_for_refresh(&refresh::hash(token))
        .await
        .map_err(AppError::unavailable)?
        .ok_or_else(|| AppError::unauthenticated().clearing_cookies())?;
    auth::check_csrf_token(&state, headers, &session.id)?;
    if session.dpop_jkt.is_some() || session.client != "browser" {
        return Err(AppError::unauthenticated());
    }
    match rotate(&state, token, &origin, "browser").await? {
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

/// Revokes one session in the store and, at once, in this node's denylist. With the
/// store down the local revocation still happens and the caller answers 503.
pub async fn revoke_session(state: &AppState, sid: SessionId) -> Result<(), AppError> {
    let now = state.clock.now();
    let until = now.plus(state.token_life());
    state.denylist.revoke_session(sid, until);
    state
        .store
        .revoke_session(sid, now, until)
        .await
        .map_err(|e| {
            inc(&state.metrics.store_errors);
            AppError::unavailable(e).clearing_cookies()
        })?;
    Ok(())
}

/// `POST /auth/logout`: ends this session; always clears the cookies.
pub async fn logout(State(state): State<Arc<AppState>>, req: Request) -> AppResult<Response> {
    let headers = req.headers();
    let origin = audit::origin(&state, peer(&req), headers);
    auth::check_origin(&state, headers)?;
    let jar = cookies::read(headers)?;
    // Which session: the access token's, else the refresh token's.
    let mut sid = auth::verify_cookies(&state, &jar)
        .ok()
        .and_then(|c| c.session_id());
    if sid.is_none() {
        if let Some(token) = jar.refresh.filter(|t| refresh::is_well_formed(t)) {
            sid = match state.store.session_for_refresh(&refresh::hash(token)).await {
                Ok(s) => s.map(|s| s.id),
                Err(e) => return Err(AppError::unavailable(e).clearing_cookies()),
            };
        }
    }
    let Some(sid) = sid else {
        return Ok(cleared(StatusCode::NO_CONTENT));
    };
    auth::check_csrf_token(&state, headers, &sid)?;
    revoke_session(&state, sid).await?;
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

/// Revokes every session of `user` everywhere.
pub async fn revoke_user(state: &AppState, user: UserId) -> Result<usize, AppError> {
    let now = state.clock.now();
    let until = now.plus(state.token_life());
    state.denylist.revoke_user_before(user, now, until);
    let sessions = state
        .store
        .revoke_user(user, now, until)
        .await
        .map_err(|e| {
            inc(&state.metrics.store_errors);
            AppError::unavailable(e).clearing_cookies()
        })?;
    for sid in &sessions {
        state.denylist.revoke_session(*sid, until);
    }
    Ok(sessions.len())
}

/// `POST /auth/logout-all`: ends every session of the caller.
pub async fn logout_all(State(state): State<Arc<AppState>>, req: Request) -> AppResult<Response> {
    let origin = audit::origin(&state, peer(&req), req.headers());
    let identity =
        auth::authenticate(&state, req.method(), req.uri().path(), req.headers()).await?;
    let user = identity
        .claims
        .user_id()
        .ok_or_else(AppError::unauthenticated)?;
    let n = revoke_user(&state, user).await?;
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

/// `GET /auth/verify`: forward-auth for nginx `auth_request` and Traefik `forwardAuth`.
///
/// The original method comes from `X-Forwarded-Method` / `X-Original-Method`, believed
/// from `trusted_proxies` peers only; CSRF rules apply to it. Without one (none sent, or
/// sent by any other peer) the check fails closed: the original request is taken as
/// unsafe, so a cookie needs the CSRF rules' same-origin signals and token to pass.
pub async fn verify(State(state): State<Arc<AppState>>, req: Request) -> AppResult<Response> {
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
    if forwarded.is_none() && identity.via == auth::Via::Cookie && !auth::is_unsafe(&method) {
        // authenticate() skipped the CSRF rules for a safe method; the original one is
        // unknown, so they apply as for an unsafe one.
        auth::check_origin(&state, headers)?;
        let sid = identity
            .claims
            .session_id()
            .ok_or_else(AppError::unauthenticated)?;
        auth::check_csrf_token(&state, headers, &sid)?;
    }
    let mut res = StatusCode::OK.into_response();
    crate::gateway::identity_headers(&identity, res.headers_mut());
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

/// `GET /.well-known/oauth-authorization-server`: RFC 8414 metadata for OAuth client
/// libraries — the token issuer, the token, revocation and key endpoints, and what they
/// accept. Tessera has no authorization endpoint (no redirect flows: its clients are the
/// same-origin SPA and first-party apps), hence no response types.
pub async fn authorization_server_metadata(State(state): State<Arc<AppState>>) -> Response {
    let origin = &state.public_origin;
    let mut res = Json(json!({
        "issuer": state.verifier.issuer(),
        "token_endpoint": format!("{origin}/auth/token"),
        "revocation_endpoint": format!("{origin}/auth/revoke"),
        "jwks_uri": format!("{origin}/.well-known/jwks.json"),
        "grant_types_supported": ["password", "refresh_token"],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "dpop_signing_alg_values_supported": ["ES256", "EdDSA"],
        "service_documentation": format!("{origin}/openapi.json"),
    }))
    .into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    res
}

/// `GET /.well-known/jwks.json`.
pub async fn jwks(State(state): State<Arc<AppState>>) -> Response {
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
pub async fn healthz(State(state): State<Arc<AppState>>) -> Response {
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
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
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
