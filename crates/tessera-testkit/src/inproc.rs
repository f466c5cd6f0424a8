//! In-process tessera: [`tessera_server::App`] served on a loopback port inside the test
//! process, with a [`ManualClock`] the test moves and an in-memory SQLite store. What
//! tessera decides by time (token expiry, refresh grace and idle windows, key rotation,
//! rate-limit refills) is tested by [`InProc::advance`], never by sleeping.
//!
//! ```no_run
//! # async fn demo() {
//! use std::time::Duration;
//! use tessera_testkit::inproc::InProc;
//! let server = InProc::builder().config("[tokens]\naccess_ttl = \"2s\"").start().await;
//! let mut client = server.demo_client().await;
//! assert_eq!(client.get("/api/notes").send().await.status, 200);
//! server.advance(Duration::from_secs(3));
//! assert_eq!(client.get("/api/notes").send().await.status, 401);
//! # }
//! ```
//!
//! Background work: [`tessera_server::spawn_background`] runs as in the binary (on tokio's
//! real timers, reading the manual clock). A test that moves the clock past a key
//! rotation or a revocation's end calls [`InProc::sync`], which does at once what the
//! next `sync.key_poll` / `sync.revocation_poll` tick would do. Paused tokio time
//! (`start_paused`) is not used for the server: paused, tokio jumps to the next timer
//! whenever no task is ready to run, as while a password is hashed on the hashing
//! threads (outside the runtime), and would then fire request and header timeouts. Code
//! scheduled on tokio's clock alone (tessera-verify's JWKS cache) is moved with
//! [`crate::skip_tokio_time`].
//!
//! Every use of the `tessera_server` and `tessera_store` APIs by the harness is in this
//! file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tessera_core::{Clock, ManualClock, MasterKey, UnixTime, UserId};
use tessera_server::config::{Config, TlsMode};
use tessera_server::{AppState, StateParts};
use tessera_store::{Store, StoreError, User};

use crate::client::{self, Client};
use crate::raw::{self, RawResponse};

/// Configures an in-process server before starting it.
#[derive(Debug, Clone)]
pub struct Builder {
    config: Vec<String>,
    demo: bool,
    fast_hashing: bool,
    start_at: Option<UnixTime>,
    database_url: Option<String>,
    on_disk: bool,
}

impl Builder {
    /// Extra TOML for the configuration (top-level keys and tables), as
    /// [`crate::ServerBuilder::config`] takes it. Each call is a TOML document of its own,
    /// merged table by table into what came before, so a later call may set a top-level
    /// key after an earlier one ended in a table.
    pub fn config(mut self, toml: &str) -> Self {
        self.config.push(toml.to_owned());
        self
    }

    /// Keeps the data as the binary does, in the data folder: the SQLite database
    /// `tessera.db` and the master key `master.key` (base64url), so a test can open them
    /// (to play the holder of a stolen key, or to plant a record). Default: an in-memory
    /// database and a master key only in memory.
    pub fn on_disk(mut self, on_disk: bool) -> Self {
        self.on_disk = on_disk;
        self
    }

    /// Demo mode (default true): a `demo` user with a random password and the roles
    /// `user` and `demo`, the built-in demo SPA at `/`, and (unless `upstream` is
    /// configured) the harness's [`crate::upstream`] as the upstream.
    pub fn demo(mut self, demo: bool) -> Self {
        self.demo = demo;
        self
    }

    /// Cheaper Argon2 parameters (`m_cost = 8192`, `t_cost = 1`; default true; ignored if
    /// the extra configuration has its own `[passwords]` table).
    pub fn fast_hashing(mut self, fast: bool) -> Self {
        self.fast_hashing = fast;
        self
    }

    /// What the clock shows at start (default: the system time when started).
    pub fn start_at(mut self, t: UnixTime) -> Self {
        self.start_at = Some(t);
        self
    }

    /// Another database than the in-memory SQLite one (e.g. a PostgreSQL test database).
    pub fn database_url(mut self, url: &str) -> Self {
        self.database_url = Some(url.to_owned());
        self
    }

    /// Starts the server; panics with the reason if it cannot.
    pub async fn start(self) -> InProc {
        match self.try_start().await {
            Ok(s) => s,
            Err(e) => panic!("in-process tessera did not start: {e}"),
        }
    }

