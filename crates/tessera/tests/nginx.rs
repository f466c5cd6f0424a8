//! Black-box, for real: Debian's nginx in front of a sample upstream, with tessera as its
//! `auth_request` server, configured by `deploy/nginx/tessera.conf` itself (only addresses,
//! ports, certificate paths and the static root are rewritten), so the documented
//! configuration is the tested one.
//!
//! nginx terminates TLS with a certificate tessera generated (self-signed mode, in a
//! throw-away data folder); tessera itself runs with `[tls] mode = "off"` behind it.
//!
//! Needs `/usr/sbin/nginx` (`apt-get install -y nginx`); without it the test fails, unless
//! `TESSERA_SKIP_NGINX=1`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Map, Value};
use tessera_testkit::cookie_names::{CLAIMS, CSRF, REFRESH, SIG};
use tessera_testkit::{Client, Resp, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_tessera");
const NGINX: &str = "/usr/sbin/nginx";
const PASSWORD: &str = "correct horse battery staple";

/// The documented configuration, relative to this crate.
fn documented_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/nginx/tessera.conf")
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// Replaces `from` by `to` in `text`, insisting `from` occurs exactly once (so the test
/// notices when the documented file changes shape).
fn replace_once(text: &str, from: &str, to: &str) -> String {
    let n = text.matches(from).count();
    assert_eq!(
        n, 1,
        "deploy/nginx/tessera.conf: expected `{from}` exactly once, found it {n} times"
    );
    text.replacen(from, to, 1)
}

// ── the sample upstream: echoes each request as JSON, and remembers it ────────────────

type Seen = Arc<Mutex<Vec<Value>>>;

async fn read_request(stream: &mut TcpStream) -> Option<Value> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > 1 << 20 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut start = lines.next()?.split(' ');
    let method = start.next()?.to_owned();
    let target = start.next()?.to_owned();
    let mut headers = Map::new();
    let mut content_length = 0usize;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim().to_owned();
        if name == "content-length" {
            content_length = value.parse().ok()?;
        }
        let joined = match headers.get(&name).and_then(Value::as_str) {
            Some(prev) => format!("{prev}, {value}"),
            None => value,
        };
        headers.insert(name, Value::String(joined));
    }
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < content_length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(json!({
        "method": method,
        "path": target,
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    }))
}

async fn start_upstream() -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let Some(req) = read_request(&mut stream).await else {
                    return;
                };
                log.lock().unwrap().push(req.clone());
                let body = serde_json::to_vec(&req).unwrap();
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&body).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (addr, seen)
}

// ── nginx ──────────────────────────────────────────────────────────────────────────

struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
}

impl Nginx {
    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // One process (`master_process off`): killing it leaves no orphaned workers.
        let _ = self.child.start_kill();
    }
}

struct Ports {
    listen: u16,
    tessera: SocketAddr,
    app: SocketAddr,
}

