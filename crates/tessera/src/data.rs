//! Where tessera's data is (data folder, database, master key), whether it is there, and
//! opening it. The admin commands never create data: with none where the configuration
//! points they say where they looked and stop; `tessera init` and `tessera serve` create
//! it (docs/configuration.md, "Data").

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tessera_core::{Clock, MasterKey, SystemClock};
use tessera_server::cluster::keys::{self, KeysError};
use tessera_server::config::Config;
use tessera_store::Store;

use crate::{fail, Failure};

/// A path as a user should read it: absolute (the working directory is often not the
/// one they think).
pub(crate) fn shown(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// A database URL without its password (`postgres://user:***@host/db`).
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    if scheme.starts_with("sqlite") {
        let path = rest.split('?').next().unwrap_or(rest);
        return format!("{scheme}://{}", shown(Path::new(path)));
    }
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    // `?password=…` is a PostgreSQL URL parameter too.
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|kv| {
                    if kv.to_ascii_lowercase().starts_with("password=") {
                        "password=***".to_owned()
                    } else {
                        kv.to_owned()
                    }
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// Where the data is expected, for messages.
pub(crate) struct Place {
    /// The data folder, absolute.
    pub data_dir: String,
    /// The database URL, absolute and without a password.
    pub database: String,
    /// The configuration file, if one was given.
    pub config_file: Option<String>,
}

impl Place {
    /// Where `config` (read from `file`) points.
    pub(crate) fn new(config: &Config, file: Option<&Path>) -> Place {
        Place {
            data_dir: shown(&config.data_dir),
            database: redact(&config.database_url()),
            config_file: file.map(shown),
        }
    }

    /// "data folder …, database …, configuration file …".
    pub(crate) fn describe(&self) -> String {
        let config = match &self.config_file {
            Some(f) => format!("configuration file {f}"),
            None => "no configuration file (no --config; defaults and TESSERA_* variables)".into(),
        };
        format!(
            "data folder {}, database {}, {config}",
            self.data_dir, self.database
        )
    }
}

/// Where a master key came from.
pub(crate) enum MasterSource {
    /// `TESSERA_MASTER_KEY`.
    Env,
    /// `data_dir/master.key`.
    File(PathBuf),
}

impl std::fmt::Display for MasterSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MasterSource::Env => f.write_str("TESSERA_MASTER_KEY"),
            MasterSource::File(p) => f.write_str(&shown(p)),
        }
    }
}

/// The master-key file of a data folder.
pub(crate) fn master_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("master.key")
}

/// The master key: `TESSERA_MASTER_KEY`, else `data_dir/master.key`; `None` if neither
/// is there. Never creates one.
pub(crate) fn find_master_key(
    data_dir: &Path,
) -> Result<Option<(MasterKey, MasterSource)>, Failure> {
    if let Ok(v) = std::env::var("TESSERA_MASTER_KEY") {
        let key = MasterKey::parse(&v).ok_or_else(|| Failure {
            code: 2,
            message: "TESSERA_MASTER_KEY: must be 32 random bytes, base64-encoded".into(),
        })?;
        return Ok(Some((key, MasterSource::Env)));
    }
    let path = master_key_path(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                if let Ok(meta) = std::fs::metadata(&path) {
                    if meta.permissions().mode() & 0o077 != 0 {
                        tracing::warn!(path = %path.display(), "master key file is readable by others; chmod 600 it");
                    }
                }
            }
            let key = MasterKey::parse(&text).ok_or_else(|| Failure {
                code: 2,
                message: format!("{}: not a base64 32-byte master key", shown(&path)),
            })?;
            Ok(Some((key, MasterSource::File(path))))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(fail(format!("{}: {e}", shown(&path)))),
    }
}

/// Makes a new master key in `data_dir/master.key` (0600).
pub(crate) fn create_master_key(data_dir: &Path) -> Result<(MasterKey, PathBuf), Failure> {
    let path = master_key_path(data_dir);
    let key = MasterKey::generate();
    tessera_server::fsutil::write_private(&path, key.export_base64().as_bytes())
        .map_err(|e| fail(format!("{}: {e}", shown(&path))))?;
    Ok((key, path))
}

/// The master key for a command that may create one (`init`, `serve`): the existing
/// one, else a new `data_dir/master.key` — unless the database (`existed`) already holds
/// signing keys, which a new key could not open: then it is refused (exit 2) and no file
/// is left behind. The `bool` says whether a key was made.
pub(crate) async fn master_key_or_new(
    config: &Config,
    existed: bool,
) -> Result<(MasterKey, MasterSource, bool), Failure> {
    if let Some((key, source)) = find_master_key(&config.data_dir)? {
        return Ok((key, source, false));
    }
    if existed {
        let store = tessera_store::open(&config.database_url()).await?;
        let stored = store.list_keys().await?;
        if !stored.is_empty() {
            return Err(Failure {
                code: 2,
                message: format!(
                    "database {} holds {} signing key(s), but no master key was found \
                     (TESSERA_MASTER_KEY is not set and {} does not exist): refusing to make \
                     a new one, which could not open them. Give tessera the cluster's master key",
                    redact(&config.database_url()),
                    stored.len(),
                    shown(&master_key_path(&config.data_dir))
                ),
            });
        }
    }
    let (key, path) = create_master_key(&config.data_dir)?;
    Ok((key, MasterSource::File(path), true))
}

