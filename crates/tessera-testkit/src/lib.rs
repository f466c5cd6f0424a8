//! Test helpers for black-box tests of tessera: spawn the real binary on a free port with a
//! fresh data folder, talk to it over HTTPS with an explicit cookie jar, run its admin CLI;
//! or serve tessera inside the test process with a manual clock ([`inproc`]), for
//! everything that needs no process of its own.
//!
//! ```no_run
//! # async fn demo() {
//! use tessera_testkit::Server;
//! let server = Server::builder("target/debug/tessera").config("[tokens]\naccess_ttl = \"2s\"").start().await;
//! let mut client = server.client();
//! client.login_ok("demo", server.demo_password()).await;
//! let res = client.get("/api/notes").send().await;
//! assert_eq!(res.status, 200);
//! # }
//! ```
//!
//! Test-only code (`publish = false`): failing fast with a clear message is the point.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

pub mod client;
pub mod hostile;
pub mod inproc;
pub mod jar;
pub mod pg;
pub mod raw;
pub mod upstream;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

pub use client::{assert_error_shape, Client, Req, Resp};
pub use jar::{Jar, SetCookie};
pub use raw::RawResponse;
pub use reqwest::Method;

/// Tessera's cookie names (docs/http-api.md).
pub mod cookie_names {
    /// Split mode: the JWT payload segment.
    pub const CLAIMS: &str = "__Host-tessera-claims";
    /// Split mode: `header.signature`.
    pub const SIG: &str = "__Host-tessera-sig";
    /// Whole mode: the whole JWT.
    pub const ACCESS: &str = "__Host-tessera-access";
    /// The refresh token.
    pub const REFRESH: &str = "__Secure-tessera-refresh";
    /// The CSRF token.
    pub const CSRF: &str = "__Host-tessera-csrf";
    /// The device token (outlives sessions; logout keeps it).
    pub const DEVICE: &str = "__Secure-tessera-device";
    /// Every tessera cookie of a session (what logout clears).
    pub const SESSION: [&str; 5] = [CLAIMS, SIG, ACCESS, REFRESH, CSRF];
    /// Every tessera cookie.
    pub const ALL: [&str; 6] = [CLAIMS, SIG, ACCESS, REFRESH, CSRF, DEVICE];
}

/// How long a server may take to print its `listening on` line.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Decodes unpadded base64url.
pub fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
}

/// Encodes as unpadded base64url.
pub fn b64url_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes an unpadded base64url JSON segment (a JWT header or payload).
pub fn b64url_decode_json(s: &str) -> Option<serde_json::Value> {
    serde_json::from_slice(&b64url_decode(s)?).ok()
}

