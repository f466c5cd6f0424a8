//! The session logic: refresh rotation, reuse detection and its grace window, the idle
//! (`refresh_ttl`) and absolute (`session_max`) ends, logout and logout-all, and the
//! login throttle's refill, each at its exact second by the clock.

use std::time::Duration;

use tessera_testkit::cookie_names::REFRESH;
use tessera_testkit::inproc::InProc;

#[tokio::test]
async fn the_grace_window_ends_at_its_last_second() {
    // refresh_grace = 5 s: the rotated token yields the same successor while
    // `now - rotated_at <= 5`, and from the 6th second on it is reuse, which ends the
    // whole session.
    let server = InProc::builder()
        .config("[tokens]\nrefresh_grace = \"5s\"")
        .start()
        .await;
    let mut tab1 = server.demo_client().await;
    let tab2 = tab1.clone();
    let tab3 = tab1.clone();
    assert_eq!(tab1.refresh().await.status, 200);
    let successor = tab1.refresh_token().unwrap();

    server.advance(Duration::from_secs(5));
    let mut late = tab2.clone();
    let res = late.refresh().await;
    assert_eq!(
        res.status,
        200,
        "at the grace's last second: {}",
        res.text()
    );
    assert_eq!(late.refresh_token().unwrap(), successor);

    server.advance(Duration::from_secs(1));
    let mut thief = tab3.clone();
    let res = thief.refresh().await;
    let body = res.assert_error(401, "refresh_token_reused");
    assert!(body["message"].is_string(), "{body}");
    // Reuse clears the cookies it was sent with.
    let cleared = res.set_cookie(REFRESH).expect("refresh cookie cleared");
    assert!(cleared.is_deletion(), "{}", cleared.raw);
    // The session is over for everyone: the legitimate holder's access and refresh.
    tab1.get("/api/notes")
        .send()
        .await
        .assert_error(401, "unauthenticated");
    assert_eq!(tab1.refresh().await.status, 401);
    assert_eq!(late.refresh().await.status, 401);
}

#[tokio::test]
async fn without_a_grace_any_second_use_is_reuse() {
    let server = InProc::builder()
        .config("[tokens]\nrefresh_grace = \"0s\"")
        .start()
        .await;
    let mut c = server.demo_client().await;
    let stolen = c.clone();
    assert_eq!(c.refresh().await.status, 200);
    let mut thief = stolen.clone();
    thief
        .refresh()
        .await
        .assert_error(401, "refresh_token_reused");
    assert_eq!(c.refresh().await.status, 401);
}

#[tokio::test]
async fn refresh_tokens_die_idle_at_refresh_ttl_and_rotation_restarts_the_idle_time() {
    let server = InProc::builder()
        .config("[tokens]\naccess_ttl = \"60s\"\nrefresh_ttl = \"100s\"\nrefresh_grace = \"0s\"")
        .start()
        .await;
    let mut active = server.demo_client().await;
    let mut idle = server.demo_client().await;
    let mut at_limit = server.demo_client().await;
    let refresh_cookie = active.jar.get(REFRESH).unwrap().clone();
    assert_eq!(refresh_cookie.max_age, Some(100), "{}", refresh_cookie.raw);

    server.advance(Duration::from_secs(99));
    assert_eq!(
        active.refresh().await.status,
        200,
        "one second before the idle end"
    );
    server.advance(Duration::from_secs(1));
    // `issued_at + refresh_ttl <= now`: ended, exactly at 100 s.
    let res = at_limit.refresh().await;
    res.assert_error(401, "unauthenticated");
    assert!(res.set_cookie(REFRESH).is_some_and(|c| c.is_deletion()));
    // The one refreshed at 99 s has a new 100 s.
    server.advance(Duration::from_secs(98));
    assert_eq!(active.refresh().await.status, 200);
    assert_eq!(idle.refresh().await.status, 401);
}

#[tokio::test]
async fn sessions_end_at_session_max_whatever_the_refreshes() {
    let server = InProc::builder()
        .config(
            "[tokens]\naccess_ttl = \"30s\"\nleeway = \"0s\"\nrefresh_ttl = \"100s\"\nsession_max = \"150s\"",
        )
        .start()
        .await;
    let mut c = server.demo_client().await;
    let login = c.clone();
    server.advance(Duration::from_secs(80));
    let res = c.refresh().await;
    assert_eq!(res.status, 200, "{}", res.text());
    // The refresh cookie never outlives the session: 70 s left, below refresh_ttl.
    assert_eq!(res.set_cookie(REFRESH).unwrap().max_age, Some(70));
    let expires_at = res.json()["session"]["expires_at"].as_u64().unwrap();
    assert_eq!(
        expires_at,
        login.claims().unwrap()["iat"].as_u64().unwrap() + 150
    );
    server.advance(Duration::from_secs(69));
    let res = c.refresh().await;
    assert_eq!(
        res.status,
        200,
        "a second before session_max: {}",
        res.text()
    );
    assert_eq!(res.set_cookie(REFRESH).unwrap().max_age, Some(1));
    server.advance(Duration::from_secs(1));
    let mut last = c.clone();
    let res = c.refresh().await;
    res.assert_error(401, "unauthenticated");
    assert!(res.set_cookie(REFRESH).is_some_and(|c| c.is_deletion()));
    // Its last access token (kept aside: the refused refresh cleared the cookies) lives
    // out its own 30 s; then nothing is left.
    assert_eq!(last.get("/api/notes").send().await.status, 200);
    server.advance(Duration::from_secs(29));
    assert_eq!(last.get("/api/notes").send().await.status, 401);
}

