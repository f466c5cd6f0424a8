//! The example notes API, verifying tokens issued by tessera itself (served in-process
//! by `tessera_testkit::inproc`, with a manual clock): valid, tampered, expired, wrong
//! audience, missing, after a key rotation, a flood of unknown `kid`s, and an HS256
//! tessera.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../examples/notes_api.rs"]
#[allow(dead_code)]
mod notes_api;

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use serde_json::Value;
use tessera_testkit::inproc::InProc;
use tessera_testkit::skip_tokio_time;
use tessera_verify::{Jwks, JwksBuilder};
use tower::ServiceExt as _;

async fn start(config: &str) -> InProc {
    InProc::builder().config(config).start().await
}

/// A verifier for `server` with its defaults for `iss` and `aud` (its origin).
fn jwks_for(server: &InProc) -> JwksBuilder {
    Jwks::builder(server.origin(), server.origin(), server.origin())
        .http_client(tessera_testkit::client::http_client(&server.cert_path))
}

async fn demo_token(server: &InProc) -> String {
    let mut c = server.client();
    c.login_ok("demo", server.demo_password()).await;
    c.access_token().expect("an access token after login")
}

async fn call(
    app: &Router,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (StatusCode, HeaderMap, Value) {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Body::from(b.to_owned())
        }
        None => Body::empty(),
    };
    let res = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, json)
}

async fn get_me(app: &Router, token: &str) -> (StatusCode, HeaderMap, Value) {
    let auth = format!("Bearer {token}");
    call(app, "GET", "/me", &[("authorization", &auth)], None).await
}

fn assert_unauthenticated(status: StatusCode, headers: &HeaderMap, body: &Value) {
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "unauthenticated", "{body}");
    assert!(body["message"].is_string(), "{body}");
    let www = headers[header::WWW_AUTHENTICATE].to_str().unwrap();
    assert!(www.starts_with("Bearer"), "{www}");
}

/// Replaces the `kid` of a token's header with `kid` (signature unchanged).
fn with_kid(token: &str, kid: &str) -> String {
    let (_, rest) = token.split_once('.').unwrap();
    let header = format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{kid}"}}"#);
    format!(
        "{}.{rest}",
        tessera_testkit::b64url_encode(header.as_bytes())
    )
}

