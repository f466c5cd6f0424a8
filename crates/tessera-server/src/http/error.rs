//! One error type for every response tessera makes itself: a stable code, a generic
//! message, the right status. Internal detail goes to the log, never to the client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::http::cookies;

/// An error answer: `{"error": code, "message": text}` (or the RFC 6749 shape).
#[derive(Debug, Clone)]
pub struct AppError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
    clear_cookies: bool,
    oauth: bool,
    www_authenticate: Option<&'static str>,
    allow: Option<&'static str>,
}

impl AppError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        AppError {
            status,
            code,
            message: message.into(),
            retry_after: None,
            clear_cookies: false,
            oauth: false,
            www_authenticate: None,
            allow: None,
        }
    }

    /// 400 `invalid_request`.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }
    /// 401 `unauthenticated`.
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "valid credentials are required",
        )
    }
    /// 401 `invalid_credentials` (the same for unknown users and wrong passwords).
    pub fn invalid_credentials() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "wrong username or password",
        )
    }
    /// 401 `refresh_token_reused`: the session has been revoked.
    pub fn refresh_token_reused() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "refresh_token_reused",
            "this refresh token was already used; the session has been ended",
        )
        .clearing_cookies()
    }
    /// 403 `csrf_failed`.
    pub fn csrf_failed(message: &'static str) -> Self {
        Self::new(StatusCode::FORBIDDEN, "csrf_failed", message)
    }
    /// 404 `not_found`.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
    }
    /// 405 `method_not_allowed`.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed here",
        )
    }
    /// 413 `payload_too_large`.
    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body too large",
        )
    }
    /// 408 `request_timeout`: the request body stopped arriving.
    pub fn request_timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request body stopped arriving",
        )
    }
    /// 415 `unsupported_media_type` (JSON endpoints refuse forms and text/plain).
    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send application/json",
        )
    }
    /// 429 `rate_limited`.
    pub fn rate_limited(retry_after: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many attempts; try again later",
        )
        .retry_after(retry_after)
    }
    /// 503 `overloaded`.
    pub fn overloaded() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too many logins at once; try again shortly",
        )
        .retry_after(1)
    }
    /// 503 `unavailable` (the store is down). The detail is logged, not shown.
    pub fn unavailable(detail: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %detail, "store unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "temporarily unavailable; try again shortly",
        )
        .retry_after(5)
    }
    /// 502 `bad_gateway`.
    pub fn bad_gateway() -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            "bad_gateway",
            "the upstream API did not answer",
        )
    }
    /// 504 `gateway_timeout`.
    pub fn gateway_timeout() -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "gateway_timeout",
            "the upstream API took too long",
        )
    }
    /// 500 `internal`: logged with detail; the client sees nothing specific.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }

    /// Adds `Retry-After`.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs.max(1));
        self
    }
    /// Also clears every tessera cookie.
    pub fn clearing_cookies(mut self) -> Self {
        self.clear_cookies = true;
        self
    }
    /// Uses the RFC 6749 §5.2 shape `{error, error_description}` with this OAuth code.
    pub fn oauth(mut self, code: &'static str) -> Self {
        self.oauth = true;
        self.code = code;
        self
    }
    /// The `Allow` header of a 405 (RFC 9110 §15.5.6): the methods the target supports.
    pub fn allow(mut self, methods: &'static str) -> Self {
        self.allow = Some(methods);
        self
    }
    /// Adds a `WWW-Authenticate` challenge.
    pub fn challenge(mut self, value: &'static str) -> Self {
        self.www_authenticate = Some(value);
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
    /// The code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let body = if self.oauth {
            serde_json::json!({"error": self.code, "error_description": self.message})
        } else {
            serde_json::json!({"error": self.code, "message": self.message})
        };
        let mut res = (self.status, axum::Json(body)).into_response();
        let h = res.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(secs) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                h.insert(header::RETRY_AFTER, v);
            }
        }
        if let Some(c) = self.www_authenticate {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
        }
        if let Some(a) = self.allow {
            h.insert(header::ALLOW, HeaderValue::from_static(a));
        }
        if self.clear_cookies {
            cookies::append_clear_all(h);
        }
        res
    }
}
