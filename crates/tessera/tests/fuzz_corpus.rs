//! The CI smoke run of the fuzzers: replays every file of every committed corpus
//! (`fuzz/corpus/<target>/`) through the same target bodies cargo-fuzz runs
//! (`fuzz/src/lib.rs`), on stable Rust, without libFuzzer. A panic or a failed invariant
//! names the corpus file.
//!
//! `cargo test -p tessera --test fuzz_corpus -- --ignored write_seed_corpus` rewrites the
//! generated seed files (valid tokens, proofs and signatures for the fixed fuzz keys, and
//! hand-made tricky inputs); other files in the corpora (crash reproducers) are kept.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// The targets are `pub` for the fuzz crate; here they are only called.
#[allow(unreachable_pub)]
#[path = "../../../fuzz/src/lib.rs"]
mod targets;

use std::path::{Path, PathBuf};

/// A fuzz target's body.
type Body = fn(&[u8]);

/// Every fuzz target, by name, with its body.
const TARGETS: [(&str, Body); 7] = [
    ("access_token", targets::access_token),
    ("split_cookies", targets::split_cookies),
    ("cookie_header", targets::cookie_header),
    ("dpop_proof", targets::dpop_proof),
    ("signature_headers", targets::signature_headers),
    ("config", targets::config),
    ("upstream_response", targets::upstream_response),
];

