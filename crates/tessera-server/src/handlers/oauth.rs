//! The OAuth2-shaped endpoints for mobile and API clients (no cookies):
//! `POST /auth/token` (RFC 6749 §4.3 password and §6 refresh_token grants) and
//! `POST /auth/revoke` (RFC 7009). Answers and errors have the RFC 6749 §5 shapes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tessera_core::refresh;

use crate::http::body::{content_type_is, read_body, AUTH_BODY_LIMIT};
use crate::http::error::{AppError, ErrorCode};
use crate::http::peer::PeerAddr;
use crate::metrics::inc;
use crate::sessions::audit::{self, Event};
use crate::sessions::password::{check_password, issue_device_token, PasswordCheck};
use crate::sessions::{self, Grant, RefreshResult};
use crate::state::AppState;

type AppResult<T> = Result<T, AppError>;

fn oauth(status: StatusCode, code: ErrorCode, description: &'static str) -> AppError {
    AppError::new(status, code, description).oauth(code)
}

fn invalid_request(description: &'static str) -> AppError {
    oauth(
        StatusCode::BAD_REQUEST,
        ErrorCode::InvalidRequest,
        description,
    )
}

fn invalid_grant(description: &'static str) -> AppError {
    oauth(
        StatusCode::BAD_REQUEST,
        ErrorCode::InvalidGrant,
        description,
    )
}

/// A JSON object whose member names are unique.
struct UniqueObject(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for UniqueObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = UniqueObject;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object with unique member names")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<UniqueObject, A::Error> {
                let mut out: Vec<(String, serde_json::Value)> = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
                    if out.iter().any(|(seen, _)| *seen == k) || out.len() >= 64 {
                        return Err(serde::de::Error::custom("repeated or too many members"));
                    }
                    out.push((k, v));
                }
                Ok(UniqueObject(out))
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// Parses a form (`application/x-www-form-urlencoded`) or JSON object body into
/// parameters. Repeated parameters are refused (RFC 6749 §3.2); JSON values must be strings.
async fn params(headers: &HeaderMap, body: axum::body::Body) -> AppResult<HashMap<String, String>> {
    let is_form = content_type_is(headers, "application/x-www-form-urlencoded");
    let is_json = content_type_is(headers, "application/json");
    if !is_form && !is_json {
        return Err(AppError::unsupported_media_type().oauth(ErrorCode::InvalidRequest));
    }
    let bytes = read_body(body, AUTH_BODY_LIMIT)
        .await
        .map_err(|e| e.oauth(ErrorCode::InvalidRequest))?;
    let mut out = HashMap::new();
    if is_form {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| invalid_request("malformed form body"))?;
        for (k, v) in pairs {
            if out.insert(k, v).is_some() {
                return Err(invalid_request("a parameter is repeated"));
            }
        }
    } else {
        // UniqueObject refuses repeated names (serde_json's Map would keep the last one,
        // so a filter reading the first would see another username than we use).
        let UniqueObject(map) = serde_json::from_slice(&bytes)
            .map_err(|_| invalid_request("malformed JSON body or a parameter is repeated"))?;
        for (k, v) in map {
            match v {
                serde_json::Value::String(s) => {
                    out.insert(k, s);
                }
                _ => return Err(invalid_request("parameters must be strings")),
            }
        }
    }
    Ok(out)
}

