//! The HTTP/1.1 client for requests without a body, tessera's hot proxy path (most API
//! reads). Requests with a body go through hyper's pooled client instead.
//!
//! Why not hyper-util's client for these too: it drives every connection from its own
//! task and hands each request and response across channels, so every proxied request
//! pays two task switches and the pool's bookkeeping. Here the request's own task writes
//! the request and reads the answer on a connection taken from a plain LIFO pool, and a
//! small answer (the whole body already read) gives the connection back before the
//! response is even returned. `bench/run` and BENCHMARKS.md hold the measurement; with
//! hyper-util's client for bodiless requests too, `bench/instructions` counted 67 583
//! user-space instructions per proxied request, against 36 754 with this one.
//!
//! Framing is strict, because a connection that is reused after a misread answer would
//! hand one user's response to the next request (response splitting):
//! - the head is parsed by `httparse`, bounded in size and header count;
//! - interim `1xx` answers are skipped, `101` is refused (tessera never asks to upgrade);
//! - `HEAD`, `204` and `304` answers have no body;
//! - `Transfer-Encoding` must be exactly `chunked` and must not come with
//!   `Content-Length`; several `Content-Length` values must agree and be digits only;
//! - chunk sizes are at most 16 hex digits, chunk lines and trailers are bounded, CRLFs
//!   are required where the grammar has them;
//! - an answer without framing is read to the end of the connection, which is then
//!   closed; so is one with `Connection: close`, HTTP/1.0, or anything after its end.
//!
//! Hop-by-hop fields (RFC 9110 §7.6.1) and those the answer's `Connection` lists are not
//! handed on.
//!
//! A connection goes back to the pool only when its answer ended exactly where its
//! framing said: every path checks that nothing is left in the read buffer (the whole
//! body read with the head, a streamed `Content-Length` or chunked body, a `HEAD`, `204`
//! or `304` answer). Bytes that arrive later, while the connection is idle, are caught
//! when it is taken again: a non-blocking `recv(MSG_PEEK)` (`is_quiet`) asks the
//! kernel, and any byte, end of stream or error drops the connection (as nginx and
//! hyper's client do). tokio's `try_read` would not do: it answers `WouldBlock` without
//! a system call unless the runtime's I/O driver has already recorded readiness, which
//! under steady traffic it often has not, and the stray bytes would be read as the next
//! request's answer, another user's. Bytes sent after the probe, while the request is on
//! its way, cannot be told from its answer (HTTP/1.1 has no request ids).
//!
//! Held by `tests/upstream_client.rs` (`bytes_after_a_*`,
//! `stray_bytes_under_steady_traffic_*`, `connection_closed_while_idle_*`),
//! `crates/tessera/tests/app/upstream_desync.rs` (tessera in process, two users, a hostile
//! upstream) and the fuzz target `upstream_response` ([`fuzz_parse`]).
//!
//! Idempotent requests that meet a pooled connection the upstream had already closed are
//! retried on a fresh one (as nginx does); others get a 502.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response head read from the upstream.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most header fields in one response head.
const MAX_HEADERS: usize = 128;
/// Longest chunk-size line, extensions included.
const MAX_CHUNK_LINE: usize = 4096;
/// Most trailer bytes after the last chunk (read and dropped).
const MAX_TRAILER_BYTES: usize = 16 * 1024;
/// Read size.
const READ_CHUNK: usize = 16 * 1024;
/// Bodies up to this size are copied out of the read buffer rather than split off it.
const COPY_BELOW: usize = 4096;
/// Pooled connections tried for one request before a fresh one is opened.
const MAX_STALE_RETRIES: usize = 2;

/// Why an exchange with the upstream failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The connection could not be opened.
    #[error("cannot connect to the upstream: {0}")]
    Connect(std::io::Error),
    /// Writing the request or reading the answer failed.
    #[error("upstream i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The connection ended before any byte of an answer.
    #[error("the upstream closed the connection without answering")]
    Closed,
    /// The answer broke HTTP/1.1's framing rules.
    #[error("invalid answer from the upstream: {0}")]
    Invalid(&'static str),
}

