//! Black-box: graceful shutdown. On SIGTERM tessera stops accepting connections at once,
//! lets requests in flight finish (here: proxied to an upstream that takes its time), and
//! exits with status 0 — within `limits.shutdown_grace` even when a request never ends
//! (tessera-server serve.rs: "graceful shutdown that lets in-flight requests finish").
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_testkit::raw::get_request;
use tessera_testkit::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

/// The slow upstream's answer: big enough to take several reads and writes.
fn slow_body() -> Vec<u8> {
    (0..256 * 1024u32)
        .map(|i| b"0123456789abcdefghijklmnopqrstuv"[(i % 32) as usize])
        .collect()
}

/// Reads one request head; its request target.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > 1 << 20 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    head.split_whitespace().nth(1).map(str::to_owned)
}

/// An upstream that reports each request's target as soon as its head has arrived, then
/// waits `delay` before answering 200 with `body`.
async fn slow_upstream(
    delay: Duration,
    body: Arc<Vec<u8>>,
) -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (arrived, arrivals) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let arrived = arrived.clone();
            let body = Arc::clone(&body);
            tokio::spawn(async move {
                let Some(target) = read_head(&mut stream).await else {
                    return;
                };
                let _ = arrived.send(target);
                tokio::time::sleep(delay).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&body).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (addr, arrivals)
}

/// A demo server (for its demo user) proxying to `upstream`, with `shutdown_grace`.
async fn server_before(upstream: SocketAddr, grace: &str) -> Server {
    Server::builder(BIN)
        .config(&format!(
            "upstream = \"http://{upstream}\"\n[limits]\nshutdown_grace = \"{grace}\"\n"
        ))
        .start()
        .await
}

/// `kill -TERM <pid>`.
fn sigterm(server: &Server) {
    let pid = server.pid().expect("the server process has a pid");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM {pid}: {status}");
}

#[track_caller]
fn assert_exited_0(status: Option<ExitStatus>, server: &Server, what: &str) {
    let status = status.unwrap_or_else(|| {
        panic!(
            "{what}: still running\n{}",
            tessera_testkit::tail(&server.logs(), 30)
        )
    });
    assert_eq!(
        status.code(),
        Some(0),
        "{what}: exit {status}\n{}",
        tessera_testkit::tail(&server.logs(), 30)
    );
}

/// Starts an authenticated GET of `path` on a connection of its own and returns once the
/// upstream has received it.
async fn in_flight(
    c: &tessera_testkit::Client,
    path: &'static str,
    arrivals: &mut mpsc::UnboundedReceiver<String>,
) -> tokio::task::JoinHandle<Result<tessera_testkit::Resp, impl std::fmt::Debug>> {
    let token = c.access_token().unwrap();
    let mut inflight = c.fresh();
    let request = tokio::spawn(async move { inflight.get(path).bearer(&token).try_send().await });
    let target = tokio::time::timeout(Duration::from_secs(10), arrivals.recv())
        .await
        .expect("the request never reached the upstream")
        .unwrap();
    assert_eq!(target, path);
    request
}

