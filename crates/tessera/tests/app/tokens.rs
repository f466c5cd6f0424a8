//! Black-box: the cookie-less API surface — `POST /auth/token` (RFC 6749 password and
//! refresh_token grants), `POST /auth/revoke` (RFC 7009), DPoP-bound tokens (RFC 9449) and
//! RFC 9421 signed service requests through the gateway (docs/http-api.md "Tokens", "Mobile and
//! API clients", "Errors"; RFC 6749, RFC 9449, RFC 9421).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use serde_json::{json, Value};
use tessera_core::dpop::{DpopAlg, DpopKey};
use tessera_core::{b64, httpsig, random_bytes};
use tessera_testkit::inproc::InProc;
use tessera_testkit::Resp;
use tessera_testkit::{assert_error_shape, b64url_decode, b64url_decode_json, Client, Method};

const FORM: &str = "application/x-www-form-urlencoded";

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A fresh random identifier (DPoP `jti`, signature `nonce`).
fn fresh_id() -> String {
    b64::encode(random_bytes::<16>())
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An `application/x-www-form-urlencoded` body.
fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `POST path` with a form body, no cookies, and extra headers.
async fn post_form(
    c: &mut Client,
    path: &str,
    pairs: &[(&str, &str)],
    extra: &[(&str, &str)],
) -> Resp {
    let mut req = c.post(path).no_cookies();
    for (k, v) in extra {
        req = req.header(k, v);
    }
    req.body(FORM, form(pairs)).send().await
}

/// The decoded payload of a JWT.
fn claims(token: &str) -> Value {
    b64url_decode_json(token.split('.').nth(1).expect("a JWT payload")).expect("JSON payload")
}

/// The decoded JOSE header of a JWT.
fn jose_header(token: &str) -> Value {
    b64url_decode_json(token.split('.').next().expect("a JWT header")).expect("JSON header")
}

/// A successful token response.
#[derive(Debug, Clone)]
struct Tokens {
    access: String,
    refresh: String,
}

/// Asserts an RFC 6749 §5.1 success: 200 JSON `{access_token, token_type, expires_in,
/// refresh_token}`, `Cache-Control: no-store`, no cookies.
#[track_caller]
fn assert_tokens(res: &Resp, token_type: &str) -> Tokens {
    assert_eq!(res.status, 200, "token request failed: {}", res.text());
    assert!(
        res.is_json(),
        "content-type {:?}",
        res.header("content-type")
    );
    assert_eq!(
        res.header("cache-control").as_deref(),
        Some("no-store"),
        "token responses must not be cached (RFC 6749 §5.1)"
    );
    assert!(
        res.set_cookies.is_empty(),
        "the token endpoint sets no cookies: {:?}",
        res.set_cookies
    );
    let v = res.json();
    assert_eq!(v["token_type"], token_type, "{v}");
    let expires_in = v["expires_in"]
        .as_u64()
        .unwrap_or_else(|| panic!("expires_in not a positive integer: {v}"));
    assert!(expires_in > 0, "{v}");
    let access = v["access_token"].as_str().expect("access_token").to_owned();
    let refresh = v["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_owned();
    assert_eq!(access.split('.').count(), 3, "compact JWS: {access}");
    // ≥ 256 bits of randomness: at least 43 base64url characters.
    assert!(refresh.len() >= 43, "refresh token too short: {refresh}");
    assert!(
        !refresh.contains('.'),
        "refresh token must be opaque, not a JWT"
    );
    let c = claims(&access);
    assert_eq!(jose_header(&access)["typ"], "at+jwt");
    assert_eq!(c["username"], "demo");
    for k in ["iss", "aud", "sub", "sid", "jti"] {
        assert!(c.get(k).is_some(), "claim {k} missing: {c}");
    }
    let exp = c["exp"].as_u64().expect("exp");
    let iat = c["iat"].as_u64().expect("iat");
    assert_eq!(exp - iat, expires_in, "expires_in matches the token's life");
    Tokens { access, refresh }
}

/// Asserts the RFC 6749 §5.2 error shape `{error, error_description}` (JSON, no-store).
#[track_caller]
fn assert_oauth_shape(res: &Resp) -> Value {
    assert!(
        res.is_json(),
        "status {}: error not JSON (content-type {:?}): {}",
        res.status,
        res.header("content-type"),
        res.text()
    );
    let v = res.json();
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("error body not an object: {v}"));
    assert!(obj.get("error").is_some_and(Value::is_string), "{v}");
    assert!(
        obj.get("error_description").is_some_and(Value::is_string),
        "{v}"
    );
    assert!(
        obj.get("access_token").is_none() && obj.get("refresh_token").is_none(),
        "{v}"
    );
    assert_eq!(res.header("cache-control").as_deref(), Some("no-store"));
    v
}

#[track_caller]
fn assert_oauth_error(res: &Resp, status: u16, code: &str) -> Value {
    assert_eq!(
        res.status,
        status,
        "expected {status} {code}, got {}: {}",
        res.status,
        res.text()
    );
    let v = assert_oauth_shape(res);
    assert_eq!(v["error"], code, "{v}");
    v
}

/// A 401 JSON error from the gateway for a refused credential.
#[track_caller]
fn assert_refused(res: &Resp, what: &str) {
    assert_eq!(
        res.status,
        401,
        "{what}: expected 401, got {}: {}",
        res.status,
        res.text()
    );
    assert_error_shape(res);
    let code = res.json()["error"].as_str().unwrap_or_default().to_owned();
    assert!(
        matches!(code.as_str(), "unauthenticated" | "invalid_dpop_proof"),
        "{what}: unexpected code {code}"
    );
}

/// A DPoP proof for `POST /auth/token`.
fn token_proof(server: &InProc, key: &DpopKey) -> String {
    key.proof(
        "POST",
        &server.url("/auth/token"),
        server.now().0,
        &fresh_id(),
        None,
        None,
    )
    .unwrap()
}

/// A DPoP proof for `method` on `path` (no query) of this server, carrying `ath` of `at`.
fn api_proof(server: &InProc, key: &DpopKey, method: &str, path: &str, at: Option<&str>) -> String {
    key.proof(
        method,
        &server.url(path),
        server.now().0,
        &fresh_id(),
        at,
        None,
    )
    .unwrap()
}

/// The password grant for the demo user, optionally DPoP-bound to `key`.
async fn password_grant(server: &InProc, c: &mut Client, key: Option<&DpopKey>) -> Resp {
    let password = server.demo_password().to_owned();
    let proof = key.map(|k| token_proof(server, k));
    let mut extra = Vec::new();
    if let Some(p) = &proof {
        extra.push(("dpop", p.as_str()));
    }
    post_form(
        c,
        "/auth/token",
        &[
            ("grant_type", "password"),
            ("username", "demo"),
            ("password", &password),
        ],
        &extra,
    )
    .await
}

/// The refresh_token grant, with an optional `DPoP` header value.
async fn refresh_grant(c: &mut Client, refresh: &str, proof: Option<&str>) -> Resp {
    let mut extra = Vec::new();
    if let Some(p) = proof {
        extra.push(("dpop", p));
    }
    post_form(
        c,
        "/auth/token",
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        &extra,
    )
    .await
}

async fn bearer_get(c: &mut Client, path: &str, at: &str) -> Resp {
    c.get(path).no_cookies().bearer(at).send().await
}

async fn dpop_request(c: &mut Client, method: Method, path: &str, at: &str, proof: &str) -> Resp {
    c.request(method, path)
        .no_cookies()
        .header("authorization", &format!("DPoP {at}"))
        .header("dpop", proof)
        .send()
        .await
}

/// The headers the demo upstream's `/api/whoami` received.
#[track_caller]
fn upstream_headers(res: &Resp) -> serde_json::Map<String, Value> {
    assert_eq!(res.status, 200, "{}", res.text());
    res.json()["headers"]
        .as_object()
        .expect("whoami echoes headers")
        .clone()
}

// ---------------------------------------------------------------------------------------
// 1. Password grant and request validation
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn password_grant_form_and_json() {
    let server = InProc::demo().await;
    let mut c = server.client();

    // Form body.
    let res = password_grant(&server, &mut c, None).await;
    let form_tokens = assert_tokens(&res, "Bearer");
    assert!(claims(&form_tokens.access).get("cnf").is_none());
    let res = bearer_get(&mut c, "/api/notes", &form_tokens.access).await;
    assert_eq!(
        res.status,
        200,
        "bearer token on /api/notes: {}",
        res.text()
    );

    // JSON body (with a charset parameter).
    let res = c
        .post("/auth/token")
        .no_cookies()
        .body(
            "application/json; charset=utf-8",
            serde_json::to_vec(&json!({
                "grant_type": "password",
                "username": "demo",
                "password": server.demo_password(),
            }))
            .unwrap(),
        )
        .send()
        .await;
    let json_tokens = assert_tokens(&res, "Bearer");
    assert_ne!(json_tokens.refresh, form_tokens.refresh);
    assert_ne!(
        claims(&json_tokens.access)["sid"],
        claims(&form_tokens.access)["sid"],
        "each grant starts its own session"
    );
    let res = bearer_get(&mut c, "/api/notes", &json_tokens.access).await;
    assert_eq!(res.status, 200, "{}", res.text());

    // The access token reaches the upstream as identity headers.
    let res = bearer_get(&mut c, "/api/whoami", &json_tokens.access).await;
    let h = upstream_headers(&res);
    let cl = claims(&json_tokens.access);
    assert_eq!(h["x-tessera-username"], "demo");
    assert_eq!(h["x-tessera-user"], cl["sub"]);
    assert_eq!(h["x-tessera-session"], cl["sid"]);
    assert!(h.get("authorization").is_none(), "Authorization forwarded");
}

#[tokio::test]
async fn password_grant_errors() {
    let server = InProc::demo().await;
    let mut c = server.client();
    let pw = server.demo_password().to_owned();

    // Wrong password and unknown user: the same answer, byte for byte.
    let wrong = post_form(
        &mut c,
        "/auth/token",
        &[
            ("grant_type", "password"),
            ("username", "demo"),
            ("password", "not-the-password"),
        ],
        &[],
    )
    .await;
    assert_oauth_error(&wrong, 400, "invalid_grant");
    let unknown = post_form(
        &mut c,
        "/auth/token",
        &[
            ("grant_type", "password"),
            ("username", "nobody-here"),
            ("password", "not-the-password"),
        ],
        &[],
    )
    .await;
    assert_oauth_error(&unknown, 400, "invalid_grant");
    assert_eq!(
        wrong.body, unknown.body,
        "unknown user and wrong password differ"
    );
    assert_eq!(
        wrong.header("www-authenticate"),
        unknown.header("www-authenticate")
    );

    // Missing grant_type.
    let res = post_form(
        &mut c,
        "/auth/token",
        &[("username", "demo"), ("password", &pw)],
        &[],
    )
    .await;
    assert_oauth_error(&res, 400, "invalid_request");
    // Empty body.
    let res = post_form(&mut c, "/auth/token", &[], &[]).await;
    assert_oauth_error(&res, 400, "invalid_request");

    // Unknown grant types.
    for grant in ["client_credentials", "authorization_code", "PASSWORD", ""] {
        let res = post_form(
            &mut c,
            "/auth/token",
            &[
                ("grant_type", grant),
                ("username", "demo"),
                ("password", &pw),
            ],
            &[],
        )
        .await;
        assert_oauth_error(&res, 400, "unsupported_grant_type");
    }

    // A repeated parameter (RFC 6749 §3.2), even with identical values.
    let body = format!(
        "grant_type=password&username=demo&username=demo&password={}",
        enc(&pw)
    );
    let res = c.post("/auth/token").body(FORM, body).send().await;
    assert_oauth_error(&res, 400, "invalid_request");
    let body = format!(
        "grant_type=password&grant_type=password&username=demo&password={}",
        enc(&pw)
    );
    let res = c.post("/auth/token").body(FORM, body).send().await;
    assert_oauth_error(&res, 400, "invalid_request");

    // Missing username / password.
    let res = post_form(
        &mut c,
        "/auth/token",
        &[("grant_type", "password"), ("password", &pw)],
        &[],
    )
    .await;
    assert_oauth_error(&res, 400, "invalid_request");
    let res = post_form(
        &mut c,
        "/auth/token",
        &[("grant_type", "password"), ("username", "demo")],
        &[],
    )
    .await;
    assert_oauth_error(&res, 400, "invalid_request");

    // JSON values must be strings.
    for body in [
        json!({"grant_type": "password", "username": "demo", "password": 12345678}),
        json!({"grant_type": "password", "username": ["demo"], "password": pw}),
        json!({"grant_type": null, "username": "demo", "password": pw}),
    ] {
        let res = c.post("/auth/token").json(&body).send().await;
        assert_oauth_error(&res, 400, "invalid_request");
    }

    // Other content types: 415, still in the OAuth shape.
    let ok_form = form(&[
        ("grant_type", "password"),
        ("username", "demo"),
        ("password", &pw),
    ]);
    for ct in [
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/jsonx",
    ] {
        let res = c.post("/auth/token").body(ct, ok_form.clone()).send().await;
        assert_eq!(res.status, 415, "{ct}: {}", res.text());
        assert_oauth_shape(&res);
    }
    let res = c.post("/auth/token").raw_body(ok_form.clone()).send().await;
    assert_eq!(res.status, 415, "no content type: {}", res.text());

    // Wrong method.
    let res = c.get("/auth/token").send().await;
    assert_eq!(res.status, 405, "{}", res.text());
    assert!(res.is_json());

    // None of the failures above ended up logging the user in.
    let res = password_grant(&server, &mut c, None).await;
    assert_tokens(&res, "Bearer");
}

#[tokio::test]
async fn token_endpoint_ignores_cookies() {
    let server = InProc::demo().await;
    // A browser session's cookies (refresh cookie included) do not stand in for parameters.
    let mut browser = server.demo_client().await;
    let rt = browser.refresh_token().expect("refresh cookie");
    let res = browser
        .post("/auth/token")
        .body(FORM, "grant_type=refresh_token")
        .send()
        .await;
    assert_eq!(res.status, 400, "{}", res.text());
    assert_oauth_shape(&res);
    // A browser (cookie) family cannot be refreshed at the token endpoint either.
    let res = refresh_grant(&mut browser, &rt, None).await;
    assert_oauth_error(&res, 400, "invalid_grant");
    // …and its session was not harmed by the attempt.
    let res = browser.refresh().await;
    assert_eq!(res.status, 200, "{}", res.text());
}

/// RFC 6749 §5.2: a missing required parameter is `invalid_request`; `invalid_grant` is
/// for a refresh token that is invalid, expired or revoked.
#[tokio::test]
async fn refresh_grant_without_refresh_token_is_invalid_request() {
    let server = InProc::demo().await;
    let mut c = server.client();
    let res = post_form(
        &mut c,
        "/auth/token",
        &[("grant_type", "refresh_token")],
        &[],
    )
    .await;
    assert_oauth_error(&res, 400, "invalid_request");
}

/// RFC 6749 §3.2 (parameters MUST NOT be included more than once) applies to JSON bodies
/// too: `{"username":"x","username":"demo"}` must not be silently resolved last-wins.
#[tokio::test]
async fn repeated_json_parameter_is_refused() {
    let server = InProc::demo().await;
    let mut c = server.client();
    let pw = serde_json::to_string(server.demo_password()).unwrap();
    let body = format!(
        r#"{{"grant_type":"password","username":"mallory","username":"demo","password":{pw}}}"#
    );
    let res = c
        .post("/auth/token")
        .body("application/json", body)
        .send()
        .await;
    assert_oauth_error(&res, 400, "invalid_request");
}

// ---------------------------------------------------------------------------------------
// 2–4. Refresh rotation, reuse, grace
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn refresh_grant_rotates() {
    let server = InProc::demo().await;
    let mut c = server.client();
    let first = assert_tokens(&password_grant(&server, &mut c, None).await, "Bearer");

    let res = refresh_grant(&mut c, &first.refresh, None).await;
    let second = assert_tokens(&res, "Bearer");
    assert_ne!(second.refresh, first.refresh, "the refresh token rotates");
    assert_ne!(second.access, first.access);
    let (c1, c2) = (claims(&first.access), claims(&second.access));
    assert_eq!(c1["sid"], c2["sid"], "same session");
    assert_eq!(c1["sub"], c2["sub"]);
    assert_ne!(c1["jti"], c2["jti"]);

    // Both access tokens work: the old one until it expires.
    let res = bearer_get(&mut c, "/api/notes", &first.access).await;
    assert_eq!(
        res.status,
        200,
        "old access token after rotation: {}",
        res.text()
    );
    let res = bearer_get(&mut c, "/api/notes", &second.access).await;
    assert_eq!(res.status, 200, "{}", res.text());

    // The successor rotates in turn.
    let res = refresh_grant(&mut c, &second.refresh, None).await;
    let third = assert_tokens(&res, "Bearer");
    assert_ne!(third.refresh, second.refresh);
    assert_ne!(third.refresh, first.refresh);
    let res = bearer_get(&mut c, "/api/notes", &third.access).await;
    assert_eq!(res.status, 200, "{}", res.text());

    // Unknown and malformed refresh tokens.
    for bad in [
        "A".repeat(43),
        format!("{}x", third.refresh),
        third.access.clone(),
        "not a token".to_owned(),
    ] {
        let res = refresh_grant(&mut c, &bad, None).await;
        assert_oauth_error(&res, 400, "invalid_grant");
    }
    // None of that hurt the live session.
    let res = refresh_grant(&mut c, &third.refresh, None).await;
    assert_tokens(&res, "Bearer");
}

#[tokio::test]
async fn refresh_reuse_after_grace_revokes_the_family() {
    let server = InProc::builder()
        .config("[tokens]\nrefresh_grace = \"0s\"")
        .start()
        .await;
    let mut c = server.client();
    let first = assert_tokens(&password_grant(&server, &mut c, None).await, "Bearer");
    let second = assert_tokens(&refresh_grant(&mut c, &first.refresh, None).await, "Bearer");
    assert_eq!(
        bearer_get(&mut c, "/api/notes", &second.access)
            .await
            .status,
        200
    );

    // The rotated token again: reuse.
    let res = refresh_grant(&mut c, &first.refresh, None).await;
    assert_oauth_error(&res, 401, "refresh_token_reused");

    // The whole family is gone at once: the successor refresh token …
    let res = refresh_grant(&mut c, &second.refresh, None).await;
    assert_oauth_error(&res, 400, "invalid_grant");
    // … the access token the rotation issued, and the original one.
    let res = bearer_get(&mut c, "/api/notes", &second.access).await;
    res.assert_error(401, "unauthenticated");
    let res = bearer_get(&mut c, "/api/notes", &first.access).await;
    res.assert_error(401, "unauthenticated");
    // Presenting the reused token once more does not revive anything.
    let res = refresh_grant(&mut c, &first.refresh, None).await;
    assert!(
        matches!(res.status, 400 | 401),
        "{}: {}",
        res.status,
        res.text()
    );
    assert_oauth_shape(&res);

    // A new login is unaffected.
    let fresh = assert_tokens(&password_grant(&server, &mut c, None).await, "Bearer");
    assert_eq!(
        bearer_get(&mut c, "/api/notes", &fresh.access).await.status,
        200
    );
}

#[tokio::test]
async fn concurrent_refreshes_within_the_grace_share_the_successor() {
    let server = InProc::demo().await;
    let mut c = server.client();
    let first = assert_tokens(&password_grant(&server, &mut c, None).await, "Bearer");

    let mut a = server.client();
    let mut b = server.client();
    let (ra, rb) = tokio::join!(
        refresh_grant(&mut a, &first.refresh, None),
        refresh_grant(&mut b, &first.refresh, None)
    );
    let ta = assert_tokens(&ra, "Bearer");
    let tb = assert_tokens(&rb, "Bearer");
    assert_eq!(
        ta.refresh, tb.refresh,
        "racing refreshes within the grace get the same successor"
    );
    assert_ne!(ta.refresh, first.refresh);
    assert_eq!(claims(&ta.access)["sid"], claims(&tb.access)["sid"]);
    // The session is alive: both access tokens work.
    for t in [&ta, &tb] {
        let res = bearer_get(&mut c, "/api/notes", &t.access).await;
        assert_eq!(res.status, 200, "{}", res.text());
    }
    // A third, late tab inside the grace gets the same successor too.
    let late = assert_tokens(&refresh_grant(&mut c, &first.refresh, None).await, "Bearer");
    assert_eq!(late.refresh, ta.refresh);

    // The successor refreshes normally.
    let next = assert_tokens(&refresh_grant(&mut c, &ta.refresh, None).await, "Bearer");
    assert_ne!(next.refresh, ta.refresh);
    let res = bearer_get(&mut c, "/api/notes", &next.access).await;
    assert_eq!(res.status, 200, "{}", res.text());

    // Grace covers the predecessor only: once its successor has itself been rotated, the
    // original token is a reuse (RFC 9700 §4.14.2), grace or not.
    let res = refresh_grant(&mut c, &first.refresh, None).await;
    assert_oauth_error(&res, 401, "refresh_token_reused");
    let res = bearer_get(&mut c, "/api/notes", &next.access).await;
    res.assert_error(401, "unauthenticated");
}

// ---------------------------------------------------------------------------------------
// 5. Revocation (RFC 7009)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn revoke_ends_the_session_at_once() {
    let server = InProc::demo().await;
    let mut c = server.client();

    // By refresh token.
    let t = assert_tokens(&password_grant(&server, &mut c, None).await, "Bearer");
    let other = assert_tokens(&password_grant(&server, &mut c, None).await, "Bearer");
    assert_eq!(
        bearer_get(&mut c, "/api/notes", &t.access).await.status,
        200
    );
    let res = post_form(&mut c, "/auth/revoke", &[("token", &t.refresh)], &[]).await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.header("cache-control").as_deref(), Some("no-store"));
    let res = bearer_get(&mut c, "/api/notes", &t.access).await;
    res.assert_error(401, "unauthenticated");
    let res = refresh_grant(&mut c, &t.refresh, None).await;
    assert_oauth_error(&res, 400, "invalid_grant");
    // Revoking again is still 200.
    let res = post_form(&mut c, "/auth/revoke", &[("token", &t.refresh)], &[]).await;
    assert_eq!(res.status, 200, "{}", res.text());
    // Another session of the same user is untouched.
    assert_eq!(
        bearer_get(&mut c, "/api/notes", &other.access).await.status,
        200
    );

    // By access token (JSON body this time).
    let res = c
        .post("/auth/revoke")
        .json(&json!({"token": other.access}))
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let res = bearer_get(&mut c, "/api/notes", &other.access).await;
    res.assert_error(401, "unauthenticated");
    let res = refresh_grant(&mut c, &other.refresh, None).await;
    assert_oauth_error(&res, 400, "invalid_grant");

    // Unknown or garbage tokens: 200 (RFC 7009 §2.2).
    let long = "x".repeat(5000);
    for garbage in [
        "garbage",
        "",
        "A".repeat(43).as_str(),
        "a.b.c",
        "eyJhbGciOiJub25lIn0.eyJzaWQiOiJ4In0.",
        long.as_str(),
    ] {
        let res = post_form(&mut c, "/auth/revoke", &[("token", garbage)], &[]).await;
        assert_eq!(res.status, 200, "revoke {garbage:.20}: {}", res.text());
    }
    // A token_type_hint is accepted (and may be ignored).
    let res = post_form(
        &mut c,
        "/auth/revoke",
        &[("token", "garbage"), ("token_type_hint", "refresh_token")],
        &[],
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.text());
    // Missing token: invalid_request.
    let res = post_form(&mut c, "/auth/revoke", &[], &[]).await;
    assert_oauth_error(&res, 400, "invalid_request");
    let res = c.get("/auth/revoke").send().await;
    assert_eq!(res.status, 405);
}