#[tokio::test]
async fn real_tokens_and_every_refusal() {
    let server = start("").await;
    let jwks = jwks_for(&server).build().unwrap();
    let app = notes_api::app(jwks.clone());
    let mut client = server.client();
    client.login_ok("demo", server.demo_password()).await;
    let token = client.access_token().unwrap();
    let claims = client.claims().unwrap();

    // A token from a real login: 200 with the right identity.
    let (status, _, me) = get_me(&app, &token).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["username"], "demo");
    assert_eq!(me["user_id"], claims["sub"]);
    assert_eq!(me["session_id"], claims["sid"]);
    assert_eq!(me["roles"], claims["roles"]);
    assert_eq!(jwks.fetch_count(), 1);

    // The notes routes see the same identity.
    let auth = format!("Bearer {token}");
    let (status, _, _) = call(
        &app,
        "POST",
        "/notes",
        &[("authorization", &auth)],
        Some(r#"{"text":"hello"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, notes) = call(&app, "GET", "/notes", &[("authorization", &auth)], None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(notes["notes"], serde_json::json!(["hello"]));

    // Tessera's split cookies work too; unsafe cookie requests need same-origin evidence.
    let (header_b64, rest) = token.split_once('.').unwrap();
    let (payload, sig) = rest.split_once('.').unwrap();
    let cookie = format!("__Host-tessera-claims={payload}; __Host-tessera-sig={header_b64}.{sig}");
    let (status, _, me) = call(&app, "GET", "/me", &[("cookie", &cookie)], None).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["username"], "demo");
    let note = Some(r#"{"text":"x"}"#);
    let (status, _, body) = call(&app, "POST", "/notes", &[("cookie", &cookie)], note).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "csrf_failed");
    let evil = [
        ("cookie", cookie.as_str()),
        ("origin", "https://evil.example"),
    ];
    let (status, _, _) = call(&app, "POST", "/notes", &evil, note).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let same = [
        ("cookie", cookie.as_str()),
        ("origin", server.origin()),
        ("sec-fetch-site", "same-origin"),
    ];
    let (status, _, _) = call(&app, "POST", "/notes", &same, note).await;
    assert_eq!(status, StatusCode::CREATED);

    // No token.
    let (status, headers, body) = call(&app, "GET", "/me", &[], None).await;
    assert_unauthenticated(status, &headers, &body);

    // Tampered: one character of the payload, or of the signature.
    let mut bytes = token.clone().into_bytes();
    let i = header_b64.len() + 5;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    let (status, headers, body) = get_me(&app, &tampered).await;
    assert_unauthenticated(status, &headers, &body);
    let mut bytes = token.clone().into_bytes();
    let i = bytes.len() - 3;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let (status, headers, body) = get_me(&app, &String::from_utf8(bytes).unwrap()).await;
    assert_unauthenticated(status, &headers, &body);

    // Garbage, alg none, oversized, other schemes.
    for bad in [
        "x".to_owned(),
        format!(
            "{}.{payload}.",
            tessera_testkit::b64url_encode(br#"{"alg":"none"}"#)
        ),
        "a".repeat(9000),
    ] {
        let (status, headers, body) = get_me(&app, &bad).await;
        assert_unauthenticated(status, &headers, &body);
    }
    let dpop = format!("DPoP {token}");
    let (status, headers, body) = call(&app, "GET", "/me", &[("authorization", &dpop)], None).await;
    assert_unauthenticated(status, &headers, &body);

    // Wrong audience or issuer configured.
    let other_aud = Jwks::builder(server.origin(), server.origin(), "https://other.example")
        .http_client(tessera_testkit::client::http_client(&server.cert_path))
        .build()
        .unwrap();
    let (status, headers, body) = get_me(&notes_api::app(other_aud), &token).await;
    assert_unauthenticated(status, &headers, &body);
    let other_iss = Jwks::builder(server.origin(), "https://other.example", server.origin())
        .http_client(tessera_testkit::client::http_client(&server.cert_path))
        .build()
        .unwrap();
    let (status, headers, body) = get_me(&notes_api::app(other_iss), &token).await;
    assert_unauthenticated(status, &headers, &body);

    // The same JWKS was fetched once for all of the above.
    assert_eq!(jwks.fetch_count(), 1);
}

#[tokio::test]
async fn expired_token_is_refused() {
    let server = start("[tokens]\naccess_ttl = \"2s\"\nleeway = \"0s\"").await;
    // The verifier reads the server's clock: both move together.
    let jwks = jwks_for(&server)
        .leeway(Duration::ZERO)
        .clock(server.clock())
        .build()
        .unwrap();
    jwks.refresh().await.unwrap();
    let app = notes_api::app(jwks);
    let token = demo_token(&server).await;
    let (status, _, body) = get_me(&app, &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    server.advance(Duration::from_secs(2));
    let (status, headers, body) = get_me(&app, &token).await;
    assert_unauthenticated(status, &headers, &body);
}

#[tokio::test]
async fn key_rotation_is_picked_up_by_the_unknown_kid_refetch() {
    let server = start("").await;
    let jwks = jwks_for(&server)
        .min_refetch_interval(Duration::from_secs(1))
        .build()
        .unwrap();
    let app = notes_api::app(jwks.clone());
    let old = demo_token(&server).await;
    assert_eq!(get_me(&app, &old).await.0, StatusCode::OK);
    let old_kids = jwks.kids();
    assert_eq!(jwks.fetch_count(), 1);

    // `tessera keys rotate`, then the server's next key reload (made at once).
    server.rotate_keys().await;
    server.sync().await;
    let new = demo_token(&server).await;
    let kid = tessera_testkit::b64url_decode_json(new.split('.').next().unwrap()).unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        !old_kids.contains(&kid),
        "tessera never signed with the rotated key"
    );
    // The verifier's minimum refetch interval (1 s, on tokio's clock) has passed.
    skip_tokio_time(Duration::from_secs(1)).await;

    // The cache does not know the new kid yet: one refetch, then 200.
    let (status, _, me) = get_me(&app, &new).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["username"], "demo");
    assert_eq!(jwks.fetch_count(), 2);
    assert!(jwks.kids().len() > old_kids.len());
    // Tokens of the old key still verify (it stays published while its tokens live).
    assert_eq!(get_me(&app, &old).await.0, StatusCode::OK);
    assert_eq!(jwks.fetch_count(), 2);
}

