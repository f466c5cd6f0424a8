//! Black-box: logout, logout-all, refresh rotation and reuse, access-token expiry
//! (docs/http-api.md "Browser endpoints" and "Tokens").
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use serde_json::json;
use tessera_testkit::cookie_names::{CLAIMS, CSRF, DEVICE, REFRESH, SESSION, SIG};
use tessera_testkit::inproc::InProc;
use tessera_testkit::Client;

async fn authenticated(c: &mut Client) -> u16 {
    c.get("/api/notes").send().await.status
}

#[tokio::test]
async fn logout_clears_every_cookie_and_revokes_at_once() {
    let server = InProc::demo().await;
    let mut c = server.demo_client().await;
    let kept = c.clone();
    assert_eq!(authenticated(&mut c).await, 200);

    let res = c.post("/auth/logout").with_csrf().send().await;
    assert_eq!(res.status, 204, "{}", res.text());
    assert!(res.body.is_empty());
    // The device cookie is about the device, not the session: logout keeps it.
    assert!(
        res.set_cookie(DEVICE).is_none(),
        "logout touched the device cookie"
    );
    for name in SESSION {
        let sc = res
            .set_cookie(name)
            .unwrap_or_else(|| panic!("{name} not cleared"));
        assert_eq!(sc.max_age, Some(0), "{}", sc.raw);
        assert!(
            sc.value.is_empty(),
            "cleared cookie keeps a value: {}",
            sc.raw
        );
        // A browser only replaces the cookie if Path (and prefix rules) match.
        assert!(sc.secure, "{}", sc.raw);
        assert!(sc.prefix_violation().is_none(), "{}", sc.raw);
    }
    assert_eq!(
        res.set_cookie(REFRESH).unwrap().path.as_deref(),
        Some("/auth")
    );
    for name in [CLAIMS, SIG, CSRF] {
        assert_eq!(res.set_cookie(name).unwrap().path.as_deref(), Some("/"));
    }
    assert_eq!(
        c.jar.names(),
        [DEVICE],
        "only the device cookie is left in the jar"
    );

    // The cookies kept aside are dead at once: access, session and refresh.
    let mut old = kept.clone();
    old.get("/api/notes")
        .send()
        .await
        .assert_error(401, "unauthenticated");
    let mut old = kept.clone();
    old.get("/auth/session")
        .send()
        .await
        .assert_error(401, "unauthenticated");
    let mut old = kept.clone();
    let res = old.refresh().await;
    assert_eq!(res.status, 401, "refresh after logout: {}", res.text());
    let mut old = kept.clone();
    let res = old.get("/auth/verify").send().await;
    assert_eq!(res.status, 401);
}

#[tokio::test]
async fn logout_needs_the_csrf_token_when_a_session_exists() {
    let server = InProc::demo().await;
    let mut c = server.demo_client().await;

    let res = c.post("/auth/logout").same_origin().send().await;
    res.assert_error(403, "csrf_failed");
    let res = c
        .post("/auth/logout")
        .header("sec-fetch-site", "cross-site")
        .send()
        .await;
    res.assert_error(403, "csrf_failed");
    let res = c.post("/auth/logout-all").same_origin().send().await;
    res.assert_error(403, "csrf_failed");
    // Still logged in: nothing was revoked and no cookie cleared.
    assert_eq!(authenticated(&mut c).await, 200);
    assert!(c.jar.get(SIG).is_some());
    let res = c.post("/auth/logout").with_csrf().send().await;
    assert_eq!(res.status, 204);
}

#[tokio::test]
async fn logout_all_ends_every_session_of_the_user() {
    let server = InProc::demo().await;
    let mut a = server.demo_client().await;
    let mut b = server.demo_client().await;
    // Someone else's session survives.
    server.add_user("carol", "carolpassword1", &[]).await;
    let mut carol = server.client();
    carol.login_ok("carol", "carolpassword1").await;

    let kept_a = a.clone();
    let kept_b = b.clone();
    assert_eq!(authenticated(&mut b).await, 200);
    let res = a.post("/auth/logout-all").with_csrf().send().await;
    assert_eq!(res.status, 204, "{}", res.text());

    for (name, kept) in [("a", kept_a), ("b", kept_b)] {
        let mut old = kept.clone();
        let res = old.get("/api/notes").send().await;
        assert_eq!(
            res.status,
            401,
            "session {name} after logout-all: {}",
            res.text()
        );
        let mut old = kept.clone();
        let res = old.refresh().await;
        assert_eq!(
            res.status,
            401,
            "refresh of session {name} after logout-all: {}",
            res.text()
        );
    }
    assert_eq!(
        authenticated(&mut carol).await,
        200,
        "another user's session was ended"
    );
    // A fresh login works again.
    let mut again = server.demo_client().await;
    assert_eq!(authenticated(&mut again).await, 200);
}