// ---------------------------------------------------------------------------------------
// 6. DPoP (RFC 9449)
// ---------------------------------------------------------------------------------------

async fn dpop_flow(alg: DpopAlg) {
    let server = InProc::demo().await;
    let mut c = server.client();
    let key = DpopKey::generate(alg).unwrap();
    let other_key = DpopKey::generate(alg).unwrap();

    // Binding at /auth/token.
    let proof = token_proof(&server, &key);
    let pw = server.demo_password().to_owned();
    let grant = [
        ("grant_type", "password"),
        ("username", "demo"),
        ("password", pw.as_str()),
    ];
    let res = post_form(&mut c, "/auth/token", &grant, &[("dpop", &proof)]).await;
    let bound = assert_tokens(&res, "DPoP");
    let cl = claims(&bound.access);
    assert_eq!(
        cl["cnf"]["jkt"],
        key.thumbprint(),
        "cnf.jkt is the key's thumbprint"
    );
    // The same token-endpoint proof again: its jti was seen.
    let res = post_form(&mut c, "/auth/token", &grant, &[("dpop", &proof)]).await;
    assert_oauth_error(&res, 401, "invalid_dpop_proof");

    // Happy path.
    let proof = api_proof(&server, &key, "GET", "/api/whoami", Some(&bound.access));
    let res = dpop_request(&mut c, Method::GET, "/api/whoami", &bound.access, &proof).await;
    let h = upstream_headers(&res);
    assert_eq!(h["x-tessera-username"], "demo");
    assert_eq!(h["x-tessera-user"], cl["sub"]);
    assert_eq!(h["x-tessera-session"], cl["sid"]);
    assert!(h.get("authorization").is_none(), "Authorization forwarded");
    assert!(h.get("dpop").is_none(), "DPoP proof forwarded");
    // Replayed proof.
    let res = dpop_request(&mut c, Method::GET, "/api/whoami", &bound.access, &proof).await;
    assert_refused(&res, "replayed proof");
    // The scheme name is case-insensitive (RFC 9110 §11.1).
    let proof = api_proof(&server, &key, "GET", "/api/whoami", Some(&bound.access));
    let res = c
        .get("/api/whoami")
        .no_cookies()
        .header("authorization", &format!("dpop {}", bound.access))
        .header("dpop", &proof)
        .send()
        .await;
    assert_eq!(res.status, 200, "lower-case scheme: {}", res.text());
    // A query string is not part of htu.
    let proof = api_proof(&server, &key, "GET", "/api/whoami", Some(&bound.access));
    let res = dpop_request(
        &mut c,
        Method::GET,
        "/api/whoami?x=1",
        &bound.access,
        &proof,
    )
    .await;
    assert_eq!(res.status, 200, "htu without the query: {}", res.text());
    // POST with a body.
    let proof = api_proof(&server, &key, "POST", "/api/whoami", Some(&bound.access));
    let res = c
        .post("/api/whoami")
        .no_cookies()
        .header("authorization", &format!("DPoP {}", bound.access))
        .header("dpop", &proof)
        .json(&json!({"x": 1}))
        .send()
        .await;
    assert_eq!(res.status, 200, "DPoP POST: {}", res.text());

    // Proof by another key.
    let proof = api_proof(
        &server,
        &other_key,
        "GET",
        "/api/whoami",
        Some(&bound.access),
    );
    let res = dpop_request(&mut c, Method::GET, "/api/whoami", &bound.access, &proof).await;
    assert_refused(&res, "proof by another key");
    // Wrong htu: another path, another origin.
    let proof = api_proof(&server, &key, "GET", "/api/notes", Some(&bound.access));
    let res = dpop_request(&mut c, Method::GET, "/api/whoami", &bound.access, &proof).await;
    assert_refused(&res, "htu for another path");
    let proof = key
        .proof(
            "GET",
            "https://evil.example/api/whoami",
            server.now().0,
            &fresh_id(),
            Some(&bound.access),
            None,
        )
        .unwrap();
    let res = dpop_request(&mut c, Method::GET, "/api/whoami", &bound.access, &proof).await;
    assert_refused(&res, "htu on another origin");
    // Wrong htm.
    let proof = api_proof(&server, &key, "POST", "/api/whoami", Some(&bound.access));
    let res = dpop_request(&mut c, Method::GET, "/api/whoami", &bound.access, &proof).await;
    assert_refused(&res, "htm POST on a GET");
    let proof = api_proof(&server, &key, "get", "/api/whoami", Some(&bound.access));
    let res = dpop_request(&mut c, Method::GET, "/api/whoami", &bound.access, &proof).await;
    assert_refused(&res, "htm in lower case");
    // Stale (an hour, and just past the 60 s default) and future iat.
    for iat in [
        server.now().0 - 3600,
        server.now().0 - 120,
        server.now().0 + 3600,
        server.now().0 + 60,
    ] {
        let proof = key
            .proof(
                "GET",
                &server.url("/api/whoami"),
                iat,
                &fresh_id(),
                Some(&bound.access),
                None,
            )
            .unwrap();
        let res = dpop_request(&mut c, Method::GET, "/api/whoami", &bound.access, &proof).await;
        assert_refused(&res, &format!("iat {iat}"));
    }
    // Without ath, and with the ath of another token.
    let proof = api_proof(&server, &key, "GET", "/api/whoami", None);
    let res = dpop_request(&mut c, Method::GET, "/api/whoami", &bound.access, &proof).await;
    assert_refused(&res, "proof without ath");
    let other_grant = assert_tokens(&password_grant(&server, &mut c, Some(&key)).await, "DPoP");
    let proof = api_proof(
        &server,
        &key,
        "GET",
        "/api/whoami",
        Some(&other_grant.access),
    );
    let res = dpop_request(&mut c, Method::GET, "/api/whoami", &bound.access, &proof).await;
    assert_refused(&res, "ath of another token");
    // No proof at all; two proofs; a garbage proof.
    let res = c
        .get("/api/whoami")
        .no_cookies()
        .header("authorization", &format!("DPoP {}", bound.access))
        .send()
        .await;
    assert_refused(&res, "DPoP scheme without a proof");
    let p1 = api_proof(&server, &key, "GET", "/api/whoami", Some(&bound.access));
    let p2 = api_proof(&server, &key, "GET", "/api/whoami", Some(&bound.access));
    let res = c
        .get("/api/whoami")
        .no_cookies()
        .header("authorization", &format!("DPoP {}", bound.access))
        .header("dpop", &p1)
        .header("dpop", &p2)
        .send()
        .await;
    assert_refused(&res, "two DPoP headers");
    let res = dpop_request(&mut c, Method::GET, "/api/whoami", &bound.access, "a.b.c").await;
    assert_refused(&res, "garbage proof");

    // The bound token as a bearer token, with or without a proof.
    let res = bearer_get(&mut c, "/api/whoami", &bound.access).await;
    assert_refused(&res, "bound token as Bearer");
    let proof = api_proof(&server, &key, "GET", "/api/whoami", Some(&bound.access));
    let res = c
        .get("/api/whoami")
        .no_cookies()
        .bearer(&bound.access)
        .header("dpop", &proof)
        .send()
        .await;
    assert_refused(&res, "bound token as Bearer with a proof");

    // An unbound token does not become bound by sending it as DPoP.
    let unbound = assert_tokens(&password_grant(&server, &mut c, None).await, "Bearer");
    let proof = api_proof(&server, &key, "GET", "/api/whoami", Some(&unbound.access));
    let res = dpop_request(&mut c, Method::GET, "/api/whoami", &unbound.access, &proof).await;
    assert_refused(&res, "unbound token as DPoP");

    // Still fine after all those refusals.
    let proof = api_proof(&server, &key, "GET", "/api/whoami", Some(&bound.access));
    let res = dpop_request(&mut c, Method::GET, "/api/whoami", &bound.access, &proof).await;
    assert_eq!(res.status, 200, "{}", res.text());

    // Refreshing a bound session needs a proof by the same key.
    let res = refresh_grant(&mut c, &bound.refresh, None).await;
    assert!(
        matches!(res.status, 400 | 401),
        "bound refresh without a proof: {} {}",
        res.status,
        res.text()
    );
    assert_oauth_shape(&res);
    let proof = token_proof(&server, &other_key);
    let res = refresh_grant(&mut c, &bound.refresh, Some(&proof)).await;
    assert!(
        matches!(res.status, 400 | 401),
        "bound refresh with another key: {} {}",
        res.status,
        res.text()
    );
    assert_oauth_shape(&res);
    let proof = token_proof(&server, &key);
    let res = refresh_grant(&mut c, &bound.refresh, Some(&proof)).await;
    let rotated = assert_tokens(&res, "DPoP");
    assert_ne!(rotated.refresh, bound.refresh);
    assert_eq!(claims(&rotated.access)["cnf"]["jkt"], key.thumbprint());
    assert_eq!(claims(&rotated.access)["sid"], cl["sid"]);
    let proof = api_proof(&server, &key, "GET", "/api/whoami", Some(&rotated.access));
    let res = dpop_request(&mut c, Method::GET, "/api/whoami", &rotated.access, &proof).await;
    assert_eq!(res.status, 200, "rotated DPoP token: {}", res.text());

    // Binding with a malformed DPoP header fails and issues nothing.
    let header_json = key.header_json();
    let bad_proofs = [
        "garbage".to_owned(),
        "a.b.c".to_owned(),
        // Signed, but for the wrong URL.
        key.proof(
            "POST",
            &server.url("/auth/revoke"),
            server.now().0,
            &fresh_id(),
            None,
            None,
        )
        .unwrap(),
        // Signed, but not typ dpop+jwt.
        key.sign_raw(
            &header_json.replace("dpop+jwt", "JWT"),
            &format!(
                r#"{{"jti":"{}","htm":"POST","htu":"{}","iat":{}}}"#,
                fresh_id(),
                server.url("/auth/token"),
                server.now().0
            ),
        )
        .unwrap(),
        // Signed, but without jti.
        key.sign_raw(
            &header_json,
            &format!(
                r#"{{"htm":"POST","htu":"{}","iat":{}}}"#,
                server.url("/auth/token"),
                server.now().0
            ),
        )
        .unwrap(),
    ];
    for bad in &bad_proofs {
        let res = post_form(&mut c, "/auth/token", &grant, &[("dpop", bad)]).await;
        assert!(
            matches!(res.status, 400 | 401),
            "binding with {bad:.30}: {} {}",
            res.status,
            res.text()
        );
        let v = assert_oauth_shape(&res);
        assert_eq!(v["error"], "invalid_dpop_proof", "{v}");
    }
}

