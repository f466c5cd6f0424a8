//! Keeping a node's memory in step with the store: the revocation feed into the
//! denylist, keys into the key ring, and one-time values (DPoP `jti`s, signature nonces)
//! claimed once across every node.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tessera_core::UnixTime;
use tessera_store::{ReplayKind, RevocationTarget, StoreError};

use crate::cluster::keys;
use crate::state::AppState;

/// How many feed ids before the cursor are read again on each pull.
const FEED_OVERLAP: i64 = 200;
/// Feed entries read per query.
const FEED_PAGE: u32 = 10_000;
/// How often the store's reachability is probed (a `SELECT 1`) for `/healthz`.
const HEALTH_EVERY: Duration = Duration::from_millis(500);
/// How long a probe may take: a store that does not answer within this (a network
/// partition, where only timeouts tell; the pool would wait 3 s for a connection) counts
/// as down. With [`HEALTH_EVERY`], `/healthz` reports an outage within 1.5 s.
const HEALTH_DEADLINE: Duration = Duration::from_secs(1);
/// Longest one revocation pull may take before it counts as failed (a query on a
/// connection that died silently would otherwise wait for TCP to give up).
const PULL_DEADLINE: Duration = Duration::from_secs(30);

/// Hands memory freed while loading back to the OS (glibc keeps it otherwise, spread over
/// its per-thread arenas: the feed's pages are read on SQLite's thread and freed on the
/// runtime's). Called once the start-up load is done, so a node's resident size reflects
/// what it holds rather than how the load's allocations happened to fall (bench/log/). A
/// no-op off glibc.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_free_memory() {
    // SAFETY: malloc_trim takes a plain integer and only walks glibc's own heaps, under
    // their locks; it is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// See the glibc version: other allocators are left alone.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() {}

/// How long a request waits for the store to record a one-time value before it is
/// refused with 503 (fail closed).
pub const CLAIM_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Why a one-time value was refused by [`claim_once`].
#[derive(Debug)]
pub enum ClaimError {
    /// Seen before, on this node or (from the store) on another one.
    Replayed,
    /// This node's replay cache is full of live entries (fail closed).
    Full,
    /// The store could not say whether another node saw it (fail closed).
    Unavailable(StoreError),
}

/// Claims a one-time value (`key`, live until `expires`, inclusive): first in this node's
/// memory cache, which answers a same-node replay at no further cost; then, when
/// `shared_replay` is on for `kind`, in the store with one atomic insert-if-absent, so a
/// value used on any node sharing the database is refused here (RFC 9449 §11.1, RFC 9421
/// §7.2.2). The store sees only values this node has not seen, and only after the proof
/// or signature verified, so forged requests cannot make it write.
///
/// A store that fails or takes longer than [`CLAIM_WAIT`] refuses the value: a replay
/// cannot be ruled out. The value stays in the memory cache either way; the client makes
/// a new proof or signature for its retry, as it must for any request.
pub async fn claim_once(
    state: &AppState,
    kind: ReplayKind,
    key: &str,
    expires: UnixTime,
) -> Result<(), ClaimError> {
    let now = state.clock.now();
    let (cache, shared) = match kind {
        ReplayKind::Dpop => (&state.dpop_replay, state.config.dpop.shared_replay),
        ReplayKind::Signature => (&state.sig_replay, state.config.signatures.shared_replay),
    };
    cache
        .check_and_insert(key, expires, now)
        .map_err(|e| match e {
            tessera_core::replay::ReplayError::Replayed => ClaimError::Replayed,
            _ => ClaimError::Full,
        })?;
    if !shared {
        return Ok(());
    }
    let mut id = [0u8; 32];
    id.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, key.as_bytes()).as_ref());
    let recorded =
        tokio::time::timeout(CLAIM_WAIT, state.store.record_once(kind, &id, expires, now)).await;
    match recorded {
        Ok(Ok(true)) => Ok(()),
        Ok(Ok(false)) => Err(ClaimError::Replayed),
        Ok(Err(e)) => Err(ClaimError::Unavailable(e)),
        Err(_) => Err(ClaimError::Unavailable(StoreError::Unavailable(format!(
            "recording a one-time value took over {CLAIM_WAIT:?}"
        )))),
    }
}

/// Drops expired one-time values: from both memory caches (releasing their memory after
/// a burst) and, when either kind is shared, from the store.
async fn purge_one_time_values(state: &AppState) {
    let now = state.clock.now();
    state.dpop_replay.purge(now);
    state.sig_replay.purge(now);
    if state.config.dpop.shared_replay || state.config.signatures.shared_replay {
        if let Err(e) = state.store.purge_replay_ids(now).await {
            tracing::debug!(error = %e, "purging one-time values failed");
        }
    }
}

