//! Black-box against the real binary: configuration errors and exit codes, the admin CLI
//! against a running server, restarts, request threads and a store outage
//! (docs/configuration.md "Command line", docs/http-api.md "Tokens", "Gateway"). Health,
//! metrics, JWKS, algorithms, cookie modes and key rotation by the clock are in
//! tests/app/ops.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use serde_json::Value;
use tessera_testkit::{Client, Server, StartError};

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

/// Polls `f` every `every` until it is true or `within` has passed; returns whether it
/// became true and how long it took.
async fn eventually<F, Fut>(within: Duration, every: Duration, mut f: F) -> (bool, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if f().await {
            return (true, start.elapsed());
        }
        if start.elapsed() >= within {
            return (false, start.elapsed());
        }
        tokio::time::sleep(every).await;
    }
}

async fn status(c: &Client, path: &str) -> u16 {
    let mut c = c.clone();
    c.get(path).send().await.status
}

async fn start_error(builder: tessera_testkit::ServerBuilder) -> StartError {
    match builder.try_start().await {
        Ok(s) => panic!("started despite a bad configuration: {}", s.base_url),
        Err(e) => e,
    }
}

#[tokio::test]
async fn bad_configuration_exits_2_naming_the_key() {
    let cases: Vec<(&str, tessera_testkit::ServerBuilder, &str)> = vec![
        (
            "unknown key",
            Server::builder(BIN).config("lisen = 1"),
            "lisen",
        ),
        (
            "too many request threads",
            Server::builder(BIN).config("worker_threads = 5000"),
            "worker_threads",
        ),
        (
            "bad duration",
            Server::builder(BIN).config("[tokens]\naccess_ttl = \"forever\""),
            "tokens.access_ttl",
        ),
        (
            "env out of range",
            Server::builder(BIN).env("TESSERA_TOKENS__ACCESS_TTL", "2h"),
            "tokens.access_ttl",
        ),
        (
            "unknown algorithm",
            Server::builder(BIN).config("[tokens]\nalgorithm = \"none\""),
            "tokens.algorithm",
        ),
        (
            "unknown cookie mode",
            Server::builder(BIN).config("[cookies]\nmode = \"crumbs\""),
            "cookies.mode",
        ),
        (
            "wildcard CORS",
            Server::builder(BIN).config("[cors]\nallowed_origins = [\"*\"]"),
            "cors.allowed_origins",
        ),
        (
            "unknown nested key",
            Server::builder(BIN).config("[tokens]\nacess_ttl = \"5m\""),
            "acess_ttl",
        ),
    ];
    for (what, builder, key) in cases {
        let e = start_error(builder).await;
        assert_eq!(e.status.and_then(|s| s.code()), Some(2), "{what}: {e}");
        assert!(
            e.stderr.contains(key),
            "{what}: stderr does not name `{key}`:\n{}",
            e.stderr
        );
        assert!(!e.stderr.contains("panicked"), "{what}: {e}");
    }

    // A master key that is not 32 base64 bytes.
    let e = start_error(Server::builder(BIN).env("TESSERA_MASTER_KEY", "short")).await;
    assert_eq!(e.status.and_then(|s| s.code()), Some(2), "{e}");
    assert!(e.stderr.contains("TESSERA_MASTER_KEY"), "{}", e.stderr);

    // TOML that does not parse.
    let e = start_error(Server::builder(BIN).config("[tokens\naccess_ttl = ")).await;
    assert_eq!(e.status.and_then(|s| s.code()), Some(2), "{e}");
}

#[tokio::test]
async fn unknown_keys_are_named_exactly() {
    for (toml, key) in [
        ("lisen = 1", "lisen"),
        ("[tokens]\nacess_ttl = \"5m\"", "tokens.acess_ttl"),
    ] {
        let e = start_error(Server::builder(BIN).config(toml)).await;
        assert_eq!(e.status.and_then(|s| s.code()), Some(2), "{e}");
        let last = key.rsplit('.').next().unwrap();
        assert!(
            e.stderr.contains(&format!("`{key}`")),
            "`{key}` not named:\n{}",
            e.stderr
        );
        assert!(
            !e.stderr.contains(&format!("{key}.{last}")),
            "key named wrongly:\n{}",
            e.stderr
        );
    }
}