#[tokio::test]
async fn dpop_es256() {
    dpop_flow(DpopAlg::ES256).await;
}

#[tokio::test]
async fn dpop_eddsa() {
    dpop_flow(DpopAlg::EdDSA).await;
}

// ---------------------------------------------------------------------------------------
// 7. Signed service requests (RFC 9421)
// ---------------------------------------------------------------------------------------

struct Svc {
    keyid: String,
    secret: Vec<u8>,
}

async fn add_client(server: &InProc, name: &str) -> Svc {
    // What `tessera client add` does: the key id and secret it prints.
    let (keyid, secret) = server.add_client(name).await;
    let secret = b64url_decode(&secret).expect("secret is base64url");
    assert_eq!(secret.len(), 32);
    Svc { keyid, secret }
}

/// The signature headers for a request, covering `content-digest` when `digest` is given.
fn sign(
    server: &InProc,
    svc: &Svc,
    method: &str,
    target: &str,
    digest: Option<&str>,
    created: u64,
    nonce: &str,
) -> Vec<(&'static str, String)> {
    let (input, sig) = httpsig::sign(
        method,
        &server.url(target),
        digest,
        &svc.keyid,
        nonce,
        created,
        &svc.secret,
    )
    .unwrap();
    let mut h = vec![("signature-input", input), ("signature", sig)];
    if let Some(d) = digest {
        h.push(("content-digest", d.to_owned()));
    }
    h
}

