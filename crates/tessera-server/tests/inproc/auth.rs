//! `auth`: cookie, Bearer and DPoP credentials, verified in memory; expiry at the exact
//! second by the clock; revocation and key changes applied at once.

use std::time::Duration;

use tessera_core::dpop::{DpopAlg, DpopKey};
use tessera_testkit::cookie_names::{CLAIMS, SIG};
use tessera_testkit::inproc::InProc;

use crate::support::{
    claims, password_grant, proof, proof_at, tokens, upstream_identity, whoami_bearer,
};

/// access_ttl 60 s, leeway 5 s: a token with `exp = iat + 60` is accepted up to
/// `exp + 4` and refused from `exp + 5` on, whichever way it is presented.
const SHORT: &str = "[tokens]\naccess_ttl = \"60s\"\nleeway = \"5s\"";

#[tokio::test]
async fn cookie_and_bearer_credentials_expire_at_exp_plus_leeway() {
    let server = InProc::builder().config(SHORT).start().await;
    let mut c = server.demo_client().await;
    let token = c.access_token().unwrap();
    let cl = claims(&token);
    assert_eq!(
        cl["exp"].as_u64().unwrap() - cl["iat"].as_u64().unwrap(),
        60
    );
    assert_eq!(cl["iat"].as_u64().unwrap(), server.now().0);

    // What the upstream is told: the verified claims, nothing else.
    let via_cookie = upstream_identity(&c.get("/api/whoami").send().await);
    assert_eq!(via_cookie["username"], "demo");
    assert_eq!(via_cookie["user"], cl["sub"]);
    assert_eq!(via_cookie["session"], cl["sid"]);
    assert_eq!(
        via_cookie,
        upstream_identity(&whoami_bearer(&server, &token).await)
    );

    server.advance(Duration::from_secs(64));
    assert_eq!(
        c.get("/api/whoami").send().await.status,
        200,
        "cookie at exp + 4"
    );
    assert_eq!(
        whoami_bearer(&server, &token).await.status,
        200,
        "bearer at exp + 4"
    );
    assert_eq!(c.get("/auth/session").send().await.status, 200);

    server.advance(Duration::from_secs(1));
    c.get("/api/whoami")
        .send()
        .await
        .assert_error(401, "unauthenticated");
    let res = whoami_bearer(&server, &token).await;
    res.assert_error(401, "unauthenticated");
    assert_eq!(
        res.header("www-authenticate").as_deref(),
        Some("Bearer error=\"invalid_token\""),
        "RFC 6750 §3.1"
    );
    c.get("/auth/session")
        .send()
        .await
        .assert_error(401, "unauthenticated");
}

#[tokio::test]
async fn authorization_replaces_cookies_and_odd_schemes_are_refused() {
    let server = InProc::demo().await;
    let mut c = server.demo_client().await;
    // A bad Authorization header is not rescued by good cookies.
    let res = c.get("/api/whoami").bearer("not.a.token").send().await;
    res.assert_error(401, "unauthenticated");
    let res = c
        .get("/api/whoami")
        .header("authorization", "Basic ZGVtbzpkZW1v")
        .send()
        .await;
    res.assert_error(401, "unauthenticated");
    assert_eq!(res.header("www-authenticate").as_deref(), Some("Bearer"));
    let token = c.access_token().unwrap();
    let res = server
        .client()
        .get("/api/whoami")
        .header("authorization", &format!("Bearer {token}"))
        .header("authorization", &format!("Bearer {token}"))
        .send()
        .await;
    res.assert_error(400, "invalid_request");
    // Cookies of the split mode: both halves are needed.
    let mut half = c.clone();
    half.jar.remove(SIG);
    half.get("/api/whoami")
        .send()
        .await
        .assert_error(401, "unauthenticated");
    let mut half = c.clone();
    half.jar.remove(CLAIMS);
    half.get("/api/whoami")
        .send()
        .await
        .assert_error(401, "unauthenticated");
    assert_eq!(c.get("/api/whoami").send().await.status, 200);
}

