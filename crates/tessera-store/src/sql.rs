//! The SQL implementation, written once and instantiated for SQLite and PostgreSQL.
//!
//! Placeholders are `$1, $2, …` in order of first appearance, which both backends accept.
//! Rotation and revocation are compare-and-set updates inside one transaction, so they
//! are correct under concurrency on either backend without serialisable isolation.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Row;
use tessera_core::{SessionId, UnixTime, UserId};

use crate::{
    AuditEvent, MfaState, MfaStateKind, ReplayKind, Result, Revocation, RevocationTarget,
    RotateOutcome, Rotation, Session, Store, StoreError, StoredClient, StoredKey, StoredPasskey,
    TotpFactor, User,
};

/// Opens the store named by `url` (`sqlite://path` or `postgres://…`) and runs migrations.
pub async fn open(url: &str) -> Result<std::sync::Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(SqliteStore::open(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(std::sync::Arc::new(PgStore::open(url).await?))
    } else {
        Err(StoreError::Setup(
            "database_url must start with sqlite: or postgres:".into(),
        ))
    }
}

/// Whether the database named by `url` already holds tessera's tables. Read-only: nothing
/// is created (a missing SQLite file is `false`, never made). The admin CLI uses it to
/// refuse to work on a database that is not there instead of creating an empty one.
pub async fn exists(url: &str) -> Result<bool> {
    const QUERY: &str =
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'users'";
    if url.starts_with("sqlite:") {
        let Some(path) = sqlite_file(url) else {
            return Ok(false);
        };
        if !path.exists() {
            return Ok(false);
        }
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Setup(e.to_string()))?
            .read_only(true)
            .create_if_missing(false);
        let mut conn = sqlx::ConnectOptions::connect(&opts)
            .await
            .map_err(|e| StoreError::Setup(format!("{}: {e}", path.display())))?;
        let n: i64 = sqlx::query_scalar(QUERY)
            .fetch_one(&mut conn)
            .await
            .map_err(|e| StoreError::Setup(format!("{}: {e}", path.display())))?;
        Ok(n > 0)
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let (opts, at) = pg_options(url)?;
        let mut conn = sqlx::ConnectOptions::connect(&opts)
            .await
            .map_err(|e| StoreError::Setup(format!("cannot connect to PostgreSQL at {at}: {e}")))?;
        let found: bool = sqlx::query_scalar("SELECT to_regclass('users') IS NOT NULL")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| StoreError::Setup(format!("PostgreSQL at {at}: {e}")))?;
        Ok(found)
    } else {
        Err(StoreError::Setup(
            "database_url must start with sqlite: or postgres:".into(),
        ))
    }
}

/// The file of a `sqlite:` URL (`None` for an in-memory database or another scheme).
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    if !url.starts_with("sqlite:") {
        return None;
    }
    let opts = SqliteConnectOptions::from_str(url).ok()?;
    let path = opts.get_filename();
    (!path.as_os_str().is_empty() && path != std::path::Path::new(":memory:"))
        .then(|| path.to_path_buf())
}

/// Parsed PostgreSQL options and `host:port (database …)` to name in messages (never
/// the password).
fn pg_options(url: &str) -> Result<(sqlx::postgres::PgConnectOptions, String)> {
    let opts = sqlx::postgres::PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Setup(format!("not a PostgreSQL URL: {e}")))?;
    let host = match opts.get_socket() {
        Some(socket) => socket.display().to_string(),
        None => opts.get_host().to_owned(),
    };
    let at = format!(
        "{host}:{} (database {:?}, user {:?})",
        opts.get_port(),
        opts.get_database().unwrap_or(opts.get_username()),
        opts.get_username()
    );
    Ok((opts, at))
}

