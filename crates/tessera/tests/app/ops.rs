//! Operations against an in-process server: health, metrics, JWKS, algorithms and
//! cookie modes, and key rotation (forced, and on schedule) by the clock
//! (docs/configuration.md, docs/http-api.md "Tokens"). The command-line and
//! process-level checks stay in `tests/ops.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use serde_json::Value;
use tessera_testkit::cookie_names::{ACCESS, CLAIMS, CSRF, REFRESH, SIG};
use tessera_testkit::inproc::InProc;
use tessera_testkit::Client;

async fn status(c: &Client, path: &str) -> u16 {
    let mut c = c.clone();
    c.get(path).send().await.status
}

#[tokio::test]
async fn health_metrics_and_jwks() {
    let server = InProc::demo().await;
    let mut c = server.client();

    let res = c.get("/healthz").send().await;
    assert_eq!(res.status, 200, "{}", res.text());

    let _ = c.login("demo", "wrong-password").await;
    c.login_ok("demo", server.demo_password()).await;
    let res = c.get("/metrics").no_cookies().send().await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert!(
        res.header("content-type")
            .unwrap_or_default()
            .starts_with("text/plain"),
        "{:?}",
        res.header("content-type")
    );
    let text = res.text();
    assert!(text.contains("tessera_logins_total"), "{text}");
    assert!(
        text.contains("# TYPE tessera_logins_total counter"),
        "{text}"
    );
    // Counters count: one success and one failure so far.
    let value = |needle: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(needle))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    };
    assert!(
        value("tessera_logins_total{outcome=\"success\"}").is_some_and(|v| v >= 1.0),
        "{text}"
    );
    assert!(
        value("tessera_logins_total{outcome=\"failure\"}").is_some_and(|v| v >= 1.0),
        "{text}"
    );
    // No secrets in metrics.
    assert!(!text.contains(server.demo_password()));

    let res = c.get("/.well-known/jwks.json").no_cookies().send().await;
    assert_eq!(res.status, 200, "{}", res.text());
    let jwks = res.json();
    let keys = jwks["keys"].as_array().expect("keys array");
    assert!(!keys.is_empty(), "{jwks}");
    for k in keys {
        assert_eq!(k["kty"], "OKP", "{k}");
        assert_eq!(k["crv"], "Ed25519", "{k}");
        assert!(k["x"].as_str().is_some_and(|x| !x.is_empty()), "{k}");
        assert!(k["kid"].as_str().is_some(), "{k}");
        for private in ["d", "p", "q", "k", "dp", "dq", "qi"] {
            assert!(
                k.get(private).is_none(),
                "private member {private} in JWKS: {k}"
            );
        }
    }
    // The signing key of our token is published.
    let kid = c.kid().unwrap();
    assert!(
        keys.iter().any(|k| k["kid"] == kid.as_str()),
        "kid {kid} not in {jwks}"
    );
}

#[tokio::test]
async fn hs256_publishes_no_keys_and_still_logs_in() {
    let server = InProc::builder()
        .config("[tokens]\nalgorithm = \"HS256\"")
        .start()
        .await;
    let mut c = server.client();
    let res = c.get("/.well-known/jwks.json").send().await;
    assert_eq!(res.status, 200, "{}", res.text());
    let jwks = res.json();
    assert_eq!(
        jwks["keys"],
        Value::Array(vec![]),
        "a symmetric key must never be published: {jwks}"
    );

    c.login_ok("demo", server.demo_password()).await;
    assert_eq!(c.token_header().unwrap()["alg"], "HS256");
    assert_eq!(status(&c, "/api/notes").await, 200);
    assert_eq!(status(&c, "/auth/session").await, 200);
}