#[tokio::test]
async fn dpop_bound_tokens_need_a_fresh_unseen_proof_by_their_key() {
    let server = InProc::builder().config(SHORT).start().await;
    let key = DpopKey::generate(DpopAlg::EdDSA).unwrap();
    let other = DpopKey::generate(DpopAlg::EdDSA).unwrap();
    let res = password_grant(&server, Some(&key)).await;
    assert_eq!(res.json()["token_type"], "DPoP", "{}", res.text());
    let (token, _) = tokens(&res);
    assert_eq!(
        claims(&token)["cnf"]["jkt"].as_str(),
        Some(key.thumbprint().as_str())
    );
    let send = |auth: String, proof: Option<String>| {
        let mut c = server.client();
        async move {
            let mut req = c.get("/api/whoami").header("authorization", &auth);
            if let Some(p) = proof {
                req = req.header("dpop", &p);
            }
            req.send().await
        }
    };
    let good = proof(&server, &key, "GET", "/api/whoami", Some(&token));
    let res = send(format!("DPoP {token}"), Some(good.clone())).await;
    assert_eq!(upstream_identity(&res)["username"], "demo");
    // The same proof again: a replay.
    let res = send(format!("DPoP {token}"), Some(good)).await;
    res.assert_error(401, "invalid_dpop_proof");
    assert_eq!(
        res.header("www-authenticate").as_deref(),
        Some("DPoP error=\"invalid_dpop_proof\", algs=\"ES256 EdDSA\""),
        "RFC 9449 §7.1"
    );
    // As a bearer token, or without a proof, or with another key's proof: refused.
    send(format!("Bearer {token}"), None)
        .await
        .assert_error(401, "unauthenticated");
    let res = send(format!("DPoP {token}"), None).await;
    res.assert_error(401, "unauthenticated");
    assert_eq!(
        res.header("www-authenticate").as_deref(),
        Some("DPoP error=\"invalid_dpop_proof\"")
    );
    let res = send(
        format!("DPoP {token}"),
        Some(proof(&server, &other, "GET", "/api/whoami", Some(&token))),
    )
    .await;
    res.assert_error(401, "unauthenticated"); // valid proof, another key: binding mismatch
                                              // A proof for another method or path, or without the token's hash: a bad proof.
    for p in [
        proof(&server, &key, "POST", "/api/whoami", Some(&token)),
        proof(&server, &key, "GET", "/api/notes", Some(&token)),
        proof(&server, &key, "GET", "/api/whoami", None),
    ] {
        send(format!("DPoP {token}"), Some(p))
            .await
            .assert_error(401, "invalid_dpop_proof");
    }

    // Proof freshness by the clock: `dpop.max_age` (60 s) and `dpop.max_skew` (5 s).
    let made = server.now().0;
    let old = proof_at(&server, &key, "GET", "/api/whoami", Some(&token), made);
    server.advance(Duration::from_secs(61));
    send(format!("DPoP {token}"), Some(old))
        .await
        .assert_error(401, "invalid_dpop_proof");
    let ahead = proof_at(
        &server,
        &key,
        "GET",
        "/api/whoami",
        Some(&token),
        server.now().0 + 30,
    );
    send(format!("DPoP {token}"), Some(ahead))
        .await
        .assert_error(401, "invalid_dpop_proof");
    // The token (exp + leeway = 65 s) is still valid at 61 s: a fresh proof passes;
    // from 65 s on nothing does.
    let fresh = proof(&server, &key, "GET", "/api/whoami", Some(&token));
    assert_eq!(send(format!("DPoP {token}"), Some(fresh)).await.status, 200);
    server.advance(Duration::from_secs(4));
    let fresh = proof(&server, &key, "GET", "/api/whoami", Some(&token));
    send(format!("DPoP {token}"), Some(fresh))
        .await
        .assert_error(401, "unauthenticated");
}

