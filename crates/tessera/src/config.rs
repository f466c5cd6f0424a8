//! Loading the configuration: TOML file, then `TESSERA_*` environment overrides (nested
//! keys joined by `__`, e.g. `TESSERA_TOKENS__ACCESS_TTL=15m`), then validation.
//! Every problem names the key it is about.

use std::path::Path;

use tessera_server::config::{Config, ConfigError};
use toml::{Table, Value};

/// Top-level keys (the ones an environment variable may address).
const TOP_LEVEL: &[&str] = &[
    "listen",
    "worker_threads",
    "dpop",
    "signatures",
    "public_origin",
    "origin_aliases",
    "data_dir",
    "database_url",
    "upstream",
    "static_dir",
    "public_paths",
    "static_csp",
    "spa_fallback",
    "api_prefixes",
    "trusted_proxies",
    "tls",
    "tokens",
    "cookies",
    "cors",
    "limits",
    "passwords",
    "rate_limit",
    "log",
    "sync",
];

/// `TESSERA_*` variables that are not configuration and are allowed next to it: the
/// master key the binary reads, and the variables of the project's own tooling, which
/// end up in the environment of a binary started from them (`e2e/run` and `scripts/test`
/// export `TESSERA_BIN`; the test suites read `TESSERA_TEST_PG_URL`,
/// `TESSERA_REQUIRE_POSTGRES` and `TESSERA_SKIP_NGINX`; a benchmark `TESSERA_HIBP_FILE`;
/// the `tessera-verify` example `TESSERA_URL` and `TESSERA_CA`). Any other `TESSERA_*`
/// variable is a misspelt key and stops start-up (docs/configuration.md).
pub(crate) const NOT_CONFIGURATION: &[&str] = &[
    "TESSERA_MASTER_KEY",
    "TESSERA_BIN",
    "TESSERA_TEST_PG_URL",
    "TESSERA_REQUIRE_POSTGRES",
    "TESSERA_SKIP_NGINX",
    "TESSERA_HIBP_FILE",
    "TESSERA_URL",
    "TESSERA_CA",
];

/// Why the configuration could not be loaded: a key with a bad value (or an unknown one),
/// or a file or variable that is not configuration at all.
#[derive(Debug)]
pub(crate) enum LoadError {
    /// A key's value (or an unknown key), named.
    Key(ConfigError),
    /// The file cannot be read or is not TOML, or a `TESSERA_*` variable is unknown.
    Other(String),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Key(e) => e.fmt(f),
            LoadError::Other(m) => f.write_str(m),
        }
    }
}

impl From<ConfigError> for LoadError {
    fn from(e: ConfigError) -> Self {
        LoadError::Key(e)
    }
}

fn err(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        problem: problem.into(),
    }
}

/// Interprets an environment value as TOML (numbers, booleans, arrays) or else a string.
fn env_value(raw: &str) -> Value {
    match format!("v = {raw}").parse::<Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| Value::String(raw.to_owned())),
        Err(_) => Value::String(raw.to_owned()),
    }
}

/// For a variable naming no configuration key: the variable that probably was meant
/// (`TESSERA_TOKENS_ACCESS_TTL` → `TESSERA_TOKENS__ACCESS_TTL`).
fn suggestion(rest_lower: &str) -> Option<String> {
    TOP_LEVEL.iter().find_map(|top| {
        let tail = rest_lower.strip_prefix(top)?.strip_prefix('_')?;
        (!tail.is_empty() && !tail.starts_with('_')).then(|| {
            format!(
                "TESSERA_{}__{}",
                top.to_ascii_uppercase(),
                tail.to_ascii_uppercase()
            )
        })
    })
}