#[tokio::test]
async fn refresh_rotates_the_tokens() {
    let server = InProc::demo().await;
    let mut c = server.demo_client().await;
    let old_refresh = c.refresh_token().unwrap();
    let old_claims = c.claims().unwrap();

    // The refresh cookie goes only to /auth.
    let header = c.jar.cookie_header("/api/notes").unwrap();
    assert!(
        !header.contains(REFRESH),
        "refresh cookie sent outside /auth: {header}"
    );

    // Without the CSRF header → 403; from a foreign site → 403.
    let res = c.post("/auth/refresh").same_origin().send().await;
    res.assert_error(403, "csrf_failed");
    let token = c.csrf().unwrap();
    let res = c
        .post("/auth/refresh")
        .header("origin", "https://evil.example")
        .header("x-csrf-token", &token)
        .send()
        .await;
    res.assert_error(403, "csrf_failed");
    // A CSRF token of another session does not go with this refresh cookie.
    let other = server.demo_client().await;
    let res = c
        .post("/auth/refresh")
        .same_origin()
        .header("x-csrf-token", &other.csrf().unwrap())
        .send()
        .await;
    res.assert_error(403, "csrf_failed");
    assert_eq!(
        c.refresh_token().unwrap(),
        old_refresh,
        "a refused refresh rotated the token"
    );

    // A second on, so the new token's `iat` differs.
    server.advance(Duration::from_secs(1));
    let res = c.refresh().await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.header("cache-control").as_deref(), Some("no-store"));
    let body = res.json();
    assert_eq!(body["user"]["username"], "demo");
    assert_eq!(
        body["session"]["id"], old_claims["sid"],
        "refresh keeps the session"
    );
    for name in [CLAIMS, SIG, REFRESH, CSRF] {
        assert!(res.set_cookie(name).is_some(), "{name} not re-issued");
    }
    let new_refresh = c.refresh_token().unwrap();
    assert_ne!(new_refresh, old_refresh, "refresh token not rotated");
    let new_claims = c.claims().unwrap();
    assert_ne!(new_claims["jti"], old_claims["jti"]);
    assert!(new_claims["iat"].as_u64() > old_claims["iat"].as_u64());
    assert_eq!(body["csrf_token"], c.csrf().unwrap().as_str());

    // The new credentials work, for reads and for writes.
    assert_eq!(authenticated(&mut c).await, 200);
    let res = c
        .post("/api/notes")
        .with_csrf()
        .json(&json!({"text": "after refresh"}))
        .send()
        .await;
    assert_eq!(res.status, 201, "{}", res.text());
    // The new access token also works as a bearer token.
    let token = c.access_token().unwrap();
    assert_eq!(
        server
            .client()
            .get("/api/notes")
            .bearer(&token)
            .send()
            .await
            .status,
        200
    );

    // And it keeps rotating.
    let res = c.refresh().await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_ne!(c.refresh_token().unwrap(), new_refresh);
}

#[tokio::test]
async fn refresh_token_reuse_after_the_grace_revokes_the_session() {
    let server = InProc::builder()
        .config("[tokens]\nrefresh_grace = \"0s\"")
        .start()
        .await;
    let mut c = server.demo_client().await;
    let stolen = c.clone();

    let res = c.refresh().await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(authenticated(&mut c).await, 200);

    // The old refresh token again: reuse detected, the whole session ends.
    let mut thief = stolen.clone();
    let res = thief.refresh().await;
    res.assert_error(401, "refresh_token_reused");

    // The access token from the legitimate rotation is refused at once…
    let res = c.get("/api/notes").send().await;
    res.assert_error(401, "unauthenticated");
    let token = c.access_token().unwrap();
    assert_eq!(
        server
            .client()
            .get("/api/notes")
            .bearer(&token)
            .send()
            .await
            .status,
        401
    );
    // …and so is the successor refresh token.
    let res = c.refresh().await;
    assert_eq!(
        res.status,
        401,
        "successor refresh token after reuse: {}",
        res.text()
    );
    // The thief's old access token too.
    let mut thief = stolen.clone();
    assert_eq!(authenticated(&mut thief).await, 401);
}