/// The RFC 6749 §5.1 answer; a password grant also carries `device_token`, the proof of
/// this device to send (as `device_token`) with the next password grant, which lifts the
/// per-username login limit for it (`ratelimit`).
fn token_response(state: &AppState, grant: &Grant, device: Option<&str>) -> Response {
    let token_type = if grant.claims.cnf.is_some() {
        "DPoP"
    } else {
        "Bearer"
    };
    let mut body = json!({
        "access_token": grant.access_token,
        "token_type": token_type,
        "expires_in": state.access_ttl(),
        "refresh_token": grant.refresh_token,
    });
    if let (Some(d), Some(obj)) = (device, body.as_object_mut()) {
        obj.insert("device_token".into(), d.into());
    }
    let mut res = Json(body).into_response();
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

/// `POST /auth/token`.
pub(crate) async fn token(State(state): State<Arc<AppState>>, req: Request) -> AppResult<Response> {
    let (parts, body) = req.into_parts();
    let origin = audit::origin(
        &state,
        parts.extensions.get::<PeerAddr>().copied(),
        &parts.headers,
    );
    let p = params(&parts.headers, body).await?;
    let binding = crate::auth::dpop::token_request_binding(&state, &parts).await?;
    match p.get("grant_type").map(String::as_str) {
        None => Err(invalid_request("grant_type is required")),
        Some("password") => {
            let (Some(username), Some(password)) = (p.get("username"), p.get("password")) else {
                return Err(invalid_request("username and password are required"));
            };
            let presented = p.get("device_token").map(String::as_str);
            let user = match check_password(&state, username, password, origin.ip, presented)
                .await
                .map_err(oauth_shape)?
            {
                PasswordCheck::Ok(user) => user,
                PasswordCheck::Bad => {
                    inc(&state.metrics.login_failure);
                    audit::record(
                        &state,
                        &origin,
                        Event {
                            kind: "login_failure",
                            username: Some(username),
                            detail: Some("token endpoint".into()),
                            ..Default::default()
                        },
                    );
                    return Err(invalid_grant("wrong username or password"));
                }
            };
            let (_, grant) = sessions::start_session(&state, &user, "api", binding, &origin)
                .await
                .map_err(oauth_shape)?;
            let device = issue_device_token(&state, username, presented);
            Ok(token_response(&state, &grant, Some(&device)))
        }
        Some("refresh_token") => {
            let Some(token) = p.get("refresh_token") else {
                return Err(invalid_request("refresh_token is required"));
            };
            if !refresh::is_well_formed(token) {
                return Err(invalid_grant("malformed refresh token"));
            }
            let session = state
                .store
                .session_for_refresh(&refresh::hash(token))
                .await
                .map_err(|e| oauth_shape(e.into()))?
                .ok_or_else(|| invalid_grant("unknown refresh token"))?;
            // A browser family refreshes only through its cookie at /auth/refresh.
            if session.client != "api" {
                return Err(invalid_grant("unknown refresh token"));
            }
            // A bound family refreshes only with a proof by the same key (RFC 9449 §5).
            if session.dpop_jkt != binding {
                return Err(oauth(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::InvalidDpopProof,
                    "a DPoP proof by the key this token is bound to is required",
                ));
            }
            match sessions::rotate(&state, token, &origin, "token endpoint")
                .await
                .map_err(oauth_shape)?
            {
                RefreshResult::Rotated(rotated) => Ok(token_response(&state, &rotated.2, None)),
                RefreshResult::Reused(_) => Err(oauth(
                    StatusCode::UNAUTHORIZED,
                    ErrorCode::RefreshTokenReused,
                    "this refresh token was already used; the session has been ended",
                )),
                RefreshResult::Invalid => Err(invalid_grant("refresh token expired or revoked")),
            }
        }
        Some(_) => Err(oauth(
            StatusCode::BAD_REQUEST,
            ErrorCode::UnsupportedGrantType,
            "supported: password, refresh_token",
        )),
    }
}

/// Re-shapes a tessera error (503, 429, 413…) into the RFC 6749 shape, keeping its code.
fn oauth_shape(e: AppError) -> AppError {
    let code = e.code();
    e.oauth(code)
}

/// `POST /auth/revoke` (RFC 7009): revokes the session of a refresh token (or of a valid
/// access token). Always 200 for well-formed requests, known token or not (§2.2).
pub(crate) async fn revoke(
    State(state): State<Arc<AppState>>,
    req: Request,
) -> AppResult<Response> {
    let (parts, body) = req.into_parts();
    let origin = audit::origin(
        &state,
        parts.extensions.get::<PeerAddr>().copied(),
        &parts.headers,
    );
    let p = params(&parts.headers, body).await?;
    let Some(token) = p.get("token") else {
        return Err(invalid_request("token is required"));
    };
    let sid = if refresh::is_well_formed(token) {
        state
            .store
            .session_for_refresh(&refresh::hash(token))
            .await
            .map_err(|e| oauth_shape(e.into()))?
            .map(|s| s.id)
    } else {
        let ring = state.keys.load();
        ring.verify(token, &state.verifier, &state.denylist, state.clock.now())
            .ok()
            .and_then(|v| v.claims().session_id())
    };
    if let Some(sid) = sid {
        sessions::revoke_session(&state, sid)
            .await
            .map_err(oauth_shape)?;
        audit::record(
            &state,
            &origin,
            Event {
                kind: "revoke",
                session_id: Some(sid.to_string()),
                detail: Some("RFC 7009".into()),
                ..Default::default()
            },
        );
    }
    let mut res = StatusCode::OK.into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}
/// `GET /.well-known/oauth-authorization-server`: RFC 8414 metadata for OAuth client
/// libraries — the token issuer, the token, revocation and key endpoints, and what they
/// accept. Tessera has no authorization endpoint (no redirect flows: its clients are the
/// same-origin SPA and first-party apps), hence no response types.
pub(crate) async fn authorization_server_metadata(State(state): State<Arc<AppState>>) -> Response {
    let origin = &state.public_origin;
    let mut res = Json(json!({
        "issuer": state.verifier.issuer(),
        "token_endpoint": format!("{origin}/auth/token"),
        "revocation_endpoint": format!("{origin}/auth/revoke"),
        "jwks_uri": format!("{origin}/.well-known/jwks.json"),
        "grant_types_supported": ["password", "refresh_token"],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "dpop_signing_alg_values_supported": ["ES256", "EdDSA"],
        "service_documentation": format!("{origin}/openapi.json"),
    }))
    .into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    res
}
