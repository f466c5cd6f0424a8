//! The gateway: static files and public paths without authentication, everything else
//! authenticated and proxied (streaming) to the upstream API with identity headers.
//!
//! Header hygiene: request headers whose names have characters other than letters, digits
//! and `-` are dropped (CGI-style upstreams would merge `X-Tessera_Roles` with
//! `X-Tessera-Roles`); inbound `X-Tessera-*` and other identity-looking headers, and
//! rewrite headers (`X-Original-URL` …) are removed before anything is added; forwarding
//! headers are kept from `trusted_proxies` only, and tessera writes its own
//! `X-Forwarded-For`, `-Proto` and `-Host` (`public_origin`'s); hop-by-hop headers and
//! those named in `Connection` are dropped both ways; tessera's cookies never reach the
//! upstream, and the upstream cannot set them. Public paths must be plain ASCII after one
//! decoding step ([`public_path_is_plain`]); `CONNECT` and `TRACE` are refused
//! ([`refused_method`]).

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;

use crate::auth::signatures::signed_request;
use crate::auth::{self};
use crate::config::Config;
use crate::handlers::assets;
use crate::http::error::AppError;
use crate::http::middleware::StaticAnswer;
use crate::http::peer::PeerAddr;
use crate::state::AppState;
use crate::upstream::headers::{Caller, SIGNATURE_INPUT};
use crate::upstream::proxy;

/// Why a path was refused: dot segments, encoded separators, empty segments or `;`
/// parameters could make the path mean one thing here and another upstream.
pub(crate) fn path_is_canonical(path: &str) -> bool {
    let b = path.as_bytes();
    if b.first() != Some(&b'/') {
        return false;
    }
    // One pass over the bytes (this runs on every proxied request; the `str` searches it
    // replaced cost ten times as much on a short path). `seg` is where the current
    // segment starts.
    let mut seg = 1;
    for (i, &c) in b.iter().enumerate().skip(1) {
        match c {
            b';' | b'\\' => return false,
            b'/' => {
                // An empty segment (`//`), or a dot segment, before this separator.
                if matches!(&b[seg..i], b"" | b"." | b"..") {
                    return false;
                }
                seg = i + 1;
            }
            // Encoded dots, separators and NUL, in either case.
            b'%' => {
                if let Some(&[x, y]) = b.get(i + 1..i + 3) {
                    if matches!(
                        [x, y.to_ascii_lowercase()],
                        [b'2', b'e'] | [b'2', b'f'] | [b'5', b'c'] | [b'0', b'0']
                    ) {
                        return false;
                    }
                }
            }
            _ => {}
        }
    }
    // The last segment may be empty (a trailing `/`), not a dot segment.
    !matches!(&b[seg..], b"." | b"..")
}

/// The stricter rule for public paths, which reach the upstream without any check: after
/// one percent-decoding step the path must be printable ASCII with no `%` and no `;`. So
/// `%25` (a second decoding step would make `%252e%252e` into `..`), `%3B` (upstreams that
/// cut `;` parameters would make `..%3b` into `..`), encoded control bytes, and every
/// non-ASCII byte, raw or encoded (NFKC maps U+FF0E, U+2024 and U+FE52 to `.`, U+2025 to
/// `..`, U+FF0F to `/`, U+FF3C and U+FE68 to `\`; best-fit code-page conversions map
/// U+2215 and U+2044 to `/`) are refused, so that no further decoding or normalisation
/// upstream can turn the path into one outside its public prefix.
/// [`path_is_canonical`] has already refused dot segments, `;`, `\` and encoded `.`, `/`,
/// `\` and NUL.
pub(crate) fn public_path_is_plain(path: &str) -> bool {
    let b = path.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let Some(&[x, y]) = b.get(i + 1..i + 3) else {
                return false;
            };
            let (Some(hi), Some(lo)) = (hex(x), hex(y)) else {
                return false;
            };
            let decoded = hi << 4 | lo;
            if !(0x20..0x7f).contains(&decoded) || decoded == b'%' || decoded == b';' {
                return false;
            }
            i += 3;
        } else {
            if !(0x21..0x7f).contains(&c) || c == b';' {
                return false;
            }
            i += 1;
        }
    }
    true
}