impl UpstreamError {
    /// Nothing of an answer arrived, so an idempotent request may be sent again.
    fn before_answer(&self) -> bool {
        matches!(self, UpstreamError::Closed)
            || matches!(self, UpstreamError::Io(e) if matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionAborted
            ))
    }
}

struct Conn {
    io: TcpStream,
    /// Bytes read and not yet consumed; empty whenever the connection is pooled.
    buf: BytesMut,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

struct Inner {
    /// `host:port`, resolved at each connect.
    addr: String,
    /// The `Host` header sent upstream.
    host: HeaderValue,
    idle: Mutex<Vec<Idle>>,
    max_idle: usize,
    idle_timeout: Duration,
    connect_timeout: Duration,
}

/// A pool of keep-alive HTTP/1.1 connections to one upstream.
#[derive(Clone)]
pub struct Http1 {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Http1 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http1")
            .field("addr", &self.inner.addr)
            .finish_non_exhaustive()
    }
}

/// The head of a request without a body, written as its headers are chosen.
pub struct RequestHead(Vec<u8>);

impl RequestHead {
    /// Adds a header field. Framing is this client's to say (the request has no body), so
    /// `Content-Length`, `Transfer-Encoding` and `Host` are skipped; `HeaderValue` cannot
    /// hold CR or LF, and `HeaderName` is a token.
    pub fn header(&mut self, name: &HeaderName, value: &HeaderValue) {
        self.write(name, std::iter::once(value.as_bytes()));
    }

    /// Adds a header field whose value is `parts` joined with `,`, written straight from
    /// text (no `HeaderValue` made). Refused, and `false` returned, if any byte is a
    /// control character other than tab (`HeaderValue`'s own rule), so no text can end
    /// the field early.
    pub fn text<'a>(
        &mut self,
        name: &HeaderName,
        parts: impl IntoIterator<Item = &'a str, IntoIter: Clone>,
    ) -> bool {
        let parts = parts.into_iter();
        let ok = parts.clone().all(|p| {
            p.bytes()
                .fold(true, |ok, b| ok & (b == b'\t' || (b >= 0x20 && b != 0x7f)))
        });
        if ok {
            self.write(name, parts);
        }
        ok
    }

    fn write<T: AsRef<[u8]>>(&mut self, name: &HeaderName, parts: impl Iterator<Item = T>) {
        if name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
            || name == header::HOST
        {
            return;
        }
        self.0.extend_from_slice(name.as_str().as_bytes());
        self.0.extend_from_slice(b": ");
        for (i, part) in parts.enumerate() {
            if i > 0 {
                self.0.push(b',');
            }
            self.0.extend_from_slice(part.as_ref());
        }
        self.0.extend_from_slice(b"\r\n");
    }

    fn finish(mut self, method: &Method) -> Vec<u8> {
        // Methods whose requests normally carry content say there is none (as hyper does).
        if matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
            self.0.extend_from_slice(b"content-length: 0\r\n");
        }
        self.0.extend_from_slice(b"\r\n");
        self.0
    }
}

