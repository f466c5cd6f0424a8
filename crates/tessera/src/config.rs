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
    "data_dir",
    "database_url",
    "upstream",
    "static_dir",
    "public_paths",
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

/// Applies `TESSERA_*` variables from `vars` onto `table`.
pub fn overlay_env(
    table: &mut Table,
    vars: impl Iterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    for (name, raw) in vars {
        let Some(rest) = name.strip_prefix("TESSERA_") else {
            continue;
        };
        let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        let Some(first) = path.first() else { continue };
        if !TOP_LEVEL.contains(&first.as_str()) {
            // Not configuration (e.g. TESSERA_MASTER_KEY, test harness variables).
            continue;
        }
        let key = path.join(".");
        let mut cur = &mut *table;
        for seg in &path[..path.len() - 1] {
            let entry = cur
                .entry(seg.clone())
                .or_insert_with(|| Value::Table(Table::new()));
            cur = match entry {
                Value::Table(t) => t,
                _ => return Err(err(&key, format!("{name}: `{seg}` is not a table"))),
            };
        }
        let leaf = path.last().cloned().unwrap_or_default();
        cur.insert(leaf, env_value(&raw));
    }
    Ok(())
}

/// Loads, overlays and validates the configuration.
pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
    let mut table = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| err("--config", format!("cannot read {}: {e}", path.display())))?;
            text.parse::<Table>().map_err(|e| {
                err(
                    "--config",
                    format!("{} is not valid TOML: {}", path.display(), e.message()),
                )
            })?
        }
        None => Table::new(),
    };
    overlay_env(&mut table, std::env::vars())?;
    from_table(table)
}

/// Deserialises and validates a table.
pub fn from_table(table: Table) -> Result<Config, ConfigError> {
    let config: Config = serde_path_to_error::deserialize(Value::Table(table)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // The path names the offending key (for unknown fields, the field itself).
        let key = match inner.split('`').nth(1) {
            Some(field) if path == "." || path.is_empty() => field.to_owned(),
            _ => path,
        };
        err(key, inner)
    })?;
    config.validate()?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(toml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut t: Table = toml.parse().unwrap();
        overlay_env(
            &mut t,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )?;
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
}
