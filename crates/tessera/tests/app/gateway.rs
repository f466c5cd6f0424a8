//! Black-box: the authenticating proxy, forward-auth, security headers and hostile HTTP
//! (docs/http-api.md "Gateway"; RFC 9110 §7.6.1, RFC 9112 §6).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::json;
use tessera_testkit::cookie_names::CSRF;
use tessera_testkit::inproc::InProc;
use tessera_testkit::{assert_error_shape, Method};

#[tokio::test]
async fn proxy_sends_verified_identity_and_strips_spoofed_headers() {
    let server = InProc::demo().await;
    let mut c = server.demo_client().await;
    let claims = c.claims().unwrap();
    let jar_cookies = c.jar.cookie_header("/api/whoami").unwrap();

    let token = c.csrf().unwrap();
    let res = c
        .get("/api/whoami")
        .cookie_header(&format!("{jar_cookies}; theme=dark"))
        .header("x-tessera-user", "admin")
        .header("x-tessera-username", "admin")
        .header("x-tessera-roles", "admin")
        .header("x-tessera-session", "spoofed-session")
        .header("x-tessera-client", "spoofed-client")
        .header("x-remote-user", "x")
        .header("x-forwarded-user", "x")
        .header("x-forwarded-email", "x@example.com")
        .header("x-auth-request-user", "x")
        .header("remote-user", "x")
        .header("x-csrf-token", &token)
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let seen = res.json()["headers"].clone();
    let h = |name: &str| seen.get(name).and_then(|v| v.as_str()).map(str::to_owned);

    assert_eq!(
        h("x-tessera-user"),
        claims["sub"].as_str().map(str::to_owned),
        "{seen}"
    );
    assert_eq!(h("x-tessera-username").as_deref(), Some("demo"), "{seen}");
    let roles: Vec<String> = claims["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(h("x-tessera-roles"), Some(roles.join(",")), "{seen}");
    assert_eq!(
        h("x-tessera-session"),
        claims["sid"].as_str().map(str::to_owned),
        "{seen}"
    );
    assert!(
        h("x-tessera-client").is_none(),
        "spoofed x-tessera-client forwarded: {seen}"
    );
    for name in [
        "x-remote-user",
        "x-forwarded-user",
        "x-forwarded-email",
        "x-auth-request-user",
        "remote-user",
    ] {
        assert!(h(name).is_none(), "spoofed {name} forwarded: {seen}");
    }
    for (name, value) in seen.as_object().unwrap() {
        let v = value.as_str().unwrap_or("");
        assert!(
            !(name.starts_with("x-tessera-") && v.contains("admin")),
            "spoofed value reached upstream: {name}: {v}"
        );
        assert!(
            !v.contains("spoofed"),
            "spoofed value reached upstream: {name}: {v}"
        );
    }

    let cookie = h("cookie").unwrap_or_default();
    assert!(
        cookie.contains("theme=dark"),
        "foreign cookie not forwarded: {seen}"
    );
    assert!(
        !cookie.contains("tessera"),
        "tessera cookies forwarded upstream: {cookie}"
    );
    assert!(h("authorization").is_none(), "{seen}");
    assert!(h("x-csrf-token").is_none(), "{seen}");

    // Bearer credentials are not forwarded either.
    let token = c.access_token().unwrap();
    let res = server
        .client()
        .get("/api/whoami")
        .bearer(&token)
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let seen = res.json()["headers"].clone();
    assert!(
        seen.get("authorization").is_none(),
        "bearer token forwarded upstream: {seen}"
    );
    assert_eq!(seen["x-tessera-user"], claims["sub"]);
    assert!(seen.get("cookie").is_none(), "{seen}");

    // A POST too (CSRF-checked), and still no tessera cookie or CSRF header upstream.
    let res = c
        .post("/api/whoami")
        .with_csrf()
        .json(&json!({}))
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let seen = res.json()["headers"].clone();
    assert!(seen.get("x-csrf-token").is_none(), "{seen}");
    assert!(
        !seen
            .get("cookie")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .contains("tessera"),
        "{seen}"
    );
}

#[tokio::test]
async fn unauthenticated_requests_to_the_api_get_401_json() {
    let server = InProc::demo().await;
    let mut anon = server.client();
    anon.get("/api/notes")
        .send()
        .await
        .assert_error(401, "unauthenticated");
    let res = anon
        .post("/api/notes")
        .same_origin()
        .json(&json!({"text": "x"}))
        .send()
        .await;
    res.assert_error(401, "unauthenticated");
    // Spoofed identity headers alone do not authenticate.
    let res = anon
        .get("/api/whoami")
        .header("x-tessera-user", "admin")
        .send()
        .await;
    res.assert_error(401, "unauthenticated");
    // Not public by default.
    let res = anon.get("/api/public/hello").send().await;
    res.assert_error(401, "unauthenticated");
}

#[tokio::test]
async fn public_paths_are_served_without_authentication() {
    let server = InProc::builder()
        .config("public_paths = [\"/api/public/\"]")
        .start()
        .await;
    let mut anon = server.client();
    let res = anon.get("/api/public/hello").send().await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json()["hello"], "world");
    // Only that prefix.
    anon.get("/api/notes")
        .send()
        .await
        .assert_error(401, "unauthenticated");
    let res = anon.get("/api/publicx").send().await;
    assert_eq!(res.status, 401, "{}", res.text());
}

