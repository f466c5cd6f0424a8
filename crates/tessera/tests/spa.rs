//! Black-box against the binary: the SPA settings as the binary loads them, `static_csp`
//! from the environment, and bad `static_dir`/`spa_fallback` values stopping start-up
//! naming the key (docs/deployment.md "Your own SPA"). What the gateway does with them is
//! tests/app/spa.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use tessera_testkit::{Resp, Server};

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

const JSON_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
const INDEX: &str = "<!doctype html><title>spa</title><div id=app data-marker=spa-index></div>";

/// A built SPA: `index.html`, `assets/app-1234.js`, `assets/style-1234.css`.
fn spa_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("assets")).unwrap();
    std::fs::write(dir.path().join("index.html"), INDEX).unwrap();
    std::fs::write(
        dir.path().join("assets/app-1234.js"),
        "console.log('app');\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("assets/style-1234.css"),
        "body { margin: 0 }\n",
    )
    .unwrap();
    dir
}

fn quoted(p: &Path) -> String {
    serde_json::to_string(&p.to_string_lossy()).unwrap()
}

/// The demo (its notes API as the upstream) with `static_dir` = `dir` and `extra` TOML.
async fn server(dir: &Path, extra: &str) -> Server {
    Server::builder(BIN)
        .config(&format!("static_dir = {}\n{extra}", quoted(dir)))
        .start()
        .await
}

fn csp(res: &Resp) -> Option<String> {
    res.header("content-security-policy")
}

#[tokio::test]
async fn static_csp_can_be_set_by_env_or_turned_off() {
    let dir = spa_dir();
    let custom = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; frame-ancestors 'none'";
    let server = Server::builder(BIN)
        .config(&format!("static_dir = {}\n", quoted(dir.path())))
        .env("TESSERA_STATIC_CSP", custom)
        .start()
        .await;
    let res = server.client().get("/index.html").send().await;
    assert_eq!(res.status, 200);
    assert_eq!(csp(&res).as_deref(), Some(custom));

    let server = server_with_empty_csp(dir.path()).await;
    let mut c = server.client();
    let res = c.get("/index.html").send().await;
    assert_eq!(res.status, 200);
    assert_eq!(csp(&res), None, "static_csp = \"\" sends none");
    assert_eq!(res.header("x-frame-options").as_deref(), Some("DENY"));
    let res = c.get("/auth/session").send().await;
    assert_eq!(res.status, 401);
    assert_eq!(csp(&res).as_deref(), Some(JSON_CSP));
}

async fn server_with_empty_csp(dir: &Path) -> Server {
    server(dir, "static_csp = \"\"").await
}

#[tokio::test]
async fn bad_static_settings_stop_start_up_naming_the_key() {
    let dir = spa_dir();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.html"), "x").unwrap();
    let escape = format!(
        "../{}/secret.html",
        outside.path().file_name().unwrap().to_string_lossy()
    );
    std::os::unix::fs::symlink(
        outside.path().join("secret.html"),
        dir.path().join("link.html"),
    )
    .unwrap();
    let cases: Vec<(String, &str)> = vec![
        ("spa_fallback = \"missing.html\"".into(), "spa_fallback"),
        ("spa_fallback = \"assets\"".into(), "spa_fallback"),
        (
            format!("spa_fallback = {}", quoted(Path::new(&escape))),
            "spa_fallback",
        ),
        ("spa_fallback = \"link.html\"".into(), "spa_fallback"),
        (
            format!("spa_fallback = {}", quoted(&dir.path().join("index.html"))),
            "spa_fallback",
        ),
        (
            "static_csp = \"default-src 'self'\\nscript-src *\"".into(),
            "static_csp",
        ),
        (
            "static_csp = \"default-src 'self'\\r\"".into(),
            "static_csp",
        ),
        ("static_csp = \"default-src \\u0000\"".into(), "static_csp"),
        ("api_prefixes = [\"api/\"]".into(), "api_prefixes[0]"),
    ];
    for (extra, key) in cases {
        let err = Server::builder(BIN)
            .config(&format!("static_dir = {}\n{extra}\n", quoted(dir.path())))
            .try_start()
            .await
            .err()
            .unwrap_or_else(|| panic!("started with {extra}"));
        assert_eq!(err.status.and_then(|s| s.code()), Some(2), "{extra}: {err}");
        assert!(
            err.stderr.contains(&format!("`{key}`")),
            "{extra}: stderr does not name {key}: {err}"
        );
    }
    // spa_fallback without static_dir.
    let err = Server::builder(BIN)
        .config("spa_fallback = \"index.html\"\n")
        .try_start()
        .await
        .err()
        .unwrap_or_else(|| panic!("started with spa_fallback and no static_dir"));
    assert_eq!(err.status.and_then(|s| s.code()), Some(2), "{err}");
    assert!(err.stderr.contains("`spa_fallback`"), "{err}");
}