/// Applies `TESSERA_*` variables from `vars` onto `table`; returns which variable set
/// which dotted key (so a bad value can name its variable). A `TESSERA_*` variable that
/// names no top-level key and is not in [`NOT_CONFIGURATION`] is refused.
pub(crate) fn overlay_env(
    table: &mut Table,
    vars: impl Iterator<Item = (String, String)>,
) -> Result<Vec<(String, String)>, LoadError> {
    let mut set_by = Vec::new();
    for (name, raw) in vars {
        let Some(rest) = name.strip_prefix("TESSERA_") else {
            continue;
        };
        if NOT_CONFIGURATION.contains(&name.as_str()) {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        let first = path.first().cloned().unwrap_or_default();
        if !TOP_LEVEL.contains(&first.as_str()) {
            let hint = match suggestion(&rest.to_ascii_lowercase()) {
                Some(s) => format!(" (did you mean {s}? nested keys are joined by `__`)"),
                None => String::new(),
            };
            return Err(LoadError::Other(format!(
                "environment variable {name}: no configuration key `{}`{hint}; \
                 TESSERA_* variables set configuration keys (docs/configuration.md)",
                path.join(".")
            )));
        }
        let key = path.join(".");
        let mut cur = &mut *table;
        for seg in &path[..path.len() - 1] {
            let entry = cur
                .entry(seg.clone())
                .or_insert_with(|| Value::Table(Table::new()));
            cur = match entry {
                Value::Table(t) => t,
                _ => return Err(err(&key, format!("{name}: `{seg}` is not a table")).into()),
            };
        }
        let leaf = path.last().cloned().unwrap_or_default();
        cur.insert(leaf, env_value(&raw));
        set_by.push((key, name));
    }
    Ok(set_by)
}

/// The environment as UTF-8 pairs; a `TESSERA_*` variable whose value is not UTF-8 is
/// refused (others are not ours to judge).
fn environment() -> Result<Vec<(String, String)>, LoadError> {
    let mut out = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str().map(str::to_owned) else {
            continue;
        };
        if !name.starts_with("TESSERA_") {
            continue;
        }
        let value = value.into_string().map_err(|_| {
            LoadError::Other(format!("environment variable {name}: not valid UTF-8"))
        })?;
        out.push((name, value));
    }
    Ok(out)
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// A multi-line message on one line.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Parses the configuration file, naming the file, line and column of a syntax error.
fn parse_file(path: &Path, text: &str) -> Result<Table, LoadError> {
    text.parse::<Table>().map_err(|e| {
        let at = e.span().map_or(String::new(), |span| {
            let (line, col) = line_col(text, span.start);
            format!(":{line}:{col}")
        });
        LoadError::Other(format!(
            "{}{at}: not valid TOML: {}",
            path.display(),
            one_line(e.message())
        ))
    })
}

/// Loads, overlays and validates the configuration.
pub(crate) fn load(file: Option<&Path>) -> Result<Config, LoadError> {
    let mut table = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                LoadError::Other(format!(
                    "cannot read the configuration file {}: {e}",
                    path.display()
                ))
            })?;
            parse_file(path, &text)?
        }
        None => Table::new(),
    };
    let set_by = overlay_env(&mut table, environment()?.into_iter())?;
    from_table(table).map_err(|mut e| {
        // A bad value from the environment names its variable.
        if let Some((_, var)) = set_by.iter().find(|(key, _)| {
            e.key == *key
                || e.key.starts_with(&format!("{key}."))
                || e.key.starts_with(&format!("{key}["))
        }) {
            e.problem = format!("{} (set by {var})", e.problem);
        }
        LoadError::Key(e)
    })
}

/// The message of a deserialisation error without the key path that serde or toml put
/// in front of it (the key is named once, by [`ConfigError`]).
fn without_key_prefix(message: &str, key: &str) -> String {
    // toml appends "\nin `key`" to a value's error.
    let joined = message
        .lines()
        .map(str::trim)
        .filter(|l| {
            let names_key = l.starts_with("in `") && l.ends_with('`');
            !l.is_empty() && !names_key
        })
        .collect::<Vec<_>>()
        .join("; ");
    let mut m = joined.as_str();
    for prefix in [key, key.rsplit('.').next().unwrap_or(key)] {
        if let Some(rest) = m.strip_prefix(prefix).and_then(|r| r.strip_prefix(':')) {
            m = rest.trim_start();
        }
    }
    m.to_owned()
}

/// serde's ``unknown field `name`, expected one of …`` without the name again (the key is
/// named once, by [`ConfigError`]).
fn unknown_key(message: &str) -> Option<String> {
    let (_, rest) = message.strip_prefix("unknown field `")?.split_once('`')?;
    let rest = rest.trim_start_matches(',').trim();
    Some(if rest.is_empty() {
        "unknown key".to_owned()
    } else {
        format!("unknown key; {rest}")
    })
}