fn hex(c: u8) -> Option<u8> {
    char::from(c)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

fn is_public(config: &Config, path: &str) -> bool {
    config.public_paths.iter().any(|p| {
        path.starts_with(p.as_str())
            && (p.ends_with('/') || path.len() == p.len() || path.as_bytes()[p.len()] == b'/')
    })
}

/// True if `path` names a regular file under `dir` (directories map to `index.html`).
async fn static_exists(dir: &std::path::Path, path: &str) -> bool {
    let mut file: PathBuf = dir.join(path.trim_start_matches('/'));
    if path.ends_with('/') {
        file = file.join("index.html");
    }
    tokio::fs::metadata(&file).await.is_ok_and(|m| m.is_file())
}

async fn serve_static(state: &AppState, dir: &std::path::Path, req: Request) -> Response {
    let mut res = match tower_http::services::ServeDir::new(dir).oneshot(req).await {
        Ok(r) => r.map(Body::new),
        Err(e) => match e {},
    };
    let csp = &state.config.static_csp;
    if !csp.is_empty() {
        // Validated at start-up; should it not parse, the strict default stays.
        if let Ok(v) = HeaderValue::from_str(csp) {
            res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
        }
        if !res.headers().contains_key(header::CONTENT_SECURITY_POLICY) {
            return res;
        }
    }
    res.extensions_mut().insert(StaticAnswer);
    res
}

/// True when `h` describes a browser navigation (a document load): `Sec-Fetch-Mode:
/// navigate`, `Sec-Fetch-Dest: document`, or an `Accept` naming `text/html` with a weight
/// above 0 (RFC 9110 §12.5.1; a media range `*/*` does not count: `fetch()` sends that by
/// default).
fn is_navigation(h: &HeaderMap) -> bool {
    let is = |name: &str, want: &str| {
        h.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.trim().eq_ignore_ascii_case(want))
        })
    };
    is("sec-fetch-mode", "navigate")
        || is("sec-fetch-dest", "document")
        || h.get_all(header::ACCEPT).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',').any(|range| {
                    let mut parts = range.split(';');
                    parts
                        .next()
                        .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/html"))
                        && !parts.any(|p| {
                            p.split_once('=').is_some_and(|(k, q)| {
                                k.trim().eq_ignore_ascii_case("q")
                                    && q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
                            })
                        })
                })
            })
        })
}

/// Whether a `GET`/`HEAD` for `path` that named no static file gets `spa_fallback`: a
/// navigation, to a path whose last segment has no dot (a missing `/assets/app.js` stays a
/// miss), outside tessera's reserved prefixes, `public_paths` and `api_prefixes`.
fn wants_spa_fallback(config: &Config, path: &str, h: &HeaderMap) -> bool {
    let last = path.rsplit('/').next().unwrap_or("");
    !last.contains('.')
        && !path.starts_with("/auth/")
        && !path.starts_with("/.well-known/")
        && !crate::is_own_route(path)
        && !is_public(config, path)
        && !config.api_prefixes.iter().any(|p| {
            path.starts_with(p.as_str())
                && (p.ends_with('/') || path.len() == p.len() || path.as_bytes()[p.len()] == b'/')
        })
        && is_navigation(h)
}