async fn send_with(
    c: &mut Client,
    method: Method,
    path: &str,
    headers: &[(&str, String)],
    body: Option<&[u8]>,
) -> Resp {
    let mut req = c.request(method, path).no_cookies();
    for (k, v) in headers {
        req = req.header(k, v);
    }
    if let Some(b) = body {
        req = req.body("application/json", b.to_vec());
    }
    req.send().await
}

#[track_caller]
fn assert_client_reached_upstream(res: &Resp, name: &str) {
    let h = upstream_headers(res);
    assert_eq!(h.get("x-tessera-client"), Some(&json!(name)), "{h:?}");
    for n in [
        "x-tessera-user",
        "x-tessera-username",
        "x-tessera-roles",
        "x-tessera-session",
        "signature",
        "signature-input",
    ] {
        assert!(h.get(n).is_none(), "{n} reached the upstream: {h:?}");
    }
}

#[tokio::test]
async fn signed_requests() {
    let server = InProc::demo().await;
    let svc = add_client(&server, "svc1").await;
    let mut c = server.client();

    // Happy GET.
    let h = sign(
        &server,
        &svc,
        "GET",
        "/api/whoami",
        None,
        server.now().0,
        &fresh_id(),
    );
    let res = send_with(&mut c, Method::GET, "/api/whoami", &h, None).await;
    assert_client_reached_upstream(&res, "svc1");
    // Replay of the identical request.
    let res = send_with(&mut c, Method::GET, "/api/whoami", &h, None).await;
    res.assert_error(401, "unauthenticated");

    // Happy GET with a query, and spoofed identity headers that must be dropped.
    let mut h = sign(
        &server,
        &svc,
        "GET",
        "/api/whoami?a=1&b=2",
        None,
        server.now().0,
        &fresh_id(),
    );
    h.push(("x-tessera-client", "admin".to_owned()));
    h.push(("x-tessera-user", "someone-else".to_owned()));
    let res = send_with(&mut c, Method::GET, "/api/whoami?a=1&b=2", &h, None).await;
    assert_client_reached_upstream(&res, "svc1");

    // Happy POST with a body.
    let body = br#"{"note":"from svc1"}"#;
    let digest = httpsig::content_digest(body);
    let h = sign(
        &server,
        &svc,
        "POST",
        "/api/whoami",
        Some(&digest),
        server.now().0,
        &fresh_id(),
    );
    let res = send_with(&mut c, Method::POST, "/api/whoami", &h, Some(body)).await;
    assert_client_reached_upstream(&res, "svc1");

    // Tampered body: the digest (and so the signature) no longer matches.
    let h = sign(
        &server,
        &svc,
        "POST",
        "/api/whoami",
        Some(&digest),
        server.now().0,
        &fresh_id(),
    );
    let res = send_with(
        &mut c,
        Method::POST,
        "/api/whoami",
        &h,
        Some(br#"{"note":"evil"}"#),
    )
    .await;
    res.assert_error(401, "unauthenticated");
    // Tampered body with a recomputed digest: the signature covers the old digest.
    let evil = br#"{"note":"evil"}"#;
    let mut h = sign(
        &server,
        &svc,
        "POST",
        "/api/whoami",
        Some(&digest),
        server.now().0,
        &fresh_id(),
    );
    h.retain(|(k, _)| *k != "content-digest");
    h.push(("content-digest", httpsig::content_digest(evil)));
    let res = send_with(&mut c, Method::POST, "/api/whoami", &h, Some(evil)).await;
    res.assert_error(401, "unauthenticated");
    // A body the signature does not cover at all.
    let h = sign(
        &server,
        &svc,
        "POST",
        "/api/whoami",
        None,
        server.now().0,
        &fresh_id(),
    );
    let res = send_with(&mut c, Method::POST, "/api/whoami", &h, Some(body)).await;
    res.assert_error(401, "unauthenticated");

    // Tampered path and query.
    let h = sign(
        &server,
        &svc,
        "GET",
        "/api/whoami",
        None,
        server.now().0,
        &fresh_id(),
    );
    let res = send_with(&mut c, Method::GET, "/api/notes", &h, None).await;
    res.assert_error(401, "unauthenticated");
    let h = sign(
        &server,
        &svc,
        "GET",
        "/api/whoami?a=1",
        None,
        server.now().0,
        &fresh_id(),
    );
    let res = send_with(&mut c, Method::GET, "/api/whoami?a=2", &h, None).await;
    res.assert_error(401, "unauthenticated");
    let h = sign(
        &server,
        &svc,
        "GET",
        "/api/whoami?a=1",
        None,
        server.now().0,
        &fresh_id(),
    );
    let res = send_with(&mut c, Method::GET, "/api/whoami", &h, None).await;
    res.assert_error(401, "unauthenticated");
    // Tampered method.
    let h = sign(
        &server,
        &svc,
        "GET",
        "/api/whoami",
        None,
        server.now().0,
        &fresh_id(),
    );
    let res = send_with(&mut c, Method::POST, "/api/whoami", &h, None).await;
    res.assert_error(401, "unauthenticated");
    // Signed for another authority.
    let (input, sig) = httpsig::sign(
        "GET",
        "https://other.example/api/whoami",
        None,
        &svc.keyid,
        &fresh_id(),
        server.now().0,
        &svc.secret,
    )
    .unwrap();
    let h = vec![("signature-input", input), ("signature", sig)];
    let res = send_with(&mut c, Method::GET, "/api/whoami", &h, None).await;
    res.assert_error(401, "unauthenticated");

    // Outside the time window, either side.
    for created in [server.now().0 - 600, server.now().0 + 600] {
        let h = sign(
            &server,
            &svc,
            "GET",
            "/api/whoami",
            None,
            created,
            &fresh_id(),
        );
        let res = send_with(&mut c, Method::GET, "/api/whoami", &h, None).await;
        res.assert_error(401, "unauthenticated");
    }

    // A nonce already used, in an otherwise new request.
    let nonce = fresh_id();
    let h = sign(
        &server,
        &svc,
        "GET",
        "/api/whoami?n=1",
        None,
        server.now().0,
        &nonce,
    );
    let res = send_with(&mut c, Method::GET, "/api/whoami?n=1", &h, None).await;
    assert_client_reached_upstream(&res, "svc1");
    let h = sign(
        &server,
        &svc,
        "GET",
        "/api/whoami?n=2",
        None,
        server.now().0,
        &nonce,
    );
    let res = send_with(&mut c, Method::GET, "/api/whoami?n=2", &h, None).await;
    res.assert_error(401, "unauthenticated");

    // Unknown key id, and a wrong secret for a real one: the same answer.
    let stranger = Svc {
        keyid: "no-such-client".to_owned(),
        secret: svc.secret.clone(),
    };
    let h = sign(
        &server,
        &stranger,
        "GET",
        "/api/whoami",
        None,
        server.now().0,
        &fresh_id(),
    );
    let unknown = send_with(&mut c, Method::GET, "/api/whoami", &h, None).await;
    unknown.assert_error(401, "unauthenticated");
    let forger = Svc {
        keyid: svc.keyid.clone(),
        secret: vec![7u8; 32],
    };
    let h = sign(
        &server,
        &forger,
        "GET",
        "/api/whoami",
        None,
        server.now().0,
        &fresh_id(),
    );
    let forged = send_with(&mut c, Method::GET, "/api/whoami", &h, None).await;
    forged.assert_error(401, "unauthenticated");
    assert_eq!(
        unknown.body, forged.body,
        "unknown key id answered differently"
    );
    assert_eq!(
        unknown.header("www-authenticate"),
        forged.header("www-authenticate")
    );

    // Malformed signature fields: 401 (or 400), never 500.
    let (good_input, good_sig) = {
        let h = sign(
            &server,
            &svc,
            "GET",
            "/api/whoami",
            None,
            server.now().0,
            &fresh_id(),
        );
        (h[0].1.clone(), h[1].1.clone())
    };
    let malformed: Vec<(String, String)> = vec![
        ("garbage".into(), good_sig.clone()),
        (String::new(), good_sig.clone()),
        ("sig1=".into(), good_sig.clone()),
        ("sig1=(".into(), good_sig.clone()),
        ("sig1=(\"@method\"".into(), good_sig.clone()),
        ("sig1=();created=1".into(), good_sig.clone()),
        ("sig1=(\"@method\" \"@target-uri\");created=abc;keyid=\"k\";nonce=\"n\"".into(), good_sig.clone()),
        ("sig1=(\"@method\" \"@target-uri\");created=99999999999999999999999;keyid=\"k\";nonce=\"n\"".into(), good_sig.clone()),
        ("sig1=(\"@method\" \"@target-uri\");created=-1;keyid=\"k\";nonce=\"n\"".into(), good_sig.clone()),
        (good_input.replace("sig1", "sig2"), good_sig.clone()),
        (format!("{good_input}, {}", good_input.replace("sig1", "sig2")), good_sig.clone()),
        (good_input.replace("hmac-sha256", "none"), good_sig.clone()),
        (good_input.replace("\"@method\" ", ""), good_sig.clone()),
        (format!("{good_input};tag=\"x\""), good_sig.clone()),
        ("x".repeat(5000), good_sig.clone()),
        (good_input.clone(), "garbage".into()),
        (good_input.clone(), "sig1=:not base64!:".into()),
        (good_input.clone(), "sig1=::".into()),
        (good_input.clone(), format!("sig1=:{}:", "A".repeat(5000))),
        (good_input.clone(), String::new()),
    ];
    for (input, sig) in &malformed {
        let h = vec![
            ("signature-input", input.clone()),
            ("signature", sig.clone()),
        ];
        let res = send_with(&mut c, Method::GET, "/api/whoami", &h, None).await;
        assert!(
            matches!(res.status, 400 | 401),
            "Signature-Input {input:.60} / Signature {sig:.30}: {} {}",
            res.status,
            res.text()
        );
        assert_error_shape(&res);
    }
    // Signature-Input without any Signature.
    let h = vec![("signature-input", good_input.clone())];
    let res = send_with(&mut c, Method::GET, "/api/whoami", &h, None).await;
    res.assert_error(401, "unauthenticated");
    // The good pair is still usable (none of the above burnt its nonce).
    let h = vec![("signature-input", good_input), ("signature", good_sig)];
    let res = send_with(&mut c, Method::GET, "/api/whoami", &h, None).await;
    assert_client_reached_upstream(&res, "svc1");
}

/// `tessera client add` while the server runs: the new client can sign at once
/// (clients.rs: "so a client added by the CLI works at once").
#[tokio::test]
async fn client_added_by_cli_works_at_once() {
    let server = InProc::demo().await;
    let mut c = server.client();
    // Make the server look up an unknown key id (a miss asks the store), then add the
    // client in the same second: the server's clock stands still here.
    let stranger = Svc {
        keyid: "not-yet".to_owned(),
        secret: vec![1u8; 32],
    };
    let h = sign(
        &server,
        &stranger,
        "GET",
        "/api/whoami",
        None,
        server.now().0,
        &fresh_id(),
    );
    let res = send_with(&mut c, Method::GET, "/api/whoami", &h, None).await;
    res.assert_error(401, "unauthenticated");
    // Now add a client and use it immediately.
    let svc = add_client(&server, "svc-now").await;
    let h = sign(
        &server,
        &svc,
        "GET",
        "/api/whoami",
        None,
        server.now().0,
        &fresh_id(),
    );
    let res = send_with(&mut c, Method::GET, "/api/whoami", &h, None).await;
    assert_client_reached_upstream(&res, "svc-now");
}

// ---------------------------------------------------------------------------------------
// 8. No garbage gets a 500
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn garbage_to_token_and_revoke_gets_4xx_json() {
    let server = InProc::demo().await;
    let mut c = server.client();
    let nested = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let nested_obj = format!(
        "{{\"grant_type\":{}1{}}}",
        "{\"a\":".repeat(3000),
        "}".repeat(3000)
    );
    let long_user = format!(
        "grant_type=password&username={}&password=x",
        "a".repeat(10_000)
    );
    let bodies: Vec<(Option<&str>, Vec<u8>)> = vec![
        (Some(FORM), b"".to_vec()),
        (Some(FORM), b"&&&===&".to_vec()),
        (Some(FORM), b"grant_type".to_vec()),
        (Some(FORM), b"%ZZ=%".to_vec()),
        (Some(FORM), vec![0xff, 0xfe, b'=', 0x80]),
        (
            Some(FORM),
            b"grant_type=password&username=%00&password=%FF".to_vec(),
        ),
        (
            Some(FORM),
            b"grant_type=password&username=&password=".to_vec(),
        ),
        (Some(FORM), long_user.into_bytes()),
        (
            Some(FORM),
            format!(
                "grant_type=refresh_token&refresh_token={}",
                "A".repeat(5000)
            )
            .into_bytes(),
        ),
        (
            Some(FORM),
            b"grant_type=refresh_token&refresh_token=....".to_vec(),
        ),
        (
            Some(FORM),
            b"grant_type=refresh_token&refresh_token=%F0%9F%92%A9".to_vec(),
        ),
        (Some(FORM), b"grant_type[]=password".to_vec()),
        (Some(FORM), vec![b'a'; 20_000]),
        (Some("application/json"), b"".to_vec()),
        (Some("application/json"), b"null".to_vec()),
        (Some("application/json"), b"[]".to_vec()),
        (Some("application/json"), b"\"grant_type\"".to_vec()),
        (Some("application/json"), b"1e999999".to_vec()),
        (Some("application/json"), b"{".to_vec()),
        (
            Some("application/json"),
            b"{\"grant_type\":\"\\ud800\"}".to_vec(),
        ),
        (Some("application/json"), b"\xef\xbb\xbf{}".to_vec()),
        (Some("application/json"), vec![b'{', 0xff, b'}']),
        (
            Some("application/json"),
            b"{\"grant_type\":{\"a\":1}}".to_vec(),
        ),
        (
            Some("application/json"),
            b"{\"grant_type\":\"password\",\"username\":\"\\u0000\",\"password\":\"x\"}".to_vec(),
        ),
        (
            Some("application/json"),
            b"{\"grant_type\":\"refresh_token\",\"refresh_token\":true}".to_vec(),
        ),
        (Some("application/json"), nested.into_bytes()),
        (Some("application/json"), nested_obj.into_bytes()),
        (Some("application/json; charset=\""), b"{}".to_vec()),
        (Some("multipart/form-data; boundary=x"), b"--x--".to_vec()),
        (Some("text/plain"), b"grant_type=password".to_vec()),
        (Some(""), b"grant_type=password".to_vec()),
        (None, b"grant_type=password".to_vec()),
    ];
    for path in ["/auth/token", "/auth/revoke"] {
        for (ct, body) in &bodies {
            let mut req = c.post(path).no_cookies();
            req = match ct {
                Some(ct) => req.body(ct, body.clone()),
                None => req.raw_body(body.clone()),
            };
            let res = req.send().await;
            let shown = String::from_utf8_lossy(&body[..body.len().min(40)]).into_owned();
            assert!(
                (400..500).contains(&res.status),
                "{path} {ct:?} {shown:?}: {} {}",
                res.status,
                res.text()
            );
            assert_oauth_shape(&res);
        }
    }

    // Odd headers around an otherwise plausible token request.
    let refresh_body =
        "grant_type=refresh_token&refresh_token=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let long_proof = "a".repeat(5000);
    let headers: Vec<Vec<(&str, &str)>> = vec![
        vec![("dpop", "garbage")],
        vec![("dpop", "")],
        vec![("dpop", "a.b.c")],
        vec![("dpop", long_proof.as_str())],
        vec![("dpop", "eyJhbGciOiJub25lIn0.e30.")],
        vec![("dpop", "a"), ("dpop", "b")],
        vec![("authorization", "Bearer garbage")],
        vec![("authorization", "Basic !!!")],
        vec![("authorization", "DPoP a.b.c"), ("dpop", "a.b.c")],
        vec![(
            "cookie",
            "__Secure-tessera-refresh=garbage; __Host-tessera-sig=x.y",
        )],
        vec![("content-type", "application/json")],
        vec![("signature-input", "garbage"), ("signature", "garbage")],
    ];
    for extra in &headers {
        for path in ["/auth/token", "/auth/revoke"] {
            let mut req = c.post(path).no_cookies().body(FORM, refresh_body);
            for (k, v) in extra {
                req = req.header(k, v);
            }
            let res = req.send().await;
            assert!(
                res.status != 200 || path == "/auth/revoke",
                "{path} {extra:?}: {}",
                res.status
            );
            assert!(
                res.status < 500,
                "{path} {extra:?}: {} {}",
                res.status,
                res.text()
            );
            if res.status != 200 {
                assert!(
                    (400..500).contains(&res.status),
                    "{path} {extra:?}: {}",
                    res.status
                );
                assert_oauth_shape(&res);
            }
        }
    }
    // Invalid UTF-8 (obs-text) in header values.
    let res = c
        .post("/auth/token")
        .no_cookies()
        .header("dpop", "\u{e9}t\u{e9}")
        .body(FORM, refresh_body)
        .send()
        .await;
    assert!((400..500).contains(&res.status), "{}", res.status);
    assert_oauth_shape(&res);

    // The server is still healthy and a real grant works.
    let res = c.get("/healthz").send().await;
    assert_eq!(res.status, 200);
    let res = password_grant(&server, &mut c, None).await;
    assert_tokens(&res, "Bearer");
}

/// `GET /api/whoami` with a DPoP-bound token and its proof, sent with `Host: host`.
async fn whoami_via(c: &mut Client, host: &str, access: &str, proof: &str) -> Resp {
    c.get("/api/whoami")
        .no_cookies()
        .header("host", host)
        .header("authorization", &format!("DPoP {access}"))
        .header("dpop", proof)
        .send()
        .await
}

/// A request that reaches tessera under one of its `origin_aliases` (here
/// `https://localhost:8443`, sent as `Host`) may carry a DPoP proof and a request
/// signature naming that origin; without the alias, or for a name that is not one of
/// tessera's, the same proof and signature are refused (RFC 9449 §4.3, RFC 9421 §2.2.2).
#[tokio::test]
async fn proofs_and_signatures_may_name_an_origin_alias() {
    const ALIAS: &str = "https://localhost:8443";
    for aliased in [true, false] {
        let config = if aliased {
            format!("origin_aliases = [\"{ALIAS}\"]\n")
        } else {
            String::new()
        };
        let server = InProc::builder().config(&config).start().await;
        let svc = add_client(&server, "svc1").await;
        let mut c = server.client();
        // The node picks the new client up at its next table load (at most one a second
        // on misses): wait for a request signed over the public origin to pass.
        let loaded = tessera_testkit::until(Duration::from_secs(5), async || {
            let h = sign(
                &server,
                &svc,
                "GET",
                "/api/whoami",
                None,
                server.now().0,
                &fresh_id(),
            );
            send_with(&mut c, Method::GET, "/api/whoami", &h, None)
                .await
                .status
                == 200
        })
        .await;
        assert!(loaded.is_some(), "the new client never verified");
        let key = DpopKey::generate(DpopAlg::EdDSA).unwrap();
        let bound = assert_tokens(&password_grant(&server, &mut c, Some(&key)).await, "DPoP");
        let access = bound.access.as_str();

        let host = "localhost:8443";
        let proof = key
            .proof(
                "GET",
                &format!("{ALIAS}/api/whoami"),
                server.now().0,
                &fresh_id(),
                Some(access),
                None,
            )
            .unwrap();
        let res = whoami_via(&mut c, host, access, &proof).await;
        if aliased {
            assert_eq!(res.status, 200, "proof naming the alias: {}", res.text());
        } else {
            assert_refused(&res, "proof naming an origin that is not configured");
        }
        // The public origin's name is not the URI of a request that came to the alias.
        if aliased {
            let proof = api_proof(&server, &key, "GET", "/api/whoami", Some(access));
            let res = whoami_via(&mut c, host, access, &proof).await;
            assert_refused(&res, "proof naming public_origin on a request to the alias");
        }
        // A name that is not tessera's, in the proof and in Host alike.
        let proof = key
            .proof(
                "GET",
                "https://evil.example/api/whoami",
                server.now().0,
                &fresh_id(),
                Some(access),
                None,
            )
            .unwrap();
        let res = whoami_via(&mut c, "evil.example", access, &proof).await;
        assert_refused(&res, "proof and Host naming another server");

        // A request signature over the alias's target URI.
        let (input, sig) = httpsig::sign(
            "GET",
            &format!("{ALIAS}/api/whoami"),
            None,
            &svc.keyid,
            &fresh_id(),
            server.now().0,
            &svc.secret,
        )
        .unwrap();
        let headers = [
            ("host", host.to_owned()),
            ("signature-input", input),
            ("signature", sig),
        ];
        let res = send_with(&mut c, Method::GET, "/api/whoami", &headers, None).await;
        if aliased {
            assert_client_reached_upstream(&res, "svc1");
        } else {
            res.assert_error(401, "unauthenticated");
        }
    }
}
