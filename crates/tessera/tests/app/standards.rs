//! Black-box: what OAuth and HTTP client libraries read off tessera — RFC 8414 metadata,
//! RFC 9068's `client_id`, and RFC 9110's `Allow` on a 405.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::json;
use tessera_testkit::inproc::InProc;
use tessera_testkit::Method;

/// RFC 8414 §3: the metadata at `/.well-known/oauth-authorization-server` names the
/// issuer the tokens carry and endpoints that answer.
#[tokio::test]
async fn authorization_server_metadata_names_the_issuer_and_live_endpoints() {
    let server = InProc::demo().await;
    let mut c = server.client();
    let res = c
        .get("/.well-known/oauth-authorization-server")
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert!(res.is_json());
    let m = res.json();
    let origin = server.origin().to_owned();
    assert_eq!(
        m["issuer"],
        json!(origin),
        "RFC 8414 §3.3: issuer is the origin the document is at"
    );
    assert_eq!(m["token_endpoint"], json!(format!("{origin}/auth/token")));
    assert_eq!(
        m["revocation_endpoint"],
        json!(format!("{origin}/auth/revoke"))
    );
    assert_eq!(
        m["jwks_uri"],
        json!(format!("{origin}/.well-known/jwks.json"))
    );
    assert_eq!(
        m["grant_types_supported"],
        json!(["password", "refresh_token"])
    );
    assert_eq!(
        m["dpop_signing_alg_values_supported"],
        json!(["ES256", "EdDSA"])
    );
    assert_eq!(m["token_endpoint_auth_methods_supported"], json!(["none"]));
    assert!(m["response_types_supported"].as_array().unwrap().is_empty());
    // The issuer is the one access tokens carry, and the endpoints answer.
    let mut user = server.demo_client().await;
    assert_eq!(user.claims().unwrap()["iss"], m["issuer"]);
    let jwks = c.get("/.well-known/jwks.json").send().await;
    assert_eq!(jwks.status, 200);
    let res = c
        .post("/auth/token")
        .no_cookies()
        .json(&json!({"grant_type": "password", "username": "demo", "password": server.demo_password()}))
        .send()
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let _ = &mut user;
}

/// RFC 9068 §2.2: `client_id` is REQUIRED in `at+jwt` access tokens: `browser` for the
/// cookie session, `api` for the token endpoint's clients.
#[tokio::test]
async fn access_tokens_carry_client_id() {
    let server = InProc::demo().await;
    let c = server.demo_client().await;
    assert_eq!(c.claims().unwrap()["client_id"], "browser");
    let mut api = server.client();
    let res = api
        .post("/auth/token")
        .no_cookies()
        .json(&json!({"grant_type": "password", "username": "demo", "password": server.demo_password()}))
        .send()
        .await;
    let token = res.json()["access_token"].as_str().unwrap().to_owned();
    let payload = tessera_testkit::b64url_decode_json(token.split('.').nth(1).unwrap()).unwrap();
    assert_eq!(payload["client_id"], "api");
    assert_eq!(payload["sub"], c.claims().unwrap()["sub"]);
}

/// RFC 9110 §15.5.6: every 405 names the methods the route takes in `Allow`.
#[tokio::test]
async fn method_not_allowed_answers_name_the_allowed_methods() {
    let server = InProc::demo().await;
    let mut c = server.client();
    for (method, path, allow) in [
        (Method::GET, "/auth/login", "POST"),
        (Method::PUT, "/auth/login", "POST"),
        (Method::DELETE, "/auth/session", "GET, HEAD"),
        (Method::GET, "/auth/refresh", "POST"),
        (Method::GET, "/auth/logout", "POST"),
        (Method::GET, "/auth/logout-all", "POST"),
        (Method::GET, "/auth/token", "POST"),
        (Method::PATCH, "/auth/revoke", "POST"),
        (Method::POST, "/.well-known/jwks.json", "GET, HEAD"),
        (
            Method::POST,
            "/.well-known/oauth-authorization-server",
            "GET, HEAD",
        ),
        (Method::POST, "/healthz", "GET, HEAD"),
        (Method::POST, "/metrics", "GET, HEAD"),
        (Method::DELETE, "/openapi.json", "GET, HEAD"),
        (Method::POST, "/tessera.js", "GET, HEAD"),
        (Method::PUT, "/tessera.d.ts", "GET, HEAD"),
        (Method::OPTIONS, "/auth/login", "POST"),
    ] {
        let res = c.request(method.clone(), path).send().await;
        res.assert_error(405, "method_not_allowed");
        assert_eq!(
            res.header("allow").as_deref(),
            Some(allow),
            "{method} {path}"
        );
    }
}
