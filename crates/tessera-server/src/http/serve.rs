//! The accept loop: TLS, HTTP/1.1 and HTTP/2, a connection cap, a deadline on every phase
//! of a connection, and graceful shutdown that lets in-flight requests finish.
//!
//! No connection holds a slot, a task or an upstream connection without doing something:
//!
//! | phase | bound | what happens |
//! |---|---|---|
//! | TLS handshake | `limits.header_timeout` | the socket is closed |
//! | first bytes and the first request head (protocol sniffing, a partial HTTP/2 preface, silence after the handshake) | `limits.header_timeout` from the handshake's end | closed |
//! | a request head (HTTP/1.1), also while waiting for the next one on a keep-alive connection | `limits.header_timeout` (hyper's header timer) | closed |
//! | no open request (HTTP/1.1 keep-alive, HTTP/2 with no open stream, a client that only answers PINGs) | `limits.idle_timeout` | closed (HTTP/2: `GOAWAY` first) |
//! | a request body that stops arriving | `limits.body_timeout` without a byte | the request fails with 408 `request_timeout` (its upstream exchange, if any, is dropped) |
//! | a client that stops reading a response (socket writes or HTTP/2 flow control) | `limits.send_timeout` without progress | the connection is closed, which drops the response and the upstream connection it held |
//!
//! Answers to requests hyper cannot parse (a malformed request line or header, conflicting
//! `Content-Length`s, an unknown version) are hyper's own: the right 4xx status, an empty
//! body and `connection: close`. Tessera does not rewrite bytes on the connection to give
//! them a JSON body: a rewriter cannot tell hyper's answer from a proxied body chunk that
//! looks like it, and rewriting that would split the response (docs/security-model.md).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;

use crate::config::LimitsConfig;
use crate::http::middleware::MAX_URI_BYTES;

/// Serves `app` on `listener` until `shutdown` resolves, then waits up to
/// `limits.shutdown_grace` for open requests.
pub async fn run(
    listener: TcpListener,
    app: crate::App,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: LimitsConfig,
    shutdown: impl Future<Output = ()> + Send,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let builder = Arc::new(builder(&limits));
    let limits = Arc::new(limits);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&permits).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let builder = Arc::clone(&builder);
        let acceptor = acceptor.clone();
        let limits = Arc::clone(&limits);
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match acceptor {
                Some(acceptor) => {
                    let handshake = acceptor.accept(stream);
                    let Ok(Ok(tls)) = tokio::time::timeout(limits.header_timeout, handshake).await
                    else {
                        return;
                    };
                    serve_connection(&builder, tls, peer, app, &limits, stop).await;
                }
                None => serve_connection(&builder, stream, peer, app, &limits, stop).await,
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: finishing in-flight requests");
    let _ = stop_tx.send(true);
    // Every connection holds a permit until it ends: all of them back means all ended.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.shutdown_grace, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace elapsed with requests still open");
    }
}

/// hyper's connection settings. Its own read buffer is larger than the configured limits
/// so that requests just over them reach tessera and get a JSON 414/431 rather than
/// hyper's bare answer; hyper still cuts off anything beyond the buffer.
fn builder(limits: &LimitsConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(
            limits
                .max_header_bytes
                .saturating_add(MAX_URI_BYTES * 2)
                .max(65536),
        )
        .max_headers(limits.max_headers);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(
            u32::try_from(limits.max_header_bytes.saturating_mul(2)).unwrap_or(u32::MAX),
        )
        .max_concurrent_streams(256)
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

/// How long a connection whose protocol is being shut down (an idle timeout, the
/// server's shutdown) may take to say goodbye before it is dropped.
const GOODBYE: Duration = Duration::from_secs(1);

/// Serves one connection with the watchdog of [`Activity`] beside it.
async fn serve_connection<I>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    peer: SocketAddr,
    app: crate::App,
    limits: &LimitsConfig,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new(limits));
    let service = {
        let activity = Arc::clone(&activity);
        let body_timeout = limits.body_timeout;
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let app = app.clone();
            let tracked = Tracked::start(&activity);
            async move {
                let req = req.map(|body| {
                    if http_body::Body::is_end_stream(&body) {
                        Body::new(body)
                    } else {
                        Body::new(BodyDeadline::new(body, body_timeout))
                    }
                });
                let res = app.handle(req, Some(peer)).await;
                Ok::<_, std::convert::Infallible>(res.map(|body| tracked.body(body)))
            }
        })
    };
    let io = TokioIo::new(SendDeadline::new(io, limits.send_timeout));
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    // Set once the connection is told to end on its own: the time it is dropped anyway.
    let mut goodbye: Option<Instant> = None;
    let mut stopped = false;
    loop {
        let check_at = goodbye.unwrap_or_else(|| activity.next_check());
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = stop.changed(), if !stopped => {
                // In-flight requests may finish (the server's grace bounds the wait);
                // the watchdog goes on closing idle and stalled ones.
                stopped = true;
                conn.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep_until(check_at) => {
                if goodbye.is_some() {
                    return;
                }
                if let Some(why) = activity.verdict() {
                    tracing::debug!(%peer, reason = why, "closing connection");
                    conn.as_mut().graceful_shutdown();
                    goodbye = Some(Instant::now() + GOODBYE);
                }
            }
        }
    }
}

