//! Checking a username and password: throttled, constant work for unknown users, hashes
//! upgraded on the way; device tokens that exempt a user's known devices from the
//! per-username limit.

use std::sync::Arc;

use tessera_core::password::{self, Verdict};
use tessera_core::UnixTime;
use tessera_store::User;

use crate::http::error::AppError;
use crate::metrics::inc;
use crate::state::AppState;

type AppResult<T> = Result<T, AppError>;

/// The outcome of checking a username and password.
pub(crate) enum PasswordCheck {
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
pub(crate) async fn check_password(
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
    let key = crate::sessions::ratelimit::RateLimiter::user_key(username);
    if !trusted {
        let failures = state
            .store
            .login_failures_since(&key, UnixTime(now.0.saturating_sub(59)))
            .await?;
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
pub(crate) fn issue_device_token(
    state: &AppState,
    username: &str,
    presented: Option<&str>,
) -> String {
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
    let user = state.store.user_by_name(username).await?;
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
