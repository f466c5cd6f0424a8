//! What the store checks that make a limit hold for the whole cluster cost, on SQLite and
//! on PostgreSQL:
//!
//! * the replay check per DPoP proof or signed request: one `Store::record_once` (an
//!   atomic insert-if-absent into `replay_ids`);
//! * the per-username login budget: `login_failures_since` before every password check
//!   that proves no known device, `record_login_failure` after every failed one — next
//!   to one Argon2id verification at the default parameters (19 MiB, t = 2), which every
//!   password check pays anyway.
//!
//! `cargo bench -p tessera-store --bench cluster_store --profile dev -- --warm-up-time 1 --measurement-time 5`
//!
//! Rows, per backend: `new` — a first use (the insert; what every accepted proof costs);
//! `replay` — a value already recorded (the conflict path; only reached when another node
//! saw it, since the node's memory cache answers its own replays first); `new_x16` — 16
//! first uses in flight at once, reported per insert (SQLite has one writer; PostgreSQL
//! spreads them over the pool's 8 connections). SQLite is a temp-file database in WAL
//! mode with `synchronous = NORMAL`, as the server opens it; PostgreSQL a fresh database on
//! `TESSERA_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`), skipped
//! with a message if unreachable.
// `criterion_main!` defines an undocumented `pub fn main`.
#![allow(missing_docs)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use sqlx::{ConnectOptions, Connection, Executor};
use tessera_core::UnixTime;
use tessera_store::{ReplayKind, Store};

const NOW: UnixTime = UnixTime(1_800_000_000);

/// A distinct id per call (what a new jti's hash is: uniformly spread bytes).
fn next_id(counter: &AtomicU64) -> [u8; 32] {
    let n = counter.fetch_add(1, Ordering::Relaxed);
    let d = ring::digest::digest(&ring::digest::SHA256, &n.to_le_bytes());
    let mut id = [0u8; 32];
    id.copy_from_slice(d.as_ref());
    id
}

fn rows(c: &mut Criterion, rt: &tokio::runtime::Runtime, name: &str, store: Arc<dyn Store>) {
    let mut g = c.benchmark_group(format!("record_once/{name}"));
    let counter = Arc::new(AtomicU64::new(0));
    g.bench_function("new", |b| {
        b.iter(|| {
            let id = next_id(&counter);
            let fresh = rt
                .block_on(store.record_once(ReplayKind::Dpop, &id, NOW.plus(60), NOW))
                .unwrap();
            assert!(fresh);
        })
    });
    let seen = next_id(&counter);
    rt.block_on(store.record_once(ReplayKind::Dpop, &seen, NOW.plus(60), NOW))
        .unwrap();
    g.bench_function("replay", |b| {
        b.iter(|| {
            let fresh = rt
                .block_on(store.record_once(ReplayKind::Dpop, &seen, NOW.plus(60), NOW))
                .unwrap();
            assert!(!fresh);
        })
    });
    g.bench_function("new_x16", |b| {
        b.iter_custom(|iters| {
            // `iters` inserts, 16 in flight at a time; the time per insert.
            let started = Instant::now();
            rt.block_on(async {
                let mut left = iters;
                while left > 0 {
                    let batch = left.min(16);
                    left -= batch;
                    let mut tasks = Vec::new();
                    for _ in 0..batch {
                        let store = Arc::clone(&store);
                        let id = next_id(&counter);
                        tasks.push(tokio::spawn(async move {
                            store
                                .record_once(ReplayKind::Signature, &id, NOW.plus(300), NOW)
                                .await
                                .unwrap()
                        }));
                    }
                    for t in tasks {
                        assert!(t.await.unwrap());
                    }
                }
            });
            started.elapsed()
        })
    });
    g.finish();
}

fn login_rows(c: &mut Criterion, rt: &tokio::runtime::Runtime, name: &str, store: Arc<dyn Store>) {
    let mut g = c.benchmark_group(format!("login_budget/{name}"));
    // A user with a few recent failures, among many users' rows.
    for i in 0..2000u64 {
        rt.block_on(store.record_login_failure(&format!("user{}", i % 500), NOW.plus(i % 50)))
            .unwrap();
    }
    g.bench_function("failures_since", |b| {
        b.iter(|| {
            rt.block_on(store.login_failures_since("user7", NOW.plus(10)))
                .unwrap()
        })
    });
    let counter = AtomicU64::new(0);
    g.bench_function("record_failure", |b| {
        b.iter(|| {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            rt.block_on(store.record_login_failure(&format!("victim{}", n % 100), NOW.plus(60)))
                .unwrap()
        })
    });
    g.finish();
}

fn argon2_row(c: &mut Criterion) {
    use tessera_core::password::{hash_password, verify_password, HashParams};
    let params = HashParams::default();
    let stored = hash_password("correct horse battery staple", params).unwrap();
    let mut g = c.benchmark_group("login_budget");
    g.sample_size(10);
    g.bench_function("argon2id_verify_default", |b| {
        b.iter(|| verify_password(&stored, "wrong horse battery staple", params))
    });
    g.finish();
}

fn bench(c: &mut Criterion) {
    argon2_row(c);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let sqlite = rt.block_on(tessera_store::open(&url)).unwrap();
    rows(c, &rt, "sqlite", Arc::clone(&sqlite));
    login_rows(c, &rt, "sqlite", sqlite);

    let base = std::env::var("TESSERA_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let name = format!("tessera_bench_{}", std::process::id());
    let admin = sqlx::postgres::PgConnectOptions::from_str(&base).unwrap();
    let created = rt.block_on(async {
        let mut conn = tokio::time::timeout(Duration::from_secs(5), admin.connect())
            .await
            .ok()?
            .ok()?;
        conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await
            .ok()?;
        conn.close().await.ok()
    });
    if created.is_none() {
        eprintln!("POSTGRESQL BENCH DID NOT RUN: cannot create a database on {base}");
        return;
    }
    let pg_url = admin.clone().database(&name).to_url_lossy().to_string();
    let pg = rt.block_on(tessera_store::open(&pg_url)).unwrap();
    rows(c, &rt, "postgres", Arc::clone(&pg));
    login_rows(c, &rt, "postgres", Arc::clone(&pg));
    drop(pg);
    rt.block_on(async {
        if let Ok(mut conn) = admin.connect().await {
            let _ = conn
                .execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
                .await;
        }
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
