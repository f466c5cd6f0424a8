//! `docs/configuration.md` against the code:
//! 1. every `pub field:` of the configuration structs in `tessera-server/src/config.rs` is
//!    documented, in the right section;
//! 2. the documented defaults, parsed as TOML, deserialize to exactly `Config::default()`;
//! 3. a file setting every documented key (defaults, and sample values for keys without
//!    one) is accepted by the real binary (`tessera init` and `tessera user list
//!    --config …` load and validate the whole configuration);
//! 4. every documented section can be addressed by `TESSERA_<SECTION>__<KEY>`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use tessera_server::config::Config;
use tessera_testkit::run_tessera;

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_file(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// One documented key: its section (`""` for the top level), name and default (a TOML
/// literal, or `None` for "unset").
#[derive(Debug, Clone)]
struct Key {
    section: String,
    name: String,
    default: Option<String>,
}

/// The key tables of docs/configuration.md: under `## Top level` and `` ## `[section]` ``
/// headings, rows `` | `key` | type | default | meaning | ``.
fn documented_keys() -> Vec<Key> {
    let doc = read("docs/configuration.md");
    let mut section: Option<String> = None;
    let mut keys = Vec::new();
    for line in doc.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            section = if h.trim() == "Top level" {
                Some(String::new())
            } else {
                h.trim()
                    .strip_prefix("`[")
                    .and_then(|s| s.strip_suffix("]`"))
                    .map(str::to_owned)
            };
            continue;
        }
        let Some(section) = &section else { continue };
        let Some(row) = line.strip_prefix("| `") else {
            continue;
        };
        let cells: Vec<&str> = row.split(" | ").collect();
        assert!(
            cells.len() >= 4,
            "docs/configuration.md: a key row needs 4 cells: {line}"
        );
        let name = cells[0].trim_end_matches('`').to_owned();
        let default = cells[2].trim();
        let default = match default.strip_prefix('`').and_then(|d| d.strip_suffix('`')) {
            Some(literal) => Some(literal.to_owned()),
            None => {
                assert_eq!(
                    default, "unset",
                    "docs/configuration.md: `{name}`: a default is a `TOML literal` or unset"
                );
                None
            }
        };
        keys.push(Key {
            section: section.clone(),
            name,
            default,
        });
    }
    assert!(keys.len() > 40, "too few keys parsed: {keys:?}");
    keys
}

/// `pub name:` fields per struct in tessera-server's config.rs.
fn struct_fields() -> BTreeMap<String, Vec<String>> {
    let src = read("crates/tessera-server/src/config.rs");
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in src.lines() {
        if let Some(rest) = line.strip_prefix("pub struct ") {
            let name = rest.split([' ', '{']).next().unwrap().to_owned();
            // Only the configuration structs (not `ConfigError`).
            current = (name.ends_with("Config") && rest.trim_end().ends_with('{')).then_some(name);
            continue;
        }
        if line.starts_with('}') {
            current = None;
            continue;
        }
        let Some(st) = &current else { continue };
        if let Some(field) = line.trim().strip_prefix("pub ") {
            if let Some((name, _)) = field.split_once(':') {
                out.entry(st.clone())
                    .or_default()
                    .push(name.trim().to_owned());
            }
        }
    }
    out
}

/// The section of each configuration struct: `Config` is the top level, the others are
/// the top-level fields whose type they are.
fn section_of_struct() -> BTreeMap<String, String> {
    let src = read("crates/tessera-server/src/config.rs");
    let mut map = BTreeMap::from([("Config".to_owned(), String::new())]);
    let top = struct_fields().remove("Config").expect("struct Config");
    let mut in_config = false;
    for line in src.lines() {
        if line.starts_with("pub struct Config ") {
            in_config = true;
            continue;
        }
        if in_config && line.starts_with('}') {
            break;
        }
        if !in_config {
            continue;
        }
        if let Some((name, ty)) = line
            .trim()
            .strip_prefix("pub ")
            .and_then(|f| f.split_once(':'))
        {
            let ty = ty.trim().trim_end_matches(',');
            if ty.ends_with("Config") && top.iter().any(|t| t == name.trim()) {
                map.insert(ty.to_owned(), name.trim().to_owned());
            }
        }
    }
    map
}

