//! Who made the request: [`Identity`], its axum extractors, and the rejection.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tessera_core::{AccessClaims, SessionId, UserId};

/// The verified identity of a request, inserted into the request extensions by
/// [`crate::TesseraVerifyLayer`] and taken by handlers as an extractor.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The stable user id (`sub`).
    pub user_id: UserId,
    /// The login name.
    pub username: String,
    /// The user's roles.
    pub roles: Vec<String>,
    /// The session id (`sid`).
    pub session_id: SessionId,
    /// Every verified claim.
    pub claims: Arc<AccessClaims>,
}

impl Identity {
    /// An identity from verified claims; `None` if `sub` or `sid` is not a tessera id.
    pub(crate) fn from_claims(claims: AccessClaims) -> Option<Self> {
        Some(Identity {
            user_id: claims.user_id()?,
            session_id: claims.session_id()?,
            username: claims.username.to_string(),
            roles: claims.roles.iter().map(|r| r.to_string()).collect(),
            claims: Arc::new(claims),
        })
    }

    /// Whether the user has `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// How the user authenticated (RFC 8176 method values, e.g. `pwd`); empty for tokens
    /// signed before tessera wrote it.
    pub fn amr(&self) -> impl Iterator<Item = &str> {
        self.claims.amr.iter().map(|m| m.as_str())
    }

    /// When the user last authenticated (seconds since the epoch), if the token says; a
    /// refresh keeps it. Compare it with the clock to ask for a recent login (RFC 9470).
    pub fn auth_time(&self) -> Option<u64> {
        (self.claims.auth_time != 0).then_some(self.claims.auth_time)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Identity {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Identity>()
            .cloned()
            .ok_or_else(AuthRejection::missing)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Identity {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Identity>().cloned())
    }
}

/// The identity if the request had valid credentials; for routes open to anonymous
/// callers behind [`crate::TesseraVerifyLayer::optional`]. Same as `Option<Identity>`.
#[derive(Debug, Clone)]
pub struct OptionalIdentity(pub Option<Identity>);

impl<S: Send + Sync> FromRequestParts<S> for OptionalIdentity {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(OptionalIdentity(
            parts.extensions.get::<Identity>().cloned(),
        ))
    }
}

/// A refused request: JSON `{"error","message"}` in tessera's error shape, with
/// `WWW-Authenticate: Bearer` on 401. The message is generic; details go to the log.
#[derive(Debug, Clone)]
pub struct AuthRejection {
    status: StatusCode,
    code: &'static str,
    message: &'static str,
    bearer_error: Option<&'static str>,
}

impl AuthRejection {
    /// 401: no credentials.
    pub(crate) fn missing() -> Self {
        AuthRejection {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthenticated",
            message: "authentication required",
            bearer_error: None,
        }
    }

    /// 401: credentials present but not acceptable.
    pub(crate) fn invalid() -> Self {
        AuthRejection {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthenticated",
            message: "invalid or expired access token",
            bearer_error: Some("invalid_token"),
        }
    }

    /// 401: credentials in a form this layer does not accept (e.g. `DPoP`).
    pub(crate) fn unsupported() -> Self {
        AuthRejection {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthenticated",
            message: "unsupported authorization scheme",
            bearer_error: Some("invalid_request"),
        }
    }

    /// 403: a cookie-authenticated unsafe request without same-origin evidence.
    pub(crate) fn csrf() -> Self {
        AuthRejection {
            status: StatusCode::FORBIDDEN,
            code: "csrf_failed",
            message: "cross-site request refused",
            bearer_error: None,
        }
    }

    /// 503: the keys could not be fetched yet.
    pub(crate) fn unavailable() -> Self {
        AuthRejection {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "unavailable",
            message: "token verification keys unavailable, try again",
            bearer_error: None,
        }
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable error code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.code, "message": self.message});
        let mut res = (self.status, axum::Json(body)).into_response();
        let headers = res.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            let value = match self.bearer_error {
                Some("invalid_token") => {
                    HeaderValue::from_static(r#"Bearer error="invalid_token""#)
                }
                Some(_) => HeaderValue::from_static(r#"Bearer error="invalid_request""#),
                None => HeaderValue::from_static("Bearer"),
            };
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
    }
}
