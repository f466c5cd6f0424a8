//! Building the shared state at start: keys ensured and loaded, the denylist and the
//! service clients read from the store, the hashing pool started.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tessera_core::csrf::CsrfKey;
use tessera_core::refresh::RefreshKey;
use tessera_core::{Clock, Denylist, MasterKey, Verifier};
use tessera_store::Store;

use crate::cluster::keys::{self, KeysError};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::sessions::hashing::HashPool;
use crate::upstream::Upstream;

use crate::state::AppState;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Keys.
    #[error(transparent)]
    Keys(#[from] KeysError),
    /// Store.
    #[error(transparent)]
    Store(#[from] tessera_store::StoreError),
    /// The hashing threads could not be started.
    #[error("cannot start the password-hashing threads: {0}")]
    HashingThreads(std::io::Error),
    /// The hashing pool refused the start-up hash.
    #[error("the password-hashing pool did not run the start-up hash")]
    HashingPool,
    /// The start-up hash failed (bad `passwords.*` parameters).
    #[error("configuration key `passwords`: {0}")]
    Hash(tessera_core::password::PasswordError),
    /// `upstream` is not a usable URL.
    #[error(transparent)]
    Upstream(#[from] crate::upstream::UpstreamUrlError),
}

/// What [`AppState::build`] needs.
pub struct StateParts {
    /// Validated configuration.
    pub config: Config,
    /// The SPA origin in effect.
    pub public_origin: String,
    /// The store.
    pub store: Arc<dyn Store>,
    /// The master key.
    pub master: MasterKey,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Upstream override (the demo API); else `config.upstream`.
    pub upstream: Option<String>,
    /// Serve the demo SPA.
    pub demo_assets: bool,
    /// TLS on.
    pub tls: bool,
}

impl AppState {
    /// Builds the state: ensures a signing key, loads keys and the denylist.
    pub async fn build(parts: StateParts) -> Result<Arc<AppState>, StartError> {
        let StateParts {
            config,
            public_origin,
            store,
            master,
            clock,
            upstream,
            demo_assets,
            tls,
        } = parts;
        let now = clock.now();
        let schedule = keys::schedule(&config);
        keys::ensure_keys(store.as_ref(), &master, schedule, now).await?;
        let ring = keys::load_ring(store.as_ref(), &master, now).await?;
        let issuer = config
            .tokens
            .issuer
            .clone()
            .unwrap_or_else(|| public_origin.clone());
        let audience = config
            .tokens
            .audience
            .clone()
            .unwrap_or_else(|| public_origin.clone());
        let verifier = Verifier::new(&issuer, &audience, config.tokens.leeway.as_secs());
        let hash_pool = HashPool::new(
            config.passwords.workers,
            config.passwords.queue,
            crate::sessions::hashing::Priority::of(&config.passwords),
        )
        .map_err(StartError::HashingThreads)?;
        let params = config.passwords.params();
        let dummy_hash = hash_pool
            .run(move || tessera_core::password::dummy_hash(params))
            .await
            .map_err(|_| StartError::HashingPool)?
            .map_err(StartError::Hash)?;
        let upstream = match upstream.or_else(|| config.upstream.clone()) {
            Some(u) => Some(Upstream::new(&u, &config)?),
            None => None,
        };
        let state = Arc::new(AppState {
            csrf: CsrfKey::new(&master.derive("csrf-token")),
            refresh_key: RefreshKey::new(&master.derive("refresh-successor")),
            device_key: tessera_core::device::DeviceKey::new(&master.derive("device-token")),
            public_origin,
            verifier,
            store,
            master,
            keys: ArcSwap::from_pointee(ring),
            denylist: Denylist::new(),
            verify_cache: tessera_core::VerifyCache::new(config.tokens.verify_cache_entries),
            clock,
            hash_pool,
            dummy_hash,
            upstream,
            demo_assets,
            tls,
            dpop_replay: tessera_core::replay::ReplayCache::new(config.dpop.replay_capacity),
            sig_replay: tessera_core::replay::ReplayCache::new(config.signatures.replay_capacity),
            clients: ArcSwap::from_pointee(crate::auth::clients::ClientTable::default()),
            clients_miss: tokio::sync::Mutex::new(()),
            limiter: crate::sessions::ratelimit::RateLimiter::new(
                config.rate_limit.per_username_per_minute,
                config.rate_limit.per_ip_per_minute,
            ),
            metrics: Metrics::default(),
            revocation_cursor: std::sync::atomic::AtomicI64::new(0),
            degraded: std::sync::atomic::AtomicBool::new(false),
            sig_body_bytes: Arc::new(tokio::sync::Semaphore::new(
                config.signatures.max_buffered_bytes,
            )),
            config,
        });
        crate::cluster::sync::pull_revocations(&state).await?;
        crate::auth::clients::reload(&state).await?;
        crate::cluster::sync::release_free_memory();
        Ok(state)
    }
}