/// Embedded SQLite (WAL mode, so the admin CLI and the server can share the file).
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Where one-time values are recorded: the one pool (WAL with `synchronous = NORMAL`
    /// already commits without an fsync).
    fn replay_pool(&self) -> &SqlitePool {
        &self.pool
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` and migrates it.
    pub async fn open(url: &str) -> Result<Self> {
        let opts =
            SqliteConnectOptions::from_str(url).map_err(|e| StoreError::Setup(e.to_string()))?;
        let at = opts.get_filename().to_path_buf();
        let opts = opts
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(opts)
            .await
            .map_err(|e| StoreError::Setup(format!("{}: {e}", at.display())))?;
        migrator(SQLITE_MIGRATIONS)
            .run(&pool)
            .await
            .map_err(|e| StoreError::Setup(format!("{}: migrations failed: {e}", at.display())))?;
        Ok(SqliteStore { pool })
    }
}

/// PostgreSQL, for several nodes sharing one database.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    /// Connections with `synchronous_commit = off`, for one-time values only: their
    /// commit does not wait for the WAL flush, the bulk of a first use's time
    /// (BENCHMARKS.md, "Cluster-wide checks in the store"). A PostgreSQL crash can lose the
    /// last moments of them (at most 3 × `wal_writer_delay`, 600 ms by default), never
    /// anything else, and never corrupts the table; SQLite's `synchronous = NORMAL` makes
    /// the same trade for every write.
    replay_pool: PgPool,
}

impl PgStore {
    fn replay_pool(&self) -> &PgPool {
        &self.replay_pool
    }
}

impl PgStore {
    /// Connects to `url` and migrates the database.
    pub async fn open(url: &str) -> Result<Self> {
        let (opts, at) = pg_options(url)?;
        let replay_opts = opts.clone();
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(opts)
            .await
            .map_err(|e| StoreError::Setup(format!("cannot connect to PostgreSQL at {at}: {e}")))?;
        migrator(PG_MIGRATIONS).run(&pool).await.map_err(|e| {
            StoreError::Setup(format!("PostgreSQL at {at}: migrations failed: {e}"))
        })?;
        // One-time values (replay ids) on their own connections without a synchronous
        // commit: see `record_once`.
        let replay_opts = replay_opts.options([("synchronous_commit", "off")]);
        let replay_pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(3))
            .connect_lazy_with(replay_opts);
        Ok(PgStore { pool, replay_pool })
    }

    /// The connection pool (for LISTEN/NOTIFY).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// `LISTEN tessera_revocations, tessera_keys` on a dedicated connection.
struct PgFeed {
    listener: sqlx::postgres::PgListener,
    connected: bool,
}

#[async_trait]
impl crate::ChangeFeed for PgFeed {
    async fn next(&mut self) -> Result<crate::Change> {
        // try_recv reconnects by itself; `Ok(None)` reports that the connection was lost,
        // so notifications may have been missed.
        match self.listener.try_recv().await {
            Ok(Some(n)) => {
                let first = !self.connected;
                self.connected = true;
                if first {
                    return Ok(crate::Change::Resync);
                }
                Ok(if n.channel() == "tessera_keys" {
                    crate::Change::Keys
                } else {
                    crate::Change::Revocations
                })
            }
            Ok(None) => {
                self.connected = false;
                Ok(crate::Change::Resync)
            }
            Err(e) => {
                self.connected = false;
                Err(db_err(e))
            }
        }
    }
}

impl SqliteStore {
    async fn subscribe_impl(&self) -> Result<Option<Box<dyn crate::ChangeFeed>>> {
        Ok(None)
    }
}

impl PgStore {
    async fn subscribe_impl(&self) -> Result<Option<Box<dyn crate::ChangeFeed>>> {
        Ok(Some(Box::new(self.feed().await?)))
    }

    async fn feed(&self) -> Result<PgFeed> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool)
            .await
            .map_err(db_err)?;
        listener
            .listen_all(["tessera_revocations", "tessera_keys"])
            .await
            .map_err(db_err)?;
        Ok(PgFeed {
            listener,
            connected: true,
        })
    }
}

/// Migrations, embedded at compile time: `(version, description, sql)`.
const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "replay_ids",
        include_str!("../migrations/sqlite/0002_replay_ids.sql"),
    ),
    (
        3,
        "login_failures",
        include_str!("../migrations/sqlite/0003_login_failures.sql"),
    ),
    (4, "mfa", include_str!("../migrations/sqlite/0004_mfa.sql")),
];
const PG_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "replay_ids",
        include_str!("../migrations/postgres/0002_replay_ids.sql"),
    ),
    (
        3,
        "login_failures",
        include_str!("../migrations/postgres/0003_login_failures.sql"),
    ),
    (
        4,
        "mfa",
        include_str!("../migrations/postgres/0004_mfa.sql"),
    ),
];

fn migrator(list: &[(i64, &'static str, &'static str)]) -> sqlx::migrate::Migrator {
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    let migrations: Vec<Migration> = list
        .iter()
        .map(|(v, d, sql)| {
            Migration::new(*v, (*d).into(), MigrationType::Simple, (*sql).into(), false)
        })
        .collect();
    Migrator {
        migrations: migrations.into(),
        ..Migrator::DEFAULT
    }
}

fn db_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict,
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_) => StoreError::Corrupt(e.to_string()),
        _ => StoreError::Unavailable(e.to_string()),
    }
}

fn t(v: UnixTime) -> i64 {
    i64::try_from(v.0).unwrap_or(i64::MAX)
}

fn ut(v: i64) -> UnixTime {
    UnixTime(u64::try_from(v).unwrap_or(0))
}

fn ot(v: Option<UnixTime>) -> Option<i64> {
    v.map(t)
}

fn uid(s: &str) -> Result<UserId> {
    UserId::parse(s).ok_or_else(|| StoreError::Corrupt(format!("bad user id {s:?}")))
}

fn sid(s: &str) -> Result<SessionId> {
    SessionId::parse(s).ok_or_else(|| StoreError::Corrupt(format!("bad session id {s:?}")))
}

fn hash32(v: Vec<u8>) -> Option<[u8; 32]> {
    v.try_into().ok()
}

/// A TOTP time step as a column value (steps stay far below `i64::MAX` until the year
/// 10^12; saturating keeps a bogus one from wrapping).
fn step_col(step: u64) -> i64 {
    i64::try_from(step).unwrap_or(i64::MAX)
}

const PASSKEY_COLS: &str = "id, user_id, name, passkey, created_at, last_used_at";

const USER_COLS: &str = "id, username, password_hash, roles, created_at, disabled";
const SESSION_COLS: &str = "id, user_id, created_at, expires_at, revoked_at, dpop_jkt, client";

macro_rules! impl_store {
    // `$begin` starts a transaction that will write; see `SQLITE_BEGIN_WRITE`.
    // `$feed_channel`: the NOTIFY channel of the revocation feed, if the database has one.
    ($store:ty, $db:ty, $row:ty, $notify:expr, $begin:expr, $feed_channel:expr) => {
        impl $store {
            /// Appends to the revocation feed inside `tx` (and, on PostgreSQL, notifies
            /// every LISTENing node at commit: the fan-out of revocations).
            async fn feed_insert(
                tx: &mut sqlx::Transaction<'_, $db>,
                kind: &str,
                subject: &str,
                at: i64,
                until: i64,
            ) -> Result<()> {
                sqlx::query("INSERT INTO revocations (kind, subject, at, until) VALUES ($1, $2, $3, $4)")
                    .bind(kind)
                    .bind(subject)
                    .bind(at)
                    .bind(until)
                    .execute(&mut **tx)
                    .await
                    .map_err(db_err)?;
                let channel: Option<&str> = $feed_channel;
                if let Some(channel) = channel {
                    sqlx::query("SELECT pg_notify($1, $2)")
                        .bind(channel)
                        .bind(kind)
                        .execute(&mut **tx)
                        .await
                        .map_err(db_err)?;
                }
                Ok(())
            }

            fn user_from(row: &$row) -> Result<User> {
                let roles: String = row.try_get("roles").map_err(db_err)?;
                Ok(User {
                    id: uid(&row.try_get::<String, _>("id").map_err(db_err)?)?,
                    username: row.try_get("username").map_err(db_err)?,
                    password_hash: row.try_get("password_hash").map_err(db_err)?,
                    roles: serde_json::from_str(&roles)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    created_at: ut(row.try_get("created_at").map_err(db_err)?),
                    disabled: row.try_get::<i64, _>("disabled").map_err(db_err)? != 0,
                })
            }

            fn session_from(row: &$row) -> Result<Session> {
                Ok(Session {
                    id: sid(&row.try_get::<String, _>("id").map_err(db_err)?)?,
                    user_id: uid(&row.try_get::<String, _>("user_id").map_err(db_err)?)?,
                    created_at: ut(row.try_get("created_at").map_err(db_err)?),
                    expires_at: ut(row.try_get("expires_at").map_err(db_err)?),
                    revoked_at: row
                        .try_get::<Option<i64>, _>("revoked_at")
                        .map_err(db_err)?
                        .map(ut),
                    dpop_jkt: row.try_get("dpop_jkt").map_err(db_err)?,
                    client: row.try_get("client").map_err(db_err)?,
                })
            }

            fn key_from(row: &$row) -> Result<StoredKey> {
                Ok(StoredKey {
                    kid: row.try_get("kid").map_err(db_err)?,
                    alg: row.try_get("alg").map_err(db_err)?,
                    created_at: ut(row.try_get("created_at").map_err(db_err)?),
                    activates_at: ut(row.try_get("activates_at").map_err(db_err)?),
                    retires_at: row.try_get::<Option<i64>, _>("retires_at").map_err(db_err)?.map(ut),
                    expires_at: row.try_get::<Option<i64>, _>("expires_at").map_err(db_err)?.map(ut),
                    sealed: row.try_get("sealed").map_err(db_err)?,
                })
            }

            fn client_from(row: &$row) -> Result<StoredClient> {
                Ok(StoredClient {
                    key_id: row.try_get("key_id").map_err(db_err)?,
                    name: row.try_get("name").map_err(db_err)?,
                    sealed: row.try_get("sealed").map_err(db_err)?,
                    created_at: ut(row.try_get("created_at").map_err(db_err)?),
                    disabled: row.try_get::<i64, _>("disabled").map_err(db_err)? != 0,
                })
            }

            fn totp_from(row: &$row) -> Result<TotpFactor> {
                Ok(TotpFactor {
                    user_id: uid(&row.try_get::<String, _>("user_id").map_err(db_err)?)?,
                    sealed: row.try_get("sealed").map_err(db_err)?,
                    confirmed: row.try_get::<i64, _>("confirmed").map_err(db_err)? != 0,
                    created_at: ut(row.try_get("created_at").map_err(db_err)?),
                    last_used_step: u64::try_from(row.try_get::<i64, _>("last_used_step").map_err(db_err)?)
                        .map_err(|_| StoreError::Corrupt("negative last_used_step".into()))?,
                })
            }

            fn passkey_from(row: &$row) -> Result<StoredPasskey> {
                Ok(StoredPasskey {
                    id: row.try_get("id").map_err(db_err)?,
                    user_id: uid(&row.try_get::<String, _>("user_id").map_err(db_err)?)?,
                    name: row.try_get("name").map_err(db_err)?,
                    passkey: row.try_get("passkey").map_err(db_err)?,
                    created_at: ut(row.try_get("created_at").map_err(db_err)?),
                    last_used_at: row.try_get::<Option<i64>, _>("last_used_at").map_err(db_err)?.map(ut),
                })
            }

            fn mfa_state_from(kind: MfaStateKind, id: &[u8; 32], row: &$row) -> Result<MfaState> {
                let user: Option<String> = row.try_get("user_id").map_err(db_err)?;
                Ok(MfaState {
                    kind,
                    id: *id,
                    user_id: user.as_deref().map(uid).transpose()?,
                    payload: row.try_get("payload").map_err(db_err)?,
                    expires_at: ut(row.try_get("expires_at").map_err(db_err)?),
                    failures: u32::try_from(row.try_get::<i64, _>("failures").map_err(db_err)?).unwrap_or(u32::MAX),
                })
            }

            fn audit_from(row: &$row) -> Result<AuditEvent> {
                Ok(AuditEvent {
                    at: ut(row.try_get("at").map_err(db_err)?),
                    kind: row.try_get("kind").map_err(db_err)?,
                    username: row.try_get("username").map_err(db_err)?,
                    user_id: row.try_get("user_id").map_err(db_err)?,
                    session_id: row.try_get("session_id").map_err(db_err)?,
                    ip: row.try_get("ip").map_err(db_err)?,
                    user_agent: row.try_get("user_agent").map_err(db_err)?,
                    detail: row.try_get("detail").map_err(db_err)?,
                })
            }
        }

        #[async_trait]
        impl Store for $store {
            async fn subscribe(&self) -> Result<Option<Box<dyn crate::ChangeFeed>>> {
                self.subscribe_impl().await
            }

            async fn ping(&self) -> Result<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await.map_err(db_err)?;
                Ok(())
            }

            async fn create_user(&self, u: &User) -> Result<()> {
                let roles = serde_json::to_string(&u.roles)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                sqlx::query(
                    "INSERT INTO users (id, username, password_hash, roles, created_at, disabled) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(u.id.to_string())
                .bind(&u.username)
                .bind(&u.password_hash)
                .bind(roles)
                .bind(t(u.created_at))
                .bind(i64::from(u.disabled))
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
                Ok(())
            }

            async fn user_by_name(&self, username: &str) -> Result<Option<User>> {
                let row = sqlx::query(&format!("SELECT {USER_COLS} FROM users WHERE username = $1"))
                    .bind(username)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db_err)?;
                row.as_ref().map(Self::user_from).transpose()
            }

            async fn user_by_id(&self, id: UserId) -> Result<Option<User>> {
                let row = sqlx::query(&format!("SELECT {USER_COLS} FROM users WHERE id = $1"))
                    .bind(id.to_string())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db_err)?;
                row.as_ref().map(Self::user_from).transpose()
            }

            async fn list_users(&self) -> Result<Vec<User>> {
                let rows = sqlx::query(&format!("SELECT {USER_COLS} FROM users ORDER BY username"))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_err)?;
                rows.iter().map(Self::user_from).collect()
            }

            async fn set_password_hash(&self, id: UserId, hash: &str) -> Result<bool> {
                let r = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                    .bind(hash)
                    .bind(id.to_string())
                    .execute(&self.pool)
                    .await
                    .map_err(db_err)?;
                Ok(r.rows_affected() == 1)
            }

            async fn create_session(&self, s: &Session, refresh_hash: &[u8; 32]) -> Result<()> {
                let mut tx = self.pool.begin_with($begin).await.map_err(db_err)?;
                sqlx::query(
                    "INSERT INTO sessions (id, user_id, created_at, expires_at, revoked_at, dpop_jkt, client) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(s.id.to_string())
                .bind(s.user_id.to_string())
                .bind(t(s.created_at))
                .bind(t(s.expires_at))
                .bind(ot(s.revoked_at))
                .bind(&s.dpop_jkt)
                .bind(&s.client)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
                sqlx::query("INSERT INTO refresh_tokens (hash, session_id, issued_at) VALUES ($1, $2, $3)")
                    .bind(&refresh_hash[..])
                    .bind(s.id.to_string())
                    .bind(t(s.created_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                tx.commit().await.map_err(db_err)?;
                Ok(())
            }

            async fn session(&self, id: SessionId) -> Result<Option<Session>> {
                let row = sqlx::query(&format!("SELECT {SESSION_COLS} FROM sessions WHERE id = $1"))
                    .bind(id.to_string())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db_err)?;
                row.as_ref().map(Self::session_from).transpose()
            }

            async fn session_for_refresh(&self, hash: &[u8; 32]) -> Result<Option<Session>> {
                let row = sqlx::query(
                    "SELECT s.id, s.user_id, s.created_at, s.expires_at, s.revoked_at, s.dpop_jkt, s.client \
                     FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id WHERE r.hash = $1",
                )
                .bind(&hash[..])
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
                row.as_ref().map(Self::session_from).transpose()
            }

            async fn rotate_refresh_token(&self, r: &Rotation) -> Result<RotateOutcome> {
                let now = t(r.now);
                let mut tx = self.pool.begin_with($begin).await.map_err(db_err)?;
                let Some(tok) = sqlx::query(
                    "SELECT session_id, issued_at, rotated_at, successor FROM refresh_tokens WHERE hash = $1",
                )
                .bind(&r.hash[..])
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?
                else {
                    return Ok(RotateOutcome::NotFound);
                };
                let session_id: String = tok.try_get("session_id").map_err(db_err)?;
                let issued_at: i64 = tok.try_get("issued_at").map_err(db_err)?;
                let rotated_at: Option<i64> = tok.try_get("rotated_at").map_err(db_err)?;
                let successor: Option<Vec<u8>> = tok.try_get("successor").map_err(db_err)?;
                let Some(srow) = sqlx::query(&format!("SELECT {SESSION_COLS} FROM sessions WHERE id = $1"))
                    .bind(&session_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err)?
                else {
                    return Ok(RotateOutcome::NotFound);
                };
                let session = Self::session_from(&srow)?;
                if session.revoked_at.is_some() || session.expires_at <= r.now {
                    return Ok(RotateOutcome::Ended);
                }
                let (rotated_at, successor) = if rotated_at.is_none() {
                    if issued_at.saturating_add(i64::try_from(r.idle_ttl).unwrap_or(i64::MAX)) <= now {
                        return Ok(RotateOutcome::Ended);
                    }
                    let cas = sqlx::query(
                        "UPDATE refresh_tokens SET rotated_at = $1, successor = $2 \
                         WHERE hash = $3 AND rotated_at IS NULL",
                    )
                    .bind(now)
                    .bind(&r.successor_hash[..])
                    .bind(&r.hash[..])
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                    if cas.rows_affected() == 1 {
                        sqlx::query(
                            "INSERT INTO refresh_tokens (hash, session_id, issued_at) VALUES ($1, $2, $3)",
                        )
                        .bind(&r.successor_hash[..])
                        .bind(&session_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err)?;
                        tx.commit().await.map_err(db_err)?;
                        return Ok(RotateOutcome::Rotated { session, repeated: false });
                    }
                    // Lost a race with a concurrent rotation of the same token (PostgreSQL:
                    // the UPDATE waited for the winner's commit). Re-read what the winner
                    // wrote and judge this presentation as a retired token below, so the
                    // grace and successor rules apply to it too.
                    let Some(now_row) = sqlx::query(
                        "SELECT rotated_at, successor FROM refresh_tokens WHERE hash = $1",
                    )
                    .bind(&r.hash[..])
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err)?
                    else {
                        return Ok(RotateOutcome::NotFound);
                    };
                    (
                        now_row.try_get::<Option<i64>, _>("rotated_at").map_err(db_err)?,
                        now_row.try_get::<Option<Vec<u8>>, _>("successor").map_err(db_err)?,
                    )
                } else {
                    (rotated_at, successor)
                };
                // A retired token: the same successor within the grace, if that successor
                // is still the current token (predecessor only); otherwise reuse.
                let within_grace = r.grace > 0
                    && rotated_at.is_some_and(|at| now.saturating_sub(at) <= i64::try_from(r.grace).unwrap_or(0));
                if within_grace && successor.clone().and_then(hash32) == Some(r.successor_hash) {
                    let current: Option<i64> = sqlx::query(
                        "SELECT 1 FROM refresh_tokens WHERE hash = $1 AND rotated_at IS NULL",
                    )
                    .bind(&r.successor_hash[..])
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err)?
                    .map(|_| 1);
                    if current.is_some() {
                        return Ok(RotateOutcome::Rotated { session, repeated: true });
                    }
                }
                let revoked = sqlx::query(
                    "UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(&session_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
                if revoked.rows_affected() == 1 {
                    Self::feed_insert(&mut tx, "session", &session_id, now, t(r.revoke_until)).await?;
                }
                tx.commit().await.map_err(db_err)?;
                Ok(RotateOutcome::Reused { session })
            }

            async fn revoke_session(&self, id: SessionId, at: UnixTime, until: UnixTime) -> Result<bool> {
                let mut tx = self.pool.begin_with($begin).await.map_err(db_err)?;
                let r = sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                    .bind(t(at))
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                let changed = r.rows_affected() == 1;
                if changed {
                    Self::feed_insert(&mut tx, "session", &id.to_string(), t(at), t(until)).await?;
                }
                tx.commit().await.map_err(db_err)?;
                Ok(changed)
            }

            async fn revoke_user(&self, id: UserId, at: UnixTime, until: UnixTime) -> Result<Vec<SessionId>> {
                let mut tx = self.pool.begin_with($begin).await.map_err(db_err)?;
                let rows = sqlx::query(
                    "SELECT id FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2",
                )
                .bind(id.to_string())
                .bind(t(at))
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?;
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    let s: String = row.try_get("id").map_err(db_err)?;
                    let revoked = sqlx::query(
                        "UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                    )
                    .bind(t(at))
                    .bind(&s)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                    if revoked.rows_affected() != 1 {
                        // Revoked concurrently (PostgreSQL): it has its own feed entry.
                        continue;
                    }
                    Self::feed_insert(&mut tx, "session", &s, t(at), t(until)).await?;
                    out.push(sid(&s)?);
                }
                Self::feed_insert(&mut tx, "user", &id.to_string(), t(at), t(until)).await?;
                tx.commit().await.map_err(db_err)?;
                Ok(out)
            }

            async fn revocations_since(
                &self,
                after: i64,
                now: UnixTime,
                limit: u32,
            ) -> Result<Vec<Revocation>> {
                let rows = sqlx::query(
                    "SELECT id, kind, subject, at, until FROM revocations WHERE id > $1 AND until > $2 ORDER BY id LIMIT $3",
                )
                .bind(after)
                .bind(t(now))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?;
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    let kind: String = row.try_get("kind").map_err(db_err)?;
                    let subject: String = row.try_get("subject").map_err(db_err)?;
                    let target = match kind.as_str() {
                        "session" => RevocationTarget::Session(sid(&subject)?),
                        "user" => RevocationTarget::User(uid(&subject)?),
                        other => return Err(StoreError::Corrupt(format!("revocation kind {other:?}"))),
                    };
                    out.push(Revocation {
                        id: row.try_get("id").map_err(db_err)?,
                        target,
                        at: ut(row.try_get("at").map_err(db_err)?),
                        until: ut(row.try_get("until").map_err(db_err)?),
                    });
                }
                Ok(out)
            }

            async fn purge_expired(&self, now: UnixTime) -> Result<u64> {
                let mut n = 0;
                // Sessions are kept one day past their end so late reuse is still recognised.
                for q in [
                    "DELETE FROM sessions WHERE expires_at < $1 - 86400",
                    "DELETE FROM revocations WHERE until <= $1",
                    // One-time ceremony state (MFA login tokens, WebAuthn challenges).
                    "DELETE FROM mfa_states WHERE expires_at < $1",
                ] {
                    n += sqlx::query(q).bind(t(now)).execute(&self.pool).await.map_err(db_err)?.rows_affected();
                }
                Ok(n)
            }

            async fn record_once(
                &self,
                kind: ReplayKind,
                id: &[u8; 32],
                expires_at: UnixTime,
                now: UnixTime,
            ) -> Result<bool> {
                // One statement, atomic on both backends: a new id is inserted; an id whose
                // row has expired (not yet purged) takes the row over; a live one is left
                // alone and nothing is affected — a replay.
                let r = sqlx::query(
                    "INSERT INTO replay_ids (kind, id, expires_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (kind, id) DO UPDATE SET expires_at = excluded.expires_at \
                     WHERE replay_ids.expires_at < $4",
                )
                .bind(kind.as_str())
                .bind(&id[..])
                .bind(t(expires_at))
                .bind(t(now))
                .execute(self.replay_pool())
                .await
                .map_err(db_err)?;
                Ok(r.rows_affected() == 1)
            }

            async fn purge_replay_ids(&self, now: UnixTime) -> Result<u64> {
                let r = sqlx::query("DELETE FROM replay_ids WHERE expires_at < $1")
                    .bind(t(now))
                    .execute(&self.pool)
                    .await
                    .map_err(db_err)?;
                Ok(r.rows_affected())
            }

            async fn list_keys(&self) -> Result<Vec<StoredKey>> {
                let rows = sqlx::query(
                    "SELECT kid, alg, created_at, activates_at, retires_at, expires_at, sealed \
                     FROM signing_keys ORDER BY activates_at, created_at",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?;
                rows.iter().map(Self::key_from).collect()
            }

            async fn insert_key(&self, k: &StoredKey) -> Result<()> {
                sqlx::query(
                    "INSERT INTO signing_keys (kid, alg, created_at, activates_at, retires_at, expires_at, sealed) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&k.kid)
                .bind(&k.alg)
                .bind(t(k.created_at))
                .bind(t(k.activates_at))
                .bind(ot(k.retires_at))
                .bind(ot(k.expires_at))
                .bind(&k.sealed)
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
                $notify(&self.pool, "keys").await;
                Ok(())
            }

            async fn update_key_times(
                &self,
                kid: &str,
                retires_at: Option<UnixTime>,
                expires_at: Option<UnixTime>,
            ) -> Result<()> {
                sqlx::query("UPDATE signing_keys SET retires_at = $1, expires_at = $2 WHERE kid = $3")
                    .bind(ot(retires_at))
                    .bind(ot(expires_at))
                    .bind(kid)
                    .execute(&self.pool)
                    .await
                    .map_err(db_err)?;
                $notify(&self.pool, "keys").await;
                Ok(())
            }

            async fn delete_expired_keys(&self, now: UnixTime) -> Result<u64> {
                let r = sqlx::query("DELETE FROM signing_keys WHERE expires_at IS NOT NULL AND expires_at <= $1")
                    .bind(t(now))
                    .execute(&self.pool)
                    .await
                    .map_err(db_err)?;
                Ok(r.rows_affected())
            }

            async fn create_client(&self, c: &StoredClient) -> Result<()> {
                sqlx::query(
                    "INSERT INTO clients (key_id, name, sealed, created_at, disabled) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&c.key_id)
                .bind(&c.name)
                .bind(&c.sealed)
                .bind(t(c.created_at))
                .bind(i64::from(c.disabled))
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
                Ok(())
            }

            async fn client(&self, key_id: &str) -> Result<Option<StoredClient>> {
                let row = sqlx::query("SELECT key_id, name, sealed, created_at, disabled FROM clients WHERE key_id = $1")
                    .bind(key_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db_err)?;
                row.as_ref().map(Self::client_from).transpose()
            }

            async fn list_clients(&self) -> Result<Vec<StoredClient>> {
                let rows = sqlx::query("SELECT key_id, name, sealed, created_at, disabled FROM clients ORDER BY name")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_err)?;
                rows.iter().map(Self::client_from).collect()
            }

            async fn record_audit(&self, e: &AuditEvent) -> Result<()> {
                sqlx::query(
                    "INSERT INTO audit_events (at, kind, username, user_id, session_id, ip, user_agent, detail) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(t(e.at))
                .bind(&e.kind)
                .bind(&e.username)
                .bind(&e.user_id)
                .bind(&e.session_id)
                .bind(&e.ip)
                .bind(&e.user_agent)
                .bind(&e.detail)
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
                Ok(())
            }

            async fn recent_audit(&self, limit: i64) -> Result<Vec<AuditEvent>> {
                let rows = sqlx::query(
                    "SELECT at, kind, username, user_id, session_id, ip, user_agent, detail \
                     FROM audit_events ORDER BY id DESC LIMIT $1",
                )
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?;
                let mut out: Vec<AuditEvent> = rows.iter().map(Self::audit_from).collect::<Result<_>>()?;
                out.reverse();
                Ok(out)
            }

            async fn record_login_failure(&self, user_key: &str, at: UnixTime) -> Result<()> {
                sqlx::query("INSERT INTO login_failures (user_key, at) VALUES ($1, $2)")
                    .bind(user_key)
                    .bind(t(at))
                    .execute(&self.pool)
                    .await
                    .map_err(db_err)?;
                sqlx::query("DELETE FROM login_failures WHERE at < $1")
                    .bind(t(at).saturating_sub(3600))
                    .execute(&self.pool)
                    .await
                    .map_err(db_err)?;
                Ok(())
            }

            async fn login_failures_since(&self, user_key: &str, since: UnixTime) -> Result<u32> {
                let n: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM login_failures WHERE user_key = $1 AND at >= $2",
                )
                .bind(user_key)
                .bind(t(since))
                .fetch_one(&self.pool)
                .await
                .map_err(db_err)?;
                Ok(u32::try_from(n).unwrap_or(u32::MAX))
            }

            async fn put_totp(&self, f: &TotpFactor) -> Result<()> {
                sqlx::query(
                    "INSERT INTO totp_factors (user_id, sealed, confirmed, created_at, last_used_step) \
                     VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (user_id) DO UPDATE SET sealed = excluded.sealed, \
                     confirmed = excluded.confirmed, created_at = excluded.created_at, \
                     last_used_step = excluded.last_used_step",
                )
                .bind(f.user_id.to_string())
                .bind(&f.sealed)
                .bind(i64::from(f.confirmed))
                .bind(t(f.created_at))
                .bind(step_col(f.last_used_step))
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
                Ok(())
            }

            async fn totp(&self, user: UserId) -> Result<Option<TotpFactor>> {
                let row = sqlx::query(
                    "SELECT user_id, sealed, confirmed, created_at, last_used_step FROM totp_factors WHERE user_id = $1",
                )
                .bind(user.to_string())
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
                row.as_ref().map(Self::totp_from).transpose()
            }

            async fn confirm_totp(&self, user: UserId, sealed: &[u8], step: u64) -> Result<bool> {
                let r = sqlx::query(
                    "UPDATE totp_factors SET confirmed = 1, last_used_step = $1 \
                     WHERE user_id = $2 AND sealed = $3 AND confirmed = 0 AND last_used_step < $1",
                )
                .bind(step_col(step))
                .bind(user.to_string())
                .bind(sealed)
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
                Ok(r.rows_affected() == 1)
            }

            async fn use_totp_step(&self, user: UserId, step: u64) -> Result<bool> {
                // The compare-and-set that makes a code single-use across nodes: of two
                // nodes spending the same step, the second matches no row.
                let r = sqlx::query(
                    "UPDATE totp_factors SET last_used_step = $1 \
                     WHERE user_id = $2 AND confirmed = 1 AND last_used_step < $1",
                )
                .bind(step_col(step))
                .bind(user.to_string())
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
                Ok(r.rows_affected() == 1)
            }

            async fn delete_totp(&self, user: UserId) -> Result<bool> {
                let r = sqlx::query("DELETE FROM totp_factors WHERE user_id = $1")
                    .bind(user.to_string())
                    .execute(&self.pool)
                    .await
                    .map_err(db_err)?;
                Ok(r.rows_affected() == 1)
            }

            async fn replace_recovery_codes(&self, user: UserId, hashes: &[[u8; 32]]) -> Result<()> {
                let user = user.to_string();
                let mut tx = self.pool.begin_with($begin).await.map_err(db_err)?;
                sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
                    .bind(&user)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                for h in hashes {
                    sqlx::query("INSERT INTO recovery_codes (user_id, hash) VALUES ($1, $2)")
                        .bind(&user)
                        .bind(&h[..])
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err)?;
                }
                tx.commit().await.map_err(db_err)?;
                Ok(())
            }

            async fn use_recovery_code(&self, user: UserId, hash: &[u8; 32], at: UnixTime) -> Result<bool> {
                let r = sqlx::query(
                    "UPDATE recovery_codes SET used_at = $1 \
                     WHERE user_id = $2 AND hash = $3 AND used_at IS NULL",
                )
                .bind(t(at))
                .bind(user.to_string())
                .bind(&hash[..])
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
                Ok(r.rows_affected() == 1)
            }

            async fn unused_recovery_codes(&self, user: UserId) -> Result<Vec<[u8; 32]>> {
                let rows = sqlx::query("SELECT hash FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL")
                    .bind(user.to_string())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_err)?;
                rows.iter()
                    .map(|row| {
                        let h: Vec<u8> = row.try_get("hash").map_err(db_err)?;
                        hash32(h).ok_or_else(|| StoreError::Corrupt("recovery code hash length".into()))
                    })
                    .collect()
            }

            async fn delete_recovery_codes(&self, user: UserId) -> Result<u64> {
                let r = sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
                    .bind(user.to_string())
                    .execute(&self.pool)
                    .await
                    .map_err(db_err)?;
                Ok(r.rows_affected())
            }

            async fn create_passkey(&self, p: &StoredPasskey) -> Result<()> {
                sqlx::query(
                    "INSERT INTO webauthn_credentials (id, user_id, name, passkey, created_at, last_used_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&p.id)
                .bind(p.user_id.to_string())
                .bind(&p.name)
                .bind(&p.passkey)
                .bind(t(p.created_at))
                .bind(ot(p.last_used_at))
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
                Ok(())
            }

            async fn passkey(&self, id: &str) -> Result<Option<StoredPasskey>> {
                let row = sqlx::query(&format!("SELECT {PASSKEY_COLS} FROM webauthn_credentials WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db_err)?;
                row.as_ref().map(Self::passkey_from).transpose()
            }

            async fn passkeys_of(&self, user: UserId) -> Result<Vec<StoredPasskey>> {
                let rows = sqlx::query(&format!(
                    "SELECT {PASSKEY_COLS} FROM webauthn_credentials WHERE user_id = $1 ORDER BY created_at, id"
                ))
                .bind(user.to_string())
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?;
                rows.iter().map(Self::passkey_from).collect()
            }

            async fn update_passkey_use(&self, user: UserId, id: &str, passkey: &str, at: UnixTime) -> Result<bool> {
                let r = sqlx::query(
                    "UPDATE webauthn_credentials SET passkey = $1, last_used_at = $2 WHERE id = $3 AND user_id = $4",
                )
                .bind(passkey)
                .bind(t(at))
                .bind(id)
                .bind(user.to_string())
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
                Ok(r.rows_affected() == 1)
            }

            async fn delete_passkey(&self, user: UserId, id: &str) -> Result<bool> {
                let r = sqlx::query("DELETE FROM webauthn_credentials WHERE id = $1 AND user_id = $2")
                    .bind(id)
                    .bind(user.to_string())
                    .execute(&self.pool)
                    .await
                    .map_err(db_err)?;
                Ok(r.rows_affected() == 1)
            }

            async fn put_mfa_state(&self, s: &MfaState) -> Result<()> {
                sqlx::query(
                    "INSERT INTO mfa_states (kind, id, user_id, payload, expires_at, failures) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(s.kind.as_str())
                .bind(&s.id[..])
                .bind(s.user_id.map(|u| u.to_string()))
                .bind(&s.payload)
                .bind(t(s.expires_at))
                .bind(i64::from(s.failures))
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
                Ok(())
            }

            async fn peek_mfa_state(&self, kind: MfaStateKind, id: &[u8; 32], now: UnixTime) -> Result<Option<MfaState>> {
                let row = sqlx::query(
                    "SELECT user_id, payload, expires_at, failures FROM mfa_states \
                     WHERE kind = $1 AND id = $2 AND expires_at >= $3",
                )
                .bind(kind.as_str())
                .bind(&id[..])
                .bind(t(now))
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
                row.as_ref().map(|r| Self::mfa_state_from(kind, id, r)).transpose()
            }

            async fn take_mfa_state(&self, kind: MfaStateKind, id: &[u8; 32], now: UnixTime) -> Result<Option<MfaState>> {
                // One statement: of two nodes taking the same state, one deletes the row
                // and gets it back, the other matches nothing. An expired row is deleted
                // too (it is worthless) but not returned.
                let row = sqlx::query(
                    "DELETE FROM mfa_states WHERE kind = $1 AND id = $2 \
                     RETURNING user_id, payload, expires_at, failures",
                )
                .bind(kind.as_str())
                .bind(&id[..])
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
                let state = row.as_ref().map(|r| Self::mfa_state_from(kind, id, r)).transpose()?;
                Ok(state.filter(|s| s.expires_at >= now))
            }

            async fn record_mfa_state_failure(&self, kind: MfaStateKind, id: &[u8; 32], limit: u32) -> Result<u32> {
                let n: Option<i64> = sqlx::query_scalar(
                    "UPDATE mfa_states SET failures = failures + 1 WHERE kind = $1 AND id = $2 RETURNING failures",
                )
                .bind(kind.as_str())
                .bind(&id[..])
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
                let Some(n) = n else { return Ok(0) };
                if n >= i64::from(limit) {
                    sqlx::query("DELETE FROM mfa_states WHERE kind = $1 AND id = $2 AND failures >= $3")
                        .bind(kind.as_str())
                        .bind(&id[..])
                        .bind(i64::from(limit))
                        .execute(&self.pool)
                        .await
                        .map_err(db_err)?;
                }
                Ok(u32::try_from(n).unwrap_or(u32::MAX))
            }
        }
    };
}

async fn no_notify(_: &SqlitePool, _: &str) {}

async fn pg_notify(pool: &PgPool, what: &str) {
    // Best effort: nodes also poll, so a lost notification only delays the pick-up.
    let _ = sqlx::query("SELECT pg_notify('tessera_keys', $1)")
        .bind(what)
        .execute(pool)
        .await;
}

/// SQLite write transactions take the write lock when they begin. A deferred transaction
/// that reads and then writes (rotation, revoke_user) cannot be retried by the busy
/// handler once another connection has written in between: SQLite answers
/// `SQLITE_BUSY`/`SQLITE_BUSY_SNAPSHOT` ("database is locked") at once, whatever the
/// busy_timeout. With `BEGIN IMMEDIATE` writers queue on the busy_timeout instead.
const SQLITE_BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

impl_store!(
    SqliteStore,
    sqlx::Sqlite,
    sqlx::sqlite::SqliteRow,
    no_notify,
    SQLITE_BEGIN_WRITE,
    None
);
impl_store!(
    PgStore,
    sqlx::Postgres,
    sqlx::postgres::PgRow,
    pg_notify,
    "BEGIN",
    Some("tessera_revocations")
);
