//! Tessera's configuration: one TOML file, every key overridable by `TESSERA_<KEY>`
//! (nested keys joined by `__`). Unknown keys are refused. Every field states its default.
//!
//! Loading (file + environment overlay + validation) lives in the `tessera` binary; this
//! module defines the shape and the checks, so the library can be configured in code too.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Most request threads `worker_threads` may ask for.
pub const MAX_WORKER_THREADS: usize = 1024;

/// The default `static_csp`: what a bundler-built SPA (Vite, esbuild, webpack output:
/// scripts, styles, fonts and images as files from its own origin, API calls to it) needs,
/// and nothing inline or foreign (docs/deployment.md, "Your own SPA").
pub const DEFAULT_STATIC_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on. Default `127.0.0.1:8443`.
    pub listen: SocketAddr,
    /// The SPA's origin, e.g. `https://app.example.com`: the only origin allowed to make
    /// cookie-authenticated unsafe requests, and the default token issuer and audience.
    /// Default: derived from the listening address (`https://127.0.0.1:<port>`).
    pub public_origin: Option<String>,
    /// Other origins under which clients reach tessera itself (another name in its
    /// certificate, e.g. `https://localhost:8443`). A DPoP proof's `htu` and a signed
    /// request's `@target-uri` may name the one the request came to (its `Host` or
    /// `:authority`) when it is listed here; otherwise they must name `public_origin`.
    /// Cookies, CSRF and the token issuer stay tied to `public_origin`. Default none.
    pub origin_aliases: Vec<String>,
    /// Folder for the SQLite database, the master-key file and generated TLS files.
    /// Default `./tessera-data`.
    pub data_dir: PathBuf,
    /// `sqlite://…` (default: `sqlite://<data_dir>/tessera.db`) or `postgres://…`.
    pub database_url: Option<String>,
    /// Base URL of the REST API requests are proxied to (`http://host:port`). Default none:
    /// only static files and tessera's own endpoints are served.
    pub upstream: Option<String>,
    /// Folder of static files served without authentication (the SPA). Default none.
    pub static_dir: Option<PathBuf>,
    /// Path prefixes proxied without authentication (e.g. `/api/public/`). Default none.
    pub public_paths: Vec<String>,
    /// `Content-Security-Policy` sent with files from `static_dir` (and the `spa_fallback`
    /// answer). Default [`DEFAULT_STATIC_CSP`]; `""` sends none (the SPA sets its own with
    /// `<meta>`). tessera's JSON answers keep `default-src 'none'`.
    pub static_csp: String,
    /// A file under `static_dir` (e.g. `index.html`) answered to browser navigations
    /// (`GET`/`HEAD` accepting `text/html`) for paths that are no file, no tessera route,
    /// no public path and no `api_prefixes` entry, so client-side routes survive a reload.
    /// Default none.
    pub spa_fallback: Option<PathBuf>,
    /// Path prefixes never answered with `spa_fallback` (e.g. `/api/`): navigations there
    /// go to the upstream as any other request. Default none.
    pub api_prefixes: Vec<String>,
    /// Peers whose `X-Forwarded-For` is believed (exact IPs). Default none: the client IP
    /// is the socket's peer.
    pub trusted_proxies: Vec<IpAddr>,
    /// Threads serving requests. Default 0 = one per CPU the process may use; with one, a
    /// single-threaded scheduler. At most 1024.
    pub worker_threads: usize,
    /// TLS.
    pub tls: TlsConfig,
    /// Access and refresh tokens.
    pub tokens: TokenConfig,
    /// Browser cookies.
    pub cookies: CookieConfig,
    /// Credentialed CORS for extra origins (e.g. a dev server). Default: none at all.
    pub cors: CorsConfig,
    /// Size and time limits.
    pub limits: LimitsConfig,
    /// Password hashing and policy.
    pub passwords: PasswordConfig,
    /// Login and token-grant throttling.
    pub rate_limit: RateLimitConfig,
    /// Logging.
    pub log: LogConfig,
    /// Cluster synchronisation (revocations and keys).
    pub sync: SyncConfig,
    /// DPoP proofs (RFC 9449).
    pub dpop: DpopConfig,
    /// Signed service requests (RFC 9421).
    pub signatures: SignatureConfig,
}