#[tokio::test]
async fn good_master_key_from_the_environment_is_used() {
    // 32 bytes, base64.
    use base64::Engine as _;
    let std_b64 = base64::engine::general_purpose::STANDARD.encode([42u8; 32]);
    let server = Server::builder(BIN)
        .env("TESSERA_MASTER_KEY", &std_b64)
        .start()
        .await;
    let c = server.demo_client().await;
    assert_eq!(status(&c, "/api/notes").await, 200);
    assert!(
        !server.data_dir.join("master.key").exists(),
        "a key file was made although TESSERA_MASTER_KEY is set"
    );
}

#[tokio::test]
async fn cli_user_admin_while_running() {
    let server = Server::demo(BIN).await;
    let demo = server.demo_client().await;

    // user add, then login works at once.
    let out = server
        .cli(
            &["user", "add", "bob", "--role", "editor", "--password-stdin"],
            Some("bobpassword123\n"),
        )
        .await;
    out.assert_success();
    let mut bob = server.client();
    let res = bob.login_ok("bob", "bobpassword123").await;
    assert!(
        res.json()["user"]["roles"]
            .as_array()
            .unwrap()
            .contains(&Value::from("editor")),
        "{}",
        res.text()
    );
    assert_eq!(status(&bob, "/api/notes").await, 200);

    // Duplicate and too-short passwords are refused.
    let out = server
        .cli(
            &["user", "add", "bob", "--password-stdin"],
            Some("anotherpassword\n"),
        )
        .await;
    assert!(!out.status.success(), "duplicate user added: {out:?}");
    let out = server
        .cli(
            &["user", "add", "shorty", "--password-stdin"],
            Some("short\n"),
        )
        .await;
    assert!(
        !out.status.success(),
        "7-character password accepted: {out:?}"
    );

    // user list shows both users and no password hashes.
    let out = server.cli(&["user", "list"], None).await;
    out.assert_success();
    assert!(out.stdout.contains("demo"), "{}", out.stdout);
    assert!(out.stdout.contains("bob"), "{}", out.stdout);
    assert!(!out.stdout.contains("shorty"), "{}", out.stdout);
    assert!(
        !out.stdout.contains("$argon2"),
        "hashes listed: {}",
        out.stdout
    );

    // user revoke demo: the running server refuses demo's old cookies within 5 s.
    let out = server.cli(&["user", "revoke", "demo"], None).await;
    out.assert_success();
    let (revoked, took) = eventually(Duration::from_secs(5), Duration::from_millis(200), || {
        let demo = demo.clone();
        async move { status(&demo, "/api/notes").await == 401 }
    })
    .await;
    assert!(
        revoked,
        "demo's cookies still accepted {took:?} after `user revoke`"
    );
    // Its refresh token is dead too, and bob is untouched.
    let mut d = demo.clone();
    assert_eq!(d.refresh().await.status, 401);
    assert_eq!(status(&bob, "/api/notes").await, 200);
    // demo can log in again.
    let again = server.demo_client().await;
    assert_eq!(status(&again, "/api/notes").await, 200);
}

#[tokio::test]
async fn cli_key_rotation_while_running() {
    // The command against a running node's data; what the node then does with the new
    // key (signs with it, keeps the old one verifying) is tests/app/ops.rs, by the clock.
    let server = Server::builder(BIN)
        .config("[sync]\nkey_poll = \"1s\"")
        .start()
        .await;
    let old = server.demo_client().await;
    let old_kid = old.kid().unwrap();

    let out = server.cli(&["keys", "rotate"], None).await;
    out.assert_success();
    let new_kid = out
        .stdout
        .split("new signing key ")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .unwrap_or_else(|| panic!("no new key id in {:?}", out.stdout))
        .to_owned();
    let out = server.cli(&["keys", "list"], None).await;
    out.assert_success();
    assert!(out.stdout.contains(&old_kid), "{}", out.stdout);
    assert!(out.stdout.contains(&new_kid), "{}", out.stdout);

    // The running node reloads keys every `sync.key_poll` (here 1 s): it publishes the
    // new key, then new logins are signed with it and old tokens still verify.
    let published = tessera_testkit::until(Duration::from_secs(10), async || {
        jwks_kids(&server).await.contains(&new_kid)
    })
    .await;
    assert!(published.is_some(), "the node never loaded the rotated key");
    let mut c = server.client();
    c.login_ok("demo", server.demo_password()).await;
    assert_eq!(c.kid().as_deref(), Some(new_kid.as_str()));
    assert_eq!(status(&c, "/api/notes").await, 200);
    assert_eq!(status(&old, "/api/notes").await, 200);
}

