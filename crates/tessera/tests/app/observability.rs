//! `/metrics` is valid Prometheus text and its counters move; request ids reach the upstream.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use tessera_testkit::inproc::InProc;
use tessera_testkit::Client;

/// Parses Prometheus text format (0.0.4): `# HELP`/`# TYPE` comments and
/// `name{label="v",…} value` samples. Panics on anything else.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut it = rest.splitn(3, ' ');
            let kind = it.next().unwrap();
            assert!(kind == "HELP" || kind == "TYPE", "bad comment: {line}");
            let name = it.next().unwrap();
            if kind == "TYPE" {
                let t = it.next().unwrap();
                assert!(["counter", "gauge", "histogram"].contains(&t), "{line}");
                typed.insert(name.to_owned());
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad sample: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad name: {line}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                assert!(
                    labels.starts_with('{') && labels.ends_with('}'),
                    "bad labels: {line}"
                );
            }
        }
        let base = name
            .trim_end_matches("_bucket")
            .trim_end_matches("_sum")
            .trim_end_matches("_count");
        assert!(
            typed.contains(name) || typed.contains(base),
            "sample without TYPE: {line}"
        );
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        out.insert(series.to_owned(), v);
    }
    out
}

async fn metrics(c: &mut Client) -> HashMap<String, f64> {
    let res = c.get("/metrics").send().await;
    assert_eq!(res.status, 200);
    assert!(res
        .header("content-type")
        .unwrap()
        .starts_with("text/plain"));
    let text = res.text();
    assert!(
        !text.contains("tessera-"),
        "no cookie or token material in metrics"
    );
    parse(&text)
}

#[tokio::test]
async fn metrics_parse_and_counters_move() {
    let server = InProc::demo().await;
    let mut anon = server.client();
    let before = metrics(&mut anon).await;
    let mut c = server.client();
    c.login_ok("demo", server.demo_password()).await;
    assert_eq!(c.login("demo", "wrong-password").await.status, 401);
    assert_eq!(c.get("/api/notes").send().await.status, 200);
    let after = metrics(&mut anon).await;
    let get = |m: &HashMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0);
    for (k, by) in [
        ("tessera_logins_total{outcome=\"success\"}", 1.0),
        ("tessera_logins_total{outcome=\"failure\"}", 1.0),
        ("tessera_proxied_total", 1.0),
    ] {
        assert_eq!(get(&after, k) - get(&before, k), by, "{k}");
    }
    assert!(get(&after, "tessera_verify_duration_seconds_count") >= 1.0);
    assert!(
        get(
            &after,
            "tessera_http_responses_total{route=\"/auth/login\",status=\"200\"}"
        ) >= 1.0
    );
    assert!(
        get(
            &after,
            "tessera_http_responses_total{route=\"gateway\",status=\"200\"}"
        ) >= 1.0
    );
    assert!(after.contains_key("tessera_denylist_sessions"));
    assert!(after.contains_key("tessera_signing_key_age_seconds"));
}

#[tokio::test]
async fn request_ids_are_kept_or_made_and_reach_the_upstream() {
    let server = InProc::demo().await;
    let mut c = server.demo_client().await;
    let res = c
        .get("/api/whoami")
        .header("x-request-id", "abc-123")
        .send()
        .await;
    assert_eq!(res.header("x-request-id").as_deref(), Some("abc-123"));
    assert_eq!(res.json()["headers"]["x-request-id"], "abc-123");
    let res = c
        .get("/api/whoami")
        .header("x-request-id", "bad id\twith junk")
        .send()
        .await;
    let made = res.header("x-request-id").unwrap();
    assert_ne!(made, "bad id\twith junk");
    assert_eq!(res.json()["headers"]["x-request-id"], made.as_str());
}
