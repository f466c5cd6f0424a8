//! Signing keys across the cluster: kept in the store sealed under the master key, loaded
//! into an in-memory [`KeyRing`], rotated on a schedule with overlap.
//!
//! Every node runs [`ensure_keys`] on a timer. It is idempotent and derives everything from
//! timestamps, so nodes converge: a next key is inserted `prepublish` before it activates
//! (so JWKS consumers see it before any token is signed with it); when a newer key has
//! activated, older ones get `retires_at` (stop signing) and `expires_at` = retirement +
//! access-token lifetime + leeway (stop verifying, leave JWKS).

use tessera_core::{Algorithm, KeyError, KeyRing, MasterKey, SigningKey, UnixTime};
use tessera_store::{Store, StoreError, StoredKey};

/// Why keys could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored key could not be opened: wrong master key or a corrupt row.
    #[error("signing key {kid} cannot be opened with this master key (wrong TESSERA_MASTER_KEY?)")]
    Unseal {
        /// Key id.
        kid: String,
    },
    /// A stored key opened, but is not a key tessera may use (e.g. a short HMAC secret).
    #[error("signing key {kid} is refused: {why}")]
    Refused {
        /// Key id.
        kid: String,
        /// Why.
        why: String,
    },
    /// Key generation failed.
    #[error("key generation failed")]
    Generate,
}

/// Lifetimes the key schedule needs.
#[derive(Debug, Clone, Copy)]
pub struct KeySchedule {
    /// Algorithm of new keys.
    pub alg: Algorithm,
    /// Rotation period (seconds).
    pub rotate_every: u64,
    /// Pre-publication time of the next key (seconds).
    pub prepublish: u64,
    /// Longest an access token lives, including leeway (seconds).
    pub token_life: u64,
}

fn seal(master: &MasterKey, key: &SigningKey) -> StoredKey {
    StoredKey {
        kid: key.kid().to_owned(),
        alg: key.alg().name().to_owned(),
        created_at: key.created_at(),
        activates_at: key.activates_at(),
        retires_at: key.retires_at(),
        expires_at: key.expires_at(),
        sealed: master.seal(&format!("signing-key:{}", key.kid()), &key.export_secret()),
    }
}

fn unseal(master: &MasterKey, k: &StoredKey) -> Result<SigningKey, KeysError> {
    let unseal_err = || KeysError::Unseal { kid: k.kid.clone() };
    let secret = zeroize::Zeroizing::new(
        master
            .open(&format!("signing-key:{}", k.kid), &k.sealed)
            .map_err(|_| unseal_err())?,
    );
    let alg = Algorithm::parse(&k.alg).ok_or_else(unseal_err)?;
    SigningKey::from_parts(
        k.kid.clone(),
        alg,
        k.created_at,
        k.activates_at,
        k.retires_at,
        k.expires_at,
        &secret,
    )
    .map_err(|e| match e {
        KeyError::TooShort(_) => KeysError::Refused {
            kid: k.kid.clone(),
            why: e.to_string(),
        },
        KeyError::Invalid => unseal_err(),
    })
}

/// Loads every stored key into a ring as of `now`.
pub async fn load_ring(
    store: &dyn Store,
    master: &MasterKey,
    now: UnixTime,
) -> Result<KeyRing, KeysError> {
    let stored = store.list_keys().await?;
    let mut keys = Vec::with_capacity(stored.len());
    for k in &stored {
        keys.push(unseal(master, k)?);
    }
    Ok(KeyRing::new(keys, now))
}

