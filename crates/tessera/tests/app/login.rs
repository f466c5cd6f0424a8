//! Black-box: `POST /auth/login` and `GET /auth/session` (docs/http-api.md "Browser endpoints").
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value};
use tessera_testkit::cookie_names::{ALL, CLAIMS, CSRF, REFRESH, SIG};
use tessera_testkit::inproc::InProc;
use tessera_testkit::{assert_error_shape, b64url_decode, b64url_decode_json};

#[tokio::test]
async fn login_answers_the_contract_body_and_cookie_attributes() {
    let server = InProc::builder()
        .config("[tokens]\naccess_ttl = \"7m\"")
        .start()
        .await;
    let mut c = server.client();
    let res = c.login("demo", server.demo_password()).await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert!(res.is_json());
    assert_eq!(
        res.header("cache-control").as_deref(),
        Some("no-store"),
        "token responses must not be cached"
    );

    // Body: {user:{id,username,roles}, session:{id,expires_at}, csrf_token}.
    let body = res.json();
    let user_id = body["user"]["id"].as_str().expect("user.id string");
    assert!(!user_id.is_empty());
    assert_eq!(body["user"]["username"], "demo");
    let roles = body["user"]["roles"].as_array().expect("user.roles array");
    assert!(roles.iter().all(Value::is_string), "{roles:?}");
    assert!(roles.contains(&json!("user")), "{roles:?}");
    let sid = body["session"]["id"].as_str().expect("session.id string");
    let expires_at = body["session"]["expires_at"]
        .as_u64()
        .expect("session.expires_at number");
    let csrf_token = body["csrf_token"].as_str().expect("csrf_token string");
    assert!(!csrf_token.is_empty());

    // Every tessera cookie: Secure, explicit SameSite, no Domain, browser prefix rules.
    for sc in &res.set_cookies {
        assert!(sc.secure, "not Secure: {}", sc.raw);
        assert!(sc.domain.is_none(), "has Domain: {}", sc.raw);
        assert!(sc.same_site.is_some(), "no explicit SameSite: {}", sc.raw);
        assert!(
            sc.prefix_violation().is_none(),
            "{:?}: {}",
            sc.prefix_violation(),
            sc.raw
        );
        assert!(
            ALL.contains(&sc.name.as_str()),
            "unexpected cookie {}",
            sc.raw
        );
    }
    assert!(
        c.jar.rejected().is_empty(),
        "a browser would refuse: {:?}",
        c.jar.rejected()
    );

    let claims = res.set_cookie(CLAIMS).expect("claims cookie");
    assert!(
        !claims.http_only,
        "claims cookie must be readable by script"
    );
    assert_eq!(claims.same_site_lower().as_deref(), Some("lax"));
    assert_eq!(claims.path.as_deref(), Some("/"));
    assert_eq!(claims.max_age, Some(420), "claims Max-Age = access_ttl");

    let sig = res.set_cookie(SIG).expect("sig cookie");
    assert!(sig.http_only, "sig cookie must be HttpOnly");
    assert_eq!(sig.same_site_lower().as_deref(), Some("lax"));
    assert_eq!(sig.path.as_deref(), Some("/"));
    assert_eq!(sig.max_age, Some(420), "sig Max-Age = access_ttl");

    let refresh = res.set_cookie(REFRESH).expect("refresh cookie");
    assert!(refresh.http_only);
    assert_eq!(refresh.same_site_lower().as_deref(), Some("strict"));
    assert_eq!(refresh.path.as_deref(), Some("/auth"));
    // Opaque, ≥ 256 bits.
    let rt = b64url_decode(&refresh.value).expect("refresh token is base64url");
    assert!(rt.len() >= 32, "refresh token has {} bytes", rt.len());

    let csrf = res.set_cookie(CSRF).expect("csrf cookie");
    assert!(!csrf.http_only, "csrf cookie must be readable by script");
    assert_eq!(csrf.same_site_lower().as_deref(), Some("strict"));
    assert_eq!(csrf.path.as_deref(), Some("/"));
    assert_eq!(csrf.value, csrf_token, "csrf cookie = body csrf_token");

    assert!(
        res.set_cookie("__Host-tessera-access").is_none(),
        "split mode sets no whole-token cookie"
    );

    // The claims cookie is the JWT payload only: base64url JSON, no signature in it.
    assert!(
        !claims.value.contains('.'),
        "claims cookie holds more than the payload: {}",
        claims.value
    );
    let (sig_header, sig_signature) = sig
        .value
        .split_once('.')
        .expect("sig cookie = header.signature");
    assert!(!claims.value.contains(sig_signature));
    let payload = b64url_decode_json(&claims.value).expect("claims cookie decodes to JSON");
    for k in [
        "iss", "aud", "sub", "sid", "iat", "nbf", "exp", "jti", "roles", "username",
    ] {
        assert!(payload.get(k).is_some(), "claim {k} missing: {payload}");
    }
    for k in [
        "sig",
        "signature",
        "refresh_token",
        "csrf_token",
        "password",
    ] {
        assert!(
            payload.get(k).is_none(),
            "secret-looking claim {k}: {payload}"
        );
    }
    assert_eq!(payload["sub"], user_id);
    assert_eq!(payload["sid"], sid);
    assert_eq!(payload["username"], "demo");
    assert_eq!(payload["iss"], server.origin());
    assert_eq!(payload["roles"], body["user"]["roles"]);
    let iat = payload["iat"].as_u64().unwrap();
    assert_eq!(payload["exp"].as_u64().unwrap(), iat + 420);
    assert!(payload["nbf"].as_u64().unwrap() <= iat + 1);
    assert!(expires_at > iat + 420, "session outlives the access token");

    // The sig cookie's header: typ at+jwt, alg EdDSA (default), a kid.
    let header = b64url_decode_json(sig_header).expect("JOSE header");
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "EdDSA");
    assert!(header["kid"].as_str().is_some_and(|k| !k.is_empty()));

    // And the cookies authenticate.
    assert_eq!(c.get("/api/notes").send().await.status, 200);
}

