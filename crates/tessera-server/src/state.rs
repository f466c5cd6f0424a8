//! The state every handler shares.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tessera_core::csrf::CsrfKey;
use tessera_core::refresh::RefreshKey;
use tessera_core::{Clock, Denylist, KeyRing, MasterKey, Verifier};
use tessera_store::Store;

use crate::config::Config;
use crate::gateway::Upstream;
use crate::hashing::HashPool;
use crate::keys::{self, KeySchedule, KeysError};
use crate::metrics::Metrics;

/// Shared by all requests.
pub struct AppState {
    /// The validated configuration.
    pub config: Config,
    /// The SPA origin in effect (configured, or derived from the bound address).
    pub public_origin: String,
    /// What tokens must say.
    pub verifier: Verifier,
    /// Persistent state.
    pub store: Arc<dyn Store>,
    /// The master key (sealing, subkeys).
    pub master: MasterKey,
    /// The keys in effect; swapped whole when keys change.
    pub keys: ArcSwap<KeyRing>,
    /// Revoked sessions and users.
    pub denylist: Denylist,
    /// Tokens already verified (cleared when keys change).
    pub verify_cache: tessera_core::VerifyCache,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// CSRF token key.
    pub csrf: CsrfKey,
    /// Refresh-token successor key.
    pub refresh_key: RefreshKey,
    /// Issues and checks device tokens (the per-user login limit's known devices).
    pub device_key: tessera_core::device::DeviceKey,
    /// Password hashing threads.
    pub hash_pool: HashPool,
    /// Hash of a random password with the current parameters (unknown-user path).
    pub dummy_hash: String,
    /// Where authenticated requests go.
    pub upstream: Option<Upstream>,
    /// Serve the built-in demo SPA at `/`.
    pub demo_assets: bool,
    /// Served over TLS (adds HSTS).
    pub tls: bool,
    /// DPoP proof ids seen (replay defence).
    pub dpop_replay: tessera_core::replay::ReplayCache,
    /// Request-signature nonces seen (replay defence).
    pub sig_replay: tessera_core::replay::ReplayCache,
    /// Service clients by key id (secrets unsealed in memory).
    pub clients: ArcSwap<crate::clients::ClientTable>,
    /// Serialises store lookups for unknown client key ids.
    pub clients_miss: tokio::sync::Mutex<()>,
    /// Brute-force throttling.
    pub limiter: crate::ratelimit::RateLimiter,
    /// Counters.
    pub metrics: Metrics,
    /// Cursor into the revocation feed.
    pub revocation_cursor: std::sync::atomic::AtomicI64,
    /// Set while the store is failing.
    pub degraded: std::sync::atomic::AtomicBool,
    /// Bytes of signed-request bodies that may be buffered at once
    /// (`signatures.max_buffered_bytes`); one permit per byte.
    pub sig_body_bytes: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("public_origin", &self.public_origin)
            .finish_non_exhaustive()
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Keys.
    #[error(transparent)]
    Keys(#[from] KeysError),
    /// Store.
    #[error(transparent)]
    Store(#[from] tessera_store::StoreError),
    /// Something else, described.
    #[error("{0}")]
    Other(String),
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
        let schedule = key_schedule(&config);
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
            config.passwords.hash_priority(),
        )
        .map_err(|e| StartError::Other(format!("cannot start hashing threads: {e}")))?;
        let params = config.passwords.params();
        let dummy_hash = hash_pool
            .run(move || tessera_core::password::dummy_hash(params))
            .await
            .map_err(|_| StartError::Other("hashing pool unavailable".into()))?
            .map_err(|e| StartError::Other(e.to_string()))?;
        let upstream = match upstream.or_else(|| config.upstream.clone()) {
            Some(u) => Some(Upstream::new(&u, &config).map_err(StartError::Other)?),
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
            clients: ArcSwap::from_pointee(crate::clients::ClientTable::default()),
            clients_miss: tokio::sync::Mutex::new(()),
            limiter: crate::ratelimit::RateLimiter::new(
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
        crate::sync::pull_revocations(&state).await?;
        crate::clients::reload(&state).await?;
        crate::sync::release_free_memory();
        Ok(state)
    }

    /// Seconds an access token lives.
    pub fn access_ttl(&self) -> u64 {
        self.config.tokens.access_ttl.as_secs().max(1)
    }

    /// Seconds after a revocation until no token it denies can still be valid.
    pub fn token_life(&self) -> u64 {
        self.access_ttl() + self.verifier.leeway() + 1
    }
}

/// The key schedule from the configuration.
pub fn key_schedule(config: &Config) -> KeySchedule {
    KeySchedule {
        alg: config.tokens.algorithm,
        rotate_every: config.tokens.rotate_every.as_secs(),
        prepublish: config.tokens.prepublish.as_secs(),
        token_life: config.tokens.access_ttl.as_secs() + config.tokens.leeway.as_secs() + 1,
    }
}
