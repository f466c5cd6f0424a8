//! The bodies of tessera's fuzz targets: one `pub fn(&[u8])` per parser of untrusted input.
//!
//! Used twice: by the cargo-fuzz targets in `fuzz/fuzz_targets/` (one line each), and by
//! the corpus replay test `crates/tessera/tests/fuzz_corpus.rs`, which compiles this file
//! as a module of the `tessera` crate's tests (`#[path]`). So it may only use crates that
//! `tessera` depends on too: tessera-core, tessera-server, ring, base64, toml and
//! serde_path_to_error (`http` types are reached by inference, see [`cookie_headers`]).
//!
//! The property fuzzed is "no panic, no hang, no runaway allocation" for any bytes, plus a
//! few cheap invariants asserted below (a failed assertion is a crash to libFuzzer):
//! - a token verifies the same with and without the verified-token cache, now and later;
//! - split cookies and the compact token they come from split into the same parts;
//! - what `cookies::strip` forwards upstream never contains a tessera cookie;
//! - a verified DPoP proof is refused the second time (replay), and `normalize_htu` is
//!   idempotent, and a parsed JWK survives its own serialisation;
//! - a request signature made with the right secret never fails as `BadSignature`, and
//!   `check_content_digest` accepts `content_digest` of the same body;
//! - an upstream's answer parses the same however its bytes are split into reads, its
//!   decoded body is never longer than the input (and matches a plain reference decoder),
//!   and its connection is reusable only when the input ended exactly at the framing's end.
//!
//! Signatures cannot be guessed by a fuzzer, so each target also re-signs the input
//! with a fixed key (HMAC for access tokens and request signatures, Ed25519 for DPoP
//! proofs) and verifies the result: that is how the claim parsers and the checks after
//! the signature are reached.

// Fixed test keys must load; if one does not, the harness itself is broken.
#![allow(clippy::expect_used)]

use std::sync::OnceLock;

use base64::Engine;
use tessera_core::dpop::{self, DpopCheck, DpopError, DpopJwk, DpopKey};
use tessera_core::httpsig::{self, SigError, SignedRequest};
use tessera_core::replay::ReplayCache;
use tessera_core::{
    b64, AccessClaims, Algorithm, Denylist, KeyRing, SessionId, SigningKey, TokenError, TokenParts,
    UnixTime, UserId, Verifier, VerifyCache,
};
use tessera_server::http::cookies;

/// The fixed inputs every target verifies against. The seed corpora are made with them.
pub mod fixtures {
    use super::*;

    /// "Now" for every check.
    pub const NOW: UnixTime = UnixTime(1_700_000_000);
    /// Token issuer the verifier accepts.
    pub const ISSUER: &str = "https://issuer.example";
    /// Token audience the verifier accepts.
    pub const AUDIENCE: &str = "https://app.example";
    /// Clock-skew leeway of the verifier, seconds.
    pub const LEEWAY: u64 = 30;
    /// The HS256 key: active (signs).
    pub const HS_KID: &str = "fuzz-hs256";
    /// Its secret.
    pub const HS_SECRET: [u8; 32] = [0x42; 32];
    /// The EdDSA key: older, retired, still verifies.
    pub const ED_KID: &str = "fuzz-eddsa";
    /// Its Ed25519 seed.
    pub const ED_SEED: [u8; 32] = [0x17; 32];
    /// A revoked session.
    pub const REVOKED_SID: SessionId = SessionId([0x0d; 16]);
    /// A user whose tokens issued before `NOW - 60` are revoked.
    pub const CUT_OFF_USER: UserId = UserId([0x0e; 16]);

