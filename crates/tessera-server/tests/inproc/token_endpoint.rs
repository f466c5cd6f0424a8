//! `POST /auth/token` (RFC 6749 §4.3 password and §6 refresh_token grants, RFC 9449 DPoP
//! binding) and `POST /auth/revoke` (RFC 7009): answers, claims and every error code.

use std::time::Duration;

use serde_json::Value;
use tessera_core::dpop::{DpopAlg, DpopKey};
use tessera_testkit::inproc::InProc;
use tessera_testkit::{Client, Resp};

use crate::support::{
    claims, password_grant, post_form, proof, refresh_grant, tokens, whoami_bearer, FORM,
};

/// Asserts an RFC 6749 §5.2 error: the status, `{error, error_description}`, no `message`.
#[track_caller]
fn oauth_error(res: &Resp, status: u16, code: &str) -> Value {
    assert_eq!(res.status, status, "{}", res.text());
    let v = res.json();
    assert_eq!(v["error"], code, "{v}");
    assert!(v["error_description"].is_string(), "{v}");
    assert!(v.get("message").is_none(), "not the RFC 6749 shape: {v}");
    v
}

async fn token_form(c: &mut Client, body: &str) -> Resp {
    c.post("/auth/token")
        .no_cookies()
        .body(FORM, body.to_owned())
        .send()
        .await
}

#[tokio::test]
async fn the_password_grant_answers_rfc_6749_5_1_with_the_users_claims() {
    let server = InProc::builder()
        .config("[tokens]\naccess_ttl = \"120s\"")
        .start()
        .await;
    server
        .add_user("gina", "gina-password-1", &["user", "admin"])
        .await;
    let mut c = server.client();
    let res = post_form(
        &mut c,
        "/auth/token",
        &[
            ("grant_type", "password"),
            ("username", "gina"),
            ("password", "gina-password-1"),
        ],
        &[],
    )
    .await;
    let (access, refresh) = tokens(&res);
    assert_eq!(res.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(res.header("pragma").as_deref(), Some("no-cache"));
    assert!(
        res.set_cookies.is_empty(),
        "no cookies from the token endpoint"
    );
    let v = res.json();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 120);
    assert!(v["device_token"].is_string(), "{v}");
    assert!(refresh.len() >= 43);
    let cl = claims(&access);
    assert_eq!(cl["username"], "gina");
    assert_eq!(cl["roles"], serde_json::json!(["user", "admin"]));
    assert_eq!(cl["iss"], server.origin());
    assert_eq!(cl["aud"], server.origin());
    assert_eq!(cl["iat"].as_u64(), Some(server.now().0));
    assert_eq!(cl["exp"].as_u64(), Some(server.now().0 + 120));
    assert!(cl.get("cnf").is_none(), "unbound: {cl}");
    assert_eq!(whoami_bearer(&server, &access).await.status, 200);
    // JSON bodies work the same.
    let res = c
        .post("/auth/token")
        .no_cookies()
        .json(&serde_json::json!({
            "grant_type": "password", "username": "gina", "password": "gina-password-1"
        }))
        .send()
        .await;
    tokens(&res);
}