/// What a connection is doing, as its watchdog sees it: how many requests are open, since
/// when none is, and which open responses wait for the client to take their next frame.
///
/// The hot path touches it twice per request (an atomic add when the request starts, an
/// atomic subtract and one clock read when its response ends); a response that streams
/// several frames records, per frame handed on, the watchdog's current tick.
struct Activity {
    /// When the connection started serving (after the TLS handshake).
    base: Instant,
    /// Requests started and not yet answered in full.
    open: AtomicUsize,
    /// Requests ever started.
    started: AtomicU64,
    /// The tick at which `open` last fell to zero (a tick count, not a clock read: the
    /// end of a request costs no system clock read).
    idle_since_tick: AtomicU64,
    /// The watchdog's tick counter (advanced each time it looks).
    tick: AtomicU64,
    /// Per streaming response: the tick its last frame was handed on at, or `None` while
    /// it waits for its own source (the upstream), which is the upstream's time, not the
    /// client's.
    waiting: Mutex<Vec<Option<u64>>>,
    header_timeout: Duration,
    idle_timeout: Duration,
    send_timeout: Duration,
}

impl Activity {
    fn new(limits: &LimitsConfig) -> Self {
        Activity {
            base: Instant::now(),
            open: AtomicUsize::new(0),
            started: AtomicU64::new(0),
            idle_since_tick: AtomicU64::new(0),
            tick: AtomicU64::new(0),
            waiting: Mutex::new(Vec::new()),
            header_timeout: limits.header_timeout,
            idle_timeout: limits.idle_timeout,
            send_timeout: limits.send_timeout,
        }
    }

    /// How often the watchdog looks: half the shortest of the deadlines it keeps, so
    /// that each is enforced at most half of itself late.
    fn tick_every(&self) -> Duration {
        (self
            .header_timeout
            .min(self.idle_timeout)
            .min(self.send_timeout)
            / 2)
        .max(Duration::from_millis(10))
    }

    /// Ticks after which a frame not taken means a stalled client: a frame handed on just
    /// before a tick has waited more than `send_timeout` once this many more have passed.
    fn stall_ticks(&self) -> u64 {
        let every = self.tick_every().as_nanos().max(1);
        u64::try_from(self.send_timeout.as_nanos().div_ceil(every)).unwrap_or(u64::MAX) + 1
    }

    /// When the watchdog should look next: at the next tick. Before the first request
    /// the deadline is `header_timeout` from the start, exactly; after it, a connection is
    /// idle once `idle_timeout` worth of ticks have passed with no open request (so it is
    /// closed between `idle_timeout` and `idle_timeout` plus one tick after its last one).
    fn next_check(&self) -> Instant {
        let now = Instant::now();
        let tick = now + self.tick_every();
        if self.started.load(Ordering::Acquire) == 0 {
            return (self.base + self.header_timeout).clamp(now, tick);
        }
        tick
    }

    /// Ticks that make up `d`, rounded up.
    fn ticks(&self, d: Duration) -> u64 {
        let every = self.tick_every().as_nanos().max(1);
        u64::try_from(d.as_nanos().div_ceil(every)).unwrap_or(u64::MAX)
    }

    /// Why the connection should close now, if it should; advances the tick.
    fn verdict(&self) -> Option<&'static str> {
        let tick = self.tick.fetch_add(1, Ordering::AcqRel) + 1;
        if self.open.load(Ordering::Acquire) == 0 {
            if self.started.load(Ordering::Acquire) == 0 {
                return (Instant::now() >= self.base + self.header_timeout).then_some("no request");
            }
            let since = self.idle_since_tick.load(Ordering::Acquire);
            // One tick more than `idle_timeout` holds: the request may have ended just
            // before the tick it recorded.
            let idle = self.ticks(self.idle_timeout).saturating_add(1);
            return (tick >= since.saturating_add(idle)).then_some("idle");
        }
        // A frame handed on at least `send_timeout` ago and not taken since: the client is
        // not reading.
        let n = self.stall_ticks();
        let stalled = self
            .waiting
            .lock()
            .map(|w| w.iter().flatten().any(|&at| tick >= at.saturating_add(n)))
            .unwrap_or(false);
        stalled.then_some("client stopped reading")
    }
}