    /// DPoP: the request method.
    pub const DPOP_METHOD: &str = "POST";
    /// DPoP: the request URL (normalised).
    pub const DPOP_HTU: &str = "https://auth.example/auth/token";
    /// DPoP: the access token of the second check (the proof's `ath` must be its hash).
    pub const DPOP_TOKEN: &str = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU";
    /// DPoP: the nonce of the second check.
    pub const DPOP_NONCE: &str = "fuzz-nonce";
    /// DPoP: `max_age` and `max_skew`, seconds.
    pub const DPOP_MAX_AGE: u64 = 60;
    /// See [`DPOP_MAX_AGE`].
    pub const DPOP_MAX_SKEW: u64 = 5;
    /// DPoP: the Ed25519 seed of the key the targets re-sign proofs with.
    pub const DPOP_SEED: [u8; 32] = [0x33; 32];

    /// Signed requests: the client's key id and secret.
    pub const SIG_KEYID: &str = "client-1";
    /// See [`SIG_KEYID`].
    pub const SIG_SECRET: [u8; 32] = [0x07; 32];
    /// Signed requests: default method and target URI (input lines 4 and 5 override them).
    pub const SIG_METHOD: &str = "POST";
    /// See [`SIG_METHOD`].
    pub const SIG_URI: &str = "https://api.example/v1/items?x=1";
    /// Signed requests: the body sent when a `Content-Digest` line is present.
    pub const SIG_BODY: &[u8] = br#"{"hello":"world"}"#;
    /// Signed requests: the time window, seconds.
    pub const SIG_WINDOW: u64 = 300;

    /// A PKCS#8 v1 document for an Ed25519 seed (RFC 8410).
    pub fn ed25519_pkcs8(seed: &[u8; 32]) -> Vec<u8> {
        let mut doc = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        doc.extend_from_slice(seed);
        doc
    }

    /// The HS256 key.
    pub fn hs256_key() -> SigningKey {
        SigningKey::from_parts(
            HS_KID.into(),
            Algorithm::HS256,
            NOW.minus(1_000),
            NOW.minus(1_000),
            None,
            None,
            &HS_SECRET,
        )
        .expect("fixed HS256 key")
    }

    /// The EdDSA key.
    pub fn eddsa_key() -> SigningKey {
        SigningKey::from_parts(
            ED_KID.into(),
            Algorithm::EdDSA,
            NOW.minus(2_000),
            NOW.minus(2_000),
            None,
            None,
            &ed25519_pkcs8(&ED_SEED),
        )
        .expect("fixed EdDSA key")
    }

    /// Everything the targets verify with.
    pub struct Fixtures {
        /// Both keys, HS256 active, EdDSA retired.
        pub ring: KeyRing,
        /// Issuer, audience, leeway.
        pub verifier: Verifier,
        /// One revoked session, one user cut-off.
        pub denylist: Denylist,
        /// The header segment of HS256 tokens.
        pub hs_header: String,
        /// The DPoP key proofs are re-signed with.
        pub dpop_key: DpopKey,
    }

    /// The fixtures, built once per process.
    pub fn get() -> &'static Fixtures {
        static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
        FIXTURES.get_or_init(|| {
            let ring = KeyRing::new(vec![eddsa_key(), hs256_key()], NOW);
            let denylist = Denylist::new();
            denylist.revoke_session(REVOKED_SID, NOW.plus(3_600));
            denylist.revoke_user_before(CUT_OFF_USER, NOW.minus(60), NOW.plus(3_600));
            let example = ring
                .sign(&tessera_core::AccessClaims::example(NOW))
                .expect("the HS256 key signs");
            let hs_header = example.split('.').next().expect("a compact JWS").to_owned();
            Fixtures {
                ring,
                verifier: Verifier::new(ISSUER, AUDIENCE, LEEWAY),
                denylist,
                hs_header,
                dpop_key: DpopKey::ed25519_from_seed(&DPOP_SEED).expect("fixed DPoP key"),
            }
        })
    }

    /// The base64url HMAC-SHA256 signature segment of `header.payload` under the HS256 key.
    pub fn hs256_signature(header: &str, payload_b64: &str) -> String {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &HS_SECRET);
        let mut ctx = ring::hmac::Context::with_key(&key);
        ctx.update(header.as_bytes());
        ctx.update(b".");
        ctx.update(payload_b64.as_bytes());
        b64::encode(ctx.sign())
    }

    /// A compact HS256 token whose payload is exactly `claims_json`, correctly signed.
    pub fn hs256_token(claims_json: &[u8]) -> String {
        let header = &get().hs_header;
        let payload = b64::encode(claims_json);
        let sig = hs256_signature(header, &payload);
        format!("{header}.{payload}.{sig}")
    }
}

