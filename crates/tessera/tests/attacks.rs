//! Black-box against the binary: RFC 8725 §3.2 / §3.5 at start-up. Only EdDSA and HS256
//! can be configured and no human-chosen secret, and a store holding a short HS256 key
//! stops `tessera serve` (exit ≠ 0, naming the key, changing nothing). The rest of the
//! attack list, and its table of which test holds each requirement, is
//! tests/app/attacks.rs (in-process).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use tessera_core::{MasterKey, UnixTime};
use tessera_store::StoredKey;
use tessera_testkit::{Server, ServerBuilder};

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn store_url(data_dir: &Path) -> String {
    format!("sqlite://{}", data_dir.join("tessera.db").display())
}

fn master_key(data_dir: &Path) -> MasterKey {
    let text = std::fs::read_to_string(data_dir.join("master.key")).expect("master.key");
    MasterKey::parse(&text).expect("a valid master key file")
}

async fn start_error(builder: ServerBuilder, what: &str) -> tessera_testkit::StartError {
    match builder.try_start().await {
        Ok(s) => panic!("{what}: started anyway on {}", s.base_url),
        Err(e) => e,
    }
}

#[tokio::test]
async fn rfc8725_3_2_only_strong_algorithms_and_random_keys_can_be_configured() {
    for alg in [
        "RS256", "ES256", "HS384", "HS512", "PS256", "hs256", "eddsa", "Ed25519", "",
    ] {
        let what = format!("tokens.algorithm = {alg:?}");
        let e = start_error(
            Server::builder(BIN).config(&format!("[tokens]\nalgorithm = \"{alg}\"")),
            &what,
        )
        .await;
        assert_eq!(e.status.and_then(|s| s.code()), Some(2), "{what}: {e}");
        assert!(
            e.stderr.contains("tokens.algorithm"),
            "{what}: {}",
            e.stderr
        );
        assert!(!e.stderr.contains("panicked"), "{what}: {e}");
    }
    // HMAC keys are generated (256 random bits), never typed in: there is no key to set a
    // human-chosen secret with (RFC 8725 §3.5).
    for (toml, key) in [
        ("[tokens]\nsecret = \"hunter2\"", "secret"),
        ("[tokens]\nhs256_secret = \"hunter2\"", "hs256_secret"),
        ("[tokens]\nkey = \"hunter2\"", "key"),
        ("jwt_secret = \"hunter2\"", "jwt_secret"),
    ] {
        let e = start_error(Server::builder(BIN).config(toml), toml).await;
        assert_eq!(e.status.and_then(|s| s.code()), Some(2), "{toml}: {e}");
        assert!(
            e.stderr.contains(key),
            "{toml}: stderr does not name `{key}`: {}",
            e.stderr
        );
    }
    let e = start_error(
        Server::builder(BIN).env("TESSERA_TOKENS__SECRET", "hunter2"),
        "TESSERA_TOKENS__SECRET",
    )
    .await;
    assert_eq!(e.status.and_then(|s| s.code()), Some(2), "{e}");
}

/// Plants an HS256 key with `secret` (sealed properly under the folder's master key), as
/// the newest active key.
async fn plant_hs256_key(data_dir: &Path, kid: &str, secret: &[u8]) {
    let store = tessera_store::open(&store_url(data_dir)).await.unwrap();
    let now = UnixTime(now());
    store
        .insert_key(&StoredKey {
            kid: kid.to_owned(),
            alg: "HS256".to_owned(),
            created_at: now,
            activates_at: now,
            retires_at: None,
            expires_at: None,
            sealed: master_key(data_dir).seal(&format!("signing-key:{kid}"), secret),
        })
        .await
        .unwrap();
}

/// A data folder whose store holds a short HS256 key called `kid`; the first server that
/// made the folder has been stopped.
async fn folder_with_a_short_key(kid: &str, len: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    Server::builder(BIN)
        .demo(false)
        .data_dir(&data)
        .config("[tokens]\nalgorithm = \"HS256\"")
        .start()
        .await
        .stop()
        .await;
    plant_hs256_key(&data, kid, &vec![7u8; len]).await;
    dir
}

#[tokio::test]
async fn rfc8725_3_2_a_short_hs256_key_stops_start_up() {
    for (kid, len) in [("weak-key-31", 31), ("weak-key-16", 16), ("empty-key", 0)] {
        let dir = folder_with_a_short_key(kid, len).await;
        let e = start_error(
            Server::builder(BIN)
                .demo(false)
                .data_dir(dir.path().join("data"))
                .config("[tokens]\nalgorithm = \"HS256\""),
            kid,
        )
        .await;
        let code = e.status.and_then(|s| s.code());
        assert!(
            code.is_some_and(|c| c != 0),
            "{len}-byte HS256 key: exit {code:?}: {e}"
        );
        assert!(!e.stderr.contains("panicked"), "{kid}: {e}");
        assert!(
            e.stderr.contains(kid),
            "{len}-byte key: the message does not name key {kid}:\n{}",
            e.stderr
        );
        // The refused start changed nothing: the good key is neither retired nor expiring.
        let store = tessera_store::open(&store_url(&dir.path().join("data")))
            .await
            .unwrap();
        let keys = store.list_keys().await.unwrap();
        let good: Vec<_> = keys.iter().filter(|k| k.kid != kid).collect();
        assert_eq!(good.len(), 1, "{keys:?}");
        assert_eq!(
            (good[0].retires_at, good[0].expires_at),
            (None, None),
            "{len}-byte key: the good key was retired by a refused start"
        );
    }
}

#[tokio::test]
async fn rfc8725_3_2_a_short_hs256_key_is_reported_as_too_short() {
    let dir = folder_with_a_short_key("weak-key-16", 16).await;
    let e = start_error(
        Server::builder(BIN)
            .demo(false)
            .data_dir(dir.path().join("data"))
            .config("[tokens]\nalgorithm = \"HS256\""),
        "16-byte key",
    )
    .await;
    let lower = e.stderr.to_lowercase();
    assert!(
        !lower.contains("master"),
        "a right master key is blamed for a short signing key:\n{}",
        e.stderr
    );
    assert!(
        ["short", "256", "32 bytes", "weak"]
            .iter()
            .any(|w| lower.contains(w)),
        "the message does not say the key is too short:\n{}",
        e.stderr
    );
}