/// Corpus limits: small enough to commit and to replay in CI in well under a second.
const MAX_FILES: usize = 50;
const MAX_FILE_BYTES: usize = 8 * 1024;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn corpus_files(target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join("corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(target: &str) {
    let body = TARGETS.iter().find(|(n, _)| *n == target).unwrap().1;
    let files = corpus_files(target);
    assert!(!files.is_empty(), "fuzz/corpus/{target} is empty");
    let mut failed = Vec::new();
    for path in &files {
        let data = std::fs::read(path).unwrap();
        if std::panic::catch_unwind(|| body(&data)).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(failed.is_empty(), "{target}: panicked on {failed:#?}");
}

#[test]
fn access_token() {
    replay("access_token");
}

#[test]
fn split_cookies() {
    replay("split_cookies");
}

#[test]
fn cookie_header() {
    replay("cookie_header");
}

#[test]
fn dpop_proof() {
    replay("dpop_proof");
}

#[test]
fn signature_headers() {
    replay("signature_headers");
}

#[test]
fn config() {
    replay("config");
}

#[test]
fn upstream_response() {
    replay("upstream_response");
}

/// Every target in `fuzz/fuzz_targets/` is replayed here, and its corpus stays small.
#[test]
fn every_target_is_replayed_and_corpora_are_small() {
    let mut on_disk: Vec<String> = std::fs::read_dir(fuzz_dir().join("fuzz_targets"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut here: Vec<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    here.sort();
    assert_eq!(on_disk, here, "fuzz/fuzz_targets and TARGETS differ");
    for (target, _) in TARGETS {
        let files = corpus_files(target);
        assert!(
            files.len() <= MAX_FILES,
            "{target}: {} files (at most {MAX_FILES}; minimise with cargo fuzz cmin)",
            files.len()
        );
        for f in files {
            let len = std::fs::metadata(&f).unwrap().len();
            assert!(len <= MAX_FILE_BYTES as u64, "{}: {len} bytes", f.display());
        }
    }
}

fn seed(target: &str, name: &str) -> String {
    let path = fuzz_dir().join("corpus").join(target).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The valid seeds still verify against the fixtures (else the fuzzers would start from
/// nothing but refusals): regenerate the seeds after changing either.
#[test]
fn valid_seeds_verify() {
    use targets::fixtures::*;
    use tessera_core::{dpop, httpsig, TokenParts};
    let f = get();
    for name in ["seed-hs256-valid", "seed-eddsa-valid"] {
        let token = seed("access_token", name);
        f.ring
            .verify(&token, &f.verifier, &f.denylist, NOW)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let claims = seed("access_token", "seed-claims-valid");
    f.ring
        .verify(
            &hs256_token(claims.as_bytes()),
            &f.verifier,
            &f.denylist,
            NOW,
        )
        .unwrap();
    let cookies = seed("split_cookies", "seed-hs256-valid");
    let (c, s) = cookies.split_once('|').unwrap();
    let parts = TokenParts::from_split(c, s).unwrap();
    f.ring
        .verify_parts(parts, &f.verifier, &f.denylist, NOW)
        .unwrap();

    let check = dpop::DpopCheck {
        method: DPOP_METHOD,
        htu: DPOP_HTU,
        access_token: None,
        now: NOW,
        max_age: DPOP_MAX_AGE,
        max_skew: DPOP_MAX_SKEW,
        nonce: None,
    };
    for name in ["seed-eddsa-valid", "seed-es256-valid"] {
        dpop::verify_proof(&seed("dpop_proof", name), &check)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let claims = seed("dpop_proof", "seed-claims-json");
    let proof = f
        .dpop_key
        .sign_raw(&f.dpop_key.header_json(), &claims)
        .unwrap();
    dpop::verify_proof(&proof, &check).unwrap();

    let lines = seed("signature_headers", "seed-valid-with-body");
    let mut lines = lines.split('\n');
    let req = httpsig::SignedRequest {
        method: SIG_METHOD,
        target_uri: SIG_URI,
        signature_input: lines.next().unwrap(),
        signature: lines.next().unwrap(),
        content_digest: lines.next(),
        has_body: true,
        ..Default::default()
    };
    let replay = tessera_core::replay::ReplayCache::new(4);
    httpsig::verify_request(
        &req,
        SIG_BODY,
        |k| (k == SIG_KEYID).then_some(SIG_SECRET),
        &replay,
        NOW,
        SIG_WINDOW,
    )
    .unwrap();

    let toml = seed("config", "seed-full");
    let table: toml::Table = toml.parse().unwrap();
    let config: tessera_server::config::Config =
        serde_path_to_error::deserialize(toml::Value::Table(table)).unwrap();
    config.validate().unwrap();
}

// ---- seed corpus generation ------------------------------------------------------------

mod seeds {
    use super::targets::fixtures::*;
    use super::*;
    use tessera_core::dpop::{self, DpopAlg, DpopKey};
    use tessera_core::{httpsig, AccessClaims, Cnf, KeyRing, SessionId, UserId};

    pub(crate) struct Writer {
        target: &'static str,
        dir: PathBuf,
    }

    impl Writer {
        pub(crate) fn new(target: &'static str) -> Self {
            let dir = fuzz_dir().join("corpus").join(target);
            std::fs::create_dir_all(&dir).unwrap();
            Writer { target, dir }
        }

        pub(crate) fn put(&self, name: &str, data: impl AsRef<[u8]>) {
            let data = data.as_ref();
            assert!(
                data.len() <= MAX_FILE_BYTES,
                "{}/{name}: {} bytes",
                self.target,
                data.len()
            );
            std::fs::write(self.dir.join(format!("seed-{name}")), data).unwrap();
        }
    }

    pub(crate) fn b64(data: impl AsRef<[u8]>) -> String {
        tessera_core::b64::encode(data)
    }

    pub(crate) fn claims() -> AccessClaims {
        AccessClaims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: UserId([1; 16]).to_string().into(),
            sid: SessionId([2; 16]).to_string().into(),
            iat: NOW.0 - 10,
            nbf: NOW.0 - 10,
            exp: NOW.0 + 290,
            jti: "jti-seed".into(),
            roles: vec!["user".into(), "admin".into()],
            username: "alice".into(),
            client_id: "browser".into(),
            amr: vec!["pwd".into()],
            auth_time: NOW.0 - 10,
            cnf: None,
        }
    }

    pub(crate) fn hs_ring() -> KeyRing {
        KeyRing::new(vec![hs256_key()], NOW)
    }

    pub(crate) fn ed_ring() -> KeyRing {
        KeyRing::new(vec![eddsa_key()], NOW)
    }

    pub(crate) fn sign(ring: &KeyRing, c: &AccessClaims) -> String {
        ring.sign(c).unwrap()
    }

    /// `(payload, header.signature)` of a compact token.
    pub(crate) fn split(token: &str) -> (String, String) {
        tessera_core::TokenParts::split_cookies(token).unwrap()
    }

    /// Claims JSON variants, shared by the token targets' re-signed path.
    pub(crate) fn claims_json() -> Vec<(&'static str, String)> {
        let good = serde_json::to_string(&claims()).unwrap();
        let mut v = vec![("claims-valid", good.clone())];
        let with = |from: &str, to: &str| good.replacen(from, to, 1);
        v.push((
            "claims-duplicate-exp",
            good.replacen('{', &format!("{{\"exp\":{},", NOW.0 + 100), 1),
        ));
        v.push(("claims-unknown-field", with("{", "{\"admin\":true,")));
        v.push((
            "claims-exp-string",
            with(&format!("\"exp\":{}", NOW.0 + 290), "\"exp\":\"9\""),
        ));
        v.push((
            "claims-exp-float",
            with(&format!("\"exp\":{}", NOW.0 + 290), "\"exp\":1.7e9"),
        ));
        v.push((
            "claims-exp-huge",
            with(
                &format!("\"exp\":{}", NOW.0 + 290),
                "\"exp\":18446744073709551616",
            ),
        ));
        v.push((
            "claims-roles-nested",
            with(
                "[\"user\",\"admin\"]",
                &format!("{}\"x\"{}", "[".repeat(200), "]".repeat(200)),
            ),
        ));
        v.push((
            "claims-unicode",
            with("\"alice\"", "\"\\ud800\\u0000\u{10FFFF}é\u{202E}\""),
        ));
        v.push(("claims-bom", format!("\u{FEFF}{good}")));
        v.push(("claims-array", "[\"https://issuer.example\"]".into()));
        let mut cnf = claims();
        cnf.cnf = Some(Cnf {
            jkt: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into(),
        });
        v.push(("claims-cnf", serde_json::to_string(&cnf).unwrap()));
        v
    }

    pub(crate) fn access_token() {
        let w = Writer::new("access_token");
        let (hs, ed) = (hs_ring(), ed_ring());
        w.put("hs256-valid", sign(&hs, &claims()));
        w.put("eddsa-valid", sign(&ed, &claims()));
        let mut c = claims();
        c.cnf = Some(Cnf {
            jkt: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into(),
        });
        w.put("hs256-dpop-bound", sign(&hs, &c));
        let mut c = claims();
        c.sid = REVOKED_SID.to_string().into();
        w.put("hs256-revoked-session", sign(&hs, &c));
        let mut c = claims();
        c.sub = CUT_OFF_USER.to_string().into();
        c.iat = NOW.0 - 120;
        w.put("eddsa-user-cut-off", sign(&ed, &c));
        let mut c = claims();
        c.exp = NOW.0 - 100;
        w.put("hs256-expired", sign(&hs, &c));
        let mut c = claims();
        c.nbf = NOW.0 + 1000;
        w.put("hs256-not-yet-valid", sign(&hs, &c));
        let mut c = claims();
        c.iss = "https://evil.example".into();
        w.put("hs256-wrong-issuer", sign(&hs, &c));
        let mut c = claims();
        c.sub = "not-an-id".into();
        w.put("eddsa-bad-sub", sign(&ed, &c));

        let valid = sign(&hs, &claims());
        let (payload, _) = split(&valid);
        let mut segs = valid.split('.');
        let (header, _, sig) = (
            segs.next().unwrap(),
            segs.next().unwrap(),
            segs.next().unwrap(),
        );
        for (name, h) in [
            (
                "alg-none",
                r#"{"alg":"none","typ":"at+jwt","kid":"fuzz-hs256"}"#,
            ),
            (
                "alg-mismatch",
                r#"{"alg":"HS256","typ":"at+jwt","kid":"fuzz-eddsa"}"#,
            ),
            (
                "unknown-kid",
                r#"{"alg":"HS256","typ":"at+jwt","kid":"nope"}"#,
            ),
            (
                "jwk-injection",
                r#"{"alg":"HS256","typ":"at+jwt","kid":"fuzz-hs256","jwk":{"kty":"oct","k":"AAAA"}}"#,
            ),
            (
                "duplicate-alg",
                r#"{"alg":"HS256","alg":"none","typ":"at+jwt","kid":"fuzz-hs256"}"#,
            ),
            ("no-alg", r#"{"typ":"at+jwt","kid":"fuzz-hs256"}"#),
            ("header-not-json", "alg=HS256"),
        ] {
            w.put(name, format!("{}.{payload}.{sig}", b64(h)));
        }
        w.put("no-signature", format!("{header}.{payload}."));
        w.put("jwe-five-segments", format!("{valid}.AAAA.BBBB"));
        w.put("padded", format!("{header}.{payload}=.{sig}"));
        w.put("trailing-newline", format!("{valid}\n"));
        w.put("standard-alphabet", valid.replace(['-', '_'], "+"));
        w.put("empty", "");
        w.put("dots", "..");
        w.put("unicode", "é.ü.ß");
        w.put("non-utf8", b"\xff\xfe.\xc3\x28.\x80");
        // At the length limit: a valid header and signature around a long payload.
        let filler = "A".repeat(tessera_core::MAX_TOKEN_LEN - header.len() - sig.len() - 2);
        w.put("max-length", format!("{header}.{filler}.{sig}"));
        for (name, json) in claims_json() {
            w.put(name, json);
        }
    }

    pub(crate) fn split_cookies() {
        let w = Writer::new("split_cookies");
        let (hs, ed) = (hs_ring(), ed_ring());
        let (c, s) = split(&sign(&hs, &claims()));
        w.put("hs256-valid", format!("{c}|{s}"));
        let (ce, se) = split(&sign(&ed, &claims()));
        w.put(
            "eddsa-valid-ff",
            [ce.as_bytes(), b"\xff", se.as_bytes()].concat(),
        );
        let mut r = claims();
        r.sid = REVOKED_SID.to_string().into();
        let (cr, sr) = split(&sign(&hs, &r));
        w.put("hs256-revoked", format!("{cr}|{sr}"));
        w.put("swapped", format!("{s}|{c}"));
        w.put("mixed-keys", format!("{c}|{se}"));
        w.put("sig-without-dot", format!("{c}|{}", s.replace('.', "")));
        w.put("sig-two-dots", format!("{c}|{s}.{s}"));
        w.put("claims-with-dot", format!("{c}.{c}|{s}"));
        w.put("quoted", format!("\"{c}\"|\"{s}\""));
        w.put("empty-claims", format!("|{s}"));
        w.put("only-claims", &c);
        w.put("empty", "");
        w.put("bar", "|");
        w.put("unicode", "é|ü.ß");
        w.put("non-utf8", b"\xc3\x28|\x80.\x80");
        let filler = "A".repeat(8000);
        w.put("huge", format!("{filler}|{s}"));
        for (name, json) in claims_json().into_iter().take(6) {
            // Claims cookies are base64url: the re-signed path decodes them.
            w.put(name, b64(json));
        }
    }

    pub(crate) fn cookie_header() {
        use tessera_server::http::cookies::{ACCESS, CLAIMS, CSRF, REFRESH, SIG};
        let w = Writer::new("cookie_header");
        let hs = hs_ring();
        let token = sign(&hs, &claims());
        let (c, s) = split(&token);
        let refresh = "r".repeat(43);
        w.put(
            "split-mode",
            format!("theme=dark; {CLAIMS}={c}; {SIG}={s}; {CSRF}=csrf-value; {REFRESH}={refresh}"),
        );
        w.put(
            "split-across-fields",
            format!("{CLAIMS}={c}; a=1\n{SIG}={s}\n{CSRF}=x"),
        );
        w.put("whole-mode", format!("{ACCESS}={token}; b=2"));
        w.put("duplicate-sig", format!("{SIG}={s}; {SIG}={s}"));
        w.put(
            "duplicate-across-fields",
            format!("{CLAIMS}={c}\n{CLAIMS}=evil"),
        );
        w.put(
            "quoted-and-spaced",
            format!("  {CLAIMS} = \"{c}\" ;{SIG}=\"{s}\";;; ; x"),
        );
        w.put("foreign-only", "a=1; b=2; session=abc; =; ==; c");
        w.put("tessera-only", format!("{CSRF}=z; {REFRESH}=r"));
        w.put(
            "case-variant",
            format!("__host-tessera-sig={s}; {CLAIMS}={c}"),
        );
        w.put("name-without-value", format!("{SIG}; {CLAIMS}"));
        w.put("empty", "");
        w.put("newlines", "\n\n\n");
        w.put("obs-text", b"a=\xe9t\xe9; __Host-tessera-sig=\xff");
        w.put("control-bytes", b"a=1\x00; b=\x7f\x01");
        w.put("unicode", "n\u{00e9}=v; __Host-tessera-claims=\u{1F600}");
        let many = (0..400).map(|i| format!("c{i}=v")).collect::<Vec<_>>();
        w.put("many-pairs", many.join("; "));
        w.put("many-fields", many.join("\n"));
        w.put("long-value", format!("{CLAIMS}={}", "A".repeat(8000)));
    }

    pub(crate) fn dpop_proof() {
        let w = Writer::new("dpop_proof");
        let key = DpopKey::ed25519_from_seed(&DPOP_SEED).unwrap();
        let es = DpopKey::generate(DpopAlg::ES256).unwrap();
        let proof = |k: &DpopKey, htm: &str, htu: &str, iat: u64, jti: &str| {
            k.proof(htm, htu, iat, jti, None, None).unwrap()
        };
        w.put(
            "eddsa-valid",
            proof(&key, DPOP_METHOD, DPOP_HTU, NOW.0, "j1"),
        );
        w.put(
            "es256-valid",
            proof(&es, DPOP_METHOD, DPOP_HTU, NOW.0, "j2"),
        );
        w.put(
            "eddsa-ath-nonce",
            key.proof(
                DPOP_METHOD,
                DPOP_HTU,
                NOW.0,
                "j3",
                Some(DPOP_TOKEN),
                Some(DPOP_NONCE),
            )
            .unwrap(),
        );
        w.put(
            "htu-unnormalised",
            proof(
                &key,
                DPOP_METHOD,
                "HTTPS://Auth.Example:443/auth/token?x#y",
                NOW.0,
                "j4",
            ),
        );
        w.put("wrong-htm", proof(&key, "post", DPOP_HTU, NOW.0, "j5"));
        w.put(
            "stale",
            proof(&key, DPOP_METHOD, DPOP_HTU, NOW.0 - 61, "j6"),
        );
        w.put(
            "future",
            proof(&key, DPOP_METHOD, DPOP_HTU, NOW.0 + 6, "j7"),
        );
        w.put(
            "jti-too-long",
            proof(&key, DPOP_METHOD, DPOP_HTU, NOW.0, &"j".repeat(129)),
        );
        let jwk = key.jwk().to_json();
        let claims = format!(
            r#"{{"jti":"j","htm":"{DPOP_METHOD}","htu":"{DPOP_HTU}","iat":{}}}"#,
            NOW.0
        );
        for (name, header) in [
            (
                "hdr-kid",
                format!(r#"{{"typ":"dpop+jwt","alg":"EdDSA","jwk":{jwk},"kid":"k"}}"#),
            ),
            (
                "hdr-typ-jwt",
                format!(r#"{{"typ":"jwt","alg":"EdDSA","jwk":{jwk}}}"#),
            ),
            (
                "hdr-alg-none",
                format!(r#"{{"typ":"dpop+jwt","alg":"none","jwk":{jwk}}}"#),
            ),
            (
                "hdr-alg-es256",
                format!(r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{jwk}}}"#),
            ),
            (
                "hdr-private-d",
                format!(
                    r#"{{"typ":"dpop+jwt","alg":"EdDSA","jwk":{}}}"#,
                    jwk.replacen('{', r#"{"d":"AAAA","#, 1)
                ),
            ),
            (
                "hdr-duplicate-alg",
                format!(r#"{{"typ":"dpop+jwt","alg":"EdDSA","alg":"ES256","jwk":{jwk}}}"#),
            ),
            (
                "hdr-no-jwk",
                r#"{"typ":"dpop+jwt","alg":"EdDSA"}"#.to_owned(),
            ),
        ] {
            w.put(name, key.sign_raw(&header, &claims).unwrap());
        }
        let long_jti = "j".repeat(dpop::MAX_PROOF_LEN * 3 / 4);
        w.put(
            "over-length-limit",
            proof(&key, DPOP_METHOD, DPOP_HTU, NOW.0, &long_jti),
        );
        w.put(
            "four-segments",
            format!("{}.x", proof(&key, DPOP_METHOD, DPOP_HTU, NOW.0, "j")),
        );
        // JWKs (DpopJwk::parse), URLs (normalize_htu), header and claims JSON (re-signed).
        w.put("jwk-okp", &jwk);
        w.put("jwk-ec", es.jwk().to_json());
        w.put(
            "jwk-webcrypto",
            jwk.replacen(
                '{',
                r#"{"alg":"EdDSA","use":"sig","kid":"k1","key_ops":["verify"],"ext":true,"#,
                1,
            ),
        );
        w.put(
            "jwk-ec-no-y",
            es.jwk().to_json().replace(",\"y\"", ",\"z\""),
        );
        w.put("jwk-array", r#"["OKP","Ed25519","AAAA"]"#);
        w.put(
            "jwk-nested",
            format!("{}{}", "{\"a\":".repeat(150), "}".repeat(150)),
        );
        w.put("url-normalise", "HTTPS://Example.COM:443/a/B?q=1#f");
        w.put("url-v6", "https://[::1]:08443");
        w.put("url-userinfo", "https://user:pw@example.com/");
        w.put("url-bad-port", "http://example.com:99999/");
        w.put("header-json", key.header_json());
        w.put("claims-json", &claims);
        w.put(
            "claims-ath-nonce",
            format!(
                r#"{{"jti":"j","htm":"POST","htu":"{DPOP_HTU}","iat":{},"ath":"{}","nonce":"{DPOP_NONCE}"}}"#,
                NOW.0,
                dpop::ath(DPOP_TOKEN)
            ),
        );
        w.put(
            "claims-duplicate-jti",
            claims.replacen('{', r#"{"jti":"other","#, 1),
        );
        w.put(
            "claims-iat-float",
            claims.replace(&NOW.0.to_string(), "1.7e9"),
        );
        w.put(
            "claims-nonce-null",
            claims.replacen('{', r#"{"nonce":null,"#, 1),
        );
        w.put("empty", "");
        w.put("dots", "..");
        w.put("non-utf8", b"\xff.\xfe.\xfd");
    }

    pub(crate) fn signature_headers() {
        let w = Writer::new("signature_headers");
        let digest = httpsig::content_digest(SIG_BODY);
        let (input, sig) = httpsig::sign(
            SIG_METHOD,
            SIG_URI,
            Some(&digest),
            SIG_KEYID,
            "n-1",
            NOW.0,
            &SIG_SECRET,
        )
        .unwrap();
        w.put("valid-with-body", format!("{input}\n{sig}\n{digest}"));
        let (input0, sig0) = httpsig::sign(
            SIG_METHOD,
            SIG_URI,
            None,
            SIG_KEYID,
            "n-2",
            NOW.0,
            &SIG_SECRET,
        )
        .unwrap();
        w.put("valid-no-body", format!("{input0}\n{sig0}"));
        let all = format!(
            r#"sig2=("@method" "@target-uri" "@authority" "@path" "@query" "content-digest" "content-type" "content-length");created={};expires={};keyid="{SIG_KEYID}";nonce="n-3";alg="hmac-sha256""#,
            NOW.0,
            NOW.0 + 60
        );
        w.put(
            "all-components",
            format!(
                "{all}\nsig2=:AAAA:\n{digest}\nhttp://API.example:8080/p/a?q=1&r\nPUT\napplication/json\n17"
            ),
        );
        w.put(
            "two-signatures",
            format!(
                "{input}, {}\n{sig}, {}\n{digest}",
                input.replace("sig1", "sig2"),
                sig.replace("sig1", "sig2")
            ),
        );
        w.put(
            "label-mismatch",
            format!("{input}\n{}\n{digest}", sig.replace("sig1", "sig9")),
        );
        let variants = [
            (
                "unknown-component",
                input.replace("\"@method\"", "\"@method\" \"x-evil\""),
            ),
            (
                "duplicate-component",
                input.replace("\"@method\"", "\"@method\" \"@method\""),
            ),
            (
                "component-param",
                input.replace("\"@method\"", "\"@method\";req"),
            ),
            ("tag-param", format!("{input};tag=\"x\"")),
            (
                "created-negative",
                input.replace(&format!("created={}", NOW.0), "created=-1"),
            ),
            (
                "created-decimal",
                input.replace(&format!("created={}", NOW.0), "created=1.5"),
            ),
            (
                "created-16-digits",
                input.replace(&format!("created={}", NOW.0), "created=1234567890123456"),
            ),
            (
                "created-stale",
                input.replace(&format!("created={}", NOW.0), "created=1"),
            ),
            ("expires-before-created", format!("{input};expires=1")),
            ("keyid-long", input.replace(SIG_KEYID, &"k".repeat(129))),
            ("keyid-escapes", input.replace(SIG_KEYID, "c\\\"l\\\\i")),
            ("alg-other", input.replace("hmac-sha256", "rsa-pss-sha512")),
            (
                "no-keyid",
                input.replace(&format!(";keyid=\"{SIG_KEYID}\""), ""),
            ),
        ];
        for (name, i) in variants {
            w.put(name, format!("{i}\n{sig}\n{digest}"));
        }
        w.put("sig-bad-base64", format!("{input}\nsig1=:!!!!:\n{digest}"));
        w.put("sig-not-bytes", format!("{input}\nsig1=\"abc\"\n{digest}"));
        let d512 = "sha-512=:z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg==:";
        w.put(
            "digest-sha512-wrong",
            format!("{input}\n{sig}\n{d512}, {digest}"),
        );
        w.put("digest-params", format!("{input}\n{sig}\n{digest};a=1"));
        w.put("digest-unknown-only", format!("{input}\n{sig}\nmd5=:AAAA:"));
        w.put(
            "digest-duplicate",
            format!("{input}\n{sig}\n{digest}, {digest}"),
        );
        w.put(
            "uri-userinfo",
            format!("{input0}\n{sig0}\n\nhttps://u@api.example/"),
        );
        w.put(
            "uri-v6-fragment",
            format!("{input0}\n{sig0}\n\nhttps://[::1]:443/#f"),
        );
        w.put("method-bad", format!("{input0}\n{sig0}\n\n{SIG_URI}\nGE T"));
        w.put("empty", "");
        w.put("whitespace", " \t\n\t \n ");
        w.put("unicode", format!("{input}é\n{sig}\u{1F600}\n{digest}"));
        w.put(
            "huge-list",
            format!(
                "sig1=({});created=1;keyid=\"k\";nonce=\"n\"\nsig1=::",
                "\"@method\" ".repeat(400)
            ),
        );
    }

    pub(crate) fn config() {
        let w = Writer::new("config");
        w.put(
            "full",
            r#"listen = "0.0.0.0:8443"
public_origin = "https://app.example.com"
data_dir = "/var/lib/tessera"
database_url = "postgres://tessera@db/tessera"
upstream = "http://127.0.0.1:3000/api"
static_dir = "/srv/spa"
public_paths = ["/api/public/"]
trusted_proxies = ["10.0.0.1", "::1"]

[tls]
mode = "files"
cert = "/etc/tessera/cert.pem"
key = "/etc/tessera/key.pem"

[tokens]
algorithm = "EdDSA"
access_ttl = "10m"
refresh_ttl = "14d"
session_max = "30d"
refresh_grace = "5s"
leeway = "30s"
issuer = "https://auth.example.com"
audience = "https://api.example.com"
rotate_every = "7d"
prepublish = "1h"
verify_cache_entries = 10000

[cookies]
mode = "split"

[cors]
allowed_origins = ["http://localhost:5173"]

[limits]
max_body_bytes = 1048576
max_header_bytes = 16384
max_headers = 64
header_timeout = "10s"
request_timeout = "30s"
upstream_timeout = "30s"
max_connections = 4096
shutdown_grace = "10s"

[passwords]
m_cost = 19456
t_cost = 2
p_cost = 1
min_length = 8
max_length = 256
workers = 0
queue = 32

[rate_limit]
per_username_per_minute = 5
per_ip_per_minute = 30

[log]
format = "json"
level = "info,tessera=debug"

[sync]
revocation_poll = "1s"
key_poll = "10s"

[dpop]
max_age = "60s"
max_skew = "5s"
replay_capacity = 1000000

[signatures]
window = "5m"
replay_capacity = 1000000
"#,
        );
        w.put("empty", "");
        w.put(
            "demo",
            "listen = \"127.0.0.1:0\"\n[tls]\nmode = \"off\"\n[cookies]\nmode = \"whole\"\n",
        );
        w.put("unknown-key", "lisen = 1\n");
        w.put("unknown-nested", "[tokens]\nacess_ttl = \"5m\"\n");
        w.put("bad-duration", "[tokens]\naccess_ttl = \"forever\"\n");
        w.put(
            "duration-compound",
            "[tokens]\naccess_ttl = \"1h 30m 2s 5ms\"\n",
        );
        w.put("duration-number", "[tokens]\naccess_ttl = 600\n");
        w.put(
            "duplicate-key",
            "listen = \"127.0.0.1:1\"\nlisten = \"127.0.0.1:2\"\n",
        );
        w.put(
            "duplicate-table",
            "[tls]\nmode = \"off\"\n[tls]\nmode = \"files\"\n",
        );
        w.put(
            "wrong-types",
            "public_paths = \"/x\"\ntrusted_proxies = [1, 2]\n[limits]\nmax_headers = -1\n",
        );
        w.put(
            "huge-integer",
            "[limits]\nmax_body_bytes = 99999999999999999999\n",
        );
        w.put("inline-tables", "tokens = { access_ttl = \"5m\", algorithm = \"HS256\" }\ncors = { allowed_origins = [\"*\"] }\n");
        w.put(
            "dotted-keys",
            "tokens.access_ttl = \"2h\"\npasswords.m_cost = 1\n",
        );
        w.put("array-of-tables", "[[tls]]\nmode = \"off\"\n");
        w.put("datetime", "listen = 1979-05-27T07:32:00Z\n");
        w.put("bad-origin", "public_origin = \"https://a.example/path\"\n");
        w.put("bad-upstream", "upstream = \"http://[::1\"\n");
        w.put(
            "bad-enum",
            "[cookies]\nmode = \"crumbs\"\n[log]\nformat = \"xml\"\n",
        );
        w.put(
            "nested-arrays",
            format!("public_paths = {}{}\n", "[".repeat(300), "]".repeat(300)),
        );
        w.put(
            "nested-inline",
            format!("x = {}1{}\n", "{a=".repeat(200), "}".repeat(200)),
        );
        w.put("unicode", "\"ключ\" = \"значение\"\npublic_origin = \"https://exämple.com\"\nlog.level = \"\u{1F600}\"\n");
        w.put(
            "escapes",
            "data_dir = \"\\u0000\\uD7FF\\U0010FFFF\"\nstatic_dir = '''\nmulti\nline'''\n",
        );
        w.put(
            "crlf",
            "listen = \"127.0.0.1:1\"\r\n[tls]\r\nmode = \"off\"\r\n",
        );
        w.put("non-utf8", b"listen = \"\xff\"\n");
        w.put("validate-edges", "[tokens]\naccess_ttl = \"1h\"\nrefresh_ttl = \"59m\"\nrotate_every = \"1m\"\nprepublish = \"1m\"\n[dpop]\nmax_age = \"0s\"\nreplay_capacity = 0\n");
    }
}

mod upstream_seeds {
    use super::seeds::Writer;

    /// `ctl` is the target's first byte: bit 0 set asks as `HEAD`, the rest is the read
    /// size minus one, doubled.
    fn put(w: &Writer, name: &str, ctl: u8, answer: &[u8]) {
        let mut data = vec![ctl];
        data.extend_from_slice(answer);
        w.put(name, data);
    }

    pub(crate) fn upstream_response() {
        let w = Writer::new("upstream_response");
        // GET, in reads of 1 byte (ctl 0); a few also in reads of 7 (ctl 12).
        let get = |name: &str, answer: &[u8]| {
            put(&w, name, 0, answer);
            if ["length-extra", "chunked", "chunked-trailers", "interim"].contains(&name) {
                put(&w, &format!("{name}-read7"), 12, answer);
            }
        };
        get(
            "length",
            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nhello",
        );
        get(
            "length-zero",
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
        );
        get(
            "length-list",
            b"HTTP/1.1 200 OK\r\ncontent-length: 3, 3\r\n\r\nabc",
        );
        get("length-extra", b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfirstHTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nfake");
        get(
            "length-short",
            b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\nonly this",
        );
        get("chunked", b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n");
        get("chunked-trailers", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-trailer: 1\r\nx-other: 2\r\n\r\n");
        get("chunked-extra", b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n0\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nfake");
        get(
            "chunked-bad-crlf",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
        );
        get(
            "chunked-huge-size",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nffffffffffffffff\r\nab",
        );
        get(
            "chunked-17-digits",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n10000000000000000\r\n",
        );
        get(
            "chunked-bare-lf-trailer",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\nx: a\nb\r\n\r\n",
        );
        get("interim", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        get(
            "switch",
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n",
        );
        get(
            "no-content",
            b"HTTP/1.1 204 No Content\r\ncontent-length: 9\r\n\r\n",
        );
        get(
            "no-content-body",
            b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nfake",
        );
        get(
            "not-modified",
            b"HTTP/1.1 304 Not Modified\r\ntransfer-encoding: chunked\r\n\r\n",
        );
        get(
            "timeout-408",
            b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
        );
        get(
            "close",
            b"HTTP/1.1 200 OK\r\nconnection: keep-alive, close\r\ncontent-length: 2\r\n\r\nok",
        );
        get("unframed", b"HTTP/1.1 200 OK\r\n\r\nread to the end");
        get("http10", b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok");
        get("hop-by-hop", b"HTTP/1.1 200 OK\r\nConnection: X-Secret\r\nKeep-Alive: timeout=5\r\nx-secret: 1\r\nUpgrade: h2c\r\nx-kept: 2\r\ncontent-length: 0\r\n\r\n");
        get(
            "both-framings",
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
        );
        get(
            "conflicting-lengths",
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello",
        );
        get(
            "te-gzip",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        );
        get("bad-status", b"HTTP/1.1 2000 OK\r\n\r\n");
        get(
            "bad-header",
            b"HTTP/1.1 200 OK\r\nx: a\rb\r\ncontent-length: 0\r\n\r\n",
        );
        // HEAD: a body that should not be there.
        put(
            &w,
            "head-with-body",
            1,
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
        );
        put(
            &w,
            "head",
            13,
            b"HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n",
        );
        // Big reads, a long body.
        let mut long = b"HTTP/1.1 200 OK\r\ncontent-length: 6000\r\n\r\n".to_vec();
        long.extend((0..6000).map(|i| (i % 251) as u8));
        put(&w, "length-long-read128", 254, &long);
        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..128 {
            many.extend_from_slice(format!("x-h{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"content-length: 0\r\n\r\n");
        put(&w, "headers-128", 254, &many);
        put(&w, "empty", 0, b"");
    }
}

/// Rewrites the generated seed files of every corpus. Run by hand after changing the
/// fixtures or a format: `cargo test -p tessera --test fuzz_corpus -- --ignored`.
#[test]
#[ignore = "writes into fuzz/corpus; run by hand to regenerate seeds"]
fn write_seed_corpus() {
    seeds::access_token();
    seeds::split_cookies();
    seeds::cookie_header();
    seeds::dpop_proof();
    seeds::signature_headers();
    seeds::config();
    upstream_seeds::upstream_response();
}