#[tokio::test]
async fn unknown_kid_flood_fetches_at_most_once_per_interval() {
    let server = start("").await;
    let jwks = jwks_for(&server).build().unwrap();
    let app = notes_api::app(jwks.clone());
    let token = demo_token(&server).await;
    assert_eq!(get_me(&app, &token).await.0, StatusCode::OK);
    assert_eq!(jwks.fetch_count(), 1);

    // The first fetch was just now: within the interval, no refetch at all.
    let forged = with_kid(&token, "AAAAAAAAAAAA");
    assert_eq!(get_me(&app, &forged).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(jwks.fetch_count(), 1);

    // Past the interval, a flood of 100 concurrent requests shares one fetch.
    let jwks = jwks_for(&server)
        .min_refetch_interval(Duration::from_secs(1))
        .build()
        .unwrap();
    let app = notes_api::app(jwks.clone());
    assert_eq!(get_me(&app, &token).await.0, StatusCode::OK);
    assert_eq!(jwks.fetch_count(), 1);
    skip_tokio_time(Duration::from_millis(1200)).await;
    let flood = |n: usize| {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..n {
            let app = app.clone();
            let forged = with_kid(&token, &format!("unknownkid{i}"));
            set.spawn(async move { get_me(&app, &forged).await.0 });
        }
        set
    };
    let results = flood(100).join_all().await;
    assert!(results.iter().all(|s| *s == StatusCode::UNAUTHORIZED));
    assert_eq!(jwks.fetch_count(), 2, "one fetch for the whole flood");
    // Right after: nothing more.
    let results = flood(100).join_all().await;
    assert!(results.iter().all(|s| *s == StatusCode::UNAUTHORIZED));
    assert_eq!(jwks.fetch_count(), 2);
    // Headers that are not tessera's shape never cause a fetch.
    skip_tokio_time(Duration::from_millis(1200)).await;
    let (_, rest) = token.split_once('.').unwrap();
    for header in [
        r#"{"alg":"HS256","typ":"at+jwt","kid":"zzz"}"#,
        r#"{"alg":"EdDSA","typ":"at+jwt","kid":"zzz","jku":"https://evil.example"}"#,
        r#"{"alg":"EdDSA","kid":"zzz"}"#,
    ] {
        let bad = format!(
            "{}.{rest}",
            tessera_testkit::b64url_encode(header.as_bytes())
        );
        assert_eq!(get_me(&app, &bad).await.0, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(jwks.fetch_count(), 2);
    // The real token still works throughout.
    assert_eq!(get_me(&app, &token).await.0, StatusCode::OK);
}

#[tokio::test]
async fn hs256_tessera_publishes_no_keys_so_tokens_are_refused() {
    let server = start("[tokens]\nalgorithm = \"HS256\"").await;
    let jwks = jwks_for(&server).build().unwrap();
    assert_eq!(
        jwks.refresh().await.unwrap(),
        0,
        "HS256 keys are never published"
    );
    let app = notes_api::app(jwks.clone());
    let token = demo_token(&server).await;
    let (status, headers, body) = get_me(&app, &token).await;
    assert_unauthenticated(status, &headers, &body);
    // An HS256 header is refused without a refetch.
    assert_eq!(jwks.fetch_count(), 1);
}

#[tokio::test]
async fn tessera_unreachable_answers_503_without_hammering() {
    // Nothing listens on port 9 of localhost: no keys, so 503 `unavailable`, not 401.
    let jwks = Jwks::builder("https://127.0.0.1:9", "https://x", "https://x")
        .min_refetch_interval(Duration::from_secs(60))
        .build()
        .unwrap();
    assert!(jwks.refresh().await.is_err());
    let app = notes_api::app(jwks.clone());
    let (status, headers, body) = get_me(&app, "a.b.c").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "unavailable");
    assert!(headers.contains_key(header::RETRY_AFTER));
    // Within the interval, further requests do not hammer the endpoint.
    let before = jwks.fetch_count();
    for _ in 0..10 {
        assert_eq!(
            get_me(&app, "a.b.c").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    assert_eq!(jwks.fetch_count(), before);
}

#[test]
fn plain_http_needs_the_insecure_opt_in() {
    assert!(Jwks::new("http://auth.example", "i", "a").is_err());
    assert!(Jwks::builder("http://auth.example", "i", "a")
        .insecure_allow_http(true)
        .build()
        .is_ok());
    assert!(Jwks::new("https://auth.example/", "i", "a").is_ok());
    assert_eq!(
        Jwks::new("https://auth.example/", "i", "a").unwrap().url(),
        "https://auth.example/.well-known/jwks.json"
    );
}