#[tokio::test]
async fn non_canonical_paths_are_refused() {
    let server = InProc::demo().await;
    let c = server.demo_client().await;
    let cookie = format!("Cookie: {}", c.jar.cookie_header("/").unwrap());

    // Sanity: the raw client works.
    let res = server
        .raw_get("/api/notes", std::slice::from_ref(&cookie))
        .await;
    assert_eq!(res.status, Some(200), "{res:?}");

    for target in [
        "/api/../auth/x",
        "/api/%2e%2e/x",
        "/api/%2E%2E/notes",
        "//api/notes",
        "/api/./notes",
        "/api/notes/..",
        "/api%2fnotes",
        "/api/notes;x=1",
        "/api/%2e%2e%2fauth/session",
    ] {
        let res = server.raw_get(target, std::slice::from_ref(&cookie)).await;
        assert_eq!(res.status, Some(400), "{target}: {res:?}");
        let body = res
            .json()
            .unwrap_or_else(|| panic!("{target}: not JSON: {res:?}"));
        assert_eq!(body["error"], "invalid_request", "{target}: {body}");
    }
}

#[tokio::test]
async fn forward_auth_verify_applies_the_csrf_rules_to_the_original_method() {
    // The test client stands for the proxy here: only a trusted proxy's method is believed
    // (without one the check fails closed: tests/header_hygiene.rs).
    let server = InProc::builder()
        .config("trusted_proxies = [\"127.0.0.1\"]")
        .start()
        .await;
    let mut c = server.demo_client().await;
    let claims = c.claims().unwrap();

    let res = c
        .get("/auth/verify")
        .header("x-forwarded-method", "GET")
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(
        res.header("x-tessera-user"),
        claims["sub"].as_str().map(str::to_owned)
    );
    assert_eq!(res.header("x-tessera-username").as_deref(), Some("demo"));
    let roles: Vec<&str> = claims["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(res.header("x-tessera-roles"), Some(roles.join(",")));
    assert_eq!(
        res.header("x-tessera-session"),
        claims["sid"].as_str().map(str::to_owned)
    );

    // No credentials.
    let res = c.get("/auth/verify").no_cookies().send().await;
    assert_eq!(res.status, 401, "{}", res.text());
    assert!(res.header("x-tessera-user").is_none());

    // The original request was a POST without a CSRF token.
    let res = c
        .get("/auth/verify")
        .header("x-forwarded-method", "POST")
        .send()
        .await;
    res.assert_error(403, "csrf_failed");
    let res = c
        .get("/auth/verify")
        .header("x-original-method", "DELETE")
        .send()
        .await;
    res.assert_error(403, "csrf_failed");
    // …from a foreign site, with a token.
    let token = c.csrf().unwrap();
    let res = c
        .get("/auth/verify")
        .header("x-forwarded-method", "POST")
        .header("sec-fetch-site", "cross-site")
        .header("x-csrf-token", &token)
        .send()
        .await;
    res.assert_error(403, "csrf_failed");
    // With the token, same-origin.
    let res = c
        .get("/auth/verify")
        .header("x-forwarded-method", "POST")
        .with_csrf()
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(
        res.header("x-tessera-user"),
        claims["sub"].as_str().map(str::to_owned)
    );
    // Safe original methods need none.
    let res = c
        .get("/auth/verify")
        .header("x-forwarded-method", "HEAD")
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
}

#[tokio::test]
async fn security_headers_and_no_cors_by_default() {
    let server = InProc::demo().await;
    let mut c = server.demo_client().await;

    let page = c.get("/").send().await;
    assert_eq!(page.status, 200, "{}", page.text());
    let csp = page.header("content-security-policy").expect("CSP on /");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");

    let evil = "https://evil.example";
    let mut responses = vec![("/", page)];
    for path in [
        "/api/notes",
        "/auth/session",
        "/healthz",
        "/.well-known/jwks.json",
        "/tessera.js",
        "/nope/at/all",
    ] {
        let res = c.get(path).header("origin", evil).send().await;
        responses.push((path, res));
    }
    responses.push(("/auth/login", c.login("demo", server.demo_password()).await));
    responses.push((
        "/api/notes (401)",
        server
            .client()
            .get("/api/notes")
            .header("origin", evil)
            .send()
            .await,
    ));
    // A CORS preflight gets no CORS grant either.
    let preflight = c
        .request(Method::OPTIONS, "/api/notes")
        .no_cookies()
        .header("origin", evil)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "x-csrf-token")
        .send()
        .await;
    assert_ne!(preflight.status, 500);
    responses.push(("OPTIONS /api/notes", preflight));

    for (path, res) in &responses {
        assert_eq!(
            res.header("x-content-type-options").as_deref(),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(
            res.header("strict-transport-security").as_deref(),
            Some("max-age=31536000; includeSubDomains"),
            "{path}"
        );
        for (name, _) in &res.headers {
            assert!(
                !name.as_str().starts_with("access-control-"),
                "{path}: CORS header {name} without cors config"
            );
        }
    }
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let server = InProc::demo().await;
    let c = server.demo_client().await;
    let cookie = format!("Cookie: {}", c.jar.cookie_header("/").unwrap());

    // 64 KiB header → 431 (raw HTTP/1.1), never a 500 or a silent close.
    let big = format!("X-Big: {}", "a".repeat(64 * 1024));
    let res = server.raw_get("/api/notes", &[cookie.clone(), big]).await;
    let status = res
        .status
        .unwrap_or_else(|| panic!("no response to a 64 KiB header: {res:?}"));
    assert_eq!(status, 431, "64 KiB header: {res:?}");

    // 200 small headers (limits.max_headers = 64).
    let mut many: Vec<String> = (0..200).map(|i| format!("X-H{i}: v")).collect();
    many.push(cookie);
    let res = server.raw_get("/api/notes", &many).await;
    let status = res
        .status
        .unwrap_or_else(|| panic!("no response to 200 headers: {res:?}"));
    assert!((400..500).contains(&status), "200 headers: {res:?}");
}

#[tokio::test]
async fn proxied_bodies_over_the_limit_get_413() {
    let server = InProc::builder()
        .config("[limits]\nmax_body_bytes = 1024")
        .start()
        .await;
    let mut c = server.demo_client().await;

    // With Content-Length…
    let text = "n".repeat(2000);
    let res = c
        .post("/api/notes")
        .with_csrf()
        .json(&json!({ "text": text }))
        .send()
        .await;
    res.assert_error(413, "payload_too_large");

    // …and streamed without one (chunked, raw HTTP/1.1).
    let token = c.csrf().unwrap();
    let cookies = c.jar.cookie_header("/api/notes").unwrap();
    let body = format!("{{\"text\":\"{}\"}}", "n".repeat(3000));
    let chunked = format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len());
    let req = format!(
        "POST /api/notes HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nCookie: {cookies}\r\nX-CSRF-Token: {token}\r\nOrigin: {}\r\n\r\n{chunked}",
        server.addr,
        server.origin()
    );
    let res = server.raw(req.as_bytes()).await;
    assert_eq!(res.status, Some(413), "chunked oversized body: {res:?}");
    assert_eq!(
        res.json().map(|v| v["error"].clone()),
        Some(json!("payload_too_large")),
        "{res:?}"
    );

    // Nothing was stored by the refused writes; a small note still works.
    let res = c.get("/api/notes").send().await;
    assert_eq!(
        res.json()["notes"].as_array().map(Vec::len),
        Some(0),
        "{}",
        res.text()
    );
    let res = c
        .post("/api/notes")
        .with_csrf()
        .json(&json!({"text": "small"}))
        .send()
        .await;
    assert_eq!(res.status, 201, "{}", res.text());

    // Method errors on tessera's own routes are JSON too.
    let res = c
        .request(Method::DELETE, "/auth/login")
        .with_csrf()
        .send()
        .await;
    assert_eq!(res.status, 405, "{}", res.text());
    assert_error_shape(&res);
    assert!(c.jar.get(CSRF).is_some());
}

