//! Keeping a node's memory in step with the store: the revocation feed into the
//! denylist, and keys into the key ring.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tessera_store::{RevocationTarget, StoreError};

use crate::keys;
use crate::state::{key_schedule, AppState};

/// Applies every new revocation-feed entry to the denylist.
pub async fn pull_revocations(state: &AppState) -> Result<usize, StoreError> {
    let now = state.clock.now();
    let cursor = state.revocation_cursor.load(Ordering::Acquire);
    let entries = state.store.revocations_since(cursor, now).await?;
    let mut last = cursor;
    for r in &entries {
        match r.target {
            RevocationTarget::Session(sid) => state.denylist.revoke_session(sid, r.until),
            RevocationTarget::User(uid) => state.denylist.revoke_user_before(uid, r.at, r.until),
        }
        last = last.max(r.id);
    }
    state.revocation_cursor.fetch_max(last, Ordering::AcqRel);
    Ok(entries.len())
}

/// Ensures and reloads keys, swapping in a new ring.
pub async fn refresh_keys(state: &AppState) -> Result<(), keys::KeysError> {
    let now = state.clock.now();
    keys::ensure_keys(
        state.store.as_ref(),
        &state.master,
        key_schedule(&state.config),
        now,
    )
    .await?;
    let ring = keys::load_ring(state.store.as_ref(), &state.master, now).await?;
    let fingerprint = |r: &tessera_core::KeyRing| -> Vec<(String, Option<u64>, Option<String>)> {
        r.keys()
            .iter()
            .map(|k| {
                (
                    k.kid().to_owned(),
                    k.expires_at().map(|t| t.0),
                    r.active().map(|a| a.kid().to_owned()),
                )
            })
            .collect()
    };
    if fingerprint(&state.keys.load()) != fingerprint(&ring) {
        state.keys.store(Arc::new(ring));
        // A dropped key must stop verifying at once, cached or not.
        state.verify_cache.clear();
        tracing::info!("key ring reloaded");
    }
    Ok(())
}

fn set_degraded(state: &AppState, failing: bool) {
    let was = state.degraded.swap(failing, Ordering::AcqRel);
    if failing && !was {
        tracing::warn!("store unreachable: serving valid tokens from memory, logins paused");
    } else if !failing && was {
        tracing::info!("store reachable again");
    }
}

/// Starts the background loops: revocation feed (every `sync.revocation_poll`), keys
/// (every `sync.key_poll`), and denylist purging.
pub fn spawn(state: Arc<AppState>) {
    let s = Arc::clone(&state);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(s.config.sync.revocation_poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut n: u64 = 0;
        loop {
            tick.tick().await;
            match pull_revocations(&s).await {
                Ok(_) => set_degraded(&s, false),
                Err(e) => {
                    crate::metrics::inc(&s.metrics.store_errors);
                    tracing::debug!(error = %e, "revocation sync failed");
                    set_degraded(&s, true);
                }
            }
            n += 1;
            if n.is_multiple_of(60) {
                s.denylist.purge(s.clock.now());
            }
        }
    });
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(state.config.sync.key_poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = crate::clients::reload(&state).await {
                tracing::debug!(error = %e, "client reload failed");
            }
            if let Err(e) = refresh_keys(&state).await {
                crate::metrics::inc(&state.metrics.store_errors);
                tracing::warn!(error = %e, "key refresh failed; keeping the current keys");
            }
        }
    });
}