async fn start_nginx(ports: &Ports, cert: &Path, key: &Path) -> Nginx {
    let dir = tempfile::Builder::new()
        .prefix("tessera-nginx-")
        .tempdir()
        .unwrap();
    let p = dir.path();
    let www = p.join("www");
    std::fs::create_dir(&www).unwrap();
    std::fs::write(
        www.join("index.html"),
        "<!doctype html><title>spa</title>\n",
    )
    .unwrap();
    let tls = p.join("tls");
    std::fs::create_dir(&tls).unwrap();
    std::fs::copy(cert, tls.join("cert.pem")).unwrap();
    std::fs::copy(key, tls.join("key.pem")).unwrap();

    let doc = std::fs::read_to_string(documented_config())
        .expect("read deploy/nginx/tessera.conf (the documented nginx configuration)");
    let mut site = replace_once(
        &doc,
        "listen 443 ssl;",
        &format!("listen 127.0.0.1:{} ssl;", ports.listen),
    );
    site = replace_once(
        &site,
        "server 127.0.0.1:8080;",
        &format!("server {};", ports.tessera),
    );
    site = replace_once(
        &site,
        "server 127.0.0.1:3000;",
        &format!("server {};", ports.app),
    );
    site = replace_once(
        &site,
        "/etc/ssl/tessera/app.example.com.crt",
        &tls.join("cert.pem").display().to_string(),
    );
    site = replace_once(
        &site,
        "/etc/ssl/tessera/app.example.com.key",
        &tls.join("key.pem").display().to_string(),
    );
    site = replace_once(
        &site,
        "root /var/www/app;",
        &format!("root {};", www.display()),
    );
    std::fs::write(p.join("tessera.conf"), site).unwrap();

    let d = p.display();
    let main = format!(
        "error_log {d}/error.log info;\n\
         worker_processes 1;\n\
         events {{ worker_connections 128; }}\n\
         http {{\n\
         \x20   access_log {d}/access.log;\n\
         \x20   client_body_temp_path {d}/client_body;\n\
         \x20   proxy_temp_path {d}/proxy;\n\
         \x20   fastcgi_temp_path {d}/fastcgi;\n\
         \x20   uwsgi_temp_path {d}/uwsgi;\n\
         \x20   scgi_temp_path {d}/scgi;\n\
         \x20   include {d}/tessera.conf;\n\
         }}\n"
    );
    std::fs::write(p.join("nginx.conf"), main).unwrap();

    let child = Command::new(NGINX)
        .arg("-p")
        .arg(p)
        .arg("-e")
        .arg(p.join("error.log"))
        .arg("-c")
        .arg(p.join("nginx.conf"))
        .arg("-g")
        .arg(format!(
            "daemon off; master_process off; pid {d}/nginx.pid;"
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {NGINX}: {e}"));
    let mut nginx = Nginx { child, dir };

    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(Some(status)) = nginx.child.try_wait() {
            panic!(
                "nginx exited at start-up ({status}):\n{}",
                nginx.error_log()
            );
        }
        if TcpStream::connect(("127.0.0.1", ports.listen))
            .await
            .is_ok()
        {
            return nginx;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nginx did not listen on 127.0.0.1:{} within 15 s:\n{}",
            ports.listen,
            nginx.error_log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// False (after saying why) when the test should not run; panics when nginx is missing
/// and skipping was not asked for.
fn nginx_available() -> bool {
    if Path::new(NGINX).exists() {
        return true;
    }
    if std::env::var("TESSERA_SKIP_NGINX").as_deref() == Ok("1") {
        eprintln!("SKIPPED: {NGINX} not installed and TESSERA_SKIP_NGINX=1");
        return false;
    }
    panic!(
        "{NGINX} is not installed: this test runs Debian's nginx for real. \
         Install it (`apt-get install -y nginx`) or set TESSERA_SKIP_NGINX=1 to skip it."
    );
}

// ── the test ─────────────────────────────────────────────────────────────────────────

fn seen_header(req: &Value, name: &str) -> Option<String> {
    req["headers"]
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn claim(c: &Client, name: &str) -> String {
    c.claims().unwrap()[name].as_str().unwrap().to_owned()
}

#[track_caller]
fn assert_identity(req: &Value, c: &Client) {
    let claims = c.claims().unwrap();
    let roles: Vec<&str> = claims["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(
        seen_header(req, "x-tessera-user"),
        Some(claim(c, "sub")),
        "{req}"
    );
    assert_eq!(
        seen_header(req, "x-tessera-username").as_deref(),
        Some("alice"),
        "{req}"
    );
    assert_eq!(
        seen_header(req, "x-tessera-roles"),
        Some(roles.join(",")),
        "{req}"
    );
    assert_eq!(
        seen_header(req, "x-tessera-session"),
        Some(claim(c, "sid")),
        "{req}"
    );
}

#[track_caller]
fn assert_json_error(res: &Resp, status: u16, code: &str) {
    res.assert_error(status, code);
}

#[tokio::test]
async fn nginx_auth_request_in_front_of_an_upstream() {
    if !nginx_available() {
        return;
    }
    let nginx_port = free_port();
    let public_origin = format!("https://127.0.0.1:{nginx_port}");

    // A certificate for nginx: tessera's own self-signed one, made in a throw-away folder.
    let cert_dir = tempfile::tempdir().unwrap();
    let maker = Server::builder(BIN)
        .demo(false)
        .data_dir(cert_dir.path().join("data"))
        .start()
        .await;
    let cert = maker.cert_path.clone();
    let key = cert.with_file_name("key.pem");
    maker.stop().await;
    assert!(
        cert.exists() && key.exists(),
        "no self-signed certificate in {cert:?}"
    );

    // tessera behind nginx: plain HTTP, nginx's origin, nginx trusted for X-Forwarded-*.
    let server = Server::builder(BIN)
        .demo(false)
        .config(&format!(
            "public_origin = \"{public_origin}\"\ntrusted_proxies = [\"127.0.0.1\"]\n[tls]\nmode = \"off\"\n"
        ))
        .start()
        .await;
    assert!(
        server.base_url.starts_with("http://"),
        "tls.mode = off should listen on http://, got {}",
        server.base_url
    );
    let health = server.client().get("/healthz").send().await;
    assert_eq!(health.status, 200, "{}", health.text());
    server
        .cli(
            &[
                "user",
                "add",
                "alice",
                "--role",
                "editor",
                "--password-stdin",
            ],
            Some(&format!("{PASSWORD}\n")),
        )
        .await
        .assert_success();

    let (app, seen) = start_upstream().await;
    let nginx = start_nginx(
        &Ports {
            listen: nginx_port,
            tessera: server.addr,
            app,
        },
        &cert,
        &key,
    )
    .await;
    let http = tessera_testkit::client::http_client(&cert);
    let mut c = Client::new(http.clone(), &public_origin);
    let upstream_count = || seen.lock().unwrap().len();

    // The SPA's static files: no credentials needed.
    let res = c.get("/").send().await;
    assert_eq!(res.status, 200, "{}\n{}", res.text(), nginx.error_log());
    assert!(res.text().contains("<title>spa</title>"), "{}", res.text());

    // Log in through nginx (its /auth/ location), as the SPA on this origin would.
    let login = c.login_ok("alice", PASSWORD).await;
    for name in [CLAIMS, SIG, CSRF, REFRESH] {
        assert!(
            login.set_cookie(name).is_some(),
            "no {name} cookie: {login:?}"
        );
    }
    let cookies = c.jar.cookie_header("/api/notes").unwrap();

    // 1. A valid cookie: 200, and the upstream sees tessera's identity, not the client's.
    let res = c
        .get("/api/notes?page=2")
        .cookie_header(&format!("theme=dark; {cookies}"))
        .header("x-tessera-user", "admin")
        .header("x-tessera-username", "admin")
        .header("x-tessera-roles", "admin")
        .header("x-tessera-session", "spoofed")
        .header("x-tessera-client", "spoofed")
        .header("x-forwarded-user", "admin")
        .header("x-remote-user", "admin")
        .send()
        .await;
    assert_eq!(res.status, 200, "{}\n{}", res.text(), nginx.error_log());
    let req = res.json();
    assert_eq!(req["method"], "GET");
    assert_eq!(req["path"], "/api/notes?page=2");
    assert_identity(&req, &c);
    assert_eq!(seen_header(&req, "x-tessera-client"), None, "{req}");
    assert_eq!(seen_header(&req, "x-forwarded-user"), None, "{req}");
    assert_eq!(seen_header(&req, "x-remote-user"), None, "{req}");
    for (name, value) in req["headers"].as_object().unwrap() {
        let v = value.as_str().unwrap();
        assert!(
            !v.contains("admin") && !v.contains("spoofed"),
            "a client-sent identity reached the upstream: {name}: {v}"
        );
    }
    // tessera's cookies stay with tessera; the application's own cookies pass.
    assert_eq!(
        seen_header(&req, "cookie").as_deref(),
        Some("theme=dark"),
        "{req}"
    );
    assert_eq!(
        seen_header(&req, "x-forwarded-proto").as_deref(),
        Some("https")
    );

    // 1b. That GET passed because nginx sends the method (X-Forwarded-Method) and is in
    //     tessera's trusted_proxies: without it tessera fails closed, so the same cookie
    //     asked of /auth/verify directly, with no method, gets 403 (the CSRF rules).
    let direct = tessera_testkit::client::http_client(&cert);
    let mut direct = Client::new(direct, &server.base_url);
    let res = direct
        .get("/auth/verify")
        .cookie_header(&cookies)
        .send()
        .await;
    assert_json_error(&res, 403, "csrf_failed");
    let res = direct
        .get("/auth/verify")
        .cookie_header(&cookies)
        .header("x-forwarded-method", "GET")
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());

    // 1c. Identity in other spellings (`_`, `.`) and forwarding and rewrite headers never
    //     reach the app, on an API path and a public one; X-Forwarded-* are nginx's own.
    let spoofs = [
        "x-tessera_roles",
        "x-tessera_user",
        "x_tessera_client",
        "x-tessera.user",
        "x-remote_user",
        "remote_user",
        "x-forwarded_for",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-prefix",
        "x-forwarded-port",
        "x-forwarded-scheme",
        "x-forwarded-server",
        "x-forwarded-uri",
        "x-forwarded-method",
        "x-original-url",
        "x-original-uri",
        "x-original-method",
        "x-rewrite-url",
        "x-host",
        "x-http-host-override",
        "true-client-ip",
        "x-client-ip",
        "cf-connecting-ip",
        "forwarded",
        "x-real-ip",
        "x-remote-user",
        "remote-user",
    ];
    for (path, send_cookies) in [("/api/notes", true), ("/api/public/status", false)] {
        let mut req = c.get(path).header("host", "evil.example");
        if !send_cookies {
            req = req.no_cookies();
        }
        for name in spoofs {
            req = req.header(name, &format!("SPOOFED-{name}"));
        }
        let res = req.send().await;
        assert_eq!(
            res.status,
            200,
            "{path}: {}\n{}",
            res.text(),
            nginx.error_log()
        );
        let req = res.json();
        assert!(
            !req["headers"].to_string().contains("SPOOFED"),
            "{path}: a client's header reached the app: {req}"
        );
        assert_eq!(
            seen_header(&req, "x-forwarded-for").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            seen_header(&req, "x-forwarded-host").as_deref(),
            Some("app.example.com"),
            "{path}: {req}"
        );
        assert_eq!(seen_header(&req, "x-real-ip").as_deref(), Some("127.0.0.1"));
        if send_cookies {
            assert_identity(&req, &c);
        } else {
            for (name, _) in req["headers"].as_object().unwrap() {
                assert!(!name.starts_with("x-tessera"), "{path}: {name}: {req}");
            }
        }
    }

    // 2. No credentials: 401 JSON, and the upstream is not asked.
    let before = upstream_count();
    let res = c.get("/api/notes").no_cookies().send().await;
    assert_json_error(&res, 401, "unauthenticated");
    let res = c
        .get("/api/notes")
        .no_cookies()
        .header("x-tessera-user", "admin")
        .send()
        .await;
    assert_json_error(&res, 401, "unauthenticated");
    // A forged signature cookie is no better.
    let forged = cookies.replace(&c.jar.value(SIG).unwrap(), "eyJhbGciOiJFZERTQSJ9.AAAA");
    let res = c.get("/api/notes").cookie_header(&forged).send().await;
    assert_json_error(&res, 401, "unauthenticated");
    assert_eq!(
        upstream_count(),
        before,
        "the upstream saw a refused request"
    );

    // 3. A cross-site POST with a valid cookie and no CSRF token: 403, upstream untouched.
    let res = c
        .post("/api/notes")
        .header("sec-fetch-site", "cross-site")
        .header("origin", "https://evil.example")
        .json(&json!({"text": "pwned"}))
        .send()
        .await;
    assert_json_error(&res, 403, "csrf_failed");
    // …nor can it claim to be a GET to tessera, or to the upstream.
    let res = c
        .post("/api/notes")
        .header("sec-fetch-site", "cross-site")
        .header("x-forwarded-method", "GET")
        .header("x-original-method", "GET")
        .json(&json!({"text": "pwned"}))
        .send()
        .await;
    assert_json_error(&res, 403, "csrf_failed");
    // A cross-origin cookie POST that only says where it comes from (Origin), and
    // cookie PUT/DELETE without the token: 403 (nginx sends the real method, not GET).
    let res = c
        .post("/api/notes")
        .header("origin", "https://evil.example")
        .json(&json!({"text": "pwned"}))
        .send()
        .await;
    assert_json_error(&res, 403, "csrf_failed");
    for method in [
        tessera_testkit::Method::PUT,
        tessera_testkit::Method::DELETE,
    ] {
        let res = c.request(method.clone(), "/api/notes/1").send().await;
        assert_json_error(&res, 403, "csrf_failed");
    }
    // Same-origin but without the token: still 403.
    let res = c
        .post("/api/notes")
        .same_origin()
        .json(&json!({"text": "pwned"}))
        .send()
        .await;
    assert_json_error(&res, 403, "csrf_failed");
    assert_eq!(
        upstream_count(),
        before,
        "the upstream saw a refused request"
    );

    // 4. Same-origin POST with the CSRF token: passes, body and all.
    let res = c
        .post("/api/notes")
        .with_csrf()
        .json(&json!({"text": "hello"}))
        .send()
        .await;
    assert_eq!(res.status, 200, "{}\n{}", res.text(), nginx.error_log());
    let req = res.json();
    assert_eq!(req["method"], "POST");
    assert_eq!(req["body"], r#"{"text":"hello"}"#);
    assert_identity(&req, &c);
    assert_eq!(seen_header(&req, "x-csrf-token"), None, "{req}");
    assert_eq!(upstream_count(), before + 1);

    // 5. A Bearer token from /auth/token (through nginx): passes without cookies; the
    //    token itself is not forwarded.
    let mut mobile = Client::new(http.clone(), &public_origin);
    let res = mobile
        .post("/auth/token")
        .body(
            "application/x-www-form-urlencoded",
            format!(
                "grant_type=password&username=alice&password={}",
                PASSWORD.replace(' ', "+")
            ),
        )
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let token = res.json()["access_token"].as_str().unwrap().to_owned();
    let res = mobile
        .post("/api/notes")
        .bearer(&token)
        .json(&json!({"text": "from the app"}))
        .send()
        .await;
    assert_eq!(res.status, 200, "{}\n{}", res.text(), nginx.error_log());
    let req = res.json();
    assert_eq!(
        seen_header(&req, "x-tessera-user"),
        Some(claim(&c, "sub")),
        "{req}"
    );
    assert_eq!(
        seen_header(&req, "x-tessera-username").as_deref(),
        Some("alice")
    );
    assert_eq!(seen_header(&req, "authorization"), None, "{req}");
    let res = mobile.get("/api/notes").bearer("not-a-token").send().await;
    assert_json_error(&res, 401, "unauthenticated");
    assert!(
        res.header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer")),
        "401 to a bad Bearer token without a challenge: {:?}",
        res.headers
    );

    // 6. Public paths: no check, and no identity, whatever the client sends.
    let res = c
        .get("/api/public/status")
        .no_cookies()
        .header("x-tessera-user", "admin")
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let req = res.json();
    assert_eq!(seen_header(&req, "x-tessera-user"), None, "{req}");

    // 7. Logging out through nginx ends the session: the same cookies are then refused.
    let res = c.post("/auth/logout").with_csrf().send().await;
    assert_eq!(res.status, 204, "{}", res.text());
    let res = c.get("/api/notes").cookie_header(&cookies).send().await;
    assert_json_error(&res, 401, "unauthenticated");

    drop(nginx);
    server.stop().await;
}