/// Applies every new revocation-feed entry to the denylist.
pub async fn pull_revocations(state: &AppState) -> Result<usize, StoreError> {
    let now = state.clock.now();
    let cursor = state.revocation_cursor.load(Ordering::Acquire);
    // Feed ids are assigned at insert but become visible at commit, so on PostgreSQL a
    // lower id can appear after a higher one was read. Re-reading a small overlap catches
    // those; applying an entry twice is harmless.
    let from = if cursor > FEED_OVERLAP {
        cursor - FEED_OVERLAP
    } else {
        0
    };
    // Paged, so that a long feed (a node starting with a million revocations) is never
    // held in memory as rows: each page goes into the denylist and is dropped.
    let mut after = from;
    let mut applied = 0;
    loop {
        let page = state.store.revocations_since(after, now, FEED_PAGE).await?;
        for r in &page {
            match r.target {
                RevocationTarget::Session(sid) => state.denylist.revoke_session(sid, r.until),
                RevocationTarget::User(uid) => {
                    state.denylist.revoke_user_before(uid, r.at, r.until)
                }
            }
            after = after.max(r.id);
        }
        applied += page.len();
        state
            .revocation_cursor
            .fetch_max(after.max(cursor), Ordering::AcqRel);
        if page.len() < FEED_PAGE as usize {
            return Ok(applied);
        }
    }
}

/// Ensures and reloads keys, swapping in a new ring.
pub async fn refresh_keys(state: &AppState) -> Result<(), keys::KeysError> {
    let now = state.clock.now();
    keys::ensure_keys(
        state.store.as_ref(),
        &state.master,
        keys::schedule(&state.config),
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

/// Probes the store every [`HEALTH_EVERY`]; the node is degraded while a probe fails or
/// times out, or while the last revocation pull failed (`pull_failing`).
async fn watch_health(state: Arc<AppState>, pull_failing: Arc<AtomicBool>) {
    let mut tick = tokio::time::interval(HEALTH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let reachable = matches!(
            tokio::time::timeout(HEALTH_DEADLINE, state.store.ping()).await,
            Ok(Ok(()))
        );
        if !reachable {
            crate::metrics::inc(&state.metrics.store_errors);
        }
        set_degraded(&state, !reachable || pull_failing.load(Ordering::Acquire));
    }
}

/// Follows the store's push notifications (PostgreSQL `LISTEN/NOTIFY`), so a revocation
/// or key made on any node is applied here within milliseconds; polling remains the
/// safety net. Returns at once for stores without notifications.
async fn follow_changes(state: Arc<AppState>) {
    use tessera_store::Change;
    loop {
        let mut feed = match state.store.subscribe().await {
            Ok(Some(feed)) => feed,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(error = %e, "cannot listen for changes; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        tracing::info!("listening for cluster changes");
        loop {
            let change = match feed.next().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, "change feed interrupted; reconnecting");
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    continue;
                }
            };
            if matches!(change, Change::Revocations | Change::Resync) {
                if let Err(e) = pull_revocations(&state).await {
                    tracing::debug!(error = %e, "revocation pull failed");
                }
            }
            if matches!(change, Change::Keys | Change::Resync) {
                if let Err(e) = refresh_keys(&state).await {
                    tracing::debug!(error = %e, "key refresh failed");
                }
            }
        }
    }
}

/// Starts the background loops: revocation feed (every `sync.revocation_poll`), keys
/// (every `sync.key_poll`), and denylist purging.
pub fn spawn(state: Arc<AppState>) {
    tokio::spawn(follow_changes(Arc::clone(&state)));
    let pull_failing = Arc::new(AtomicBool::new(false));
    tokio::spawn(watch_health(Arc::clone(&state), Arc::clone(&pull_failing)));
    let s = Arc::clone(&state);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(s.config.sync.revocation_poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut n: u64 = 0;
        loop {
            tick.tick().await;
            let pulled = tokio::time::timeout(PULL_DEADLINE, pull_revocations(&s)).await;
            match pulled {
                Ok(Ok(_)) => pull_failing.store(false, Ordering::Release),
                Ok(Err(e)) => {
                    crate::metrics::inc(&s.metrics.store_errors);
                    tracing::debug!(error = %e, "revocation sync failed");
                    pull_failing.store(true, Ordering::Release);
                    set_degraded(&s, true);
                }
                Err(_) => {
                    crate::metrics::inc(&s.metrics.store_errors);
                    tracing::debug!("revocation sync timed out");
                    pull_failing.store(true, Ordering::Release);
                    set_degraded(&s, true);
                }
            }
            n += 1;
            if n.is_multiple_of(60) {
                s.denylist.purge(s.clock.now());
                purge_one_time_values(&s).await;
            }
        }
    });
    every(state.config.sync.key_poll, move || {
        let state = Arc::clone(&state);
        async move {
            if let Err(e) = refresh_keys(&state).await {
                crate::metrics::inc(&state.metrics.store_errors);
                tracing::warn!(error = %e, "key refresh failed; keeping the current keys");
            }
        }
    });
}

/// Runs `task` now and then every `period` on its own tokio task, a late run delaying the
/// next rather than bunching up.
pub(crate) fn every<F, Fut>(period: Duration, mut task: F)
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            task().await;
        }
    });
}