#[tokio::test]
async fn bad_credentials_and_bad_requests_get_json_errors() {
    let server = InProc::demo().await;
    let mut c = server.client();

    // Wrong password and unknown user: same status, same body.
    let wrong = c.login("demo", "not-the-password").await;
    let wrong_body = wrong.assert_error(401, "invalid_credentials");
    let unknown = c.login("nobody-here", "not-the-password").await;
    let unknown_body = unknown.assert_error(401, "invalid_credentials");
    assert_eq!(
        wrong_body, unknown_body,
        "unknown user and wrong password must be indistinguishable"
    );
    assert_eq!(wrong.body, unknown.body);
    assert!(
        wrong.set_cookies.is_empty() && unknown.set_cookies.is_empty(),
        "no cookies on failure"
    );

    // Malformed JSON.
    let res = c
        .post("/auth/login")
        .same_origin()
        .body("application/json", "{\"username\": \"demo\", ")
        .send()
        .await;
    res.assert_error(400, "invalid_request");
    // Missing field.
    let res = c
        .post("/auth/login")
        .same_origin()
        .json(&json!({"username": "demo"}))
        .send()
        .await;
    assert_eq!(res.status, 400, "{}", res.text());
    assert_error_shape(&res);

    // Content types a cross-site form can send.
    let pw = server.demo_password().to_owned();
    let res = c
        .post("/auth/login")
        .same_origin()
        .body(
            "text/plain",
            format!("{{\"username\":\"demo\",\"password\":\"{pw}\"}}"),
        )
        .send()
        .await;
    assert_eq!(res.status, 415, "text/plain login: {}", res.text());
    assert_error_shape(&res);
    let res = c
        .post("/auth/login")
        .same_origin()
        .body(
            "application/x-www-form-urlencoded",
            format!("username=demo&password={pw}"),
        )
        .send()
        .await;
    assert_eq!(res.status, 415, "form login: {}", res.text());
    assert_error_shape(&res);
    let res = c
        .post("/auth/login")
        .same_origin()
        .raw_body(format!("{{\"username\":\"demo\",\"password\":\"{pw}\"}}"))
        .send()
        .await;
    assert_eq!(
        res.status,
        415,
        "login without content type: {}",
        res.text()
    );
    assert_error_shape(&res);

    // Too large.
    let big = json!({"username": "demo", "password": "x".repeat(17 * 1024)});
    let res = c.post("/auth/login").same_origin().json(&big).send().await;
    res.assert_error(413, "payload_too_large");

    // None of that logged anyone in.
    assert!(
        c.jar.is_empty(),
        "cookies set by failed logins: {:?}",
        c.jar.names()
    );
    // And the real password still works.
    c.login_ok("demo", &pw).await;
}