fn is_idempotent(m: &Method) -> bool {
    // RFC 9110 §9.2.2.
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

impl Http1 {
    /// A pool for `host:port`, sending `host` as the `Host` header.
    pub fn new(
        addr: String,
        host: HeaderValue,
        max_idle: usize,
        idle_timeout: Duration,
        connect_timeout: Duration,
    ) -> Self {
        Http1 {
            inner: Arc::new(Inner {
                addr,
                host,
                idle: Mutex::new(Vec::new()),
                max_idle,
                idle_timeout,
                connect_timeout,
            }),
        }
    }

    /// Starts the head of a request without a body for `target` (origin form).
    pub fn head(&self, method: &Method, target: &str, headers: usize) -> RequestHead {
        let mut out = Vec::with_capacity(256 + target.len() + headers * 48);
        out.extend_from_slice(method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        out.extend_from_slice(self.inner.host.as_bytes());
        out.extend_from_slice(b"\r\n");
        RequestHead(out)
    }

    /// Sends a request without a body and reads the answer's head. `now` is the time the
    /// request started (read once by the caller, which also bounds the exchange with it);
    /// it ages pooled connections and stamps the one this exchange gives back.
    pub async fn send(
        &self,
        method: &Method,
        head: RequestHead,
        now: Instant,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let head = head.finish(method);
        let mut stale = 0;
        loop {
            let pooled = if stale < MAX_STALE_RETRIES {
                self.checkout(now)
            } else {
                None
            };
            let (mut conn, reused) = match pooled {
                Some(c) => (c, true),
                None => (self.connect().await?, false),
            };
            match exchange(&mut conn, &head, *method == Method::HEAD).await {
                Ok(answer) => return Ok(self.respond(conn, answer, now)),
                Err(e) if reused && is_idempotent(method) && e.before_answer() => stale += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// The most recently used idle connection still open, if any.
    fn checkout(&self, now: Instant) -> Option<Conn> {
        loop {
            let idle = {
                let mut pool = self.inner.idle.lock().ok()?;
                pool.pop()?
            };
            if now.saturating_duration_since(idle.since) > self.inner.idle_timeout {
                // The rest are older still.
                if let Ok(mut pool) = self.inner.idle.lock() {
                    pool.clear();
                }
                return None;
            }
            if is_quiet(&idle.conn.io) {
                return Some(idle.conn);
            }
            // Closed, failed or sent something unasked while idle: dropped (closed).
        }
    }

    fn checkin(&self, conn: Conn, since: Instant) {
        debug_assert!(conn.buf.is_empty());
        if let Ok(mut pool) = self.inner.idle.lock() {
            if pool.len() < self.inner.max_idle {
                pool.push(Idle { conn, since });
            }
        }
    }

    async fn connect(&self) -> Result<Conn, UpstreamError> {
        let io = tokio::time::timeout(
            self.inner.connect_timeout,
            TcpStream::connect(self.inner.addr.as_str()),
        )
        .await
        .map_err(|_| {
            UpstreamError::Connect(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connect timed out",
            ))
        })?
        .map_err(UpstreamError::Connect)?;
        io.set_nodelay(true).map_err(UpstreamError::Connect)?;
        Ok(Conn {
            io,
            buf: BytesMut::with_capacity(READ_CHUNK),
        })
    }

    fn respond(&self, mut conn: Conn, answer: Answer, now: Instant) -> Response<UpstreamBody> {
        let Answer {
            status,
            headers,
            framing,
            keep_alive,
        } = answer;
        let body = match framing {
            Framing::None => {
                self.release(conn, keep_alive, now);
                UpstreamBody::Full(None)
            }
            Framing::Length(n) if conn.buf.len() as u64 >= n => {
                // The whole body is here already (small answers): the connection goes
                // back before the response is handed on. `n` fits: it is ≤ buf.len().
                // A small body is copied out so the read buffer stays the connection's
                // own and is reused, rather than reallocated for every answer.
                let n = n as usize;
                let data = if n <= COPY_BELOW {
                    let data = Bytes::copy_from_slice(&conn.buf[..n]);
                    conn.buf.advance(n);
                    data
                } else {
                    conn.buf.split_to(n).freeze()
                };
                self.release(conn, keep_alive, now);
                UpstreamBody::Full((!data.is_empty()).then_some(data))
            }
            framing => UpstreamBody::Streaming(Box::new(Streaming {
                conn: Some(conn),
                pool: keep_alive.then(|| self.clone()),
                since: now,
                state: match framing {
                    Framing::Length(n) => State::Length(n),
                    Framing::Chunked => State::Chunked(Chunk::Size),
                    _ => State::Eof,
                },
                ready: VecDeque::new(),
            })),
        };
        let mut res = Response::new(body);
        *res.status_mut() = status;
        *res.headers_mut() = headers;
        res
    }

    /// Pools `conn` if its answer ended exactly at the end of what was read.
    fn release(&self, conn: Conn, keep_alive: bool, since: Instant) {
        if keep_alive && conn.buf.is_empty() {
            self.checkin(conn, since);
        }
    }
}

/// True if an idle connection has nothing to read: no byte, no EOF, no error.
///
/// Asks the kernel (`recv` with `MSG_PEEK` on the non-blocking socket), one system call
/// per reuse, which costs no more than the `try_read` it replaced (bench/log/).
/// tokio's `try_read` is no substitute: it answers `WouldBlock` without a system call
/// unless the runtime's I/O driver has already recorded readiness, which under steady
/// traffic it often has not, so stray bytes would be read as the next request's answer.
fn is_quiet(io: &TcpStream) -> bool {
    let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); 1];
    matches!(
        socket2::SockRef::from(io).peek(&mut probe),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
    )
}

/// How the answer's body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Until the upstream closes the connection.
    Close,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    framing: Framing,
    keep_alive: bool,
}

async fn exchange(conn: &mut Conn, head: &[u8], is_head: bool) -> Result<Answer, UpstreamError> {
    conn.io.write_all(head).await?;
    let mut received = false;
    // Head bytes read so far, interim answers included: bounded as a whole.
    let mut skipped = 0usize;
    loop {
        if !conn.buf.is_empty() {
            received = true;
            if let Some(answer) = take_head(&mut conn.buf, is_head, &mut skipped)? {
                return Ok(answer);
            }
        }
        conn.buf.reserve(READ_CHUNK);
        if conn.io.read_buf(&mut conn.buf).await? == 0 {
            return Err(if received {
                UpstreamError::Invalid("connection closed within the response head")
            } else {
                UpstreamError::Closed
            });
        }
    }
}

/// Takes the final answer's head off `buf`, skipping interim answers; `None` until the
/// whole head is there. `skipped` counts the interim bytes taken so far: the head bound
/// covers them too.
fn take_head(
    buf: &mut BytesMut,
    is_head: bool,
    skipped: &mut usize,
) -> Result<Option<Answer>, UpstreamError> {
    while !buf.is_empty() {
        let parsed = parse_head(buf, is_head)?;
        let size = match parsed {
            Parsed::Partial => buf.len(),
            Parsed::Interim(n) | Parsed::Done(n, _) => n,
        };
        if *skipped + size > MAX_HEAD_BYTES {
            return Err(UpstreamError::Invalid("response head too large"));
        }
        match parsed {
            Parsed::Partial => return Ok(None),
            Parsed::Interim(n) => {
                *skipped += n;
                buf.advance(n);
            }
            Parsed::Done(n, answer) => {
                buf.advance(n);
                return Ok(Some(answer));
            }
        }
    }
    Ok(None)
}

enum Parsed {
    Partial,
    /// A `1xx` answer of this many bytes, to skip.
    Interim(usize),
    Done(usize, Answer),
}

fn parse_head(buf: &[u8], is_head: bool) -> Result<Parsed, UpstreamError> {
    // Slots left uninitialised: httparse writes the ones it fills, and zeroing all 128
    // (4 KiB) for every answer showed in the instruction count (bench/log/).
    let mut slots =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut []);
    let n = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut res, buf, &mut slots)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(UpstreamError::Invalid("too many response headers"))
        }
        Err(_) => return Err(UpstreamError::Invalid("malformed response head")),
    };
    let code = res.code.unwrap_or(0);
    let status =
        StatusCode::from_u16(code).map_err(|_| UpstreamError::Invalid("bad status code"))?;
    if code == 101 {
        return Err(UpstreamError::Invalid("unrequested protocol switch"));
    }
    if status.is_informational() {
        return Ok(Parsed::Interim(n));
    }
    // Room for the security headers added on the way out, so the map never regrows.
    let mut headers = HeaderMap::with_capacity(res.headers.len() + 8);
    // One copy of the head that every value shares, rather than one allocation per value.
    let shared = Bytes::copy_from_slice(&buf[..n]);
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut close = res.version != Some(1);
    // The `Connection` values, for the names they list (hop-by-hop for this message).
    let mut connection: [&[u8]; 4] = [b""; 4];
    let mut connections = 0;
    for h in res.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            *connection
                .get_mut(connections)
                .ok_or(UpstreamError::Invalid("too many connection headers"))? = h.value;
            connections += 1;
        }
    }
    let listed = |name: &str| {
        connection[..connections].iter().any(|v| {
            v.split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(name.as_bytes()))
        })
    };
    for h in res.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| UpstreamError::Invalid("bad header name"))?;
        if name == header::CONTENT_LENGTH {
            for part in h.value.split(|&b| b == b',') {
                let n = parse_length(part.trim_ascii())
                    .ok_or(UpstreamError::Invalid("bad content-length"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(UpstreamError::Invalid("conflicting content-length"));
                }
                length = Some(n);
            }
        } else if name == header::TRANSFER_ENCODING {
            // Only a single `chunked`; anything else cannot be relayed safely.
            if chunked || !h.value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Err(UpstreamError::Invalid("unsupported transfer-encoding"));
            }
            chunked = true;
        } else if name == header::CONNECTION {
            close |= h
                .value
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
        // Hop-by-hop fields end here; framing was read from them above.
        if crate::upstream::headers::is_hop_by_hop(name.as_str()) || listed(h.name) {
            continue;
        }
        // `h.value` lies within `buf[..n]`, so its offset there is its offset in `shared`.
        let at = (h.value.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
        let value = shared
            .get(at..at.wrapping_add(h.value.len()))
            .map(|v| shared.slice_ref(v))
            .ok_or(UpstreamError::Invalid("bad header value"))
            .and_then(|v| {
                HeaderValue::from_maybe_shared(v)
                    .map_err(|_| UpstreamError::Invalid("bad header value"))
            })?;
        headers.append(name, value);
    }
    if chunked && length.is_some() {
        return Err(UpstreamError::Invalid(
            "both transfer-encoding and content-length",
        ));
    }
    let framing = if is_head || code == 204 || code == 304 {
        Framing::None
    } else if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        if n == 0 {
            Framing::None
        } else {
            Framing::Length(n)
        }
    } else {
        Framing::Close
    };
    Ok(Parsed::Done(
        n,
        Answer {
            status,
            headers,
            framing,
            keep_alive: !close && framing != Framing::Close,
        },
    ))
}

