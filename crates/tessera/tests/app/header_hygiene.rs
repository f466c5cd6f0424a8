//! Black-box: what the upstream actually receives when a client tries to choose its
//! identity, its address or its route with headers; forward-auth's method; public paths
//! that could leave their prefix after one more decoding step upstream; `CONNECT` and
//! `TRACE` (docs/security-model.md "Header hygiene").
//!
//! The upstream here is a raw TCP server that answers every request with the request line,
//! the header lines exactly as tessera wrote them (names as spelled, in order, repeats
//! kept) and the body, as JSON, and counts what it was sent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tessera_testkit::inproc::InProc;
use tessera_testkit::{Client, Method, Resp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Every value a spoofed header carries contains this, so one search of everything the
/// upstream received finds any that got through.
const MARK: &str = "SPOOFED";

// ── the echoing upstream ──────────────────────────────────────────────────────────────

type Seen = Arc<Mutex<Vec<Value>>>;

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 8192];
    let n = stream.read(&mut chunk).await.ok()?;
    if n == 0 || buf.len() > 4 << 20 {
        return None;
    }
    buf.extend_from_slice(&chunk[..n]);
    Some(())
}

/// One request: `{method, target, headers: [[name, value], …], body}`.
async fn read_request(stream: &mut TcpStream) -> Option<Value> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        read_more(stream, &mut buf).await?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut start = lines.next()?.split(' ');
    let method = start.next()?.to_owned();
    let target = start.next()?.to_owned();
    let mut headers = Vec::new();
    let mut length = 0usize;
    let mut chunked = false;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let value = value.trim().to_owned();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().ok()?;
        }
        if name.eq_ignore_ascii_case("transfer-encoding") && value.contains("chunked") {
            chunked = true;
        }
        headers.push(json!([name, value]));
    }
    let mut rest = buf[head_end + 4..].to_vec();
    let body = if chunked {
        // Enough for these tests: read to the last chunk, then join the chunks.
        while find(&rest, b"0\r\n\r\n").is_none() {
            read_more(stream, &mut rest).await?;
        }
        let mut body = Vec::new();
        let mut data = &rest[..];
        while let Some(eol) = find(data, b"\r\n") {
            let size = usize::from_str_radix(std::str::from_utf8(&data[..eol]).ok()?, 16).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(data.get(eol + 2..eol + 2 + size)?);
            data = data.get(eol + 4 + size..)?;
        }
        body
    } else {
        while rest.len() < length {
            read_more(stream, &mut rest).await?;
        }
        rest
    };
    Some(json!({
        "method": method,
        "target": target,
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
                let read = tokio::time::timeout(Duration::from_secs(10), read_request(&mut stream));
                let Ok(Some(req)) = read.await else {
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

/// A demo server (for its demo user) in front of the echoing upstream, with `/public/` as
/// a public path and `extra` configuration.
async fn server(upstream: SocketAddr, extra: &str) -> InProc {
    InProc::builder()
        .config(&format!(
            "upstream = \"http://{upstream}\"\npublic_paths = [\"/public/\"]\n{extra}"
        ))
        .start()
        .await
}

/// The header lines the upstream received: (name as written, value).
fn lines(req: &Value) -> Vec<(String, String)> {
    req["headers"]
        .as_array()
        .unwrap_or_else(|| panic!("not an echoed request: {req}"))
        .iter()
        .map(|l| {
            (
                l[0].as_str().unwrap().to_owned(),
                l[1].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Every value of `name` (case-insensitive) the upstream received.
fn values(req: &Value, name: &str) -> Vec<String> {
    lines(req)
        .into_iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
        .collect()
}

/// The one value of `name`; panics if it came more than once.
fn value(req: &Value, name: &str) -> Option<String> {
    let mut all = values(req, name);
    assert!(all.len() <= 1, "{name} more than once: {req}");
    all.pop()
}

/// A name as CGI and WSGI see it (RFC 3875 §4.1.18: upper case, `-` as `_`; many servers
/// turn every other separator into `_` too).
fn cgi(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Nothing that carried [`MARK`] arrived, no header name has a character other than
/// letters, digits and `-`, and the identity headers are exactly `identity` (none on a
/// public path), whatever spelling a CGI-style upstream would merge them from.
#[track_caller]
fn assert_clean(req: &Value, identity: Option<&[(&str, String)]>, what: &str) {
    assert!(
        !req.to_string().contains(MARK),
        "{what}: a spoofed header reached the upstream: {req}"
    );
    for (name, _) in lines(req) {
        assert!(
            name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
            "{what}: header name {name:?} reached the upstream: {req}"
        );
    }
    let tessera: Vec<(String, String)> = lines(req)
        .into_iter()
        .filter(|(n, _)| cgi(n).starts_with("X_TESSERA_"))
        .map(|(n, v)| (n.to_ascii_lowercase(), v))
        .collect();
    let mut want: Vec<(String, String)> = identity
        .unwrap_or(&[])
        .iter()
        .map(|(n, v)| ((*n).to_owned(), v.clone()))
        .collect();
    let mut got = tessera;
    got.sort();
    want.sort();
    assert_eq!(got, want, "{what}: identity headers upstream: {req}");
}

/// The identity headers tessera must send for `c`'s session.
fn identity_of(c: &Client) -> Vec<(&'static str, String)> {
    let claims = c.claims().unwrap();
    let roles: Vec<&str> = claims["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    vec![
        ("x-tessera-user", claims["sub"].as_str().unwrap().to_owned()),
        ("x-tessera-username", "demo".to_owned()),
        ("x-tessera-roles", roles.join(",")),
        (
            "x-tessera-session",
            claims["sid"].as_str().unwrap().to_owned(),
        ),
        ("x-tessera-amr", "pwd".to_owned()),
        ("x-tessera-auth-time", claims["auth_time"].to_string()),
    ]
}

/// Identity headers in the spellings a CGI/WSGI upstream merges with the real ones, and
/// those other authenticating proxies' applications trust.
const IDENTITY_SPOOFS: [&str; 30] = [
    "X-Tessera_Roles",
    "X-Tessera_User",
    "X-Tessera_Username",
    "X-Tessera_Session",
    "X_Tessera_Client",
    "X_Tessera_User",
    "X_TESSERA_ROLES",
    "x_tessera_roles",
    "X-Tessera.User",
    "X-Tessera~Roles",
    "X-Forwarded_For",
    "X_Forwarded_For",
    "X-Forwarded_User",
    "X-Remote_User",
    "Remote_User",
    "X-Auth-Request_User",
    "X-Tessera-Client",
    "X-TESSERA-ROLES",
    "x-tessera-user",
    "Remote-User",
    "Remote-Groups",
    "X-Remote-User",
    "X-Forwarded-User",
    "X-Forwarded-Groups",
    "X-Forwarded-Access-Token",
    "X-Authenticated-Userid",
    "X-Webauth-User",
    "X-Consumer-Username",
    "X-Amzn-Oidc-Identity",
    "X-Forwarded-Client-Cert",
];

/// Forwarding and rewrite headers a client may not choose.
const FORWARDING_SPOOFS: [&str; 22] = [
    "X-Forwarded-For",
    "X-Forwarded-Host",
    "X-Forwarded-Proto",
    "X-Forwarded-Prefix",
    "X-Forwarded-Port",
    "X-Forwarded-Scheme",
    "X-Forwarded-Server",
    "X-Forwarded-Uri",
    "X-Forwarded-Method",
    "X-Forwarded-Ssl",
    "X-Original-URL",
    "X-Rewrite-URL",
    "X-Original-URI",
    "X-Original-Method",
    "True-Client-IP",
    "X-Client-IP",
    "CF-Connecting-IP",
    "Forwarded",
    "X-Real-IP",
    "X-Host",
    "X-HTTP-Host-Override",
    "X-Cluster-Client-IP",
];

/// A spoof value that says which header carried it: `SPOOFED-<name>`.
fn spoof(name: &str) -> String {
    format!("{MARK}-{name}")
}

// ── identity: names with `_` and every other spelling ─────────────────────────────────

/// The three ways into the upstream: a public path (anonymous), an authenticated GET (the
/// bodiless HTTP/1.1 client) and an authenticated POST with a body (hyper's client).
async fn send_three(
    server: &InProc,
    c: &mut Client,
    headers: &[(String, String)],
) -> Vec<(&'static str, Value, bool)> {
    let mut out = Vec::new();
    let mut anon = server.client();
    let mut req = anon.get("/public/hello");
    for (n, v) in headers {
        req = req.header(n, v);
    }
    let res = req.send().await;
    assert_eq!(res.status, 200, "public: {}", res.text());
    out.push(("public GET", res.json(), false));

    let mut req = c.get("/api/whoami");
    for (n, v) in headers {
        req = req.header(n, v);
    }
    let res = req.send().await;
    assert_eq!(res.status, 200, "authenticated GET: {}", res.text());
    out.push(("authenticated GET", res.json(), true));

    let mut req = c
        .post("/api/notes")
        .with_csrf()
        .json(&json!({"text": "hi"}));
    for (n, v) in headers {
        req = req.header(n, v);
    }
    let res = req.send().await;
    assert_eq!(res.status, 200, "authenticated POST: {}", res.text());
    let echoed = res.json();
    assert_eq!(echoed["body"], r#"{"text":"hi"}"#, "{echoed}");
    out.push(("authenticated POST with a body", echoed, true));
    out
}

#[tokio::test]
async fn identity_headers_in_any_spelling_never_reach_the_upstream() {
    let (up, _) = start_upstream().await;
    let server = server(up, "").await;
    let mut c = server.demo_client().await;
    let identity = identity_of(&c);

    let mut headers: Vec<(String, String)> = IDENTITY_SPOOFS
        .iter()
        .map(|n| ((*n).to_owned(), spoof(n)))
        .collect();
    // A harmless application header passes, so "nothing arrived" is not the reason.
    headers.push(("X-App-Note".into(), "kept".into()));
    for (what, req, authenticated) in send_three(&server, &mut c, &headers).await {
        assert_clean(&req, authenticated.then_some(&identity[..]), what);
        assert_eq!(value(&req, "x-app-note").as_deref(), Some("kept"), "{what}");
    }

    // Names reqwest would normalise, written by hand: upper and mixed case, `_` in every
    // position, on the bodiless path and with a chunked body.
    let cookie = c.jar.cookie_header("/").unwrap();
    let token = c.csrf().unwrap();
    let spoofs = [
        "X-TESSERA-USER",
        "x-TeSsErA-rOlEs",
        "X_TESSERA_ROLES",
        "X-Tessera_Roles",
        "x_tessera_username",
        "X-REMOTE_USER",
        "REMOTE_USER",
        "HTTP_X_TESSERA_ROLES",
        "X-Forwarded_For",
    ];
    let lines_out: String = spoofs
        .iter()
        .map(|n| format!("{n}: {}\r\n", spoof(n)))
        .collect();
    let host = server.addr;
    let origin = server.origin();
    for (what, target, authenticated, body) in [
        ("raw public GET", "/public/raw", false, None),
        ("raw authenticated GET", "/api/raw", true, None),
        (
            "raw authenticated chunked POST",
            "/api/raw",
            true,
            Some("{}"),
        ),
    ] {
        let auth = if authenticated {
            format!("Cookie: {cookie}\r\nX-CSRF-Token: {token}\r\nOrigin: {origin}\r\n")
        } else {
            String::new()
        };
        let framing = match body {
            Some(b) => format!(
                "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
                b.len()
            ),
            None => "\r\n".to_owned(),
        };
        let method = if body.is_some() { "POST" } else { "GET" };
        let req = format!(
            "{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{auth}{lines_out}{framing}"
        );
        let res = server.raw(req.as_bytes()).await;
        assert_eq!(res.status, Some(200), "{what}: {res:?}");
        let echoed = res.json().unwrap_or_else(|| panic!("{what}: {res:?}"));
        assert_clean(&echoed, authenticated.then_some(&identity[..]), what);
        if let Some(b) = body {
            assert_eq!(echoed["body"], b, "{what}: {echoed}");
        }
    }
}

// ── forwarding and rewrite headers ────────────────────────────────────────────────────

#[tokio::test]
async fn forwarding_and_rewrite_headers_from_untrusted_peers_are_replaced_by_tessera_s_own() {
    let (up, _) = start_upstream().await;
    let server = server(up, "").await;
    let mut c = server.demo_client().await;
    let identity = identity_of(&c);
    let public_host = server.addr.to_string();

    let headers: Vec<(String, String)> = FORWARDING_SPOOFS
        .iter()
        .map(|n| ((*n).to_owned(), spoof(n)))
        .collect();
    for (what, req, authenticated) in send_three(&server, &mut c, &headers).await {
        assert_clean(&req, authenticated.then_some(&identity[..]), what);
        assert_eq!(
            values(&req, "x-forwarded-for"),
            ["127.0.0.1"],
            "{what}: {req}"
        );
        assert_eq!(
            values(&req, "x-forwarded-proto"),
            ["https"],
            "{what}: {req}"
        );
        assert_eq!(
            values(&req, "x-forwarded-host"),
            [public_host.as_str()],
            "{what}: {req}"
        );
        for name in FORWARDING_SPOOFS {
            if !name.eq_ignore_ascii_case("x-forwarded-for")
                && !name.eq_ignore_ascii_case("x-forwarded-proto")
                && !name.eq_ignore_ascii_case("x-forwarded-host")
            {
                assert!(values(&req, name).is_empty(), "{what}: {name}: {req}");
            }
        }
    }

    // HTTP/2 with a `host` header that differs from `:authority`, and HTTP/1.1 with a
    // foreign Host, by hand: X-Forwarded-Host is still public_origin's.
    // (hyper's HTTP/2 client sends a `host` header as given, next to `:authority`.)
    let res = c
        .get("/api/whoami")
        .header("host", "evil.example")
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(format!("{:?}", res.version), "HTTP/2.0", "{res:?}");
    let req = res.json();
    assert_eq!(
        values(&req, "x-forwarded-host"),
        [public_host.as_str()],
        "{req}"
    );
    let raw = format!(
        "GET /public/x HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\nX-Forwarded-Host: {MARK}\r\n\r\n"
    );
    let res = server.raw(raw.as_bytes()).await;
    assert_eq!(res.status, Some(200), "{res:?}");
    let req = res.json().unwrap();
    assert_eq!(
        values(&req, "x-forwarded-host"),
        [public_host.as_str()],
        "{req}"
    );
    assert!(!req.to_string().contains(MARK), "{req}");
}

#[tokio::test]
async fn a_trusted_proxy_s_forwarding_headers_are_kept_but_rewrites_and_identity_are_not() {
    let (up, _) = start_upstream().await;
    let server = server(up, "trusted_proxies = [\"127.0.0.1\"]").await;
    let mut c = server.demo_client().await;
    let identity = identity_of(&c);
    let mut headers: Vec<(String, String)> = vec![
        ("X-Forwarded-For".into(), "203.0.113.9".into()),
        ("X-Forwarded-Proto".into(), "https".into()),
        ("X-Forwarded-Host".into(), "app.example.com".into()),
        ("X-Forwarded-Port".into(), "443".into()),
        ("X-Real-IP".into(), "203.0.113.9".into()),
        ("Forwarded".into(), "for=203.0.113.9;proto=https".into()),
    ];
    // Never believed from anyone: rewrites, method claims, identity, `_` names.
    for name in [
        "X-Original-URL",
        "X-Rewrite-URL",
        "X-Original-URI",
        "X-Forwarded-Uri",
        "X-Forwarded-Method",
        "X-Original-Method",
        "X-Host",
        "X-Tessera-Roles",
        "X-Tessera_Roles",
        "X-Forwarded_For",
        "X-Forwarded-User",
    ] {
        headers.push((name.to_owned(), spoof(name)));
    }
    for (what, req, authenticated) in send_three(&server, &mut c, &headers).await {
        assert_clean(&req, authenticated.then_some(&identity[..]), what);
        assert_eq!(
            values(&req, "x-forwarded-for"),
            ["203.0.113.9, 127.0.0.1"],
            "{what}: {req}"
        );
        assert_eq!(
            value(&req, "x-forwarded-host").as_deref(),
            Some("app.example.com")
        );
        assert_eq!(value(&req, "x-forwarded-proto").as_deref(), Some("https"));
        assert_eq!(value(&req, "x-forwarded-port").as_deref(), Some("443"));
        assert_eq!(value(&req, "x-real-ip").as_deref(), Some("203.0.113.9"));
        assert!(value(&req, "forwarded").is_some(), "{what}: {req}");
    }
}

// ── forward-auth's method ─────────────────────────────────────────────────────────────

#[tokio::test]
async fn forward_auth_fails_closed_without_a_method_from_a_trusted_proxy() {
    let (up, _) = start_upstream().await;
    // No trusted proxies: whatever the client says about the method is not believed.
    let server = server(up, "").await;
    let mut c = server.demo_client().await;
    let sub = c.claims().unwrap()["sub"].as_str().unwrap().to_owned();

    // A cookie and no method: checked as unsafe, so without the CSRF token → 403.
    c.get("/auth/verify")
        .send()
        .await
        .assert_error(403, "csrf_failed");
    // A cross-origin cookie POST, as a foreign page's form would send it: 403.
    let res = c
        .post("/auth/verify")
        .header("origin", "https://evil.example")
        .header("sec-fetch-site", "cross-site")
        .send()
        .await;
    res.assert_error(403, "csrf_failed");
    let res = c
        .post("/auth/verify")
        .header("origin", "https://evil.example")
        .send()
        .await;
    res.assert_error(403, "csrf_failed");
    // Claiming a safe method from an untrusted peer changes nothing.
    for name in ["x-forwarded-method", "x-original-method"] {
        let res = c.get("/auth/verify").header(name, "GET").send().await;
        res.assert_error(403, "csrf_failed");
        let res = c
            .post("/auth/verify")
            .header(name, "GET")
            .header("origin", "https://evil.example")
            .send()
            .await;
        res.assert_error(403, "csrf_failed");
    }
    // With the CSRF rules met, it passes (fail closed, not fail always).
    let res = c.get("/auth/verify").with_csrf().send().await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.header("x-tessera-user").as_deref(), Some(sub.as_str()));
    // Bearer credentials are not subject to the CSRF rules.
    let token = c.access_token().unwrap();
    let res = server
        .client()
        .get("/auth/verify")
        .bearer(&token)
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    // No credentials at all: 401.
    let res = c.get("/auth/verify").no_cookies().send().await;
    res.assert_error(401, "unauthenticated");
}

#[tokio::test]
async fn forward_auth_believes_the_method_of_a_trusted_proxy_only_when_unambiguous() {
    let (up, _) = start_upstream().await;
    let server = server(up, "trusted_proxies = [\"127.0.0.1\"]").await;
    let mut c = server.demo_client().await;

    for name in ["x-forwarded-method", "x-original-method"] {
        let res = c.get("/auth/verify").header(name, "GET").send().await;
        assert_eq!(res.status, 200, "{name}: GET: {}", res.text());
        let res = c.get("/auth/verify").header(name, "POST").send().await;
        res.assert_error(403, "csrf_failed");
        let res = c
            .get("/auth/verify")
            .header(name, "DELETE")
            .with_csrf()
            .send()
            .await;
        assert_eq!(res.status, 200, "{name}: DELETE with CSRF: {}", res.text());
    }
    // Still fails closed when the proxy sent none.
    c.get("/auth/verify")
        .send()
        .await
        .assert_error(403, "csrf_failed");
    // Two answers: refused, whichever comes first.
    for (a, b) in [
        (("x-forwarded-method", "GET"), ("x-original-method", "POST")),
        (
            ("x-forwarded-method", "POST"),
            ("x-forwarded-method", "GET"),
        ),
        (
            ("x-forwarded-method", "GET"),
            ("x-forwarded-method", "POST"),
        ),
    ] {
        let res = c
            .get("/auth/verify")
            .header(a.0, a.1)
            .header(b.0, b.1)
            .send()
            .await;
        res.assert_error(400, "invalid_request");
    }
    let res = c
        .get("/auth/verify")
        .header("x-forwarded-method", "GET")
        .header("x-original-method", "GET")
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
}

// ── public paths that leave the prefix after one more decoding step ───────────────────

#[tokio::test]
async fn public_paths_that_another_decoding_step_could_move_are_refused() {
    let (up, seen) = start_upstream().await;
    let server = server(up, "").await;
    let c = server.demo_client().await;
    let cookie = format!("Cookie: {}", c.jar.cookie_header("/").unwrap());

    // Plain public paths pass (and reach the upstream unchanged).
    for target in [
        "/public/a-b_c.txt",
        "/public/my%20file",
        "/public/q?x=%25&y=%3b",
        "/public/%41bc",
    ] {
        let res = server.raw_get(target, &[]).await;
        assert_eq!(res.status, Some(200), "{target}: {res:?}");
        assert_eq!(res.json().unwrap()["target"], target, "{res:?}");
    }
    let before = seen.lock().unwrap().len();

    let mut refused = vec![
        "/public/..%3b/admin".to_owned(),
        "/public/..%3B/admin".to_owned(),
        "/public/%3b".to_owned(),
        "/public/%252e%252e/admin".to_owned(),
        "/public/%252E%252E%252Fadmin".to_owned(),
        "/public/%25".to_owned(),
        "/public/%2".to_owned(),
        "/public/%zz".to_owned(),
        "/public/%0d%0a".to_owned(),
        "/public/%7f".to_owned(),
    ];
    // Characters NFKC (or a best-fit code page) turns into `.`, `..`, `/` or `\`:
    // percent-encoded as UTF-8, and raw.
    for c in [
        '\u{FF0E}', '\u{FF0F}', '\u{2024}', '\u{2025}', '\u{FE52}', '\u{2215}', '\u{2044}',
        '\u{FF3C}', '\u{FE68}', '\u{00E9}',
    ] {
        let mut utf8 = [0u8; 4];
        let enc: String = c
            .encode_utf8(&mut utf8)
            .bytes()
            .map(|b| format!("%{b:02X}"))
            .collect();
        refused.push(format!("/public/{enc}{enc}{enc}admin"));
        refused.push(format!("/public/{c}{c}{c}admin"));
    }
    refused.push("/public/%EF%BC%8E%EF%BC%8E%EF%BC%8Fadmin".to_owned());
    for target in &refused {
        // With credentials too: a public path is public whoever asks.
        for extra in [vec![], vec![cookie.clone()]] {
            let res = server.raw_get(target, &extra).await;
            let status = res.status.unwrap_or_else(|| panic!("{target}: {res:?}"));
            assert_eq!(status, 400, "{target}: {res:?}");
            let body = res.json().unwrap_or_else(|| panic!("{target}: {res:?}"));
            // hyper refuses some raw bytes itself, with the same JSON shape.
            assert_eq!(body["error"], "invalid_request", "{target}: {body}");
        }
    }
    assert_eq!(
        seen.lock().unwrap().len(),
        before,
        "a refused public path reached the upstream"
    );

    // The rule is for public paths: authenticated ones may carry `%25` and UTF-8.
    for target in ["/api/100%25", "/api/caf%C3%A9"] {
        let res = server.raw_get(target, std::slice::from_ref(&cookie)).await;
        assert_eq!(res.status, Some(200), "{target}: {res:?}");
        assert_eq!(res.json().unwrap()["target"], target);
    }
}

// ── CONNECT and TRACE ─────────────────────────────────────────────────────────────────

#[tokio::test]
async fn connect_and_trace_are_refused_everywhere_with_allow() {
    let (up, seen) = start_upstream().await;
    let server = server(up, "").await;
    let c = server.demo_client().await;
    let cookie = c.jar.cookie_header("/").unwrap();
    let host = server.addr;

    for (method, target) in [
        ("CONNECT", "/api/notes"),
        ("CONNECT", "/public/x"),
        ("CONNECT", "/auth/verify"),
        ("CONNECT", "/auth/login"),
        ("CONNECT", "/"),
        ("CONNECT", "127.0.0.1:443"),
        ("TRACE", "/api/notes"),
        ("TRACE", "/public/x"),
        ("TRACE", "/auth/verify"),
        ("TRACE", "/healthz"),
        ("TRACK", "/api/notes"),
    ] {
        // The refused request, then a good one on the same connection: the connection
        // is still HTTP (not a tunnel) and still served.
        let req = format!(
            "{method} {target} HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\n\r\n\
             GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        );
        let res = server.raw(req.as_bytes()).await;
        assert_eq!(res.all_statuses(), [405, 200], "{method} {target}: {res:?}");
        let allow = res
            .header("allow")
            .unwrap_or_else(|| panic!("{method} {target}: no Allow: {res:?}"));
        for m in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
            assert!(allow.split(", ").any(|a| a == m), "{allow}");
        }
        for m in ["CONNECT", "TRACE"] {
            assert!(!allow.contains(m), "{allow}");
        }
        assert!(
            res.text().contains("\"error\":\"method_not_allowed\""),
            "{method} {target}: {res:?}"
        );
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "CONNECT or TRACE reached the upstream: {:?}",
        seen.lock().unwrap()
    );

    // Over HTTP/2 (reqwest's TRACE; hyper's client has no CONNECT without a tunnel).
    let mut c2 = c.clone();
    let res: Resp = c2.request(Method::TRACE, "/api/notes").send().await;
    res.assert_error(405, "method_not_allowed");
    assert!(res.header("allow").is_some(), "{res:?}");
    assert!(seen.lock().unwrap().is_empty());
}