use fixtures::*;

// ---- access tokens -------------------------------------------------------------------

/// The parts as plain strings, to compare two splits.
fn segments<'a>(p: &Result<TokenParts<'a>, TokenError>) -> Option<(&'a str, &'a str, &'a str)> {
    p.as_ref().ok().map(|p| (p.header, p.payload, p.signature))
}

/// Verifies `parts` the ways the server can: with and without the verified-token cache
/// (a miss, then a hit), at `NOW` and an hour later; all must agree.
fn verify_all_ways(parts: Result<TokenParts<'_>, TokenError>) {
    let Ok(parts) = parts else { return };
    let f = get();
    let cache = VerifyCache::new(4);
    for now in [NOW, NOW.plus(3_600)] {
        let plain = f.ring.verify_parts(parts, &f.verifier, &f.denylist, now);
        let plain = plain.map(|v| (v.claims().clone(), v.kid().to_owned()));
        for _ in 0..2 {
            let cached = f
                .ring
                .verify_parts_cached(parts, &f.verifier, &f.denylist, now, &cache)
                .map(|v| (v.claims().clone(), v.kid().to_owned()));
            assert_eq!(plain, cached, "the cache changed a verification result");
        }
    }
}

/// Target `access_token`: the input as a compact JWS (`Authorization: Bearer`, whole-mode
/// cookie), then as the claims JSON of a correctly signed HS256 token.
pub fn access_token(data: &[u8]) {
    // The hand-written hot-path parsers give the reference implementations' verdicts:
    // claims JSON vs serde_json's derive, base64url vs the base64 crate's strict engine.
    assert_eq!(
        AccessClaims::from_json(data),
        serde_json::from_slice::<AccessClaims>(data).ok(),
        "claims parsers disagree"
    );
    if let Ok(s) = std::str::from_utf8(data) {
        let mut buf = vec![0u8; s.len()];
        let fast = b64::decode_slice(s, &mut buf).map(|n| buf[..n].to_vec());
        assert_eq!(fast, b64::decode(s), "base64url decoders disagree");
    }
    let f = get();
    if let Ok(token) = std::str::from_utf8(data) {
        let parts = TokenParts::from_compact(token);
        let whole = f.ring.verify(token, &f.verifier, &f.denylist, NOW);
        let split = parts.and_then(|p| f.ring.verify_parts(p, &f.verifier, &f.denylist, NOW));
        assert_eq!(
            whole.map(|v| v.into_claims()),
            split.map(|v| v.into_claims())
        );
        verify_all_ways(parts);
    }
    let token = hs256_token(data);
    verify_all_ways(TokenParts::from_compact(&token));
}

/// Target `split_cookies`: the input split at the first `0xFF` or `|` into the claims
/// cookie and the signature cookie (`header.signature`); then the same claims cookie with
/// a signature cookie that is correct for it.
pub fn split_cookies(data: &[u8]) {
    let (claims, sig) = match data.iter().position(|&b| b == 0xFF || b == b'|') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let (Ok(claims), Ok(sig)) = (std::str::from_utf8(claims), std::str::from_utf8(sig)) else {
        return;
    };
    let parts = TokenParts::from_split(claims, sig);
    if let Some((header, signature)) = sig.split_once('.') {
        let compact = format!("{header}.{claims}.{signature}");
        assert_eq!(
            segments(&parts),
            segments(&TokenParts::from_compact(&compact)),
            "split cookies and their compact token disagree"
        );
    }
    verify_all_ways(parts);

    let header = &get().hs_header;
    let good_sig = format!("{header}.{}", hs256_signature(header, claims));
    verify_all_ways(TokenParts::from_split(claims, &good_sig));
}

