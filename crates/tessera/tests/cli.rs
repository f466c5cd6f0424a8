//! Black-box: what a new user meets at the command line — admin commands on a folder
//! with no data, `tessera init`, the master key the CLI needs, misspelt variables and
//! files, readable output, file modes of the data, and colour in logs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use tessera_testkit::{run_tessera, CliOutput, Server};

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

/// A temporary folder with a `tessera.toml` whose `data_dir` is `<tmp>/data` (not made),
/// then `extra` from line 2, then cheap `[passwords]`.
struct Folder {
    tmp: tempfile::TempDir,
}

impl Folder {
    fn new(extra: &str) -> Folder {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        std::fs::write(
            tmp.path().join("tessera.toml"),
            format!(
                "data_dir = {:?}\n{extra}\n[passwords]\nm_cost = 8192\nt_cost = 1\n",
                data.display().to_string()
            ),
        )
        .unwrap();
        Folder { tmp }
    }

    fn data(&self) -> PathBuf {
        self.tmp.path().join("data")
    }

    fn config(&self) -> String {
        self.tmp.path().join("tessera.toml").display().to_string()
    }

    async fn run(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> CliOutput {
        let config = self.config();
        let mut all = args.to_vec();
        all.extend(["--config", config.as_str()]);
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        run_tessera(Path::new(BIN), &all, &env, stdin).await
    }
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

fn other_master_key() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode([9u8; 32])
}

/// Every admin command on a folder without data: exit 2, "no tessera data found" with the
/// data folder, database and configuration file it used, and nothing created — no
/// folder, database or key.
#[tokio::test]
async fn admin_commands_on_no_data_create_nothing_and_say_where_they_looked() {
    let f = Folder::new("");
    let commands: [&[&str]; 9] = [
        &["user", "list"],
        &["user", "add", "bob", "--password-stdin"],
        &["user", "revoke", "bob"],
        &["keys", "list"],
        &["keys", "rotate"],
        &["client", "add", "svc"],
        &["client", "list"],
        &["audit", "tail"],
        &["user", "import", "/nonexistent"],
    ];
    let db = f.data().join("tessera.db");
    for args in commands {
        let out = f.run(args, &[], Some("a-good-long-password\n")).await;
        assert_eq!(out.code(), Some(2), "{args:?}: {out:?}");
        for needle in [
            "no tessera data found",
            &f.data().display().to_string(),
            &db.display().to_string(),
            &f.config(),
            "tessera init",
        ] {
            assert!(
                out.stderr.contains(needle),
                "{args:?}: {needle:?} not in: {}",
                out.stderr
            );
        }
        assert!(
            !f.data().exists(),
            "{args:?} created {}",
            f.data().display()
        );
    }

    // Without --config it says so (the data folder from the environment here).
    let data = f.data().display().to_string();
    let out = run_tessera(
        Path::new(BIN),
        &["user", "list"],
        &[("TESSERA_DATA_DIR".into(), data.clone())],
        None,
    )
    .await;
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(
        out.stderr.contains("no configuration file") && out.stderr.contains(&data),
        "{}",
        out.stderr
    );
    assert!(!f.data().exists());
}

/// `tessera init` makes the data folder (0700), master key (0600), database (0600) and
/// a signing key, says so line by line; run again it keeps everything; then the admin
/// commands work and `keys list` shows RFC 3339 UTC times.
#[tokio::test]
async fn init_creates_private_data_and_says_what_it_made() {
    let f = Folder::new("");
    let out = f.run(&["init"], &[], None).await;
    out.assert_success();
    let data = f.data();
    for line in [
        format!("created data folder {} (mode 0700)", data.display()),
        format!("created master key {}", data.join("master.key").display()),
        format!(
            "created database sqlite://{} (mode 0600)",
            data.join("tessera.db").display()
        ),
        "created signing key ".to_owned(),
    ] {
        assert!(
            out.stdout.contains(&line),
            "{line:?} not in:\n{}",
            out.stdout
        );
    }
    #[cfg(unix)]
    {
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("master.key")), 0o600);
        assert_eq!(mode(&data.join("tessera.db")), 0o600);
    }
    let keys = f.run(&["keys", "list"], &[], None).await;
    keys.assert_success();
    let rows: Vec<&str> = keys.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{}", keys.stdout);
    let cells: Vec<&str> = rows[0].split_whitespace().collect();
    assert_eq!(cells[2], "active", "{}", keys.stdout);
    let activates = cells[3];
    assert!(
        activates.len() == 20
            && activates.ends_with('Z')
            && activates.as_bytes()[10] == b'T'
            && activates.starts_with("20"),
        "not RFC 3339 UTC: {activates:?}\n{}",
        keys.stdout
    );
    let kid = cells[0].to_owned();

    let again = f.run(&["init"], &[], None).await;
    again.assert_success();
    assert!(!again.stdout.contains("created"), "{}", again.stdout);
    assert!(again.stdout.contains("already exists"), "{}", again.stdout);
    let keys = f.run(&["keys", "list"], &[], None).await;
    assert!(keys.stdout.contains(&kid), "a second init changed the keys");

    f.run(
        &["user", "add", "bob", "--password-stdin"],
        &[],
        Some("a-good-long-password\n"),
    )
    .await
    .assert_success();
    let list = f.run(&["user", "list"], &[], None).await;
    list.assert_success();
    assert!(list.stdout.contains("bob"), "{}", list.stdout);

    // With TESSERA_MASTER_KEY, no key file is written.
    let g = Folder::new("");
    let key = other_master_key();
    let out = g
        .run(&["init"], &[("TESSERA_MASTER_KEY", &key)], None)
        .await;
    out.assert_success();
    assert!(
        out.stdout.contains("from TESSERA_MASTER_KEY"),
        "{}",
        out.stdout
    );
    assert!(!g.data().join("master.key").exists());
    g.run(
        &["client", "add", "svc"],
        &[("TESSERA_MASTER_KEY", &key)],
        None,
    )
    .await
    .assert_success();
}

