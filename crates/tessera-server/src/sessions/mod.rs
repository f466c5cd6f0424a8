//! Sessions: login, refresh-token rotation, logout and revocation, and what they need —
//! the password-hashing pool, brute-force throttling and the audit log.

pub(crate) mod audit;
pub(crate) mod hashing;
pub(crate) mod password;
pub(crate) mod ratelimit;

use std::sync::Arc;

use tessera_core::{b64, random_bytes, refresh, AccessClaims, SessionId, UnixTime, UserId};
use tessera_store::{RotateOutcome, Rotation, Session, User};

use self::audit::Event;
use crate::http::error::AppError;
use crate::metrics::inc;
use crate::state::AppState;

type AppResult<T> = Result<T, AppError>;

/// Freshly issued credentials of a session.
pub(crate) struct Grant {
    /// The access token.
    pub access_token: String,
    /// Its claims.
    pub claims: AccessClaims,
    /// The refresh token.
    pub refresh_token: String,
}

/// Signs an access token for `user` in `session`.
pub(crate) fn sign_access_token(
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
        // Passwords are the only way in so far, and a session starts at its login.
        amr: vec!["pwd".into()],
        auth_time: session.created_at.0,
        cnf: session
            .dpop_jkt
            .as_deref()
            .map(|jkt| tessera_core::Cnf { jkt: jkt.into() }),
    };
    let token = state
        .keys
        .load()
        .sign(&claims)
        .ok_or_else(AppError::no_signing_key)?;
    Ok((token, claims))
}

/// Starts a session for `user`, issues its first tokens, and counts and audits the login.
pub(crate) async fn start_session(
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
        .await?;
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
pub(crate) enum RefreshResult {
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
pub(crate) async fn rotate(
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
    let outcome = state.store.rotate_refresh_token(&rotation).await?;
    match outcome {
        RotateOutcome::Rotated { session, .. } => {
            let user = match state.store.user_by_id(session.user_id).await {
                Ok(Some(u)) if !u.disabled => u,
                Ok(_) => return Ok(RefreshResult::Invalid),
                Err(e) => return Err(e.into()),
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

/// Revokes one session in the store and, at once, in this node's denylist. With the
/// store down the local revocation still happens and the caller answers 503.
pub(crate) async fn revoke_session(state: &AppState, sid: SessionId) -> Result<(), AppError> {
    let now = state.clock.now();
    let until = now.plus(state.token_life());
    state.denylist.revoke_session(sid, until);
    state
        .store
        .revoke_session(sid, now, until)
        .await
        .map_err(|e| AppError::from(e).clearing_cookies())?;
    Ok(())
}

/// Revokes every session of `user` everywhere.
pub(crate) async fn revoke_user(state: &AppState, user: UserId) -> Result<usize, AppError> {
    let now = state.clock.now();
    let until = now.plus(state.token_life());
    state.denylist.revoke_user_before(user, now, until);
    let sessions = state
        .store
        .revoke_user(user, now, until)
        .await
        .map_err(|e| AppError::from(e).clearing_cookies())?;
    for sid in &sessions {
        state.denylist.revoke_session(*sid, until);
    }
    Ok(sessions.len())
}