/// Digits only, at most 19 of them (no sign, no overflow).
fn parse_length(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// A response body from the upstream.
pub enum UpstreamBody {
    /// Read completely with the head (or empty).
    Full(Option<Bytes>),
    /// Still on the connection.
    Streaming(Box<Streaming>),
}

/// A body still being read; the connection is pooled again once it ends as framed.
pub struct Streaming {
    conn: Option<Conn>,
    /// Where the connection goes when the body ends; `None` if it must be closed.
    pool: Option<Http1>,
    /// When the request started: the pooled connection's age counts from here.
    since: Instant,
    state: State,
    /// Decoded data not yet handed on.
    ready: VecDeque<Bytes>,
}

enum State {
    Length(u64),
    Chunked(Chunk),
    Eof,
    Done,
}

enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailers(usize),
}

impl Streaming {
    /// Decodes what the buffer holds. `Ok(true)` when the body is complete.
    fn decode(&mut self) -> Result<bool, UpstreamError> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(true);
        };
        decode(&mut self.state, &mut conn.buf, &mut self.ready)
    }

    /// The body ended: the connection is pooled if nothing follows it.
    fn finish(&mut self) {
        if let (Some(conn), Some(pool)) = (self.conn.take(), self.pool.take()) {
            pool.release(conn, true, self.since);
        }
    }
}