/// The admin commands never make a master key: without one (no TESSERA_MASTER_KEY, no
/// master.key) `client add` and `keys` refuse naming where they looked; with another
/// cluster's key they refuse naming it. `init` will not make a new key for a database
/// whose keys it could not open, and neither will `serve`.
#[tokio::test]
async fn admin_commands_need_the_clusters_master_key() {
    let f = Folder::new("");
    f.run(&["init"], &[], None).await.assert_success();
    let key_file = f.data().join("master.key");
    let right = std::fs::read_to_string(&key_file).unwrap();
    std::fs::remove_file(&key_file).unwrap();

    for args in [
        &["client", "add", "svc"][..],
        &["keys", "list"],
        &["keys", "rotate"],
    ] {
        let out = f.run(args, &[], None).await;
        assert_eq!(out.code(), Some(2), "{args:?}: {out:?}");
        assert!(
            out.stderr.contains("no master key")
                && out.stderr.contains("TESSERA_MASTER_KEY")
                && out.stderr.contains(&key_file.display().to_string()),
            "{args:?}: {}",
            out.stderr
        );
        assert!(!out.stdout.contains("secret"), "{args:?}: {}", out.stdout);
        assert!(!key_file.exists(), "{args:?} made a master key");
    }
    // Commands that need no master key still work.
    f.run(&["user", "list"], &[], None).await.assert_success();
    f.run(&["client", "list"], &[], None).await.assert_success();

    // init refuses to make a new master key for keys sealed by another.
    let out = f.run(&["init"], &[], None).await;
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("refusing"), "{}", out.stderr);
    assert!(!key_file.exists(), "init made a master key for sealed keys");
    // And so does serve (it used to leave a new master.key that then failed every start).
    let e = Server::builder(BIN)
        .demo(false)
        .data_dir(f.data())
        .try_start()
        .await
        .expect_err("served keys it cannot open");
    assert_eq!(e.status.and_then(|s| s.code()), Some(2), "{e}");
    assert!(e.stderr.contains("refusing"), "{}", e.stderr);
    assert!(
        !key_file.exists(),
        "serve made a master key for sealed keys"
    );

    // Another cluster's key, from the environment or the file: refused, named.
    let other = other_master_key();
    let out = f
        .run(
            &["client", "add", "svc"],
            &[("TESSERA_MASTER_KEY", &other)],
            None,
        )
        .await;
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(
        out.stderr.contains("cannot open signing key") && out.stderr.contains("TESSERA_MASTER_KEY"),
        "{}",
        out.stderr
    );
    assert!(!out.stdout.contains("secret"), "{}", out.stdout);
    std::fs::write(&key_file, &other).unwrap();
    let out = f.run(&["client", "add", "svc"], &[], None).await;
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(
        out.stderr.contains("cannot open signing key")
            && out.stderr.contains(&key_file.display().to_string()),
        "{}",
        out.stderr
    );

    // The right key works, and nothing was added by the refused attempts.
    std::fs::remove_file(&key_file).unwrap();
    let out = f
        .run(
            &["client", "add", "svc"],
            &[("TESSERA_MASTER_KEY", right.trim())],
            None,
        )
        .await;
    out.assert_success();
    assert!(out.stdout.contains("secret: "), "{}", out.stdout);
}