#[tokio::test]
async fn access_tokens_expire_and_a_refresh_issues_new_ones_with_new_times() {
    let server = InProc::builder()
        .config("[tokens]\naccess_ttl = \"60s\"\nleeway = \"0s\"")
        .start()
        .await;
    let mut c = server.demo_client().await;
    let first = c.claims().unwrap();
    server.advance(Duration::from_secs(60));
    c.get("/api/notes")
        .send()
        .await
        .assert_error(401, "unauthenticated");
    let res = c.refresh().await;
    assert_eq!(res.status, 200, "{}", res.text());
    let second = c.claims().unwrap();
    assert_eq!(
        second["iat"].as_u64().unwrap(),
        first["iat"].as_u64().unwrap() + 60
    );
    assert_eq!(
        res.json()["access_token_expires_at"].as_u64(),
        second["exp"].as_u64()
    );
    assert_eq!(second["sid"], first["sid"], "the same session");
    assert_ne!(second["jti"], first["jti"]);
    assert_eq!(c.get("/api/notes").send().await.status, 200);
}

#[tokio::test]
async fn logout_all_ends_every_session_of_the_user_and_no_other() {
    let server = InProc::demo().await;
    let mut a = server.demo_client().await;
    let b = server.demo_client().await;
    server.add_user("frank", "frank-password-1", &[]).await;
    let mut frank = server.client();
    frank.login_ok("frank", "frank-password-1").await;
    // The caller's own cookies are cleared by the answer: keep a copy to replay.
    let kept_a = a.clone();
    assert_eq!(
        a.post("/auth/logout-all").with_csrf().send().await.status,
        204
    );
    for kept in [kept_a, b.clone()] {
        let mut k = kept.clone();
        assert_eq!(k.get("/api/notes").send().await.status, 401);
        let mut k = kept.clone();
        assert_eq!(k.refresh().await.status, 401);
    }
    assert_eq!(frank.get("/api/notes").send().await.status, 200);
    // Sessions started after it are not covered (a second later: `iat` after the cut).
    server.advance(Duration::from_secs(1));
    let mut later = server.demo_client().await;
    assert_eq!(later.get("/api/notes").send().await.status, 200);
}

#[tokio::test]
async fn failed_logins_are_throttled_per_username_and_the_budget_refills_with_time() {
    let server = InProc::builder()
        .config("[rate_limit]\nper_username_per_minute = 3\nper_ip_per_minute = 1000")
        .start()
        .await;
    let mut c = server.client();
    for i in 0..3 {
        let res = c.login("demo", "wrong-password").await;
        res.assert_error(401, "invalid_credentials");
        assert!(res.header("retry-after").is_none(), "attempt {i}");
    }
    // Over budget: refused before the password is checked, even the right one.
    let res = c.login("demo", server.demo_password()).await;
    res.assert_error(429, "rate_limited");
    let wait: u64 = res
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    // Another username is not affected.
    let res = c.login("someone-else", "wrong-password").await;
    res.assert_error(401, "invalid_credentials");
    // The failures counted in the store fall out of their 60 s window.
    server.advance(Duration::from_secs(60));
    let res = c.login("demo", server.demo_password()).await;
    assert_eq!(res.status, 200, "after the window: {}", res.text());
}

/// Every access token says how and when the user authenticated (RFC 8176 `amr`,
/// `auth_time`); a refresh renews the token but is not an authentication, so it keeps
/// `auth_time`. The upstream is told both, and cannot be told them by the client.
#[tokio::test]
async fn amr_and_auth_time_are_kept_across_refreshes_and_reach_the_upstream() {
    let server = InProc::builder().start().await;
    let login_at = server.now().0;
    let mut c = server.demo_client().await;
    let claims = c.claims().expect("claims cookie");
    assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
    assert_eq!(claims["auth_time"], login_at);

    server.advance(Duration::from_secs(120));
    assert_eq!(c.refresh().await.status, 200);
    let refreshed = c.claims().expect("claims cookie");
    assert_eq!(refreshed["iat"], login_at + 120, "a new token");
    assert_eq!(refreshed["auth_time"], login_at, "not a new authentication");
    assert_eq!(refreshed["amr"], serde_json::json!(["pwd"]));

    let seen = c
        .get("/api/whoami")
        .header("x-tessera-amr", "hwk,mfa")
        .header("x-tessera-auth-time", "9999999999")
        .send()
        .await;
    assert_eq!(seen.status, 200, "{}", seen.text());
    let headers = &seen.json()["headers"];
    assert_eq!(headers["x-tessera-amr"], "pwd");
    assert_eq!(headers["x-tessera-auth-time"], login_at.to_string());
}