    /// Starts the server: parses and validates the configuration, opens the store, adds
    /// the demo user, builds the state, spawns the sync loops and the accept loop on a
    /// `127.0.0.1:0` listener.
    pub async fn try_start(self) -> Result<InProc, String> {
        let panics_from = panics::install();
        let tmp = tempfile::Builder::new()
            .prefix("tessera-inproc-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let data_dir = tmp.path().join("data");
        std::fs::create_dir_all(&data_dir).map_err(|e| format!("data dir: {e}"))?;
        let database_url = match (&self.database_url, self.on_disk) {
            (Some(url), _) => url.clone(),
            (None, true) => format!("sqlite://{}", data_dir.join("tessera.db").display()),
            (None, false) => "sqlite::memory:".to_owned(),
        };
        let mut table = toml::Table::new();
        table.insert(
            "data_dir".into(),
            toml::Value::String(data_dir.to_string_lossy().into_owned()),
        );
        table.insert("database_url".into(), toml::Value::String(database_url));
        if self.fast_hashing && !self.config.iter().any(|c| c.contains("[passwords]")) {
            let mut passwords = toml::Table::new();
            passwords.insert("m_cost".into(), toml::Value::Integer(8192));
            passwords.insert("t_cost".into(), toml::Value::Integer(1));
            table.insert("passwords".into(), toml::Value::Table(passwords));
        }
        for fragment in &self.config {
            let more: toml::Table =
                toml::from_str(fragment).map_err(|e| format!("configuration {fragment:?}: {e}"))?;
            merge(&mut table, more);
        }
        let mut config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e| format!("configuration: {e}"))?;
        config.validate().map_err(|e| e.to_string())?;

        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .map_err(|e| format!("bind: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        config.listen = addr;
        let tls_on = config.tls.mode != TlsMode::Off;
        let scheme = if tls_on { "https" } else { "http" };
        let base_url = format!("{scheme}://{addr}");
        let public_origin = config
            .public_origin
            .clone()
            .unwrap_or_else(|| base_url.clone());
        // As the binary does: the public origin's host is a name of the self-signed
        // certificate too.
        let origin_host = tessera_server::http::tls::origin_host(&public_origin);
        let tls =
            tessera_server::http::tls::server_config(&config.tls, &config.data_dir, &[origin_host])
                .map_err(|e| e.to_string())?;

        let clock = Arc::new(ManualClock::new(
            self.start_at
                .unwrap_or_else(|| tessera_core::SystemClock.now()),
        ));
        let store = tessera_store::open(&config.database_url())
            .await
            .map_err(|e| format!("store: {e}"))?;

        let mut upstream = None;
        let mut upstream_url = config.upstream.clone();
        let mut demo_password = None;
        if self.demo {
            if config.upstream.is_none() {
                let url = crate::upstream::spawn()
                    .await
                    .map_err(|e| format!("upstream: {e}"))?;
                upstream = Some(url.clone());
                upstream_url = Some(url);
            }
            let password = crate::b64url_encode(&tessera_core::random_bytes::<12>());
            add_user(
                store.as_ref(),
                &config,
                clock.now(),
                "demo",
                &password,
                &["user", "demo"],
            )
            .await?;
            demo_password = Some(password);
        }
        let master = MasterKey::generate();
        if self.on_disk {
            std::fs::write(data_dir.join("master.key"), master.export_base64())
                .map_err(|e| format!("master.key: {e}"))?;
        }
        let clock_dyn: Arc<dyn Clock> = Arc::clone(&clock) as Arc<dyn Clock>;
        let state = AppState::build(StateParts {
            config: config.clone(),
            public_origin,
            store: Arc::clone(&store),
            master,
            clock: clock_dyn,
            upstream,
            demo_assets: self.demo,
            tls: tls_on,
        })
        .await
        .map_err(|e| format!("state: {e}"))?;
        tessera_server::spawn_background(Arc::clone(&state));
        let app = tessera_server::App::new(Arc::clone(&state));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let limits = config.limits.clone();
        let serving = tokio::spawn(async move {
            tessera_server::http::serve::run(listener, app, tls, limits, async move {
                let _ = stopped.await;
            })
            .await;
        });
        let cert_path = data_dir.join("tls").join("cert.pem");
        let http = if tls_on {
            client::http_client(&cert_path)
        } else {
            client::install_crypto_provider();
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| e.to_string())?
        };
        Ok(InProc {
            panics_from,
            thread: std::thread::current().name().map(str::to_owned),
            addr,
            base_url,
            cert_path,
            data_dir,
            upstream_url,
            demo_password,
            clock,
            state,
            store,
            config,
            http,
            stop: Some(stop),
            serving,
            _tmp: tmp,
        })
    }
}

/// Merges `more` into `base`: tables key by key, any other value replaced.
fn merge(base: &mut toml::Table, more: toml::Table) {
    for (k, v) in more {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(m)) => merge(b, m),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Adds a user as `tessera user add` does: a new id, the password hashed with the
/// configured parameters.
async fn add_user(
    store: &dyn Store,
    config: &Config,
    now: UnixTime,
    name: &str,
    password: &str,
    roles: &[&str],
) -> Result<UserId, String> {
    let hash = tessera_core::password::hash_password(password, config.passwords.params())
        .map_err(|e| format!("hash: {e}"))?;
    let user = User {
        id: UserId::random(),
        username: name.to_owned(),
        password_hash: hash,
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        created_at: now,
        disabled: false,
    };
    store
        .create_user(&user)
        .await
        .map_err(|e| format!("add user {name:?}: {e}"))?;
    Ok(user.id)
}

/// A tessera served inside the test process; stopped when dropped.
pub struct InProc {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// `https://127.0.0.1:<port>` (its origin).
    pub base_url: String,
    /// Its TLS certificate (self-signed mode).
    pub cert_path: PathBuf,
    /// Its data folder (TLS files; the store is in memory unless configured).
    pub data_dir: PathBuf,
    /// The upstream's base URL, if any.
    pub upstream_url: Option<String>,
    demo_password: Option<String>,
    clock: Arc<ManualClock>,
    state: Arc<AppState>,
    store: Arc<dyn Store>,
    config: Config,
    http: reqwest::Client,
    panics_from: usize,
    thread: Option<String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    serving: tokio::task::JoinHandle<()>,
    _tmp: tempfile::TempDir,
}

impl std::fmt::Debug for InProc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProc")
            .field("base_url", &self.base_url)
            .field("now", &self.clock.now())
            .finish()
    }
}

