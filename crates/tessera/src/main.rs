//! `tessera`: the authentication gateway (`serve`) and its administration commands.

mod config;
mod data;
mod demo;
mod init;

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tessera_core::password::{self, HashParams};
use tessera_core::password_policy::{
    BreachedList, BreachedListError, PasswordPolicy, PolicyViolation,
};
use tessera_core::{Clock, SystemClock, UserId};
use tessera_server::cluster::keys;
use tessera_server::config::{Config, LogFormat, TlsMode};
use tessera_server::key_schedule;
use tessera_server::{AppState, StateParts};
use tessera_store::{Store, StoreError, User};

#[derive(Parser)]
#[command(
    name = "tessera",
    version,
    about = "Authentication gateway for single-page apps and mobile clients"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct ConfigArg {
    /// TOML configuration file; every key can be overridden by TESSERA_<KEY>.
    #[arg(long, short = 'c', global = true)]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Create the data folder, master key, database and first signing keys.
    Init {
        #[command(flatten)]
        cfg: ConfigArg,
    },
    /// Run the gateway.
    Serve {
        #[command(flatten)]
        cfg: ConfigArg,
        /// Address to listen on (overrides `listen`); port 0 picks a free one.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Demo: embedded SQLite, self-signed TLS, a demo user, the demo SPA and API.
        #[arg(long)]
        demo: bool,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
        #[command(flatten)]
        cfg: ConfigArg,
    },
    /// Manage signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
        #[command(flatten)]
        cfg: ConfigArg,
    },
    /// Manage service clients that sign requests (RFC 9421, hmac-sha256).
    Client {
        #[command(subcommand)]
        command: ClientCommand,
        #[command(flatten)]
        cfg: ConfigArg,
    },
    /// Show recent audit events.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
        #[command(flatten)]
        cfg: ConfigArg,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user; the password is read from standard input.
    Add {
        /// Login name: 1–64 of A–Z a–z 0–9 . _ @ -
        name: String,
        /// A role (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Read the password from stdin (required: passwords never go on the command line).
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List,
    /// Change a user's password (read from stdin); ends all their sessions.
    Passwd {
        /// Login name.
        name: String,
        /// Read the password from stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Log a user out everywhere.
    Revoke {
        /// Login name.
        name: String,
    },
    /// Import users from a file of `username:phc_hash[:role,role]` lines (argon2 or bcrypt).
    Import {
        /// The file.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// List signing keys and their status.
    List,
    /// Rotate now: a new key signs from now on; the old one verifies until its tokens expire.
    Rotate,
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Add a client; prints its key id and secret once.
    Add {
        /// Its name (1–64 of A–Z a–z 0–9 . _ @ -), forwarded as X-Tessera-Client.
        name: String,
    },
    /// List clients (never their secrets).
    List,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Print the latest events as JSON lines.
    Tail {
        /// How many (0 … 10000).
        #[arg(short = 'n', long, default_value_t = 50,
              value_parser = clap::value_parser!(u64).range(0..=10_000))]
        lines: u64,
    },
}

/// A failure and its exit code (2 for configuration problems).
pub(crate) struct Failure {
    pub(crate) code: u8,
    pub(crate) message: String,
}

