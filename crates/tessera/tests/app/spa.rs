//! Black-box: the operator's own SPA served from `static_dir`: `static_csp` on its files, tessera's JSON keeping `default-src 'none'`, an
//! upstream's own security headers kept, and `spa_fallback` for browser navigations only
//! (docs/deployment.md "Your own SPA").
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use tessera_testkit::inproc::InProc;
use tessera_testkit::{Method, Resp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// docs/configuration.md's default `static_csp`, written out here so a change to it is a
/// visible change to this test.
const DEFAULT_STATIC_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";
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
async fn server(dir: &Path, extra: &str) -> InProc {
    InProc::builder()
        .config(&format!("static_dir = {}\n{extra}", quoted(dir)))
        .start()
        .await
}

fn csp(res: &Resp) -> Option<String> {
    res.header("content-security-policy")
}

fn is_index(res: &Resp) -> bool {
    res.status == 200 && res.text() == INDEX
}

#[tokio::test]
async fn static_files_get_static_csp_and_json_keeps_none() {
    let dir = spa_dir();
    let server = server(dir.path(), "").await;
    let mut c = server.client();
    for path in [
        "/",
        "/index.html",
        "/assets/app-1234.js",
        "/assets/style-1234.css",
    ] {
        let res = c.get(path).send().await;
        assert_eq!(res.status, 200, "{path}: {}", res.text());
        assert_eq!(csp(&res).as_deref(), Some(DEFAULT_STATIC_CSP), "{path}");
        assert_eq!(res.header_all("content-security-policy").len(), 1, "{path}");
        assert_eq!(res.header("x-frame-options").as_deref(), Some("DENY"));
        assert_eq!(
            res.header("x-content-type-options").as_deref(),
            Some("nosniff")
        );
    }
    // tessera's own answers and its JSON errors keep the strict policy.
    for (path, status) in [
        ("/auth/session", 401),
        ("/api/notes", 401),
        ("/healthz", 200),
        ("/.well-known/jwks.json", 200),
    ] {
        let res = c
            .get(path)
            .header("accept", "application/json")
            .send()
            .await;
        assert_eq!(res.status, status, "{path}: {}", res.text());
        assert!(res.is_json(), "{path}");
        assert_eq!(csp(&res).as_deref(), Some(JSON_CSP), "{path}");
    }
    // tessera.js keeps its own (the demo's) policy, not the static one.
    let js = c.get("/tessera.js").send().await;
    assert_eq!(js.status, 200);
    assert!(csp(&js).is_some_and(|p| p.starts_with("default-src 'self'")));
}

/// A plain-HTTP upstream answering every request with an HTML page and its own CSP,
/// `X-Frame-Options` and `Referrer-Policy` on `/pages/own`, none on other paths.
async fn html_upstream() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 65536 {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf);
                let own = head.starts_with("GET /pages/own ");
                let body = "<!doctype html><p>rendered by the upstream</p>";
                let extra = if own {
                    "Content-Security-Policy: default-src 'self'; script-src 'nonce-r4nd0m'\r\n\
                     X-Frame-Options: SAMEORIGIN\r\nReferrer-Policy: no-referrer\r\n"
                } else {
                    ""
                };
                let res = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n{extra}\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(res.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn an_upstreams_own_security_headers_are_kept() {
    let dir = spa_dir();
    let upstream = html_upstream().await;
    let server = server(
        dir.path(),
        &format!("upstream = \"{upstream}\"\npublic_paths = [\"/pages/\"]\nspa_fallback = \"index.html\""),
    )
    .await;
    let mut c = server.client();
    let res = c
        .get("/pages/own")
        .header("accept", "text/html")
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert!(res.text().contains("rendered by the upstream"));
    assert_eq!(
        res.header_all("content-security-policy"),
        vec!["default-src 'self'; script-src 'nonce-r4nd0m'".to_owned()]
    );
    assert_eq!(
        res.header_all("x-frame-options"),
        vec!["SAMEORIGIN".to_owned()]
    );
    assert_eq!(
        res.header_all("referrer-policy"),
        vec!["no-referrer".to_owned()]
    );
    // An upstream answer without its own headers gets tessera's.
    let res = c
        .get("/pages/plain")
        .header("accept", "text/html")
        .send()
        .await;
    assert_eq!(res.status, 200);
    assert!(res.text().contains("rendered by the upstream"));
    assert_eq!(csp(&res).as_deref(), Some(JSON_CSP));
    assert_eq!(res.header("x-frame-options").as_deref(), Some("DENY"));
    assert_eq!(
        res.header("referrer-policy").as_deref(),
        Some("strict-origin-when-cross-origin")
    );
}

#[tokio::test]
async fn spa_fallback_answers_navigations_only() {
    let dir = spa_dir();
    let server = server(
        dir.path(),
        "spa_fallback = \"index.html\"\npublic_paths = [\"/api/public/\"]\napi_prefixes = [\"/api/\"]",
    )
    .await;
    let mut anon = server.client();

    // Navigations to client-side routes: the SPA's file, signed in or not.
    for (name, value) in [
        (
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("sec-fetch-mode", "navigate"),
        ("sec-fetch-dest", "document"),
    ] {
        for path in ["/notes", "/notes/42/edit", "/settings/"] {
            let res = anon.get(path).header(name, value).send().await;
            assert!(
                is_index(&res),
                "{path} {name}: {} {}",
                res.status,
                res.text()
            );
            assert_eq!(res.header("cache-control").as_deref(), Some("no-cache"));
            assert_eq!(csp(&res).as_deref(), Some(DEFAULT_STATIC_CSP));
            assert!(res
                .header("content-type")
                .is_some_and(|t| t.starts_with("text/html")));
        }
    }
    let head = anon
        .request(Method::HEAD, "/notes/42")
        .header("accept", "text/html")
        .send()
        .await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("cache-control").as_deref(), Some("no-cache"));

    let mut user = server.demo_client().await;
    let res = user
        .get("/notes/42")
        .header("accept", "text/html")
        .send()
        .await;
    assert!(is_index(&res), "signed in: {} {}", res.status, res.text());

    // API calls go to the upstream as before: 401 JSON without a session.
    for accept in ["application/json", "*/*", "text/plain"] {
        let res = anon.get("/notes/42").header("accept", accept).send().await;
        res.assert_error(401, "unauthenticated");
        assert_eq!(csp(&res).as_deref(), Some(JSON_CSP));
    }
    let res = anon.get("/notes/42").send().await;
    res.assert_error(401, "unauthenticated");
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
        let res = anon
            .request(method.clone(), "/notes/42")
            .header("accept", "text/html")
            .same_origin()
            .send()
            .await;
        assert!(!is_index(&res), "{method}: {}", res.status);
        assert!(res.is_json(), "{method}: {} {}", res.status, res.text());
    }
    // Paths that look like files stay misses.
    for path in ["/assets/app-9999.js", "/favicon.ico", "/notes/report.pdf"] {
        let res = anon.get(path).header("accept", "text/html").send().await;
        res.assert_error(401, "unauthenticated");
        // Signed in, the upstream answers: the demo API has no such path.
        let res = user.get(path).header("accept", "text/html").send().await;
        assert_eq!(res.status, 404, "{path}: {}", res.text());
        assert!(!is_index(&res));
    }
    // Public paths and `api_prefixes` reach the upstream; tessera's reserved prefixes
    // are never the SPA.
    let res = anon
        .get("/api/public/hello")
        .header("accept", "text/html")
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert!(res.is_json() && !is_index(&res));
    anon.get("/api/notes")
        .header("accept", "text/html")
        .send()
        .await
        .assert_error(401, "unauthenticated");
    let res = user
        .get("/api/notes")
        .header("accept", "text/html")
        .send()
        .await;
    assert_eq!(res.status, 200);
    assert!(res.is_json(), "{}", res.text());
    for path in ["/auth/nothing", "/.well-known/nothing"] {
        let res = anon.get(path).header("accept", "text/html").send().await;
        assert!(!is_index(&res), "{path}");
        assert!(res.is_json(), "{path}: {}", res.status);
    }
    // An existing file is still itself.
    let res = anon
        .get("/assets/app-1234.js")
        .header("accept", "text/html")
        .send()
        .await;
    assert_eq!(res.text(), "console.log('app');\n");
}

#[tokio::test]
async fn without_spa_fallback_navigations_are_not_rewritten() {
    let dir = spa_dir();
    let server = server(dir.path(), "").await;
    server
        .client()
        .get("/notes/42")
        .header("accept", "text/html")
        .send()
        .await
        .assert_error(401, "unauthenticated");
}