impl Drop for InProc {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.serving.abort();
    }
}

impl InProc {
    /// A builder (demo mode, fast hashing, the clock at the system time).
    pub fn builder() -> Builder {
        Builder {
            config: Vec::new(),
            demo: true,
            fast_hashing: true,
            start_at: None,
            database_url: None,
            on_disk: false,
        }
    }

    /// A demo server with the default configuration.
    pub async fn demo() -> InProc {
        InProc::builder().start().await
    }

    /// Moves the server's clock forward (whole seconds: tessera's times are seconds;
    /// a fraction is rounded up).
    pub fn advance(&self, by: Duration) {
        let secs = by.as_secs() + u64::from(by.subsec_nanos() > 0);
        self.clock.advance(secs);
    }

    /// What the server's clock shows.
    pub fn now(&self) -> UnixTime {
        self.clock.now()
    }

    /// The server's clock (to share with a verifier under test, so both move together).
    pub fn clock(&self) -> Arc<ManualClock> {
        Arc::clone(&self.clock)
    }

    /// Panics in this server's tasks since it started, as `thread: message` (see
    /// [`panics`]): what a test asserts empty where the black-box suites grep the
    /// binary's log for "panicked".
    pub fn panics(&self) -> Vec<String> {
        panics::since(self.panics_from, &self.thread)
    }

    /// Does now what the background loops do on their next tick: reloads service
    /// clients, ensures and reloads keys (rotating on schedule by the manual clock), and
    /// pulls the revocation feed into the denylist. Panics if any of it fails (see
    /// [`InProc::try_sync`]).
    pub async fn sync(&self) {
        let errors = self.try_sync().await;
        assert!(errors.is_empty(), "sync failed: {errors:?}");
    }