/// Deserialises and validates a table.
pub(crate) fn from_table(table: Table) -> Result<Config, ConfigError> {
    let config: Config = serde_path_to_error::deserialize(Value::Table(table)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // The path names the offending key (for unknown fields, the field itself).
        let key = match inner.split('`').nth(1) {
            Some(field) if path == "." || path.is_empty() => field.to_owned(),
            _ => path,
        };
        let problem = without_key_prefix(&inner, &key);
        let problem = unknown_key(&problem).unwrap_or(problem);
        err(key, problem)
    })?;
    config.validate()?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(toml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut t: Table = toml.parse().unwrap();
        match overlay_env(
            &mut t,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        ) {
            Ok(_) => {}
            Err(LoadError::Key(e)) => return Err(e),
            Err(LoadError::Other(m)) => panic!("{m}"),
        }
        from_table(t)
    }

    #[test]
    fn defaults_file_and_env_overlay() {
        let c = load_str("", &[]).unwrap();
        assert_eq!(c.tokens.access_ttl.as_secs(), 600);
        let c = load_str(
            "[tokens]\naccess_ttl = \"5m\"",
            &[
                ("TESSERA_TOKENS__REFRESH_GRACE", "2s"),
                ("TESSERA_LISTEN", "127.0.0.1:0"),
                ("TESSERA_MASTER_KEY", "x"),
            ],
        )
        .unwrap();
        assert_eq!(c.tokens.access_ttl.as_secs(), 300);
        assert_eq!(c.tokens.refresh_grace.as_secs(), 2);
        assert_eq!(c.listen.port(), 0);
        let c = load_str("", &[("TESSERA_PUBLIC_PATHS", "[\"/api/public/\"]")]).unwrap();
        assert_eq!(c.public_paths, vec!["/api/public/"]);
    }

    #[test]
    fn errors_name_the_key() {
        let e = load_str("[tokens]\naccess_ttl = \"forever\"", &[]).unwrap_err();
        assert_eq!(e.key, "tokens.access_ttl");
        let e = load_str("[tokens]\nacess_ttl = \"5m\"", &[]).unwrap_err();
        assert_eq!(e.key, "tokens.acess_ttl");
        let e = load_str("lisen = 1", &[]).unwrap_err();
        assert_eq!(e.key, "lisen");
        let e = load_str("", &[("TESSERA_TOKENS__ACCESS_TTL", "2h")]).unwrap_err();
        assert_eq!(e.key, "tokens.access_ttl");
        let e = load_str("[cookies]\nmode = \"crumbs\"", &[]).unwrap_err();
        assert_eq!(e.key, "cookies.mode");
        let e = load_str("public_origin = \"https://a.example/path\"", &[]).unwrap_err();
        assert_eq!(e.key, "public_origin");
        let e = load_str("[cors]\nallowed_origins = [\"*\"]", &[]).unwrap_err();
        assert_eq!(e.key, "cors.allowed_origins[0]");
    }

    #[test]
    fn unknown_variables_are_refused_with_a_hint() {
        let mut t = Table::new();
        let vars = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
                .into_iter()
        };
        let Err(LoadError::Other(m)) =
            overlay_env(&mut t, vars(&[("TESSERA_TOKENS_ACCESS_TTL", "5m")]))
        else {
            panic!("accepted")
        };
        assert!(
            m.contains("TESSERA_TOKENS_ACCESS_TTL") && m.contains("TESSERA_TOKENS__ACCESS_TTL"),
            "{m}"
        );
        let Err(LoadError::Other(m)) = overlay_env(&mut t, vars(&[("TESSERA_FOO", "1")])) else {
            panic!("accepted")
        };
        assert!(
            m.contains("TESSERA_FOO") && !m.contains("did you mean"),
            "{m}"
        );
        let set = overlay_env(
            &mut t,
            vars(&[
                ("TESSERA_MASTER_KEY", "x"),
                ("TESSERA_BIN", "y"),
                ("TESSERA_LOG__COLOR", "never"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(
            set,
            vec![("log.color".to_owned(), "TESSERA_LOG__COLOR".to_owned())]
        );
        assert_eq!(suggestion("public_origin"), None);
        assert_eq!(
            suggestion("log_level").as_deref(),
            Some("TESSERA_LOG__LEVEL")
        );
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        assert_eq!(line_col("ab\ncd\n", 4), (2, 2));
        assert_eq!(line_col("é = 1", 3), (1, 3));
        let Err(LoadError::Other(m)) = parse_file(Path::new("t.toml"), "a = 1\nb = 5s\n") else {
            panic!("parsed")
        };
        assert!(m.starts_with("t.toml:2:6: not valid TOML:"), "{m}");
        assert!(!m.contains('\n'), "{m}");
    }

    #[test]
    fn value_errors_name_the_key_once() {
        let e = load_str("[tokens]\naccess_ttl = 5", &[]).unwrap_err();
        assert_eq!(e.key, "tokens.access_ttl");
        assert!(!e.problem.contains("access_ttl"), "{}", e.problem);
        // An unknown key is not repeated by serde's "unknown field `…`" either.
        for (toml, key) in [
            ("[tokens]\nacess_ttl = 5", "tokens.acess_ttl"),
            ("lisen = 1", "lisen"),
        ] {
            let e = load_str(toml, &[]).unwrap_err();
            assert_eq!(e.key, key);
            let leaf = key.rsplit('.').next().unwrap_or(key);
            assert!(
                e.problem.starts_with("unknown key; expected one of"),
                "{}",
                e.problem
            );
            assert!(!e.problem.contains(&format!("`{leaf}`")), "{}", e.problem);
            assert!(!e.problem.contains('\n'), "{}", e.problem);
        }
    }

    #[test]
    fn log_color_follows_the_terminal_and_no_color() {
        use std::ffi::OsStr;
        use tessera_server::config::LogColor;
        let c = load_str("", &[]).unwrap();
        assert_eq!(c.log.color, LogColor::Auto);
        assert!(LogColor::Auto.ansi(true, None));
        assert!(LogColor::Auto.ansi(true, Some(OsStr::new(""))));
        assert!(!LogColor::Auto.ansi(true, Some(OsStr::new("1"))));
        assert!(!LogColor::Auto.ansi(false, None));
        assert!(LogColor::Always.ansi(false, Some(OsStr::new("1"))));
        assert!(!LogColor::Never.ansi(true, None));
        let c = load_str("[log]\ncolor = \"never\"", &[]).unwrap();
        assert_eq!(c.log.color, LogColor::Never);
    }
}
