//! Black-box: password guessing from the victim's own network, and across nodes.
//!
//! The per-username failure limit used to exempt every IP that had once logged in as the
//! user: an attacker behind the same NAT (or everyone, behind a proxy without
//! `trusted_proxies`) guessed without a per-user limit. Now only a device token — issued
//! at a successful login, an HttpOnly cookie for browsers, `device_token` for mobile
//! clients — lifts the per-user limit, and only for that device; the per-user failures
//! are counted in the store, so two nodes share one budget.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value};
use tessera_testkit::cookie_names::DEVICE;
use tessera_testkit::inproc::InProc;
use tessera_testkit::Client;

/// Only the per-username limit (5 failures a minute) can stop these attempts.
const CONFIG: &str = "[rate_limit]\nper_ip_per_minute = 100000\nper_username_per_minute = 5\n";

async fn wrong_logins_until_429(c: &mut Client, user: &str, max: usize) -> Option<usize> {
    for i in 0..max {
        let res = c.login(user, "not-the-password-1").await;
        match res.status {
            401 => {}
            429 => {
                res.assert_error(429, "rate_limited");
                assert!(res.header("retry-after").is_some());
                return Some(i);
            }
            other => panic!("attempt {i}: {other} {}", res.text()),
        }
    }
    None
}

/// The owner logged in from 127.0.0.1; an attacker on the same address (same NAT) gets
/// the per-user limit after 5 failures, and the owner's browser, which holds the device
/// cookie, still logs in during the lockout.
#[tokio::test]
async fn the_owners_ip_is_limited_without_the_device_cookie_and_the_owner_still_logs_in() {
    let server = InProc::builder().config(CONFIG).start().await;
    let password = server.demo_password().to_owned();
    let mut owner = server.client();
    let res = owner.login_ok("demo", &password).await;
    let device = res
        .set_cookie(DEVICE)
        .expect("a device cookie at login")
        .clone();
    assert!(device.http_only && device.secure, "{}", device.raw);
    assert_eq!(device.path.as_deref(), Some("/auth"), "{}", device.raw);
    assert_eq!(device.same_site_lower().as_deref(), Some("strict"));

    let mut attacker = server.client();
    let refused_at = wrong_logins_until_429(&mut attacker, "demo", 25).await;
    println!("attacker on the owner's IP: 429 after {refused_at:?} wrong passwords");
    assert_eq!(refused_at, Some(5), "25 wrong passwords and no 429");
    // The right password without the device cookie is refused too, during the lockout.
    attacker
        .login("demo", &password)
        .await
        .assert_error(429, "rate_limited");

    // The owner's browser: device cookie sent, logs in.
    owner.post("/auth/logout").with_csrf().send().await;
    assert!(
        owner.jar.get(DEVICE).is_some(),
        "logout kept the device cookie"
    );
    let res = owner.login("demo", &password).await;
    assert_eq!(res.status, 200, "the owner is locked out: {}", res.text());

    // A stolen device cookie buys no more than the limit: 5 wrong guesses with it and
    // the device is not trusted any more.
    let mut thief = server.client().with_jar(owner.jar.clone());
    thief.jar.remove("__Host-tessera-claims");
    let refused_at = wrong_logins_until_429(&mut thief, "demo", 25).await;
    println!("stolen device cookie: 429 after {refused_at:?} wrong passwords");
    assert_eq!(refused_at, Some(5));
}

/// A device cookie earned as one user does not lift another user's limit.
#[tokio::test]
async fn a_device_cookie_proves_nothing_for_another_user() {
    let server = InProc::builder().config(CONFIG).start().await;
    let password = server.demo_password().to_owned();
    server.add_user("bob", "bob-password-1", &[]).await;
    let mut c = server.client();
    c.login_ok("demo", &password).await;
    assert!(c.jar.get(DEVICE).is_some());
    assert_eq!(wrong_logins_until_429(&mut c, "bob", 25).await, Some(5));
}

/// Mobile clients: the password grant answers a `device_token`; sent back with the next
/// password grant it lifts the per-user limit for that device, and without it the grant
/// meets the limit.
#[tokio::test]
async fn mobile_clients_send_their_device_token() {
    let server = InProc::builder().config(CONFIG).start().await;
    let password = server.demo_password().to_owned();
    let mut c = server.client();
    async fn grant(c: &mut Client, pw: &str, device: Option<&str>) -> tessera_testkit::Resp {
        let mut body = json!({"grant_type": "password", "username": "demo", "password": pw});
        if let Some(d) = device {
            body["device_token"] = json!(d);
        }
        c.post("/auth/token").no_cookies().json(&body).send().await
    }
    let res = grant(&mut c, &password, None).await;
    assert_eq!(res.status, 200, "{}", res.text());
    let device = res.json()["device_token"].as_str().unwrap().to_owned();
    assert_eq!(device.len(), 54);
    let mut limited = false;
    for _ in 0..10 {
        let res = grant(&mut c, "not-the-password-1", None).await;
        if res.status == 429 {
            let v: Value = res.json();
            assert!(v["error"].is_string(), "{v}");
            limited = true;
            break;
        }
        assert_eq!(res.status, 400, "{}", res.text());
    }
    assert!(limited, "the password grant never met the per-user limit");
    let res = grant(&mut c, &password, Some(&device)).await;
    assert_eq!(
        res.status,
        200,
        "the owner's device is locked out: {}",
        res.text()
    );
    let again = res.json()["device_token"].as_str().unwrap().to_owned();
    let id = |t: &str| tessera_testkit::b64url_decode(t).unwrap()[..16].to_vec();
    assert_eq!(id(&again), id(&device), "the device keeps its id");
    let res = grant(&mut c, &password, None).await;
    assert_eq!(res.status, 429, "without the device token: {}", res.text());
}