#[tokio::test]
async fn bad_requests_get_their_rfc_6749_error_codes() {
    let server = InProc::demo().await;
    let mut c = server.client();
    let pw = server.demo_password().to_owned();
    for (body, status, code) in [
        (
            "username=demo&password=x".to_owned(),
            400,
            "invalid_request",
        ),
        (
            "grant_type=client_credentials".to_owned(),
            400,
            "unsupported_grant_type",
        ),
        (
            "grant_type=authorization_code&code=x".to_owned(),
            400,
            "unsupported_grant_type",
        ),
        (
            "grant_type=password&username=demo".to_owned(),
            400,
            "invalid_request",
        ),
        (
            "grant_type=password&username=demo&password=wrong".to_owned(),
            400,
            "invalid_grant",
        ),
        (
            "grant_type=password&username=nobody&password=wrong".to_owned(),
            400,
            "invalid_grant",
        ),
        (
            format!("grant_type=password&username=demo&username=demo&password={pw}"),
            400,
            "invalid_request",
        ),
        (
            "grant_type=refresh_token".to_owned(),
            400,
            "invalid_request",
        ),
        (
            "grant_type=refresh_token&refresh_token=short".to_owned(),
            400,
            "invalid_grant",
        ),
        (
            format!("grant_type=refresh_token&refresh_token={}", "A".repeat(43)),
            400,
            "invalid_grant",
        ),
        ("%%%".to_owned(), 400, "invalid_request"),
    ] {
        let res = token_form(&mut c, &body).await;
        oauth_error(&res, status, code);
        assert_eq!(
            res.header("cache-control").as_deref(),
            Some("no-store"),
            "{body}"
        );
    }
    // JSON: non-string values and repeated members are refused.
    for body in [
        r#"{"grant_type":"password","username":"demo","password":1}"#,
        r#"{"grant_type":"password","grant_type":"refresh_token"}"#,
        r#"["grant_type"]"#,
    ] {
        let res = c
            .post("/auth/token")
            .no_cookies()
            .body("application/json", body)
            .send()
            .await;
        oauth_error(&res, 400, "invalid_request");
    }
    // Neither a form nor JSON.
    let res = c
        .post("/auth/token")
        .no_cookies()
        .body("text/plain", "grant_type=password")
        .send()
        .await;
    oauth_error(&res, 415, "invalid_request");
    // GET is not the token endpoint's method.
    let res = c.get("/auth/token").send().await;
    assert_eq!(res.status, 405);
    assert_eq!(res.header("allow").as_deref(), Some("POST"));
}

#[tokio::test]
async fn the_refresh_grant_rotates_and_detects_reuse_after_the_grace() {
    let server = InProc::builder()
        .config("[tokens]\nrefresh_grace = \"10s\"")
        .start()
        .await;
    let (access0, r0) = tokens(&password_grant(&server, None).await);
    server.advance(Duration::from_secs(3));
    let res = refresh_grant(&server, &r0, &[]).await;
    let (access1, r1) = tokens(&res);
    assert!(
        res.json().get("device_token").is_none(),
        "only the password grant has one"
    );
    assert_ne!(r1, r0);
    assert_eq!(claims(&access1)["sid"], claims(&access0)["sid"]);
    assert_eq!(claims(&access1)["iat"].as_u64(), Some(server.now().0));
    // Within the grace the old token gives the same successor (two racing clients).
    server.advance(Duration::from_secs(10));
    let (_, again) = tokens(&refresh_grant(&server, &r0, &[]).await);
    assert_eq!(again, r1);
    // After it: reuse, 401 with the RFC 6749 shape, and the session is over.
    server.advance(Duration::from_secs(1));
    let res = refresh_grant(&server, &r0, &[]).await;
    oauth_error(&res, 401, "refresh_token_reused");
    oauth_error(
        &refresh_grant(&server, &r1, &[]).await,
        400,
        "invalid_grant",
    );
    assert_eq!(whoami_bearer(&server, &access1).await.status, 401);
    assert_eq!(whoami_bearer(&server, &access0).await.status, 401);
}

#[tokio::test]
async fn refresh_tokens_expire_idle_and_browser_families_stay_at_the_cookie_endpoint() {
    let server = InProc::builder()
        .config("[tokens]\naccess_ttl = \"60s\"\nrefresh_ttl = \"300s\"")
        .start()
        .await;
    let (_, r) = tokens(&password_grant(&server, None).await);
    server.advance(Duration::from_secs(300));
    let res = refresh_grant(&server, &r, &[]).await;
    let v = oauth_error(&res, 400, "invalid_grant");
    assert!(
        v["error_description"].as_str().unwrap().contains("expired"),
        "{v}"
    );
    // A browser session's refresh token is not accepted here.
    let browser = server.demo_client().await;
    let cookie_token = browser.refresh_token().unwrap();
    oauth_error(
        &refresh_grant(&server, &cookie_token, &[]).await,
        400,
        "invalid_grant",
    );
}