impl From<config::LoadError> for Failure {
    fn from(e: config::LoadError) -> Self {
        Failure {
            code: 2,
            message: e.to_string(),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        let code = if matches!(e, StoreError::Setup(_)) {
            2
        } else {
            1
        };
        let message = match &e {
            StoreError::Setup(m) => format!("configuration key `database_url`: {m}"),
            other => other.to_string(),
        };
        Failure { code, message }
    }
}

pub(crate) fn fail(message: impl Into<String>) -> Failure {
    Failure {
        code: 1,
        message: message.into(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` reads its configuration before the runtime exists: how many threads serve
    // requests is part of it.
    let (threads, loaded) = match &cli.command {
        Command::Serve { cfg, .. } => match config::load(cfg.config.as_deref()) {
            Ok(c) => (c.worker_threads, Some(c)),
            Err(e) => return report(&Failure::from(e)),
        },
        _ => (0, None),
    };
    let runtime = match runtime(threads) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tessera: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli, loaded)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => report(&f),
    }
}

/// Prints a failure and gives its exit code.
fn report(f: &Failure) -> ExitCode {
    eprintln!("tessera: {}", f.message);
    ExitCode::from(f.code)
}

/// The runtime serving requests on `worker_threads` threads (0: one per CPU the process
/// may use). With one thread it is tokio's single-threaded scheduler, which skips the
/// multi-threaded one's shared queues, work stealing and per-poll timing, so one CPU
/// proxies more requests per second.
fn runtime(worker_threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let n = match worker_threads {
        0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        n => n,
    };
    if n == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build()
    }
}

async fn run(cli: Cli, loaded: Option<Config>) -> Result<(), Failure> {
    match cli.command {
        Command::Init { cfg } => init::run(cfg.config.as_deref()).await,
        Command::Serve { cfg, listen, demo } => {
            let config = match loaded {
                Some(c) => c,
                None => config::load(cfg.config.as_deref())?,
            };
            serve(config, cfg.config.as_deref(), listen, demo).await
        }
        Command::User { command, cfg } => user(command, cfg.config.as_deref()).await,
        Command::Keys { command, cfg } => keys_cmd(command, cfg.config.as_deref()).await,
        Command::Client { command, cfg } => client_cmd(command, cfg.config.as_deref()).await,
        Command::Audit {
            command: AuditCommand::Tail { lines },
            cfg,
        } => {
            let (_, store) = open(cfg.config.as_deref()).await?;
            if lines == 0 {
                return Ok(());
            }
            let limit = i64::try_from(lines).unwrap_or(10_000);
            for e in store.recent_audit(limit).await? {
                println!("{}", serde_json::to_string(&e).unwrap_or_default());
            }
            Ok(())
        }
    }
}

fn init_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    // Colour only where someone reads it: a terminal, unless NO_COLOR or `log.color`
    // says otherwise (files and journald get plain text).
    let ansi = config.log.format == LogFormat::Text
        && config.log.color.ansi(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR").as_deref(),
        );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Opens the store for an admin command (refused when there is no data).
async fn open(file: Option<&Path>) -> Result<(Config, Arc<dyn Store>), Failure> {
    let config = config::load(file)?;
    let store = data::open_existing(&config, file).await?;
    Ok((config, store))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

async fn serve(
    mut config: Config,
    file: Option<&Path>,
    listen: Option<std::net::SocketAddr>,
    demo: bool,
) -> Result<(), Failure> {
    if let Some(l) = listen {
        config.listen = l;
    }
    init_tracing(&config);
    // `serve` creates its data on first start (containers start with `serve`), saying so
    // in one line; the admin commands never do (docs/configuration.md, "Data").
    let place = data::Place::new(&config, file);
    let mut created = Vec::new();
    if data::create_data_dir(&config.data_dir)? {
        created.push(format!("data folder {} (0700)", place.data_dir));
    }
    let url = config.database_url();
    let existed = tessera_store::exists(&url).await?;
    let (master, source, made) = data::master_key_or_new(&config, existed).await?;
    if made {
        created.push(format!("master key {source} (0600)"));
    }
    if !existed {
        data::prepare_sqlite(&url)?;
    }
    let store = tessera_store::open(&url).await?;
    if !existed {
        created.push(format!("database {}", place.database));
    }
    data::warn_if_shared(&config.data_dir, "the data folder");
    if let Some(db) = tessera_store::sqlite_file(&url) {
        data::warn_if_shared(&db, "the database");
    }
    if !created.is_empty() {
        tracing::info!(
            "no tessera data found: created a new {}",
            created.join(", ")
        );
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| Failure {
            code: 2,
            message: format!(
                "configuration key `listen`: cannot bind {}: {e}",
                config.listen
            ),
        })?;
    let addr = listener.local_addr().map_err(|e| fail(e.to_string()))?;
    let tls_on = config.tls.mode != TlsMode::Off;
    let scheme = if tls_on { "https" } else { "http" };
    let public_origin = config
        .public_origin
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{addr}"));
    let origin_host = tessera_server::http::tls::origin_host(&public_origin);
    let tls =
        tessera_server::http::tls::server_config(&config.tls, &config.data_dir, &[origin_host])
            .map_err(|m| Failure {
                code: 2,
                message: m.to_string(),
            })?;

    let mut upstream = None;
    let mut demo_credentials = None;
    if demo {
        if config.upstream.is_none() {
            upstream = Some(
                demo::spawn_api()
                    .await
                    .map_err(|e| fail(format!("demo API: {e}")))?,
            );
        }
        demo_credentials = Some(
            demo::ensure_demo_user(
                store.as_ref(),
                &config.data_dir,
                config.passwords.params(),
                clock.now(),
            )
            .await
            .map_err(|e| fail(e.to_string()))?,
        );
    }
    let state = AppState::build(StateParts {
        config: config.clone(),
        public_origin: public_origin.clone(),
        store,
        master,
        clock,
        upstream,
        demo_assets: demo,
        tls: tls_on,
    })
    .await
    .map_err(|e| fail(e.to_string()))?;
    tessera_server::spawn_background(Arc::clone(&state));
    let app = tessera_server::App::new(Arc::clone(&state));
    if let Some((user, password)) = demo_credentials {
        println!("demo user: {user}  password: {password}");
        println!("open {public_origin}/ (self-signed certificate: accept it in the browser)");
    }
    println!("listening on {scheme}://{addr}");
    tracing::info!(%addr, %public_origin, "tessera started");
    tessera_server::http::serve::run(listener, app, tls, config.limits.clone(), shutdown_signal())
        .await;
    Ok(())
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b))
}

fn valid_role(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

fn read_password(
    config: &Config,
    username: &str,
    from_stdin: bool,
) -> Result<zeroize::Zeroizing<String>, Failure> {
    if !from_stdin {
        return Err(fail(
            "pass --password-stdin and write the password to standard input",
        ));
    }
    // Before reading: a bad breached list is reported before anyone types a password.
    let policy = password_policy(config)?;
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("password (then Enter):");
    }
    let mut line = zeroize::Zeroizing::new(String::new());
    let read = stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| fail(format!("reading stdin: {e}")))?;
    let pw = zeroize::Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned());
    if read == 0 || pw.is_empty() {
        return Err(fail(
            "no password on stdin: write the password, then a newline, to standard input",
        ));
    }
    match policy.check(&pw, username) {
        Ok(()) => Ok(pw),
        Err(PolicyViolation::BreachedListUnusable(e)) => Err(breached_list_failure(e)),
        // The message names the rule, never the password.
        Err(violation) => Err(fail(violation.to_string())),
    }
}

/// The policy of `passwords`: lengths, the built-in common list, the breached list if set.
fn password_policy(config: &Config) -> Result<PasswordPolicy, Failure> {
    let p = &config.passwords;
    let policy = PasswordPolicy::new(p.min_length, p.max_length);
    match &p.breached_list {
        Some(path) => {
            Ok(policy.with_breached_list(BreachedList::open(path).map_err(breached_list_failure)?))
        }
        None => Ok(policy),
    }
}

/// A breached list that cannot be searched is a configuration problem (exit 2); no
/// password is accepted unchecked.
fn breached_list_failure(e: BreachedListError) -> Failure {
    Failure {
        code: 2,
        message: format!("configuration key `passwords.breached_list`: {e}"),
    }
}

fn hash(pw: &str, params: HashParams) -> Result<String, Failure> {
    password::hash_password(pw, params).map_err(|e| fail(e.to_string()))
}

async fn find_user(store: &dyn Store, name: &str) -> Result<User, Failure> {
    store
        .user_by_name(name)
        .await?
        .ok_or_else(|| fail(format!("no user named {name:?}")))
}

fn token_life(config: &Config) -> u64 {
    config.tokens.access_ttl.as_secs() + config.tokens.leeway.as_secs() + 1
}

async fn user(command: UserCommand, file: Option<&Path>) -> Result<(), Failure> {
    let (config, store) = open(file).await?;
    let now = SystemClock.now();
    match command {
        UserCommand::Add {
            name,
            roles,
            password_stdin,
        } => {
            if !valid_name(&name) {
                return Err(fail("username: 1 to 64 of A-Z a-z 0-9 . _ @ -"));
            }
            if let Some(bad) = roles.iter().find(|r| !valid_role(r)) {
                return Err(fail(format!(
                    "role {bad:?}: 1 to 64 of A-Z a-z 0-9 . _ : -"
                )));
            }
            let pw = read_password(&config, &name, password_stdin)?;
            let user = User {
                id: UserId::random(),
                username: name.clone(),
                password_hash: hash(&pw, config.passwords.params())?,
                roles,
                created_at: now,
                disabled: false,
            };
            match store.create_user(&user).await {
                Ok(()) => println!("added user {name} ({})", user.id),
                Err(StoreError::Conflict) => {
                    return Err(fail(format!("user {name:?} already exists")))
                }
                Err(e) => return Err(e.into()),
            }
        }
        UserCommand::List => {
            println!("{:<24} {:<24} {:<10} ROLES", "USERNAME", "ID", "STATUS");
            for u in store.list_users().await? {
                let status = if u.disabled { "disabled" } else { "active" };
                println!(
                    "{:<24} {:<24} {:<10} {}",
                    u.username,
                    u.id,
                    status,
                    u.roles.join(",")
                );
            }
        }
        UserCommand::Passwd {
            name,
            password_stdin,
        } => {
            let user = find_user(store.as_ref(), &name).await?;
            let pw = read_password(&config, &name, password_stdin)?;
            store
                .set_password_hash(user.id, &hash(&pw, config.passwords.params())?)
                .await?;
            let ended = store
                .revoke_user(user.id, now, now.plus(token_life(&config)))
                .await?;
            println!(
                "password changed for {name}; {} session(s) ended",
                ended.len()
            );
        }
        UserCommand::Revoke { name } => {
            let user = find_user(store.as_ref(), &name).await?;
            let ended = store
                .revoke_user(user.id, now, now.plus(token_life(&config)))
                .await?;
            println!(
                "{name} logged out everywhere: {} session(s) ended",
                ended.len()
            );
        }
        UserCommand::Import { file } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| fail(format!("{}: {e}", file.display())))?;
            // Every line is checked before any user is added: a bad line adds nobody.
            let parsed = parse_import(&text)
                .map_err(|(line, why)| fail(format!("{}:{line}: {why}", file.display())))?;
            let (mut added, mut skipped) = (0, 0);
            for (name, phc, roles) in parsed {
                let user = User {
                    id: UserId::random(),
                    username: name,
                    password_hash: phc,
                    roles,
                    created_at: now,
                    disabled: false,
                };
                match store.create_user(&user).await {
                    Ok(()) => added += 1,
                    Err(StoreError::Conflict) => skipped += 1,
                    Err(e) => return Err(e.into()),
                }
            }
            println!("imported {added} user(s), skipped {skipped} existing; hashes are upgraded to argon2id at each user's next login");
        }
    }
    Ok(())
}

/// One import line's `(username, hash, roles)`.
type ImportLine = (String, String, Vec<String>);

/// Parses a `user import` file: `username:phc_hash[:role,role]` lines, `#` comments and
/// blank lines. An error is `(line number, what is wrong)`, naming the field (username,
/// hash or role) and never showing the hash field, which may be a plain password.
fn parse_import(text: &str) -> Result<Vec<ImportLine>, (usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.splitn(3, ':');
        let (Some(name), Some(phc)) = (parts.next(), parts.next()) else {
            return Err((
                n,
                "expected username:hash[:role,role] (no `:` found; the line is not shown)".into(),
            ));
        };
        if !valid_name(name) {
            let shown: String = name.chars().take(64).collect();
            return Err((
                n,
                format!("username {shown:?}: must be 1 to 64 of A-Z a-z 0-9 . _ @ -"),
            ));
        }
        if !password::is_supported_hash(phc) {
            return Err((
                n,
                format!(
                    "hash of {name:?}: not an argon2 or bcrypt PHC string (e.g. $argon2id$… or \
                     $2b$…); the field is not shown"
                ),
            ));
        }
        let roles: Vec<String> = parts
            .next()
            .map(|r| {
                r.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        if let Some(bad) = roles.iter().find(|r| !valid_role(r)) {
            let shown: String = bad.chars().take(64).collect();
            return Err((
                n,
                format!("role {shown:?} of {name:?}: must be 1 to 64 of A-Z a-z 0-9 . _ : -"),
            ));
        }
        out.push((name.to_owned(), phc.to_owned(), roles));
    }
    Ok(out)
}

/// An instant as RFC 3339 UTC to the second (`2026-12-04T01:00:00Z`).
fn rfc3339(t: tessera_core::UnixTime) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.0);
    humantime::format_rfc3339_seconds(at).to_string()
}

async fn keys_cmd(command: KeysCommand, file: Option<&Path>) -> Result<(), Failure> {
    let (config, store) = open(file).await?;
    let master = data::admin_master_key(&config, store.as_ref()).await?;
    let now = SystemClock.now();
    let schedule = key_schedule(&config);
    match command {
        KeysCommand::List => {
            // Read-only: the servers make and retire keys on their schedule.
            let ring = keys::load_ring(store.as_ref(), &master, now)
                .await
                .map_err(|e| fail(e.to_string()))?;
            println!(
                "{:<14} {:<6} {:<8} {:<20} {:<20} EXPIRES (UTC)",
                "KID", "ALG", "STATUS", "ACTIVATES", "RETIRES"
            );
            let fmt = |t: Option<tessera_core::UnixTime>| t.map_or("-".to_owned(), rfc3339);
            for k in ring.keys() {
                let status = format!("{:?}", ring.status(k.kid(), now)).to_lowercase();
                println!(
                    "{:<14} {:<6} {:<8} {:<20} {:<20} {}",
                    k.kid(),
                    k.alg().name(),
                    status,
                    rfc3339(k.activates_at()),
                    fmt(k.retires_at()),
                    fmt(k.expires_at())
                );
            }
        }
        KeysCommand::Rotate => {
            let kid = keys::rotate_now(store.as_ref(), &master, schedule, now)
                .await
                .map_err(|e| fail(e.to_string()))?;
            println!(
                "rotated: new signing key {kid}; running nodes pick it up within {}s",
                config.sync.key_poll.as_secs()
            );
        }
    }
    Ok(())
}

async fn client_cmd(command: ClientCommand, file: Option<&Path>) -> Result<(), Failure> {
    let (config, store) = open(file).await?;
    match command {
        ClientCommand::Add { name } => {
            if !valid_name(&name) {
                return Err(fail("client name: 1 to 64 of A-Z a-z 0-9 . _ @ -"));
            }
            let master = data::admin_master_key(&config, store.as_ref()).await?;
            match tessera_server::auth::clients::add(
                store.as_ref(),
                &master,
                &name,
                SystemClock.now(),
            )
            .await
            {
                Ok((client, secret)) => {
                    println!("client: {name}");
                    println!("key id: {}", client.key_id);
                    println!("secret: {}", secret.as_str());
                    println!("(the secret is the base64url of a 32-byte HMAC-SHA256 key; it is shown only now)");
                }
                Err(StoreError::Conflict) => {
                    return Err(fail(format!("client {name:?} already exists")))
                }
                Err(e) => return Err(e.into()),
            }
        }
        ClientCommand::List => {
            println!("{:<24} {:<18} STATUS", "NAME", "KEY ID");
            for c in store.list_clients().await? {
                let status = if c.disabled { "disabled" } else { "active" };
                println!("{:<24} {:<18} {status}", c.name, c.key_id);
            }
        }
    }
    Ok(())
}
