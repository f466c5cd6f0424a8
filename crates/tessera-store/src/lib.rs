//! Tessera's persistent state behind one [`Store`] trait: users, sessions with their
//! refresh-token families, the revocation feed, signing keys, service clients, the
//! audit log, and second factors (TOTP, recovery codes, passkeys) with the one-time state
//! of their ceremonies.
//!
//! Two implementations share one body of SQL ([`sql`]): embedded SQLite (the default,
//! one node) and PostgreSQL (several nodes). The server only sees `Arc<dyn Store>`.
//! Nothing here is on the per-token path: tokens are verified in memory, the store is
//! touched by login, refresh, logout and administration — and by [`Store::record_once`]
//! once per new DPoP proof or signed request, so that a replay on another node is seen.

mod model;
mod sql;

pub use model::*;
pub use sql::{exists, open, sqlite_file, PgStore, SqliteStore};

use async_trait::async_trait;
use tessera_core::{SessionId, UnixTime, UserId};

/// Why a store operation failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique name is taken (e.g. the username).
    #[error("already exists")]
    Conflict,
    /// The database cannot be reached or timed out; retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A row could not be decoded (hand-edited database, or a bug).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The URL names no supported backend, or migrations failed.
    #[error("store setup failed: {0}")]
    Setup(String),
}

/// The result type of store operations.
pub type Result<T> = std::result::Result<T, StoreError>;

/// What a one-time value recorded by [`Store::record_once`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplayKind {
    /// A DPoP proof's `jti` (RFC 9449 §11.1).
    Dpop,
    /// A request signature's `nonce` (RFC 9421 §7.2.2).
    Signature,
}

impl ReplayKind {
    /// The `kind` column's value.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplayKind::Dpop => "dpop",
            ReplayKind::Signature => "sig",
        }
    }
}

/// A change another node made that this node should pick up at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// New revocation-feed entries.
    Revocations,
    /// Signing keys changed.
    Keys,
    /// The notification connection was lost and re-established: notifications may have
    /// been missed, resynchronise everything.
    Resync,
}

/// A stream of [`Change`]s (PostgreSQL `LISTEN/NOTIFY`).
#[async_trait]
pub trait ChangeFeed: Send {
    /// Waits for the next change. An error means the database is unreachable; call again
    /// to retry (the implementation reconnects).
    async fn next(&mut self) -> Result<Change>;
}

