//! `tessera init`: creates what a node needs — the data folder (0700), the master key
//! (0600, unless `TESSERA_MASTER_KEY` is set), the database with its schema (a SQLite
//! file is 0600) and the first signing keys — and says what it made. What exists is kept:
//! run again, it creates only what is missing, and it never makes a master key for a
//! database whose keys another one sealed.

use std::collections::BTreeSet;
use std::path::Path;

use tessera_core::{Clock, SystemClock};
use tessera_server::cluster::keys;
use tessera_server::key_schedule;

use crate::data::{self, shown, MasterSource, Place};
use crate::{config, fail, Failure};

/// Runs `tessera init`.
pub(crate) async fn run(file: Option<&Path>) -> Result<(), Failure> {
    let config = config::load(file)?;
    let place = Place::new(&config, file);
    let url = config.database_url();
    let is_sqlite = tessera_store::sqlite_file(&url).is_some();

    if data::create_data_dir(&config.data_dir)? {
        println!("created data folder {} (mode 0700)", place.data_dir);
    } else {
        println!("data folder {} already exists", place.data_dir);
    }

    let existed = tessera_store::exists(&url).await?;
    let (master, source, made) = data::master_key_or_new(&config, existed).await?;
    match (&source, made) {
        (MasterSource::Env, _) => println!("master key: from TESSERA_MASTER_KEY (no file written)"),
        (MasterSource::File(p), false) => println!("master key {} already exists", shown(p)),
        (MasterSource::File(p), true) => println!(
            "created master key {} (mode 0600): keep a copy; every node of a cluster \
             needs this key (as TESSERA_MASTER_KEY or this file)",
            shown(p)
        ),
    }

    if !existed {
        data::prepare_sqlite(&url)?;
    }
    let store = tessera_store::open(&url).await?;
    if existed {
        println!(
            "database {} already exists (schema up to date)",
            place.database
        );
    } else {
        let mode = if is_sqlite { " (mode 0600)" } else { "" };
        println!(
            "created database {}{mode} with tessera's tables",
            place.database
        );
    }

    data::check_master_key(store.as_ref(), &master, &source, &place.database).await?;
    let before: BTreeSet<String> = store
        .list_keys()
        .await?
        .into_iter()
        .map(|k| k.kid)
        .collect();
    keys::ensure_keys(
        store.as_ref(),
        &master,
        key_schedule(&config),
        SystemClock.now(),
    )
    .await
    .map_err(|e| fail(e.to_string()))?;
    let mut made = 0;
    for k in store.list_keys().await? {
        if !before.contains(&k.kid) {
            println!("created signing key {} ({})", k.kid, k.alg);
            made += 1;
        }
    }
    if made == 0 {
        println!("signing keys: {} already stored", before.len());
    }
    let cfg = file.map_or(String::new(), |f| format!(" --config {}", f.display()));
    println!(
        "ready: add a user with `tessera user add NAME --password-stdin{cfg}`, then run \
         `tessera serve{cfg}`"
    );
    Ok(())
}
