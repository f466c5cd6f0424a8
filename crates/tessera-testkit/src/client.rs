//! An HTTPS client for one tessera server: trusts its self-signed certificate, follows no
//! redirects, and keeps cookies in an explicit [`Jar`] (no automatic cookie store).

use std::path::Path;
use std::sync::Once;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, COOKIE};
use reqwest::Method;
use serde_json::Value;

use crate::jar::{Jar, SetCookie};
use crate::{b64url_decode_json, cookie_names};

static PROVIDER: Once = Once::new();

/// Installs rustls' ring crypto provider as the process default (once).
pub fn install_crypto_provider() {
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Builds the reqwest client trusting only the PEM certificate at `cert_pem`.
pub fn http_client(cert_pem: &Path) -> reqwest::Client {
    install_crypto_provider();
    let pem = std::fs::read(cert_pem).expect("read the server's TLS certificate");
    let cert = reqwest::Certificate::from_pem(&pem).expect("parse the server's TLS certificate");
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(cert)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build the HTTP client")
}

/// [`http_client`] speaking HTTP/2 only (ALPN `h2`): every request to one server shares
/// one connection, as streams.
pub fn http2_client(cert_pem: &Path) -> reqwest::Client {
    install_crypto_provider();
    let pem = std::fs::read(cert_pem).expect("read the server's TLS certificate");
    let cert = reqwest::Certificate::from_pem(&pem).expect("parse the server's TLS certificate");
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(cert)
        .http2_prior_knowledge()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build the HTTP/2 client")
}

/// A browser-like client of one server: a base URL, an origin and a cookie jar.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    origin: String,
    /// The cookies this client holds.
    pub jar: Jar,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("jar", &self.jar.names())
            .finish()
    }
}

impl Client {
    /// A client for `base` (e.g. `https://127.0.0.1:1234`) with an empty jar.
    pub fn new(http: reqwest::Client, base: &str) -> Self {
        let base = base.trim_end_matches('/').to_owned();
        Client {
            http,
            origin: base.clone(),
            base,
            jar: Jar::new(),
        }
    }

    /// Another client of the same server with `jar` (e.g. cookies kept aside earlier).
    pub fn with_jar(&self, jar: Jar) -> Client {
        Client {
            http: self.http.clone(),
            base: self.base.clone(),
            origin: self.origin.clone(),
            jar,
        }
    }

    /// Another client of the same server with an empty jar.
    pub fn fresh(&self) -> Client {
        self.with_jar(Jar::new())
    }

    /// The origin sent by [`Req::same_origin`]: the server's own (`https://127.0.0.1:<port>`,
    /// the default `public_origin`) unless changed with [`Client::set_origin`].
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Sets the origin the SPA runs on (when `public_origin` is configured, e.g. several
    /// nodes behind one name).
    pub fn set_origin(&mut self, origin: &str) {
        origin.trim_end_matches('/').clone_into(&mut self.origin);
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The underlying reqwest client (no cookie store, no redirects).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A request; `path` may include a query.
    pub fn request(&mut self, method: Method, path: &str) -> Req<'_> {
        Req {
            client: self,
            method,
            path: path.to_owned(),
            headers: Vec::new(),
            body: None,
            send_jar: true,
            explicit_cookie: false,
        }
    }

    /// `GET path`.
    pub fn get(&mut self, path: &str) -> Req<'_> {
        self.request(Method::GET, path)
    }

    /// `POST path`.
    pub fn post(&mut self, path: &str) -> Req<'_> {
        self.request(Method::POST, path)
    }

    /// `POST /auth/login` as the SPA would (same-origin JSON).
    pub async fn login(&mut self, username: &str, password: &str) -> Resp {
        self.post("/auth/login")
            .same_origin()
            .json(&serde_json::json!({"username": username, "password": password}))
            .send()
            .await
    }

    /// Logs in and panics unless it answers 200.
    pub async fn login_ok(&mut self, username: &str, password: &str) -> Resp {
        let res = self.login(username, password).await;
        assert_eq!(
            res.status,
            200,
            "login as {username} failed: {}",
            res.text()
        );
        res
    }

    /// The CSRF token (value of `__Host-tessera-csrf`).
    pub fn csrf(&self) -> Option<String> {
        self.jar.value(cookie_names::CSRF)
    }

    /// The refresh token (value of `__Secure-tessera-refresh`).
    pub fn refresh_token(&self) -> Option<String> {
        self.jar.value(cookie_names::REFRESH)
    }

    /// The access token: the whole-mode cookie, or the split cookies reassembled as
    /// `header.payload.signature`.
    pub fn access_token(&self) -> Option<String> {
        if let Some(t) = self.jar.value(cookie_names::ACCESS) {
            return Some(t);
        }
        let payload = self.jar.value(cookie_names::CLAIMS)?;
        let sig = self.jar.value(cookie_names::SIG)?;
        let (header, signature) = sig.split_once('.')?;
        Some(format!("{header}.{payload}.{signature}"))
    }

    /// The access token's decoded claims.
    pub fn claims(&self) -> Option<Value> {
        let token = self.access_token()?;
        b64url_decode_json(token.split('.').nth(1)?)
    }

    /// The access token's decoded JOSE header.
    pub fn token_header(&self) -> Option<Value> {
        let token = self.access_token()?;
        b64url_decode_json(token.split('.').next()?)
    }

    /// The `kid` of the access token's header.
    pub fn kid(&self) -> Option<String> {
        self.token_header()?.get("kid")?.as_str().map(str::to_owned)
    }

    /// `POST /auth/refresh` with the refresh cookie and the CSRF header, same-origin.
    pub async fn refresh(&mut self) -> Resp {
        self.post("/auth/refresh").with_csrf().send().await
    }
}