#[tokio::test]
async fn cors_allowed_origins_get_exact_credentialed_cors() {
    let dev = "https://dev.example:5173";
    let server = InProc::builder()
        .config(&format!("[cors]\nallowed_origins = [\"{dev}\"]"))
        .start()
        .await;
    let mut c = server.demo_client().await;

    // A credentialed GET from the dev origin: the exact origin echoed, never `*`.
    let res = c.get("/api/notes").header("origin", dev).send().await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(
        res.header("access-control-allow-origin").as_deref(),
        Some(dev),
        "{:?}",
        res.headers
    );
    assert_eq!(
        res.header("access-control-allow-credentials").as_deref(),
        Some("true"),
        "{:?}",
        res.headers
    );

    // Its preflight.
    let res = c
        .request(Method::OPTIONS, "/api/notes")
        .no_cookies()
        .header("origin", dev)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type, x-csrf-token",
        )
        .send()
        .await;
    assert!(
        (200..300).contains(&res.status),
        "preflight: {} {}",
        res.status,
        res.text()
    );
    assert_eq!(
        res.header("access-control-allow-origin").as_deref(),
        Some(dev),
        "{:?}",
        res.headers
    );
    assert_eq!(
        res.header("access-control-allow-credentials").as_deref(),
        Some("true")
    );
    let methods = res
        .header("access-control-allow-methods")
        .unwrap_or_default()
        .to_ascii_uppercase();
    assert!(methods.contains("POST"), "{methods}");
    let headers = res
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(headers.contains("x-csrf-token"), "{headers}");

    // The dev origin passes the CSRF origin rule (the token is still needed).
    let res = c
        .post("/api/notes")
        .header("origin", dev)
        .json(&json!({"text": "from dev"}))
        .send()
        .await;
    res.assert_error(403, "csrf_failed");
    let token = c.csrf().unwrap();
    let res = c
        .post("/api/notes")
        .header("origin", dev)
        .header("x-csrf-token", &token)
        .json(&json!({"text": "from dev"}))
        .send()
        .await;
    assert_eq!(res.status, 201, "{}", res.text());
    assert_eq!(
        res.header("access-control-allow-origin").as_deref(),
        Some(dev)
    );

    // Other origins, `null`, and look-alikes get nothing.
    for other in [
        "https://evil.example",
        "null",
        "https://dev.example:5174",
        "http://dev.example:5173",
        "https://dev.example:5173.evil.example",
    ] {
        let res = c.get("/api/notes").header("origin", other).send().await;
        for (name, _) in &res.headers {
            assert!(
                !name.as_str().starts_with("access-control-"),
                "{other}: {name} granted"
            );
        }
    }
}

