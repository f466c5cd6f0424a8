//! One error type for every response tessera makes itself: a stable code, a generic
//! message, the right status. Internal detail goes to the log, never to the client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::http::cookies;

/// The machine-readable `error` of every answer tessera makes itself: API, listed in
/// docs/http-api.md ("Errors") and docs/openapi.json, so a code is added, never renamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorCode {
    /// 400: malformed or contradictory input (also RFC 6749 §5.2's `invalid_request`).
    InvalidRequest,
    /// 401: no valid credentials.
    Unauthenticated,
    /// 401: wrong username or password (the same for unknown users).
    InvalidCredentials,
    /// 401: a refresh token was used twice; the session has been ended.
    RefreshTokenReused,
    /// 401: the DPoP proof is missing, malformed, stale, replayed or for another key.
    InvalidDpopProof,
    /// 403: the CSRF rules refused a cookie-authenticated request.
    CsrfFailed,
    /// 404.
    NotFound,
    /// 405, with `Allow`.
    MethodNotAllowed,
    /// 408: the request body stopped arriving.
    RequestTimeout,
    /// 413.
    PayloadTooLarge,
    /// 414.
    UriTooLong,
    /// 415: a JSON endpoint got something other than `application/json`.
    UnsupportedMediaType,
    /// 429, with `Retry-After`.
    RateLimited,
    /// 431.
    HeadersTooLarge,
    /// 502: the upstream did not answer (well).
    BadGateway,
    /// 503: too much work at once (logins, buffered signed bodies), with `Retry-After`.
    Overloaded,
    /// 503: the store (or a signing key) is not available, with `Retry-After`.
    Unavailable,
    /// 503: one of tessera's own endpoints took longer than `limits.request_timeout`.
    Timeout,
    /// 504: the upstream took longer than `limits.upstream_timeout`.
    GatewayTimeout,
    /// RFC 6749 §5.2: bad credentials or refresh token at the token endpoint.
    InvalidGrant,
    /// RFC 6749 §5.2: a grant type the token endpoint does not take.
    UnsupportedGrantType,
}

impl ErrorCode {
    /// Every code, for the test that holds them to the docs.
    #[cfg(test)]
    const ALL: [ErrorCode; 21] = [
        ErrorCode::InvalidRequest,
        ErrorCode::Unauthenticated,
        ErrorCode::InvalidCredentials,
        ErrorCode::RefreshTokenReused,
        ErrorCode::InvalidDpopProof,
        ErrorCode::CsrfFailed,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::RequestTimeout,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UriTooLong,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::RateLimited,
        ErrorCode::HeadersTooLarge,
        ErrorCode::BadGateway,
        ErrorCode::Overloaded,
        ErrorCode::Unavailable,
        ErrorCode::Timeout,
        ErrorCode::GatewayTimeout,
        ErrorCode::InvalidGrant,
        ErrorCode::UnsupportedGrantType,
    ];

    /// The code as the client sees it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::InvalidCredentials => "invalid_credentials",
            ErrorCode::RefreshTokenReused => "refresh_token_reused",
            ErrorCode::InvalidDpopProof => "invalid_dpop_proof",
            ErrorCode::CsrfFailed => "csrf_failed",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UriTooLong => "uri_too_long",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::HeadersTooLarge => "headers_too_large",
            ErrorCode::BadGateway => "bad_gateway",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Timeout => "timeout",
            ErrorCode::GatewayTimeout => "gateway_timeout",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
        }
    }
}

/// Marks a response that a store failure caused; the middleware counts it in
/// `store_errors` (once per request, whichever handler failed).
#[derive(Debug, Clone, Copy)]
pub(crate) struct StoreFailure;

/// An error answer: `{"error": code, "message": text}` (or the RFC 6749 shape).
#[derive(Debug, Clone)]
pub struct AppError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    store_failure: bool,
    retry_after: Option<u64>,
    clear_cookies: bool,
    oauth: bool,
    www_authenticate: Option<&'static str>,
    allow: Option<&'static str>,
}