/// Makes sure a key of the configured algorithm signs now, that the next key is
/// published ahead of its activation, and that superseded keys are retired and expire.
pub async fn ensure_keys(
    store: &dyn Store,
    master: &MasterKey,
    schedule: KeySchedule,
    now: UnixTime,
) -> Result<(), KeysError> {
    let keys = store.list_keys().await?;
    // Every stored key must open and be usable before anything is changed: a row that
    // cannot (wrong master key, a planted short HMAC secret) would otherwise count as the
    // active key and get the good one retired before `load_ring` refuses it.
    for k in &keys {
        unseal(master, k)?;
    }
    let signing = |k: &&StoredKey| k.activates_at <= now && k.retires_at.is_none_or(|r| r > now);
    let active = keys
        .iter()
        .filter(signing)
        .filter(|k| k.alg == schedule.alg.name())
        .max_by_key(|k| (k.activates_at, k.created_at));
    match active {
        None => {
            let key = SigningKey::generate(schedule.alg, now).map_err(|_| KeysError::Generate)?;
            store.insert_key(&seal(master, &key)).await?;
            tracing::info!(
                kid = key.kid(),
                alg = key.alg().name(),
                "created signing key"
            );
        }
        Some(active) => {
            let has_next = keys.iter().any(|k| k.activates_at > now);
            let due = active.activates_at.plus(schedule.rotate_every);
            if !has_next && due.minus(schedule.prepublish) <= now {
                let activates = due.max(now.plus(schedule.prepublish));
                let fresh =
                    SigningKey::generate(schedule.alg, now).map_err(|_| KeysError::Generate)?;
                let next = SigningKey::from_parts(
                    fresh.kid().to_owned(),
                    schedule.alg,
                    now,
                    activates,
                    None,
                    None,
                    &fresh.export_secret(),
                )
                .map_err(|_| KeysError::Generate)?;
                store.insert_key(&seal(master, &next)).await?;
                tracing::info!(
                    kid = next.kid(),
                    activates_at = activates.0,
                    "published next signing key"
                );
            }
        }
    }
    retire_superseded(store, schedule, now).await?;
    store.delete_expired_keys(now).await?;
    Ok(())
}

/// Gives every activated key that a newer activated key supersedes its retirement and
/// expiry times.
async fn retire_superseded(
    store: &dyn Store,
    schedule: KeySchedule,
    now: UnixTime,
) -> Result<(), KeysError> {
    let keys = store.list_keys().await?;
    let activated: Vec<&StoredKey> = keys.iter().filter(|k| k.activates_at <= now).collect();
    let newest = activated
        .iter()
        .filter(|k| k.alg == schedule.alg.name() && k.retires_at.is_none_or(|r| r > now))
        .max_by_key(|k| (k.activates_at, k.created_at))
        .map(|k| k.kid.clone());
    for k in &activated {
        if Some(&k.kid) == newest.as_ref() {
            continue;
        }
        let successor_start = activated
            .iter()
            .filter(|o| {
                o.kid != k.kid && (o.activates_at, o.created_at) > (k.activates_at, k.created_at)
            })
            .map(|o| o.activates_at)
            .min()
            .unwrap_or(now);
        let retires = k
            .retires_at
            .unwrap_or(successor_start)
            .min(successor_start.max(k.activates_at));
        let expires = retires.plus(schedule.token_life);
        if k.retires_at != Some(retires) || k.expires_at.is_none() {
            store
                .update_key_times(&k.kid, Some(retires), Some(k.expires_at.unwrap_or(expires)))
                .await?;
            tracing::info!(kid = %k.kid, retires_at = retires.0, expires_at = expires.0, "retired signing key");
        }
    }
    Ok(())
}

/// Forces a rotation: a new key signs from now; the old one is retired at once and
/// verifies until its tokens have expired. Returns the new key id.
pub async fn rotate_now(
    store: &dyn Store,
    master: &MasterKey,
    schedule: KeySchedule,
    now: UnixTime,
) -> Result<String, KeysError> {
    for k in store.list_keys().await? {
        if k.activates_at > now {
            // A pending next key is replaced by the forced one.
            store.update_key_times(&k.kid, Some(now), Some(now)).await?;
        } else if k.retires_at.is_none_or(|r| r > now) {
            store
                .update_key_times(&k.kid, Some(now), Some(now.plus(schedule.token_life)))
                .await?;
        }
    }
    let key = SigningKey::generate(schedule.alg, now).map_err(|_| KeysError::Generate)?;
    store.insert_key(&seal(master, &key)).await?;
    store.delete_expired_keys(now.plus(1)).await?;
    tracing::info!(kid = key.kid(), "rotated signing key");
    Ok(key.kid().to_owned())
}

/// The key schedule from the configuration.
pub fn schedule(config: &crate::config::Config) -> KeySchedule {
    KeySchedule {
        alg: config.tokens.algorithm,
        rotate_every: config.tokens.rotate_every.as_secs(),
        prepublish: config.tokens.prepublish.as_secs(),
        token_life: config.tokens.access_ttl.as_secs() + config.tokens.leeway.as_secs() + 1,
    }
}