#[tokio::test]
async fn sigterm_lets_the_request_in_flight_finish_and_exits_0() {
    let body = Arc::new(slow_body());
    let (upstream, mut arrivals) =
        slow_upstream(Duration::from_millis(1500), Arc::clone(&body)).await;
    let grace = Duration::from_secs(10);
    let mut server = server_before(upstream, "10s").await;
    let c = server.demo_client().await;

    // An authenticated request that the upstream holds for 1.5 s.
    let request = in_flight(&c, "/api/slow?n=1", &mut arrivals).await;

    let signalled = Instant::now();
    sigterm(&server);
    // A new connection after the signal gets no service (refused once the signal is
    // handled: allow a loaded machine a moment for that), while the request is in flight.
    let mut probes = Vec::new();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let probe = server
            .raw_with_timeout(
                &get_request(&server.addr.to_string(), "/healthz", &[]),
                Duration::from_secs(3),
            )
            .await;
        let refused = probe.status.is_none();
        assert!(
            refused || probe.status == Some(200),
            "a connection during shutdown: {probe:?}"
        );
        probes.push(probe);
        if refused || signalled.elapsed() > Duration::from_secs(1) {
            break;
        }
    }
    let last = probes.last().unwrap();
    assert!(
        last.status.is_none() && last.error.is_some(),
        "connections opened up to {:?} after SIGTERM were still served: {probes:?}",
        signalled.elapsed()
    );
    assert!(
        !request.is_finished(),
        "the request should still be in flight when new connections are refused"
    );
    assert!(
        arrivals.try_recv().is_err(),
        "something new reached the upstream after SIGTERM"
    );

    // The request in flight completes, whole.
    let res = tokio::time::timeout(Duration::from_secs(15), request)
        .await
        .expect("the in-flight request never completed")
        .unwrap()
        .expect("the in-flight request failed");
    assert_eq!(
        res.status,
        200,
        "{}",
        String::from_utf8_lossy(&res.body[..res.body.len().min(300)])
    );
    assert_eq!(res.body.len(), body.len(), "truncated body");
    assert!(res.body == *body, "body corrupted");
    let answered = signalled.elapsed();
    assert!(
        answered >= Duration::from_millis(1000),
        "answered {answered:?} after SIGTERM: not the slow upstream's answer?"
    );

    // Then the process ends, with status 0, without waiting out the grace period for idle
    // connections.
    let status = server.wait_exit(grace + Duration::from_secs(5)).await;
    assert_exited_0(status, &server, "after the in-flight request");
    let exited = signalled.elapsed();
    assert!(
        exited < Duration::from_secs(5),
        "took {exited:?} to exit after the last request ended (grace {grace:?})"
    );
    let logs = server.logs();
    assert!(
        !logs.contains("panicked"),
        "{}",
        tessera_testkit::tail(&logs, 30)
    );
    assert!(
        !logs.contains("shutdown grace elapsed"),
        "the grace elapsed although every request had finished:\n{}",
        tessera_testkit::tail(&logs, 30)
    );
}

#[tokio::test]
async fn shutdown_grace_bounds_the_wait_for_a_request_that_does_not_end() {
    let body = Arc::new(slow_body());
    let (upstream, mut arrivals) = slow_upstream(Duration::from_secs(30), body).await;
    let grace = Duration::from_secs(1);
    let mut server = server_before(upstream, "1s").await;
    let c = server.demo_client().await;

    let request = in_flight(&c, "/api/stuck", &mut arrivals).await;

    let signalled = Instant::now();
    sigterm(&server);
    let status = server.wait_exit(grace + Duration::from_secs(5)).await;
    let exited = signalled.elapsed();
    assert_exited_0(status, &server, "with a request still open");
    assert!(
        exited >= grace - Duration::from_millis(100),
        "exited after {exited:?}: the request in flight got less than the grace ({grace:?})"
    );
    assert!(
        exited < grace + Duration::from_secs(3),
        "exited only {exited:?} after SIGTERM (grace {grace:?})"
    );
    // The cut-off client hears about it (a closed connection), not a hang.
    let res = tokio::time::timeout(Duration::from_secs(5), request)
        .await
        .expect("the client of the cut-off request hangs")
        .unwrap();
    if let Ok(res) = res {
        assert_ne!(res.status, 200, "a request cut off by shutdown got a 200");
    }
    let logs = server.logs();
    assert!(
        !logs.contains("panicked"),
        "{}",
        tessera_testkit::tail(&logs, 30)
    );
    assert!(
        logs.contains("shutdown grace elapsed"),
        "no word in the log that a request was cut off:\n{}",
        tessera_testkit::tail(&logs, 30)
    );
}

#[tokio::test]
async fn sigterm_on_an_idle_server_exits_0_at_once() {
    let body = Arc::new(slow_body());
    let (upstream, _arrivals) = slow_upstream(Duration::from_millis(10), body).await;
    let mut server = server_before(upstream, "10s").await;
    // An idle keep-alive connection, as a browser leaves behind.
    let mut c = server.demo_client().await;
    assert_eq!(c.get("/api/quick").send().await.status, 200);

    let signalled = Instant::now();
    sigterm(&server);
    let status = server.wait_exit(Duration::from_secs(10)).await;
    assert_exited_0(status, &server, "idle server");
    assert!(
        signalled.elapsed() < Duration::from_secs(3),
        "an idle server took {:?} to stop",
        signalled.elapsed()
    );
    assert!(!server.logs().contains("panicked"));
}
