//! A small notes API that verifies tessera tokens itself (no gateway in front).
//!
//! ```sh
//! cargo run --release -- serve --demo        # tessera on https://127.0.0.1:8443
//! TESSERA_URL=https://127.0.0.1:8443 TESSERA_CA=tessera-data/tls/cert.pem \
//!   cargo run -p tessera-verify --example notes_api
//! curl -H "authorization: Bearer $TOKEN" http://127.0.0.1:3000/me
//! ```
//!
//! `TESSERA_URL` is tessera's origin (also the expected `iss` and `aud`, tessera's
//! defaults); `TESSERA_CA` a PEM certificate to trust (tessera's self-signed one);
//! `LISTEN` the address to serve on (default `127.0.0.1:3000`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tessera_verify::{Identity, Jwks, TesseraVerifyLayer};

/// Notes per user id, in memory.
#[derive(Clone, Default)]
pub(crate) struct Notes(Arc<Mutex<HashMap<String, Vec<String>>>>);

/// The API: every route needs a valid tessera token.
pub(crate) fn app(jwks: Jwks) -> Router {
    Router::new()
        .route("/me", get(me))
        .route("/notes", get(list_notes).post(add_note))
        .with_state(Notes::default())
        .layer(TesseraVerifyLayer::new(jwks))
}

/// `GET /me`: who the token says the caller is.
async fn me(identity: Identity) -> Json<Value> {
    Json(json!({
        "user_id": identity.user_id.to_string(),
        "username": identity.username,
        "roles": identity.roles,
        "session_id": identity.session_id.to_string(),
        "expires_at": identity.claims.exp,
    }))
}

/// `GET /notes`: the caller's notes.
async fn list_notes(identity: Identity, State(notes): State<Notes>) -> Json<Value> {
    let all = notes.0.lock().map(|m| m.clone()).unwrap_or_default();
    let mine = all
        .get(&identity.user_id.to_string())
        .cloned()
        .unwrap_or_default();
    Json(json!({ "notes": mine }))
}

/// `POST /notes` `{"text": "…"}`: adds a note for the caller.
async fn add_note(
    identity: Identity,
    State(notes): State<Notes>,
    Json(body): Json<Value>,
) -> Result<StatusCode, (StatusCode, Json<Value>)> {
    let bad = |m: &str| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_request", "message": m})),
        )
    };
    let text = body
        .get("text")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty() && t.len() <= 1000)
        .ok_or_else(|| bad("text must be 1 to 1000 characters"))?;
    let mut map = notes.0.lock().map_err(|_| bad("busy"))?;
    map.entry(identity.user_id.to_string())
        .or_default()
        .push(text.to_owned());
    Ok(StatusCode::CREATED)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("TESSERA_URL").unwrap_or_else(|_| "https://127.0.0.1:8443".into());
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    if let Ok(ca) = std::env::var("TESSERA_CA") {
        let pem = std::fs::read(&ca)?;
        http = http.add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
    }
    let jwks = Jwks::builder(&url, &url, &url)
        .http_client(http.build()?)
        .build()?;
    let keys = jwks.refresh().await?;
    println!("{keys} key(s) from {}", jwks.url());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("notes API on http://{}", listener.local_addr()?);
    axum::serve(listener, app(jwks)).await?;
    Ok(())
}