/// One open request of a connection; its end is when the response body is dropped.
struct Tracked {
    activity: Arc<Activity>,
}

impl Tracked {
    fn start(activity: &Arc<Activity>) -> Self {
        activity.started.fetch_add(1, Ordering::AcqRel);
        activity.open.fetch_add(1, Ordering::AcqRel);
        Tracked {
            activity: Arc::clone(activity),
        }
    }

    /// The response body, which ends the request when it is dropped. Until it is first
    /// polled it waits for the client (HTTP/2 polls it only once the client's window
    /// has room).
    fn body(self, inner: Body) -> TrackedBody {
        let waits = !http_body::Body::is_end_stream(&inner);
        let mut body = TrackedBody {
            inner,
            slot: None,
            tracked: self,
        };
        if waits {
            let tick = body.tracked.activity.tick.load(Ordering::Acquire);
            body.mark(Some(tick));
        }
        body
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let a = &self.activity;
        a.idle_since_tick
            .store(a.tick.load(Ordering::Acquire), Ordering::Release);
        a.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that tells the connection's watchdog when it waits for the client.
struct TrackedBody {
    inner: Body,
    /// Its place in [`Activity::waiting`], taken when it first waits for the client.
    slot: Option<usize>,
    tracked: Tracked,
}

impl TrackedBody {
    fn mark(&mut self, at: Option<u64>) {
        let Ok(mut waiting) = self.tracked.activity.waiting.lock() else {
            return;
        };
        match self.slot {
            Some(i) => {
                if let Some(s) = waiting.get_mut(i) {
                    *s = at;
                }
            }
            None if at.is_some() => {
                let i = match waiting.iter().position(Option::is_none) {
                    Some(i) => {
                        waiting[i] = at;
                        i
                    }
                    None => {
                        waiting.push(at);
                        waiting.len() - 1
                    }
                };
                self.slot = Some(i);
            }
            None => {}
        }
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        if self.slot.is_some() {
            self.mark(None);
        }
    }
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.slot.is_some() {
            // The client took the last frame: the wait is the source's now.
            this.mark(None);
        }
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if frame.is_some() && !this.inner.is_end_stream() {
            let tick = this.tracked.activity.tick.load(Ordering::Acquire);
            this.mark(Some(tick));
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The error a request body gives when the client stops sending it for
/// `limits.body_timeout`; answered 408 `request_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the request body stopped arriving")]
pub struct BodyTimedOut;

/// True if `e` (or what caused it) is [`BodyTimedOut`].
pub fn is_body_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<BodyTimedOut>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// A request body that fails with [`BodyTimedOut`] when no frame arrives for `limit`.
struct BodyDeadline {
    inner: Incoming,
    limit: Duration,
    sleep: Pin<Box<Sleep>>,
    /// The sleep is armed for the wait in progress.
    armed: bool,
}

impl BodyDeadline {
    fn new(inner: Incoming, limit: Duration) -> Self {
        BodyDeadline {
            inner,
            limit,
            sleep: Box::pin(tokio::time::sleep(limit)),
            armed: false,
        }
    }
}

impl http_body::Body for BodyDeadline {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.armed = false;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                if !this.armed {
                    let deadline = Instant::now() + this.limit;
                    this.sleep.as_mut().reset(deadline);
                    this.armed = true;
                }
                ready!(this.sleep.as_mut().poll(cx));
                Poll::Ready(Some(Err(Box::new(BodyTimedOut))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A connection whose writes fail with `TimedOut` when the socket takes nothing for
/// `limit` (a client that stopped reading). Nothing is examined or rewritten; a write
/// that does not have to wait costs one branch.
struct SendDeadline<T> {
    io: T,
    limit: Duration,
    /// Armed while a write waits; allocated at the first wait.
    sleep: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl<T> SendDeadline<T> {
    fn new(io: T, limit: Duration) -> Self {
        SendDeadline {
            io,
            limit,
            sleep: None,
            armed: false,
        }
    }

    /// After the inner write answered `poll`: disarms on progress, arms (or checks) on a
    /// wait.
    fn watch<R>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if poll.is_ready() {
            self.armed = false;
            return poll;
        }
        let limit = self.limit;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if !self.armed {
            sleep.as_mut().reset(Instant::now() + limit);
            self.armed = true;
        }
        ready!(sleep.as_mut().poll(cx));
        self.armed = false;
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client stopped reading",
        )))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for SendDeadline<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for SendDeadline<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write(cx, buf);
        this.watch(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_flush(cx);
        this.watch(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_shutdown(cx);
        this.watch(cx, poll)
    }
}