/// A request being built. Cookies from the jar are sent unless an explicit `Cookie` header
/// is given or [`Req::no_cookies`] is called; `Set-Cookie` in the answer goes into the jar.
#[must_use]
pub struct Req<'a> {
    client: &'a mut Client,
    method: Method,
    path: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Option<Vec<u8>>,
    send_jar: bool,
    explicit_cookie: bool,
}

impl Req<'_> {
    /// Adds a header (appended: giving a name twice sends it twice).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("valid header name");
        let value = HeaderValue::from_bytes(value.as_bytes()).expect("valid header value");
        if name == COOKIE {
            self.explicit_cookie = true;
        }
        self.headers.push((name, value));
        self
    }

    /// Sends a hand-made `Cookie` header instead of the jar's (call twice for two headers).
    pub fn cookie_header(self, value: &str) -> Self {
        self.header("cookie", value)
    }

    /// Sends no cookies from the jar.
    pub fn no_cookies(mut self) -> Self {
        self.send_jar = false;
        self
    }

    /// `Origin: <server origin>` and `Sec-Fetch-Site: same-origin`, as a browser's
    /// same-origin fetch.
    pub fn same_origin(self) -> Self {
        let origin = self.client.origin.clone();
        self.header("origin", &origin)
            .header("sec-fetch-site", "same-origin")
    }

    /// [`Req::same_origin`] plus `X-CSRF-Token` from the jar's CSRF cookie.
    pub fn with_csrf(self) -> Self {
        let token = self.client.csrf().expect("no CSRF cookie in the jar");
        self.same_origin().header("x-csrf-token", &token)
    }

    /// `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// A JSON body (`Content-Type: application/json`).
    pub fn json(self, value: &Value) -> Self {
        let bytes = serde_json::to_vec(value).expect("serialize JSON");
        self.body("application/json", bytes)
    }

    /// A body with this content type.
    pub fn body(mut self, content_type: &str, bytes: impl Into<Vec<u8>>) -> Self {
        self = self.header(CONTENT_TYPE.as_str(), content_type);
        self.body = Some(bytes.into());
        self
    }

    /// A body without a `Content-Type`.
    pub fn raw_body(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.body = Some(bytes.into());
        self
    }

    /// Sends it; panics on a transport error.
    pub async fn send(self) -> Resp {
        let what = format!("{} {}", self.method, self.path);
        match self.try_send().await {
            Ok(r) => r,
            Err(e) => panic!("{what}: transport error: {e:?}"),
        }
    }

    /// Sends it.
    pub async fn try_send(self) -> Result<Resp, reqwest::Error> {
        let url = format!("{}{}", self.client.base, self.path);
        let mut rb = self.client.http.request(self.method.clone(), &url);
        if self.send_jar && !self.explicit_cookie {
            if let Some(c) = self.client.jar.cookie_header(&self.path) {
                rb = rb.header(COOKIE, c);
            }
        }
        for (k, v) in self.headers {
            rb = rb.header(k, v);
        }
        if let Some(body) = self.body {
            rb = rb.body(body);
        }
        let res = rb.send().await?;
        let status = res.status().as_u16();
        let version = res.version();
        let headers = res.headers().clone();
        let body = res.bytes().await?.to_vec();
        let path_only = self.path.split(['?', '#']).next().unwrap_or("/").to_owned();
        let set_cookies = self.client.jar.store_response(&headers, &path_only);
        Ok(Resp {
            status,
            version,
            headers,
            body,
            set_cookies,
        })
    }
}

/// A finished response.
#[derive(Debug, Clone)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// HTTP version.
    pub version: reqwest::Version,
    /// Headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Vec<u8>,
    /// Its `Set-Cookie` headers, parsed.
    pub set_cookies: Vec<SetCookie>,
}

impl Resp {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics (showing the body) if it is not.
    pub fn json(&self) -> Value {
        match serde_json::from_slice(&self.body) {
            Ok(v) => v,
            Err(e) => panic!(
                "status {}: body is not JSON ({e}): {:?}",
                self.status,
                self.text()
            ),
        }
    }

    /// A header's value (the first), as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// Every value of a header.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect()
    }

    /// The `Set-Cookie` for `name` in this response.
    pub fn set_cookie(&self, name: &str) -> Option<&SetCookie> {
        self.set_cookies.iter().find(|c| c.name == name)
    }

    /// True if the `Content-Type` is JSON.
    pub fn is_json(&self) -> bool {
        self.header("content-type").is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|e| e.trim().eq_ignore_ascii_case("application/json"))
        })
    }

    /// Asserts the status and an error body `{"error": code, "message": <string>}` with a
    /// JSON content type; returns the body.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) -> Value {
        assert_eq!(
            self.status,
            status,
            "expected {status} {code}, got {}: {}",
            self.status,
            self.text()
        );
        assert_error_shape(self);
        let v = self.json();
        assert_eq!(v["error"], code, "error code: {v}");
        v
    }
}

/// Asserts that a response is a JSON error `{"error": <string>, "message": <string>}` and
/// nothing else.
#[track_caller]
pub fn assert_error_shape(res: &Resp) {
    assert!(
        res.is_json(),
        "error response not JSON (content-type {:?}): {}",
        res.header("content-type"),
        res.text()
    );
    let v = res.json();
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("error body not an object: {v}"));
    assert!(
        obj.get("error").is_some_and(Value::is_string),
        "no string `error`: {v}"
    );
    assert!(
        obj.get("message").is_some_and(Value::is_string),
        "no string `message`: {v}"
    );
}