impl AppError {
    /// An error with this status, code and message.
    pub(crate) fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        AppError {
            status,
            code,
            message: message.into(),
            store_failure: false,
            retry_after: None,
            clear_cookies: false,
            oauth: false,
            www_authenticate: None,
            allow: None,
        }
    }

    /// 400 `invalid_request`.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, message)
    }
    /// 401 `unauthenticated`.
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthenticated,
            "valid credentials are required",
        )
    }
    /// 401 `invalid_credentials` (the same for unknown users and wrong passwords).
    pub fn invalid_credentials() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidCredentials,
            "wrong username or password",
        )
    }
    /// 401 `refresh_token_reused`: the session has been revoked.
    pub fn refresh_token_reused() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::RefreshTokenReused,
            "this refresh token was already used; the session has been ended",
        )
        .clearing_cookies()
    }
    /// 403 `csrf_failed`.
    pub fn csrf_failed(message: &'static str) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::CsrfFailed, message)
    }
    /// 404 `not_found`.
    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no such resource",
        )
    }
    /// 405 `method_not_allowed`.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::MethodNotAllowed,
            "method not allowed here",
        )
    }
    /// 413 `payload_too_large`.
    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            "request body too large",
        )
    }
    /// 408 `request_timeout`: the request body stopped arriving.
    pub fn request_timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            ErrorCode::RequestTimeout,
            "the request body stopped arriving",
        )
    }
    /// 415 `unsupported_media_type` (JSON endpoints refuse forms and text/plain).
    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "send application/json",
        )
    }
    /// 429 `rate_limited`.
    pub fn rate_limited(retry_after: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            "too many attempts; try again later",
        )
        .retry_after(retry_after)
    }
    /// 503 `overloaded`.
    pub fn overloaded() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Overloaded,
            "too many logins at once; try again shortly",
        )
        .retry_after(1)
    }
    /// 503 `unavailable`: no signing key is in effect (a store edited by hand, or every
    /// key retired). Logged as what it is; not a store failure.
    pub(crate) fn no_signing_key() -> Self {
        tracing::error!("no active signing key: tokens cannot be issued");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            "temporarily unavailable; try again shortly",
        )
        .retry_after(5)
    }
    /// 502 `bad_gateway`.
    pub fn bad_gateway() -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            ErrorCode::BadGateway,
            "the upstream API did not answer",
        )
    }
    /// 504 `gateway_timeout`.
    pub fn gateway_timeout() -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::GatewayTimeout,
            "the upstream API took too long",
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
    pub(crate) fn oauth(mut self, code: ErrorCode) -> Self {
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
    pub(crate) fn code(&self) -> ErrorCode {
        self.code
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let body = if self.oauth {
            serde_json::json!({"error": self.code.as_str(), "error_description": self.message})
        } else {
            serde_json::json!({"error": self.code.as_str(), "message": self.message})
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
        if self.store_failure {
            res.extensions_mut().insert(StoreFailure);
        }
        res
    }
}

/// A store failure on a request's path: logged here, once, with its detail (never shown
/// to the client), and counted once by the middleware ([`StoreFailure`]); the client
/// gets 503 `unavailable` with `Retry-After`.
impl From<tessera_store::StoreError> for AppError {
    fn from(e: tessera_store::StoreError) -> Self {
        match &e {
            tessera_store::StoreError::Unavailable(_) => {
                tracing::warn!(error = %e, "store unavailable")
            }
            _ => tracing::error!(error = %e, "store failed"),
        }
        let mut err = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            "temporarily unavailable; try again shortly",
        )
        .retry_after(5);
        err.store_failure = true;
        err
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code is named in the HTTP API page, and the OpenAPI description's `Error`
    /// schema lists exactly these codes, so neither can lose or invent one.
    #[test]
    fn every_code_is_documented() {
        let page = include_str!("../../../../docs/http-api.md");
        let openapi: serde_json::Value =
            serde_json::from_str(include_str!("../../../../docs/openapi.json")).unwrap();
        let listed = |schema: &str| -> Vec<String> {
            openapi["components"]["schemas"][schema]["properties"]["error"]["enum"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect()
        };
        let ours: Vec<String> = ErrorCode::ALL
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect();
        for code in &ours {
            let quoted = format!("`{code}`");
            assert!(page.contains(&quoted), "docs/http-api.md lacks {quoted}");
        }
        assert_eq!(listed("Error"), ours);
        assert_eq!(listed("OAuthError"), ours);
    }

    #[tokio::test]
    async fn a_store_failure_is_503_unavailable_and_marked_for_the_metric() {
        let e = AppError::from(tessera_store::StoreError::Unavailable("down".into()));
        assert_eq!(e.code(), ErrorCode::Unavailable);
        let res = e.into_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[header::RETRY_AFTER], "5");
        assert!(res.extensions().get::<StoreFailure>().is_some());
        let body = axum::body::to_bytes(res.into_body(), 1024).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"], "unavailable");
        assert!(
            !v["message"].as_str().unwrap().contains("down"),
            "detail leaked"
        );
    }
}