#[tokio::test]
async fn session_endpoint_describes_the_cookie_session() {
    let server = InProc::demo().await;
    let mut c = server.client();
    let login = c.login_ok("demo", server.demo_password()).await.json();

    let res = c.get("/auth/session").send().await;
    assert_eq!(res.status, 200, "{}", res.text());
    let body = res.json();
    assert_eq!(body["user"]["id"], login["user"]["id"]);
    assert_eq!(body["user"]["username"], "demo");
    assert_eq!(body["user"]["roles"], login["user"]["roles"]);
    assert_eq!(body["session"]["id"], login["session"]["id"]);
    assert_eq!(body["claims"]["sub"], login["user"]["id"]);
    assert_eq!(body["claims"]["sid"], login["session"]["id"]);
    assert_eq!(body["claims"]["username"], "demo");

    // Without cookies.
    let res = c.get("/auth/session").no_cookies().send().await;
    res.assert_error(401, "unauthenticated");
    let res = server.client().get("/auth/session").send().await;
    res.assert_error(401, "unauthenticated");
}

#[tokio::test]
async fn repeated_failed_logins_are_throttled() {
    // Documented default: `rate_limit.per_username_per_minute = 5` failed logins per
    // username per minute before 429 `rate_limited` with `Retry-After` (docs/http-api.md "Errors").
    let server = InProc::demo().await;
    let mut c = server.client();
    let mut limited = None;
    for attempt in 1..=12 {
        let res = c.login("demo", "wrong-password-guess").await;
        match res.status {
            401 => {
                res.assert_error(401, "invalid_credentials");
            }
            429 => {
                limited = Some((attempt, res));
                break;
            }
            other => panic!("attempt {attempt}: unexpected {other}: {}", res.text()),
        }
    }
    let (attempt, res) =
        limited.expect("12 wrong passwords in a row for one account were never throttled (no 429)");
    assert!(attempt <= 7, "throttled only at attempt {attempt}");
    res.assert_error(429, "rate_limited");
    let retry: u64 = res
        .header("retry-after")
        .expect("Retry-After on 429")
        .parse()
        .expect("Retry-After seconds");
    assert!((1..=3600).contains(&retry), "Retry-After {retry}");
    // Unknown users are throttled alike (no enumeration through the limiter).
    let mut limited_unknown = false;
    for _ in 1..=12 {
        let res = c.login("nobody-here", "wrong-password-guess").await;
        if res.status == 429 {
            limited_unknown = true;
            break;
        }
        res.assert_error(401, "invalid_credentials");
    }
    assert!(
        limited_unknown,
        "failed logins for an unknown user were never throttled"
    );
}

#[tokio::test]
async fn login_attempts_are_throttled_per_client_ip_not_per_forwarded_header() {
    // Documented default: `rate_limit.per_ip_per_minute = 30`; with no trusted proxies the
    // client IP is the socket's peer, whatever X-Forwarded-For says (docs/configuration.md, `trusted_proxies`).
    let server = InProc::demo().await;
    let mut c = server.client();
    let mut limited_at = None;
    for i in 0..40 {
        let res = c
            .post("/auth/login")
            .header("x-forwarded-for", &format!("198.51.100.{i}"))
            .json(&json!({"username": format!("user{i}"), "password": "some-password"}))
            .send()
            .await;
        if res.status == 429 {
            res.assert_error(429, "rate_limited");
            assert!(res.header("retry-after").is_some());
            limited_at = Some(i);
            break;
        }
        res.assert_error(401, "invalid_credentials");
    }
    assert!(
        limited_at.is_some_and(|i| i <= 31),
        "40 logins from one IP were not throttled: {limited_at:?}"
    );
}