// ---- the Cookie header ---------------------------------------------------------------

/// A `HeaderMap` with one `Cookie` field per value that is a valid header value (as a
/// server would receive them). The type is inferred from the caller's use: the replay
/// test's crate has no direct `http` dependency to name it with.
fn cookie_headers<'a, M, N, V>(values: impl Iterator<Item = &'a [u8]>) -> M
where
    M: FromIterator<(N, V)>,
    N: TryFrom<&'static str>,
    V: TryFrom<&'a [u8]>,
{
    values
        .filter_map(|v| Some((N::try_from("cookie").ok()?, V::try_from(v).ok()?)))
        .collect()
}

/// Target `cookie_header`: the input, split on `\n`, as the `Cookie` fields of one
/// request: `cookies::read` (then the token they carry, both cookie modes) and
/// `cookies::strip`.
pub fn cookie_header(data: &[u8]) {
    let headers = cookie_headers(data.split(|&b| b == b'\n'));
    if let Ok(jar) = cookies::read(&headers) {
        if let (Some(claims), Some(sig)) = (jar.claims, jar.sig) {
            verify_all_ways(TokenParts::from_split(claims, sig));
        }
        if let Some(token) = jar.access {
            verify_all_ways(TokenParts::from_compact(token));
        }
    }
    if let Some(kept) = cookies::strip(&headers) {
        let upstream = cookie_headers(std::iter::once(kept.as_bytes()));
        if let Ok(jar) = cookies::read(&upstream) {
            assert!(
                !jar.has_access() && jar.refresh.is_none() && jar.csrf.is_none(),
                "a tessera cookie survived strip: {kept:?}"
            );
        }
    }
}

// ---- DPoP ----------------------------------------------------------------------------

/// Verifies a `DPoP` header value against both fixed checks (without, then with an access
/// token and a nonce), alone and with a replay cache.
fn check_proof(proof: &str) {
    let checks = [
        DpopCheck {
            method: DPOP_METHOD,
            htu: DPOP_HTU,
            access_token: None,
            now: NOW,
            max_age: DPOP_MAX_AGE,
            max_skew: DPOP_MAX_SKEW,
            nonce: None,
        },
        DpopCheck {
            method: DPOP_METHOD,
            htu: DPOP_HTU,
            access_token: Some(DPOP_TOKEN),
            now: NOW,
            max_age: DPOP_MAX_AGE,
            max_skew: DPOP_MAX_SKEW,
            nonce: Some(DPOP_NONCE),
        },
    ];
    for check in &checks {
        let plain = dpop::verify_proof(proof, check);
        let replay = ReplayCache::new(4);
        let once = dpop::verify_proof_once(proof, check, &replay);
        assert_eq!(plain, once);
        if let Ok(p) = &plain {
            assert_eq!(p.jkt.len(), 43);
            assert_eq!(
                dpop::verify_proof_once(proof, check, &replay),
                Err(DpopError::Replayed)
            );
        }
    }
}

/// Target `dpop_proof`: the input as a `DPoP` header value, as a JWK, and as a URL for
/// `normalize_htu`; then as the header JSON of a proof (parsed before the signature is
/// checked), and as the claims JSON of a proof signed with the fixed Ed25519 key.
pub fn dpop_proof(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check_proof(text);
    if let Ok(jwk) = DpopJwk::parse(text) {
        assert_eq!(DpopJwk::parse(&jwk.to_json()).as_ref(), Ok(&jwk));
        assert_eq!(dpop::jwk_thumbprint(&jwk).len(), 43);
    }
    if let Some(url) = dpop::normalize_htu(text) {
        assert_eq!(dpop::normalize_htu(&url).as_deref(), Some(url.as_str()));
    }

    let key = &get().dpop_key;
    let claims = format!(
        r#"{{"jti":"j","htm":"{DPOP_METHOD}","htu":"{DPOP_HTU}","iat":{}}}"#,
        NOW.0
    );
    let unsigned = format!(
        "{}.{}.{}",
        b64::encode(text),
        b64::encode(&claims),
        b64::encode([0u8; 64])
    );
    check_proof(&unsigned);
    if let Some(proof) = key.sign_raw(&key.header_json(), text) {
        check_proof(&proof);
    }
}

