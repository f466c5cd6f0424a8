//! One behavioural suite for the [`Store`] trait, instantiated for every backend.
//!
//! `store_tests!` expands each case in [`cases`] into a `#[tokio::test]` per backend:
//!
//! * `sqlite::*` runs against a fresh temp-file database per test;
//! * `postgres::*` creates a fresh database per test (`tessera_t_<hex>`) on the server at
//!   `TESSERA_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`) and drops
//!   it afterwards. If PostgreSQL cannot be reached the test prints
//!   `POSTGRESQL TESTS DID NOT RUN: <reason>` and passes, unless `TESSERA_REQUIRE_POSTGRES=1`,
//!   in which case it fails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use tessera_store::Store;

/// What a case gets: the store under test and the URL it was opened with.
pub struct Ctx {
    store: Arc<dyn Store>,
    url: String,
}

/// Expands every listed case into a `#[tokio::test]` that runs it on the store made by
/// `$setup` (an `async fn() -> Option<(Ctx, Guard)>`; `None` means "skipped").
macro_rules! store_tests {
    ($setup:path; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let Some((cx, guard)) = $setup().await else {
                    return;
                };
                $crate::cases::$case(cx).await;
                drop(guard);
            }
        )+
    };
}

/// Instantiates the whole suite for one backend.
macro_rules! all_store_tests {
    ($setup:path) => {
        store_tests!($setup;
            ping,
            reopen_keeps_data,
            users,
            sessions,
            rotation_fresh_then_repeat_within_grace,
            rotation_reuse_after_grace_revokes_session,
            rotation_grace_zero_is_immediate_reuse,
            rotation_mismatched_successor_is_reuse,
            rotation_grandparent_within_grace_is_reuse,
            rotation_idle_limit_ends,
            rotation_session_expired_ends,
            rotation_unknown_hash_not_found,
            rotation_revoked_session_ends,
            concurrent_rotation_same_token,
            concurrent_rotation_grace_zero,
            revocation_feed,
            purge_expired_sessions,
            keys,
            clients,
            audit,
            replay_ids_once_across_handles,
            replay_ids_concurrent_claims,
            login_failures,
            totp_factor_lifecycle,
            totp_step_once_across_handles,
            totp_step_concurrent_spends,
            recovery_codes_single_use,
            recovery_code_concurrent_spends,
            passkeys,
            mfa_state_take_once_across_handles,
            mfa_state_concurrent_takes,
            mfa_state_failures_and_purge,
        );
    };
}

mod sqlite {
    use std::sync::Arc;

    use tempfile::TempDir;
    use tessera_store::SqliteStore;

    use super::Ctx;

    async fn setup() -> Option<(Ctx, TempDir)> {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("tessera.db").display());
        let store = SqliteStore::open(&url).await.expect("open SQLite store");
        Some((
            Ctx {
                store: Arc::new(store),
                url,
            },
            dir,
        ))
    }

    all_store_tests!(setup);
}

mod postgres {
    use std::io::Write;
    use std::str::FromStr;
    use std::sync::Arc;
    use std::time::Duration;

    use sqlx::postgres::PgConnectOptions;
    use sqlx::{ConnectOptions, Connection, Executor};
    use tessera_store::PgStore;

    use super::Ctx;

    const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

    /// A database made for one test; dropped (best effort) when this is dropped.
    pub(crate) struct TempDb {
        admin: PgConnectOptions,
        name: String,
    }

    impl Drop for TempDb {
        fn drop(&mut self) {
            // Drop cannot await, and we may be inside a runtime: use a thread of our own.
            let admin = self.admin.clone();
            let name = self.name.clone();
            let dropped = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(async {
                    let mut conn = admin.connect().await.ok()?;
                    // FORCE (PostgreSQL 13+) ends the store's pooled connections.
                    let forced = conn
                        .execute(
                            format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str(),
                        )
                        .await;
                    if forced.is_err() {
                        conn.execute(format!("DROP DATABASE IF EXISTS \"{name}\"").as_str())
                            .await
                            .ok()?;
                    }
                    conn.close().await.ok()
                })
            })
            .join();
            if !matches!(dropped, Ok(Some(()))) {
                eprintln!("warning: could not drop test database {}", self.name);
            }
        }
    }

    /// Skips (or, with `TESSERA_REQUIRE_POSTGRES=1`, fails) a test that cannot reach PostgreSQL.
    fn unreachable(reason: String) -> Option<(Ctx, TempDb)> {
        if std::env::var("TESSERA_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
            panic!("TESSERA_REQUIRE_POSTGRES=1 but PostgreSQL is not usable: {reason}");
        }
        // Straight to the process's stderr: libtest would swallow `eprintln!` of a passing test.
        let _ = writeln!(std::io::stderr(), "POSTGRESQL TESTS DID NOT RUN: {reason}");
        None
    }

    /// `base` with its database name replaced by `db` (query parameters kept).
    fn with_database(base: &str, db: &str) -> String {
        let (main, query) = match base.split_once('?') {
            Some((m, q)) => (m, Some(q)),
            None => (base, None),
        };
        let authority = main.find("://").map_or(0, |i| i + 3);
        let path = main[authority..]
            .find('/')
            .map_or(main.len(), |i| authority + i);
        let mut url = format!("{}/{db}", &main[..path]);
        if let Some(q) = query {
            url.push('?');
            url.push_str(q);
        }
        url
    }

    async fn setup() -> Option<(Ctx, TempDb)> {
        let base = std::env::var("TESSERA_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
        let admin = match PgConnectOptions::from_str(&base) {
            Ok(o) => o,
            Err(e) => return unreachable(format!("bad TESSERA_TEST_PG_URL {base:?}: {e}")),
        };
        let mut conn = match tokio::time::timeout(Duration::from_secs(10), admin.connect()).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return unreachable(format!("cannot connect to {base}: {e}")),
            Err(_) => return unreachable(format!("connecting to {base} timed out")),
        };
        let hex: String = tessera_core::random_bytes::<8>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let name = format!("tessera_t_{hex}");
        if let Err(e) = conn
            .execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await
        {
            return unreachable(format!("cannot CREATE DATABASE on {base}: {e}"));
        }
        let _ = conn.close().await;
        let db = TempDb { admin, name };
        let url = with_database(&base, &db.name);
        // From here on a failure is a real one: the server works, the store does not.
        let store = PgStore::open(&url).await.expect("open PostgreSQL store");
        Some((
            Ctx {
                store: Arc::new(store),
                url,
            },
            db,
        ))
    }

    #[test]
    fn with_database_replaces_only_the_path() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
        assert_eq!(
            with_database("postgresql://u:p@h/db?sslmode=disable", "x"),
            "postgresql://u:p@h/x?sslmode=disable"
        );
    }

    all_store_tests!(setup);
}

#[tokio::test]
async fn open_rejects_unknown_scheme() {
    let err = tessera_store::open("mysql://localhost/x")
        .await
        .err()
        .expect("must fail");
    assert!(
        matches!(err, tessera_store::StoreError::Setup(_)),
        "{err:?}"
    );
}

/// The cases, each written once against `dyn Store`.
mod cases {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use tessera_core::{refresh, SessionId, UnixTime, UserId};
    use tessera_store::{
        AuditEvent, MfaState, MfaStateKind, ReplayKind, Revocation, RevocationTarget,
        RotateOutcome, Rotation, Session, Store, StoreError, StoredClient, StoredKey,
        StoredPasskey, TotpFactor, User,
    };

    use super::Ctx;

    /// A fixed "now" for the start of every scenario.
    const T0: UnixTime = UnixTime(1_700_000_000);
    /// How long a reuse revocation is kept in the feed.
    const REVOKE_FOR: u64 = 900;
    const HASH: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$c2VjcmV0c2FsdA$U0VDUkVULUhBU0gtRE8tTk9ULVBSSU5U";

    fn at(secs: u64) -> UnixTime {
        T0.plus(secs)
    }

    fn h(label: &str) -> [u8; 32] {
        refresh::hash(label)
    }

    fn user(name: &str) -> User {
        User {
            id: UserId::random(),
            username: name.to_owned(),
            password_hash: HASH.to_owned(),
            roles: vec!["ops".to_owned(), "admin".to_owned()],
            created_at: T0,
            disabled: false,
        }
    }