/// DPoP proof checking.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DpopConfig {
    /// Oldest accepted proof (`iat`), and how long its `jti` is remembered. Default 60 s.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// How far in the future a proof's `iat` may be (client clock skew). Default 5 s.
    #[serde(with = "humantime_serde")]
    pub max_skew: Duration,
    /// Most proof ids remembered at once; when full, new proofs are refused (fail
    /// closed). Default 1000000.
    pub replay_capacity: usize,
    /// Also record each new proof's `jti` in the store, so a proof used on one node (or
    /// process) is refused on every other sharing the database; a store that cannot be
    /// reached then fails proof-bearing requests closed (503). Default true.
    pub shared_replay: bool,
}

impl Default for DpopConfig {
    fn default() -> Self {
        DpopConfig {
            max_age: Duration::from_secs(60),
            max_skew: Duration::from_secs(5),
            replay_capacity: 1_000_000,
            shared_replay: true,
        }
    }
}

/// HTTP message signature checking.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignatureConfig {
    /// Accepted distance between `created` and now, either way. Default 300 s.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Most nonces remembered at once (fail closed when full). Default 1000000.
    pub replay_capacity: usize,
    /// Also record each new nonce in the store (see `dpop.shared_replay`). Default true.
    pub shared_replay: bool,
    /// Most bytes of signed-request bodies buffered at once across the node (a body is
    /// read only after its signature verified, to check its digest); over it → 503.
    /// Default 16 MiB; at least `limits.max_body_bytes`.
    pub max_buffered_bytes: usize,
    /// Time a client has to send a signed request's body once its signature verified;
    /// then 408. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
}

impl Default for SignatureConfig {
    fn default() -> Self {
        SignatureConfig {
            window: Duration::from_secs(300),
            replay_capacity: 1_000_000,
            shared_replay: true,
            max_buffered_bytes: 16 << 20,
            body_timeout: Duration::from_secs(10),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            public_origin: None,
            origin_aliases: Vec::new(),
            data_dir: PathBuf::from("./tessera-data"),
            database_url: None,
            upstream: None,
            static_dir: None,
            public_paths: Vec::new(),
            static_csp: DEFAULT_STATIC_CSP.to_owned(),
            spa_fallback: None,
            api_prefixes: Vec::new(),
            trusted_proxies: Vec::new(),
            worker_threads: 0,
            tls: TlsConfig::default(),
            tokens: TokenConfig::default(),
            cookies: CookieConfig::default(),
            cors: CorsConfig::default(),
            limits: LimitsConfig::default(),
            passwords: PasswordConfig::default(),
            rate_limit: RateLimitConfig::default(),
            log: LogConfig::default(),
            sync: SyncConfig::default(),
            dpop: DpopConfig::default(),
            signatures: SignatureConfig::default(),
        }
    }
}

/// `tls.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// A self-signed certificate made once and kept in `data_dir/tls/` (demo, development).
    SelfSigned,
    /// `tls.cert` and `tls.key` PEM files.
    Files,
    /// Plain HTTP, for running behind a TLS-terminating proxy. Cookies stay `Secure`.
    Off,
}

/// TLS settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Default `self-signed`.
    pub mode: TlsMode,
    /// PEM certificate chain (mode `files`).
    pub cert: Option<PathBuf>,
    /// PEM private key (mode `files`).
    pub key: Option<PathBuf>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            mode: TlsMode::SelfSigned,
            cert: None,
            key: None,
        }
    }
}