// ---- request signatures --------------------------------------------------------------

/// Target `signature_headers`: the input's lines are `Signature-Input`, `Signature`,
/// `Content-Digest` (its presence means the request has [`SIG_BODY`]), and optionally the
/// target URI, method, `Content-Type` and `Content-Length`. Parsed, verified with the
/// fixed client secret, then signed correctly and verified again (time, digest, replay).
pub fn signature_headers(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let signature_input = lines.next().unwrap_or_default();
    let signature = lines.next().unwrap_or_default();
    let content_digest = lines.next();
    let target_uri = lines.next().unwrap_or(SIG_URI);
    let method = lines.next().unwrap_or(SIG_METHOD);
    let content_type = lines.next();
    let content_length = lines.next();
    let body = if content_digest.is_some() {
        SIG_BODY
    } else {
        b""
    };
    let req = SignedRequest {
        method,
        target_uri,
        content_digest,
        content_type,
        content_length,
        has_body: !body.is_empty(),
        signature_input,
        signature,
    };
    let secret_for = |keyid: &str| (keyid == SIG_KEYID).then_some(SIG_SECRET);

    if let Ok(parsed) = httpsig::parse(&req) {
        let _ = httpsig::verify(&parsed, &SIG_SECRET, NOW, SIG_WINDOW);
    }
    let replay = ReplayCache::new(4);
    let _ = httpsig::verify_request(&req, body, secret_for, &replay, NOW, SIG_WINDOW);
    if let Some(digest) = content_digest {
        let _ = httpsig::check_content_digest(digest, body);
        let _ = httpsig::check_content_digest(digest, data);
    }
    assert!(httpsig::check_content_digest(
        &httpsig::content_digest(data),
        data
    ));

    // The same request with a correct signature: the label from Signature-Input, the
    // MAC over the base the verifier builds.
    let label = signature_input
        .trim_start_matches([' ', '\t'])
        .split('=')
        .next()
        .unwrap_or_default();
    let empty = format!("{label}=::");
    let Ok(parsed) = httpsig::parse(&SignedRequest {
        signature: &empty,
        ..req
    }) else {
        return;
    };
    let tag = httpsig::sign_base(&parsed.base, &SIG_SECRET);
    let good = format!(
        "{label}=:{}:",
        base64::engine::general_purpose::STANDARD.encode(tag)
    );
    let req = SignedRequest {
        signature: &good,
        ..req
    };
    let parsed = httpsig::parse(&req).expect("a correct signature field parses");
    assert_ne!(
        httpsig::verify(&parsed, &SIG_SECRET, NOW, SIG_WINDOW),
        Err(SigError::BadSignature)
    );
    let replay = ReplayCache::new(4);
    if httpsig::verify_request(&req, body, secret_for, &replay, NOW, SIG_WINDOW).is_ok() {
        assert_eq!(
            httpsig::verify_request(&req, body, secret_for, &replay, NOW, SIG_WINDOW),
            Err(SigError::Replayed)
        );
    }
}

// ---- configuration -------------------------------------------------------------------