/// The documented keys as TOML: top-level keys first, then one table per section.
fn to_toml(keys: &[(String, String, String)]) -> String {
    let mut out = String::new();
    let mut sections: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
    for (section, name, value) in keys {
        sections
            .entry(section.as_str())
            .or_default()
            .push((name.as_str(), value.as_str()));
    }
    for (section, entries) in sections {
        if !section.is_empty() {
            out.push_str(&format!("\n[{section}]\n"));
        }
        for (name, value) in entries {
            out.push_str(&format!("{name} = {value}\n"));
        }
    }
    out
}

#[test]
fn every_config_field_is_documented_in_its_section() {
    let documented: BTreeSet<(String, String)> = documented_keys()
        .into_iter()
        .map(|k| (k.section, k.name))
        .collect();
    let sections = section_of_struct();
    let fields = struct_fields();
    assert!(
        fields.len() >= 12,
        "too few config structs found: {fields:?}"
    );
    let mut missing = Vec::new();
    for (st, names) in &fields {
        let section = sections.get(st).unwrap_or_else(|| {
            panic!("config.rs: struct {st} is not a field type of Config; update this test")
        });
        for name in names {
            // Top-level fields that are sections are documented as their own tables.
            if st == "Config" && sections.values().any(|s| s == name) {
                continue;
            }
            if !documented.contains(&(section.clone(), name.clone())) {
                let shown = if section.is_empty() {
                    name.clone()
                } else {
                    format!("{section}.{name}")
                };
                missing.push(shown);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/configuration.md does not document: {missing:?}"
    );
}

#[test]
fn documented_defaults_are_the_real_defaults() {
    let keys: Vec<(String, String, String)> = documented_keys()
        .into_iter()
        .filter_map(|k| Some((k.section, k.name, k.default?)))
        .collect();
    let text = to_toml(&keys);
    let parsed: Config = toml::from_str(&text)
        .unwrap_or_else(|e| panic!("documented defaults rejected: {e}\n{text}"));
    let documented = format!("{parsed:#?}");
    let real = format!("{:#?}", Config::default());
    let wrong: Vec<String> = documented
        .lines()
        .zip(real.lines())
        .filter(|(d, r)| d != r)
        .map(|(d, r)| format!("documented {} but really {}", d.trim(), r.trim()))
        .collect();
    assert!(
        wrong.is_empty() && documented == real,
        "docs/configuration.md gives wrong defaults: {wrong:#?}"
    );
}

/// Sample values for keys documented as unset (they have no default to write down).
fn sample_value(section: &str, name: &str, dir: &Path) -> String {
    let path = |p: &str| format!("{:?}", dir.join(p).display().to_string());
    match (section, name) {
        ("", "public_origin") => "\"https://app.example.com\"".into(),
        ("", "database_url") => format!("\"sqlite://{}\"", dir.join("other.db").display()),
        ("", "upstream") => "\"http://127.0.0.1:3000\"".into(),
        ("", "static_dir") => path("www"),
        ("", "spa_fallback") => {
            // Start-up checks it is a file under static_dir.
            std::fs::create_dir_all(dir.join("www")).unwrap();
            std::fs::write(dir.join("www/index.html"), "<!doctype html>").unwrap();
            "\"index.html\"".into()
        }
        ("tls", "cert") => path("cert.pem"),
        ("tls", "key") => path("key.pem"),
        ("tokens", "issuer") => "\"https://app.example.com\"".into(),
        ("tokens", "audience") => "\"https://app.example.com\"".into(),
        ("passwords", "breached_list") => {
            // Start-up checks the file, so it must exist and be in HIBP's format.
            std::fs::write(
                dir.join("pwned-passwords.txt"),
                "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:10434004\n",
            )
            .unwrap();
            path("pwned-passwords.txt")
        }
        _ => panic!(
            "docs/configuration.md documents `{section}.{name}` as unset: add a sample value \
             for it to config_reference.rs"
        ),
    }
}

#[tokio::test]
async fn the_binary_accepts_every_documented_key() {
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<(String, String, String)> = documented_keys()
        .into_iter()
        .map(|k| {
            let value = match (k.section.as_str(), k.name.as_str()) {
                // Not the working directory.
                ("", "data_dir") => format!("{:?}", dir.path().join("data").display().to_string()),
                _ => k
                    .default
                    .clone()
                    .unwrap_or_else(|| sample_value(&k.section, &k.name, dir.path())),
            };
            (k.section, k.name, value)
        })
        .collect();
    let text = to_toml(&keys);
    let file = dir.path().join("tessera.toml");
    std::fs::write(&file, &text).unwrap();
    // The admin commands need existing data: `init` makes it (loading the same file).
    let out = run_tessera(
        Path::new(BIN),
        &["init", "--config", file.to_str().unwrap()],
        &[],
        None,
    )
    .await;
    assert!(out.status.success(), "init: {}\n{}", out.stdout, out.stderr);
    let out = run_tessera(
        Path::new(BIN),
        &["user", "list", "--config", file.to_str().unwrap()],
        &[],
        None,
    )
    .await;
    assert!(
        out.status.success(),
        "every documented key at its documented default was refused ({:?}):\n{}\n{}\n--- config ---\n{text}",
        out.status,
        out.stdout,
        out.stderr
    );

    // And the check is real: a key the documentation does not list is refused.
    std::fs::write(&file, format!("{text}\nnot_a_key = 1\n")).unwrap();
    let out = run_tessera(
        Path::new(BIN),
        &["user", "list", "--config", file.to_str().unwrap()],
        &[],
        None,
    )
    .await;
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("not_a_key"), "{}", out.stderr);
}

#[tokio::test]
async fn every_documented_section_can_be_set_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tessera.toml");
    std::fs::write(
        &file,
        format!(
            "data_dir = {:?}\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let sections: BTreeSet<String> = documented_keys()
        .into_iter()
        .map(|k| k.section)
        .filter(|s| !s.is_empty())
        .collect();
    let mut ignored = Vec::new();
    for section in sections {
        // An unknown key in the section must be refused, naming it: proof that the
        // variable reached the configuration.
        let var = format!("TESSERA_{}__NOT_A_KEY", section.to_ascii_uppercase());
        let out = run_tessera(
            Path::new(BIN),
            &["user", "list", "--config", file.to_str().unwrap()],
            &[(var.clone(), "1".into())],
            None,
        )
        .await;
        if out.code() != Some(2) || !out.stderr.contains("not_a_key") {
            ignored.push(format!("{var} (exit {:?})", out.code()));
        }
    }
    assert!(
        ignored.is_empty(),
        "environment variables silently ignored: {ignored:?}"
    );
}

/// The keys `Config::validate` (and what it calls) can name: every string literal in
/// tessera-server's `impl Config` that is a documented key, or one with an index
/// (`origin_aliases[{i}]` is listed as `origin_aliases[0]`).
fn keys_named_by_validation() -> BTreeSet<String> {
    let src = read("crates/tessera-server/src/config.rs");
    let start = src
        .find("\nimpl Config {")
        .expect("impl Config in config.rs");
    let end = src[start..].find("\n}\n").map_or(src.len(), |e| start + e);
    let documented: BTreeSet<String> = documented_keys()
        .into_iter()
        .map(|k| match k.section.as_str() {
            "" => k.name,
            s => format!("{s}.{}", k.name),
        })
        .collect();
    string_literals(&src[start..end])
        .into_iter()
        .filter_map(|literal| {
            let (key, indexed) = match literal.strip_suffix("[{i}]") {
                Some(k) => (k, true),
                None => (literal.as_str(), false),
            };
            documented.contains(key).then(|| match indexed {
                true => format!("{key}[0]"),
                false => key.to_owned(),
            })
        })
        .collect()
}

/// Environment variables for one run of the binary.
type Env = Vec<(String, String)>;

/// The string literals of Rust source, unescaped only as far as finding where they end.
fn string_literals(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = code.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut literal = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => break,
                c => literal.push(c),
            }
        }
        out.push(literal);
    }
    out
}

