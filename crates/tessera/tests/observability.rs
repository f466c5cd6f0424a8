//! The binary's JSON log (`log.format = "json"`): audit lines carry the request id, and no
//! secret is ever logged. `/metrics` and request ids are in tests/app/observability.rs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use tessera_testkit::Server;

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

#[tokio::test]
async fn json_logs_carry_the_request_id_and_never_a_secret() {
    let server = Server::builder(BIN)
        .config("[log]\nformat = \"json\"\n")
        .start()
        .await;
    let mut c = server.client();
    let res = c
        .post("/auth/login")
        .same_origin()
        .header("x-request-id", "req-42")
        .json(&serde_json::json!({"username": "demo", "password": server.demo_password()}))
        .send()
        .await;
    assert_eq!(res.status, 200);
    let token = c.access_token().unwrap();
    let refresh = c.refresh_token().unwrap();
    // The audit line is written by the server process: wait until it shows.
    let logged = tessera_testkit::until(std::time::Duration::from_secs(5), async || {
        server.logs().contains("login_success")
    })
    .await;
    assert!(
        logged.is_some(),
        "no login_success line in:\n{}",
        server.logs()
    );
    let logs = server.logs();
    let mut audit_line = None;
    for line in logs.lines().filter(|l| l.starts_with('{')) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if v["fields"]["event"] == "login_success" {
            audit_line = Some(v);
        }
    }
    let audit = audit_line.unwrap_or_else(|| panic!("no login_success audit line in:\n{logs}"));
    assert_eq!(audit["span"]["request_id"], "req-42", "{audit}");
    for secret in [server.demo_password(), token.as_str(), refresh.as_str()] {
        assert!(!logs.contains(secret), "a secret reached the log");
    }
}