/// Everything tessera persists. Implementations must be safe to share between nodes
/// (PostgreSQL) and between the server and the admin CLI (SQLite, WAL mode).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A cheap round trip, for health checks.
    async fn ping(&self) -> Result<()>;

    /// Push notifications of changes made by other nodes, if the backend has them
    /// (PostgreSQL); `None` means poll (SQLite).
    async fn subscribe(&self) -> Result<Option<Box<dyn ChangeFeed>>> {
        Ok(None)
    }

    /// Creates a user; [`StoreError::Conflict`] if the username is taken.
    async fn create_user(&self, user: &User) -> Result<()>;
    /// The user with this exact username.
    async fn user_by_name(&self, username: &str) -> Result<Option<User>>;
    /// The user with this id.
    async fn user_by_id(&self, id: UserId) -> Result<Option<User>>;
    /// Every user, by username.
    async fn list_users(&self) -> Result<Vec<User>>;
    /// Replaces a user's password hash; false if no such user.
    async fn set_password_hash(&self, id: UserId, hash: &str) -> Result<bool>;

    /// Starts a session with its first refresh token.
    async fn create_session(&self, session: &Session, refresh_hash: &[u8; 32]) -> Result<()>;
    /// The session with this id.
    async fn session(&self, id: SessionId) -> Result<Option<Session>>;
    /// The session a refresh token (current or past) belongs to.
    async fn session_for_refresh(&self, hash: &[u8; 32]) -> Result<Option<Session>>;
    /// Rotates a refresh token; see [`Rotation`] for the rules.
    async fn rotate_refresh_token(&self, rotation: &Rotation) -> Result<RotateOutcome>;
    /// Revokes one session and records it in the revocation feed. False if it did not
    /// exist or was already revoked.
    async fn revoke_session(&self, id: SessionId, at: UnixTime, until: UnixTime) -> Result<bool>;
    /// Revokes every session of a user and sets their "not before" time to `at`.
    /// Returns the sessions it revoked.
    async fn revoke_user(
        &self,
        id: UserId,
        at: UnixTime,
        until: UnixTime,
    ) -> Result<Vec<SessionId>>;
    /// Revocation-feed entries with `id > after` that still matter at `now`, oldest first,
    /// at most `limit` of them (callers page through a long feed with the last id).
    async fn revocations_since(
        &self,
        after: i64,
        now: UnixTime,
        limit: u32,
    ) -> Result<Vec<Revocation>>;
    /// Deletes sessions, refresh tokens and revocations that can no longer matter.
    async fn purge_expired(&self, now: UnixTime) -> Result<u64>;

    /// Records a one-time value of `kind` (`id`: the SHA-256 of its replay key) as used
    /// until `expires_at` (inclusive), atomically across every node sharing the store.
    /// `Ok(true)`: first use, now recorded. `Ok(false)`: the id is recorded and still
    /// live at `now` — a replay. A row whose `expires_at` is before `now` counts as absent.
    async fn record_once(
        &self,
        kind: ReplayKind,
        id: &[u8; 32],
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool>;
    /// Deletes one-time values that expired before `now`; returns how many.
    async fn purge_replay_ids(&self, now: UnixTime) -> Result<u64>;

    /// Every stored signing key (sealed).
    async fn list_keys(&self) -> Result<Vec<StoredKey>>;
    /// Adds a key.
    async fn insert_key(&self, key: &StoredKey) -> Result<()>;
    /// Sets a key's retirement and expiry times.
    async fn update_key_times(
        &self,
        kid: &str,
        retires_at: Option<UnixTime>,
        expires_at: Option<UnixTime>,
    ) -> Result<()>;
    /// Deletes keys that expired before `now`.
    async fn delete_expired_keys(&self, now: UnixTime) -> Result<u64>;

    /// Adds a service client; [`StoreError::Conflict`] if the name is taken.
    async fn create_client(&self, client: &StoredClient) -> Result<()>;
    /// The client with this key id.
    async fn client(&self, key_id: &str) -> Result<Option<StoredClient>>;
    /// Every client.
    async fn list_clients(&self) -> Result<Vec<StoredClient>>;

    /// Appends an audit event.
    async fn record_audit(&self, event: &AuditEvent) -> Result<()>;
    /// The latest `limit` audit events, newest last.
    async fn recent_audit(&self, limit: i64) -> Result<Vec<AuditEvent>>;

    /// Counts one failed password check for `user_key` at `at` (and forgets failures
    /// older than an hour, of every user).
    async fn record_login_failure(&self, user_key: &str, at: UnixTime) -> Result<()>;
    /// Failed password checks for `user_key` at or after `since`, on every node.
    async fn login_failures_since(&self, user_key: &str, since: UnixTime) -> Result<u32>;

    /// Sets a user's TOTP factor (setup), replacing any they had (pending or confirmed):
    /// its secret, confirmation and last used step start afresh.
    async fn put_totp(&self, factor: &TotpFactor) -> Result<()>;
    /// The user's TOTP factor, pending or confirmed.
    async fn totp(&self, user: UserId) -> Result<Option<TotpFactor>>;
    /// Confirms the pending factor whose secret is `sealed` (the one the first code was
    /// checked against: a setup in between makes this false) and spends `step`.
    async fn confirm_totp(&self, user: UserId, sealed: &[u8], step: u64) -> Result<bool>;
    /// Spends time step `step` of the user's confirmed factor: true if it was later than
    /// the last one used (now recorded), false if it was not — a code used on any node is
    /// refused on every other. One compare-and-set statement.
    async fn use_totp_step(&self, user: UserId, step: u64) -> Result<bool>;
    /// Removes the user's TOTP factor; false if there was none.
    async fn delete_totp(&self, user: UserId) -> Result<bool>;

    /// Replaces the user's recovery codes with `hashes` (the old ones die), atomically.
    async fn replace_recovery_codes(&self, user: UserId, hashes: &[[u8; 32]]) -> Result<()>;
    /// Spends the unused recovery code with this hash at `at`: true once, false for an
    /// unknown or already used code. One compare-and-set statement.
    async fn use_recovery_code(&self, user: UserId, hash: &[u8; 32], at: UnixTime) -> Result<bool>;
    /// The hashes of the user's unused recovery codes.
    async fn unused_recovery_codes(&self, user: UserId) -> Result<Vec<[u8; 32]>>;
    /// Deletes all the user's recovery codes; returns how many.
    async fn delete_recovery_codes(&self, user: UserId) -> Result<u64>;

    /// Registers a passkey; [`StoreError::Conflict`] if its credential id is taken.
    async fn create_passkey(&self, passkey: &StoredPasskey) -> Result<()>;
    /// The passkey with this credential id.
    async fn passkey(&self, id: &str) -> Result<Option<StoredPasskey>>;
    /// The user's passkeys, oldest first.
    async fn passkeys_of(&self, user: UserId) -> Result<Vec<StoredPasskey>>;
    /// After a sign-in with it: the updated serialized credential (counter, backup
    /// flags) and `last_used_at`. False if no such passkey of this user.
    async fn update_passkey_use(
        &self,
        user: UserId,
        id: &str,
        passkey: &str,
        at: UnixTime,
    ) -> Result<bool>;
    /// Removes one of the user's passkeys; false if the user has none with this id.
    async fn delete_passkey(&self, user: UserId, id: &str) -> Result<bool>;

    /// Stores one-time ceremony state; [`StoreError::Conflict`] if the id is taken.
    async fn put_mfa_state(&self, state: &MfaState) -> Result<()>;
    /// Reads live state without using it (to check a code before spending the state).
    async fn peek_mfa_state(
        &self,
        kind: MfaStateKind,
        id: &[u8; 32],
        now: UnixTime,
    ) -> Result<Option<MfaState>>;
    /// Uses the state: returns it and deletes it in one statement, so of two nodes
    /// taking the same state only one gets it. `None` if absent, of another kind, or
    /// expired before `now`.
    async fn take_mfa_state(
        &self,
        kind: MfaStateKind,
        id: &[u8; 32],
        now: UnixTime,
    ) -> Result<Option<MfaState>>;
    /// Counts a wrong code against the state; at `limit` failures it is deleted. Returns
    /// the failures counted so far (0 if the state is gone).
    async fn record_mfa_state_failure(
        &self,
        kind: MfaStateKind,
        id: &[u8; 32],
        limit: u32,
    ) -> Result<u32>;
}
