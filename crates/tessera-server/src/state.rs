//! The state every handler shares.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tessera_core::csrf::CsrfKey;
use tessera_core::refresh::RefreshKey;
use tessera_core::{Clock, Denylist, KeyRing, MasterKey, Verifier};
use tessera_store::Store;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::sessions::hashing::HashPool;
use crate::upstream::Upstream;

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
    pub clients: ArcSwap<crate::auth::clients::ClientTable>,
    /// Serialises store lookups for unknown client key ids.
    pub clients_miss: tokio::sync::Mutex<()>,
    /// Brute-force throttling.
    pub limiter: crate::sessions::ratelimit::RateLimiter,
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

impl AppState {
    /// Seconds an access token lives.
    pub fn access_ttl(&self) -> u64 {
        self.config.tokens.access_ttl.as_secs().max(1)
    }

    /// Seconds after a revocation until no token it denies can still be valid.
    pub fn token_life(&self) -> u64 {
        self.access_ttl() + self.verifier.leeway() + 1
    }
}