#[tokio::test]
async fn cli_passwd_ends_the_users_sessions() {
    let server = Server::demo(BIN).await;
    let old = server.demo_client().await;
    let out = server
        .cli(
            &["user", "passwd", "demo", "--password-stdin"],
            Some("a-brand-new-password\n"),
        )
        .await;
    out.assert_success();
    let (revoked, took) = eventually(Duration::from_secs(5), Duration::from_millis(200), || {
        let old = old.clone();
        async move { status(&old, "/api/notes").await == 401 }
    })
    .await;
    assert!(
        revoked,
        "old session still accepted {took:?} after a password change"
    );
    let mut c = server.client();
    c.login("demo", server.demo_password())
        .await
        .assert_error(401, "invalid_credentials");
    c.login_ok("demo", "a-brand-new-password").await;
    assert_eq!(status(&c, "/api/notes").await, 200);
}

#[tokio::test]
async fn cli_user_import_accepts_argon2_and_bcrypt_hashes() {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let server = Server::demo(BIN).await;

    let salt = SaltString::encode_b64(b"sixteen byte salt").unwrap();
    let params = argon2::Params::new(16384, 1, 1, None).unwrap();
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(b"imported-argon-pw", &salt)
        .unwrap()
        .to_string();
    let bcrypt_hash = bcrypt::hash("imported-bcrypt-pw", 4).unwrap();
    let file = server.data_dir.join("import.txt");
    std::fs::write(
        &file,
        format!("# users\nann:{argon}:reader,writer\nben:{bcrypt_hash}\n\n"),
    )
    .unwrap();
    let out = server
        .cli(&["user", "import", file.to_str().unwrap()], None)
        .await;
    out.assert_success();

    for (user, pw) in [("ann", "imported-argon-pw"), ("ben", "imported-bcrypt-pw")] {
        // Twice: the second login checks the upgraded (re-hashed) hash.
        for round in 0..2 {
            let mut c = server.client();
            let res = c.login(user, pw).await;
            assert_eq!(res.status, 200, "{user} login {round}: {}", res.text());
            assert_eq!(status(&c, "/api/notes").await, 200);
        }
        server
            .client()
            .login(user, "wrong-password")
            .await
            .assert_error(401, "invalid_credentials");
    }
    let mut c = server.client();
    let res = c.login_ok("ann", "imported-argon-pw").await;
    assert_eq!(
        res.json()["user"]["roles"],
        serde_json::json!(["reader", "writer"])
    );

    // A line with an unsupported hash is refused.
    std::fs::write(&file, "cat:plaintext-password\n").unwrap();
    let out = server
        .cli(&["user", "import", file.to_str().unwrap()], None)
        .await;
    assert!(
        !out.status.success(),
        "plain-text password imported: {out:?}"
    );
    server
        .client()
        .login("cat", "plaintext-password")
        .await
        .assert_error(401, "invalid_credentials");
}

#[tokio::test]
async fn demo_restart_reuses_the_same_data() {
    let dir = tempfile::tempdir().unwrap();
    let first = Server::builder(BIN)
        .data_dir(dir.path().join("data"))
        .start()
        .await;
    let pw = first.demo_password().to_owned();
    let c = first.demo_client().await;
    let user_id = c.claims().unwrap()["sub"].clone();
    let kid = c.kid().unwrap();
    first.stop().await;

    let second = Server::builder(BIN)
        .data_dir(dir.path().join("data"))
        .start()
        .await;
    assert_eq!(
        second.demo_password(),
        pw,
        "a second start printed another demo password"
    );
    let c = second.demo_client().await;
    assert_eq!(
        c.claims().unwrap()["sub"],
        user_id,
        "the demo user was made again"
    );
    assert_eq!(c.kid().unwrap(), kid, "signing keys were not kept");
}