#[tokio::test]
async fn refresh_race_within_the_grace_gets_the_same_successor() {
    let server = InProc::demo().await; // default grace 5 s
    let mut tab1 = server.demo_client().await;
    let mut tab2 = tab1.clone();

    let res = tab1.refresh().await;
    assert_eq!(res.status, 200, "{}", res.text());
    let successor = tab1.refresh_token().unwrap();

    let res = tab2.refresh().await;
    assert_eq!(
        res.status,
        200,
        "second refresh within the grace: {}",
        res.text()
    );
    assert_eq!(
        tab2.refresh_token().unwrap(),
        successor,
        "same old token → same successor"
    );
    assert_eq!(authenticated(&mut tab1).await, 200);
    assert_eq!(authenticated(&mut tab2).await, 200);
    // The session goes on from the successor.
    let res = tab1.refresh().await;
    assert_eq!(res.status, 200, "{}", res.text());
}

#[tokio::test]
async fn expired_access_tokens_are_refused_and_refresh_revives() {
    let server = InProc::builder()
        .config("[tokens]\naccess_ttl = \"2s\"\nleeway = \"0s\"")
        .start()
        .await;
    let mut c = server.demo_client().await;
    assert_eq!(c.jar.get(SIG).unwrap().max_age, Some(2));
    assert_eq!(authenticated(&mut c).await, 200);
    let kept = c.clone();

    server.advance(Duration::from_secs(2));
    // Stale cookies (a browser would have dropped them) are refused by the server.
    let res = c.get("/api/notes").send().await;
    res.assert_error(401, "unauthenticated");
    let token = c.access_token().unwrap();
    assert_eq!(
        server
            .client()
            .get("/api/notes")
            .bearer(&token)
            .send()
            .await
            .status,
        401
    );

    let res = c.refresh().await;
    assert_eq!(
        res.status,
        200,
        "refresh after access expiry: {}",
        res.text()
    );
    assert_eq!(authenticated(&mut c).await, 200);
    // The expired token stays expired.
    let mut old = kept.clone();
    assert_eq!(authenticated(&mut old).await, 401);
}

#[tokio::test]
async fn grace_covers_only_the_immediate_predecessor() {
    // RFC 9700 §4.14.2 with a race grace: seconds long, for the predecessor only. Once the
    // successor has itself been rotated, the first token is plain reuse.
    let server = InProc::demo().await;
    let mut c = server.demo_client().await;
    let t0 = c.clone();
    assert_eq!(c.refresh().await.status, 200); // t0 → t1
    let t1 = c.refresh_token().unwrap();
    assert_eq!(c.refresh().await.status, 200); // t1 → t2
    let t2 = c.refresh_token().unwrap();
    assert_ne!(t1, t2);

    let mut replay = t0.clone();
    let res = replay.refresh().await;
    assert_ne!(
        res.status,
        200,
        "a token two rotations old was accepted within the grace: {}",
        res.text()
    );
    assert_ne!(
        replay.refresh_token().as_deref(),
        Some(t1.as_str()),
        "an already-rotated successor was handed out again"
    );
}

#[tokio::test]
async fn sessions_end_at_session_max() {
    let server = InProc::builder()
        .config("[tokens]\naccess_ttl = \"1s\"\nleeway = \"0s\"\nsession_max = \"4s\"")
        .start()
        .await;
    let mut c = server.demo_client().await;
    let refresh = c.jar.get(REFRESH).unwrap().clone();
    assert!(
        refresh.max_age.is_some_and(|m| (1..=4).contains(&m)),
        "refresh cookie outlives the session: {}",
        refresh.raw
    );
    server.advance(Duration::from_secs(2));
    let res = c.refresh().await;
    assert_eq!(res.status, 200, "{}", res.text());
    let max_age = res.set_cookie(REFRESH).unwrap().max_age.unwrap();
    assert!(
        max_age <= 3,
        "refresh cookie Max-Age {max_age} beyond the session's end"
    );
    server.advance(Duration::from_secs(2));
    let res = c.refresh().await;
    assert_eq!(res.status, 401, "refresh after session_max: {}", res.text());
    assert_eq!(authenticated(&mut c).await, 401);
}

#[tokio::test]
async fn idle_refresh_tokens_die_after_refresh_ttl() {
    let server = InProc::builder()
        .config("[tokens]\naccess_ttl = \"1s\"\nleeway = \"0s\"\nrefresh_ttl = \"3s\"")
        .start()
        .await;
    let mut active = server.demo_client().await;
    let mut idle = server.demo_client().await;
    // Used within the idle window: lives on, past the idle time of the first token.
    for _ in 0..4 {
        server.advance(Duration::from_secs(1));
        let res = active.refresh().await;
        assert_eq!(
            res.status,
            200,
            "refresh within the idle window: {}",
            res.text()
        );
    }
    assert_eq!(authenticated(&mut active).await, 200);
    // Left idle for 4 s > refresh_ttl: refused.
    let res = idle.refresh().await;
    assert_eq!(
        res.status,
        401,
        "refresh token idle past refresh_ttl: {}",
        res.text()
    );
}
