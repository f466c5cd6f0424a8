//! Black-box: signed-request bodies cannot exhaust a node's memory (docs/security-model.md,
//! "Forged service requests").
//!
//! 100 HTTP/1.1 connections and one HTTP/2 connection with 200 streams send signed-looking
//! requests with 1 MiB bodies — first under an unknown key id, then under a real client's
//! key id with bad signatures — and then 100 connections trickle bodies of requests that
//! *are* validly signed. Meanwhile the node's resident size (`VmRSS` of the tessera
//! process) is sampled and a logged-in user keeps reading `/api/notes`. Asserted: the
//! forged requests are all refused 401 without their bodies being buffered (the node's
//! peak RSS stays within [`RSS_GROWTH_BOUND_MIB`] of its start; before the fix it went from
//! 28 to 339 MiB), the slow valid ones get 408 `request_timeout` after
//! `signatures.body_timeout` or, once `signatures.max_buffered_bytes` is reserved, 503
//! `overloaded` with `Retry-After` at once, and the user's reads stay under 1 s. The
//! figures are printed (`--nocapture`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tessera_core::{b64, httpsig, random_bytes};
use tessera_testkit::{b64url_decode, raw, Server};
use tokio::io::AsyncWriteExt;

const BIN: &str = env!("CARGO_BIN_EXE_tessera");
/// The most the node's RSS may grow over its start while an attack runs.
const RSS_GROWTH_BOUND_MIB: f64 = 64.0;
const BODY_LEN: usize = 1 << 20;
const H1_CONNECTIONS: usize = 100;
const H2_STREAMS: usize = 200;
/// Floods per phase, back to back.
const ROUNDS: usize = 3;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

struct Svc {
    keyid: String,
    secret: Vec<u8>,
}

async fn add_client(server: &Server, name: &str) -> Svc {
    let out = server.cli(&["client", "add", name], None).await;
    out.assert_success();
    let field = |prefix: &str| {
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no `{prefix}` line in {:?}", out.stdout))
    };
    Svc {
        keyid: field("key id:"),
        secret: b64url_decode(&field("secret:")).unwrap(),
    }
}

/// `(Signature-Input, Signature)` for a POST to `path` with `digest`, under `keyid`,
/// signed with `secret` (the real one or not).
fn sign(server: &Server, path: &str, digest: &str, keyid: &str, secret: &[u8]) -> (String, String) {
    let nonce = b64::encode(random_bytes::<16>());
    httpsig::sign(
        "POST",
        &server.url(path),
        Some(digest),
        keyid,
        &nonce,
        now(),
        secret,
    )
    .unwrap()
}

/// An HTTP/1.1 request head for a signed POST of `len` bytes.
fn h1_head(server: &Server, digest: &str, (input, sig): (String, String), len: usize) -> Vec<u8> {
    format!(
        "POST /api/notes HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {len}\r\nContent-Digest: {digest}\r\nSignature-Input: {input}\r\n\
         Signature: {sig}\r\n\r\n",
        server.addr
    )
    .into_bytes()
}

/// What one attacking HTTP/1.1 connection saw: the status (if a response came) and
/// when, after the head was sent.
struct Seen {
    status: Option<u16>,
    retry_after: bool,
    after: Duration,
}

/// Where the attacking connections go (owned, for spawned tasks).
#[derive(Clone)]
struct Target {
    addr: std::net::SocketAddr,
    cert: std::path::PathBuf,
}

impl Target {
    fn of(server: &Server) -> Target {
        Target {
            addr: server.addr,
            cert: server.cert_path.clone(),
        }
    }
}

/// Sends `head`, then `len` body bytes — all at once, or one byte per `pace` — while
/// reading the answer; gives up after 20 s.
async fn h1_attack(target: Target, head: Vec<u8>, len: usize, pace: Option<Duration>) -> Seen {
    let stream = raw::connect(target.addr, &target.cert).await.unwrap();
    let (mut rd, mut wr) = tokio::io::split(stream);
    let started = Instant::now();
    let writer = tokio::spawn(async move {
        wr.write_all(&head).await?;
        match pace {
            None => {
                let chunk = vec![b'x'; 64 << 10];
                let mut left = len;
                while left > 0 {
                    let n = left.min(chunk.len());
                    wr.write_all(&chunk[..n]).await?;
                    left -= n;
                }
            }
            Some(every) => {
                for _ in 0..len {
                    wr.write_all(b"x").await?;
                    wr.flush().await?;
                    tokio::time::sleep(every).await;
                }
            }
        }
        wr.flush().await?;
        // Keep the write half open while the answer is read.
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok::<_, std::io::Error>(())
    });
    let res = tokio::time::timeout(Duration::from_secs(20), raw::read_response(&mut rd)).await;
    let after = started.elapsed();
    writer.abort();
    match res {
        Ok(r) => Seen {
            status: r.status,
            retry_after: r.header("retry-after").is_some(),
            after,
        },
        Err(_) => Seen {
            status: None,
            retry_after: false,
            after,
        },
    }
}