#[tokio::test]
async fn two_nodes_share_sessions_and_revocations() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let origin = "https://app.tessera.test";
    // No refresh grace: a second use is reuse at once, so the cross-node detection below
    // needs no wait past a grace window (the window itself is tested by the clock in
    // crates/tessera-server/tests/inproc/sessions.rs).
    let config = format!("public_origin = \"{origin}\"\n[tokens]\nrefresh_grace = \"0s\"");
    let a = Server::builder(BIN)
        .data_dir(&data)
        .config(&config)
        .start()
        .await;
    let b = Server::builder(BIN)
        .data_dir(&data)
        .config(&config)
        .start()
        .await;
    assert_eq!(a.demo_password(), b.demo_password());

    let mut on_a = a.client();
    on_a.set_origin(origin);
    on_a.login_ok("demo", a.demo_password()).await;
    // The same cookies work on the other node.
    let on_b = b.client().with_jar(on_a.jar.clone());
    let mut on_b = on_b;
    on_b.set_origin(origin);
    assert_eq!(status(&on_b, "/auth/session").await, 200);
    let res = on_b
        .post("/api/notes")
        .with_csrf()
        .json(&serde_json::json!({"text": "via b"}))
        .send()
        .await;
    assert_eq!(res.status, 201, "{}", res.text());

    // Logout on A: B refuses the session within moments.
    let kept = on_b.clone();
    let res = on_a.post("/auth/logout").with_csrf().send().await;
    assert_eq!(res.status, 204, "{}", res.text());
    let (revoked, took) = eventually(Duration::from_secs(3), Duration::from_millis(100), || {
        let kept = kept.clone();
        async move { status(&kept, "/api/notes").await == 401 }
    })
    .await;
    assert!(
        revoked,
        "node B still accepts a session logged out on node A after {took:?}"
    );

    // Refresh rotated on B, reuse detected on A.
    let mut tab = b.client();
    tab.set_origin(origin);
    tab.login_ok("demo", b.demo_password()).await;
    let stolen = a.client().with_jar(tab.jar.clone());
    let mut stolen = stolen;
    stolen.set_origin(origin);
    assert_eq!(tab.refresh().await.status, 200);
    stolen
        .refresh()
        .await
        .assert_error(401, "refresh_token_reused");
    let (revoked, took) = eventually(Duration::from_secs(3), Duration::from_millis(100), || {
        let tab = tab.clone();
        async move { status(&tab, "/api/notes").await == 401 }
    })
    .await;
    assert!(
        revoked,
        "node B still accepts the session {took:?} after reuse was detected on node A"
    );
}

async fn jwks_kids(server: &Server) -> Vec<String> {
    let jwks = server
        .client()
        .get("/.well-known/jwks.json")
        .send()
        .await
        .json();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["kid"].as_str().map(str::to_owned))
        .collect()
}

/// Names of the server's threads, from `/proc`.
fn thread_names(server: &Server) -> Vec<String> {
    let pid = server.pid().expect("server pid");
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|t| {
            let comm = t.unwrap().path().join("comm");
            std::fs::read_to_string(comm).unwrap().trim().to_owned()
        })
        .collect()
}

/// `worker_threads = 1` runs the single-threaded scheduler (requests on the main thread,
/// no `tokio-rt-worker`), and the whole path still works on it: a login (answered from a
/// hashing thread), a proxied request, a logout revoking at once. Another number gives
/// that many worker threads.
#[tokio::test]
async fn worker_threads_sets_the_request_threads() {
    let server = Server::builder(BIN)
        .demo(true)
        .config("worker_threads = 1\n")
        .start()
        .await;
    let names = thread_names(&server);
    assert!(
        !names.iter().any(|n| n == "tokio-rt-worker"),
        "single-threaded runtime expected: {names:?}"
    );
    let mut c = server.demo_client().await;
    let kept = c.clone();
    let res = c.get("/api/notes").send().await;
    assert_eq!(res.status, 200, "{}", res.text());
    let res = c.post("/auth/logout").with_csrf().send().await;
    assert_eq!(res.status, 204, "{}", res.text());
    let mut old = kept.clone();
    old.get("/api/notes")
        .send()
        .await
        .assert_error(401, "unauthenticated");

    let server = Server::builder(BIN)
        .demo(true)
        .config("worker_threads = 3\n")
        .start()
        .await;
    let workers = thread_names(&server)
        .iter()
        .filter(|n| *n == "tokio-rt-worker")
        .count();
    assert_eq!(workers, 3);
    let mut c = server.demo_client().await;
    assert_eq!(c.get("/api/notes").send().await.status, 200);
}

/// A TCP forwarder to PostgreSQL that can be cut and restored: a database outage as the
/// node sees it, without touching the shared PostgreSQL server. Two kinds of cut: `Closed`
/// (every connection closed, new ones closed at once: the database or its host is down)
/// and `Silent` (connections stay open but nothing passes, new ones are accepted and
/// never answered: a network partition, where only timeouts tell).
mod forwarder {
    use std::sync::Arc;

    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::{watch, Mutex};
    use tokio::task::JoinHandle;

    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    pub(crate) enum Mode {
        Up,
        Closed,
        Silent,
    }

    pub(crate) struct Forwarder {
        pub port: u16,
        mode: watch::Sender<Mode>,
        conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
        accept: JoinHandle<()>,
    }