    /// [`InProc::sync`], returning what failed as the loops would log it (they keep
    /// going, and a failed key reload keeps the current keys).
    pub async fn try_sync(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if let Err(e) = tessera_server::auth::clients::reload(&self.state).await {
            errors.push(format!("client reload: {e}"));
        }
        if let Err(e) = tessera_server::cluster::sync::refresh_keys(&self.state).await {
            errors.push(format!("key refresh: {e}"));
        }
        if let Err(e) = tessera_server::cluster::sync::pull_revocations(&self.state).await {
            errors.push(format!("revocation pull: {e}"));
        }
        errors
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

    /// Adds a user (what `tessera user add NAME --role R --password-stdin` does).
    pub async fn add_user(&self, name: &str, password: &str, roles: &[&str]) {
        add_user(
            self.store.as_ref(),
            &self.config,
            self.clock.now(),
            name,
            password,
            roles,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Changes a user's password and ends their sessions (what `tessera user passwd`
    /// does); how many sessions ended.
    pub async fn set_password(&self, name: &str, password: &str) -> usize {
        let user = self.user(name).await;
        let hash = tessera_core::password::hash_password(password, self.config.passwords.params())
            .unwrap_or_else(|e| panic!("hash: {e}"));
        self.store
            .set_password_hash(user, &hash)
            .await
            .unwrap_or_else(|e| panic!("set password: {e}"));
        self.revoke_user_sessions(user).await
    }

    /// Logs a user out everywhere (what `tessera user revoke` does); how many sessions
    /// ended. Another node would see it at its next revocation pull; this one at its
    /// next tick, or at once after [`InProc::sync`].
    pub async fn revoke_user(&self, name: &str) -> usize {
        let user = self.user(name).await;
        self.revoke_user_sessions(user).await
    }

    async fn user(&self, name: &str) -> UserId {
        self.store
            .user_by_name(name)
            .await
            .unwrap_or_else(|e| panic!("user {name:?}: {e}"))
            .unwrap_or_else(|| panic!("no user named {name:?}"))
            .id
    }

    async fn revoke_user_sessions(&self, user: UserId) -> usize {
        let now = self.clock.now();
        let t = &self.config.tokens;
        let life = t.access_ttl.as_secs() + t.leeway.as_secs() + 1;
        self.store
            .revoke_user(user, now, now.plus(life))
            .await
            .unwrap_or_else(|e| panic!("revoke: {e}"))
            .len()
    }

    /// Rotates the signing key now (what `tessera keys rotate` does); the new key id.
    /// The server signs with it after its next key reload ([`InProc::sync`]).
    pub async fn rotate_keys(&self) -> String {
        tessera_server::cluster::keys::rotate_now(
            self.store.as_ref(),
            &self.state.master,
            tessera_server::key_schedule(&self.config),
            self.clock.now(),
        )
        .await
        .unwrap_or_else(|e| panic!("rotate: {e}"))
    }

    /// Adds a service client (what `tessera client add NAME` does): its key id and its
    /// secret (unpadded base64url of 32 bytes).
    pub async fn add_client(&self, name: &str) -> (String, String) {
        match tessera_server::auth::clients::add(
            self.store.as_ref(),
            &self.state.master,
            name,
            self.clock.now(),
        )
        .await
        {
            Ok((client, secret)) => (client.key_id.clone(), secret.as_str().to_owned()),
            Err(StoreError::Conflict) => panic!("client {name:?} already exists"),
            Err(e) => panic!("add client {name:?}: {e}"),
        }
    }

    /// Sends raw bytes over TLS (see [`raw::send`]).
    pub async fn raw(&self, request: &[u8]) -> RawResponse {
        raw::send(self.addr, &self.cert_path, request).await
    }

    /// [`InProc::raw`], reading the answer for at most `read_for`.
    pub async fn raw_with_timeout(&self, request: &[u8], read_for: Duration) -> RawResponse {
        raw::send_with_timeout(self.addr, &self.cert_path, request, read_for).await
    }

    /// A raw `GET target` (request target sent exactly as given) with extra header lines.
    pub async fn raw_get(&self, target: &str, extra_headers: &[String]) -> RawResponse {
        let req = raw::get_request(&self.addr.to_string(), target, extra_headers);
        self.raw(&req).await
    }

    /// Stops the server (as dropping it does).
    pub async fn stop(self) {
        drop(self);
    }
}

/// Panics in the test process, recorded by a panic hook (installed once, chained to the
/// previous one, which still prints them). A server's tasks run on the runtime of the
/// test that started it: on the test's own thread (tokio's default current-thread
/// runtime) or on `tokio-runtime-worker` threads (a multi-thread runtime, shared by name
/// with other such tests, whose panics may then be counted too).
pub mod panics {
    use std::sync::{Mutex, Once};

    static SEEN: Mutex<Vec<(Option<String>, String)>> = Mutex::new(Vec::new());
    static HOOK: Once = Once::new();

    /// Installs the hook (once); how many panics were recorded before this call.
    pub fn install() -> usize {
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                let thread = std::thread::current().name().map(str::to_owned);
                if let Ok(mut seen) = SEEN.lock() {
                    seen.push((thread, info.to_string()));
                }
                previous(info);
            }));
        });
        SEEN.lock().map_or(0, |s| s.len())
    }

    /// The panics recorded after the first `from` on `thread` or a tokio worker thread.
    pub fn since(from: usize, thread: &Option<String>) -> Vec<String> {
        SEEN.lock()
            .map(|s| {
                s.iter()
                    .skip(from)
                    .filter(|(t, _)| t == thread || t.as_deref() == Some("tokio-runtime-worker"))
                    .map(|(t, m)| format!("{}: {m}", t.as_deref().unwrap_or("?")))
                    .collect()
            })
            .unwrap_or_default()
    }
}
