//! Black-box: the password policy of `tessera user add` and `tessera user passwd` —
//! common passwords (built in, case ignored) and passwords in a configured Have I Been
//! Pwned file are refused, with a message naming the rule and never the password
//! (NIST SP 800-63B §5.1.1.2).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use tessera_testkit::{b64url_encode, CliOutput, Server};

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

/// Not a common password, but in the breached list written below.
const BREACHED: &str = "Kestrel-Meadow-Lantern-77";
/// `printf %s 'Kestrel-Meadow-Lantern-77' | sha1sum`, upper case as HIBP writes it.
const BREACHED_SHA1: &str = "7AE39B7E6E5AEB14C51DD37D8DE9E7DC4433C121";

fn strong_password() -> String {
    b64url_encode(&tessera_core::random_bytes::<18>())
}

async fn add(server: &Server, name: &str, password: &str) -> CliOutput {
    server
        .cli(
            &["user", "add", name, "--password-stdin"],
            Some(&format!("{password}\n")),
        )
        .await
}

async fn passwd(server: &Server, name: &str, password: &str) -> CliOutput {
    server
        .cli(
            &["user", "passwd", name, "--password-stdin"],
            Some(&format!("{password}\n")),
        )
        .await
}

/// Refused with exit code 1 and a message containing `why` but not the password (in any
/// case).
#[track_caller]
fn assert_refused(out: &CliOutput, password: &str, why: &str) {
    assert_eq!(
        out.code(),
        Some(1),
        "password accepted or wrong exit code: {out:?}"
    );
    assert!(
        out.stderr.contains(why),
        "expected {why:?} in: {}",
        out.stderr
    );
    let shown = format!("{}\n{}", out.stdout, out.stderr).to_lowercase();
    assert!(
        !shown.contains(&password.to_lowercase()),
        "the password was echoed: {shown}"
    );
}

async fn user_list(server: &Server) -> String {
    let out = server.cli(&["user", "list"], None).await;
    out.assert_success();
    out.stdout
}

#[tokio::test]
async fn common_passwords_are_refused_and_strong_ones_accepted() {
    let server = Server::demo(BIN).await;

    for pw in [
        "password1",
        "Password123",
        "PASSWORD1",
        "iloveyou1",
        "qwerty123",
    ] {
        let out = add(&server, "alice", pw).await;
        assert_refused(&out, pw, "password is too common");
    }
    assert!(!user_list(&server).await.contains("alice"));

    // The username, in any case, is refused too.
    let out = add(&server, "kestrel.meadow", "Kestrel.Meadow").await;
    assert_refused(&out, "Kestrel.Meadow", "must not be the username");

    let strong = strong_password();
    add(&server, "alice", &strong).await.assert_success();
    server.client().login_ok("alice", &strong).await;

    // `user passwd` applies the same policy, and a refusal changes nothing.
    let out = passwd(&server, "alice", "Password123").await;
    assert_refused(&out, "Password123", "password is too common");
    server.client().login_ok("alice", &strong).await;

    // Without a breached list configured, the breached-but-uncommon password passes:
    // the next test's refusal comes from the list.
    add(&server, "carol", BREACHED).await.assert_success();
}

fn write_breached_list(dir: &Path) -> std::path::PathBuf {
    // Sorted by hash, CRLF line endings (as on Windows), the SHA-1 of "password" included.
    let lines = [
        "0000000A0E3B9F25FF41DE4B5AC238C2D545C7A8:15".to_owned(),
        "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:10434004".to_owned(),
        format!("{BREACHED_SHA1}:3"),
        "FFFFFFFEE791CBAC0F6305CAF0CEE06BBE131160:2".to_owned(),
    ];
    let path = dir.join("pwnedpasswords.txt");
    std::fs::write(&path, lines.join("\r\n") + "\r\n").unwrap();
    path
}

fn toml_string(s: &Path) -> String {
    serde_json::to_string(&s.to_string_lossy()).unwrap()
}

#[tokio::test]
async fn a_configured_breached_list_refuses_its_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let list = write_breached_list(dir.path());
    let server = Server::builder(BIN)
        .config(&format!(
            "[passwords]\nm_cost = 8192\nt_cost = 1\nbreached_list = {}\n",
            toml_string(&list)
        ))
        .start()
        .await;

    let out = add(&server, "bob", BREACHED).await;
    assert_refused(&out, BREACHED, "appeared in data breaches (3 times");
    assert!(!user_list(&server).await.contains("bob"));

    let strong = strong_password();
    add(&server, "bob", &strong).await.assert_success();
    let out = passwd(&server, "bob", BREACHED).await;
    assert_refused(&out, BREACHED, "appeared in data breaches");
    server.client().login_ok("bob", &strong).await;

    // The list gone: nothing is accepted unchecked, and the message names the key.
    let text = std::fs::read(&list).unwrap();
    std::fs::remove_file(&list).unwrap();
    let out = add(&server, "dave", &strong_password()).await;
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(
        out.stderr
            .contains("configuration key `passwords.breached_list`"),
        "{}",
        out.stderr
    );
    std::fs::write(&list, text).unwrap();
    assert!(!user_list(&server).await.contains("dave"));
}

#[tokio::test]
async fn a_missing_or_wrong_breached_list_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let unsorted = dir.path().join("by-prevalence.txt");
    std::fs::write(
        &unsorted,
        "7C4A8D09CA3762AF61E59520943DC26494F8941B:37359195\n\
         F7C3BC1D808E04732ADF679965CCC34CA7AE3441:16629796\n\
         B1B3773A05C0ED0176787A4F1574FF0075F7521E:10556095\n\
         5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:10434004\n",
    )
    .unwrap();
    let ntlm = dir.path().join("ntlm.txt");
    std::fs::write(&ntlm, "8846F7EAEE8FB117AD06BDD830B7586C:10434004\n").unwrap();
    let cases = [
        (dir.path().join("missing.txt"), "missing.txt"),
        (unsorted, "ordered by hash"),
        (ntlm, "SHA1HEX:COUNT"),
    ];
    for (path, why) in cases {
        let builder = Server::builder(BIN).config(&format!(
            "[passwords]\nm_cost = 8192\nt_cost = 1\nbreached_list = {}\n",
            toml_string(&path)
        ));
        let err = match builder.try_start().await {
            Ok(s) => panic!(
                "started with breached_list {}: {}",
                path.display(),
                s.base_url
            ),
            Err(e) => e,
        };
        assert_eq!(err.status.and_then(|s| s.code()), Some(2), "{err}");
        assert!(
            err.stderr
                .contains("configuration key `passwords.breached_list`")
                && err.stderr.contains(why),
            "{err}"
        );
    }
}
