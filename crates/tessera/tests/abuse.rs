//! Abuse resistance: a login flood against a small hashing pool, slow clients.
//! (The timing test for user enumeration is alone in `enumeration.rs`, so nothing else
//! runs beside it.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use tessera_testkit::Server;

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

#[tokio::test]
async fn a_login_flood_gets_503_overloaded_at_once_not_a_queue() {
    let server = Server::builder(BIN)
        .config("[rate_limit]\nper_ip_per_minute = 100000\nper_username_per_minute = 100000\n[passwords]\nm_cost = 19456\nt_cost = 2\nworkers = 1\nqueue = 2\n")
        .start()
        .await;
    let mut tab = server.client();
    tab.login_ok("demo", server.demo_password()).await;
    let mut flood = Vec::new();
    for i in 0..40 {
        let mut c = server.client();
        flood.push(tokio::spawn(async move {
            c.login(&format!("user{i}"), "wrong-password-1").await
        }));
    }
    // Authenticated traffic is not stuck behind the hashing queue.
    let t = Instant::now();
    let res = tab.get("/api/notes").send().await;
    assert_eq!(res.status, 200);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "authenticated request took {:?} during the flood",
        t.elapsed()
    );
    let mut overloaded = 0;
    for f in flood {
        let res = f.await.unwrap();
        match res.status {
            401 => {}
            503 => {
                res.assert_error(503, "overloaded");
                assert!(res.header("retry-after").is_some());
                overloaded += 1;
            }
            other => panic!("unexpected {other}: {}", res.text()),
        }
    }
    assert!(
        overloaded > 0,
        "40 concurrent logins on 1 worker with a queue of 2 were all queued"
    );
}

#[tokio::test]
async fn slow_clients_are_cut_off_after_the_header_timeout() {
    let server = Server::builder(BIN)
        .config("[limits]\nheader_timeout = \"2s\"\n")
        .start()
        .await;
    // Headers that never end (slowloris): the connection must not stay open.
    let partial = format!(
        "GET /healthz HTTP/1.1\r\nHost: {}\r\nX-Slow: 1\r\n",
        server.addr
    );
    let t = Instant::now();
    let res = server
        .raw_with_timeout(partial.as_bytes(), Duration::from_secs(10))
        .await;
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(6),
        "slow client kept for {took:?}: {res:?}"
    );
    assert!(
        res.status.is_none_or(|s| (400..500).contains(&s)),
        "{res:?}"
    );
}

/// The scheduling policy and niceness of the running server's hashing threads, read from
/// `/proc/<pid>/task/*/{comm,sched,stat}`.
#[cfg(target_os = "linux")]
fn hashing_threads(server: &Server) -> Vec<(u32, i32)> {
    let pid = server.pid().expect("server pid");
    let mut found = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = task.unwrap().path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if !comm.starts_with("tessera-hash") {
            continue;
        }
        let sched = std::fs::read_to_string(dir.join("sched")).unwrap();
        let policy = sched
            .lines()
            .find_map(|l| l.strip_prefix("policy"))
            .and_then(|l| l.split(':').nth(1))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap();
        let nice = stat.rsplit_once(')').unwrap().1.split_whitespace().nth(16);
        found.push((policy, nice.unwrap().parse().unwrap()));
    }
    found
}

/// By default the hashing threads run under `SCHED_IDLE` (policy 5), so a login flood
/// only gets the CPU time authenticated requests leave; `worker_priority = "nice"` gives
/// ordinary scheduling (policy 0) at `worker_nice`.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn hashing_threads_run_at_idle_priority_unless_told_otherwise() {
    let server = Server::builder(BIN).start().await;
    let threads = hashing_threads(&server);
    assert!(!threads.is_empty(), "no hashing threads found");
    assert!(
        threads.iter().all(|&(policy, _)| policy == 5),
        "{threads:?}"
    );

    let server = Server::builder(BIN)
        .config("[passwords]\nworker_priority = \"nice\"\nworker_nice = 12\n")
        .start()
        .await;
    let threads = hashing_threads(&server);
    assert!(!threads.is_empty(), "no hashing threads found");
    assert!(threads.iter().all(|&t| t == (0, 12)), "{threads:?}");
}
