//! The in-process harness's upstream: a small REST API on a loopback port that answers
//! what the black-box tests ask of an upstream. Per-user notes keyed by the gateway's
//! `X-Tessera-User` (`GET`/`POST /api/notes`), an echo of the headers it received with
//! the method and path (`GET`/`POST /api/whoami`), and a public greeting
//! (`GET /api/public/hello`). The bodies have the shapes of the binary's demo API
//! (`{"notes": […]}`, `{"note": {…}}`, `{"headers": {…}}`; a note has an `id` and its
//! `text`, not the demo's `created_at`), so a test reads the same fields whichever server
//! it runs against.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

#[derive(Default)]
struct Notes {
    by_user: Mutex<HashMap<String, Vec<Value>>>,
    next: std::sync::atomic::AtomicU64,
}

fn user_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-tessera-user")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"error": code, "message": message}))).into_response()
}

async fn list_notes(State(notes): State<Arc<Notes>>, headers: HeaderMap) -> Response {
    let Some(user) = user_of(&headers) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "no identity from the gateway",
        );
    };
    let list = notes
        .by_user
        .lock()
        .map(|m| m.get(&user).cloned().unwrap_or_default())
        .unwrap_or_default();
    Json(json!({ "notes": list })).into_response()
}

async fn add_note(
    State(notes): State<Arc<Notes>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(user) = user_of(&headers) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "no identity from the gateway",
        );
    };
    let json_body = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json_body {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send application/json",
        );
    }
    let text = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["text"].as_str().map(|t| t.trim().to_owned()));
    let Some(text) = text else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "send {\"text\": \"…\"}",
        );
    };
    if text.is_empty() || text.chars().count() > 2000 {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "a note has 1 to 2000 characters",
        );
    }
    let n = notes
        .next
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let note = json!({ "id": format!("n{n}"), "text": text });
    if let Ok(mut m) = notes.by_user.lock() {
        m.entry(user).or_default().push(note.clone());
    }
    (StatusCode::CREATED, Json(json!({ "note": note }))).into_response()
}

/// The headers received (as the demo API's `whoami`), with the method and path.
async fn whoami(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let mut seen = serde_json::Map::new();
    for (name, value) in &headers {
        if let Ok(v) = value.to_str() {
            seen.insert(name.as_str().to_owned(), json!(v));
        }
    }
    Json(json!({ "headers": seen, "method": method.as_str(), "path": uri.path() })).into_response()
}

async fn hello() -> Response {
    Json(json!({"hello": "world", "public": true})).into_response()
}

/// The routes: `GET/POST /api/notes`, `GET/POST /api/whoami`, `GET /api/public/hello`.
pub fn api() -> Router {
    Router::new()
        .route("/api/notes", get(list_notes).post(add_note))
        .route("/api/whoami", get(whoami).post(whoami))
        .route("/api/public/hello", get(hello))
        .with_state(Arc::new(Notes::default()))
}

/// Serves [`api`] on a free loopback port (a task of the current runtime); its base URL.
pub async fn spawn() -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, api()).await;
    });
    Ok(format!("http://{addr}"))
}
