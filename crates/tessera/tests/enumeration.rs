//! No user enumeration by timing or answer: an unknown user costs one Argon2id run
//! against a dummy hash with the same parameters, like a wrong password, and gets the same
//! body. Alone in its test binary (served in-process, but with no other test beside it in
//! this binary) so no other test competes for the CPU while it times.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use tessera_testkit::inproc::InProc;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test]
async fn unknown_users_cost_and_look_the_same_as_wrong_passwords() {
    // Real OWASP Argon2id parameters (not the fast test ones), no throttling in the way.
    let server = InProc::builder()
        .config("[rate_limit]\nper_ip_per_minute = 100000\nper_username_per_minute = 100000\n[passwords]\nm_cost = 19456\nt_cost = 2\n")
        .start()
        .await;
    let mut c = server.client();
    let (mut unknown, mut wrong) = (Vec::new(), Vec::new());
    let mut bodies = std::collections::HashSet::new();
    for i in 0..200 {
        // Interleave so drift in machine load hits both samples alike.
        let t = Instant::now();
        let res = c.login(&format!("nobody{i}"), "some-password-123").await;
        unknown.push(t.elapsed());
        assert_eq!(res.status, 401);
        bodies.insert(res.text());
        let t = Instant::now();
        let res = c.login("demo", "some-password-123").await;
        wrong.push(t.elapsed());
        assert_eq!(res.status, 401);
        bodies.insert(res.text());
    }
    assert_eq!(bodies.len(), 1, "different answers: {bodies:?}");
    let (mu, mw) = (median(unknown), median(wrong));
    let diff = (mu.as_secs_f64() - mw.as_secs_f64()).abs() / mw.as_secs_f64();
    println!("login timing over 200 tries each: unknown user median {mu:?}, wrong password median {mw:?}, difference {:.1} %", diff * 100.0);
    assert!(diff < 0.10, "medians differ by {:.1} %", diff * 100.0);
}
