//! The JWKS cache against a local, controllable JWKS endpoint and tokens signed with
//! `tessera-core`'s key ring: `Cache-Control` scheduling, failed fetches keeping the old
//! keys, time checks with a manual clock, DPoP-bound tokens.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tessera_core::{
    AccessClaims, Algorithm, Cnf, KeyRing, ManualClock, SigningKey, TokenError, UnixTime,
};
use tessera_testkit::{skip_tokio_time, until};
use tessera_verify::{Jwks, VerifyError};

const T0: UnixTime = UnixTime(1_700_000_000);
/// How long a background fetch may take to show.
const LIMIT: Duration = Duration::from_secs(5);

struct Endpoint {
    jwks: std::sync::Mutex<serde_json::Value>,
    failing: AtomicBool,
    hits: AtomicU64,
}

/// Serves `endpoint` as `/.well-known/jwks.json` on a free port; returns its origin.
async fn serve(endpoint: Arc<Endpoint>) -> String {
    let app = Router::new().route(
        "/.well-known/jwks.json",
        get(move || {
            let endpoint = Arc::clone(&endpoint);
            async move {
                endpoint.hits.fetch_add(1, Ordering::SeqCst);
                if endpoint.failing.load(Ordering::SeqCst) {
                    return StatusCode::INTERNAL_SERVER_ERROR.into_response();
                }
                let body = endpoint.jwks.lock().unwrap().clone();
                let mut res: Response = axum::Json(body).into_response();
                res.headers_mut().insert(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=1"),
                );
                res
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn ring_of(key: SigningKey) -> KeyRing {
    KeyRing::new(vec![key], T0)
}

fn jwks_doc(rings: &[&KeyRing]) -> serde_json::Value {
    let keys: Vec<_> = rings.iter().flat_map(|r| r.jwks()).collect();
    serde_json::json!({ "keys": keys })
}

fn claims() -> AccessClaims {
    AccessClaims::example(T0)
}

fn verifier(origin: &str, clock: Arc<ManualClock>) -> Jwks {
    Jwks::builder(origin, "https://issuer.example", "https://app.example")
        .insecure_allow_http(true)
        .min_refetch_interval(Duration::from_secs(1))
        .leeway(Duration::from_secs(5))
        .clock(clock)
        .build()
        .unwrap()
}

#[tokio::test]
async fn claims_time_and_binding_checks() {
    let a = ring_of(SigningKey::generate(Algorithm::EdDSA, T0).unwrap());
    let endpoint = Arc::new(Endpoint {
        jwks: std::sync::Mutex::new(jwks_doc(&[&a])),
        failing: AtomicBool::new(false),
        hits: AtomicU64::new(0),
    });
    let origin = serve(Arc::clone(&endpoint)).await;
    let clock = Arc::new(ManualClock::new(T0));
    let jwks = verifier(&origin, Arc::clone(&clock));

    let token = a.sign(&claims()).unwrap();
    let id = jwks.verify_token(&token).await.unwrap();
    assert_eq!(id.username, "alice");
    assert!(id.has_role("user"));
    assert_eq!(id.user_id.to_string(), claims().sub);
    assert_eq!(id.amr().collect::<Vec<_>>(), ["pwd"]);
    assert_eq!(id.auth_time(), Some(claims().auth_time));

    // exp = T0 + 300, leeway 5 s.
    clock.set(T0.plus(304));
    assert!(jwks.verify_token(&token).await.is_ok());
    clock.set(T0.plus(305));
    assert_eq!(
        jwks.verify_token(&token).await.unwrap_err(),
        VerifyError::Token(TokenError::Expired)
    );
    // Not yet valid.
    clock.set(T0.minus(6));
    assert_eq!(
        jwks.verify_token(&token).await.unwrap_err(),
        VerifyError::Token(TokenError::NotYetValid)
    );
    clock.set(T0);

    // DPoP-bound tokens need a proof this crate does not check.
    let mut bound = claims();
    bound.cnf = Some(Cnf {
        jkt: "x".repeat(43).into(),
    });
    let token = a.sign(&bound).unwrap();
    assert_eq!(
        jwks.verify_token(&token).await.unwrap_err(),
        VerifyError::Token(TokenError::BindingMismatch)
    );

    // An HS256 key's tokens: never published, refused without a fetch.
    let hs = ring_of(SigningKey::generate(Algorithm::HS256, T0).unwrap());
    let before = jwks.fetch_count();
    assert_eq!(
        jwks.verify_token(&hs.sign(&claims()).unwrap())
            .await
            .unwrap_err(),
        VerifyError::Token(TokenError::AlgorithmMismatch)
    );
    assert_eq!(jwks.fetch_count(), before);
}

#[tokio::test]
async fn max_age_schedules_refresh_and_failures_keep_the_keys() {
    let a = ring_of(SigningKey::generate(Algorithm::EdDSA, T0).unwrap());
    let b = ring_of(SigningKey::generate(Algorithm::EdDSA, T0).unwrap());
    let endpoint = Arc::new(Endpoint {
        jwks: std::sync::Mutex::new(jwks_doc(&[&a])),
        failing: AtomicBool::new(false),
        hits: AtomicU64::new(0),
    });
    let origin = serve(Arc::clone(&endpoint)).await;
    let jwks = verifier(&origin, Arc::new(ManualClock::new(T0)));
    let token_a = a.sign(&claims()).unwrap();
    assert!(jwks.verify_token(&token_a).await.is_ok());
    assert_eq!(endpoint.hits.load(Ordering::SeqCst), 1);

    // `max-age=1` is clamped to 10 s: nothing is refetched before. The cache schedules
    // by tokio's clock, moved here (`skip_tokio_time`), never slept through.
    endpoint.failing.store(true, Ordering::SeqCst);
    skip_tokio_time(Duration::from_secs(5)).await;
    assert!(jwks.verify_token(&token_a).await.is_ok());
    // No fetch may follow: watch the endpoint for a moment.
    let refetched = until(Duration::from_millis(300), async || {
        endpoint.hits.load(Ordering::SeqCst) > 1
    })
    .await;
    assert!(refetched.is_none(), "refetched before the clamped max-age");
    assert_eq!(endpoint.hits.load(Ordering::SeqCst), 1);

    // After it, a verification schedules a background refresh; it fails, the keys stay.
    skip_tokio_time(Duration::from_millis(5500)).await;
    assert!(jwks.verify_token(&token_a).await.is_ok());
    let fetched = until(LIMIT, async || endpoint.hits.load(Ordering::SeqCst) >= 2).await;
    assert!(fetched.is_some(), "no background refresh after max-age");
    assert_eq!(endpoint.hits.load(Ordering::SeqCst), 2);
    assert!(jwks.verify_token(&token_a).await.is_ok());

    // The endpoint recovers and publishes a second key: the next scheduled refresh
    // (no sooner than the minimum interval after the failure) picks it up.
    *endpoint.jwks.lock().unwrap() = jwks_doc(&[&a, &b]);
    endpoint.failing.store(false, Ordering::SeqCst);
    skip_tokio_time(Duration::from_millis(1100)).await;
    assert!(jwks.verify_token(&token_a).await.is_ok());
    let fetched = until(LIMIT, async || {
        endpoint.hits.load(Ordering::SeqCst) >= 3 && jwks.kids().len() == 2
    })
    .await;
    assert!(fetched.is_some(), "no refresh after the minimum interval");
    assert_eq!(endpoint.hits.load(Ordering::SeqCst), 3);
    assert_eq!(jwks.kids().len(), 2);
    let token_b = b.sign(&claims()).unwrap();
    assert!(jwks.verify_token(&token_b).await.is_ok());
    assert_eq!(jwks.fetch_count(), 3);
}

#[tokio::test]
async fn optional_layer_lets_anonymous_requests_through() {
    use tower::ServiceExt as _;

    let a = ring_of(SigningKey::generate(Algorithm::EdDSA, T0).unwrap());
    let endpoint = Arc::new(Endpoint {
        jwks: std::sync::Mutex::new(jwks_doc(&[&a])),
        failing: AtomicBool::new(false),
        hits: AtomicU64::new(0),
    });
    let origin = serve(endpoint).await;
    let jwks = verifier(&origin, Arc::new(ManualClock::new(T0)));
    async fn whoami(
        tessera_verify::OptionalIdentity(id): tessera_verify::OptionalIdentity,
    ) -> String {
        id.map_or_else(|| "anonymous".to_owned(), |i| i.username)
    }
    async fn whoami_option(id: Option<tessera_verify::Identity>) -> String {
        id.map_or_else(|| "anonymous".to_owned(), |i| i.username)
    }
    let app = Router::new()
        .route("/whoami", get(whoami))
        .route("/whoami2", get(whoami_option))
        .layer(tessera_verify::TesseraVerifyLayer::new(jwks).optional());
    let send = |path: &'static str, auth: Option<String>| {
        let app = app.clone();
        async move {
            let mut req = axum::http::Request::builder().uri(path);
            if let Some(auth) = auth {
                req = req.header("authorization", auth);
            }
            let res = app
                .oneshot(req.body(axum::body::Body::empty()).unwrap())
                .await
                .unwrap();
            let status = res.status();
            let body = axum::body::to_bytes(res.into_body(), 1 << 16)
                .await
                .unwrap();
            (status, String::from_utf8(body.to_vec()).unwrap())
        }
    };
    let token = a.sign(&claims()).unwrap();
    for path in ["/whoami", "/whoami2"] {
        assert_eq!(send(path, None).await, (StatusCode::OK, "anonymous".into()));
        assert_eq!(
            send(path, Some(format!("Bearer {token}"))).await,
            (StatusCode::OK, "alice".into())
        );
        assert_eq!(
            send(path, Some("Bearer a.b.c".into())).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
}