#[tokio::test]
async fn overlong_request_targets_get_4xx() {
    let server = InProc::demo().await;
    let target = format!("/api/notes?q={}", "a".repeat(20 * 1024));
    let res = server.raw_get(&target, &[]).await;
    let status = res
        .status
        .unwrap_or_else(|| panic!("no response to a 20 KiB URI: {res:?}"));
    assert!((400..500).contains(&status), "20 KiB URI: {res:?}");
}

#[tokio::test]
async fn overlong_request_targets_get_414() {
    let server = InProc::demo().await;
    let target = format!("/api/notes?q={}", "a".repeat(20 * 1024));
    let res = server.raw_get(&target, &[]).await;
    assert_eq!(res.status, Some(414), "20 KiB URI: {res:?}");
}

#[tokio::test]
async fn malformed_input_never_gets_a_5xx() {
    let server = InProc::demo().await;
    let mut c = server.demo_client().await;
    let pw = server.demo_password().to_owned();
    let token = c.csrf().unwrap();
    let mut results: Vec<(String, u16)> = Vec::new();

    // Login bodies of every wrong shape.
    for body in [
        "null",
        "[]",
        "\"demo\"",
        "{\"username\": 1, \"password\": []}",
        "{\"username\": \"demo\", \"password\": null}",
        "{\"username\": \"demo\", \"password\": \"\"}",
        "{\"username\": \"\", \"password\": \"x\"}",
        "{\"username\": \"demo\", \"username\": \"bob\", \"password\": \"x\"}",
        "{\"username\": \"demo\\u0000\", \"password\": \"x\"}",
        "{\"username\": \"demo\", \"password\": \"x\"}garbage",
        "",
    ] {
        let res = c
            .fresh()
            .post("/auth/login")
            .same_origin()
            .body("application/json", body)
            .send()
            .await;
        assert!(
            res.status == 400 || res.status == 401,
            "login body {body:?}: {} {}",
            res.status,
            res.text()
        );
        assert_error_shape(&res);
        results.push((format!("login {body:?}"), res.status));
    }
    let long_user = json!({"username": "u".repeat(5000), "password": "x"});
    let res = c
        .fresh()
        .post("/auth/login")
        .same_origin()
        .json(&long_user)
        .send()
        .await;
    assert!(
        res.status == 400 || res.status == 401,
        "long username: {}",
        res.status
    );
    let long_pw = json!({"username": "demo", "password": "p".repeat(15000)});
    let res = c
        .fresh()
        .post("/auth/login")
        .same_origin()
        .json(&long_pw)
        .send()
        .await;
    assert!(
        res.status == 400 || res.status == 401,
        "long password: {}",
        res.status
    );
    let res = c
        .fresh()
        .post("/auth/login")
        .same_origin()
        .body("application/json", vec![0xff, 0xfe, b'{', b'}'])
        .send()
        .await;
    assert_eq!(res.status, 400, "invalid UTF-8: {}", res.text());
    let res = c
        .fresh()
        .post("/auth/login")
        .same_origin()
        .body(
            "application/json; charset=utf-8",
            json!({"username":"demo","password":pw}).to_string(),
        )
        .send()
        .await;
    assert_eq!(
        res.status,
        200,
        "content type with parameters: {}",
        res.text()
    );

    // Credentials of every wrong shape.
    for auth in [
        "Bearer",
        "Bearer ",
        "Bearer a.b.c",
        "Bearer ..",
        "Bearer a..c",
        "Bearer a.b.c.d.e",
        "Bearer eyJhbGciOiJub25lIn0.e30.",
        "Bearer eyJhbGciOiJub25lIn0=.e30=.AA==",
        "DPoP a.b.c",
        "Basic ZGVtbzpkZW1v",
        "bearer",
    ] {
        let res = server
            .client()
            .get("/api/notes")
            .header("authorization", auth)
            .send()
            .await;
        assert!(
            (400..500).contains(&res.status),
            "Authorization {auth:?}: {} {}",
            res.status,
            res.text()
        );
        results.push((format!("authorization {auth:?}"), res.status));
    }
    let res = server
        .client()
        .get("/api/notes")
        .header("authorization", "Bearer a")
        .header("authorization", "Bearer b")
        .send()
        .await;
    assert!(
        (400..500).contains(&res.status),
        "two Authorization headers: {}",
        res.status
    );

    for cookie in [
        "__Host-tessera-claims=; __Host-tessera-sig=",
        "__Host-tessera-claims=a; __Host-tessera-sig=b",
        "__Host-tessera-claims=e30; __Host-tessera-sig=.",
        "__Host-tessera-claims=\"quoted\"; __Host-tessera-sig=\"a.b\"",
        "__Host-tessera-claims",
        ";;;;",
        "=; =; =",
        "__Host-tessera-sig=a.b.c.d",
    ] {
        let res = server
            .client()
            .get("/api/notes")
            .cookie_header(cookie)
            .send()
            .await;
        assert!(
            (400..500).contains(&res.status),
            "Cookie {cookie:?}: {} {}",
            res.status,
            res.text()
        );
    }
    // Non-UTF-8 bytes in a cookie.
    let mut raw_cookie = format!("{}; x=", c.jar.cookie_header("/").unwrap()).into_bytes();
    raw_cookie.extend_from_slice(&[0xc3, 0x28, 0xff]);
    let req = [
        format!(
            "GET /api/notes HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nCookie: ",
            server.addr
        )
        .into_bytes(),
        raw_cookie,
        b"\r\n\r\n".to_vec(),
    ]
    .concat();
    let res = server.raw(&req).await;
    let status = res
        .status
        .unwrap_or_else(|| panic!("no response to a non-UTF-8 cookie: {res:?}"));
    assert!(status < 500, "non-UTF-8 cookie: {res:?}");

    // Odd CSRF and forward-auth inputs.
    for (name, value) in [
        ("x-forwarded-method", "GE T"),
        ("x-forwarded-method", ""),
        ("x-original-method", "G\tET"),
    ] {
        let res = c.get("/auth/verify").header(name, value).send().await;
        assert!(
            (200..500).contains(&res.status),
            "{name}: {value:?}: {}",
            res.status
        );
    }
    let res = c
        .post("/api/notes")
        .header("sec-fetch-site", "same-origin")
        .header("sec-fetch-site", "cross-site")
        .header("x-csrf-token", &token)
        .json(&json!({"text": "x"}))
        .send()
        .await;
    res.assert_error(403, "csrf_failed");
    let res = c
        .post("/api/notes")
        .same_origin()
        .header("x-csrf-token", &token)
        .header("x-csrf-token", &token)
        .json(&json!({"text": "x"}))
        .send()
        .await;
    assert!(
        (400..500).contains(&res.status),
        "two X-CSRF-Token headers: {}",
        res.status
    );
    let res = c
        .post("/api/notes")
        .same_origin()
        .header("x-csrf-token", &"t".repeat(5000))
        .json(&json!({"text": "x"}))
        .send()
        .await;
    res.assert_error(403, "csrf_failed");

    // Odd paths.
    for target in [
        "/%00",
        "/api/notes%00",
        "/api/%zz",
        "/%",
        "/api/notes?%zz=%",
        "/api/notes#frag",
    ] {
        let cookie = format!("Cookie: {}", c.jar.cookie_header("/").unwrap());
        let res = server.raw_get(target, &[cookie]).await;
        let status = res
            .status
            .unwrap_or_else(|| panic!("no response to {target}: {res:?}"));
        assert!(status < 500, "{target}: {res:?}");
    }

    // Nothing stored by any of it; the session still works.
    let res = c.get("/api/notes").send().await;
    assert_eq!(res.status, 200);
    assert_eq!(
        res.json()["notes"].as_array().map(Vec::len),
        Some(0),
        "{}",
        res.text()
    );
    let panics = server.panics();
    assert!(panics.is_empty(), "the server panicked: {panics:?}");
}