#[tokio::test]
async fn a_dpop_bound_family_refreshes_only_with_a_proof_by_its_key() {
    let server = InProc::demo().await;
    let key = DpopKey::generate(DpopAlg::ES256).unwrap();
    let other = DpopKey::generate(DpopAlg::ES256).unwrap();
    let res = password_grant(&server, Some(&key)).await;
    assert_eq!(res.json()["token_type"], "DPoP");
    let (access, r) = tokens(&res);
    assert_eq!(
        claims(&access)["cnf"]["jkt"].as_str(),
        Some(key.thumbprint().as_str())
    );
    oauth_error(
        &refresh_grant(&server, &r, &[]).await,
        400,
        "invalid_dpop_proof",
    );
    let p = proof(&server, &other, "POST", "/auth/token", None);
    oauth_error(
        &refresh_grant(&server, &r, &[("dpop", &p)]).await,
        400,
        "invalid_dpop_proof",
    );
    // A malformed proof is refused as such, before the token is looked at.
    oauth_error(
        &refresh_grant(&server, &r, &[("dpop", "not-a-proof")]).await,
        401,
        "invalid_dpop_proof",
    );
    let p = proof(&server, &key, "POST", "/auth/token", None);
    let res = refresh_grant(&server, &r, &[("dpop", &p)]).await;
    assert_eq!(res.json()["token_type"], "DPoP", "{}", res.text());
    let (access2, _) = tokens(&res);
    assert_eq!(claims(&access2)["cnf"], claims(&access)["cnf"]);
}

#[tokio::test]
async fn revoke_ends_the_session_of_a_refresh_or_access_token() {
    let server = InProc::demo().await;
    let mut c = server.client();
    // RFC 7009 §2.2: 200 for any well-formed request, known token or not.
    for token in ["unknown".to_owned(), "A".repeat(43), "a.b.c".to_owned()] {
        let res = post_form(&mut c, "/auth/revoke", &[("token", &token)], &[]).await;
        assert_eq!(res.status, 200, "{}", res.text());
        assert_eq!(res.header("cache-control").as_deref(), Some("no-store"));
    }
    oauth_error(
        &post_form(&mut c, "/auth/revoke", &[("nothing", "x")], &[]).await,
        400,
        "invalid_request",
    );

    // By refresh token: the access token of the session dies at once.
    let (access, refresh) = tokens(&password_grant(&server, None).await);
    let res = post_form(&mut c, "/auth/revoke", &[("token", &refresh)], &[]).await;
    assert_eq!(res.status, 200);
    assert_eq!(whoami_bearer(&server, &access).await.status, 401);
    oauth_error(
        &refresh_grant(&server, &refresh, &[]).await,
        400,
        "invalid_grant",
    );

    // By access token: its refresh token dies.
    let (access, refresh) = tokens(&password_grant(&server, None).await);
    let res = post_form(&mut c, "/auth/revoke", &[("token", &access)], &[]).await;
    assert_eq!(res.status, 200);
    assert_eq!(whoami_bearer(&server, &access).await.status, 401);
    oauth_error(
        &refresh_grant(&server, &refresh, &[]).await,
        400,
        "invalid_grant",
    );
}

#[tokio::test]
async fn the_token_endpoint_shares_the_login_throttle_and_it_refills() {
    let server = InProc::builder()
        .config("[rate_limit]\nper_username_per_minute = 2\nper_ip_per_minute = 1000")
        .start()
        .await;
    let mut c = server.client();
    let wrong = "grant_type=password&username=demo&password=wrong";
    for _ in 0..2 {
        oauth_error(&token_form(&mut c, wrong).await, 400, "invalid_grant");
    }
    let right = format!(
        "grant_type=password&username=demo&password={}",
        server.demo_password()
    );
    let res = token_form(&mut c, &right).await;
    oauth_error(&res, 429, "rate_limited");
    assert!(res.header("retry-after").is_some());
    // The browser login shares the budget.
    c.login("demo", server.demo_password())
        .await
        .assert_error(429, "rate_limited");
    server.advance(Duration::from_secs(60));
    tokens(&token_form(&mut c, &right).await);
}
