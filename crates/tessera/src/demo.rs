//! The demo: an in-process REST API of per-user notes (keyed by `X-Tessera-User`, on a
//! loopback port) and a demo user whose password is kept in the data folder.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tessera_core::password::{hash_password, HashParams};
use tessera_core::{b64, random_bytes, Clock, UserId};
use tessera_store::{Store, StoreError, User};

#[derive(Clone, serde::Serialize)]
struct Note {
    id: String,
    text: String,
    created_at: u64,
}

#[derive(Default)]
struct Notes(Mutex<HashMap<String, Vec<Note>>>);

fn user_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-tessera-user")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn unauthenticated() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error": "unauthenticated", "message": "no identity from the gateway"})),
    )
        .into_response()
}

async fn list_notes(State(notes): State<Arc<Notes>>, headers: HeaderMap) -> Response {
    let Some(user) = user_of(&headers) else {
        return unauthenticated();
    };
    let list = notes
        .0
        .lock()
        .map(|m| m.get(&user).cloned().unwrap_or_default())
        .unwrap_or_default();
    Json(json!({ "notes": list })).into_response()
}

#[derive(Deserialize)]
struct NewNote {
    text: String,
}

async fn add_note(
    State(notes): State<Arc<Notes>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(user) = user_of(&headers) else {
        return unauthenticated();
    };
    // JSON only: text/plain and forms are what cross-site pages can send without CORS.
    if !tessera_server::http::body::content_type_is(&headers, "application/json") {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Json(json!({"error": "unsupported_media_type", "message": "send application/json"})),
        )
            .into_response();
    }
    let Ok(new) = serde_json::from_slice::<NewNote>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_request", "message": "send {\"text\": \"…\"}"})),
        )
            .into_response();
    };
    let text = new.text.trim();
    if text.is_empty() || text.chars().count() > 2000 {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_request", "message": "a note has 1 to 2000 characters"})),
        )
            .into_response();
    }
    let note = Note {
        id: b64::encode(random_bytes::<9>()),
        text: text.to_owned(),
        created_at: tessera_core::SystemClock.now().0,
    };
    if let Ok(mut m) = notes.0.lock() {
        let list = m.entry(user).or_default();
        if list.len() >= 1000 {
            list.remove(0);
        }
        list.push(note.clone());
    }
    (StatusCode::CREATED, Json(json!({ "note": note }))).into_response()
}

/// Echoes the identity headers the API received (to see what the gateway forwards).
async fn whoami(headers: HeaderMap) -> Response {
    let mut seen = serde_json::Map::new();
    for (name, value) in &headers {
        if let Ok(v) = value.to_str() {
            seen.insert(name.as_str().to_owned(), json!(v));
        }
    }
    Json(json!({ "headers": seen })).into_response()
}

async fn hello() -> Response {
    Json(json!({"hello": "world", "public": true})).into_response()
}

/// The demo API's routes: `GET/POST /api/notes`, `GET /api/whoami`, `GET /api/public/hello`.
pub(crate) fn api() -> Router {
    Router::new()
        .route("/api/notes", get(list_notes).post(add_note))
        .route("/api/whoami", get(whoami).post(whoami))
        .route("/api/public/hello", get(hello))
        .with_state(Arc::new(Notes::default()))
}

/// Starts the demo API on a free loopback port; returns its base URL.
pub(crate) async fn spawn_api() -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, api()).await {
            tracing::error!(error = %e, "demo API stopped");
        }
    });
    Ok(format!("http://{addr}"))
}

/// Why the demo user could not be set up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DemoError {
    /// The store failed.
    #[error("demo user: {0}")]
    Store(#[from] StoreError),
    /// Hashing the new password failed.
    #[error("demo user: {0}")]
    Hash(#[from] tessera_core::password::PasswordError),
    /// The password file could not be written.
    #[error("demo password file {0}: {1}")]
    File(String, std::io::Error),
}

/// Makes sure the demo user exists; returns `(username, password)`. The password is kept
/// in `data_dir/demo-password` (0600) so a second start prints the same one.
pub(crate) async fn ensure_demo_user(
    store: &dyn Store,
    data_dir: &Path,
    params: HashParams,
    now: tessera_core::UnixTime,
) -> Result<(String, String), DemoError> {
    let username = "demo".to_owned();
    let pw_file = data_dir.join("demo-password");
    let existing = store.user_by_name(&username).await?;
    if existing.is_some() {
        if let Ok(pw) = std::fs::read_to_string(&pw_file) {
            return Ok((username, pw.trim().to_owned()));
        }
    }
    let password = b64::encode(random_bytes::<12>());
    let hash = hash_password(&password, params)?;
    match existing {
        Some(user) => {
            store.set_password_hash(user.id, &hash).await?;
        }
        None => {
            let user = User {
                id: UserId::random(),
                username: username.clone(),
                password_hash: hash,
                roles: vec!["user".into(), "demo".into()],
                created_at: now,
                disabled: false,
            };
            match store.create_user(&user).await {
                Ok(()) | Err(StoreError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let _ = std::fs::remove_file(&pw_file);
    tessera_server::fsutil::write_private(&pw_file, password.as_bytes())
        .map_err(|e| DemoError::File(pw_file.display().to_string(), e))?;
    Ok((username, password))
}
