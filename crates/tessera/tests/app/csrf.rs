//! Black-box: CSRF rules, `Authorization` versus cookies, and hostile cookies
//! (docs/http-api.md "Browser endpoints"; RFC 6265bis §4.1.3, Fetch Metadata).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::json;
use tessera_testkit::cookie_names::{CLAIMS, CSRF, SIG};
use tessera_testkit::inproc::InProc;
use tessera_testkit::{b64url_decode_json, b64url_encode, Client};

fn note(text: &str) -> serde_json::Value {
    json!({ "text": text })
}

/// `Cookie` header with the access-token cookies of `c` (no CSRF cookie).
fn access_cookies(c: &Client) -> String {
    format!(
        "{CLAIMS}={}; {SIG}={}",
        c.jar.value(CLAIMS).unwrap(),
        c.jar.value(SIG).unwrap()
    )
}

#[tokio::test]
async fn csrf_rules_guard_cookie_authenticated_writes() {
    let server = InProc::demo().await;
    let mut c = server.demo_client().await;
    let token = c.csrf().unwrap();
    let origin = server.origin().to_owned();

    // Rule 2: foreign Origin, everything else right.
    let res = c
        .post("/api/notes")
        .header("origin", "https://evil.example")
        .header("sec-fetch-site", "same-origin")
        .header("x-csrf-token", &token)
        .json(&note("from evil origin"))
        .send()
        .await;
    res.assert_error(403, "csrf_failed");

    // `null` origin (sandboxed frames, redirects).
    let res = c
        .post("/api/notes")
        .header("origin", "null")
        .header("x-csrf-token", &token)
        .json(&note("null origin"))
        .send()
        .await;
    res.assert_error(403, "csrf_failed");

    // Rule 1: Sec-Fetch-Site cross-site / same-site.
    for site in ["cross-site", "same-site"] {
        let res = c
            .post("/api/notes")
            .header("origin", &origin)
            .header("sec-fetch-site", site)
            .header("x-csrf-token", &token)
            .json(&note(site))
            .send()
            .await;
        res.assert_error(403, "csrf_failed");
    }

    // Rule 3: missing token.
    let res = c
        .post("/api/notes")
        .same_origin()
        .json(&note("no token"))
        .send()
        .await;
    res.assert_error(403, "csrf_failed");

    // Forged token (right shape, wrong MAC) and the CSRF cookie value tampered with.
    let forged = b64url_encode(&[7u8; 32]);
    let res = c
        .post("/api/notes")
        .same_origin()
        .header("x-csrf-token", &forged)
        .json(&note("forged"))
        .send()
        .await;
    res.assert_error(403, "csrf_failed");
    let res = c
        .post("/api/notes")
        .same_origin()
        .header("x-csrf-token", "")
        .json(&note("empty token"))
        .send()
        .await;
    res.assert_error(403, "csrf_failed");

    // A valid token of another session of the same user.
    let mut other = server.demo_client().await;
    let other_token = other.csrf().unwrap();
    assert_ne!(other_token, token);
    let res = c
        .post("/api/notes")
        .same_origin()
        .header("x-csrf-token", &other_token)
        .json(&note("token of another session"))
        .send()
        .await;
    res.assert_error(403, "csrf_failed");

    // The token given in the cookie only (double-submit needs the header).
    let res = c
        .post("/api/notes")
        .same_origin()
        .json(&note("cookie only"))
        .send()
        .await;
    res.assert_error(403, "csrf_failed");

    // Valid.
    let res = c
        .post("/api/notes")
        .same_origin()
        .header("x-csrf-token", &token)
        .json(&note("the only note"))
        .send()
        .await;
    assert_eq!(res.status, 201, "{}", res.text());

    // GET needs no token; exactly one note was stored.
    let res = c.get("/api/notes").send().await;
    assert_eq!(res.status, 200, "{}", res.text());
    let notes = res.json()["notes"].as_array().cloned().unwrap();
    assert_eq!(
        notes.len(),
        1,
        "refused requests must not store anything: {notes:?}"
    );
    assert_eq!(notes[0]["text"], "the only note");
    // The other session sees the same user's notes.
    assert_eq!(
        other.get("/api/notes").send().await.json()["notes"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn login_csrf_is_refused() {
    let server = InProc::demo().await;
    let pw = server.demo_password().to_owned();
    let body = json!({"username": "demo", "password": pw});
    let mut c = server.client();

    let res = c
        .post("/auth/login")
        .header("origin", "https://evil.example")
        .json(&body)
        .send()
        .await;
    res.assert_error(403, "csrf_failed");
    assert!(res.set_cookies.is_empty());
    let res = c
        .post("/auth/login")
        .header("sec-fetch-site", "cross-site")
        .json(&body)
        .send()
        .await;
    res.assert_error(403, "csrf_failed");
    let res = c
        .post("/auth/login")
        .header("sec-fetch-site", "same-site")
        .json(&body)
        .send()
        .await;
    res.assert_error(403, "csrf_failed");
    assert!(c.jar.is_empty());

    // A non-browser client (no Origin, no Sec-Fetch-Site) and `Sec-Fetch-Site: none` pass.
    let res = c.post("/auth/login").json(&body).send().await;
    assert_eq!(res.status, 200, "{}", res.text());
    let res = c
        .post("/auth/login")
        .header("sec-fetch-site", "none")
        .json(&body)
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
}

#[tokio::test]
async fn authorization_header_replaces_cookies() {
    let server = InProc::demo().await;
    let mut c = server.demo_client().await;

    // Garbage bearer with valid cookies: cookies are ignored, so 401.
    let res = c.get("/api/notes").bearer("garbage").send().await;
    res.assert_error(401, "unauthenticated");
    let res = c.get("/auth/session").bearer("garbage").send().await;
    res.assert_error(401, "unauthenticated");
    // Nor does a stray Authorization switch the CSRF checks off for cookie credentials.
    let res = c
        .post("/api/notes")
        .same_origin()
        .bearer("garbage")
        .json(&note("x"))
        .send()
        .await;
    assert_eq!(res.status, 401, "{}", res.text());

    // The split cookies reassembled are a valid bearer token, without any cookie.
    let token = c.access_token().unwrap();
    assert_eq!(token.split('.').count(), 3);
    let mut bare = server.client();
    let res = bare.get("/api/notes").bearer(&token).send().await;
    assert_eq!(res.status, 200, "{}", res.text());
    // Bearer requests need no CSRF token.
    let res = bare
        .post("/api/notes")
        .bearer(&token)
        .json(&note("via bearer"))
        .send()
        .await;
    assert_eq!(res.status, 201, "{}", res.text());
    let res = c.get("/api/notes").send().await;
    assert_eq!(res.json()["notes"][0]["text"], "via bearer");

    // Unknown scheme.
    let res = bare
        .get("/api/notes")
        .header("authorization", format!("Basic {token}").as_str())
        .send()
        .await;
    assert_eq!(res.status, 401);
    // The CSRF token is no access token.
    let csrf = c.csrf().unwrap();
    let res = bare.get("/api/notes").bearer(&csrf).send().await;
    assert_eq!(res.status, 401);
}

#[tokio::test]
async fn hostile_cookies_are_refused() {
    let server = InProc::demo().await;
    let mut alice = server.demo_client().await;
    let claims = alice.jar.value(CLAIMS).unwrap();
    let sig = alice.jar.value(SIG).unwrap();

    // Sanity: the hand-made header works.
    let header = access_cookies(&alice);
    let res = alice.get("/api/notes").cookie_header(&header).send().await;
    assert_eq!(res.status, 200, "{}", res.text());
    // Cookies split over several `Cookie` fields (HTTP/2 crumbs) are read together.
    let res = alice
        .get("/api/notes")
        .cookie_header(&format!("{CLAIMS}={claims}"))
        .cookie_header(&format!("theme=dark; {SIG}={sig}"))
        .send()
        .await;
    assert_eq!(
        res.status,
        200,
        "cookie crumbs ({:?}): {}",
        res.version,
        res.text()
    );

    // A tessera cookie twice (cookie tossing) → 400, in one header or across two.
    let res = alice
        .get("/api/notes")
        .cookie_header(&format!("{CLAIMS}={claims}; {SIG}={sig}; {SIG}={sig}"))
        .send()
        .await;
    res.assert_error(400, "invalid_request");
    let res = alice
        .get("/api/notes")
        .cookie_header(&format!("{CLAIMS}={claims}; {SIG}={sig}"))
        .cookie_header(&format!("{SIG}=x.y"))
        .send()
        .await;
    assert_eq!(res.status, 400, "{}", res.text());
    let res = alice
        .get("/api/notes")
        .cookie_header(&format!(
            "{CLAIMS}={claims}; {SIG}={sig}; {CSRF}=a; {CSRF}=b"
        ))
        .send()
        .await;
    assert_eq!(res.status, 400, "{}", res.text());

    // Another user's claims cookie with alice's signature cookie → 401.
    server.add_user("bob", "bobpassword123", &[]).await;
    let mut bob = server.client();
    bob.login_ok("bob", "bobpassword123").await;
    let bob_claims = bob.jar.value(CLAIMS).unwrap();
    let res = bob
        .get("/api/notes")
        .cookie_header(&format!("{CLAIMS}={bob_claims}; {SIG}={sig}"))
        .send()
        .await;
    res.assert_error(401, "unauthenticated");
    // And the other way round, and halves of two sessions of the same user.
    let bob_sig = bob.jar.value(SIG).unwrap();
    let res = bob
        .get("/api/notes")
        .cookie_header(&format!("{CLAIMS}={claims}; {SIG}={bob_sig}"))
        .send()
        .await;
    assert_eq!(res.status, 401, "{}", res.text());
    let alice2 = server.demo_client().await;
    let res = bob
        .get("/api/notes")
        .cookie_header(&format!(
            "{CLAIMS}={}; {SIG}={sig}",
            alice2.jar.value(CLAIMS).unwrap()
        ))
        .send()
        .await;
    assert_eq!(res.status, 401, "{}", res.text());

    // Tampered claims: roles raised to admin, re-encoded.
    let mut payload = b64url_decode_json(&claims).unwrap();
    payload["roles"] = json!(["admin"]);
    let forged = b64url_encode(&serde_json::to_vec(&payload).unwrap());
    let res = alice
        .get("/api/notes")
        .cookie_header(&format!("{CLAIMS}={forged}; {SIG}={sig}"))
        .send()
        .await;
    res.assert_error(401, "unauthenticated");
    // One character changed.
    let mut flipped = claims.clone().into_bytes();
    let i = flipped.len() / 2;
    flipped[i] = if flipped[i] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let res = alice
        .get("/api/notes")
        .cookie_header(&format!("{CLAIMS}={flipped}; {SIG}={sig}"))
        .send()
        .await;
    assert_eq!(res.status, 401, "{}", res.text());
    // Signature stripped, `alg: none`.
    let none_header = b64url_encode(br#"{"alg":"none","typ":"at+jwt"}"#);
    let res = alice
        .get("/api/notes")
        .cookie_header(&format!("{CLAIMS}={claims}; {SIG}={none_header}."))
        .send()
        .await;
    assert_eq!(res.status, 401, "{}", res.text());
    // Only one half.
    let res = alice
        .get("/api/notes")
        .cookie_header(&format!("{CLAIMS}={claims}"))
        .send()
        .await;
    assert_eq!(res.status, 401, "{}", res.text());
    let res = alice
        .get("/api/notes")
        .cookie_header(&format!("{SIG}={sig}"))
        .send()
        .await;
    assert_eq!(res.status, 401, "{}", res.text());

    // Oversized cookie and token: a 4xx, never a 500.
    let huge = "A".repeat(9000);
    let res = alice
        .get("/api/notes")
        .cookie_header(&format!("{CLAIMS}={huge}; {SIG}={sig}"))
        .send()
        .await;
    assert!(
        (400..500).contains(&res.status),
        "9000-byte claims cookie: {} {}",
        res.status,
        res.text()
    );
    let res = alice
        .get("/api/notes")
        .cookie_header(&format!("{CLAIMS}={claims}; {SIG}=h.{huge}"))
        .send()
        .await;
    assert!(
        (400..500).contains(&res.status),
        "9000-byte sig cookie: {} {}",
        res.status,
        res.text()
    );
    let part = "A".repeat(4500);
    let res = server
        .client()
        .get("/api/notes")
        .bearer(&format!("{part}.{part}.{part}"))
        .send()
        .await;
    assert!(
        (400..500).contains(&res.status),
        "13500-byte bearer: {} {}",
        res.status,
        res.text()
    );
    let res = server
        .client()
        .get("/api/notes")
        .bearer(&format!("a.{}.b", "A".repeat(7000)))
        .send()
        .await;
    assert_eq!(res.status, 401, "oversized bearer payload: {}", res.text());

    // Nothing broke alice's real session.
    assert_eq!(alice.get("/api/notes").send().await.status, 200);
}