/// Token settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenConfig {
    /// `EdDSA` (default) or `HS256`.
    pub algorithm: tessera_core::Algorithm,
    /// Access-token lifetime. Default 10 minutes (allowed: 1 s … 1 h).
    #[serde(with = "humantime_serde")]
    pub access_ttl: Duration,
    /// A refresh token unused this long is dead. Default 14 days.
    #[serde(with = "humantime_serde")]
    pub refresh_ttl: Duration,
    /// A session ends this long after login whatever the refreshes. Default 30 days.
    #[serde(with = "humantime_serde")]
    pub session_max: Duration,
    /// Racing refreshes with the same token within this window get the same successor.
    /// Default 5 s; 0 disables. At most 60 s.
    #[serde(with = "humantime_serde")]
    pub refresh_grace: Duration,
    /// Clock-skew leeway for `exp`/`nbf`/`iat`. Default 30 s, at most 60 s.
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
    /// `iss`. Default: `public_origin`.
    pub issuer: Option<String>,
    /// `aud`. Default: `public_origin`.
    pub audience: Option<String>,
    /// Scheduled key rotation period. Default 7 days.
    #[serde(with = "humantime_serde")]
    pub rotate_every: Duration,
    /// How long a next key is published in JWKS before it signs. Default 1 hour.
    #[serde(with = "humantime_serde")]
    pub prepublish: Duration,
    /// Verified tokens remembered so a repeat skips signature checking (expiry and
    /// revocation are still checked every time). Default 10000; 0 disables.
    pub verify_cache_entries: usize,
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            algorithm: tessera_core::Algorithm::EdDSA,
            access_ttl: Duration::from_secs(600),
            refresh_ttl: Duration::from_secs(14 * 86400),
            session_max: Duration::from_secs(30 * 86400),
            refresh_grace: Duration::from_secs(5),
            leeway: Duration::from_secs(30),
            issuer: None,
            audience: None,
            rotate_every: Duration::from_secs(7 * 86400),
            prepublish: Duration::from_secs(3600),
            verify_cache_entries: 10_000,
        }
    }
}

/// `cookies.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CookieMode {
    /// Readable claims cookie + HttpOnly signature cookie (default).
    Split,
    /// One HttpOnly cookie with the whole JWT.
    Whole,
}

/// Cookie settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CookieConfig {
    /// Default `split`.
    pub mode: CookieMode,
}

impl Default for CookieConfig {
    fn default() -> Self {
        CookieConfig {
            mode: CookieMode::Split,
        }
    }
}

/// CORS settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Exact origins (`scheme://host[:port]`) given credentialed CORS; they also pass the
    /// CSRF origin rule. Never `*` or `null`.
    pub allowed_origins: Vec<String>,
}

/// Limits on what clients may send and how long they may take.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest request body proxied (bytes). Default 1 MiB. Auth endpoints take at most 16 KiB.
    pub max_body_bytes: usize,
    /// Largest total request-header size (bytes). Default 16 KiB.
    pub max_header_bytes: usize,
    /// Most request headers. Default 64.
    pub max_headers: usize,
    /// Time to receive a request's headers (slow clients); also the time a new connection
    /// has for its TLS handshake, and then for its first request head. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// A connection with no open request (HTTP/1.1 keep-alive between requests, HTTP/2
    /// with no open stream) is closed after this long. HTTP/1.1 connections are closed
    /// after `header_timeout` already if it is shorter. Default 60 s.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A client that takes no response bytes for this long (a full socket, or an HTTP/2
    /// flow-control window it never opens) has its connection closed, and the upstream
    /// connection its response held with it. Default 30 s.
    #[serde(with = "humantime_serde")]
    pub send_timeout: Duration,
    /// A request body that sends no bytes for this long fails with 408 `request_timeout`.
    /// Default 30 s.
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// Whole-request deadline for tessera's own endpoints. Default 30 s.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Time for the upstream to answer with headers. Default 30 s.
    #[serde(with = "humantime_serde")]
    pub upstream_timeout: Duration,
    /// Most open connections. Default 4096.
    pub max_connections: usize,
    /// Most proxied requests in flight for one client IP (the peer, or the client named
    /// by a trusted proxy); more get 429 `rate_limited`. Each holds an upstream
    /// connection, so this keeps one client from holding them all. Default 256.
    pub max_upstream_per_ip: usize,
    /// How long shutdown waits for in-flight requests. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_body_bytes: 1 << 20,
            max_header_bytes: 16 << 10,
            max_headers: 64,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            upstream_timeout: Duration::from_secs(30),
            max_connections: 4096,
            max_upstream_per_ip: 256,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Password hashing (Argon2id) and policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordConfig {
    /// Argon2 memory in KiB. Default 19456 (OWASP). At least 8192.
    pub m_cost: u32,
    /// Argon2 iterations. Default 2.
    pub t_cost: u32,
    /// Argon2 lanes. Default 1.
    pub p_cost: u32,
    /// Minimum password length in characters. Default 8 (at least 8).
    pub min_length: usize,
    /// Maximum password length in bytes (bounds hashing input). Default 256 (at least 64).
    pub max_length: usize,
    /// A Have I Been Pwned SHA-1 file ordered by hash (`SHA1HEX:COUNT` lines): new
    /// passwords found in it are refused. Searched in place, never loaded. Default none.
    pub breached_list: Option<PathBuf>,
    /// Hashing threads. Default 0 = one per core.
    pub workers: usize,
    /// Logins waiting for a hashing thread before new ones get 503. Default 32.
    pub queue: usize,
    /// How the hashing threads share the CPU with the request threads (Linux). Default
    /// `idle`: hashing only uses CPU time requests leave free, so a login flood cannot
    /// slow authenticated traffic; on a saturated node logins wait, then overflow into
    /// 503 `overloaded`. `nice`: ordinary scheduling at `worker_nice`.
    pub worker_priority: WorkerPriority,
    /// Niceness of the hashing threads when `worker_priority = "nice"` (0–19). Default 10.
    pub worker_nice: i32,
}