/// `spa_fallback` answered for `req` (its path rewritten to the file's), `no-cache` so a
/// new build is picked up, `Vary` on what made it a navigation.
async fn serve_spa_fallback(
    state: &AppState,
    dir: &std::path::Path,
    file: &std::path::Path,
    mut req: Request,
) -> Response {
    let target = format!("/{}", file.to_string_lossy().trim_start_matches('/'));
    match target.parse::<Uri>() {
        Ok(uri) => *req.uri_mut() = uri,
        Err(_) => return AppError::not_found().into_response(),
    }
    let mut res = serve_static(state, dir, req).await;
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.append(
        header::VARY,
        HeaderValue::from_static("Accept, Sec-Fetch-Mode, Sec-Fetch-Dest"),
    );
    res
}

/// The gateway for a request from `peer`: static files, then the upstream. [`crate::App`]
/// calls it with the peer from the connection (no request extension to allocate).
pub(crate) async fn gateway(
    state: Arc<AppState>,
    req: Request,
    peer: Option<PeerAddr>,
) -> Result<Response, AppError> {
    let path = req.uri().path();
    if !path_is_canonical(path) {
        return Err(AppError::invalid_request("non-canonical path"));
    }
    if req.method() == Method::GET || req.method() == Method::HEAD {
        if let Some(dir) = &state.config.static_dir {
            if static_exists(dir, path).await {
                return Ok(serve_static(&state, dir, req).await);
            }
            if let Some(file) = &state.config.spa_fallback {
                if wants_spa_fallback(&state.config, path, req.headers()) {
                    return Ok(serve_spa_fallback(&state, dir, file, req).await);
                }
            }
        } else if state.demo_assets {
            if let Some(res) = assets::demo(path) {
                return Ok(res);
            }
        }
    }
    route_upstream(state, req, peer).await
}