    fn session(user: UserId, created: UnixTime, expires: UnixTime) -> Session {
        Session {
            id: SessionId::random(),
            user_id: user,
            created_at: created,
            expires_at: expires,
            revoked_at: None,
            dpop_jkt: None,
            client: "browser".to_owned(),
        }
    }

    fn rotation(from: &str, to: &str, now: UnixTime, grace: u64, idle_ttl: u64) -> Rotation {
        Rotation {
            hash: h(from),
            successor_hash: h(to),
            now,
            grace,
            idle_ttl,
            revoke_until: now.plus(REVOKE_FOR),
        }
    }

    /// A user with one session (created at T0, ending at T0 + 1 day) whose first refresh
    /// token is `first`.
    async fn login(store: &dyn Store, name: &str, first: &str) -> (User, Session) {
        let u = user(name);
        store.create_user(&u).await.unwrap();
        let s = session(u.id, T0, at(86_400));
        store.create_session(&s, &h(first)).await.unwrap();
        (u, s)
    }

    fn assert_rotated(out: &RotateOutcome, s: &Session, want_repeated: bool) {
        match out {
            RotateOutcome::Rotated { session, repeated } => {
                assert_eq!(session.id, s.id);
                assert_eq!(session.revoked_at, None);
                assert_eq!(*repeated, want_repeated, "{out:?}");
            }
            other => panic!("expected Rotated {{ repeated: {want_repeated} }}, got {other:?}"),
        }
    }

    fn assert_reused(out: &RotateOutcome, s: &Session) {
        match out {
            RotateOutcome::Reused { session } => assert_eq!(session.id, s.id),
            other => panic!("expected Reused, got {other:?}"),
        }
    }

