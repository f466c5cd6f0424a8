//! Security events: written to the log and, without blocking the answer, to the store.
//! Never a password, token or key: only who, when, from where, and which session.

use std::net::IpAddr;
use std::sync::Arc;

use axum::http::{header, HeaderMap};
use tessera_store::AuditEvent;

use crate::http::peer::{client_ip, PeerAddr};
use crate::state::AppState;

/// Where a request came from.
#[derive(Debug, Clone, Default)]
pub(crate) struct Origin {
    /// Client IP (from the socket, or `X-Forwarded-For` behind a trusted proxy).
    pub ip: Option<IpAddr>,
    /// User agent, truncated to 256 bytes.
    pub user_agent: Option<String>,
}

/// The request's origin for audit and rate limiting.
pub(crate) fn origin(state: &AppState, peer: Option<PeerAddr>, headers: &HeaderMap) -> Origin {
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(256).collect());
    Origin {
        ip: client_ip(state, peer, headers),
        user_agent,
    }
}

/// What happened, to whom.
#[derive(Debug, Default)]
pub(crate) struct Event<'a> {
    /// Event kind, e.g. `login_success`.
    pub kind: &'static str,
    /// Username, if known.
    pub username: Option<&'a str>,
    /// User id, if known.
    pub user_id: Option<String>,
    /// Session id, if any.
    pub session_id: Option<String>,
    /// Extra words, never secret.
    pub detail: Option<String>,
}

/// Records `event` in the log and the store.
pub(crate) fn record(state: &Arc<AppState>, origin: &Origin, event: Event<'_>) {
    let ip = origin.ip.map(|ip| ip.to_string());
    tracing::info!(
        target: "tessera::audit",
        event = event.kind,
        username = event.username,
        user_id = event.user_id.as_deref(),
        session_id = event.session_id.as_deref(),
        ip = ip.as_deref(),
        user_agent = origin.user_agent.as_deref(),
        detail = event.detail.as_deref(),
        "audit"
    );
    let row = AuditEvent {
        at: state.clock.now(),
        kind: event.kind.to_owned(),
        username: event.username.map(|u| u.chars().take(128).collect()),
        user_id: event.user_id,
        session_id: event.session_id,
        ip,
        user_agent: origin.user_agent.clone(),
        detail: event.detail,
    };
    let state = Arc::clone(state);
    tokio::spawn(async move {
        if let Err(e) = state.store.record_audit(&row).await {
            tracing::warn!(error = %e, "audit event not stored");
        }
    });
}