async fn route_upstream(
    state: Arc<AppState>,
    req: Request,
    peer: Option<PeerAddr>,
) -> Result<Response, AppError> {
    let Some(upstream) = &state.upstream else {
        return Err(AppError::not_found());
    };
    if is_public(&state.config, req.uri().path()) {
        if !public_path_is_plain(req.uri().path()) {
            return Err(AppError::invalid_request(
                "public paths must be printable ASCII after one percent-decoding, without % or ;",
            ));
        }
        return proxy(&state, upstream, req, Caller::Anonymous, peer).await;
    }
    let h = req.headers();
    if !h.contains_key(header::AUTHORIZATION) && h.contains_key(&SIGNATURE_INPUT) {
        let (req, client) = signed_request(&state, req).await?;
        return proxy(&state, upstream, req, Caller::Client(&client), peer).await;
    }
    let identity =
        auth::authenticate(&state, req.method(), req.uri().path(), req.headers()).await?;
    proxy(&state, upstream, req, Caller::User(&identity), peer).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderName;

    #[test]
    fn canonical_paths() {
        for ok in ["/", "/api/notes", "/api/notes/1", "/a.b/c"] {
            assert!(path_is_canonical(ok), "{ok}");
        }
        for bad in [
            "/api/../admin",
            "/api/./x",
            "//evil",
            "/api/%2e%2e/admin",
            "/api%2fadmin",
            "/a;jsessionid=1",
            "/a\\b",
            "api",
        ] {
            assert!(!path_is_canonical(bad), "{bad}");
        }
    }

    /// The byte loop refuses exactly what the `str` version it replaced refused.
    #[test]
    fn canonical_paths_match_the_str_reference() {
        fn reference(path: &str) -> bool {
            if !path.starts_with('/')
                || path.contains("//")
                || path.contains(';')
                || path.contains('\\')
            {
                return false;
            }
            let encoded_special = path.as_bytes().windows(3).any(|w| {
                w[0] == b'%'
                    && matches!(
                        [w[1], w[2].to_ascii_lowercase()],
                        [b'2', b'e'] | [b'2', b'f'] | [b'5', b'c'] | [b'0', b'0']
                    )
            });
            !encoded_special && !path.split('/').any(|seg| seg == "." || seg == "..")
        }
        let alphabet = [
            "/", ".", "%", "2", "e", "E", "f", "F", "5", "c", "C", "0", ";", "\\", "a", "..", "é",
        ];
        let mut seed = 11u64;
        for _ in 0..200_000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = (seed >> 60) as usize;
            // Mostly absolute, so the rest of the rules get exercised.
            let mut path = String::from(if seed & 15 == 0 { "" } else { "/" });
            for k in 0..len {
                let r = seed.rotate_left(5 * k as u32 + 3) >> 58;
                path.push_str(alphabet[r as usize % alphabet.len()]);
            }
            assert_eq!(path_is_canonical(&path), reference(&path), "{path:?}");
        }
    }

    #[test]
    fn public_paths_must_be_plain_ascii_after_one_decoding() {
        for ok in [
            "/public/",
            "/public/a-b_c.txt",
            "/public/my%20file",
            "/p/%41%7e",
        ] {
            assert!(public_path_is_plain(ok), "{ok}");
        }
        for bad in [
            "/public/..%3b/x",
            "/public/..%3B/x",
            "/public/%252e%252e/x",
            "/public/%25",
            "/public/%",
            "/public/%2",
            "/public/%zz",
            "/public/%0a",
            "/public/%7F",
            "/public/%EF%BC%8E%EF%BC%8E%EF%BC%8Fx",
            "/public/%e2%80%a4",
            "/public/\u{FF0E}\u{FF0E}\u{FF0F}x",
            "/public/\u{2215}",
            "/public/;x",
        ] {
            assert!(!public_path_is_plain(bad), "{bad}");
        }
        // Every encoded byte: allowed exactly when printable ASCII other than `%` and `;`.
        for b in 0..=255u8 {
            for path in [format!("/p/%{b:02x}"), format!("/p/%{b:02X}")] {
                let want = (0x20..0x7f).contains(&b) && b != b'%' && b != b';';
                assert_eq!(public_path_is_plain(&path), want, "{path}");
            }
        }
    }

    #[test]
    fn navigations_are_told_from_api_calls() {
        let nav = |headers: &[(&str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in headers {
                h.append(
                    HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                );
            }
            super::is_navigation(&h)
        };
        assert!(nav(&[(
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        )]));
        assert!(nav(&[("accept", "application/json, TEXT/HTML ; q=0.5")]));
        assert!(nav(&[("sec-fetch-mode", "navigate")]));
        assert!(nav(&[("sec-fetch-dest", "document")]));
        assert!(nav(&[
            ("accept", "application/json"),
            ("accept", "text/html")
        ]));
        assert!(!nav(&[]));
        assert!(!nav(&[("accept", "*/*")]));
        assert!(!nav(&[("accept", "text/*")]));
        assert!(!nav(&[("accept", "application/json")]));
        assert!(!nav(&[("accept", "text/html;q=0, application/json")]));
        assert!(!nav(&[("accept", "text/html; q=0.000")]));
        assert!(!nav(&[("accept", "text/htmlx")]));
        assert!(!nav(&[
            ("sec-fetch-mode", "cors"),
            ("sec-fetch-dest", "empty")
        ]));
    }
}
/// The pre-body checks of [`signed_request`], in process: every refusal that the headers
/// can decide is made without the body being polled once.
#[cfg(test)]
mod signed_body_tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::config::Config;

    use crate::startup::StateParts;
    use axum::response::IntoResponse;
    use tessera_core::httpsig;

    const ORIGIN: &str = "https://gw.test";

    /// A request body that records whether it was ever polled; it yields `chunks` of
    /// `size` bytes each and then, if `stall`, never ends.
    struct Probe {
        polled: Arc<AtomicBool>,
        chunks: usize,
        size: usize,
        stall: bool,
    }

    impl http_body::Body for Probe {
        type Data = axum::body::Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
            let me = self.get_mut();
            me.polled.store(true, Ordering::SeqCst);
            if me.chunks > 0 {
                me.chunks -= 1;
                let data = axum::body::Bytes::from(vec![b'x'; me.size]);
                return std::task::Poll::Ready(Some(Ok(http_body::Frame::data(data))));
            }
            if me.stall {
                std::task::Poll::Pending
            } else {
                std::task::Poll::Ready(None)
            }
        }
        fn is_end_stream(&self) -> bool {
            false
        }
    }

    struct Fixture {
        state: Arc<AppState>,
        keyid: String,
        secret: Vec<u8>,
        upstream_hits: Arc<AtomicUsize>,
        db: std::path::PathBuf,
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            for ext in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{ext}", self.db.display()));
            }
        }
    }

    async fn fixture(edit: impl FnOnce(&mut Config)) -> Fixture {
        // An upstream that answers 200 with the number of body bytes it got.
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&hits);
        let api = axum::Router::new().fallback(move |body: axum::body::Bytes| {
            let counted = Arc::clone(&counted);
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                body.len().to_string()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api_addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, api).await });

        let mut config = Config::default();
        config.passwords.m_cost = 8192;
        config.passwords.t_cost = 1;
        config.passwords.workers = 1;
        config.limits.max_body_bytes = 4096;
        config.signatures.max_buffered_bytes = 8192;
        config.signatures.body_timeout = Duration::from_millis(300);
        edit(&mut config);
        let hex: String = tessera_core::random_bytes::<8>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let db = std::env::temp_dir().join(format!("tessera-gw-{hex}.db"));
        let store = tessera_store::open(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        let master = tessera_core::MasterKey::from_bytes([9; 32]);
        let now = tessera_core::Clock::now(&tessera_core::SystemClock);
        let (stored, secret) = crate::auth::clients::add(store.as_ref(), &master, "svc", now)
            .await
            .unwrap();
        let state = AppState::build(StateParts {
            config,
            public_origin: ORIGIN.to_owned(),
            store,
            master,
            clock: Arc::new(tessera_core::SystemClock),
            upstream: Some(format!("http://{api_addr}")),
            demo_assets: false,
            tls: true,
        })
        .await
        .unwrap();
        Fixture {
            state,
            keyid: stored.key_id,
            secret: tessera_core::b64::decode(&secret).unwrap(),
            upstream_hits: hits,
            db,
        }
    }

    impl Fixture {
        /// A POST to `/api/x` signed with `secret` under `keyid`, covering `digest`.
        fn request(
            &self,
            keyid: &str,
            secret: &[u8],
            digest: Option<&str>,
            created: u64,
            content_length: Option<usize>,
            body: Body,
        ) -> Request {
            let nonce = tessera_core::b64::encode(tessera_core::random_bytes::<12>());
            let (input, sig) = httpsig::sign(
                "POST",
                &format!("{ORIGIN}/api/x"),
                digest,
                keyid,
                &nonce,
                created,
                secret,
            )
            .unwrap();
            let mut b = axum::http::Request::builder()
                .method("POST")
                .uri("/api/x")
                .header("signature-input", input)
                .header("signature", sig);
            if let Some(d) = digest {
                b = b.header("content-digest", d);
            }
            if let Some(n) = content_length {
                b = b.header("content-length", n);
            }
            b.body(body).unwrap()
        }

        fn now(&self) -> u64 {
            self.state.clock.now().0
        }

        async fn send(&self, req: Request) -> (u16, serde_json::Value, HeaderMap) {
            let res = match gateway(Arc::clone(&self.state), req, None).await {
                Ok(r) => r,
                Err(e) => e.into_response(),
            };
            let status = res.status().as_u16();
            let headers = res.headers().clone();
            let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
                .await
                .unwrap();
            let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
            (status, json, headers)
        }
    }

    fn probe(chunks: usize, size: usize, stall: bool) -> (Body, Arc<AtomicBool>) {
        let polled = Arc::new(AtomicBool::new(false));
        let body = Body::new(Probe {
            polled: Arc::clone(&polled),
            chunks,
            size,
            stall,
        });
        (body, polled)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refusals_decided_by_the_headers_never_read_the_body() {
        let f = fixture(|_| {}).await;
        let digest = httpsig::content_digest(&[b'x'; 1000]);
        let now = f.now();
        let wrong = [0x33u8; 32];
        let cases: Vec<(&str, Request, u16, &str)> = vec![
            (
                "unknown key id",
                f.request(
                    "nobody",
                    &wrong,
                    Some(&digest),
                    now,
                    Some(1000),
                    probe(1, 1000, false).0,
                ),
                401,
                "unauthenticated",
            ),
            (
                "known key id, wrong secret",
                f.request(
                    &f.keyid,
                    &wrong,
                    Some(&digest),
                    now,
                    Some(1000),
                    probe(1, 1000, false).0,
                ),
                401,
                "unauthenticated",
            ),
            (
                "created outside the window",
                f.request(
                    &f.keyid,
                    &f.secret,
                    Some(&digest),
                    now - 600,
                    Some(1000),
                    probe(1, 1000, false).0,
                ),
                401,
                "unauthenticated",
            ),
            (
                "a declared body the signature does not cover",
                f.request(
                    &f.keyid,
                    &f.secret,
                    None,
                    now,
                    Some(1000),
                    probe(1, 1000, false).0,
                ),
                401,
                "unauthenticated",
            ),
            (
                "Content-Length over limits.max_body_bytes",
                f.request(
                    &f.keyid,
                    &f.secret,
                    Some(&digest),
                    now,
                    Some(4097),
                    probe(1, 1000, false).0,
                ),
                413,
                "payload_too_large",
            ),
        ];
        for (what, req, status, code) in cases {
            // Swap in a body whose polling we can see (the builder took the first one).
            let (parts, _) = req.into_parts();
            let (body, polled) = probe(1, 1000, false);
            let (got, json, _) = f.send(Request::from_parts(parts, body)).await;
            assert_eq!(
                (got, json["error"].as_str()),
                (status, Some(code)),
                "{what}: {json}"
            );
            assert!(!polled.load(Ordering::SeqCst), "{what}: the body was read");
        }
        // A malformed Signature-Input.
        let (body, polled) = probe(1, 1000, false);
        let req = axum::http::Request::builder()
            .method("POST")
            .uri("/api/x")
            .header("signature-input", "sig1=(")
            .header("signature", "sig1=:AAAA:")
            .header("content-length", 1000)
            .body(body)
            .unwrap();
        let (got, _, _) = f.send(req).await;
        assert_eq!(got, 401);
        assert!(
            !polled.load(Ordering::SeqCst),
            "malformed fields: the body was read"
        );

        // A replayed nonce: the first use goes through, the copy is refused unread.
        let body = vec![b'x'; 1000];
        let req = f.request(
            &f.keyid,
            &f.secret,
            Some(&digest),
            now,
            Some(1000),
            Body::from(body),
        );
        let (parts, first_body) = req.into_parts();
        let copy = Request::from_parts(parts.clone(), probe(1, 1000, false).0);
        let (got, _, _) = f.send(Request::from_parts(parts, first_body)).await;
        assert_eq!(got, 200);
        let (copy_parts, _) = copy.into_parts();
        let (body, polled) = probe(1, 1000, false);
        let (got, json, _) = f.send(Request::from_parts(copy_parts, body)).await;
        assert_eq!(
            (got, json["error"].as_str()),
            (401, Some("unauthenticated"))
        );
        assert!(!polled.load(Ordering::SeqCst), "replay: the body was read");
        assert_eq!(f.upstream_hits.load(Ordering::SeqCst), 1);
        // Every reservation was given back.
        assert_eq!(f.state.sig_body_bytes.available_permits(), 8192);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn buffered_bytes_are_capped_and_slow_bodies_time_out() {
        let f = fixture(|_| {}).await;
        let now = f.now();
        let digest = httpsig::content_digest(&[b'x'; 4096]);
        // Two stalled bodies of 4096 declared bytes hold the node's 8192 bytes...
        let mut held = Vec::new();
        for _ in 0..2 {
            let (body, _) = probe(1, 100, true);
            let req = f.request(&f.keyid, &f.secret, Some(&digest), now, Some(4096), body);
            let state = Arc::clone(&f.state);
            held.push(tokio::spawn(async move {
                let started = std::time::Instant::now();
                let res = match gateway(state, req, None).await {
                    Ok(r) => r,
                    Err(e) => e.into_response(),
                };
                (res.status().as_u16(), started.elapsed())
            }));
        }
        let waited = std::time::Instant::now();
        while f.state.sig_body_bytes.available_permits() > 0 {
            assert!(
                waited.elapsed() < Duration::from_secs(2),
                "bodies never reserved"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // ...so a third verified request is refused at once, its body unread.
        let (body, polled) = probe(1, 10, false);
        let req = f.request(&f.keyid, &f.secret, Some(&digest), now, Some(10), body);
        let (got, json, headers) = f.send(req).await;
        assert_eq!(
            (got, json["error"].as_str()),
            (503, Some("overloaded")),
            "{json}"
        );
        assert!(headers.contains_key(header::RETRY_AFTER));
        assert!(!polled.load(Ordering::SeqCst));
        // The stalled ones end with 408 after signatures.body_timeout (300 ms).
        for h in held {
            let (status, took) = h.await.unwrap();
            assert_eq!(status, 408);
            assert!(
                took >= Duration::from_millis(300) && took < Duration::from_secs(3),
                "{took:?}"
            );
        }
        assert_eq!(f.state.sig_body_bytes.available_permits(), 8192);
        // With room again, a whole body of unknown length (no Content-Length) goes
        // through: it reserves limits.max_body_bytes while it is read.
        let body = vec![b'x'; 3000];
        let digest = httpsig::content_digest(&body);
        let (b, _) = probe(3, 1000, false);
        let req = f.request(&f.keyid, &f.secret, Some(&digest), now, None, b);
        let (got, json, _) = f.send(req).await;
        assert_eq!(got, 200, "{json}");
        assert_eq!(json, serde_json::json!(3000));
        // Over the limit without a Content-Length: 413 once the limit is passed.
        let (b, _) = probe(5, 1000, false);
        let req = f.request(&f.keyid, &f.secret, Some(&digest), now, None, b);
        let (got, json, _) = f.send(req).await;
        assert_eq!(
            (got, json["error"].as_str()),
            (413, Some("payload_too_large"))
        );
        assert_eq!(f.state.sig_body_bytes.available_permits(), 8192);
    }

    /// The buffer cap must hold one whole body, fit the semaphore's u32 reservations, and
    /// the body deadline be sane.
    #[test]
    fn signature_limits_are_validated() {
        let key = |edit: fn(&mut Config)| {
            let mut c = Config::default();
            edit(&mut c);
            c.validate().err().map(|e| e.key)
        };
        assert_eq!(key(|_| {}), None);
        assert_eq!(
            key(|c| c.signatures.max_buffered_bytes = c.limits.max_body_bytes - 1),
            Some("signatures.max_buffered_bytes".to_owned())
        );
        assert_eq!(
            key(|c| c.signatures.max_buffered_bytes = 1 << 33),
            Some("signatures.max_buffered_bytes".to_owned())
        );
        assert_eq!(
            key(|c| c.signatures.max_buffered_bytes = c.limits.max_body_bytes),
            None
        );
        assert_eq!(
            key(|c| c.signatures.body_timeout = Duration::from_millis(99)),
            Some("signatures.body_timeout".to_owned())
        );
        assert_eq!(
            key(|c| c.signatures.body_timeout = Duration::from_secs(601)),
            Some("signatures.body_timeout".to_owned())
        );
    }
}