#[tokio::test]
// Request smuggling (RFC 9112 §6.1, §11.2): hyper applies RFC 9112 §6.3 to Content-Length + Transfer-Encoding
// (chunked framing wins, Content-Length is dropped before tessera sees the request) and closes
// the connection after answering, so no second request can be smuggled behind the body.
async fn content_length_with_transfer_encoding_closes_the_connection() {
    // RFC 9112 §6.1: whatever a server does with CL+TE, it MUST close the connection
    // after responding (else a second, smuggled request on it is served).
    let server = InProc::demo().await;
    let c = server.demo_client().await;
    let cookies = c.jar.cookie_header("/api/notes").unwrap();
    let req = format!(
        "GET /api/public/hello HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
         GET /api/notes HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookies}\r\n\r\n",
        addr = server.addr
    );
    let res = server
        .raw_with_timeout(req.as_bytes(), std::time::Duration::from_secs(3))
        .await;
    let statuses = res.all_statuses();
    assert!(!statuses.is_empty(), "no response: {res:?}");
    assert_eq!(
        statuses.len(),
        1,
        "the request after a CL+TE request was served: {statuses:?} {res:?}"
    );
    assert!(
        res.error.is_none(),
        "connection left open after CL+TE: {res:?}"
    );
}

#[tokio::test]
async fn forwarding_headers_from_clients_are_not_believed() {
    // No trusted proxies by default: X-Forwarded-*, Forwarded and X-Real-IP from the client
    // are replaced (docs/security-model.md "Header hygiene").
    let server = InProc::demo().await;
    let mut c = server.demo_client().await;
    let res = c
        .get("/api/whoami")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-host", "admin.internal")
        .header("x-forwarded-proto", "gopher")
        .header("forwarded", "for=203.0.113.9;host=admin.internal")
        .header("x-real-ip", "203.0.113.9")
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let seen = res.json()["headers"].clone();
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1", "{seen}");
    assert_eq!(seen["x-forwarded-proto"], "https", "{seen}");
    assert_ne!(seen["x-forwarded-host"], "admin.internal", "{seen}");
    assert!(seen.get("forwarded").is_none(), "{seen}");
    assert!(seen.get("x-real-ip").is_none(), "{seen}");
}