/// Target `config`: the input as the TOML configuration file, loaded the way
/// `tessera::config::load` and `from_table` do (the binary crate cannot be imported):
/// parse to a table, deserialise with the failing key's path, validate.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(table) = text.parse::<toml::Table>() else {
        return;
    };
    let result: Result<tessera_server::config::Config, _> =
        serde_path_to_error::deserialize(toml::Value::Table(table));
    match result {
        Ok(config) => {
            if config.validate().is_ok() {
                let _ = config.database_url();
            }
        }
        Err(e) => {
            // from_table's error mapping: the path, or the field named in the message.
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            let _key = match inner.split('`').nth(1) {
                Some(field) if path == "." || path.is_empty() => field.to_owned(),
                _ => path,
            };
        }
    }
}

// ---- upstream responses --------------------------------------------------------------

/// Target `upstream_response`: the bytes an upstream sends in answer to a request without
/// a body (`tessera_server::upstream`). The first byte chooses the request's method (odd:
/// `HEAD`) and a read size (1–128 bytes); the rest is the answer, parsed once whole and
/// once in reads of that size, which must agree.
pub fn upstream_response(data: &[u8]) {
    use tessera_server::upstream::fuzz_parse;
    let Some((&ctl, input)) = data.split_first() else {
        return;
    };
    let is_head = ctl & 1 == 1;
    let step = usize::from(ctl >> 1) + 1;
    let whole = fuzz_parse(input, is_head, input.len());
    let pieces = fuzz_parse(input, is_head, step);
    let a = match (whole, pieces) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b, "the read size changed the answer");
            a
        }
        (Err(_), Err(_)) => return,
        (a, b) => panic!("the read size changed the verdict: {a:?} / {b:?}"),
    };
    assert!(a.body.len() <= input.len(), "body longer than the input");
    assert!(a.head_len <= a.end && a.end <= input.len(), "{a:?}");
    assert!(a.body.len() <= a.end - a.head_len, "{a:?}");
    assert!((200..1000).contains(&a.status), "{a:?}");
    if a.reusable {
        assert_eq!(a.end, input.len(), "reusable, but bytes follow the answer");
        assert_ne!(a.framing, "close");
    }
    if is_head || a.status == 204 || a.status == 304 {
        assert_eq!(a.framing, "none", "a body where there is none");
    }
    let rest = &input[a.head_len..];
    match a.framing {
        "none" => {
            assert!(a.body.is_empty());
            assert_eq!(a.end, a.head_len);
        }
        "length" => {
            assert_eq!(a.length, Some(a.body.len() as u64));
            assert_eq!(a.body, input[a.head_len..a.end]);
        }
        "chunked" => {
            let reference = chunked_reference(rest);
            assert_eq!(
                reference,
                Some((a.body.clone(), a.end - a.head_len)),
                "the chunk decoder disagrees with the reference"
            );
        }
        "close" => {
            assert!(!a.reusable);
            assert_eq!(a.body, rest);
        }
        other => panic!("unknown framing {other}"),
    }
}

/// A plain chunked decoder (RFC 9112 §7.1) without the client's bounds: the body, and
/// how many bytes the chunked coding took, trailers and final CRLF included.
fn chunked_reference(b: &[u8]) -> Option<(Vec<u8>, usize)> {
    let line_end = |at: usize| {
        b.get(at..)?
            .windows(2)
            .position(|w| w == b"\r\n")
            .map(|i| at + i)
    };
    let mut at = 0;
    let mut body = Vec::new();
    loop {
        let eol = line_end(at)?;
        let digits = b[at..eol]
            .iter()
            .take_while(|c| c.is_ascii_hexdigit())
            .count();
        let size = u64::from_str_radix(std::str::from_utf8(&b[at..at + digits]).ok()?, 16).ok()?;
        at = eol + 2;
        if size == 0 {
            break;
        }
        let end = at.checked_add(usize::try_from(size).ok()?)?;
        body.extend_from_slice(b.get(at..end)?);
        if b.get(end..end.checked_add(2)?)? != b"\r\n" {
            return None;
        }
        at = end + 2;
    }
    loop {
        let eol = line_end(at)?;
        let empty = eol == at;
        at = eol + 2;
        if empty {
            return Some((body, at));
        }
    }
}