/// Decodes the body bytes `buf` holds into `ready`, taking no byte past the body's end.
/// `Ok(true)` when the body is complete.
fn decode(
    state: &mut State,
    buf: &mut BytesMut,
    ready: &mut VecDeque<Bytes>,
) -> Result<bool, UpstreamError> {
    loop {
        match state {
            State::Done => return Ok(true),
            State::Eof => {
                if !buf.is_empty() {
                    ready.push_back(buf.split().freeze());
                }
                return Ok(false);
            }
            State::Length(left) => {
                if buf.is_empty() {
                    return Ok(false);
                }
                if take_framed(buf, left, ready) {
                    *state = State::Done;
                }
            }
            State::Chunked(chunk) => match chunk {
                Chunk::Size => {
                    let Some(line) = find_crlf(buf, MAX_CHUNK_LINE)? else {
                        return Ok(false);
                    };
                    let size = parse_chunk_size(&buf[..line])?;
                    buf.advance(line + 2);
                    *chunk = if size == 0 {
                        Chunk::Trailers(0)
                    } else {
                        Chunk::Data(size)
                    };
                }
                Chunk::Data(left) => {
                    if buf.is_empty() {
                        return Ok(false);
                    }
                    if take_framed(buf, left, ready) {
                        *chunk = Chunk::DataEnd;
                    }
                }
                Chunk::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(false);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(UpstreamError::Invalid("chunk data not followed by CRLF"));
                    }
                    buf.advance(2);
                    *chunk = Chunk::Size;
                }
                Chunk::Trailers(seen) => {
                    let room = MAX_TRAILER_BYTES.saturating_sub(*seen);
                    let Some(line) = find_crlf(buf, room)? else {
                        return Ok(false);
                    };
                    if buf[..line].contains(&b'\n') {
                        return Err(UpstreamError::Invalid("bare LF in trailers"));
                    }
                    buf.advance(line + 2);
                    if line == 0 {
                        *state = State::Done;
                    } else {
                        *seen += line + 2;
                        if *seen > MAX_TRAILER_BYTES {
                            return Err(UpstreamError::Invalid("trailers too long"));
                        }
                    }
                }
            },
        }
    }
}