    impl Forwarder {
        pub(crate) async fn start(target: String) -> Forwarder {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let (mode, rx) = watch::channel(Mode::Up);
            let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
            let conns2 = Arc::clone(&conns);
            let accept = tokio::spawn(async move {
                loop {
                    let Ok((mut inbound, _)) = listener.accept().await else {
                        continue;
                    };
                    let mut rx = rx.clone();
                    let now = *rx.borrow_and_update();
                    let target = target.clone();
                    let task = tokio::spawn(async move {
                        match now {
                            Mode::Closed => {}
                            // Held open, never answered, until the forwarder is restored.
                            Mode::Silent => {
                                let _ = rx.wait_for(|m| *m == Mode::Up).await.map(|m| *m);
                            }
                            Mode::Up => {
                                let Ok(mut outbound) = TcpStream::connect(&target).await else {
                                    return;
                                };
                                tokio::select! {
                                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                                    m = async { rx.wait_for(|m| *m != Mode::Up).await.map(|m| *m) } => {
                                        // Silent: keep both sockets open and pass nothing
                                        // until restored; then close (as a real partition's
                                        // connections would have timed out).
                                        if m.is_ok_and(|m| m == Mode::Silent) {
                                            let _ = rx.wait_for(|m| *m == Mode::Up).await.map(|m| *m);
                                        }
                                    }
                                }
                            }
                        }
                        drop((inbound, rx));
                    });
                    conns2.lock().await.push(task);
                }
            });
            Forwarder {
                port,
                mode,
                conns,
                accept,
            }
        }

        pub(crate) async fn cut(&self, how: Mode) {
            self.mode.send_replace(how);
            if how == Mode::Closed {
                for t in self.conns.lock().await.drain(..) {
                    t.abort();
                }
            }
        }

        pub(crate) fn restore(&self) {
            self.mode.send_replace(Mode::Up);
        }
    }

    impl Drop for Forwarder {
        fn drop(&mut self) {
            self.accept.abort();
        }
    }
}

/// `/healthz` follows the store: with PostgreSQL cut off (a forwarder between the node
/// and the database closes every connection and refuses new ones) it says `degraded`
/// (`"store": false`, still 200: valid tokens are still served) within 2 s, and `ok`
/// within 2 s of the database coming back, without a restart. PostgreSQL at
/// 127.0.0.1:5432 (`TESSERA_TEST_PG_URL`); unreachable and not required
/// (`TESSERA_REQUIRE_POSTGRES`), the test says so and passes.
#[tokio::test]
async fn healthz_follows_a_store_outage_and_recovery_within_two_seconds() {
    let Some(pg) = tessera_testkit::pg::fresh_database("healthz").await else {
        return;
    };
    let fwd = forwarder::Forwarder::start(pg.host_port()).await;
    let url = pg.url_via(fwd.port);
    let server = Server::builder(BIN)
        .demo(false)
        .database_url(&url)
        .start()
        .await;
    let health = |s: &Server| {
        let mut c = s.client();
        async move {
            let res = c.get("/healthz").send().await;
            (
                res.status,
                res.json()["status"].as_str().unwrap_or("").to_owned(),
            )
        }
    };
    assert_eq!(health(&server).await, (200, "ok".to_owned()));

    let mut figures = Vec::new();
    let cuts = [
        forwarder::Mode::Closed,
        forwarder::Mode::Silent,
        forwarder::Mode::Closed,
        forwarder::Mode::Silent,
    ];
    for (round, how) in cuts.into_iter().enumerate() {
        fwd.cut(how).await;
        let (down, took) = eventually(
            Duration::from_secs(10),
            Duration::from_millis(20),
            || async { health(&server).await == (200, "degraded".to_owned()) },
        )
        .await;
        assert!(
            down,
            "round {round} ({how:?}): /healthz still ok {took:?} after the cut"
        );
        let down_after = took;
        fwd.restore();
        let (up, took) = eventually(
            Duration::from_secs(10),
            Duration::from_millis(20),
            || async { health(&server).await == (200, "ok".to_owned()) },
        )
        .await;
        assert!(
            up,
            "round {round} ({how:?}): /healthz still degraded {took:?} after the restore"
        );
        figures.push((how, down_after, took));
        // Let the node settle on its new connections before the next cut.
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    eprintln!("healthz (degraded after cut, ok after restore): {figures:?}");
    for (how, down, up) in &figures {
        assert!(
            *down <= Duration::from_millis(2000) && *up <= Duration::from_millis(2000),
            "{how:?} cut: degraded after {down:?}, ok again after {up:?} (limit 2 s each)"
        );
    }
    drop(server);
    pg.drop_now().await;
}
