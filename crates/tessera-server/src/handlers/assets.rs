//! Files built into the binary: `tessera.js` (always at `/tessera.js`) and the demo SPA.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

/// The browser client library.
pub(crate) const TESSERA_JS: &str = include_str!("../../../../web/tessera.js");
/// The OpenAPI 3.1 description of every endpoint (hand-kept; a black-box test checks it
/// against real responses).
pub(crate) const OPENAPI_JSON: &str = include_str!("../../../../docs/openapi.json");
/// Its TypeScript declarations.
pub(crate) const TESSERA_DTS: &str = include_str!("../../../../web/tessera.d.ts");
const INDEX_HTML: &str = include_str!("../../../../web/demo/index.html");
const APP_JS: &str = include_str!("../../../../web/demo/app.js");
const STYLE_CSS: &str = include_str!("../../../../web/demo/style.css");

/// The demo SPA's Content-Security-Policy: nothing inline, nothing foreign.
pub(crate) const DEMO_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

fn file(body: &'static str, content_type: &'static str) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(DEMO_CSP),
    );
    res
}

/// `GET /tessera.js`.
pub(crate) async fn tessera_js() -> Response {
    file(TESSERA_JS, "text/javascript; charset=utf-8")
}

/// `GET /openapi.json`.
pub(crate) async fn openapi() -> Response {
    let mut res = OPENAPI_JSON.into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// `GET /tessera.d.ts`.
pub(crate) async fn tessera_dts() -> Response {
    file(TESSERA_DTS, "application/typescript; charset=utf-8")
}

/// The demo SPA's files, by path.
pub(crate) fn demo(path: &str) -> Option<Response> {
    match path {
        "/" | "/index.html" => Some(file(INDEX_HTML, "text/html; charset=utf-8")),
        "/app.js" => Some(file(APP_JS, "text/javascript; charset=utf-8")),
        "/style.css" => Some(file(STYLE_CSS, "text/css; charset=utf-8")),
        _ => None,
    }
}