/// Moves up to `left` framed body bytes from `buf` to `ready`; true once none are left.
/// Never takes a byte past the frame, which belongs to what follows it.
fn take_framed(buf: &mut BytesMut, left: &mut u64, ready: &mut VecDeque<Bytes>) -> bool {
    let take = usize::try_from(*left).unwrap_or(usize::MAX).min(buf.len());
    ready.push_back(buf.split_to(take).freeze());
    *left -= take as u64;
    *left == 0
}

/// The position of the first CRLF in `buf`, looking at no more than `max` bytes before it.
fn find_crlf(buf: &[u8], max: usize) -> Result<Option<usize>, UpstreamError> {
    let window = &buf[..buf.len().min(max.saturating_add(2))];
    match window.windows(2).position(|w| w == b"\r\n") {
        Some(i) => Ok(Some(i)),
        None if buf.len() >= max.saturating_add(2) => {
            Err(UpstreamError::Invalid("chunk line too long"))
        }
        None => Ok(None),
    }
}

/// `chunk-size [ chunk-ext ]` (RFC 9112 §7.1): 1–16 hex digits, then nothing or
/// extensions, which are ignored but may not hold CR or LF.
fn parse_chunk_size(line: &[u8]) -> Result<u64, UpstreamError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return Err(UpstreamError::Invalid("bad chunk size"));
    }
    let rest = &line[digits..];
    let ext_ok = match rest.first() {
        None => true,
        Some(b';' | b' ' | b'\t') => !rest.iter().any(|&b| b == b'\r' || b == b'\n'),
        Some(_) => false,
    };
    if !ext_ok {
        return Err(UpstreamError::Invalid("bad chunk size"));
    }
    Ok(line[..digits].iter().fold(0u64, |n, &d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => d - b'A' + 10,
        };
        (n << 4) | u64::from(v)
    }))
}

/// What [`fuzz_parse`] made of an upstream's bytes.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuzzAnswer {
    /// The final answer's status code.
    pub status: u16,
    /// Where the final head ended in the input (interim answers included).
    pub head_len: usize,
    /// `"none"`, `"length"`, `"chunked"` or `"close"`.
    pub framing: &'static str,
    /// The `Content-Length` framing's length.
    pub length: Option<u64>,
    /// The decoded body.
    pub body: Vec<u8>,
    /// Where the answer ended in the input (its length for `"close"`).
    pub end: usize,
    /// Whether the connection would be pooled again: the answer allows it, nothing was
    /// left in the read buffer, and nothing was left unread (the probe at checkout).
    pub reusable: bool,
}

