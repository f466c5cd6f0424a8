//! Black-box against two real nodes: password guessing across nodes, the per-user budget
//! shared through the store (the single-node cases are in tests/app/brute_force.rs).
//!
//! The per-username failure limit used to exempt every IP that had once logged in as the
//! user: an attacker behind the same NAT (or everyone, behind a proxy without
//! `trusted_proxies`) guessed without a per-user limit. Now only a device token — issued
//! at a successful login, an HttpOnly cookie for browsers, `device_token` for mobile
//! clients — lifts the per-user limit, and only for that device; the per-user failures
//! are counted in the store, so two nodes share one budget.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use tessera_testkit::{Client, Server};

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

/// Only the per-username limit (5 failures a minute) can stop these attempts.
const CONFIG: &str = "[rate_limit]\nper_ip_per_minute = 100000\nper_username_per_minute = 5\n";

async fn wrong_logins_until_429(c: &mut Client, user: &str, max: usize) -> Option<usize> {
    for i in 0..max {
        let res = c.login(user, "not-the-password-1").await;
        match res.status {
            401 => {}
            429 => {
                res.assert_error(429, "rate_limited");
                assert!(res.header("retry-after").is_some());
                return Some(i);
            }
            other => panic!("attempt {i}: {other} {}", res.text()),
        }
    }
    None
}

/// Two nodes on one PostgreSQL database share the per-username budget: 5 failures on A,
/// and B refuses the next attempt although B itself has seen none; the owner's device
/// cookie from a login on A lifts the limit on B (one master key, one device key).
#[tokio::test]
async fn two_nodes_share_one_failure_budget() {
    let Some(db) = tessera_testkit::pg::fresh_database("brute").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let master = tessera_testkit::b64url_encode(&[7u8; 32]);
    let node = || {
        Server::builder(BIN)
            .data_dir(&data)
            .database_url(&db.url)
            .config(CONFIG)
            .env("TESSERA_MASTER_KEY", &master)
    };
    let a = node().start().await;
    let b = node().start().await;
    let password = a.demo_password().to_owned();
    let mut owner = a.client();
    owner.login_ok("demo", &password).await;
    owner.post("/auth/logout").with_csrf().send().await;

    let mut on_a = a.client();
    assert_eq!(wrong_logins_until_429(&mut on_a, "demo", 5).await, None);
    let mut on_b = b.client();
    let res = on_b.login("demo", "not-the-password-1").await;
    println!("node B after 5 failures on node A: {}", res.status);
    res.assert_error(429, "rate_limited");

    let mut owner_on_b = b.client().with_jar(owner.jar.clone());
    let res = owner_on_b.login("demo", &password).await;
    assert_eq!(
        res.status,
        200,
        "the owner's device from A is locked out on B: {}",
        res.text()
    );
    drop((a, b));
    db.drop_now().await;
}