/// Every validation rule, through the real binary: a bad value (a TOML snippet, or a
/// variable) and the key the one-line message must name — exactly once, as
/// `` configuration key `key`: `` — with exit code 2. The table must cover every key
/// the validation can name.
#[tokio::test]
async fn every_validation_rule_names_its_key_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("www")).unwrap();
    std::fs::write(dir.path().join("www/index.html"), "<!doctype html>").unwrap();
    let www = format!(
        "static_dir = {:?}\n",
        dir.path().join("www").display().to_string()
    );
    let missing_list = format!(
        "[passwords]\nbreached_list = {:?}\n",
        dir.path().join("pwned.txt").display().to_string()
    );
    let env = |var: &str, value: &str| vec![(var.to_owned(), value.to_owned())];
    // (TOML, environment, the key the message names)
    let cases: Vec<(String, Env, &str)> = [
        ("worker_threads = 1025", "worker_threads"),
        (
            "public_origin = \"https://a.example/path\"",
            "public_origin",
        ),
        ("origin_aliases = [\"localhost:8443\"]", "origin_aliases[0]"),
        ("database_url = \"mysql://x\"", "database_url"),
        ("upstream = \"https://127.0.0.1:3000\"", "upstream"),
        ("upstream = \"127.0.0.1:3000\"", "upstream"),
        ("public_paths = [\"api/public/\"]", "public_paths[0]"),
        ("public_paths = [\"/api/../x\"]", "public_paths[0]"),
        ("static_csp = \"default-src 'self'\\n\"", "static_csp"),
        ("api_prefixes = [\"/api/%2e\"]", "api_prefixes[0]"),
        ("spa_fallback = \"index.html\"", "spa_fallback"),
        ("[tls]\nmode = \"files\"\nkey = \"key.pem\"", "tls.cert"),
        ("[tls]\nmode = \"files\"\ncert = \"cert.pem\"", "tls.key"),
        ("[tokens]\naccess_ttl = \"0s\"", "tokens.access_ttl"),
        ("[tokens]\naccess_ttl = \"2h\"", "tokens.access_ttl"),
        ("[tokens]\nrefresh_ttl = \"1s\"", "tokens.refresh_ttl"),
        ("[tokens]\nsession_max = \"1s\"", "tokens.session_max"),
        ("[tokens]\nrefresh_grace = \"61s\"", "tokens.refresh_grace"),
        ("[tokens]\nleeway = \"61s\"", "tokens.leeway"),
        ("[tokens]\nrotate_every = \"59s\"", "tokens.rotate_every"),
        ("[tokens]\nrotate_every = \"1h\"", "tokens.prepublish"),
        (
            "[cors]\nallowed_origins = [\"null\"]",
            "cors.allowed_origins[0]",
        ),
        ("[limits]\nmax_body_bytes = 0", "limits.max_body_bytes"),
        (
            "[limits]\nmax_header_bytes = 1023",
            "limits.max_header_bytes",
        ),
        ("[limits]\nmax_headers = 7", "limits.max_headers"),
        ("[limits]\nmax_connections = 0", "limits.max_connections"),
        (
            "[limits]\nheader_timeout = \"99ms\"",
            "limits.header_timeout",
        ),
        ("[limits]\nidle_timeout = \"99ms\"", "limits.idle_timeout"),
        ("[limits]\nsend_timeout = \"99ms\"", "limits.send_timeout"),
        ("[limits]\nbody_timeout = \"99ms\"", "limits.body_timeout"),
        (
            "[limits]\nrequest_timeout = \"99ms\"",
            "limits.request_timeout",
        ),
        (
            "[limits]\nupstream_timeout = \"99ms\"",
            "limits.upstream_timeout",
        ),
        (
            "[limits]\nmax_upstream_per_ip = 0",
            "limits.max_upstream_per_ip",
        ),
        ("[passwords]\nm_cost = 8191", "passwords.m_cost"),
        ("[passwords]\nt_cost = 0", "passwords.t_cost"),
        ("[passwords]\np_cost = 0", "passwords.p_cost"),
        ("[passwords]\nmin_length = 7", "passwords.min_length"),
        ("[passwords]\nmax_length = 63", "passwords.max_length"),
        ("[passwords]\nmax_length = 4097", "passwords.max_length"),
        ("[passwords]\nqueue = 0", "passwords.queue"),
        ("[passwords]\nworker_nice = 20", "passwords.worker_nice"),
        ("[passwords]\nworker_nice = -1", "passwords.worker_nice"),
        ("[dpop]\nmax_age = \"0s\"", "dpop.max_age"),
        ("[dpop]\nmax_age = \"11m\"", "dpop.max_age"),
        ("[dpop]\nmax_skew = \"61s\"", "dpop.max_skew"),
        ("[dpop]\nreplay_capacity = 0", "dpop.replay_capacity"),
        ("[signatures]\nwindow = \"0s\"", "signatures.window"),
        ("[signatures]\nwindow = \"61m\"", "signatures.window"),
        (
            "[signatures]\nreplay_capacity = 0",
            "signatures.replay_capacity",
        ),
        (
            "[signatures]\nmax_buffered_bytes = 1024",
            "signatures.max_buffered_bytes",
        ),
        (
            "[signatures]\nmax_buffered_bytes = 4294967296",
            "signatures.max_buffered_bytes",
        ),
        (
            "[signatures]\nbody_timeout = \"99ms\"",
            "signatures.body_timeout",
        ),
        (
            "[signatures]\nbody_timeout = \"11m\"",
            "signatures.body_timeout",
        ),
        (
            "[rate_limit]\nper_username_per_minute = 0",
            "rate_limit.per_username_per_minute",
        ),
        (
            "[rate_limit]\nper_ip_per_minute = 0",
            "rate_limit.per_ip_per_minute",
        ),
        // Refused by deserialisation, before the rules: the loader names the key too.
        ("[tokens]\naccess_ttl = 5", "tokens.access_ttl"),
        ("[tokens]\nacess_ttl = \"5m\"", "tokens.acess_ttl"),
        ("lisen = \"127.0.0.1:1\"", "lisen"),
        ("[cookies]\nmode = \"crumbs\"", "cookies.mode"),
        (
            "[rate_limit]\ndevice_ttl = \"forever\"",
            "rate_limit.device_ttl",
        ),
    ]
    .into_iter()
    .map(|(toml, key)| (toml.to_owned(), Vec::new(), key))
    .chain([
        (
            format!("{www}spa_fallback = \"../index.html\""),
            Vec::new(),
            "spa_fallback",
        ),
        (
            format!("{www}spa_fallback = \"missing.html\""),
            Vec::new(),
            "spa_fallback",
        ),
        (missing_list, Vec::new(), "passwords.breached_list"),
        (
            String::new(),
            env("TESSERA_LIMITS__MAX_HEADERS", "4"),
            "limits.max_headers",
        ),
        (
            String::new(),
            env("TESSERA_RATE_LIMIT__PER_IP_PER_MINUTE", "0"),
            "rate_limit.per_ip_per_minute",
        ),
    ])
    .collect();

    // The table and the validation name the same keys (besides the rows refused while
    // deserialising).
    let deserialisation = [
        "tokens.acess_ttl",
        "lisen",
        "cookies.mode",
        "rate_limit.device_ttl",
    ];
    let covered: BTreeSet<String> = cases
        .iter()
        .map(|(_, _, key)| key.to_string())
        .filter(|key| !deserialisation.contains(&key.as_str()))
        .collect();
    assert_eq!(
        covered,
        keys_named_by_validation(),
        "the validation rules and this table name different keys"
    );

    let file = dir.path().join("tessera.toml");
    let data_dir = format!(
        "data_dir = {:?}\n",
        dir.path().join("data").display().to_string()
    );
    let mut wrong = Vec::new();
    for (toml, env, key) in &cases {
        // Top-level keys first, so a snippet's `[table]` does not swallow data_dir.
        std::fs::write(&file, format!("{data_dir}{toml}\n")).unwrap();
        let out = run_tessera(
            Path::new(BIN),
            &["user", "list", "--config", file.to_str().unwrap()],
            env,
            None,
        )
        .await;
        let message = out.stderr.trim_end();
        let leaf = key.rsplit('.').next().unwrap().split('[').next().unwrap();
        let problem = message.strip_prefix(&format!("tessera: configuration key `{key}`: "));
        // Named once: not again in full, nor as serde's `name`.
        let ok = out.code() == Some(2)
            && message.lines().count() == 1
            && problem.is_some_and(|p| !p.contains(key) && !p.contains(&format!("`{leaf}`")));
        if !ok {
            wrong.push(format!(
                "{toml:?} {env:?} (exit {:?}): expected `{key}` once, got: {message}",
                out.code()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