/// Parses `input` as an upstream's bytes the way [`Http1::send`] and [`UpstreamBody`] do:
/// the head (interim answers skipped), then the body decoded from the bytes after it,
/// delivered `step` bytes per read (at least 1), then the end of the connection. For the
/// fuzz target `upstream_response` (fuzz/README.md).
#[doc(hidden)]
pub fn fuzz_parse(input: &[u8], is_head: bool, step: usize) -> Result<FuzzAnswer, UpstreamError> {
    let step = step.max(1);
    let mut buf = BytesMut::new();
    let mut fed = 0usize;
    let feed = |buf: &mut BytesMut, fed: &mut usize| {
        let n = step.min(input.len() - *fed);
        buf.extend_from_slice(&input[*fed..*fed + n]);
        *fed += n;
        n > 0
    };
    let mut skipped = 0usize;
    let answer = loop {
        if let Some(answer) = take_head(&mut buf, is_head, &mut skipped)? {
            break answer;
        }
        if !feed(&mut buf, &mut fed) {
            return Err(if fed == 0 {
                UpstreamError::Closed
            } else {
                UpstreamError::Invalid("connection closed within the response head")
            });
        }
    };
    let head_len = fed - buf.len();
    let (framing, length) = match answer.framing {
        Framing::None => ("none", None),
        Framing::Length(n) => ("length", Some(n)),
        Framing::Chunked => ("chunked", None),
        Framing::Close => ("close", None),
    };
    let mut body = Vec::new();
    let mut state = match answer.framing {
        Framing::None => State::Done,
        // As `respond`: a body already read whole is split off the buffer at once.
        Framing::Length(n) if buf.len() as u64 >= n => {
            body.extend_from_slice(&buf.split_to(n as usize));
            State::Done
        }
        Framing::Length(n) => State::Length(n),
        Framing::Chunked => State::Chunked(Chunk::Size),
        Framing::Close => State::Eof,
    };
    let mut ready = VecDeque::new();
    loop {
        let done = decode(&mut state, &mut buf, &mut ready)?;
        body.extend(ready.drain(..).flatten());
        if done {
            break;
        }
        if !feed(&mut buf, &mut fed) {
            if matches!(state, State::Eof) {
                break;
            }
            return Err(UpstreamError::Invalid("connection closed within the body"));
        }
    }
    let end = fed - buf.len();
    Ok(FuzzAnswer {
        status: answer.status.as_u16(),
        head_len,
        framing,
        length,
        body,
        end,
        reusable: answer.keep_alive
            && !matches!(state, State::Eof)
            && buf.is_empty()
            && fed == input.len(),
    })
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = UpstreamError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, UpstreamError>>> {
        match self.get_mut() {
            UpstreamBody::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            UpstreamBody::Streaming(s) => loop {
                if let Some(data) = s.ready.pop_front() {
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                match s.decode() {
                    Err(e) => {
                        s.conn = None;
                        s.state = State::Done;
                        return Poll::Ready(Some(Err(e)));
                    }
                    Ok(true) => {
                        // The connection goes back now: a server that sees
                        // `is_end_stream` after the last frame never polls again.
                        s.finish();
                        if let Some(data) = s.ready.pop_front() {
                            return Poll::Ready(Some(Ok(Frame::data(data))));
                        }
                        return Poll::Ready(None);
                    }
                    Ok(false) if !s.ready.is_empty() => continue,
                    Ok(false) => {}
                }
                let Some(conn) = s.conn.as_mut() else {
                    return Poll::Ready(None);
                };
                conn.buf.reserve(READ_CHUNK);
                match tokio_util::io::poll_read_buf(Pin::new(&mut conn.io), cx, &mut conn.buf) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => {
                        s.conn = None;
                        s.state = State::Done;
                        return Poll::Ready(Some(Err(UpstreamError::Io(e))));
                    }
                    Poll::Ready(Ok(0)) => {
                        let eof_ends_body = matches!(s.state, State::Eof);
                        s.conn = None;
                        s.state = State::Done;
                        if eof_ends_body {
                            return Poll::Ready(None);
                        }
                        return Poll::Ready(Some(Err(UpstreamError::Invalid(
                            "connection closed within the body",
                        ))));
                    }
                    Poll::Ready(Ok(_)) => {}
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Full(d) => d.is_none(),
            UpstreamBody::Streaming(s) => matches!(s.state, State::Done) && s.ready.is_empty(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Full(d) => SizeHint::with_exact(d.as_ref().map_or(0, |d| d.len() as u64)),
            UpstreamBody::Streaming(s) => match s.state {
                State::Length(n) => {
                    let queued: u64 = s.ready.iter().map(|b| b.len() as u64).sum();
                    SizeHint::with_exact(n + queued)
                }
                _ => SizeHint::default(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(s: &str) -> Result<Parsed, UpstreamError> {
        parse_head(s.as_bytes(), false)
    }

    fn framing(s: &str) -> Framing {
        match head(s) {
            Ok(Parsed::Done(_, a)) => a.framing,
            other => panic!("not a complete answer: {:?}", other.err()),
        }
    }

    #[test]
    fn framing_rules() {
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"),
            Framing::Length(5)
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\n\r\n"),
            Framing::Length(5)
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"),
            Framing::Chunked
        );
        assert_eq!(framing("HTTP/1.1 200 OK\r\n\r\n"), Framing::Close);
        assert_eq!(
            framing("HTTP/1.1 204 No Content\r\ncontent-length: 9\r\n\r\n"),
            Framing::None
        );
        assert_eq!(
            framing("HTTP/1.1 304 Not Modified\r\ntransfer-encoding: chunked\r\n\r\n"),
            Framing::None
        );
        match parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", true) {
            Ok(Parsed::Done(_, a)) => assert_eq!(a.framing, Framing::None),
            _ => panic!("HEAD answer"),
        }
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        for bad in [
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 5, 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 0x5\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length:\r\n\r\n",
            "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\ntransfer-encoding: identity\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
            "HTTP/1.1 200 OK\r\nx: a\rb\r\n\r\n",
        ] {
            assert!(head(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keep_alive_rules() {
        let keep = |s: &str| match head(s) {
            Ok(Parsed::Done(_, a)) => a.keep_alive,
            _ => panic!("{s}"),
        };
        assert!(keep("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"));
        assert!(!keep(
            "HTTP/1.1 200 OK\r\nconnection: keep-alive, Close\r\ncontent-length: 0\r\n\r\n"
        ));
        assert!(!keep("HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n"));
        assert!(!keep("HTTP/1.1 200 OK\r\n\r\n"));
    }

    #[test]
    fn hop_by_hop_fields_stay_here() {
        let Ok(Parsed::Done(_, a)) = head(
            "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Secret\r\nKeep-Alive: timeout=5\r\n\
             x-secret: 1\r\nTransfer-Encoding: chunked\r\nUpgrade: h2c\r\nx-kept: 2\r\n\r\n",
        ) else {
            panic!("answer");
        };
        let names: Vec<_> = a.headers.keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["x-kept"]);
        assert_eq!(a.framing, Framing::Chunked);
        assert!(a.keep_alive);
    }

    #[test]
    fn interim_answers_are_skipped() {
        let interim = "HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n";
        assert!(matches!(
            head(&format!("{interim}HTTP/1.1 200 OK\r\n")),
            Ok(Parsed::Interim(n)) if n == interim.len()
        ));
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(parse_chunk_size(b"1a").ok(), Some(26));
        assert_eq!(parse_chunk_size(b"FF;name=value").ok(), Some(255));
        assert_eq!(parse_chunk_size(b"ffffffffffffffff").ok(), Some(u64::MAX));
        for bad in [
            &b""[..],
            b"-1",
            b"0x10",
            b"10000000000000000",
            b"1 g\rx",
            b"g",
            b"1\n",
        ] {
            assert!(parse_chunk_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn request_head_is_framed_here() {
        let up = Http1::new(
            "127.0.0.1:1".into(),
            HeaderValue::from_static("api:8080"),
            4,
            Duration::from_secs(1),
            Duration::from_secs(1),
        );
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("10"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::HOST, HeaderValue::from_static("evil"));
        h.insert("x-a", HeaderValue::from_static("1"));
        let head = |m: &Method, target: &str| {
            let mut head = up.head(m, target, h.len());
            for (n, v) in &h {
                head.header(n, v);
            }
            String::from_utf8(head.finish(m)).unwrap_or_default()
        };
        assert_eq!(
            head(&Method::GET, "/a?b=1"),
            "GET /a?b=1 HTTP/1.1\r\nhost: api:8080\r\nx-a: 1\r\n\r\n"
        );
        assert_eq!(
            head(&Method::POST, "/a"),
            "POST /a HTTP/1.1\r\nhost: api:8080\r\nx-a: 1\r\ncontent-length: 0\r\n\r\n"
        );
    }
}