#[tokio::test]
async fn an_unbound_token_does_not_become_bound_by_its_scheme() {
    let server = InProc::demo().await;
    let key = DpopKey::generate(DpopAlg::ES256).unwrap();
    let (token, _) = tokens(&password_grant(&server, None).await);
    let p = proof(&server, &key, "GET", "/api/whoami", Some(&token));
    server
        .client()
        .get("/api/whoami")
        .header("authorization", &format!("DPoP {token}"))
        .header("dpop", &p)
        .send()
        .await
        .assert_error(401, "unauthenticated");
}

#[tokio::test]
async fn a_revoked_session_is_refused_at_once_and_its_denylist_entry_outlives_its_tokens() {
    let server = InProc::builder().config(SHORT).start().await;
    let mut c = server.demo_client().await;
    let token = c.access_token().unwrap();
    let mut other = server.demo_client().await;
    assert_eq!(c.post("/auth/logout").with_csrf().send().await.status, 204);
    // This node refuses it at once, cookie or bearer, before any sync.
    assert_eq!(whoami_bearer(&server, &token).await.status, 401);
    // Another session of the same user is untouched.
    assert_eq!(other.get("/api/whoami").send().await.status, 200);
    // Revocations pulled again from the store (as every `sync.revocation_poll`) keep it
    // refused until it would have expired anyway.
    server.advance(Duration::from_secs(30));
    server.sync().await;
    assert_eq!(whoami_bearer(&server, &token).await.status, 401);
}

#[tokio::test]
async fn a_user_revoked_in_the_store_is_refused_after_the_next_pull() {
    // `tessera user revoke` on any node writes the revocation feed; this node applies it
    // at its next pull (here made at once), for every token issued before.
    let server = InProc::builder().config(SHORT).start().await;
    let mut a = server.demo_client().await;
    let token = a.access_token().unwrap();
    server.add_user("erin", "erin-password-1", &["user"]).await;
    let mut erin = server.client();
    erin.login_ok("erin", "erin-password-1").await;

    assert_eq!(server.revoke_user("demo").await, 1);
    server.sync().await;
    assert_eq!(whoami_bearer(&server, &token).await.status, 401);
    assert_eq!(a.get("/api/whoami").send().await.status, 401);
    assert_eq!(a.refresh().await.status, 401, "the refresh token died too");
    assert_eq!(erin.get("/api/whoami").send().await.status, 200);
    // A login after the revocation works (tokens issued later are not covered), one
    // second on so its `iat` is after the revocation's.
    server.advance(Duration::from_secs(1));
    let mut again = server.demo_client().await;
    assert_eq!(again.get("/api/whoami").send().await.status, 200);
}

#[tokio::test]
async fn a_forced_key_rotation_signs_new_tokens_and_keeps_old_ones_valid() {
    let server = InProc::builder().config(SHORT).start().await;
    let mut old = server.demo_client().await;
    let old_kid = old.kid().unwrap();
    let new_kid = server.rotate_keys().await;
    assert_ne!(new_kid, old_kid);
    // Picked up at the next key reload.
    server.sync().await;
    let mut fresh = server.demo_client().await;
    assert_eq!(fresh.kid().as_deref(), Some(new_kid.as_str()));
    assert_eq!(fresh.get("/api/whoami").send().await.status, 200);
    assert_eq!(old.get("/api/whoami").send().await.status, 200);
    // The retired key verifies until its last token expired (ttl + leeway + 1 s), then
    // it is dropped from the ring and the JWKS.
    server.advance(Duration::from_secs(67));
    server.sync().await;
    let jwks = server
        .client()
        .get("/.well-known/jwks.json")
        .send()
        .await
        .json();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    assert!(kids.contains(&new_kid.as_str()), "{jwks}");
    assert!(!kids.contains(&old_kid.as_str()), "{jwks}");
}
