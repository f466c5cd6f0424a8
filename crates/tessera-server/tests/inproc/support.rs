//! Helpers shared by the modules: form bodies, JWT payloads, DPoP proofs on the server's
//! clock, and reads of what the harness's upstream saw.

use serde_json::Value;
use tessera_core::dpop::DpopKey;
use tessera_testkit::inproc::InProc;
use tessera_testkit::{b64url_decode_json, Client, Resp};

pub(crate) const FORM: &str = "application/x-www-form-urlencoded";

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An `application/x-www-form-urlencoded` body.
pub(crate) fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `POST path` with a form body, no cookies, and extra headers.
pub(crate) async fn post_form(
    c: &mut Client,
    path: &str,
    pairs: &[(&str, &str)],
    extra: &[(&str, &str)],
) -> Resp {
    let mut req = c.post(path).no_cookies();
    for (k, v) in extra {
        req = req.header(k, v);
    }
    req.body(FORM, form(pairs)).send().await
}

/// The decoded payload of a JWT.
pub(crate) fn claims(token: &str) -> Value {
    b64url_decode_json(token.split('.').nth(1).expect("a JWT payload")).expect("JSON payload")
}

/// A DPoP proof for `method url` made now by the server's clock, with a fresh `jti`.
pub(crate) fn proof(
    server: &InProc,
    key: &DpopKey,
    method: &str,
    path: &str,
    at: Option<&str>,
) -> String {
    proof_at(server, key, method, path, at, server.now().0)
}

/// [`proof`] with an explicit `iat`.
pub(crate) fn proof_at(
    server: &InProc,
    key: &DpopKey,
    method: &str,
    path: &str,
    at: Option<&str>,
    iat: u64,
) -> String {
    let jti = tessera_core::b64::encode(tessera_core::random_bytes::<16>());
    key.proof(method, &server.url(path), iat, &jti, at, None)
        .expect("sign a DPoP proof")
}

/// The password grant for the demo user, optionally DPoP-bound.
pub(crate) async fn password_grant(server: &InProc, key: Option<&DpopKey>) -> Resp {
    let mut c = server.client();
    let pw = server.demo_password().to_owned();
    let pairs = [
        ("grant_type", "password"),
        ("username", "demo"),
        ("password", pw.as_str()),
    ];
    match key {
        Some(k) => {
            let p = proof(server, k, "POST", "/auth/token", None);
            post_form(&mut c, "/auth/token", &pairs, &[("dpop", &p)]).await
        }
        None => post_form(&mut c, "/auth/token", &pairs, &[]).await,
    }
}

/// `(access_token, refresh_token)` of a 200 token answer.
#[track_caller]
pub(crate) fn tokens(res: &Resp) -> (String, String) {
    assert_eq!(res.status, 200, "token request failed: {}", res.text());
    let v = res.json();
    (
        v["access_token"].as_str().expect("access_token").to_owned(),
        v["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .to_owned(),
    )
}

/// The refresh grant for `refresh`, with extra headers.
pub(crate) async fn refresh_grant(server: &InProc, refresh: &str, extra: &[(&str, &str)]) -> Resp {
    let mut c = server.client();
    post_form(
        &mut c,
        "/auth/token",
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        extra,
    )
    .await
}

/// `GET /api/whoami` with `Authorization: Bearer token`.
pub(crate) async fn whoami_bearer(server: &InProc, token: &str) -> Resp {
    server
        .client()
        .get("/api/whoami")
        .bearer(token)
        .send()
        .await
}

/// The identity headers the upstream received (`x-tessera-*`).
pub(crate) fn upstream_identity(res: &Resp) -> Value {
    assert_eq!(
        res.status,
        200,
        "did not reach the upstream: {}",
        res.text()
    );
    let h = &res.json()["headers"];
    serde_json::json!({
        "user": h["x-tessera-user"],
        "username": h["x-tessera-username"],
        "roles": h["x-tessera-roles"],
        "session": h["x-tessera-session"],
    })
}
