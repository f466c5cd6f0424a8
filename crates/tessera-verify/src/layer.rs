//! The tower layer: find the credential, verify it, put the [`Identity`] in the request.
//!
//! Credentials, in order:
//! 1. `Authorization: Bearer <token>`. If an `Authorization` header is present it alone
//!    decides; any other scheme (`DPoP`, `Basic`, …) is refused.
//! 2. Tessera's cookies: split (`__Host-tessera-claims` + `__Host-tessera-sig`) or whole
//!    (`__Host-tessera-access`). Cookie-authenticated requests whose method is not GET,
//!    HEAD or OPTIONS must show they are same-origin: `Sec-Fetch-Site` (if sent) must be
//!    `same-origin`, `Origin` (if sent) must be an allowed origin, and at least one of
//!    the two must be sent; otherwise 403 `csrf_failed`. This is weaker than tessera's
//!    own CSRF check (its `X-CSRF-Token` MAC needs tessera's secret), so prefer Bearer
//!    tokens, or [`TesseraVerifyLayer::without_cookies`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http::{header, HeaderMap, Method, Request};
use axum::response::{IntoResponse, Response};
use tessera_core::{TokenError, TokenParts, MAX_TOKEN_LEN};
use tower::{Layer, Service};

use crate::identity::AuthRejection;
use crate::jwks::VerifyError;
use crate::{Identity, Jwks};

/// Tessera's split-mode payload cookie.
pub const CLAIMS_COOKIE: &str = "__Host-tessera-claims";
/// Tessera's split-mode `header.signature` cookie.
pub const SIG_COOKIE: &str = "__Host-tessera-sig";
/// Tessera's whole-mode cookie.
pub const ACCESS_COOKIE: &str = "__Host-tessera-access";

/// Verifies tessera access tokens on every request (see the module docs for where the
/// token is looked for). Invalid or missing credentials get 401
/// `{"error":"unauthenticated"}` with `WWW-Authenticate: Bearer`; valid ones put an
/// [`Identity`] in the request extensions.
#[derive(Debug, Clone)]
pub struct TesseraVerifyLayer {
    config: Config,
}

#[derive(Debug, Clone)]
struct Config {
    jwks: Jwks,
    optional: bool,
    cookies: bool,
    allowed_origins: Vec<String>,
}

impl TesseraVerifyLayer {
    /// A layer verifying with `jwks`. Defaults: credentials required, cookies accepted,
    /// the allowed origin for cookie-authenticated unsafe requests is the issuer.
    pub fn new(jwks: Jwks) -> Self {
        let issuer = jwks.issuer().trim_end_matches('/').to_owned();
        TesseraVerifyLayer {
            config: Config {
                jwks,
                optional: false,
                cookies: true,
                allowed_origins: vec![issuer],
            },
        }
    }

    /// Lets requests without any credential through without an [`Identity`] (handlers
    /// use [`crate::OptionalIdentity`]). Bad credentials are still refused.
    pub fn optional(mut self) -> Self {
        self.config.optional = true;
        self
    }

    /// Ignores tessera's cookies: only `Authorization: Bearer` counts.
    pub fn without_cookies(mut self) -> Self {
        self.config.cookies = false;
        self
    }

    /// Adds an origin allowed to make cookie-authenticated unsafe requests (exact
    /// `scheme://host[:port]`, e.g. this API's own origin).
    pub fn allow_origin(mut self, origin: &str) -> Self {
        self.config
            .allowed_origins
            .push(origin.trim_end_matches('/').to_owned());
        self
    }
}

impl<S> Layer<S> for TesseraVerifyLayer {
    type Service = TesseraVerify<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TesseraVerify {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service made by [`TesseraVerifyLayer`].
#[derive(Debug, Clone)]
pub struct TesseraVerify<S> {
    inner: S,
    config: Config,
}

impl<S, B> Service<Request<B>> for TesseraVerify<S>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // The clone that was driven to readiness serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = self.config.clone();
        Box::pin(async move {
            match authenticate(&config, req.method(), req.headers()).await {
                Ok(Some(identity)) => {
                    req.extensions_mut().insert(identity);
                }
                Ok(None) => {}
                Err(rejection) => return Ok(rejection.into_response()),
            }
            inner.call(req).await
        })
    }
}

/// A credential as found in the request, not yet verified.
enum Credential {
    Bearer(String),
    Cookie(String),
    SplitCookies { claims: String, sig: String },
}