/// A misspelt `TESSERA_*` variable stops the CLI and the server with exit 2 naming it;
/// the project's own non-configuration variables are allowed.
#[tokio::test]
async fn misspelt_variables_are_refused_by_name() {
    let f = Folder::new("");
    f.run(&["init"], &[], None).await.assert_success();
    for (var, hint) in [
        (
            "TESSERA_TOKENS_ACCESS_TTL",
            Some("TESSERA_TOKENS__ACCESS_TTL"),
        ),
        ("TESSERA_FOO", None),
        ("TESSERA_MASTERKEY", None),
    ] {
        let out = f.run(&["user", "list"], &[(var, "5m")], None).await;
        assert_eq!(out.code(), Some(2), "{var}: {out:?}");
        assert!(out.stderr.contains(var), "{var}: {}", out.stderr);
        if let Some(h) = hint {
            assert!(out.stderr.contains(h), "{var}: no hint {h}: {}", out.stderr);
        }
    }
    let e = Server::builder(BIN)
        .env("TESSERA_TOKENS_ACCESS_TTL", "5m")
        .try_start()
        .await
        .expect_err("started with a misspelt variable");
    assert_eq!(e.status.and_then(|s| s.code()), Some(2), "{e}");
    assert!(
        e.stderr.contains("TESSERA_TOKENS_ACCESS_TTL"),
        "{}",
        e.stderr
    );

    for var in [
        "TESSERA_BIN",
        "TESSERA_TEST_PG_URL",
        "TESSERA_REQUIRE_POSTGRES",
        "TESSERA_SKIP_NGINX",
    ] {
        f.run(&["user", "list"], &[(var, "1")], None)
            .await
            .assert_success();
    }
    // A bad value from the environment names its variable, and the key once.
    let out = f
        .run(
            &["user", "list"],
            &[("TESSERA_TOKENS__ACCESS_TTL", "forever")],
            None,
        )
        .await;
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(
        out.stderr.contains("TESSERA_TOKENS__ACCESS_TTL"),
        "{}",
        out.stderr
    );
    assert_eq!(
        out.stderr.matches("tokens.access_ttl").count(),
        1,
        "{}",
        out.stderr
    );
}