#[tokio::test]
async fn whole_cookie_mode_sets_one_httponly_access_cookie() {
    let server = InProc::builder()
        .config("[cookies]\nmode = \"whole\"")
        .start()
        .await;
    let mut c = server.client();
    let res = c.login_ok("demo", server.demo_password()).await;
    let access = res.set_cookie(ACCESS).expect("whole-mode access cookie");
    assert!(access.http_only && access.secure, "{}", access.raw);
    assert_eq!(access.same_site_lower().as_deref(), Some("lax"));
    assert_eq!(access.path.as_deref(), Some("/"));
    assert!(access.domain.is_none());
    assert_eq!(access.value.split('.').count(), 3, "the whole JWT");
    assert!(
        res.set_cookie(CLAIMS).is_none() && res.set_cookie(SIG).is_none(),
        "{:?}",
        res.set_cookies
    );
    assert!(res.set_cookie(REFRESH).is_some() && res.set_cookie(CSRF).is_some());

    assert_eq!(status(&c, "/api/notes").await, 200);
    assert_eq!(status(&c, "/auth/session").await, 200);
    // Split cookies mean nothing in whole mode.
    let mut other = server.client();
    let payload = access.value.split('.').nth(1).unwrap();
    let (h, s) = (
        access.value.split('.').next().unwrap(),
        access.value.split('.').nth(2).unwrap(),
    );
    let res = other
        .get("/api/notes")
        .cookie_header(&format!("{CLAIMS}={payload}; {SIG}={h}.{s}"))
        .send()
        .await;
    assert_eq!(res.status, 401, "{}", res.text());
    // Writes still need CSRF.
    let res = c
        .post("/api/notes")
        .same_origin()
        .json(&serde_json::json!({"text": "x"}))
        .send()
        .await;
    res.assert_error(403, "csrf_failed");
    let res = c
        .post("/api/notes")
        .with_csrf()
        .json(&serde_json::json!({"text": "x"}))
        .send()
        .await;
    assert_eq!(res.status, 201, "{}", res.text());
    // Logout clears it.
    let res = c.post("/auth/logout").with_csrf().send().await;
    assert_eq!(res.status, 204);
    assert_eq!(res.set_cookie(ACCESS).and_then(|s| s.max_age), Some(0));
}

#[tokio::test]
async fn key_rotation_while_running() {
    // What `tessera keys rotate` does to the store (tests/ops.rs runs the command itself).
    let server = InProc::demo().await;
    let old = server.demo_client().await;
    let old_kid = old.kid().unwrap();
    let rotated = server.rotate_keys().await;

    // Running nodes reload keys every `sync.key_poll`: that reload, now.
    server.sync().await;
    let mut c = server.client();
    c.login_ok("demo", server.demo_password()).await;
    let new_kid = c.kid().unwrap();
    assert_ne!(
        new_kid, old_kid,
        "new logins still signed with the old key after `keys rotate` and a key reload"
    );
    assert_eq!(new_kid, rotated);
    // The new token works.
    assert_eq!(status(&c, "/api/notes").await, 200);

    // Old tokens still verify; the new key is published.
    assert_eq!(status(&old, "/api/notes").await, 200);
    let kids = jwks_kids(&server).await;
    assert!(kids.contains(&new_kid), "{kids:?}");
    assert!(
        kids.contains(&old_kid),
        "retired key dropped while its tokens are valid: {kids:?}"
    );
}

async fn jwks_kids(server: &InProc) -> Vec<String> {
    let jwks = server
        .client()
        .get("/.well-known/jwks.json")
        .send()
        .await
        .json();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["kid"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn scheduled_rotation_prepublishes_the_next_key_and_keeps_the_old_one() {
    // Smallest schedule allowed: rotate every 60 s, publish the next key 30 s ahead.
    let server = InProc::builder()
        .config("[tokens]\nrotate_every = \"60s\"\nprepublish = \"30s\"")
        .start()
        .await;
    let mut c = server.demo_client().await;
    let first = c.clone();
    let old_kid = c.kid().unwrap();
    assert!(jwks_kids(&server).await.contains(&old_kid));

    // Within 35 s of the clock (a key reload each second, as `sync.key_poll = "1s"`
    // would make) a next key is published…
    let mut elapsed = 0;
    let next_kid = loop {
        if let Some(k) = jwks_kids(&server).await.into_iter().find(|k| *k != old_kid) {
            break k;
        }
        assert!(elapsed < 35, "no next key published after {elapsed} s");
        server.advance(Duration::from_secs(1));
        elapsed += 1;
        server.sync().await;
    };
    assert!(
        elapsed >= 30 - 1,
        "the next key was published {elapsed} s after the first, more than `prepublish` early"
    );
    // …before it signs anything.
    let res = c.refresh().await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(
        c.kid().unwrap(),
        old_kid,
        "a key signed tokens as soon as it was published"
    );

    // Within 30 s more it signs; the retired key stays published, its tokens valid.
    loop {
        let res = c.refresh().await;
        assert_eq!(res.status, 200, "{}", res.text());
        let kid = c.kid().unwrap();
        if kid != old_kid {
            assert_eq!(
                kid, next_kid,
                "tokens signed by a key that was never pre-published"
            );
            break;
        }
        assert!(elapsed < 65, "the next key never started signing");
        server.advance(Duration::from_secs(1));
        elapsed += 1;
        server.sync().await;
    }
    assert!(
        elapsed >= 60 - 1,
        "the next key signed after {elapsed} s, before `rotate_every`"
    );
    assert_eq!(status(&c, "/api/notes").await, 200);
    let kids = jwks_kids(&server).await;
    assert!(
        kids.contains(&old_kid),
        "retired key dropped while its tokens are valid: {kids:?}"
    );
    assert_eq!(
        status(&first, "/api/notes").await,
        200,
        "a token of the retired key was refused"
    );
}