/// Scheduling of the hashing threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerPriority {
    /// `SCHED_IDLE`.
    Idle,
    /// `SCHED_OTHER` at `worker_nice`.
    Nice,
}

impl Default for PasswordConfig {
    fn default() -> Self {
        PasswordConfig {
            m_cost: 19456,
            t_cost: 2,
            p_cost: 1,
            min_length: 8,
            max_length: 256,
            breached_list: None,
            workers: 0,
            queue: 32,
            worker_priority: WorkerPriority::Idle,
            worker_nice: 10,
        }
    }
}

impl PasswordConfig {
    /// The Argon2 parameters.
    pub fn params(&self) -> tessera_core::password::HashParams {
        tessera_core::password::HashParams {
            m_cost: self.m_cost,
            t_cost: self.t_cost,
            p_cost: self.p_cost,
        }
    }
}

/// Brute-force throttling of logins and token grants (token buckets).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Failed logins allowed per username per minute before 429. Default 5.
    pub per_username_per_minute: u32,
    /// Login attempts allowed per client IP per minute. Default 30.
    pub per_ip_per_minute: u32,
    /// How long a device token (the proof of a device that logged in as the user
    /// before, which lifts the per-username limit for that device) stays valid.
    /// Default 180 days.
    #[serde(with = "humantime_serde")]
    pub device_ttl: Duration,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            per_username_per_minute: 5,
            per_ip_per_minute: 30,
            device_ttl: Duration::from_secs(180 * 86_400),
        }
    }
}

/// `log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (default).
    Text,
    /// One JSON object per line.
    Json,
}

/// `log.color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogColor {
    /// Colour when stderr is a terminal and `NO_COLOR` is unset or empty (default).
    Auto,
    /// Always colour (text format), whatever stderr is and `NO_COLOR` says.
    Always,
    /// Never colour.
    Never,
}

impl LogColor {
    /// Whether text logs carry ANSI colour codes, given whether stderr is a terminal and
    /// the value of `NO_COLOR` (<https://no-color.org>: set and not empty means no colour).
    pub fn ansi(self, stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
        match self {
            LogColor::Always => true,
            LogColor::Never => false,
            LogColor::Auto => stderr_is_terminal && no_color.is_none_or(|v| v.is_empty()),
        }
    }
}

/// Logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Default `text`.
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` (default) or `tessera_server=debug`.
    pub level: String,
    /// ANSI colours in text logs. Default `auto`: only when stderr is a terminal.
    pub color: LogColor,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
            color: LogColor::Auto,
        }
    }
}

/// How often a node looks for revocations and keys made elsewhere.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// Revocation feed poll interval (PostgreSQL also pushes). Default 1 s.
    #[serde(with = "humantime_serde")]
    pub revocation_poll: Duration,
    /// Key reload interval. Default 10 s.
    #[serde(with = "humantime_serde")]
    pub key_poll: Duration,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            revocation_poll: Duration::from_secs(1),
            key_poll: Duration::from_secs(10),
        }
    }
}

/// A configuration problem: which key, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration key `{key}`: {problem}")]
pub struct ConfigError {
    /// The dotted key, e.g. `tokens.access_ttl`.
    pub key: String,
    /// What is wrong.
    pub problem: String,
}

fn bad(key: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        problem: problem.into(),
    }
}

/// Checks an origin is `scheme://host[:port]` with nothing else.
pub fn valid_origin(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once("://") else {
        return false;
    };
    (scheme == "https" || scheme == "http")
        && !rest.is_empty()
        && !rest.contains(['/', '?', '#', '@', ' '])
        && rest.is_ascii()
}