/// A TOML syntax error names the file, line and column; a type error names its key
/// once; an unreachable database names host and port (and never the password).
#[tokio::test]
async fn configuration_errors_say_where() {
    // Line 3 of the file, column 11 (the `s`).
    let f = Folder::new("[tokens]\nleeway = 5s\n");
    let out = f.run(&["user", "list"], &[], None).await;
    assert_eq!(out.code(), Some(2), "{out:?}");
    let at = format!("{}:3:11:", f.config());
    assert!(out.stderr.contains(&at), "{at:?} not in: {}", out.stderr);
    assert!(out.stderr.contains("not valid TOML"), "{}", out.stderr);
    assert!(!out.stderr.contains("--config"), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);

    let f = Folder::new("[tokens]\naccess_ttl = 5\n");
    let out = f.run(&["user", "list"], &[], None).await;
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert_eq!(
        out.stderr.matches("access_ttl").count(),
        1,
        "the key is named more than once: {}",
        out.stderr
    );
    assert!(out.stderr.contains("`tokens.access_ttl`"), "{}", out.stderr);

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let f = Folder::new(&format!(
        "database_url = \"postgres://tessera:hunter2-secret@127.0.0.1:{port}/tessera\"\n"
    ));
    let out = f.run(&["user", "list"], &[], None).await;
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(
        out.stderr.contains(&format!("127.0.0.1:{port}")),
        "host and port not named: {}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("hunter2"),
        "password shown: {}",
        out.stderr
    );
}

/// `--password-stdin` with nothing on stdin says so; `audit tail -n 0` prints nothing;
/// `user import` names the line and the field that is wrong and adds nobody.
#[tokio::test]
async fn cli_output_says_what_is_wrong() {
    let f = Folder::new("");
    f.run(&["init"], &[], None).await.assert_success();
    for stdin in ["", "\n"] {
        let out = f
            .run(
                &["user", "add", "bob", "--password-stdin"],
                &[],
                Some(stdin),
            )
            .await;
        assert_eq!(out.code(), Some(1), "{out:?}");
        assert!(
            out.stderr.contains("no password on stdin"),
            "{}",
            out.stderr
        );
    }
    f.run(
        &["user", "add", "bob", "--password-stdin"],
        &[],
        Some("a-good-long-password\n"),
    )
    .await
    .assert_success();

    let file = f.tmp.path().join("users.txt");
    let hash = bcrypt::hash("imported-password", 4).unwrap();
    let good = format!("ann:{hash}:reader");
    for (body, line, field, hidden) in [
        (
            format!("{good}\nbad name!:$2b$04$x\n"),
            2,
            "username \"bad name!\"",
            None,
        ),
        (
            format!("# c\n{good}\ncat:plaintext-password\n"),
            3,
            "hash of \"cat\"",
            Some("plaintext-password"),
        ),
        (
            format!("{good}\ndan:{hash}:good,bad role\n"),
            2,
            "role \"bad role\"",
            None,
        ),
        (
            "justapassword\n".to_owned(),
            1,
            "expected username:hash",
            Some("justapassword"),
        ),
    ] {
        std::fs::write(&file, &body).unwrap();
        let out = f
            .run(&["user", "import", file.to_str().unwrap()], &[], None)
            .await;
        assert_eq!(out.code(), Some(1), "{body}: {out:?}");
        let at = format!("{}:{line}: {field}", file.display());
        assert!(out.stderr.contains(&at), "{at:?} not in: {}", out.stderr);
        if let Some(h) = hidden {
            assert!(
                !out.stderr.contains(h),
                "the field was shown: {}",
                out.stderr
            );
        }
    }
    let list = f.run(&["user", "list"], &[], None).await;
    assert!(
        !list.stdout.contains("ann"),
        "a refused file added users: {}",
        list.stdout
    );

    let out = f.run(&["audit", "tail", "-n", "-1"], &[], None).await;
    assert_eq!(out.code(), Some(2), "{out:?}");
}

/// `audit tail -n 0` prints nothing, `-n 1` one event (a server made some).
#[tokio::test]
async fn audit_tail_prints_exactly_n() {
    let server = Server::demo(BIN).await;
    let mut c = server.client();
    let _ = c.login("demo", "wrong-password").await;
    c.login_ok("demo", server.demo_password()).await;
    let out = server.cli(&["audit", "tail", "-n", "0"], None).await;
    out.assert_success();
    assert_eq!(out.stdout, "", "-n 0 printed events");
    let out = server.cli(&["audit", "tail", "-n", "1"], None).await;
    out.assert_success();
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.stdout);
    let out = server.cli(&["audit", "tail"], None).await;
    assert!(out.stdout.lines().count() >= 2, "{}", out.stdout);
}