    /// The feed entries (from the start, still relevant at `now`) that target session `id`.
    async fn feed_for(store: &dyn Store, id: SessionId, now: UnixTime) -> Vec<Revocation> {
        store
            .revocations_since(0, now, 1000)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.target == RevocationTarget::Session(id))
            .collect()
    }

    async fn revoked_at(store: &dyn Store, id: SessionId) -> Option<UnixTime> {
        store
            .session(id)
            .await
            .unwrap()
            .expect("session exists")
            .revoked_at
    }

    pub(crate) async fn ping(cx: Ctx) {
        cx.store.ping().await.unwrap();
    }

    pub(crate) async fn reopen_keeps_data(cx: Ctx) {
        let u = user("persisted");
        cx.store.create_user(&u).await.unwrap();
        // A second open of the same database (through the URL dispatcher) re-runs the
        // migrations, which must be a no-op, and sees the same rows.
        let again = tessera_store::open(&cx.url).await.unwrap();
        assert_eq!(again.user_by_name("persisted").await.unwrap(), Some(u));
    }

    pub(crate) async fn users(cx: Ctx) {
        let store = &*cx.store;
        let mut charlie = user("charlie");
        charlie.roles = vec!["zeta".to_owned(), "alpha".to_owned(), "mid".to_owned()];
        charlie.disabled = true;
        let alice = user("alice");
        let mut bob = user("bob");
        bob.roles = Vec::new();
        bob.created_at = at(5);
        for u in [&charlie, &alice, &bob] {
            store.create_user(u).await.unwrap();
        }

        // Duplicate username (new id) and duplicate id (new name) are both conflicts.
        let dup_name = user("alice");
        assert!(matches!(
            store.create_user(&dup_name).await,
            Err(StoreError::Conflict)
        ));
        let mut dup_id = user("alice2");
        dup_id.id = alice.id;
        assert!(matches!(
            store.create_user(&dup_id).await,
            Err(StoreError::Conflict)
        ));
        assert_eq!(store.user_by_name("alice2").await.unwrap(), None);

        // Lookups round-trip every field, roles in their order, disabled flag included.
        assert_eq!(
            store.user_by_name("alice").await.unwrap(),
            Some(alice.clone())
        );
        assert_eq!(
            store.user_by_name("charlie").await.unwrap(),
            Some(charlie.clone())
        );
        assert_eq!(
            store.user_by_name("ALICE").await.unwrap(),
            None,
            "usernames are exact"
        );
        assert_eq!(store.user_by_name("nobody").await.unwrap(), None);
        assert_eq!(store.user_by_id(bob.id).await.unwrap(), Some(bob.clone()));
        assert_eq!(store.user_by_id(UserId::random()).await.unwrap(), None);
        let got_charlie = store.user_by_id(charlie.id).await.unwrap().unwrap();
        assert_eq!(got_charlie.roles, ["zeta", "alpha", "mid"]);
        assert!(got_charlie.disabled);
        assert!(store
            .user_by_id(bob.id)
            .await
            .unwrap()
            .unwrap()
            .roles
            .is_empty());

        // Listed by username, whatever the insertion order.
        let names: Vec<String> = store
            .list_users()
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.username)
            .collect();
        assert_eq!(names, ["alice", "bob", "charlie"]);
        assert_eq!(
            store.list_users().await.unwrap(),
            [alice.clone(), bob.clone(), charlie.clone()]
        );

        // Password change touches only that user.
        let new_hash = "$argon2id$v=19$m=19456,t=2,p=1$bmV3c2FsdA$TkVXLUhBU0g";
        assert!(store.set_password_hash(alice.id, new_hash).await.unwrap());
        assert!(!store
            .set_password_hash(UserId::random(), new_hash)
            .await
            .unwrap());
        let got = store.user_by_id(alice.id).await.unwrap().unwrap();
        assert_eq!(got.password_hash, new_hash);
        assert_eq!(got.roles, alice.roles);
        assert_eq!(
            store
                .user_by_id(bob.id)
                .await
                .unwrap()
                .unwrap()
                .password_hash,
            HASH
        );

        // Debug never prints the hash.
        let dbg = format!("{got:?} {alice:?}");
        assert!(!dbg.contains(HASH), "{dbg}");
        assert!(!dbg.contains(new_hash), "{dbg}");
        assert!(!dbg.contains("argon2"), "{dbg}");
        assert!(dbg.contains("alice") && dbg.contains("[redacted]"), "{dbg}");
    }

    pub(crate) async fn sessions(cx: Ctx) {
        let store = &*cx.store;
        let u = user("alice");
        store.create_user(&u).await.unwrap();
        let mut s1 = session(u.id, T0, at(3600));
        s1.dpop_jkt = Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".to_owned());
        s1.client = "api".to_owned();
        let s2 = session(u.id, at(1), at(7200));
        store.create_session(&s1, &h("s1-0")).await.unwrap();
        store.create_session(&s2, &h("s2-0")).await.unwrap();

        assert_eq!(store.session(s1.id).await.unwrap(), Some(s1.clone()));
        assert_eq!(store.session(s2.id).await.unwrap(), Some(s2.clone()));
        assert_eq!(store.session(SessionId::random()).await.unwrap(), None);

        assert_eq!(
            store.session_for_refresh(&h("s1-0")).await.unwrap(),
            Some(s1.clone())
        );
        assert_eq!(
            store.session_for_refresh(&h("s2-0")).await.unwrap(),
            Some(s2.clone())
        );

        // After two rotations the session is found by its current and by both retired tokens.
        let r = store
            .rotate_refresh_token(&rotation("s1-0", "s1-1", at(10), 10, 3600))
            .await
            .unwrap();
        assert_rotated(&r, &s1, false);
        let r = store
            .rotate_refresh_token(&rotation("s1-1", "s1-2", at(20), 10, 3600))
            .await
            .unwrap();
        assert_rotated(&r, &s1, false);
        for tok in ["s1-0", "s1-1", "s1-2"] {
            assert_eq!(
                store.session_for_refresh(&h(tok)).await.unwrap(),
                Some(s1.clone()),
                "{tok}"
            );
        }
        assert_eq!(
            store.session_for_refresh(&h("s2-0")).await.unwrap(),
            Some(s2.clone())
        );
        assert_eq!(
            store.session_for_refresh(&h("unknown")).await.unwrap(),
            None
        );
        assert_eq!(store.session_for_refresh(&[0u8; 32]).await.unwrap(), None);
    }

    pub(crate) async fn rotation_fresh_then_repeat_within_grace(cx: Ctx) {
        let store = &*cx.store;
        let (_, s) = login(store, "alice", "t0").await;
        let first = store
            .rotate_refresh_token(&rotation("t0", "t1", at(60), 10, 3600))
            .await
            .unwrap();
        assert_rotated(&first, &s, false);
        // Racing tab: same old token, same successor, within the grace (inclusive).
        for now in [at(60), at(65), at(70)] {
            let again = store
                .rotate_refresh_token(&rotation("t0", "t1", now, 10, 3600))
                .await
                .unwrap();
            assert_rotated(&again, &s, true);
        }
        // The successor is current: it rotates normally.
        let next = store
            .rotate_refresh_token(&rotation("t1", "t2", at(71), 10, 3600))
            .await
            .unwrap();
        assert_rotated(&next, &s, false);
        assert_eq!(revoked_at(store, s.id).await, None);
        assert!(feed_for(store, s.id, at(71)).await.is_empty());
    }

    pub(crate) async fn rotation_reuse_after_grace_revokes_session(cx: Ctx) {
        let store = &*cx.store;
        let (_, s) = login(store, "alice", "t0").await;
        let (_, other) = login(store, "bob", "b0").await;
        let r = store
            .rotate_refresh_token(&rotation("t0", "t1", at(60), 10, 3600))
            .await
            .unwrap();
        assert_rotated(&r, &s, false);

        let reuse = store
            .rotate_refresh_token(&rotation("t0", "t1", at(71), 10, 3600))
            .await
            .unwrap();
        assert_reused(&reuse, &s);
        assert_eq!(revoked_at(store, s.id).await, Some(at(71)));
        assert_eq!(
            feed_for(store, s.id, at(71))
                .await
                .iter()
                .map(|r| (r.at, r.until))
                .collect::<Vec<_>>(),
            [(at(71), at(71 + REVOKE_FOR))]
        );

        // The whole family is dead: the current token no longer rotates, the stolen one
        // neither, and no second feed entry is written.
        let cur = store
            .rotate_refresh_token(&rotation("t1", "t2", at(72), 10, 3600))
            .await
            .unwrap();
        assert_eq!(cur, RotateOutcome::Ended);
        let old = store
            .rotate_refresh_token(&rotation("t0", "t1", at(73), 10, 3600))
            .await
            .unwrap();
        assert_eq!(old, RotateOutcome::Ended);
        assert_eq!(feed_for(store, s.id, at(73)).await.len(), 1);
        assert_eq!(revoked_at(store, s.id).await, Some(at(71)));

        // Other users' sessions are untouched.
        assert_eq!(revoked_at(store, other.id).await, None);
        let b = store
            .rotate_refresh_token(&rotation("b0", "b1", at(74), 10, 3600))
            .await
            .unwrap();
        assert_rotated(&b, &other, false);
    }

    pub(crate) async fn rotation_grace_zero_is_immediate_reuse(cx: Ctx) {
        let store = &*cx.store;
        let (_, s) = login(store, "alice", "t0").await;
        let r = store
            .rotate_refresh_token(&rotation("t0", "t1", at(60), 0, 3600))
            .await
            .unwrap();
        assert_rotated(&r, &s, false);
        // Same instant, same successor: with no grace this is already reuse.
        let again = store
            .rotate_refresh_token(&rotation("t0", "t1", at(60), 0, 3600))
            .await
            .unwrap();
        assert_reused(&again, &s);
        assert_eq!(revoked_at(store, s.id).await, Some(at(60)));
        assert_eq!(feed_for(store, s.id, at(60)).await.len(), 1);
    }

    pub(crate) async fn rotation_mismatched_successor_is_reuse(cx: Ctx) {
        let store = &*cx.store;
        let (_, s) = login(store, "alice", "t0").await;
        let r = store
            .rotate_refresh_token(&rotation("t0", "t1", at(60), 10, 3600))
            .await
            .unwrap();
        assert_rotated(&r, &s, false);
        // Within the grace, but claiming a different successor: not a racing tab.
        let other = store
            .rotate_refresh_token(&rotation("t0", "forged", at(61), 10, 3600))
            .await
            .unwrap();
        assert_reused(&other, &s);
        assert_eq!(revoked_at(store, s.id).await, Some(at(61)));
        assert_eq!(store.session_for_refresh(&h("forged")).await.unwrap(), None);
    }

    pub(crate) async fn rotation_grandparent_within_grace_is_reuse(cx: Ctx) {
        let store = &*cx.store;
        let (_, s) = login(store, "alice", "t0").await;
        assert_rotated(
            &store
                .rotate_refresh_token(&rotation("t0", "t1", at(60), 10, 3600))
                .await
                .unwrap(),
            &s,
            false,
        );
        assert_rotated(
            &store
                .rotate_refresh_token(&rotation("t1", "t2", at(61), 10, 3600))
                .await
                .unwrap(),
            &s,
            false,
        );
        // The predecessor of the current token is still graced...
        assert_rotated(
            &store
                .rotate_refresh_token(&rotation("t1", "t2", at(62), 10, 3600))
                .await
                .unwrap(),
            &s,
            true,
        );
        assert_eq!(revoked_at(store, s.id).await, None);
        // ...but its predecessor is not, even well within the grace.
        let gp = store
            .rotate_refresh_token(&rotation("t0", "t1", at(62), 10, 3600))
            .await
            .unwrap();
        assert_reused(&gp, &s);
        assert_eq!(revoked_at(store, s.id).await, Some(at(62)));
        assert_eq!(feed_for(store, s.id, at(62)).await.len(), 1);
    }

    pub(crate) async fn rotation_idle_limit_ends(cx: Ctx) {
        let store = &*cx.store;
        let (_, s) = login(store, "alice", "t0").await; // t0 issued at T0
                                                        // Idle for exactly idle_ttl: ended, and nothing changes.
        let idle = store
            .rotate_refresh_token(&rotation("t0", "t1", at(100), 10, 100))
            .await
            .unwrap();
        assert_eq!(idle, RotateOutcome::Ended);
        assert_eq!(
            store.session_for_refresh(&h("t1")).await.unwrap(),
            None,
            "no successor stored"
        );
        assert_eq!(
            revoked_at(store, s.id).await,
            None,
            "idle expiry is not a revocation"
        );
        assert!(feed_for(store, s.id, at(100)).await.is_empty());
        // The idle limit counts from the token's issue, not the session's start.
        let ok = store
            .rotate_refresh_token(&rotation("t0", "t1", at(99), 10, 100))
            .await
            .unwrap();
        assert_rotated(&ok, &s, false);
        let ok = store
            .rotate_refresh_token(&rotation("t1", "t2", at(198), 10, 100))
            .await
            .unwrap();
        assert_rotated(&ok, &s, false);
        let idle = store
            .rotate_refresh_token(&rotation("t2", "t3", at(298), 10, 100))
            .await
            .unwrap();
        assert_eq!(idle, RotateOutcome::Ended);
    }

    pub(crate) async fn rotation_session_expired_ends(cx: Ctx) {
        let store = &*cx.store;
        let u = user("alice");
        store.create_user(&u).await.unwrap();
        let s = session(u.id, T0, at(1000));
        store.create_session(&s, &h("t0")).await.unwrap();
        let ok = store
            .rotate_refresh_token(&rotation("t0", "t1", at(999), 10, 3600))
            .await
            .unwrap();
        assert_rotated(&ok, &s, false);
        for now in [at(1000), at(5000)] {
            let end = store
                .rotate_refresh_token(&rotation("t1", "t2", now, 10, 3600))
                .await
                .unwrap();
            assert_eq!(end, RotateOutcome::Ended, "at {now:?}");
            // A retired token after the end is not "reuse" either.
            let old = store
                .rotate_refresh_token(&rotation("t0", "t1", now, 10, 3600))
                .await
                .unwrap();
            assert_eq!(old, RotateOutcome::Ended, "at {now:?}");
        }
        assert_eq!(revoked_at(store, s.id).await, None);
    }

    pub(crate) async fn rotation_unknown_hash_not_found(cx: Ctx) {
        let store = &*cx.store;
        let (_, s) = login(store, "alice", "t0").await;
        let nf = store
            .rotate_refresh_token(&rotation("nope", "nope2", at(10), 10, 3600))
            .await
            .unwrap();
        assert_eq!(nf, RotateOutcome::NotFound);
        assert_eq!(store.session_for_refresh(&h("nope2")).await.unwrap(), None);
        assert_eq!(revoked_at(store, s.id).await, None);
    }

    pub(crate) async fn rotation_revoked_session_ends(cx: Ctx) {
        let store = &*cx.store;
        let (_, s) = login(store, "alice", "t0").await;
        assert!(store.revoke_session(s.id, at(5), at(905)).await.unwrap());
        let end = store
            .rotate_refresh_token(&rotation("t0", "t1", at(10), 10, 3600))
            .await
            .unwrap();
        assert_eq!(end, RotateOutcome::Ended);
        assert_eq!(store.session_for_refresh(&h("t1")).await.unwrap(), None);
        assert_eq!(revoked_at(store, s.id).await, Some(at(5)));
        assert_eq!(feed_for(store, s.id, at(10)).await.len(), 1);
    }

    /// Runs `n` rotations of the same token at once and returns their outcomes.
    async fn race(store: &Arc<dyn Store>, n: usize, rot: &Rotation) -> Vec<RotateOutcome> {
        let barrier = Arc::new(tokio::sync::Barrier::new(n));
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let store = Arc::clone(store);
                let barrier = Arc::clone(&barrier);
                let rot = rot.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.rotate_refresh_token(&rot).await
                })
            })
            .collect();
        let mut out = Vec::with_capacity(n);
        for t in tasks {
            match t.await.expect("task panicked") {
                Ok(o) => out.push(o),
                Err(e) => {
                    panic!("concurrent rotation failed: {e:?} (e.g. SQLite 'database is locked')")
                }
            }
        }
        out
    }

    pub(crate) async fn concurrent_rotation_same_token(cx: Ctx) {
        let (_, s) = login(&*cx.store, "alice", "t0").await;
        let out = race(&cx.store, 10, &rotation("t0", "t1", at(60), 10, 3600)).await;
        let fresh = out
            .iter()
            .filter(|o| {
                matches!(
                    o,
                    RotateOutcome::Rotated {
                        repeated: false,
                        ..
                    }
                )
            })
            .count();
        let repeat = out
            .iter()
            .filter(|o| matches!(o, RotateOutcome::Rotated { repeated: true, .. }))
            .count();
        assert_eq!((fresh, repeat), (1, 9), "{out:#?}");
        for o in &out {
            assert_rotated(
                o,
                &s,
                matches!(o, RotateOutcome::Rotated { repeated: true, .. }),
            );
        }
        let store = &*cx.store;
        assert_eq!(revoked_at(store, s.id).await, None);
        assert!(feed_for(store, s.id, at(60)).await.is_empty());
        // Exactly one successor was made current, and it rotates on.
        let next = store
            .rotate_refresh_token(&rotation("t1", "t2", at(61), 10, 3600))
            .await
            .unwrap();
        assert_rotated(&next, &s, false);
    }

    pub(crate) async fn concurrent_rotation_grace_zero(cx: Ctx) {
        let (_, s) = login(&*cx.store, "alice", "t0").await;
        let out = race(&cx.store, 10, &rotation("t0", "t1", at(60), 0, 3600)).await;
        // Without a grace, everyone but the winner presented a retired token: reuse (or,
        // once the family is revoked, ended). Never a repeated success.
        let fresh = out
            .iter()
            .filter(|o| {
                matches!(
                    o,
                    RotateOutcome::Rotated {
                        repeated: false,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(fresh, 1, "{out:#?}");
        assert!(
            out.iter().all(|o| matches!(
                o,
                RotateOutcome::Rotated {
                    repeated: false,
                    ..
                } | RotateOutcome::Reused { .. }
                    | RotateOutcome::Ended
            )),
            "{out:#?}"
        );
        assert!(
            out.iter()
                .any(|o| matches!(o, RotateOutcome::Reused { .. })),
            "{out:#?}"
        );
        let store = &*cx.store;
        assert_eq!(revoked_at(store, s.id).await, Some(at(60)));
        assert_eq!(
            feed_for(store, s.id, at(60)).await.len(),
            1,
            "one feed entry per revocation"
        );
    }

    pub(crate) async fn revocation_feed(cx: Ctx) {
        let store = &*cx.store;
        let u1 = user("alice");
        let u2 = user("bob");
        store.create_user(&u1).await.unwrap();
        store.create_user(&u2).await.unwrap();
        let far = at(100_000);
        let s1 = session(u1.id, T0, far);
        let s2 = session(u1.id, T0, far);
        let s3 = session(u1.id, T0, far);
        let s4 = session(u1.id, T0, at(10)); // already over when the user is revoked
        let t1 = session(u2.id, T0, far);
        for (s, tok) in [
            (&s1, "s1"),
            (&s2, "s2"),
            (&s3, "s3"),
            (&s4, "s4"),
            (&t1, "t1"),
        ] {
            store.create_session(s, &h(tok)).await.unwrap();
        }

        assert!(store
            .revocations_since(0, T0, 1000)
            .await
            .unwrap()
            .is_empty());

        // revoke_session: true once, then false; false for an unknown session.
        assert!(store.revoke_session(s3.id, at(50), at(950)).await.unwrap());
        assert!(!store.revoke_session(s3.id, at(60), at(960)).await.unwrap());
        assert!(!store
            .revoke_session(SessionId::random(), at(60), at(960))
            .await
            .unwrap());
        assert_eq!(revoked_at(store, s3.id).await, Some(at(50)));

        // revoke_user: the user's live sessions only.
        let got: BTreeSet<SessionId> = store
            .revoke_user(u1.id, at(100), at(1000))
            .await
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(got, BTreeSet::from([s1.id, s2.id]));
        assert_eq!(revoked_at(store, s1.id).await, Some(at(100)));
        assert_eq!(revoked_at(store, s2.id).await, Some(at(100)));
        assert_eq!(
            revoked_at(store, s3.id).await,
            Some(at(50)),
            "earlier revocation kept"
        );
        assert_eq!(
            revoked_at(store, s4.id).await,
            None,
            "ended session not revoked"
        );
        assert_eq!(revoked_at(store, t1.id).await, None, "other user untouched");

        let feed = store.revocations_since(0, at(100), 1000).await.unwrap();
        assert_eq!(feed.len(), 4, "{feed:#?}");
        assert!(
            feed.windows(2).all(|w| w[0].id < w[1].id),
            "in id order: {feed:#?}"
        );
        assert_eq!(
            (feed[0].target, feed[0].at, feed[0].until),
            (RevocationTarget::Session(s3.id), at(50), at(950))
        );
        for sid in [s1.id, s2.id] {
            let want = (RevocationTarget::Session(sid), at(100), at(1000));
            assert_eq!(
                feed[1..3]
                    .iter()
                    .filter(|r| (r.target, r.at, r.until) == want)
                    .count(),
                1,
                "{feed:#?}"
            );
        }
        assert_eq!(
            (feed[3].target, feed[3].at, feed[3].until),
            (RevocationTarget::User(u1.id), at(100), at(1000))
        );

        // The cursor is exclusive.
        assert_eq!(
            store
                .revocations_since(feed[0].id, at(100), 1000)
                .await
                .unwrap(),
            feed[1..]
        );
        // Paging with the last id of each page walks the same feed.
        let mut paged = Vec::new();
        let mut after = 0;
        loop {
            let page = store.revocations_since(after, at(100), 3).await.unwrap();
            assert!(page.len() <= 3);
            let Some(last) = page.last() else { break };
            after = last.id;
            paged.extend(page);
        }
        assert_eq!(paged, feed);
        assert_eq!(
            store
                .revocations_since(feed[2].id, at(100), 1000)
                .await
                .unwrap(),
            feed[3..]
        );
        assert!(store
            .revocations_since(feed[3].id, at(100), 1000)
            .await
            .unwrap()
            .is_empty());

        // Revoking a user with no live sessions still records the user entry.
        assert!(store
            .revoke_user(u1.id, at(110), at(1010))
            .await
            .unwrap()
            .is_empty());
        let more = store
            .revocations_since(feed[3].id, at(110), 1000)
            .await
            .unwrap();
        assert_eq!(more.len(), 1);
        assert_eq!(
            (more[0].target, more[0].until),
            (RevocationTarget::User(u1.id), at(1010))
        );
        assert!(more[0].id > feed[3].id);

        // Entries whose `until` has come are omitted.
        assert!(store.revoke_session(t1.id, at(200), at(300)).await.unwrap());
        let t1_entry = |v: &[Revocation]| {
            v.iter()
                .any(|r| r.target == RevocationTarget::Session(t1.id))
        };
        assert!(t1_entry(
            &store.revocations_since(0, at(299), 1000).await.unwrap()
        ));
        let at300 = store.revocations_since(0, at(300), 1000).await.unwrap();
        assert!(!t1_entry(&at300), "until == now is over");
        assert_eq!(at300.len(), 5);
        let at950 = store.revocations_since(0, at(950), 1000).await.unwrap();
        assert!(at950.iter().all(|r| r.until > at(950)), "{at950:#?}");
        assert_eq!(at950.len(), 4);
        assert!(store
            .revocations_since(0, at(1010), 1000)
            .await
            .unwrap()
            .is_empty());

        // purge_expired deletes exactly what revocations_since no longer returns.
        assert_eq!(store.purge_expired(at(300)).await.unwrap(), 1);
        let all = store.revocations_since(0, UnixTime(0), 1000).await.unwrap();
        assert_eq!(all.len(), 5);
        assert!(!t1_entry(&all));
        assert_eq!(store.purge_expired(at(300)).await.unwrap(), 0);
        assert_eq!(store.purge_expired(at(1000)).await.unwrap(), 4);
        let left = store.revocations_since(0, UnixTime(0), 1000).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].target, RevocationTarget::User(u1.id));
        // No session was old enough to purge.
        for s in [&s1, &s2, &s3, &s4, &t1] {
            assert!(store.session(s.id).await.unwrap().is_some());
        }
    }

    pub(crate) async fn purge_expired_sessions(cx: Ctx) {
        let store = &*cx.store;
        let u = user("alice");
        store.create_user(&u).await.unwrap();
        let old = session(u.id, T0, at(10));
        let live = session(u.id, T0, at(200_000));
        store.create_session(&old, &h("old-0")).await.unwrap();
        store.create_session(&live, &h("live-0")).await.unwrap();
        assert_rotated(
            &store
                .rotate_refresh_token(&rotation("old-0", "old-1", at(5), 10, 3600))
                .await
                .unwrap(),
            &old,
            false,
        );

        // Kept for a day after its end, so late reuse is still recognised...
        assert_eq!(store.purge_expired(at(10 + 86_400)).await.unwrap(), 0);
        assert!(store.session(old.id).await.unwrap().is_some());
        assert_eq!(
            store.session_for_refresh(&h("old-0")).await.unwrap(),
            Some(old.clone())
        );
        // ...then removed with all its refresh tokens.
        assert_eq!(store.purge_expired(at(10 + 86_401)).await.unwrap(), 1);
        assert_eq!(store.session(old.id).await.unwrap(), None);
        assert_eq!(store.session_for_refresh(&h("old-0")).await.unwrap(), None);
        assert_eq!(store.session_for_refresh(&h("old-1")).await.unwrap(), None);
        let gone = store
            .rotate_refresh_token(&rotation("old-1", "old-2", at(86_500), 10, 1_000_000))
            .await
            .unwrap();
        assert_eq!(gone, RotateOutcome::NotFound);
        assert_eq!(store.session(live.id).await.unwrap(), Some(live.clone()));
        assert_eq!(
            store.session_for_refresh(&h("live-0")).await.unwrap(),
            Some(live)
        );
    }

    fn key(kid: &str, created: u64, activates: u64, sealed: &[u8]) -> StoredKey {
        StoredKey {
            kid: kid.to_owned(),
            alg: "EdDSA".to_owned(),
            created_at: at(created),
            activates_at: at(activates),
            retires_at: None,
            expires_at: None,
            sealed: sealed.to_vec(),
        }
    }

    pub(crate) async fn keys(cx: Ctx) {
        let store = &*cx.store;
        assert!(store.list_keys().await.unwrap().is_empty());
        let mut k1 = key("k1", 0, 0, &[1, 0, 255, 7]);
        let mut k2 = key("k2", 40, 100, &[2; 60]);
        let mut k3 = key("k3", 50, 100, b"\x00sealed\x00");
        k3.alg = "HS256".to_owned();
        for k in [&k3, &k1, &k2] {
            store.insert_key(k).await.unwrap();
        }
        assert!(matches!(
            store.insert_key(&key("k1", 1, 1, &[9])).await,
            Err(StoreError::Conflict)
        ));

        // By activation time, then creation time; every field round-trips.
        assert_eq!(
            store.list_keys().await.unwrap(),
            [k1.clone(), k2.clone(), k3.clone()]
        );

        store
            .update_key_times("k1", Some(at(200)), Some(at(300)))
            .await
            .unwrap();
        store
            .update_key_times("k2", Some(at(900)), Some(at(1000)))
            .await
            .unwrap();
        store
            .update_key_times("missing", Some(at(1)), Some(at(2)))
            .await
            .unwrap();
        (k1.retires_at, k1.expires_at) = (Some(at(200)), Some(at(300)));
        (k2.retires_at, k2.expires_at) = (Some(at(900)), Some(at(1000)));
        assert_eq!(
            store.list_keys().await.unwrap(),
            [k1.clone(), k2.clone(), k3.clone()]
        );
        // Times can be cleared again.
        store.update_key_times("k2", None, None).await.unwrap();
        k2.retires_at = None;
        k2.expires_at = None;
        assert_eq!(store.list_keys().await.unwrap()[1], k2);
        store
            .update_key_times("k2", Some(at(900)), Some(at(1000)))
            .await
            .unwrap();
        (k2.retires_at, k2.expires_at) = (Some(at(900)), Some(at(1000)));

        // Deleted once expired (at the expiry instant); keys without expiry never.
        assert_eq!(store.delete_expired_keys(at(299)).await.unwrap(), 0);
        assert_eq!(store.delete_expired_keys(at(300)).await.unwrap(), 1);
        assert_eq!(store.list_keys().await.unwrap(), [k2.clone(), k3.clone()]);
        assert_eq!(store.delete_expired_keys(at(1_000_000)).await.unwrap(), 1);
        assert_eq!(store.list_keys().await.unwrap(), [k3.clone()]);

        // Debug never prints the sealed bytes.
        let dbg = format!("{k3:?}");
        assert!(dbg.contains("k3") && !dbg.contains("sealed:"), "{dbg}");
    }

    pub(crate) async fn clients(cx: Ctx) {
        let store = &*cx.store;
        assert!(store.list_clients().await.unwrap().is_empty());
        let billing = StoredClient {
            key_id: "kid-b".to_owned(),
            name: "billing".to_owned(),
            sealed: vec![0xde, 0xad, 0, 0xbe, 0xef],
            created_at: at(1),
            disabled: false,
        };
        let api = StoredClient {
            key_id: "kid-z".to_owned(),
            name: "api".to_owned(),
            sealed: vec![7; 48],
            created_at: at(2),
            disabled: true,
        };
        store.create_client(&billing).await.unwrap();
        store.create_client(&api).await.unwrap();

        let mut same_name = api.clone();
        same_name.key_id = "kid-other".to_owned();
        assert!(matches!(
            store.create_client(&same_name).await,
            Err(StoreError::Conflict)
        ));
        let mut same_kid = api.clone();
        same_kid.name = "other".to_owned();
        assert!(matches!(
            store.create_client(&same_kid).await,
            Err(StoreError::Conflict)
        ));

        assert_eq!(store.client("kid-b").await.unwrap(), Some(billing.clone()));
        assert_eq!(store.client("kid-z").await.unwrap(), Some(api.clone()));
        assert_eq!(store.client("kid-other").await.unwrap(), None);
        assert_eq!(store.client("").await.unwrap(), None);
        // By name.
        assert_eq!(store.list_clients().await.unwrap(), [api, billing]);
    }

    pub(crate) async fn audit(cx: Ctx) {
        let store = &*cx.store;
        assert!(store.recent_audit(5).await.unwrap().is_empty());
        let e1 = AuditEvent {
            at: at(1),
            kind: "login_failure".to_owned(),
            username: Some("alice".to_owned()),
            user_id: None,
            session_id: None,
            ip: Some("192.0.2.1".to_owned()),
            user_agent: Some("curl/8.5".to_owned()),
            detail: Some("bad password".to_owned()),
        };
        let e2 = AuditEvent {
            at: at(2),
            kind: "login_success".to_owned(),
            username: Some("alice".to_owned()),
            user_id: Some(UserId::random().to_string()),
            session_id: Some(SessionId::random().to_string()),
            ip: Some("2001:db8::1".to_owned()),
            user_agent: None,
            detail: None,
        };
        // Same timestamp as e2: order must follow insertion, not time.
        let e3 = AuditEvent {
            at: at(2),
            kind: "key_rotation".to_owned(),
            username: None,
            user_id: None,
            session_id: None,
            ip: None,
            user_agent: None,
            detail: Some("kid k2".to_owned()),
        };
        for e in [&e1, &e2, &e3] {
            store.record_audit(e).await.unwrap();
        }
        assert_eq!(
            store.recent_audit(2).await.unwrap(),
            [e2.clone(), e3.clone()]
        );
        assert_eq!(
            store.recent_audit(1).await.unwrap(),
            std::slice::from_ref(&e3)
        );
        assert_eq!(store.recent_audit(10).await.unwrap(), [e1, e2, e3]);
        assert!(store.recent_audit(0).await.unwrap().is_empty());
    }

    fn rid(s: &str) -> [u8; 32] {
        refresh::hash(s)
    }

    /// `record_once`: the first use of an id wins, everywhere the store is shared (a
    /// second handle on the same database stands for a second node); a live id is a
    /// replay until its expiry second has passed; kinds do not collide; purging removes
    /// exactly the expired rows.
    pub(crate) async fn replay_ids_once_across_handles(cx: Ctx) {
        let a = &*cx.store;
        let other = tessera_store::open(&cx.url).await.unwrap();
        let b = &*other;
        let (dpop, sig) = (ReplayKind::Dpop, ReplayKind::Signature);
        assert!(a
            .record_once(dpop, &rid("j1"), at(60), at(0))
            .await
            .unwrap());
        // The same id through the other handle, and again through the first: replays.
        assert!(!b
            .record_once(dpop, &rid("j1"), at(60), at(1))
            .await
            .unwrap());
        assert!(!a
            .record_once(dpop, &rid("j1"), at(120), at(2))
            .await
            .unwrap());
        // Live through its expiry second, whatever the new expiry asked for.
        assert!(!b
            .record_once(dpop, &rid("j1"), at(500), at(60))
            .await
            .unwrap());
        // The other kind is another namespace; another id is new.
        assert!(b
            .record_once(sig, &rid("j1"), at(300), at(2))
            .await
            .unwrap());
        assert!(b
            .record_once(dpop, &rid("j2"), at(10), at(2))
            .await
            .unwrap());
        // After its expiry a row counts as absent even before it is purged, and the new
        // use is recorded with its own expiry.
        assert!(a
            .record_once(dpop, &rid("j1"), at(200), at(61))
            .await
            .unwrap());
        assert!(!b
            .record_once(dpop, &rid("j1"), at(200), at(150))
            .await
            .unwrap());
        // Purge at at(201): j2 (expired at 10) and dpop j1 (200) go; sig j1 (300) stays.
        assert_eq!(a.purge_replay_ids(at(200)).await.unwrap(), 1);
        assert_eq!(a.purge_replay_ids(at(201)).await.unwrap(), 1);
        assert_eq!(a.purge_replay_ids(at(201)).await.unwrap(), 0);
        assert!(!a
            .record_once(sig, &rid("j1"), at(400), at(201))
            .await
            .unwrap());
        assert!(a
            .record_once(dpop, &rid("j2"), at(400), at(201))
            .await
            .unwrap());
        // The rows survive reopening: a restarted node still refuses a replay.
        drop(other);
        let again = tessera_store::open(&cx.url).await.unwrap();
        assert!(!again
            .record_once(dpop, &rid("j2"), at(400), at(202))
            .await
            .unwrap());
    }

    /// Many claims of one id at once, from two handles: exactly one wins.
    pub(crate) async fn replay_ids_concurrent_claims(cx: Ctx) {
        let other: Arc<dyn Store> = tessera_store::open(&cx.url).await.unwrap();
        for round in 0..5 {
            let id = rid(&format!("race-{round}"));
            let tasks: Vec<_> = (0..16)
                .map(|i| {
                    let s = if i % 2 == 0 {
                        Arc::clone(&cx.store)
                    } else {
                        Arc::clone(&other)
                    };
                    tokio::spawn(async move {
                        s.record_once(ReplayKind::Signature, &id, at(300), at(0))
                            .await
                            .unwrap()
                    })
                })
                .collect();
            let mut wins = 0;
            for t in tasks {
                wins += usize::from(t.await.unwrap());
            }
            assert_eq!(wins, 1, "round {round}: {wins} claims of one id succeeded");
        }
    }

    pub(crate) async fn login_failures(cx: Ctx) {
        let store = &*cx.store;
        assert_eq!(store.login_failures_since("alice", at(0)).await.unwrap(), 0);
        for secs in [10, 20, 30] {
            store.record_login_failure("alice", at(secs)).await.unwrap();
        }
        store.record_login_failure("bob", at(25)).await.unwrap();
        assert_eq!(store.login_failures_since("alice", at(0)).await.unwrap(), 3);
        assert_eq!(
            store.login_failures_since("alice", at(20)).await.unwrap(),
            2,
            "the window is inclusive"
        );
        assert_eq!(
            store.login_failures_since("alice", at(31)).await.unwrap(),
            0
        );
        assert_eq!(store.login_failures_since("bob", at(0)).await.unwrap(), 1);
        assert_eq!(store.login_failures_since("carol", at(0)).await.unwrap(), 0);
        // Another handle on the same database (another node) sees the same count.
        let other = tessera_store::open(&cx.url).await.unwrap();
        other.record_login_failure("alice", at(40)).await.unwrap();
        assert_eq!(store.login_failures_since("alice", at(0)).await.unwrap(), 4);
        // A failure an hour later forgets the old ones.
        store.record_login_failure("alice", at(3700)).await.unwrap();
        assert_eq!(store.login_failures_since("alice", at(0)).await.unwrap(), 1);
        assert_eq!(store.login_failures_since("bob", at(0)).await.unwrap(), 0);
    }

    // ---- second factors -------------------------------------------------------------

    /// A user stored, for the second-factor tables' foreign keys.
    async fn stored_user(store: &dyn Store, name: &str) -> User {
        let u = user(name);
        store.create_user(&u).await.unwrap();
        u
    }

    fn factor(user: UserId, sealed: &[u8], confirmed: bool) -> TotpFactor {
        TotpFactor {
            user_id: user,
            sealed: sealed.to_vec(),
            confirmed,
            created_at: T0,
            last_used_step: 0,
        }
    }

    /// Setup, confirm with a first code's step, single-use steps, replacement by a new
    /// setup, deletion; a pending factor's steps cannot be spent as a login.
    pub(crate) async fn totp_factor_lifecycle(cx: Ctx) {
        let store = &*cx.store;
        let u = stored_user(store, "alice").await;
        let other = stored_user(store, "bob").await;
        assert!(store.totp(u.id).await.unwrap().is_none());
        assert!(!store.use_totp_step(u.id, 10).await.unwrap(), "no factor");
        store
            .put_totp(&factor(u.id, b"sealed-1", false))
            .await
            .unwrap();
        let got = store.totp(u.id).await.unwrap().unwrap();
        assert_eq!(got, factor(u.id, b"sealed-1", false));
        assert!(!format!("{got:?}").contains("sealed-1"));
        // Pending: a login cannot spend its steps.
        assert!(!store.use_totp_step(u.id, 100).await.unwrap());
        // Confirm needs the secret the code was checked against.
        assert!(!store.confirm_totp(u.id, b"sealed-0", 100).await.unwrap());
        assert!(!store
            .confirm_totp(other.id, b"sealed-1", 100)
            .await
            .unwrap());
        assert!(store.confirm_totp(u.id, b"sealed-1", 100).await.unwrap());
        assert!(
            !store.confirm_totp(u.id, b"sealed-1", 101).await.unwrap(),
            "once"
        );
        let got = store.totp(u.id).await.unwrap().unwrap();
        assert!(got.confirmed);
        assert_eq!(got.last_used_step, 100);
        // The confirming code's step is spent; later steps once each, earlier never.
        assert!(!store.use_totp_step(u.id, 100).await.unwrap());
        assert!(!store.use_totp_step(u.id, 99).await.unwrap());
        assert!(store.use_totp_step(u.id, 101).await.unwrap());
        assert!(!store.use_totp_step(u.id, 101).await.unwrap());
        assert!(store.use_totp_step(u.id, 103).await.unwrap());
        assert!(!store.use_totp_step(u.id, 102).await.unwrap());
        assert_eq!(store.totp(u.id).await.unwrap().unwrap().last_used_step, 103);
        assert!(store.totp(other.id).await.unwrap().is_none());
        // A new setup replaces the factor wholesale: pending again, no step used.
        store
            .put_totp(&factor(u.id, b"sealed-2", false))
            .await
            .unwrap();
        assert_eq!(
            store.totp(u.id).await.unwrap().unwrap(),
            factor(u.id, b"sealed-2", false)
        );
        assert!(!store.confirm_totp(u.id, b"sealed-1", 200).await.unwrap());
        assert!(store.confirm_totp(u.id, b"sealed-2", 200).await.unwrap());
        // Steps beyond i64 saturate rather than wrap.
        assert!(store.use_totp_step(u.id, u64::MAX).await.unwrap());
        assert!(!store.use_totp_step(u.id, u64::MAX).await.unwrap());
        assert!(store.delete_totp(u.id).await.unwrap());
        assert!(!store.delete_totp(u.id).await.unwrap());
        assert!(store.totp(u.id).await.unwrap().is_none());
        assert!(!store.use_totp_step(u.id, 300).await.unwrap());
    }

    /// A step spent through one handle (node A) is refused through another (node B).
    pub(crate) async fn totp_step_once_across_handles(cx: Ctx) {
        let a = &*cx.store;
        let node_b = tessera_store::open(&cx.url).await.unwrap();
        let b = &*node_b;
        let u = stored_user(a, "alice").await;
        a.put_totp(&factor(u.id, b"s", false)).await.unwrap();
        assert!(a.confirm_totp(u.id, b"s", 50).await.unwrap());
        assert!(a.use_totp_step(u.id, 51).await.unwrap());
        assert!(!b.use_totp_step(u.id, 51).await.unwrap(), "spent on node A");
        assert!(!b.use_totp_step(u.id, 50).await.unwrap());
        assert!(b.use_totp_step(u.id, 52).await.unwrap());
        assert!(!a.use_totp_step(u.id, 52).await.unwrap(), "spent on node B");
        assert_eq!(b.totp(u.id).await.unwrap().unwrap().last_used_step, 52);
    }

    /// Many spends of one step at once, from two handles: exactly one succeeds.
    pub(crate) async fn totp_step_concurrent_spends(cx: Ctx) {
        let other: Arc<dyn Store> = tessera_store::open(&cx.url).await.unwrap();
        let u = stored_user(&*cx.store, "alice").await;
        cx.store.put_totp(&factor(u.id, b"s", false)).await.unwrap();
        assert!(cx.store.confirm_totp(u.id, b"s", 1).await.unwrap());
        for round in 0..5u64 {
            let step = 10 + round;
            let tasks: Vec<_> = (0..16)
                .map(|i| {
                    let s = if i % 2 == 0 {
                        Arc::clone(&cx.store)
                    } else {
                        Arc::clone(&other)
                    };
                    let id = u.id;
                    tokio::spawn(async move { s.use_totp_step(id, step).await.unwrap() })
                })
                .collect();
            let mut wins = 0;
            for t in tasks {
                wins += usize::from(t.await.unwrap());
            }
            assert_eq!(wins, 1, "round {round}: step {step} spent {wins} times");
        }
    }

    /// Recovery codes: stored as given, each spent once, per user; a new set kills the
    /// old one.
    pub(crate) async fn recovery_codes_single_use(cx: Ctx) {
        let store = &*cx.store;
        let node_b = tessera_store::open(&cx.url).await.unwrap();
        let u = stored_user(store, "alice").await;
        let v = stored_user(store, "bob").await;
        assert!(store.unused_recovery_codes(u.id).await.unwrap().is_empty());
        let set: Vec<[u8; 32]> = (0..10).map(|i| h(&format!("code-{i}"))).collect();
        store.replace_recovery_codes(u.id, &set).await.unwrap();
        store.replace_recovery_codes(v.id, &set[..2]).await.unwrap();
        let got: BTreeSet<[u8; 32]> = store
            .unused_recovery_codes(u.id)
            .await
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(got, set.iter().copied().collect());
        assert!(store.use_recovery_code(u.id, &set[3], at(1)).await.unwrap());
        assert!(!store.use_recovery_code(u.id, &set[3], at(2)).await.unwrap());
        assert!(
            !node_b
                .use_recovery_code(u.id, &set[3], at(2))
                .await
                .unwrap(),
            "node B"
        );
        assert!(!store
            .use_recovery_code(u.id, &h("unknown"), at(2))
            .await
            .unwrap());
        assert_eq!(store.unused_recovery_codes(u.id).await.unwrap().len(), 9);
        assert!(!store
            .unused_recovery_codes(u.id)
            .await
            .unwrap()
            .contains(&set[3]));
        // Another user's codes are their own, even with the same hash.
        assert!(store.use_recovery_code(v.id, &set[0], at(3)).await.unwrap());
        assert!(store.use_recovery_code(u.id, &set[0], at(3)).await.unwrap());
        assert!(!store.use_recovery_code(v.id, &set[5], at(3)).await.unwrap());
        assert_eq!(
            store.unused_recovery_codes(v.id).await.unwrap(),
            vec![set[1]]
        );
        // Regenerate: the old ones die, including unused ones.
        let fresh: Vec<[u8; 32]> = (0..10).map(|i| h(&format!("new-{i}"))).collect();
        node_b.replace_recovery_codes(u.id, &fresh).await.unwrap();
        assert!(!store.use_recovery_code(u.id, &set[4], at(4)).await.unwrap());
        assert_eq!(store.unused_recovery_codes(u.id).await.unwrap().len(), 10);
        assert!(store
            .use_recovery_code(u.id, &fresh[9], at(4))
            .await
            .unwrap());
        // A set with a repeated hash is refused whole, leaving the old set.
        let dup = [h("d"), h("d")];
        assert!(matches!(
            store.replace_recovery_codes(u.id, &dup).await,
            Err(StoreError::Conflict)
        ));
        assert_eq!(store.unused_recovery_codes(u.id).await.unwrap().len(), 9);
        assert_eq!(store.delete_recovery_codes(u.id).await.unwrap(), 10);
        assert!(store.unused_recovery_codes(u.id).await.unwrap().is_empty());
        assert_eq!(
            store.unused_recovery_codes(v.id).await.unwrap(),
            vec![set[1]]
        );
    }

    /// One recovery code spent many times at once from two handles: once.
    pub(crate) async fn recovery_code_concurrent_spends(cx: Ctx) {
        let other: Arc<dyn Store> = tessera_store::open(&cx.url).await.unwrap();
        let u = stored_user(&*cx.store, "alice").await;
        let set: Vec<[u8; 32]> = (0..5).map(|i| h(&format!("c{i}"))).collect();
        cx.store.replace_recovery_codes(u.id, &set).await.unwrap();
        for (round, code) in set.iter().enumerate() {
            let tasks: Vec<_> = (0..16)
                .map(|i| {
                    let s = if i % 2 == 0 {
                        Arc::clone(&cx.store)
                    } else {
                        Arc::clone(&other)
                    };
                    let (id, code) = (u.id, *code);
                    tokio::spawn(
                        async move { s.use_recovery_code(id, &code, at(1)).await.unwrap() },
                    )
                })
                .collect();
            let mut wins = 0;
            for t in tasks {
                wins += usize::from(t.await.unwrap());
            }
            assert_eq!(wins, 1, "round {round}: code spent {wins} times");
        }
        assert!(cx
            .store
            .unused_recovery_codes(u.id)
            .await
            .unwrap()
            .is_empty());
    }

    fn passkey(id: &str, user: UserId, name: &str, created: u64) -> StoredPasskey {
        StoredPasskey {
            id: id.to_owned(),
            user_id: user,
            name: name.to_owned(),
            passkey: format!("{{\"cred\":\"{id}\",\"counter\":0}}"),
            created_at: at(created),
            last_used_at: None,
        }
    }

    /// Several named passkeys per user; ids unique across users; use updates the blob
    /// and `last_used_at`; deletion only by their owner.
    pub(crate) async fn passkeys(cx: Ctx) {
        let store = &*cx.store;
        let u = stored_user(store, "alice").await;
        let v = stored_user(store, "bob").await;
        assert!(store.passkeys_of(u.id).await.unwrap().is_empty());
        assert!(store.passkey("k1").await.unwrap().is_none());
        let (k1, k2) = (
            passkey("k1", u.id, "laptop", 5),
            passkey("k2", u.id, "phone", 1),
        );
        store.create_passkey(&k1).await.unwrap();
        store.create_passkey(&k2).await.unwrap();
        store
            .create_passkey(&passkey("k3", v.id, "key", 0))
            .await
            .unwrap();
        assert!(matches!(
            store
                .create_passkey(&passkey("k1", v.id, "stolen id", 9))
                .await,
            Err(StoreError::Conflict)
        ));
        assert_eq!(store.passkey("k1").await.unwrap(), Some(k1.clone()));
        assert_eq!(
            store.passkeys_of(u.id).await.unwrap(),
            vec![k2.clone(), k1.clone()],
            "oldest first"
        );
        assert!(store
            .update_passkey_use(u.id, "k1", "{\"counter\":7}", at(100))
            .await
            .unwrap());
        assert!(
            !store
                .update_passkey_use(v.id, "k1", "{\"counter\":8}", at(101))
                .await
                .unwrap(),
            "another user's passkey"
        );
        assert!(!store
            .update_passkey_use(u.id, "nope", "{}", at(101))
            .await
            .unwrap());
        let got = store.passkey("k1").await.unwrap().unwrap();
        assert_eq!(got.passkey, "{\"counter\":7}");
        assert_eq!(got.last_used_at, Some(at(100)));
        assert_eq!(got.created_at, at(5));
        assert!(!store.delete_passkey(v.id, "k1").await.unwrap());
        assert!(store.delete_passkey(u.id, "k1").await.unwrap());
        assert!(!store.delete_passkey(u.id, "k1").await.unwrap());
        assert_eq!(store.passkeys_of(u.id).await.unwrap(), vec![k2]);
        assert_eq!(store.passkeys_of(v.id).await.unwrap().len(), 1);
    }

    fn state(kind: MfaStateKind, id: &str, user: Option<UserId>, expires: u64) -> MfaState {
        MfaState {
            kind,
            id: rid(id),
            user_id: user,
            payload: format!("payload of {id}").into_bytes(),
            expires_at: at(expires),
            failures: 0,
        }
    }

    /// One-time state: taken once, on whichever node; bound to its kind; expired state is
    /// never returned; peeking does not use it.
    pub(crate) async fn mfa_state_take_once_across_handles(cx: Ctx) {
        let a = &*cx.store;
        let node_b = tessera_store::open(&cx.url).await.unwrap();
        let b = &*node_b;
        let u = stored_user(a, "alice").await;
        let login = MfaStateKind::MfaLogin;
        let s1 = state(login, "t1", Some(u.id), 300);
        a.put_mfa_state(&s1).await.unwrap();
        assert!(matches!(
            a.put_mfa_state(&s1).await,
            Err(StoreError::Conflict)
        ));
        // Peeking, from either node, leaves it in place.
        assert_eq!(
            b.peek_mfa_state(login, &rid("t1"), at(10)).await.unwrap(),
            Some(s1.clone())
        );
        assert_eq!(
            a.peek_mfa_state(login, &rid("t1"), at(10)).await.unwrap(),
            Some(s1.clone())
        );
        // Another kind does not see it (and does not consume it).
        let reg = MfaStateKind::PasskeyRegistration;
        assert_eq!(
            b.take_mfa_state(reg, &rid("t1"), at(10)).await.unwrap(),
            None
        );
        assert_eq!(
            b.peek_mfa_state(reg, &rid("t1"), at(10)).await.unwrap(),
            None
        );
        // Taken on node B: gone for node A.
        assert_eq!(
            b.take_mfa_state(login, &rid("t1"), at(10)).await.unwrap(),
            Some(s1)
        );
        assert_eq!(
            a.take_mfa_state(login, &rid("t1"), at(11)).await.unwrap(),
            None
        );
        assert_eq!(
            a.peek_mfa_state(login, &rid("t1"), at(11)).await.unwrap(),
            None
        );
        // State without a user (discoverable-credential login) round-trips.
        let auth = MfaStateKind::PasskeyAuthentication;
        let s2 = state(auth, "c2", None, 300);
        b.put_mfa_state(&s2).await.unwrap();
        assert_eq!(
            a.take_mfa_state(auth, &rid("c2"), at(300)).await.unwrap(),
            Some(s2),
            "inclusive"
        );
        // Expired: neither peeked nor taken, even before a purge.
        a.put_mfa_state(&state(login, "t3", Some(u.id), 300))
            .await
            .unwrap();
        assert_eq!(
            a.peek_mfa_state(login, &rid("t3"), at(301)).await.unwrap(),
            None
        );
        assert_eq!(
            b.take_mfa_state(login, &rid("t3"), at(301)).await.unwrap(),
            None
        );
        assert_eq!(
            a.take_mfa_state(login, &rid("t3"), at(0)).await.unwrap(),
            None,
            "deleted"
        );
    }

    /// One state taken many times at once from two handles: exactly one take gets it.
    pub(crate) async fn mfa_state_concurrent_takes(cx: Ctx) {
        let other: Arc<dyn Store> = tessera_store::open(&cx.url).await.unwrap();
        let u = stored_user(&*cx.store, "alice").await;
        for round in 0..5 {
            let name = format!("race-{round}");
            let s = state(MfaStateKind::MfaLogin, &name, Some(u.id), 300);
            cx.store.put_mfa_state(&s).await.unwrap();
            let tasks: Vec<_> = (0..16)
                .map(|i| {
                    let st = if i % 2 == 0 {
                        Arc::clone(&cx.store)
                    } else {
                        Arc::clone(&other)
                    };
                    let id = s.id;
                    tokio::spawn(async move {
                        st.take_mfa_state(MfaStateKind::MfaLogin, &id, at(1))
                            .await
                            .unwrap()
                    })
                })
                .collect();
            let mut got = Vec::new();
            for t in tasks {
                got.extend(t.await.unwrap());
            }
            assert_eq!(got, vec![s], "round {round}");
        }
    }

    /// Wrong codes count against a state until the limit deletes it; purge_expired
    /// removes expired state and only that.
    pub(crate) async fn mfa_state_failures_and_purge(cx: Ctx) {
        let store = &*cx.store;
        let node_b = tessera_store::open(&cx.url).await.unwrap();
        let u = stored_user(store, "alice").await;
        let login = MfaStateKind::MfaLogin;
        store
            .put_mfa_state(&state(login, "t", Some(u.id), 300))
            .await
            .unwrap();
        for n in 1..5 {
            let via: &dyn Store = if n % 2 == 0 { store } else { &*node_b };
            assert_eq!(
                via.record_mfa_state_failure(login, &rid("t"), 5)
                    .await
                    .unwrap(),
                n
            );
        }
        let live = store
            .peek_mfa_state(login, &rid("t"), at(1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(live.failures, 4);
        assert_eq!(
            store
                .record_mfa_state_failure(login, &rid("t"), 5)
                .await
                .unwrap(),
            5
        );
        assert_eq!(
            store.peek_mfa_state(login, &rid("t"), at(1)).await.unwrap(),
            None
        );
        assert_eq!(
            store.take_mfa_state(login, &rid("t"), at(1)).await.unwrap(),
            None
        );
        assert_eq!(
            store
                .record_mfa_state_failure(login, &rid("t"), 5)
                .await
                .unwrap(),
            0
        );
        // Purge: expired state goes, live state stays.
        store
            .put_mfa_state(&state(login, "old", Some(u.id), 100))
            .await
            .unwrap();
        store
            .put_mfa_state(&state(login, "new", Some(u.id), 400))
            .await
            .unwrap();
        store
            .put_mfa_state(&state(
                MfaStateKind::PasskeyAuthentication,
                "anon",
                None,
                100,
            ))
            .await
            .unwrap();
        assert_eq!(
            store.purge_expired(at(100)).await.unwrap(),
            0,
            "live through its second"
        );
        assert_eq!(store.purge_expired(at(101)).await.unwrap(), 2);
        assert_eq!(store.purge_expired(at(101)).await.unwrap(), 0);
        assert!(store
            .peek_mfa_state(login, &rid("new"), at(101))
            .await
            .unwrap()
            .is_some());
    }
}