/// Samples the node's RSS every 10 ms until stopped; returns the peak (KiB).
fn sample_rss(server: &Server, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    let pid = server.pid().unwrap();
    tokio::spawn(async move {
        let mut peak = 0;
        while !stop.load(Ordering::SeqCst) {
            if let Some(kib) = rss_of(pid) {
                peak = peak.max(kib);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        peak
    })
}

fn rss_of(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A logged-in user reading `/api/notes` every 20 ms until stopped (and at least three
/// times): every latency, and every status that was not 200.
fn legit_reader(
    user: &tessera_testkit::Client,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(Vec<Duration>, Vec<u16>)> {
    let mut c = user.clone();
    tokio::spawn(async move {
        let (mut times, mut bad) = (Vec::new(), Vec::new());
        while !stop.load(Ordering::SeqCst) || times.len() < 3 {
            let t = Instant::now();
            let res = c.get("/api/notes").send().await;
            times.push(t.elapsed());
            if res.status != 200 {
                bad.push(res.status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (times, bad)
    })
}

struct Phase {
    peak_kib: u64,
    max_latency: Duration,
    p50_latency: Duration,
    reads: usize,
}

/// Runs `attack` while sampling RSS and the user's latency.
async fn observe<F: std::future::Future<Output = ()>>(
    server: &Server,
    user: &tessera_testkit::Client,
    attack: F,
) -> Phase {
    let stop = Arc::new(AtomicBool::new(false));
    let rss = sample_rss(server, Arc::clone(&stop));
    let reader = legit_reader(user, Arc::clone(&stop));
    attack.await;
    stop.store(true, Ordering::SeqCst);
    let peak_kib = rss.await.unwrap();
    let (mut times, bad) = reader.await.unwrap();
    assert!(
        bad.is_empty(),
        "the logged-in user got {bad:?} during the attack"
    );
    assert!(!times.is_empty(), "the logged-in user made no request");
    times.sort();
    Phase {
        peak_kib,
        max_latency: times[times.len() - 1],
        p50_latency: times[times.len() / 2],
        reads: times.len(),
    }
}

/// 100 HTTP/1.1 connections and 200 HTTP/2 streams at once, each a POST of a 1 MiB body under
/// signature headers made by `headers()`; every answer must be `expect`.
async fn flood(
    server: &Server,
    body: &'static [u8],
    headers: impl Fn() -> (String, String),
    expect: u16,
) {
    let digest = httpsig::content_digest(body);
    let mut h1 = tokio::task::JoinSet::new();
    for _ in 0..H1_CONNECTIONS {
        let head = h1_head(server, &digest, headers(), body.len());
        h1.spawn(h1_attack(Target::of(server), head, body.len(), None));
    }
    let h2 = tessera_testkit::client::http2_client(&server.cert_path);
    let url = server.url("/api/notes");
    let mut streams = Vec::new();
    for _ in 0..H2_STREAMS {
        let (input, sig) = headers();
        let req = h2
            .post(&url)
            .header("content-type", "application/json")
            .header("content-digest", &digest)
            .header("signature-input", input)
            .header("signature", sig)
            .body(body);
        streams.push(tokio::spawn(async move {
            let res = req.send().await;
            res.map(|r| (r.status().as_u16(), r.version()))
        }));
    }
    let mut h1_seen = Vec::new();
    while let Some(r) = h1.join_next().await {
        h1_seen.push(r.unwrap());
    }
    let mut h2_ok = 0;
    let mut h2_err = 0;
    for s in streams {
        match s.await.unwrap() {
            Ok((status, version)) => {
                assert_eq!(format!("{version:?}"), "HTTP/2.0", "not HTTP/2");
                assert_eq!(status, expect, "an HTTP/2 stream got {status}");
                h2_ok += 1;
            }
            Err(_) => h2_err += 1,
        }
    }
    let answered = h1_seen.iter().filter(|s| s.status.is_some()).count();
    for s in &h1_seen {
        if let Some(status) = s.status {
            assert_eq!(status, expect, "an HTTP/1.1 connection got {status}");
        }
    }
    println!(
        "  HTTP/1.1: {answered}/{H1_CONNECTIONS} answered {expect}; HTTP/2: {h2_ok}/{H2_STREAMS} answered {expect} ({h2_err} streams reset before an answer)"
    );
    assert!(
        answered >= H1_CONNECTIONS * 9 / 10,
        "only {answered} HTTP/1.1 answers"
    );
    assert!(h2_ok >= H2_STREAMS / 2, "only {h2_ok} HTTP/2 answers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signed_bodies_cannot_exhaust_memory() {
    let server = Server::builder(BIN)
        .config("[signatures]\nbody_timeout = \"1s\"\n")
        .start()
        .await;
    let svc = add_client(&server, "svc").await;
    let body: &'static [u8] = Box::leak(vec![b'x'; BODY_LEN].into_boxed_slice());
    let digest = httpsig::content_digest(body);

    // Warm up (TLS, the client table, the user's session), then the baseline.
    let head = h1_head(
        &server,
        &digest,
        sign(&server, "/api/notes", &digest, &svc.keyid, &[1; 32]),
        0,
    );
    let _ = h1_attack(Target::of(&server), head, 0, None).await;
    let user = server.demo_client().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start_kib = server.rss_kib().unwrap();
    println!("RSS at start: {:.1} MiB", mib(start_kib));

    let report = |name: &str, p: &Phase| {
        println!(
            "{name}: peak RSS {:.1} MiB (+{:.1}); user GET p50 {:?}, max {:?} over {} reads",
            mib(p.peak_kib),
            mib(p.peak_kib.saturating_sub(start_kib)),
            p.p50_latency,
            p.max_latency,
            p.reads
        );
        assert!(
            mib(p.peak_kib.saturating_sub(start_kib)) < RSS_GROWTH_BOUND_MIB,
            "{name}: RSS grew by {:.1} MiB",
            mib(p.peak_kib.saturating_sub(start_kib))
        );
        assert!(
            p.max_latency < Duration::from_secs(1),
            "{name}: user GET took {:?}",
            p.max_latency
        );
    };

    // 1. Unknown key id.
    println!("unknown key id, 1 MiB bodies:");
    let p = observe(&server, &user, async {
        for _ in 0..ROUNDS {
            flood(
                &server,
                body,
                || sign(&server, "/api/notes", &digest, "no-such-client", &[7; 32]),
                401,
            )
            .await;
        }
    })
    .await;
    report("unknown key id", &p);

    // 2. A real client's key id, signatures made with a wrong secret.
    println!("known key id, bad signatures, 1 MiB bodies:");
    let p = observe(&server, &user, async {
        for _ in 0..ROUNDS {
            flood(
                &server,
                body,
                || sign(&server, "/api/notes", &digest, &svc.keyid, &[9; 32]),
                401,
            )
            .await;
        }
    })
    .await;
    report("bad signatures", &p);

    // 3. Slow bodies: forged ones are refused at once; validly signed ones hold at most
    //    signatures.max_buffered_bytes (16 MiB = 16 bodies of 1 MiB) and end with 408.
    println!("slow bodies (1 byte / 100 ms):");
    let p = observe(&server, &user, async {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..H1_CONNECTIONS {
            let valid = i % 2 == 0;
            let secret: &[u8] = if valid { &svc.secret } else { &[9; 32] };
            let head = h1_head(&server, &digest, sign(&server, "/api/notes", &digest, &svc.keyid, secret), BODY_LEN);
            let attack = h1_attack(
                Target::of(&server),
                head,
                BODY_LEN,
                Some(Duration::from_millis(100)),
            );
            set.spawn(async move { (valid, attack.await) });
        }
        let (mut timeouts, mut overloaded, mut refused) = (0, 0, 0);
        while let Some(r) = set.join_next().await {
            let (valid, seen) = r.unwrap();
            match (valid, seen.status) {
                (false, Some(401)) => {
                    assert!(seen.after < Duration::from_millis(900), "a forged slow body took {:?}", seen.after);
                    refused += 1;
                }
                (true, Some(408)) => {
                    assert!(seen.after >= Duration::from_millis(900), "408 after only {:?}", seen.after);
                    timeouts += 1;
                }
                (true, Some(503)) => {
                    assert!(seen.retry_after, "503 without Retry-After");
                    overloaded += 1;
                }
                other => panic!("slow body answered {other:?}"),
            }
        }
        println!(
            "  forged: {refused} × 401 at once; validly signed: {timeouts} × 408 after the body timeout, {overloaded} × 503 overloaded"
        );
        assert_eq!(refused, H1_CONNECTIONS / 2);
        assert!((1..=16).contains(&timeouts), "{timeouts} bodies held at once (cap: 16 of 1 MiB)");
        assert_eq!(timeouts + overloaded, H1_CONNECTIONS / 2);
    })
    .await;
    report("slow bodies", &p);

    // After the attacker left.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after_kib = server.rss_kib().unwrap();
    println!(
        "RSS 2 s after the attacks: {:.1} MiB (+{:.1} over the start)",
        mib(after_kib),
        mib(after_kib.saturating_sub(start_kib))
    );
    // A validly signed request with a real body still goes through.
    let small = br#"{"text":"signed"}"#;
    let d = httpsig::content_digest(small);
    let head = h1_head(
        &server,
        &d,
        sign(&server, "/api/whoami", &d, &svc.keyid, &svc.secret),
        small.len(),
    )
    .into_iter()
    .collect::<Vec<u8>>();
    let head = String::from_utf8(head)
        .unwrap()
        .replace("POST /api/notes ", "POST /api/whoami ")
        .into_bytes();
    let stream = raw::connect(server.addr, &server.cert_path).await.unwrap();
    let mut stream = stream;
    stream.write_all(&head).await.unwrap();
    stream.write_all(small).await.unwrap();
    let res = raw::read_response(&mut stream).await;
    assert_eq!(res.status, Some(200), "{}", res.text());
    assert!(res.text().contains("\"svc\""), "{}", res.text());
}