/// Waits until `check` holds (asked every 5 ms) or `limit` passes: how long it took.
/// For state another process owns (a node's view of the store, its logs), which a test
/// can only observe; what tessera decides by time is tested with a manual clock instead.
pub async fn until(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> Option<Duration> {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

/// Moves tokio's clock forward by `by` at once (pause, advance, resume), for code that
/// schedules by `tokio::time::Instant` (the JWKS cache of tessera-verify). Timers due
/// within `by` fire; nothing sleeps. Needs tokio's current-thread runtime (the default
/// of `#[tokio::test]`).
pub async fn skip_tokio_time(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The output of a finished `tessera` command.
#[derive(Debug, Clone)]
pub struct CliOutput {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl CliOutput {
    /// The exit code (`None` if killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Panics with the output unless the command succeeded.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.status.success(),
            "command failed ({:?})\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Runs the binary `bin` with `args`, environment `env` (inherited `TESSERA_*` variables
/// removed first) and `stdin`, and waits (at most 60 s) for it.
pub async fn run_tessera(
    bin: &Path,
    args: &[&str],
    env: &[(String, String)],
    stdin: Option<&str>,
) -> CliOutput {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    scrub_env(&mut cmd, env);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // The command may exit without reading (e.g. a usage error): not our failure.
        let _ = pipe.write_all(input.as_bytes()).await;
        drop(pipe);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("tessera {args:?} did not finish within 60 s"))
        .expect("wait for tessera");
    CliOutput {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn scrub_env(cmd: &mut Command, env: &[(String, String)]) {
    for (k, _) in std::env::vars() {
        if k.starts_with("TESSERA_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
}

async fn start_failed(
    mut child: Child,
    stdout: String,
    stderr_path: &Path,
    reason: String,
) -> StartError {
    let _ = child.start_kill();
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .ok()
        .and_then(Result::ok);
    StartError {
        status,
        stdout,
        stderr: std::fs::read_to_string(stderr_path).unwrap_or_default(),
        reason,
    }
}

/// Configures a server before starting it.
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    bin: PathBuf,
    config: String,
    env: Vec<(String, String)>,
    demo: bool,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    fast_hashing: bool,
}

/// Why a server did not start.
#[derive(Debug)]
pub struct StartError {
    /// The exit status, if the process ended.
    pub status: Option<ExitStatus>,
    /// What it printed on stdout.
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
    /// What went wrong from the harness's side.
    pub reason: String,
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "tessera did not start: {} (exit {:?})\n--- stdout ---\n{}\n--- stderr (tail) ---\n{}",
            self.reason,
            self.status,
            tail(&self.stdout, 20),
            tail(&self.stderr, 40)
        )
    }
}

impl ServerBuilder {
    /// Extra TOML appended to the generated configuration (which sets `data_dir` and, if
    /// asked, `database_url` at the top). May contain top-level keys and tables.
    pub fn config(mut self, toml: &str) -> Self {
        self.config.push_str(toml);
        self.config.push('\n');
        self
    }

    /// An environment variable for the server (and for [`Server::cli`]).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// `--demo` (default true).
    pub fn demo(mut self, demo: bool) -> Self {
        self.demo = demo;
        self
    }

    /// Uses this data folder instead of a fresh one (to share it between servers).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Sets `database_url` (e.g. a shared SQLite file or PostgreSQL).
    pub fn database_url(mut self, url: &str) -> Self {
        self.database_url = Some(url.to_owned());
        self
    }

    /// Cheaper Argon2 parameters (`m_cost = 8192`, `t_cost = 1`) so many servers can run
    /// at once on a small machine (default true; ignored if the extra configuration has
    /// its own `[passwords]` table).
    pub fn fast_hashing(mut self, fast: bool) -> Self {
        self.fast_hashing = fast;
        self
    }

    fn toml(&self, data_dir: &Path) -> String {
        let quote = |s: &str| serde_json::to_string(s).expect("quote a TOML string");
        let mut t = format!("data_dir = {}\n", quote(&data_dir.to_string_lossy()));
        if let Some(url) = &self.database_url {
            t.push_str(&format!("database_url = {}\n", quote(url)));
        }
        t.push_str(&self.config);
        if self.fast_hashing && !self.config.contains("[passwords]") {
            t.push_str("\n[passwords]\nm_cost = 8192\nt_cost = 1\n");
        }
        t
    }

    /// Starts the server; panics (with the server's stderr tail) if it does not start.
    pub async fn start(self) -> Server {
        match self.try_start().await {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    /// Starts the server: `tessera serve [--demo] --config <tmp>/tessera.toml --listen
    /// 127.0.0.1:0`, waiting up to [`STARTUP_TIMEOUT`] for the `listening on` line.
    pub async fn try_start(self) -> Result<Server, StartError> {
        let tmp = tempfile::Builder::new()
            .prefix("tessera-test-")
            .tempdir()
            .expect("make a temp dir");
        let data_dir = self
            .data_dir
            .clone()
            .unwrap_or_else(|| tmp.path().join("data"));
        let config_path = tmp.path().join("tessera.toml");
        std::fs::write(&config_path, self.toml(&data_dir)).expect("write tessera.toml");
        let stderr_path = tmp.path().join("stderr.log");
        let stderr_file = std::fs::File::create(&stderr_path).expect("create stderr.log");

        let mut cmd = Command::new(&self.bin);
        cmd.arg("serve");
        if self.demo {
            cmd.arg("--demo");
        }
        cmd.arg("--config")
            .arg(&config_path)
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr_file))
            .kill_on_drop(true);
        scrub_env(&mut cmd, &self.env);
        let mut child = cmd.spawn().map_err(|e| StartError {
            status: None,
            stdout: String::new(),
            stderr: String::new(),
            reason: format!("cannot run {}: {e}", self.bin.display()),
        })?;
        let stdout = child.stdout.take().expect("child stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut seen = String::new();
        let mut password = None;
        let wait_listening = async {
            while let Ok(Some(line)) = lines.next_line().await {
                seen.push_str(&line);
                seen.push('\n');
                if let Some(rest) = line.split("password:").nth(1) {
                    password = rest.split_whitespace().next().map(str::to_owned);
                }
                if let Some(rest) = line.split("listening on ").nth(1) {
                    return Some(rest.trim().to_owned());
                }
            }
            None
        };
        let listening = tokio::time::timeout(STARTUP_TIMEOUT, wait_listening).await;
        let url = match listening {
            Ok(Some(url)) => url,
            Ok(None) => {
                // Ended before listening: collect its exit status.
                let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
                    .await
                    .ok()
                    .and_then(Result::ok);
                return Err(StartError {
                    status,
                    stdout: seen,
                    stderr: std::fs::read_to_string(&stderr_path).unwrap_or_default(),
                    reason: "exited before listening".into(),
                });
            }
            Err(_) => {
                let reason = format!("no `listening on` line within {STARTUP_TIMEOUT:?}");
                return Err(start_failed(child, seen, &stderr_path, reason).await);
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let addr: SocketAddr = match url
            .split_once("://")
            .and_then(|(_, a)| a.trim_end_matches('/').parse().ok())
        {
            Some(a) => a,
            None => {
                let reason = format!("cannot parse the address in {url:?}");
                return Err(start_failed(child, seen, &stderr_path, reason).await);
            }
        };
        let base_url = url.trim_end_matches('/').to_owned();
        let cert_path = data_dir.join("tls").join("cert.pem");
        let http = if base_url.starts_with("https://") {
            client::http_client(&cert_path)
        } else {
            client::install_crypto_provider();
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("build the HTTP client")
        };
        let env = self.env.clone();
        Ok(Server {
            child,
            addr,
            base_url,
            data_dir,
            config_path,
            cert_path,
            demo_password: password,
            stdout: seen,
            stderr_path,
            bin: self.bin,
            env,
            http,
            _tmp: tmp,
        })
    }
}

/// A running tessera process, killed when dropped.
pub struct Server {
    child: Child,
    /// The address it listens on.
    pub addr: SocketAddr,
    /// `https://127.0.0.1:<port>` (its origin).
    pub base_url: String,
    /// Its data folder.
    pub data_dir: PathBuf,
    /// Its configuration file.
    pub config_path: PathBuf,
    /// Its TLS certificate (self-signed mode).
    pub cert_path: PathBuf,
    /// The demo user's password (demo mode).
    pub demo_password: Option<String>,
    /// What it printed on stdout before listening.
    pub stdout: String,
    stderr_path: PathBuf,
    bin: PathBuf,
    env: Vec<(String, String)>,
    http: reqwest::Client,
    // Last: removed after the child is killed.
    _tmp: tempfile::TempDir,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("base_url", &self.base_url)
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

impl Server {
    /// A builder for a server run from the binary `bin` (tests pass
    /// `env!("CARGO_BIN_EXE_tessera")`). Demo mode by default.
    pub fn builder(bin: impl Into<PathBuf>) -> ServerBuilder {
        ServerBuilder {
            bin: bin.into(),
            config: String::new(),
            env: Vec::new(),
            demo: true,
            data_dir: None,
            database_url: None,
            fast_hashing: true,
        }
    }

    /// Starts a demo server with the default configuration.
    pub async fn demo(bin: impl Into<PathBuf>) -> Server {
        Server::builder(bin).start().await
    }

    /// The demo user's password; panics if not in demo mode.
    pub fn demo_password(&self) -> &str {
        self.demo_password
            .as_deref()
            .expect("no demo password (not a demo server?)")
    }

    /// The server's origin.
    pub fn origin(&self) -> &str {
        &self.base_url
    }

    /// `base_url + path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// A new client with an empty jar.
    pub fn client(&self) -> Client {
        Client::new(self.http.clone(), &self.base_url)
    }

    /// A new client logged in as the demo user.
    pub async fn demo_client(&self) -> Client {
        let mut c = self.client();
        c.login_ok("demo", self.demo_password()).await;
        c
    }

    /// Runs `tessera <args> --config <its config>` with the server's environment.
    pub async fn cli(&self, args: &[&str], stdin: Option<&str>) -> CliOutput {
        let config = self.config_path.to_string_lossy().into_owned();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--config", config.as_str()]);
        run_tessera(&self.bin, &all, &self.env, stdin).await
    }

    /// Everything the server logged to stderr so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends raw bytes over TLS (see [`raw::send`]).
    pub async fn raw(&self, request: &[u8]) -> RawResponse {
        raw::send(self.addr, &self.cert_path, request).await
    }

    /// [`Server::raw`], reading the answer for at most `read_for`.
    pub async fn raw_with_timeout(&self, request: &[u8], read_for: Duration) -> RawResponse {
        raw::send_with_timeout(self.addr, &self.cert_path, request, read_for).await
    }

    /// The process id, while it has not been waited for (to send it signals).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The process's resident set size in KiB (`VmRSS` in `/proc/<pid>/status`; Linux).
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Waits at most `within` for the process to end by itself (e.g. after a signal);
    /// its exit status, or `None` if it is still running.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        tokio::time::timeout(within, self.child.wait())
            .await
            .ok()
            .and_then(Result::ok)
    }

    /// Kills the process and waits for it to end (its temp folder goes too; a shared
    /// data folder given with [`ServerBuilder::data_dir`] stays).
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }

    /// A raw `GET target` (request target sent exactly as given) with extra header lines.
    pub async fn raw_get(&self, target: &str, extra_headers: &[String]) -> RawResponse {
        let req = raw::get_request(&self.addr.to_string(), target, extra_headers);
        self.raw(&req).await
    }
}