async fn authenticate(
    config: &Config,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Option<Identity>, AuthRejection> {
    let credential = match find_credential(headers, config.cookies)? {
        Some(c) => c,
        None if config.optional => return Ok(None),
        None => return Err(AuthRejection::missing()),
    };
    let result = match &credential {
        Credential::Bearer(token) => config.jwks.verify_token(token).await,
        Credential::Cookie(token) => {
            check_same_origin(method, headers, &config.allowed_origins)?;
            config.jwks.verify_token(token).await
        }
        Credential::SplitCookies { claims, sig } => {
            check_same_origin(method, headers, &config.allowed_origins)?;
            match TokenParts::from_split(claims, sig) {
                Ok(parts) => config.jwks.verify_parts(parts).await,
                Err(e) => Err(e.into()),
            }
        }
    };
    match result {
        Ok(identity) => Ok(Some(identity)),
        Err(VerifyError::KeysUnavailable) => {
            tracing::warn!("token refused: no JWKS keys available");
            Err(AuthRejection::unavailable())
        }
        Err(e) => {
            tracing::debug!(error = %e, "token refused");
            Err(AuthRejection::invalid())
        }
    }
}

fn find_credential(
    headers: &HeaderMap,
    cookies: bool,
) -> Result<Option<Credential>, AuthRejection> {
    let mut auth = headers.get_all(header::AUTHORIZATION).iter();
    if let Some(value) = auth.next() {
        if auth.next().is_some() {
            return Err(AuthRejection::invalid());
        }
        let value = value.to_str().map_err(|_| AuthRejection::invalid())?;
        let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthRejection::unsupported());
        }
        let token = token.trim();
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(AuthRejection::invalid());
        }
        return Ok(Some(Credential::Bearer(token.to_owned())));
    }
    if !cookies {
        return Ok(None);
    }
    let (mut claims, mut sig, mut access) = (None, None, None);
    for value in headers.get_all(header::COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for pair in value.split(';') {
            let Some((name, v)) = pair.trim().split_once('=') else {
                continue;
            };
            let slot = match name {
                CLAIMS_COOKIE => &mut claims,
                SIG_COOKIE => &mut sig,
                ACCESS_COOKIE => &mut access,
                _ => continue,
            };
            if slot.is_some() {
                // The same cookie twice: which one is meant is ambiguous.
                return Err(AuthRejection::invalid());
            }
            if v.len() > MAX_TOKEN_LEN {
                return Err(AuthRejection::invalid());
            }
            *slot = Some(v.to_owned());
        }
    }
    Ok(match (claims, sig, access) {
        (Some(claims), Some(sig), _) => Some(Credential::SplitCookies { claims, sig }),
        (_, _, Some(token)) => Some(Credential::Cookie(token)),
        (None, None, None) => None,
        // Half a split token.
        _ => return Err(AuthRejection::invalid()),
    })
}

fn check_same_origin(
    method: &Method,
    headers: &HeaderMap,
    allowed: &[String],
) -> Result<(), AuthRejection> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let site = headers.get("sec-fetch-site").map(|v| v.as_bytes());
    let origin = headers.get(header::ORIGIN).map(|v| v.as_bytes());
    if site.is_some_and(|s| s != b"same-origin") {
        return Err(AuthRejection::csrf());
    }
    if origin.is_some_and(|o| !allowed.iter().any(|a| a.as_bytes() == o)) {
        return Err(AuthRejection::csrf());
    }
    if site.is_none() && origin.is_none() {
        return Err(AuthRejection::csrf());
    }
    Ok(())
}

impl From<TokenError> for AuthRejection {
    fn from(_: TokenError) -> Self {
        AuthRejection::invalid()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn authorization_wins_and_only_bearer() {
        let h = headers(&[
            ("authorization", "Bearer abc"),
            ("cookie", "__Host-tessera-access=x"),
        ]);
        assert!(matches!(find_credential(&h, true), Ok(Some(Credential::Bearer(t))) if t == "abc"));
        let h = headers(&[("authorization", "DPoP abc")]);
        assert!(find_credential(&h, true).is_err());
        let h = headers(&[("authorization", "Bearer ")]);
        assert!(find_credential(&h, true).is_err());
    }

    #[test]
    fn split_cookies() {
        let h = headers(&[(
            "cookie",
            "a=b; __Host-tessera-claims=p; __Host-tessera-sig=h.s",
        )]);
        assert!(matches!(
            find_credential(&h, true),
            Ok(Some(Credential::SplitCookies { claims, sig })) if claims == "p" && sig == "h.s"
        ));
        assert!(matches!(find_credential(&h, false), Ok(None)));
        let half = headers(&[("cookie", "__Host-tessera-claims=p")]);
        assert!(find_credential(&half, true).is_err());
        let twice = headers(&[
            ("cookie", "__Host-tessera-access=a"),
            ("cookie", "__Host-tessera-access=b"),
        ]);
        assert!(find_credential(&twice, true).is_err());
    }

    #[test]
    fn cookie_csrf_rules() {
        let allowed = vec!["https://app.example".to_owned()];
        let ok = headers(&[
            ("origin", "https://app.example"),
            ("sec-fetch-site", "same-origin"),
        ]);
        assert!(check_same_origin(&Method::POST, &ok, &allowed).is_ok());
        let cross = headers(&[("origin", "https://evil.example")]);
        assert!(check_same_origin(&Method::POST, &cross, &allowed).is_err());
        let site = headers(&[("sec-fetch-site", "same-site")]);
        assert!(check_same_origin(&Method::POST, &site, &allowed).is_err());
        assert!(check_same_origin(&Method::POST, &HeaderMap::new(), &allowed).is_err());
        assert!(check_same_origin(&Method::GET, &cross, &allowed).is_ok());
    }
}