impl Config {
    /// Checks every value, naming the first bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.worker_threads > MAX_WORKER_THREADS {
            return Err(bad(
                "worker_threads",
                "must be between 0 (one per CPU) and 1024",
            ));
        }
        if let Some(o) = &self.public_origin {
            if !valid_origin(o) {
                return Err(bad(
                    "public_origin",
                    "must be scheme://host[:port], e.g. https://app.example.com",
                ));
            }
        }
        for (i, o) in self.origin_aliases.iter().enumerate() {
            if !valid_origin(o) {
                return Err(bad(
                    &format!("origin_aliases[{i}]"),
                    "must be scheme://host[:port], e.g. https://localhost:8443",
                ));
            }
        }
        if let Some(u) = &self.database_url {
            if !(u.starts_with("sqlite:")
                || u.starts_with("postgres:")
                || u.starts_with("postgresql:"))
            {
                return Err(bad("database_url", "must start with sqlite: or postgres:"));
            }
        }
        if let Some(u) = &self.upstream {
            let ok = u
                .parse::<hyper::Uri>()
                .ok()
                .is_some_and(|uri| uri.scheme_str() == Some("http") && uri.host().is_some());
            if !ok {
                return Err(bad("upstream", "must be an http://host[:port][/base] URL"));
            }
        }
        for (i, p) in self.public_paths.iter().enumerate() {
            if !p.starts_with('/') || p.contains("..") || p.contains('%') {
                return Err(bad(
                    &format!("public_paths[{i}]"),
                    "must be a plain absolute path prefix",
                ));
            }
        }
        self.validate_static()?;
        if self.tls.mode == TlsMode::Files {
            for (key, path) in [("tls.cert", &self.tls.cert), ("tls.key", &self.tls.key)] {
                if path.is_none() {
                    return Err(bad(key, "must be set when tls.mode = \"files\""));
                }
            }
        }
        let t = &self.tokens;
        if t.access_ttl < Duration::from_secs(1) || t.access_ttl > Duration::from_secs(3600) {
            return Err(bad("tokens.access_ttl", "must be between 1s and 1h"));
        }
        if t.refresh_ttl < t.access_ttl {
            return Err(bad(
                "tokens.refresh_ttl",
                "must be at least tokens.access_ttl",
            ));
        }
        if t.session_max < t.access_ttl {
            return Err(bad(
                "tokens.session_max",
                "must be at least tokens.access_ttl",
            ));
        }
        if t.refresh_grace > Duration::from_secs(60) {
            return Err(bad("tokens.refresh_grace", "must be at most 60s"));
        }
        if t.leeway > Duration::from_secs(60) {
            return Err(bad("tokens.leeway", "must be at most 60s"));
        }
        if t.rotate_every < Duration::from_secs(60) {
            return Err(bad("tokens.rotate_every", "must be at least 60s"));
        }
        if t.prepublish >= t.rotate_every {
            return Err(bad(
                "tokens.prepublish",
                "must be shorter than tokens.rotate_every",
            ));
        }
        for (i, o) in self.cors.allowed_origins.iter().enumerate() {
            if !valid_origin(o) {
                return Err(bad(
                    &format!("cors.allowed_origins[{i}]"),
                    "must be an exact origin (never * or null)",
                ));
            }
        }
        let l = &self.limits;
        for (key, value, least) in [
            ("limits.max_body_bytes", l.max_body_bytes, 1),
            ("limits.max_header_bytes", l.max_header_bytes, 1024),
            ("limits.max_headers", l.max_headers, 8),
            ("limits.max_connections", l.max_connections, 1),
        ] {
            if value < least {
                return Err(bad(key, format!("must be at least {least}")));
            }
        }
        for (key, d) in [
            ("limits.header_timeout", l.header_timeout),
            ("limits.idle_timeout", l.idle_timeout),
            ("limits.send_timeout", l.send_timeout),
            ("limits.body_timeout", l.body_timeout),
            ("limits.request_timeout", l.request_timeout),
            ("limits.upstream_timeout", l.upstream_timeout),
        ] {
            if d < Duration::from_millis(100) {
                return Err(bad(key, "must be at least 100ms"));
            }
        }
        if l.max_upstream_per_ip == 0 {
            return Err(bad("limits.max_upstream_per_ip", "must be at least 1"));
        }
        let p = &self.passwords;
        if p.m_cost < 8192 {
            return Err(bad("passwords.m_cost", "must be at least 8192 (KiB)"));
        }
        if p.t_cost == 0 {
            return Err(bad("passwords.t_cost", "must be at least 1"));
        }
        if p.p_cost == 0 {
            return Err(bad("passwords.p_cost", "must be at least 1"));
        }
        if p.min_length < 8 {
            return Err(bad("passwords.min_length", "must be at least 8"));
        }
        if p.max_length < 64 || p.max_length > 4096 {
            return Err(bad("passwords.max_length", "must be between 64 and 4096"));
        }
        if p.queue == 0 {
            return Err(bad("passwords.queue", "must be at least 1"));
        }
        if !(0..=19).contains(&p.worker_nice) {
            return Err(bad("passwords.worker_nice", "must be between 0 and 19"));
        }
        if let Some(path) = &p.breached_list {
            // Opened and sampled (about 70 reads of 256 bytes) so a missing, unreadable or
            // wrong file stops start-up instead of weakening every password change.
            tessera_core::password_policy::BreachedList::open(path)
                .map_err(|e| bad("passwords.breached_list", e.to_string()))?;
        }
        if self.dpop.max_age.is_zero() || self.dpop.max_age > Duration::from_secs(600) {
            return Err(bad("dpop.max_age", "must be between 1s and 10m"));
        }
        if self.dpop.max_skew > Duration::from_secs(60) {
            return Err(bad("dpop.max_skew", "must be at most 60s"));
        }
        if self.signatures.window.is_zero() || self.signatures.window > Duration::from_secs(3600) {
            return Err(bad("signatures.window", "must be between 1s and 1h"));
        }
        for (key, capacity) in [
            ("dpop.replay_capacity", self.dpop.replay_capacity),
            (
                "signatures.replay_capacity",
                self.signatures.replay_capacity,
            ),
        ] {
            if capacity == 0 {
                return Err(bad(key, "must be at least 1 (a replay cache needs room)"));
            }
        }
        let sig = &self.signatures;
        if sig.max_buffered_bytes < self.limits.max_body_bytes
            || u32::try_from(sig.max_buffered_bytes).is_err()
        {
            return Err(bad(
                "signatures.max_buffered_bytes",
                "must be at least limits.max_body_bytes and at most 4294967295",
            ));
        }
        if sig.body_timeout < Duration::from_millis(100)
            || sig.body_timeout > Duration::from_secs(600)
        {
            return Err(bad(
                "signatures.body_timeout",
                "must be between 100ms and 10m",
            ));
        }
        let r = &self.rate_limit;
        for (key, per_minute) in [
            (
                "rate_limit.per_username_per_minute",
                r.per_username_per_minute,
            ),
            ("rate_limit.per_ip_per_minute", r.per_ip_per_minute),
        ] {
            if per_minute == 0 {
                return Err(bad(key, "must be at least 1"));
            }
        }
        Ok(())
    }

    /// `static_csp`, `spa_fallback` and `api_prefixes`.
    fn validate_static(&self) -> Result<(), ConfigError> {
        if axum::http::HeaderValue::from_str(&self.static_csp).is_err()
            || self.static_csp.contains(['\r', '\n'])
        {
            return Err(bad(
                "static_csp",
                "must be one line of visible ASCII (a Content-Security-Policy header value)",
            ));
        }
        for (i, p) in self.api_prefixes.iter().enumerate() {
            if !p.starts_with('/') || p.contains("..") || p.contains('%') {
                return Err(bad(
                    &format!("api_prefixes[{i}]"),
                    "must be a plain absolute path prefix",
                ));
            }
        }
        if let Some(file) = &self.spa_fallback {
            let Some(dir) = &self.static_dir else {
                return Err(bad("spa_fallback", "needs static_dir"));
            };
            let plain = file
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
            if !plain || file.as_os_str().is_empty() {
                return Err(bad(
                    "spa_fallback",
                    "must be a relative path under static_dir, without `..`",
                ));
            }
            // Resolved (symbolic links followed) and held inside static_dir, as ServeDir
            // would serve it.
            let inside = std::fs::canonicalize(dir.join(file))
                .ok()
                .zip(std::fs::canonicalize(dir).ok())
                .is_some_and(|(f, d)| f.starts_with(d) && f.is_file());
            if !inside {
                return Err(bad(
                    "spa_fallback",
                    format!(
                        "{} is not an existing file under static_dir",
                        dir.join(file).display()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("tessera.db").display()))
    }
}