#[tokio::test]
async fn method_override_headers_do_not_reach_the_upstream() {
    // Method overrides: X-HTTP-Method-Override and friends must not turn a GET (no
    // CSRF check) into a write at an upstream that honours them.
    let server = InProc::demo().await;
    let mut c = server.demo_client().await;
    let res = c
        .get("/api/whoami")
        .header("x-http-method-override", "DELETE")
        .header("x-http-method", "DELETE")
        .header("x-method-override", "DELETE")
        .send()
        .await;
    if res.status == 200 {
        let seen = res.json()["headers"].clone();
        for name in [
            "x-http-method-override",
            "x-http-method",
            "x-method-override",
        ] {
            assert!(
                seen.get(name).is_none(),
                "{name} forwarded on a CSRF-unchecked GET: {seen}"
            );
        }
    } else {
        // Refusing such requests outright is fine too.
        assert!(
            (400..500).contains(&res.status),
            "{} {}",
            res.status,
            res.text()
        );
    }
}

#[tokio::test]
async fn public_paths_get_no_identity_and_no_tessera_cookies() {
    let server = InProc::builder()
        .config("public_paths = [\"/api/whoami\", \"/api/public/\"]")
        .start()
        .await;
    let mut c = server.demo_client().await;
    let jar_cookies = c.jar.cookie_header("/api/whoami").unwrap();
    let res = c
        .get("/api/whoami")
        .cookie_header(&format!("{jar_cookies}; theme=dark"))
        .header("x-tessera-user", "admin")
        .header("x-tessera-roles", "admin")
        .header("x-remote-user", "admin")
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let seen = res.json()["headers"].clone();
    for (name, value) in seen.as_object().unwrap() {
        assert!(
            !name.starts_with("x-tessera-") && name != "x-remote-user",
            "{name}: {value} reached the upstream on a public path"
        );
    }
    let cookie = seen["cookie"].as_str().unwrap_or_default();
    assert!(
        cookie.contains("theme=dark") && !cookie.contains("tessera"),
        "{cookie}"
    );

    // Public matching is on the path only.
    let mut anon = server.client();
    let res = anon.get("/api/notes?next=/api/public/").send().await;
    res.assert_error(401, "unauthenticated");
    let res = anon.get("/api/whoamix").send().await;
    assert_eq!(res.status, 401, "{}", res.text());
}