/// Logs a warning if `path` (made before tessera made its data private) can be read by
/// others than its owner.
pub(crate) fn warn_if_shared(path: &Path, what: &str) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                let fix = if meta.is_dir() {
                    "chmod 700"
                } else {
                    "chmod 600"
                };
                tracing::warn!(path = %shown(path), "{what} is readable by others; {fix} it");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (path, what);
}

/// Creates the data folder (0700) if missing; true if it made it.
pub(crate) fn create_data_dir(data_dir: &Path) -> Result<bool, Failure> {
    tessera_server::fsutil::create_private_dir(data_dir).map_err(|e| Failure {
        code: 2,
        message: format!("configuration key `data_dir`: {}: {e}", shown(data_dir)),
    })
}

/// For a SQLite URL whose file is missing: makes its folder (0700) and an empty file
/// (0600) for SQLite to fill, so the database and its `-wal`/`-shm` files are the
/// owner's only. True if it made the file.
pub(crate) fn prepare_sqlite(url: &str) -> Result<bool, Failure> {
    let Some(path) = tessera_store::sqlite_file(url) else {
        return Ok(false);
    };
    let setup = |e: std::io::Error| Failure {
        code: 2,
        message: format!("configuration key `database_url`: {}: {e}", shown(&path)),
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        tessera_server::fsutil::create_private_dir(parent).map_err(setup)?;
    }
    tessera_server::fsutil::create_private_file(&path).map_err(setup)
}

/// Opens the store for an admin command: refuses (exit 2) when there is no tessera data
/// where the configuration points, instead of creating an empty database.
pub(crate) async fn open_existing(
    config: &Config,
    file: Option<&Path>,
) -> Result<Arc<dyn Store>, Failure> {
    let url = config.database_url();
    if !tessera_store::exists(&url).await? {
        return Err(Failure {
            code: 2,
            message: format!(
                "no tessera data found (looked at: {}). Create it with `tessera init{}`, or \
                 point --config, data_dir or database_url at the existing data",
                Place::new(config, file).describe(),
                file.map_or(String::new(), |f| format!(" --config {}", f.display()))
            ),
        });
    }
    Ok(tessera_store::open(&url).await?)
}

/// Checks that `master` opens the signing keys in `store`; a key of another cluster is
/// refused, naming where it came from.
pub(crate) async fn check_master_key(
    store: &dyn Store,
    master: &MasterKey,
    source: &MasterSource,
    database: &str,
) -> Result<(), Failure> {
    match keys::load_ring(store, master, SystemClock.now()).await {
        Ok(_) => Ok(()),
        Err(KeysError::Unseal { kid }) => Err(Failure {
            code: 2,
            message: format!(
                "the master key in {source} cannot open signing key {kid} stored in {database}: \
                 it is not the master key of the servers using this database. The CLI needs \
                 the cluster's master key: set TESSERA_MASTER_KEY to it, or run where its \
                 master.key is"
            ),
        }),
        Err(e) => Err(fail(e.to_string())),
    }
}

/// The master key for an admin command that needs it (`keys`, `client add`): never
/// created; missing, or not this cluster's, is refused (exit 2) saying where it looked.
pub(crate) async fn admin_master_key(
    config: &Config,
    store: &dyn Store,
) -> Result<MasterKey, Failure> {
    let database = redact(&config.database_url());
    let Some((master, source)) = find_master_key(&config.data_dir)? else {
        return Err(Failure {
            code: 2,
            message: format!(
                "no master key: TESSERA_MASTER_KEY is not set and {} does not exist. This \
                 command needs the cluster's master key (the one the servers of {database} \
                 use); it never makes one",
                shown(&master_key_path(&config.data_dir))
            ),
        });
    };
    check_master_key(store, &master, &source, &database).await?;
    Ok(master)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_passwords_only() {
        assert_eq!(
            redact("postgres://tessera:s3cret@db.internal:5432/tessera"),
            "postgres://tessera:***@db.internal:5432/tessera"
        );
        assert_eq!(
            redact("postgresql://u@h/db?sslmode=require&password=x"),
            "postgresql://u@h/db?sslmode=require&password=***"
        );
        assert_eq!(redact("postgres://h:5/db"), "postgres://h:5/db");
        assert!(redact("sqlite://./x/tessera.db").ends_with("/x/tessera.db"));
        assert!(redact("sqlite://./x/tessera.db").starts_with("sqlite:///"));
    }
}