/// `serve --demo` and plain `serve` on an empty folder create their data, say so in one
/// log line, and keep it private: folder 0700; master key, database and its -wal/-shm
/// files, demo password 0600.
#[tokio::test]
async fn serve_creates_private_data_and_says_so() {
    for demo in [true, false] {
        let shared = tempfile::tempdir().unwrap();
        let server = Server::builder(BIN)
            .demo(demo)
            .data_dir(shared.path().join("data"))
            .start()
            .await;
        if demo {
            server.demo_client().await;
        }
        let data = server.data_dir.clone();
        let logs = server.logs();
        let said: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains("no tessera data found: created a new"))
            .collect();
        assert_eq!(said.len(), 1, "demo {demo}: {logs}");
        assert!(
            said[0].contains(&data.display().to_string()) && said[0].contains("tessera.db"),
            "{}",
            said[0]
        );
        #[cfg(unix)]
        {
            assert_eq!(mode(&data), 0o700, "demo {demo}: data folder");
            let mut files = vec![
                "master.key",
                "tessera.db",
                "tessera.db-wal",
                "tessera.db-shm",
            ];
            if demo {
                files.push("demo-password");
            }
            for name in files {
                assert_eq!(mode(&data.join(name)), 0o600, "demo {demo}: {name}");
            }
        }
        if demo {
            // A second start on the same data says nothing about creating.
            let pw = server.demo_password().to_owned();
            server.stop().await;
            let again = Server::builder(BIN).data_dir(&data).start().await;
            assert_eq!(again.demo_password(), pw);
            assert!(!again.logs().contains("created a new"), "{}", again.logs());
        }
    }
}

/// Colour in logs only where asked: `auto` (default) writes none to a file even without
/// NO_COLOR; `always` colours (even with NO_COLOR); `never` never.
#[tokio::test]
async fn logs_are_coloured_only_when_asked() {
    for (color, no_color, want) in [
        (None, "", false),
        (Some("auto"), "", false),
        (Some("always"), "1", true),
        (Some("never"), "", false),
    ] {
        let mut b = Server::builder(BIN).demo(false).env("NO_COLOR", no_color);
        if let Some(c) = color {
            b = b.config(&format!("[log]\ncolor = \"{c}\"\n"));
        }
        let server = b.start().await;
        let mut logs = server.logs();
        for _ in 0..100 {
            if logs.contains("tessera started") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            logs = server.logs();
        }
        assert!(logs.contains("tessera started"), "{logs}");
        assert_eq!(
            logs.contains('\u{1b}'),
            want,
            "log.color {color:?}, NO_COLOR={no_color:?}: {logs:?}"
        );
    }
}

/// PostgreSQL: "no data" means tessera's tables are absent. An admin command on an empty
/// database refuses and creates no table; `init` creates them; then the command works.
/// PostgreSQL at 127.0.0.1:5432 (`TESSERA_TEST_PG_URL`); unreachable and not required
/// (`TESSERA_REQUIRE_POSTGRES`), the test says so and passes.
#[tokio::test]
async fn postgres_without_tessera_tables_is_no_data() {
    use sqlx::Connection;
    let Some(pg) = tessera_testkit::pg::fresh_database("cli").await else {
        return;
    };
    let (url, name) = (pg.url.clone(), pg.name.clone());
    let f = Folder::new(&format!("database_url = {url:?}"));

    let out = f.run(&["user", "list"], &[], None).await;
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(
        out.stderr.contains("no tessera data found") && out.stderr.contains(&name),
        "{}",
        out.stderr
    );
    let mut db = sqlx::PgConnection::connect(&url).await.unwrap();
    let tables: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(tables, 0, "an admin command created tables");

    let out = f.run(&["init"], &[], None).await;
    out.assert_success();
    assert!(
        out.stdout.contains("created database postgres://"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("created signing key"), "{}", out.stdout);
    f.run(&["user", "list"], &[], None).await.assert_success();
    f.run(&["keys", "list"], &[], None).await.assert_success();

    drop(db);
    pg.drop_now().await;
}
