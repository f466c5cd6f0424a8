//! JWT and session attacks against tessera (in-process), as a cross-reference of
//! the standards and the well-known attack list to the test that holds each one.
//!
//! Every case goes through the real HTTP surface: a forged or damaged access token is
//! presented as `Authorization: Bearer` *and* as the split cookies, on a proxied path
//! (`/api/whoami`), on forward-auth (`/auth/verify`) and on `/auth/session`, and must get
//! exactly 401 with the contract's body `{"error":"unauthenticated","message":…}` (Bearer
//! answers also carry a `WWW-Authenticate: Bearer` challenge, RFC 6750 §3). Nothing may
//! ever answer 5xx, and no server task may panic.
//!
//! Most attacks need no secret. The ones that probe the *claims* checks need a validly
//! signed token with bad claims, or every refusal would just be a bad signature: for those
//! the test plays a key holder — it opens the server's own signing key from its data folder
//! (`master.key` + the SQLite `signing_keys` row) — and signs hand-made headers and payloads
//! with it. Each such test first shows that a re-signed copy of genuine claims is accepted,
//! so the one thing changed is the reason for each refusal.
//!
//! | source | requirement / attack | test |
//! |---|---|---|
//! | RFC 8725 §2.1, §3.1 | `alg: none` / `None` / `NONE`, signature stripped or kept | [`rfc8725_2_1_alg_none_in_every_spelling_is_refused`]; also `csrf.rs::hostile_cookies_are_refused` (one cookie case) |
//! | RFC 8725 §2.1, §3.1 | algorithm confusion: HS256 keyed with the EdDSA public key (raw, `x`, JWK, JWKS, SPKI, PEM) | [`rfc8725_3_1_hs256_keyed_with_the_public_key_is_refused`] |
//! | RFC 8725 §3.1 | algorithm verification: `alg` comes from the key, never from the header (EdDSA and HS256 keys) | [`rfc8725_3_1_alg_comes_from_the_key_never_from_the_header`] |
//! | RFC 8725 §3.2, §3.5 | appropriate algorithms: only EdDSA/HS256 configurable, no human-chosen secret | `tests/attacks.rs::rfc8725_3_2_only_strong_algorithms_and_random_keys_can_be_configured` (the binary's start-up); `none` in `ops.rs::bad_configuration_exits_2_naming_the_key` |
//! | RFC 8725 §3.2, §3.5 | weak keys: a short HS256 key stops start-up (exit ≠ 0, names the key) | `tests/attacks.rs::rfc8725_3_2_a_short_hs256_key_stops_start_up`, `tests/attacks.rs::rfc8725_3_2_a_short_hs256_key_is_reported_as_too_short` (the binary's start-up) |
//! | RFC 8725 §3.2, §3.5 | weak keys: a running node never loads a short HS256 key | [`rfc8725_3_2_a_running_node_never_loads_a_short_hs256_key`] |
//! | RFC 8725 §3.4 | compact form only: two segments, stripped / truncated / extended / foreign signature, JWE, JSON serialization, whitespace | [`rfc8725_3_4_only_the_compact_form_with_its_own_signature_passes`] |
//! | RFC 8725 §3.4 | non-canonical base64url: trailing bits, `=` padding, `+` `/` alphabet (unsigned, and key-holder-signed so only the decoder can refuse) | [`rfc8725_3_4_non_canonical_base64url_is_refused`] |
//! | RFC 8725 §3.4 | huge segments, oversized tokens and cookies: exact bounds, no 5xx | [`rfc8725_3_4_size_bounds_are_exact`]; 64 KiB headers in `gateway.rs::oversized_headers_get_431` |
//! | RFC 8725 §3.8 | issuer compared exactly | [`rfc8725_3_8_issuer_must_match_exactly`] |
//! | RFC 8725 §3.9 | audience compared exactly | [`rfc8725_3_9_audience_must_match_exactly`] |
//! | RFC 8725 §3.10 | received header values not trusted: `jku` / `x5u` (no outbound fetch), embedded `jwk`, `x5c`, `crit`, `b64`, kid injection (`../../dev/null`, `' OR 1=1--`, URL) | [`rfc8725_3_10_header_parameters_are_never_trusted`] |
//! | RFC 8725 §3.10 | identity headers come from verified claims only | `gateway.rs::proxy_sends_verified_identity_and_strips_spoofed_headers` |
//! | RFC 8725 §3.11 | explicit typing: `typ` must be `at+jwt` (no `JWT`, `dpop+jwt`, missing; no `cty`) | [`rfc8725_3_11_explicit_typing_is_required`] |
//! | RFC 8725 §3.12 | mutually exclusive validation: DPoP proofs, refresh and CSRF tokens are no access tokens, and the reverse | [`rfc8725_3_12_other_tokens_never_pass_as_access_tokens`]; CSRF token as Bearer in `csrf.rs::authorization_header_replaces_cookies`; access token as refresh token in `tokens.rs::refresh_grant_rotates`; bound token as Bearer in `tokens.rs::dpop_eddsa` |
//! | JWT attacks | payload tampering, signature kept (sub, sid, exp, roles, username, cnf; header swapped) | [`jwt_tampered_claims_are_refused`]; roles-in-cookie in `csrf.rs::hostile_cookies_are_refused` |
//! | JWT attacks | split-cookie halves from two sessions or users | `csrf.rs::hostile_cookies_are_refused` |
//! | JWT attacks, RFC 7519 §4 | duplicate JSON names in header and payload (also escaped) | [`jwt_duplicate_json_names_are_refused`] |
//! | JWT attacks | huge and odd numbers: `1e400`, 2^64, negative, float, string, leading zero | [`jwt_numeric_claims_must_be_plain_unsigned_integers`] |
//! | RFC 7519 §4.1, RFC 8725 §3.8–3.9 | required claims present, no unknown claims | [`jwt_required_claims_must_be_present_and_unknown_ones_absent`] |
//! | RFC 8725 §3.10, ASVS V5.3 | claim strings cannot inject headers upstream or into forward-auth | [`jwt_claim_strings_cannot_inject_headers`] |
//! | JWT attacks | expired tokens, tokens from the future (`nbf`, `iat`), bounded leeway | [`jwt_time_claims_hold_with_a_bounded_leeway`]; a genuinely expired token in `sessions.rs::expired_access_tokens_are_refused_and_refresh_revives` |
//! | JWT attacks, ASVS V3.3.1 | replay of a logged-out token, even re-signed with a new `jti` | [`asvs_3_3_1_logged_out_tokens_cannot_be_replayed`]; cookies in `sessions.rs::logout_clears_every_cookie_and_revokes_at_once`; Bearer after `/auth/revoke` in `tokens.rs::revoke_ends_the_session_at_once` |
//! | JWT attacks, RFC 9700 §4.14.2 | refresh-token reuse revokes the family | `tokens.rs::refresh_reuse_after_grace_revokes_the_family`, `sessions.rs::refresh_token_reuse_after_the_grace_revokes_the_session`, `sessions.rs::grace_covers_only_the_immediate_predecessor` |
//! | ASVS V3.1.1 | session tokens never accepted from the URL or a form body | [`asvs_3_1_1_tokens_in_the_url_or_the_body_are_not_credentials`] |
//! | ASVS V3.2.1 | a new session token at every authentication (no fixation) | [`asvs_3_2_1_login_always_starts_a_new_session`] |
//! | ASVS V3.2.2, V3.2.4 | ≥ 64 bits of entropy, unique, not sequential | [`asvs_3_2_2_session_identifiers_are_unique_and_random`] |
//! | ASVS V3.2.3, V3.4.1–V3.4.5 | cookie attributes at login: `Secure`, `HttpOnly`, `SameSite`, `__Host-`, `Path` | `login.rs::login_answers_the_contract_body_and_cookie_attributes`; whole mode in `ops.rs::whole_cookie_mode_sets_one_httponly_access_cookie` |
//! | ASVS V3.4.1–V3.4.5 | the same attributes on refreshed and cleared cookies (refresh, reuse, logout-all, unknown refresh token) | [`asvs_3_4_every_cookie_keeps_its_attributes_after_login`]; logout in `sessions.rs::logout_clears_every_cookie_and_revokes_at_once` |
//! | ASVS V3.3.1 | logout invalidates the session at once | [`asvs_3_3_1_logged_out_tokens_cannot_be_replayed`], `sessions.rs::logout_clears_every_cookie_and_revokes_at_once` |
//! | ASVS V3.3.2 | idle and absolute timeouts | `sessions.rs::sessions_end_at_session_max`, `sessions.rs::idle_refresh_tokens_die_after_refresh_ttl` |
//! | ASVS V3.3.3 | end every session (logout-all, password change) | [`asvs_3_3_3_logout_all_refuses_every_older_token_of_the_user`], `sessions.rs::logout_all_ends_every_session_of_the_user`, `ops.rs::cli_passwd_ends_the_users_sessions` |
//! | ASVS V3.5.1 | the user can revoke tokens | `tokens.rs::revoke_ends_the_session_at_once` |
//! | ASVS V3.5.2 | no static API secrets: per-client signed requests | `tokens.rs::signed_requests` |
//! | ASVS V3.5.3 | stateless tokens protected against tampering, enveloping, replay, null cipher and key substitution | this whole file |
//! | ASVS V2.2.1 | anti-automation on every password entry point | [`asvs_2_2_1_login_and_token_grant_share_one_throttle`], `login.rs::repeated_failed_logins_are_throttled`, `abuse.rs::a_login_flood_gets_503_overloaded_at_once_not_a_queue` |
//! | ASVS V2.5 | credential recovery: none in tessera; an admin reset ends every session | `ops.rs::cli_passwd_ends_the_users_sessions` |
//! | docs/http-api.md "Errors" | no input gets a 5xx | every test here (`no_5xx`), `gateway.rs::malformed_input_never_gets_a_5xx` |
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use ring::hmac;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{json, Value};
use tessera_core::dpop::{DpopAlg, DpopKey};
use tessera_core::{MasterKey, UnixTime};
use tessera_store::StoredKey;
use tessera_testkit::cookie_names::{ALL, CLAIMS, CSRF, REFRESH, SIG};
use tessera_testkit::inproc::{Builder, InProc};
use tessera_testkit::{
    assert_error_shape, b64url_decode, b64url_decode_json, b64url_encode, Client, Resp,
};

const FORM: &str = "application/x-www-form-urlencoded";
/// Where an access token is accepted: a proxied path, forward-auth, tessera's own session.
const PATHS: [&str; 3] = ["/api/whoami", "/auth/verify", "/auth/session"];
/// The token-size bound of docs/http-api.md "Tokens" ("its length and every part within bounds").
const MAX_TOKEN_LEN: usize = 8192;
/// A password no built-in list refuses.
const PASSWORD: &str = "Vq7-Lmz-pR2x-attacks";

// ---------------------------------------------------------------------------------------
// Presenting tokens
// ---------------------------------------------------------------------------------------

/// How an access token travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Carrier {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// The split cookies: payload in the claims cookie, `header.signature` in the sig cookie.
    Cookies,
}

/// The split-mode `Cookie` header for whatever `token` is (segments as they come).
fn split_cookies(token: &str) -> String {
    let mut it = token.splitn(3, '.');
    let header = it.next().unwrap_or_default();
    let payload = it.next().unwrap_or_default();
    let sig = match it.next() {
        Some(s) => format!("{header}.{s}"),
        None => header.to_owned(),
    };
    format!("{CLAIMS}={payload}; {SIG}={sig}")
}

/// Panics if the server answered 5xx or has logged a panic.
#[track_caller]
fn no_5xx(server: &InProc, res: &Resp, what: &str) {
    assert!(
        res.status < 500,
        "{what}: {} {} (docs/http-api.md: no input gets a 5xx)",
        res.status,
        res.text()
    );
    let panics = server.panics();
    assert!(panics.is_empty(), "{what}: the server panicked: {panics:?}");
}

/// A GET of `path` with `token` as `carrier`, from a client without cookies. On
/// `/auth/verify` the client stands for the forward-auth proxy (a trusted one: see
/// [`Target::start`]) and states the original method, GET; without it the check fails
/// closed and cookies would need the CSRF rules met.
async fn present(server: &InProc, carrier: Carrier, path: &str, token: &str) -> Resp {
    let mut c = server.client();
    let mut req = c.get(path);
    if path == "/auth/verify" {
        req = req.header("x-forwarded-method", "GET");
    }
    let req = match carrier {
        Carrier::Bearer => req.header("authorization", &format!("Bearer {token}")),
        Carrier::Cookies => req.cookie_header(&split_cookies(token)),
    };
    let res = req.send().await;
    no_5xx(server, &res, &format!("{carrier:?} {path}"));
    res
}

/// Exactly 401 `unauthenticated` in the contract's error shape.
#[track_caller]
fn assert_unauthenticated(res: &Resp, what: &str) {
    assert_eq!(
        res.status,
        401,
        "{what}: expected 401 unauthenticated, got {}: {}",
        res.status,
        res.text()
    );
    assert_error_shape(res);
    assert_eq!(
        res.json()["error"],
        "unauthenticated",
        "{what}: {}",
        res.text()
    );
}

/// `token` is refused with 401 `unauthenticated` on every path, as Bearer and as cookies.
async fn assert_refused(server: &InProc, token: &str, what: &str) {
    for carrier in [Carrier::Bearer, Carrier::Cookies] {
        assert_refused_as(server, carrier, token, what).await;
    }
}

/// `token` is refused with 401 `unauthenticated` on every path when sent as `carrier`.
async fn assert_refused_as(server: &InProc, carrier: Carrier, token: &str, what: &str) {
    for path in PATHS {
        let res = present(server, carrier, path, token).await;
        let ctx = format!("{what} [{carrier:?} {path}] {token:.120}");
        assert_unauthenticated(&res, &ctx);
        if carrier == Carrier::Bearer {
            let challenge = res.header("www-authenticate").unwrap_or_default();
            assert!(
                challenge.starts_with("Bearer"),
                "{ctx}: 401 to a Bearer token without a Bearer challenge (RFC 6750 §3): {challenge:?}"
            );
        }
    }
}

/// `token` is accepted on every path, as Bearer and as cookies.
async fn assert_accepted(server: &InProc, token: &str, what: &str) {
    for carrier in [Carrier::Bearer, Carrier::Cookies] {
        assert_accepted_as(server, carrier, token, what).await;
    }
}

async fn assert_accepted_as(server: &InProc, carrier: Carrier, token: &str, what: &str) {
    for path in PATHS {
        let res = present(server, carrier, path, token).await;
        assert_eq!(
            res.status,
            200,
            "{what} [{carrier:?} {path}] should be accepted: {}",
            res.text()
        );
    }
}

/// A JOSE header or payload segment from JSON text (unpadded base64url).
fn seg(json: &str) -> String {
    b64url_encode(json.as_bytes())
}

/// `header.payload.signature` of a token.
fn segments(token: &str) -> (String, String, String) {
    let mut it = token.split('.');
    let h = it.next().unwrap().to_owned();
    let p = it.next().unwrap().to_owned();
    let s = it.next().unwrap().to_owned();
    assert!(it.next().is_none(), "not three segments: {token}");
    (h, p, s)
}

/// The claims tessera issues, all required, in the order its signer writes them.
const CLAIM_NAMES: [&str; 11] = [
    "iss",
    "aud",
    "sub",
    "sid",
    "iat",
    "nbf",
    "exp",
    "jti",
    "roles",
    "username",
    "client_id",
];

/// A claims object as JSON text, member by member, from a genuine token's claims `base`:
/// `set` replaces members by raw JSON text (`None` leaves the member out; names tessera
/// does not issue are added), `extra` is appended raw before the closing brace.
fn claims_text(base: &Value, set: &[(&str, Option<&str>)], extra: &str) -> String {
    let mut members = Vec::new();
    for name in CLAIM_NAMES {
        match set.iter().find(|(n, _)| *n == name) {
            Some((_, None)) => {}
            Some((_, Some(raw))) => members.push(format!("\"{name}\":{raw}")),
            None => members.push(format!("\"{name}\":{}", base[name])),
        }
    }
    for (name, raw) in set {
        if let (false, Some(raw)) = (CLAIM_NAMES.contains(name), raw) {
            members.push(format!("\"{name}\":{raw}"));
        }
    }
    format!("{{{}{extra}}}", members.join(","))
}

/// A fresh random 16-byte id in tessera's form (unpadded base64url).
fn random_id() -> String {
    b64url_encode(&tessera_core::random_bytes::<16>())
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Adds a user (as `tessera user add` does) and logs them in.
async fn user_client(server: &InProc, name: &str) -> Client {
    server.add_user(name, PASSWORD, &[]).await;
    let mut c = server.client();
    c.login_ok(name, PASSWORD).await;
    c
}

// ---------------------------------------------------------------------------------------
// Playing the key holder
// ---------------------------------------------------------------------------------------

enum Signer {
    Ed25519(Ed25519KeyPair),
    Hmac(hmac::Key),
}

/// The server's own signing key, opened from its data folder: signs anything.
struct Forger {
    /// The exact header segment tessera issues for this key.
    header: String,
    kid: String,
    signer: Signer,
}

fn store_url(data_dir: &Path) -> String {
    format!("sqlite://{}", data_dir.join("tessera.db").display())
}

fn master_key(data_dir: &Path) -> MasterKey {
    let text = std::fs::read_to_string(data_dir.join("master.key")).expect("master.key");
    MasterKey::parse(&text).expect("a valid master key file")
}

impl Forger {
    /// The key that signed `token`.
    async fn steal(server: &InProc, token: &str) -> Forger {
        let (header, _, _) = segments(token);
        let kid = b64url_decode_json(&header).unwrap()["kid"]
            .as_str()
            .expect("kid")
            .to_owned();
        let store = tessera_store::open(&store_url(&server.data_dir))
            .await
            .expect("open the server's database");
        let stored = store
            .list_keys()
            .await
            .unwrap()
            .into_iter()
            .find(|k| k.kid == kid)
            .unwrap_or_else(|| panic!("no stored key {kid}"));
        let secret = master_key(&server.data_dir)
            .open(&format!("signing-key:{kid}"), &stored.sealed)
            .expect("unseal the signing key");
        let signer = match stored.alg.as_str() {
            "EdDSA" => {
                Signer::Ed25519(Ed25519KeyPair::from_pkcs8_maybe_unchecked(&secret).unwrap())
            }
            "HS256" => Signer::Hmac(hmac::Key::new(hmac::HMAC_SHA256, &secret)),
            other => panic!("unexpected key algorithm {other}"),
        };
        Forger {
            header,
            kid,
            signer,
        }
    }

    /// The base64url signature of `signing_input` with the stolen key.
    fn signature(&self, signing_input: &str) -> String {
        match &self.signer {
            Signer::Ed25519(pair) => b64url_encode(pair.sign(signing_input.as_bytes()).as_ref()),
            Signer::Hmac(key) => b64url_encode(hmac::sign(key, signing_input.as_bytes()).as_ref()),
        }
    }

    /// Signs the two segments exactly as given.
    fn sign_segments(&self, header: &str, payload: &str) -> String {
        let input = format!("{header}.{payload}");
        let sig = self.signature(&input);
        format!("{input}.{sig}")
    }

    /// Tessera's own header with `claims_json` as the payload, signed.
    fn sign(&self, claims_json: &str) -> String {
        self.sign_segments(&self.header, &seg(claims_json))
    }

    /// `header_json` and `claims_json`, signed.
    fn sign_with_header(&self, header_json: &str, claims_json: &str) -> String {
        self.sign_segments(&seg(header_json), &seg(claims_json))
    }
}

/// A server, a logged-in victim, its token and claims, and the server's key.
struct Target {
    server: InProc,
    victim: Client,
    token: String,
    claims: Value,
    forger: Forger,
}

impl Target {
    async fn start(builder: Builder) -> Target {
        // The test client is the forward-auth proxy too (`present`), so it is trusted. The
        // data is kept on disk, where `Forger::steal` opens the signing key.
        let server = builder
            .config("trusted_proxies = [\"127.0.0.1\"]")
            .on_disk(true)
            .start()
            .await;
        let victim = server.demo_client().await;
        let token = victim.access_token().unwrap();
        let claims = victim.claims().unwrap();
        let forger = Forger::steal(&server, &token).await;
        let t = Target {
            server,
            victim,
            token,
            claims,
            forger,
        };
        // The forgery works: genuine claims re-signed (with another jti) pass everywhere,
        // so each refusal below has the one reason the test gives it.
        let control = t.claims_with(&[("jti", Some("\"control-jti\""))], "");
        assert_accepted(
            &t.server,
            &t.forger.sign(&control),
            "re-signed genuine claims",
        )
        .await;
        t
    }

    async fn demo() -> Target {
        Target::start(InProc::builder()).await
    }

    fn claims_with(&self, set: &[(&str, Option<&str>)], extra: &str) -> String {
        claims_text(&self.claims, set, extra)
    }

    /// The victim's session still works and the server never panicked.
    async fn finish(mut self) {
        let res = self.victim.get("/api/whoami").send().await;
        no_5xx(&self.server, &res, "victim after the attacks");
        assert_eq!(
            res.status,
            200,
            "the victim's session was hurt: {}",
            res.text()
        );
    }
}

// ---------------------------------------------------------------------------------------
// RFC 8725 §2.1 / §3.1: none, algorithm confusion, algorithm verification
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn rfc8725_2_1_alg_none_in_every_spelling_is_refused() {
    let t = Target::demo().await;
    let (_, payload, signature) = segments(&t.token);
    let admin = seg(&t.claims_with(&[("roles", Some("[\"admin\"]"))], ""));
    let kid = &t.forger.kid;
    for alg in ["none", "None", "NONE", "nOnE", " none", "none ", "", "null"] {
        let headers = [
            format!(r#"{{"alg":"{alg}","typ":"at+jwt","kid":"{kid}"}}"#),
            format!(r#"{{"alg":"{alg}","typ":"at+jwt"}}"#),
            format!(r#"{{"alg":"{alg}"}}"#),
            format!(r#"{{"typ":"at+jwt","alg":"{alg}","kid":"{kid}"}}"#),
        ];
        for header in &headers {
            let h = seg(header);
            for p in [&payload, &admin] {
                // Signature stripped (the classic), and the genuine signature kept.
                assert_refused(
                    &t.server,
                    &format!("{h}.{p}."),
                    &format!("{header} stripped"),
                )
                .await;
                assert_refused(&t.server, &format!("{h}.{p}.{signature}"), header).await;
            }
        }
    }
    // `alg` missing or not a string.
    for header in [
        format!(r#"{{"typ":"at+jwt","kid":"{kid}"}}"#),
        format!(r#"{{"alg":null,"typ":"at+jwt","kid":"{kid}"}}"#),
        format!(r#"{{"alg":["none"],"typ":"at+jwt","kid":"{kid}"}}"#),
        format!(r#"{{"alg":{{}},"typ":"at+jwt","kid":"{kid}"}}"#),
    ] {
        let h = seg(&header);
        assert_refused(&t.server, &format!("{h}.{payload}."), &header).await;
        assert_refused(&t.server, &format!("{h}.{payload}.{signature}"), &header).await;
    }
    t.finish().await;
}

#[tokio::test]
async fn rfc8725_3_1_hs256_keyed_with_the_public_key_is_refused() {
    let t = Target::demo().await;
    let mut c = t.server.client();
    let res = c.get("/.well-known/jwks.json").send().await;
    assert_eq!(res.status, 200, "{}", res.text());
    let jwks_body = res.body.clone();
    let jwks = res.json();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == t.forger.kid.as_str())
        .unwrap_or_else(|| panic!("signing key not in {jwks}"))
        .clone();
    let x = jwk["x"].as_str().unwrap().to_owned();
    let raw = b64url_decode(&x).unwrap();
    assert_eq!(raw.len(), 32);
    // SubjectPublicKeyInfo for Ed25519 (RFC 8410) and its PEM form.
    let mut spki = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    spki.extend_from_slice(&raw);
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(&spki)
    );
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("raw public key", raw.clone()),
        ("x as text", x.clone().into_bytes()),
        ("JWK as published", jwk.to_string().into_bytes()),
        (
            "RFC 7638 thumbprint input",
            format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#).into_bytes(),
        ),
        ("JWKS document", jwks_body),
        ("SPKI DER", spki),
        ("PEM without newline", pem.trim_end().as_bytes().to_vec()),
        ("PEM", pem.into_bytes()),
    ];
    let kid = &t.forger.kid;
    let admin = t.claims_with(&[("roles", Some("[\"admin\"]"))], "");
    let genuine = t.claims_with(&[], "");
    for (what, secret) in &secrets {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
        for header in [
            format!(r#"{{"alg":"HS256","typ":"at+jwt","kid":"{kid}"}}"#),
            r#"{"alg":"HS256","typ":"at+jwt"}"#.to_owned(),
            r#"{"alg":"HS256","typ":"JWT"}"#.to_owned(),
        ] {
            for claims in [&genuine, &admin] {
                let input = format!("{}.{}", seg(&header), seg(claims));
                let sig = b64url_encode(hmac::sign(&key, input.as_bytes()).as_ref());
                assert_refused(
                    &t.server,
                    &format!("{input}.{sig}"),
                    &format!("HS256 keyed with the {what}"),
                )
                .await;
            }
        }
        // The genuine EdDSA header over an HMAC tag.
        let input = format!("{}.{}", t.forger.header, seg(&genuine));
        let sig = b64url_encode(hmac::sign(&key, input.as_bytes()).as_ref());
        assert_refused(
            &t.server,
            &format!("{input}.{sig}"),
            &format!("EdDSA header, HMAC tag keyed with the {what}"),
        )
        .await;
    }
    t.finish().await;
}

#[tokio::test]
async fn rfc8725_3_1_alg_comes_from_the_key_never_from_the_header() {
    // EdDSA key: the right key signs, but the header names another algorithm.
    let t = Target::demo().await;
    let genuine = t.claims_with(&[], "");
    let kid = t.forger.kid.clone();
    for alg in [
        "eddsa", "EDDSA", "Ed25519", "ED25519", "ES256", "RS256", "PS256", "HS256", "EdDSA ",
    ] {
        let header = format!(r#"{{"alg":"{alg}","typ":"at+jwt","kid":"{kid}"}}"#);
        let token = t.forger.sign_with_header(&header, &genuine);
        assert_refused(&t.server, &token, &format!("EdDSA key, header alg {alg:?}")).await;
    }
    t.finish().await;

    // HS256 key: the same, and an asymmetric signature by any other key.
    let t = Target::start(InProc::builder().config("[tokens]\nalgorithm = \"HS256\"")).await;
    let genuine = t.claims_with(&[], "");
    let kid = t.forger.kid.clone();
    for alg in [
        "hs256", "Hs256", "HS384", "HS512", "HS256 ", "EdDSA", "none",
    ] {
        let header = format!(r#"{{"alg":"{alg}","typ":"at+jwt","kid":"{kid}"}}"#);
        let token = t.forger.sign_with_header(&header, &genuine);
        assert_refused(&t.server, &token, &format!("HS256 key, header alg {alg:?}")).await;
    }
    let stranger = Ed25519KeyPair::from_pkcs8(
        Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
            .unwrap()
            .as_ref(),
    )
    .unwrap();
    for header in [
        format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{kid}"}}"#),
        r#"{"alg":"EdDSA","typ":"at+jwt"}"#.to_owned(),
    ] {
        let input = format!("{}.{}", seg(&header), seg(&genuine));
        let sig = b64url_encode(stranger.sign(input.as_bytes()).as_ref());
        assert_refused(
            &t.server,
            &format!("{input}.{sig}"),
            "HS256 key, EdDSA signature by a stranger",
        )
        .await;
    }
    t.finish().await;
}

// ---------------------------------------------------------------------------------------
// RFC 8725 §3.2 / §3.5: appropriate algorithms, strong keys
// ---------------------------------------------------------------------------------------

/// Plants an HS256 key with `secret` (sealed properly under the folder's master key), as
/// the newest active key.
async fn plant_hs256_key(data_dir: &Path, kid: &str, secret: &[u8], now: UnixTime) {
    let store = tessera_store::open(&store_url(data_dir)).await.unwrap();
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

#[tokio::test]
async fn rfc8725_3_2_a_running_node_never_loads_a_short_hs256_key() {
    let t = Target::start(InProc::builder().config("[tokens]\nalgorithm = \"HS256\"")).await;
    let weak = [7u8; 16];
    plant_hs256_key(&t.server.data_dir, "weak-key-16", &weak, t.server.now()).await;
    // Three key reloads (as three `sync.key_poll` ticks), each refusing the short key.
    for _ in 0..3 {
        t.server.advance(Duration::from_secs(1));
        let errors = t.server.try_sync().await;
        assert!(
            errors.iter().any(|e| e.contains("weak-key-16")),
            "the reload did not refuse the short key: {errors:?}"
        );
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, &weak);
    let header = seg(r#"{"alg":"HS256","typ":"at+jwt","kid":"weak-key-16"}"#);
    let input = format!("{header}.{}", seg(&t.claims_with(&[], "")));
    let sig = b64url_encode(hmac::sign(&key, input.as_bytes()).as_ref());
    assert_refused(
        &t.server,
        &format!("{input}.{sig}"),
        "token signed with the planted short key",
    )
    .await;
    // The node kept its good key: old and new sessions work, and signed by the good key.
    let mut fresh = t.server.demo_client().await;
    assert_eq!(fresh.kid().as_deref(), Some(t.forger.kid.as_str()));
    let res = fresh.get("/api/whoami").send().await;
    assert_eq!(res.status, 200, "{}", res.text());
    t.finish().await;
}

// ---------------------------------------------------------------------------------------
// RFC 8725 §3.4: input validation
// ---------------------------------------------------------------------------------------

/// `s` with its last character replaced so that only the unused trailing bits change
/// (the decoded bytes stay the same under a lenient decoder); `None` if `s` has none.
fn with_trailing_bits_set(s: &str) -> Option<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let unused_bits = match s.len() % 4 {
        2 => 4,
        3 => 2,
        _ => return None,
    };
    let last = *s.as_bytes().last()?;
    let v = ALPHABET.iter().position(|&c| c == last)?;
    let mask = (1 << unused_bits) - 1;
    let changed = ALPHABET[(v & !mask) | ((v + 1) & mask)];
    let mut out = s[..s.len() - 1].to_owned();
    out.push(char::from(changed));
    Some(out)
}

#[tokio::test]
async fn rfc8725_3_4_only_the_compact_form_with_its_own_signature_passes() {
    let t = Target::demo().await;
    let (h, p, s) = segments(&t.token);
    let other = t.server.demo_client().await.access_token().unwrap();
    let (_, other_p, other_s) = segments(&other);
    let sig_bytes = b64url_decode(&s).unwrap();
    let mut flipped = sig_bytes.clone();
    flipped[10] ^= 1;
    let jws_json = json!({"protected": h, "payload": p, "signature": s}).to_string();
    let flattened =
        json!({"payload": p, "signatures": [{"protected": h, "signature": s}]}).to_string();
    let jwe_header = seg(r#"{"alg":"dir","enc":"A256GCM","typ":"at+jwt"}"#);
    let cases: Vec<(&str, String)> = vec![
        ("two segments", format!("{h}.{p}")),
        ("signature stripped", format!("{h}.{p}.")),
        ("empty payload", format!("{h}..{s}")),
        ("empty header", format!(".{p}.{s}")),
        ("only dots", "..".to_owned()),
        ("four segments", format!("{h}.{p}.{s}.{s}")),
        (
            "JWE-shaped, five segments",
            format!("{jwe_header}..{p}.{p}.{s}"),
        ),
        ("JWS JSON serialization", jws_json),
        ("JWS JSON general serialization", flattened),
        ("segments swapped", format!("{p}.{h}.{s}")),
        (
            "signature one character short",
            format!("{h}.{p}.{}", &s[..s.len() - 1]),
        ),
        (
            "signature one byte short",
            format!("{h}.{p}.{}", b64url_encode(&sig_bytes[..63])),
        ),
        ("signature one character long", format!("{h}.{p}.{s}A")),
        (
            "signature one byte long",
            format!(
                "{h}.{p}.{}",
                b64url_encode(&[&sig_bytes[..], &[0]].concat())
            ),
        ),
        ("signature halved", format!("{h}.{p}.{}", &s[..s.len() / 2])),
        (
            "signature all zero",
            format!("{h}.{p}.{}", b64url_encode(&[0u8; 64])),
        ),
        (
            "one signature bit flipped",
            format!("{h}.{p}.{}", b64url_encode(&flipped)),
        ),
        ("signature of another token", format!("{h}.{p}.{other_s}")),
        ("payload of another token", format!("{h}.{other_p}.{s}")),
        (
            "space inside the payload",
            format!("{h}.{} {}.{s}", &p[..20], &p[20..]),
        ),
        (
            "space inside the signature",
            format!("{h}.{p}.{} {}", &s[..20], &s[20..]),
        ),
        ("tab inside", format!("{h}.{p}.\t{s}")),
        ("doubled dot", format!("{h}..{p}.{s}")),
    ];
    for (what, token) in &cases {
        assert_refused(&t.server, token, what).await;
    }
    // Both genuine tokens are still fine: nothing above was cached as good.
    assert_accepted(&t.server, &t.token, "genuine token").await;
    assert_accepted(&t.server, &other, "other genuine token").await;
    t.finish().await;
}

#[tokio::test]
async fn rfc8725_3_4_non_canonical_base64url_is_refused() {
    let t = Target::demo().await;
    let (h, p, s) = segments(&t.token);

    // Without any key: the genuine signature re-encoded non-canonically. A lenient decoder
    // would get the same 64 bytes and accept the token.
    let s_bits = with_trailing_bits_set(&s).expect("an Ed25519 signature has 4 unused bits");
    assert_eq!(
        base64::engine::GeneralPurpose::new(
            &base64::alphabet::URL_SAFE,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
                .with_decode_allow_trailing_bits(true),
        )
        .decode(&s_bits)
        .unwrap(),
        b64url_decode(&s).unwrap(),
        "the mutation must keep the decoded signature"
    );
    let std_sig = s.replace('-', "+").replace('_', "/");
    let mut unsigned = vec![
        (
            "signature with trailing bits set",
            format!("{h}.{p}.{s_bits}"),
        ),
        ("signature padded", format!("{h}.{p}.{s}==")),
        ("signature padded once", format!("{h}.{p}.{s}=")),
        ("header padded", format!("{h}=.{p}.{s}")),
        ("payload padded", format!("{h}.{p}=.{s}")),
    ];
    if std_sig != s {
        unsigned.push((
            "signature in the standard alphabet",
            format!("{h}.{p}.{std_sig}"),
        ));
    }
    if let Some(p_bits) = with_trailing_bits_set(&p) {
        unsigned.push((
            "payload with trailing bits set",
            format!("{h}.{p_bits}.{s}"),
        ));
    }
    for (what, token) in &unsigned {
        assert_refused(&t.server, token, what).await;
    }

    // Key holder: the signature is right for the bytes as sent, so only the decoder's
    // strictness can refuse. Claims are padded through `jti` to reach each case.
    let mut trailing_bits_seen = false;
    let mut std_alphabet_seen = false;
    for pad in 0..40 {
        // `?>~` encode to `-` and `_` at some alignments.
        let jti = format!("\"{}?>~\"", "j".repeat(pad + 1));
        let claims = t.claims_with(&[("jti", Some(jti.as_str()))], "");
        let canonical = seg(&claims);
        // Control: the canonical encoding of these very claims passes.
        if pad < 3 {
            assert_accepted(
                &t.server,
                &t.forger.sign_segments(&t.forger.header, &canonical),
                "canonical control",
            )
            .await;
        }
        let mut variants = vec![
            ("payload padded (key holder)", format!("{canonical}=")),
            (
                "payload padded twice (key holder)",
                format!("{canonical}=="),
            ),
        ];
        if let Some(bits) = with_trailing_bits_set(&canonical) {
            trailing_bits_seen = true;
            variants.push(("payload with trailing bits set (key holder)", bits));
        }
        if canonical.contains(['-', '_']) {
            std_alphabet_seen = true;
            variants.push((
                "payload in the standard alphabet (key holder)",
                canonical.replace('-', "+").replace('_', "/"),
            ));
        }
        for (what, payload) in &variants {
            let token = t.forger.sign_segments(&t.forger.header, payload);
            assert_refused(&t.server, &token, what).await;
        }
        if trailing_bits_seen && std_alphabet_seen && pad >= 3 {
            break;
        }
    }
    assert!(trailing_bits_seen && std_alphabet_seen, "cases not reached");
    // A padded header, signed as sent.
    let token = t.forger.sign_segments(&format!("{}=", t.forger.header), &p);
    assert_refused(&t.server, &token, "header padded (key holder)").await;
    t.finish().await;
}

#[tokio::test]
async fn rfc8725_3_4_size_bounds_are_exact() {
    let t = Target::demo().await;
    let (h, p, s) = segments(&t.token);

    // Validly signed tokens right at the bound and one past it (Bearer: the cookie path has
    // its own, smaller budget below). Lengths step by the base64 grain, so take the longest
    // token ≤ MAX_TOKEN_LEN and the shortest one above it.
    let token_of = |pad: usize| {
        let jti = format!("\"{}\"", "j".repeat(pad));
        t.forger
            .sign(&t.claims_with(&[("jti", Some(jti.as_str()))], ""))
    };
    let base = token_of(1).len();
    let mut pad = (MAX_TOKEN_LEN - base) * 3 / 4 + 4;
    while token_of(pad).len() > MAX_TOKEN_LEN {
        pad -= 1;
    }
    let at_bound = token_of(pad);
    let mut over = pad + 1;
    while token_of(over).len() <= MAX_TOKEN_LEN {
        over += 1;
    }
    let past_bound = token_of(over);
    assert!(at_bound.len() <= MAX_TOKEN_LEN && at_bound.len() > MAX_TOKEN_LEN - 4);
    assert!(past_bound.len() > MAX_TOKEN_LEN);
    assert_accepted_as(
        &t.server,
        Carrier::Bearer,
        &at_bound,
        &format!("{}-byte signed token", at_bound.len()),
    )
    .await;
    assert_refused_as(
        &t.server,
        Carrier::Bearer,
        &past_bound,
        &format!("{}-byte signed token", past_bound.len()),
    )
    .await;

    // Claims that decode to around 1 KiB (where a parser may switch buffers) all verify.
    let mut around_1k = 0;
    for pad in 600..1200 {
        let token = token_of(pad);
        let decoded = b64url_decode(&segments(&token).1).unwrap().len();
        if !(1000..=1050).contains(&decoded) {
            continue;
        }
        around_1k += 1;
        for carrier in [Carrier::Bearer, Carrier::Cookies] {
            let res = present(&t.server, carrier, "/api/whoami", &token).await;
            assert_eq!(
                res.status,
                200,
                "{decoded}-byte claims [{carrier:?}]: {}",
                res.text()
            );
        }
    }
    assert_eq!(around_1k, 51, "claims sizes 1000..=1050 not all reached");

    // Each part has its bound: a long header or signature is refused unread.
    let long = "A".repeat(300);
    for (what, token) in [
        ("300-character header", format!("{long}.{p}.{s}")),
        ("300-character signature", format!("{h}.{p}.{long}")),
        ("8 KiB payload", format!("{h}.{}.{s}", "A".repeat(8000))),
        ("12 KiB token", format!("{h}.{}.{s}", "A".repeat(12_000))),
        ("8 KiB of dots", ".".repeat(8191)),
    ] {
        assert_refused_as(&t.server, Carrier::Bearer, &token, what).await;
    }
    // The same in cookies, inside the cookie budget.
    for (what, token) in [
        ("300-character header", format!("{long}.{p}.{s}")),
        ("300-character signature", format!("{h}.{p}.{long}")),
        ("7 KiB payload", format!("{h}.{}.{s}", "A".repeat(7000))),
    ] {
        assert_refused_as(&t.server, Carrier::Cookies, &token, what).await;
    }
    // Cookies over 8 KiB in all: 431 in the error shape, before any token work.
    for path in PATHS {
        let cookie = format!("{CLAIMS}={}; {SIG}={h}.{s}", "A".repeat(9000));
        let res = t
            .server
            .client()
            .get(path)
            .cookie_header(&cookie)
            .send()
            .await;
        no_5xx(&t.server, &res, "9 KiB claims cookie");
        assert_eq!(res.status, 431, "{path}: 9 KiB cookie: {}", res.text());
        assert_error_shape(&res);
        let res = t
            .server
            .client()
            .get(path)
            .cookie_header(&format!("{CLAIMS}={p}; {SIG}={h}.{s}"))
            .cookie_header(&format!("junk={}", "x".repeat(8200)))
            .send()
            .await;
        no_5xx(&t.server, &res, "8 KiB foreign cookie");
        assert_eq!(
            res.status,
            431,
            "{path}: 8 KiB of other cookies: {}",
            res.text()
        );
        assert_error_shape(&res);
    }
    t.finish().await;
}

// ---------------------------------------------------------------------------------------
// RFC 8725 §3.8 / §3.9: issuer and audience
// ---------------------------------------------------------------------------------------

/// Variants of a string claim that must not pass for `exact`.
fn near_misses(exact: &str) -> Vec<String> {
    let q = |s: &str| serde_json::to_string(s).unwrap();
    let mut v = vec![
        q("https://evil.example"),
        q(&format!("{exact}/")),
        q(&format!("{exact} ")),
        q(&format!(" {exact}")),
        q(&exact.to_uppercase()),
        q(&exact.replace("https://", "http://")),
        q(&format!("{exact}.evil.example")),
        q(&format!("{exact}\u{0}")),
        q(&format!("{exact}#")),
        q(""),
        "null".to_owned(),
        "1".to_owned(),
        "{}".to_owned(),
        format!("[{}]", q(exact)),
        format!("[{},{}]", q(exact), q("https://evil.example")),
    ];
    if let Some(host) = exact.strip_prefix("https://") {
        v.push(q(host));
    }
    v
}

#[tokio::test]
async fn rfc8725_3_8_issuer_must_match_exactly() {
    let t = Target::demo().await;
    let iss = t.claims["iss"].as_str().unwrap().to_owned();
    assert_eq!(
        iss,
        t.server.origin(),
        "the issuer defaults to the public origin"
    );
    for bad in near_misses(&iss) {
        let token = t
            .forger
            .sign(&t.claims_with(&[("iss", Some(bad.as_str()))], ""));
        assert_refused(&t.server, &token, &format!("iss {bad}")).await;
    }
    let token = t.forger.sign(&t.claims_with(&[("iss", None)], ""));
    assert_refused(&t.server, &token, "no iss").await;
    t.finish().await;

    // A configured issuer: the origin is no longer good enough.
    let t =
        Target::start(InProc::builder().config("[tokens]\nissuer = \"https://issuer.test\"")).await;
    assert_eq!(t.claims["iss"], "https://issuer.test");
    let origin = serde_json::to_string(t.server.origin()).unwrap();
    let token = t
        .forger
        .sign(&t.claims_with(&[("iss", Some(origin.as_str()))], ""));
    assert_refused(&t.server, &token, "iss = the origin, issuer configured").await;
    t.finish().await;
}

#[tokio::test]
async fn rfc8725_3_9_audience_must_match_exactly() {
    let t =
        Target::start(InProc::builder().config("[tokens]\naudience = \"https://api.test\"")).await;
    let aud = t.claims["aud"].as_str().unwrap().to_owned();
    assert_eq!(aud, "https://api.test");
    let mut bad = near_misses(&aud);
    // The issuer is not the audience.
    bad.push(serde_json::to_string(t.server.origin()).unwrap());
    for bad in bad {
        let token = t
            .forger
            .sign(&t.claims_with(&[("aud", Some(bad.as_str()))], ""));
        assert_refused(&t.server, &token, &format!("aud {bad}")).await;
    }
    let token = t.forger.sign(&t.claims_with(&[("aud", None)], ""));
    assert_refused(&t.server, &token, "no aud").await;
    t.finish().await;
}

// ---------------------------------------------------------------------------------------
// RFC 8725 §3.10: do not trust received claims (header parameters, kid injection)
// ---------------------------------------------------------------------------------------

/// A listener that counts connections: a server that fetched a `jku`/`x5u` would show up.
async fn tripwire() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&hits);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (addr, hits)
}

#[tokio::test]
async fn rfc8725_3_10_header_parameters_are_never_trusted() {
    let t = Target::demo().await;
    let (trap, hits) = tripwire().await;
    let kid = t.forger.kid.clone();
    let claims = t.claims_with(&[("roles", Some("[\"admin\"]"))], "");
    let genuine = t.claims_with(&[], "");

    // The attacker's own Ed25519 key.
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let mine = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let my_x = b64url_encode(mine.public_key().as_ref());
    let my_jwk = format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{my_x}"}}"#);
    let sign_mine = |header: &str, claims: &str| {
        let input = format!("{}.{}", seg(header), seg(claims));
        let sig = b64url_encode(mine.sign(input.as_bytes()).as_ref());
        format!("{input}.{sig}")
    };
    let jku = format!("http://{trap}/.well-known/jwks.json");
    let x5u = format!("http://{trap}/cert.pem");
    let attacker_signed = [
        format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{kid}","jwk":{my_jwk}}}"#),
        format!(r#"{{"alg":"EdDSA","typ":"at+jwt","jwk":{my_jwk}}}"#),
        format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"attacker","jku":"{jku}"}}"#),
        format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{kid}","jku":"{jku}"}}"#),
        format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"attacker","x5u":"{x5u}"}}"#),
        format!(
            r#"{{"alg":"EdDSA","typ":"at+jwt","x5c":["{}"]}}"#,
            b64url_encode(&[0x30, 0x82, 0x01, 0x0a])
        ),
        format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{kid}","x5t#S256":"{my_x}"}}"#),
        format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{kid}/../{kid}"}}"#),
        format!(
            r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{}"}}"#,
            kid.to_uppercase()
        ),
        format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{kid} "}}"#),
        r#"{"alg":"EdDSA","typ":"at+jwt","kid":"unknown-kid"}"#.to_owned(),
        r#"{"alg":"EdDSA","typ":"at+jwt","kid":""}"#.to_owned(),
        r#"{"alg":"EdDSA","typ":"at+jwt","kid":1}"#.to_owned(),
        r#"{"alg":"EdDSA","typ":"at+jwt","kid":{"$ne":null}}"#.to_owned(),
    ];
    for header in &attacker_signed {
        assert_refused(
            &t.server,
            &sign_mine(header, &claims),
            &format!("attacker-signed {header}"),
        )
        .await;
    }

    // kid injection: a kid that would make a naive server use an empty or known HMAC key.
    for (kid_value, secret) in [
        ("../../../../../../dev/null", &b""[..]),
        ("/dev/null", b""),
        ("../../../../../../etc/hostname", b"localhost"),
        ("' OR 1=1--", b"1"),
        ("' OR 1=1--", b""),
        ("x' UNION SELECT 'secret' --", b"secret"),
        ("\" OR \"\"=\"", b""),
        ("; ls", b""),
        (jku.as_str(), b""),
        (kid.as_str(), b""),
    ] {
        let header = format!(
            r#"{{"alg":"HS256","typ":"at+jwt","kid":{}}}"#,
            serde_json::to_string(kid_value).unwrap()
        );
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let input = format!("{}.{}", seg(&header), seg(&claims));
        let sig = b64url_encode(hmac::sign(&key, input.as_bytes()).as_ref());
        assert_refused(
            &t.server,
            &format!("{input}.{sig}"),
            &format!("kid injection {kid_value:?}"),
        )
        .await;
    }

    // Key holder: the real key signs, but the header carries more than tessera issues.
    // Only a header byte-for-byte like tessera's own passes (README "How a request is
    // checked" 2), so none of these parameters can steer verification.
    for extra in [
        format!(r#","jku":"{jku}""#),
        format!(r#","x5u":"{x5u}""#),
        format!(r#","jwk":{my_jwk}"#),
        r#","x5c":["MIIB"]"#.to_owned(),
        r#","crit":["exp"]"#.to_owned(),
        r#","crit":["b64"],"b64":false"#.to_owned(),
        r#","zip":"DEF""#.to_owned(),
        r#","enc":"A256GCM""#.to_owned(),
    ] {
        let header = format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{kid}"{extra}}}"#);
        let token = t.forger.sign_with_header(&header, &genuine);
        assert_refused(&t.server, &token, &format!("real key, header with {extra}")).await;
    }

    // Watch the key server for a moment: no fetch may show up.
    let fetched = tessera_testkit::until(Duration::from_millis(300), async || {
        hits.load(Ordering::SeqCst) > 0
    })
    .await;
    assert!(fetched.is_none(), "a fetch reached the key server");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "tessera connected to a URL named in a token header (jku/x5u/kid)"
    );
    t.finish().await;
}

// ---------------------------------------------------------------------------------------
// RFC 8725 §3.11 / §3.12: explicit typing, mutually exclusive validation
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn rfc8725_3_11_explicit_typing_is_required() {
    let t = Target::demo().await;
    let kid = t.forger.kid.clone();
    let genuine = t.claims_with(&[], "");
    assert_eq!(
        b64url_decode(&t.forger.header).unwrap(),
        format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{kid}"}}"#).into_bytes(),
        "tessera's header"
    );
    let typ = |v: &str| format!(r#"{{"alg":"EdDSA","typ":{v},"kid":"{kid}"}}"#);
    let mut headers: Vec<String> = [
        "\"JWT\"",
        "\"jwt\"",
        "\"at+JWT\"",
        "\"AT+JWT\"",
        "\"application/at+jwt\"",
        "\"dpop+jwt\"",
        "\"JOSE\"",
        "\"JOSE+JSON\"",
        "\"secevent+jwt\"",
        "\"at+jwt \"",
        "\"\"",
        "null",
        "[\"at+jwt\"]",
    ]
    .iter()
    .map(|v| typ(v))
    .collect();
    headers.extend([
        format!(r#"{{"alg":"EdDSA","kid":"{kid}"}}"#),
        format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{kid}","cty":"JWT"}}"#),
        // Same members, other order or spacing: still not the header tessera issues.
        format!(r#"{{"typ":"at+jwt","alg":"EdDSA","kid":"{kid}"}}"#),
        format!(r#"{{"alg": "EdDSA", "typ": "at+jwt", "kid": "{kid}"}}"#),
        format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{kid}"}} "#),
    ]);
    for header in &headers {
        let token = t.forger.sign_with_header(header, &genuine);
        assert_refused(&t.server, &token, &format!("real key, header {header}")).await;
    }
    t.finish().await;
}

#[tokio::test]
async fn rfc8725_3_12_other_tokens_never_pass_as_access_tokens() {
    let t = Target::demo().await;
    let server = &t.server;
    let refresh = t.victim.refresh_token().unwrap();
    let csrf = t.victim.csrf().unwrap();

    // A DPoP proof (a JWT signed by the client's own key) for this very request.
    let key = DpopKey::generate(DpopAlg::EdDSA).unwrap();
    let proof_for = |method: &str, path: &str| {
        key.proof(
            method,
            &server.url(path),
            server.now().0,
            &random_id(),
            None,
            None,
        )
        .unwrap()
    };
    for path in PATHS {
        let proof = proof_for("GET", path);
        for carrier in [Carrier::Bearer, Carrier::Cookies] {
            let res = present(server, carrier, path, &proof).await;
            assert_unauthenticated(
                &res,
                &format!("DPoP proof as an access token [{carrier:?} {path}]"),
            );
        }
    }
    // The refresh token and the CSRF token, in the access-token cookies and as Bearer.
    assert_refused(server, &refresh, "refresh token as an access token").await;
    assert_refused_as(
        server,
        Carrier::Cookies,
        &csrf,
        "CSRF token in the access cookies",
    )
    .await;
    for path in PATHS {
        let res = server
            .client()
            .get(path)
            .cookie_header(&format!("{CLAIMS}={refresh}; {SIG}={csrf}"))
            .send()
            .await;
        no_5xx(server, &res, "refresh/CSRF tokens as split cookies");
        assert_unauthenticated(
            &res,
            &format!("{path}: refresh + CSRF tokens as split cookies"),
        );
    }
    // Key holder: a payload that is a DPoP proof's or an ID token's claims, under tessera's
    // own header and key, is not an access token either.
    let proof_claims =
        json!({"jti": random_id(), "htm": "GET", "htu": server.url("/api/whoami"), "iat": server.now().0})
            .to_string();
    let id_claims = json!({
        "iss": t.claims["iss"], "aud": t.claims["aud"], "sub": t.claims["sub"],
        "iat": server.now().0, "exp": server.now().0 + 300, "nonce": "n", "auth_time": server.now().0,
    })
    .to_string();
    for (what, claims) in [
        ("DPoP proof claims", proof_claims),
        ("ID-token claims", id_claims),
    ] {
        assert_refused(
            server,
            &t.forger.sign(&claims),
            &format!("{what} under tessera's key"),
        )
        .await;
    }

    // The other way round: the access token is no refresh token, CSRF token or DPoP proof.
    let mut c = t.victim.clone();
    let res = c
        .post("/auth/refresh")
        .same_origin()
        .header("x-csrf-token", &csrf)
        .cookie_header(&format!("{REFRESH}={}; {CSRF}={csrf}", t.token))
        .send()
        .await;
    no_5xx(server, &res, "access token as refresh cookie");
    assert_unauthenticated(&res, "access token as the refresh cookie");
    let mut c = t.victim.clone();
    let res = c
        .post("/api/notes")
        .same_origin()
        .header("x-csrf-token", &t.token)
        .json(&json!({"text": "csrf by access token"}))
        .send()
        .await;
    no_5xx(server, &res, "access token as CSRF token");
    res.assert_error(403, "csrf_failed");
    // A DPoP-bound token with an access token where its proof should be.
    let token_proof = proof_for("POST", "/auth/token");
    let res = server
        .client()
        .post("/auth/token")
        .header("dpop", &token_proof)
        .body(
            FORM,
            format!(
                "grant_type=password&username=demo&password={}",
                enc(server.demo_password())
            ),
        )
        .send()
        .await;
    assert_eq!(res.status, 200, "DPoP-bound grant: {}", res.text());
    let bound = res.json()["access_token"].as_str().unwrap().to_owned();
    for path in PATHS {
        let res = server
            .client()
            .get(path)
            .header("authorization", &format!("DPoP {bound}"))
            .header("dpop", &t.token)
            .send()
            .await;
        no_5xx(server, &res, "access token as DPoP proof");
        // RFC 9449 §7.1 names this error `invalid_dpop_proof`; still a 401 in our shape.
        assert_eq!(
            res.status,
            401,
            "{path}: an access token as the DPoP proof: {}",
            res.text()
        );
        assert_error_shape(&res);
        let code = res.json()["error"].clone();
        assert!(
            code == "unauthenticated" || code == "invalid_dpop_proof",
            "{path}: an access token as the DPoP proof: {code}"
        );
    }
    // A DPoP proof at the token endpoint as a refresh token.
    let res = server
        .client()
        .post("/auth/token")
        .body(
            FORM,
            format!(
                "grant_type=refresh_token&refresh_token={}",
                proof_for("POST", "/auth/token")
            ),
        )
        .send()
        .await;
    no_5xx(server, &res, "DPoP proof as refresh token");
    assert_eq!(res.status, 400, "{}", res.text());
    assert_eq!(res.json()["error"], "invalid_grant", "{}", res.text());
    t.finish().await;
}

// ---------------------------------------------------------------------------------------
// The well-known JWT attacks on claims
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn jwt_tampered_claims_are_refused() {
    let t = Target::demo().await;
    let bob = user_client(&t.server, "bob").await;
    let bob_claims = bob.claims().unwrap();
    let (h, _, s) = segments(&t.token);
    let q = |v: &Value| v.to_string();
    let edits: Vec<(&str, String)> = vec![
        ("sub", q(&bob_claims["sub"])),
        ("sid", q(&bob_claims["sid"])),
        ("username", "\"bob\"".to_owned()),
        ("username", "\"admin\"".to_owned()),
        ("roles", "[\"admin\"]".to_owned()),
        (
            "roles",
            format!("{},\"admin\"]", q(&t.claims["roles"]).trim_end_matches(']')),
        ),
        ("exp", (t.server.now().0 + 365 * 86400).to_string()),
        ("exp", (t.claims["exp"].as_u64().unwrap() + 1).to_string()),
        ("iat", (t.server.now().0 + 1).to_string()),
        ("jti", "\"another-jti\"".to_owned()),
    ];
    for (name, raw) in &edits {
        let payload = seg(&t.claims_with(&[(*name, Some(raw.as_str()))], ""));
        assert_refused(
            &t.server,
            &format!("{h}.{payload}.{s}"),
            &format!("{name} := {raw}, signature kept"),
        )
        .await;
    }
    // A claim added (cnf) or the payload re-serialised with the same content.
    let payload = seg(&t.claims_with(&[("cnf", Some("{\"jkt\":\"x\"}"))], ""));
    assert_refused(&t.server, &format!("{h}.{payload}.{s}"), "cnf added").await;
    let payload = seg(&serde_json::to_string_pretty(&t.claims).unwrap());
    assert_refused(
        &t.server,
        &format!("{h}.{payload}.{s}"),
        "same claims, other serialisation",
    )
    .await;
    // Bob's payload with the victim's header and signature, and the reverse.
    let bob_token = bob.access_token().unwrap();
    let (_, bob_p, bob_s) = segments(&bob_token);
    assert_refused(
        &t.server,
        &format!("{h}.{bob_p}.{s}"),
        "bob's payload, victim's signature",
    )
    .await;
    let (_, p, _) = segments(&t.token);
    assert_refused(
        &t.server,
        &format!("{h}.{p}.{bob_s}"),
        "victim's payload, bob's signature",
    )
    .await;
    t.finish().await;
}

#[tokio::test]
async fn jwt_duplicate_json_names_are_refused() {
    let t = Target::demo().await;
    let bob = user_client(&t.server, "bob").await;
    let bob_sub = bob.claims().unwrap()["sub"].to_string();
    let kid = t.forger.kid.clone();
    let (_, p, s) = segments(&t.token);

    // Header: duplicates before or after the genuine members, unsigned and key-holder-signed.
    for header in [
        format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{kid}","alg":"none"}}"#),
        format!(r#"{{"alg":"none","alg":"EdDSA","typ":"at+jwt","kid":"{kid}"}}"#),
        format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{kid}","kid":"other"}}"#),
        format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{kid}","typ":"JWT"}}"#),
        format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{kid}","\u0061lg":"HS256"}}"#),
    ] {
        assert_refused(
            &t.server,
            &format!("{}.{p}.{s}", seg(&header)),
            &format!("header {header}"),
        )
        .await;
        let token = t.forger.sign_with_header(&header, &t.claims_with(&[], ""));
        assert_refused(&t.server, &token, &format!("signed header {header}")).await;
    }

    // Payload, key-holder-signed: first-wins and last-wins parsers would each pick one.
    let exp = t.claims["exp"].to_string();
    let roles = t.claims["roles"].to_string();
    let iss = t.claims["iss"].to_string();
    let dupes = [
        format!(",\"sub\":{bob_sub}"),
        format!(",\"s\\u0075b\":{bob_sub}"),
        ",\"roles\":[\"admin\"]".to_owned(),
        format!(",\"roles\":{roles}"),
        format!(",\"exp\":{}", u64::MAX),
        format!(",\"exp\":{exp}"),
        format!(",\"iss\":{iss}"),
        ",\"username\":\"admin\"".to_owned(),
        ",\"cnf\":{\"jkt\":\"x\"},\"cnf\":null".to_owned(),
    ];
    for extra in &dupes {
        let token = t.forger.sign(&t.claims_with(&[], extra));
        assert_refused(&t.server, &token, &format!("payload with {extra}")).await;
    }
    // A duplicate inside cnf.
    let token = t
        .forger
        .sign(&t.claims_with(&[("cnf", Some("{\"jkt\":\"a\",\"jkt\":\"b\"}"))], ""));
    assert_refused(&t.server, &token, "duplicate jkt inside cnf").await;
    t.finish().await;
}

#[tokio::test]
async fn jwt_numeric_claims_must_be_plain_unsigned_integers() {
    let t = Target::demo().await;
    let valid_exp = t.server.now().0 + 300;
    let bad_numbers = [
        "1e400",
        "18446744073709551616",
        "18446744073709551617",
        "340282366920938463463374607431768211456",
        "-1",
        "-0",
        "-9999999999",
        "1.5",
        "9999999999.0",
        "1e10",
        "1E10",
        "1e+10",
        "0.1e11",
        "01700000000",
        "+9999999999",
        "0x7fffffff",
        "NaN",
        "Infinity",
        "\"9999999999\"",
        "\"\"",
        "null",
        "true",
        "[9999999999]",
        "{\"$numberLong\":\"9999999999\"}",
    ];
    for claim in ["exp", "iat", "nbf"] {
        for bad in bad_numbers {
            let token = t.forger.sign(&t.claims_with(&[(claim, Some(bad))], ""));
            assert_refused(&t.server, &token, &format!("{claim} = {bad}")).await;
        }
    }
    // Also `exp` as a float of the very value that would be valid.
    let token = t
        .forger
        .sign(&t.claims_with(&[("exp", Some(format!("{valid_exp}.0").as_str()))], ""));
    assert_refused(&t.server, &token, "exp as a float").await;
    let token = t
        .forger
        .sign(&t.claims_with(&[("exp", Some(format!("\"{valid_exp}\"").as_str()))], ""));
    assert_refused(&t.server, &token, "exp as a string").await;
    // The largest u64 is a number like any other: far-future nbf/iat are refused,
    // and nothing overflows into a 5xx.
    for claim in ["iat", "nbf"] {
        let token = t
            .forger
            .sign(&t.claims_with(&[(claim, Some(u64::MAX.to_string().as_str()))], ""));
        assert_refused(&t.server, &token, &format!("{claim} = u64::MAX")).await;
    }
    // `exp` = u64::MAX is a valid u64 under a valid signature: accepted today (saturating
    // arithmetic, no overflow); refusing absurd lifetimes would be fine too. Never a 5xx.
    let token = t
        .forger
        .sign(&t.claims_with(&[("exp", Some(u64::MAX.to_string().as_str()))], ""));
    for carrier in [Carrier::Bearer, Carrier::Cookies] {
        for path in PATHS {
            let res = present(&t.server, carrier, path, &token).await;
            assert!(
                matches!(res.status, 200 | 401),
                "exp = u64::MAX [{carrier:?} {path}]: {} {}",
                res.status,
                res.text()
            );
        }
    }
    t.finish().await;
}

#[tokio::test]
async fn jwt_required_claims_must_be_present_and_unknown_ones_absent() {
    let t = Target::demo().await;
    for name in CLAIM_NAMES {
        let token = t.forger.sign(&t.claims_with(&[(name, None)], ""));
        assert_refused(&t.server, &token, &format!("no {name}")).await;
        let token = t.forger.sign(&t.claims_with(&[(name, Some("null"))], ""));
        assert_refused(&t.server, &token, &format!("{name} = null")).await;
    }
    for (name, raw) in [
        ("admin", "true"),
        ("scope", "\"admin\""),
        ("is_admin", "1"),
        ("act", "{\"sub\":\"admin\"}"),
        ("cnf", "{\"jkt\":\"x\",\"kid\":\"y\"}"),
        ("cnf", "\"x\""),
    ] {
        let token = t.forger.sign(&t.claims_with(&[(name, Some(raw))], ""));
        assert_refused(&t.server, &token, &format!("extra claim {name} = {raw}")).await;
    }
    // Wrong types for string and array claims.
    for (name, raw) in [
        ("sub", "1"),
        ("sid", "[\"x\"]"),
        ("roles", "\"admin\""),
        ("roles", "[1]"),
        ("roles", "[[\"admin\"]]"),
        ("username", "{}"),
        ("sub", "\"not-a-user-id\""),
        ("sid", "\"not-a-session-id\""),
        // Not JSON: a lone surrogate, a raw control character.
        ("username", "\"\\ud800\""),
        ("username", "\"de\u{1}mo\""),
    ] {
        let token = t.forger.sign(&t.claims_with(&[(name, Some(raw))], ""));
        assert_refused(&t.server, &token, &format!("{name} = {raw}")).await;
    }
    // Not an object at all, or trailing data.
    let genuine = t.claims_with(&[], "");
    for payload in [
        "[]".to_owned(),
        "\"claims\"".to_owned(),
        "null".to_owned(),
        format!("[{genuine}]"),
        format!("{genuine}{genuine}"),
        format!("{genuine}x"),
        format!("\u{feff}{genuine}"),
    ] {
        let token = t.forger.sign(&payload);
        assert_refused(&t.server, &token, &format!("payload {payload:.40}")).await;
    }
    // Not UTF-8.
    let mut bytes = genuine.clone().into_bytes();
    let at = bytes.len() - 3;
    bytes.insert(at, 0xff);
    let token = t
        .forger
        .sign_segments(&t.forger.header, &b64url_encode(&bytes));
    assert_refused(&t.server, &token, "payload not UTF-8").await;
    t.finish().await;
}

#[tokio::test]
async fn jwt_claim_strings_cannot_inject_headers() {
    // Only a key holder can sign these (tessera's own usernames and roles are restricted
    // to `A–Z a–z 0–9 . _ @ -` and `A–Z a–z 0–9 . _ : -`), but whatever a signed token
    // says must not turn into extra headers for the upstream or for nginx, nor a 5xx.
    // Refusing such a token (401) or dropping the unusable identity header (200, what
    // tessera does today) are both safe; injecting is not.
    let t = Target::demo().await;
    let cases = [
        ("username", r#""demo\r\nx-injected: 1""#),
        ("username", r#""demo\nx-tessera-roles: admin""#),
        ("username", r#""demo\u0000""#),
        ("roles", r#"["user\r\nx-injected: 1"]"#),
        ("roles", r#"["user","admin\r\nx-injected: 1"]"#),
        ("username", r#""d\u00e9mo""#),
        ("roles", "[]"),
    ];
    for (name, raw) in cases {
        let token = t.forger.sign(&t.claims_with(&[(name, Some(raw))], ""));
        let what = format!("{name} = {raw}");
        for carrier in [Carrier::Bearer, Carrier::Cookies] {
            let res = present(&t.server, carrier, "/api/whoami", &token).await;
            assert!(
                matches!(res.status, 200 | 401),
                "{what} [{carrier:?}]: {} {}",
                res.status,
                res.text()
            );
            if res.status == 200 {
                let seen = res.json()["headers"].clone();
                assert!(
                    seen.get("x-injected").is_none(),
                    "{what}: header injected upstream: {seen}"
                );
                let roles = seen["x-tessera-roles"].as_str().unwrap_or_default();
                assert!(
                    !roles.split(',').any(|r| r == "admin") || raw.contains("\"admin"),
                    "{what}: {seen}"
                );
                for v in seen.as_object().unwrap().values() {
                    let v = v.as_str().unwrap_or_default();
                    assert!(
                        !v.contains(['\r', '\n', '\0']),
                        "{what}: control character upstream: {seen}"
                    );
                }
            }
            let res = present(&t.server, carrier, "/auth/verify", &token).await;
            assert!(
                matches!(res.status, 200 | 401),
                "{what} [{carrier:?}] verify: {}",
                res.status
            );
            assert!(
                res.header("x-injected").is_none(),
                "{what}: header injected into forward-auth"
            );
        }
    }
    t.finish().await;
}

#[tokio::test]
async fn jwt_time_claims_hold_with_a_bounded_leeway() {
    // Default leeway: 30 s (docs/configuration.md `tokens.leeway`). The times are the
    // server's (its clock stands still); margins of 5+ s as before.
    let t = Target::demo().await;
    let n = t.server.now().0;
    let at = |exp: u64, nbf: u64, iat: u64| {
        t.forger.sign(&t.claims_with(
            &[
                ("exp", Some(exp.to_string().as_str())),
                ("nbf", Some(nbf.to_string().as_str())),
                ("iat", Some(iat.to_string().as_str())),
            ],
            "",
        ))
    };
    let refused = [
        ("expired an hour ago", at(n - 3600, n - 4200, n - 4200)),
        ("expired past the leeway", at(n - 45, n - 600, n - 600)),
        ("exp before iat", at(n - 3600, n, n)),
        ("exp 0", at(0, 0, 0)),
        ("nbf an hour ahead", at(n + 7200, n + 3600, n)),
        ("nbf past the leeway", at(n + 600, n + 45, n)),
        ("iat an hour ahead", at(n + 7200, n, n + 3600)),
        ("iat past the leeway", at(n + 600, n, n + 45)),
        (
            "issued a year ahead",
            at(n + 366 * 86400, n + 365 * 86400, n + 365 * 86400),
        ),
    ];
    for (what, token) in &refused {
        assert_refused(&t.server, token, what).await;
    }
    let accepted = [
        ("expired within the leeway", at(n - 5, n - 600, n - 600)),
        ("nbf within the leeway", at(n + 600, n + 5, n)),
        ("iat within the leeway", at(n + 600, n, n + 5)),
    ];
    for (what, token) in &accepted {
        assert_accepted(&t.server, token, what).await;
    }
    t.finish().await;
}

// ---------------------------------------------------------------------------------------
// ASVS V3: session management
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn asvs_3_1_1_tokens_in_the_url_or_the_body_are_not_credentials() {
    let t = Target::demo().await;
    let token = &t.token;
    for path in PATHS {
        for param in ["access_token", "token", "jwt", "bearer"] {
            let target = format!("{path}?{param}={token}");
            let res = t.server.client().get(&target).send().await;
            no_5xx(&t.server, &res, &target);
            assert_unauthenticated(&res, &format!("{path}?{param}=<token>"));
        }
    }
    // RFC 6750 §2.2: form-encoded body parameter.
    let res = t
        .server
        .client()
        .post("/api/notes")
        .body(FORM, format!("access_token={token}"))
        .send()
        .await;
    no_5xx(&t.server, &res, "access_token in the body");
    assert_unauthenticated(&res, "access_token in a form body");
    // Cookies with other names, or the whole token in the claims cookie.
    for cookie in [
        format!("access_token={token}"),
        format!("authorization=Bearer {token}"),
        format!("{CLAIMS}={token}"),
    ] {
        let res = t
            .server
            .client()
            .get("/api/whoami")
            .cookie_header(&cookie)
            .send()
            .await;
        no_5xx(&t.server, &res, &cookie);
        assert_unauthenticated(&res, &format!("cookie {cookie:.40}"));
    }
    t.finish().await;
}

#[tokio::test]
async fn asvs_3_2_1_login_always_starts_a_new_session() {
    let server = InProc::demo().await;
    let mallory = user_client(&server, "mallory").await;
    let planted = mallory.claims().unwrap();

    // Mallory plants her whole cookie jar in the victim's browser (cookie tossing from a
    // sibling domain, a shared computer…), then the victim logs in.
    let mut victim = mallory.clone();
    let res = victim.login_ok("demo", server.demo_password()).await;
    no_5xx(&server, &res, "login over planted cookies");
    for name in [CLAIMS, SIG, REFRESH, CSRF] {
        let sc = res
            .set_cookie(name)
            .unwrap_or_else(|| panic!("login did not replace {name}"));
        assert_ne!(
            Some(sc.value.clone()),
            mallory.jar.value(name),
            "{name} kept"
        );
    }
    let claims = victim.claims().unwrap();
    assert_ne!(
        claims["sid"], planted["sid"],
        "the planted session was kept"
    );
    assert_eq!(claims["username"], "demo");
    let res = victim.get("/auth/session").send().await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.json()["user"]["username"], "demo");
    // Mallory's own session learnt nothing and gained nothing.
    let mut m = mallory.clone();
    let res = m.get("/auth/session").send().await;
    assert_eq!(res.json()["user"]["username"], "mallory", "{}", res.text());
    // Her CSRF token does not go with the victim's session.
    let res = victim
        .post("/api/notes")
        .same_origin()
        .header("x-csrf-token", &mallory.csrf().unwrap())
        .json(&json!({"text": "csrf with a planted token"}))
        .send()
        .await;
    res.assert_error(403, "csrf_failed");

    // Logging in again while logged in also starts a new session.
    let before = victim.claims().unwrap();
    victim.login_ok("demo", server.demo_password()).await;
    assert_ne!(victim.claims().unwrap()["sid"], before["sid"]);
    assert!(server.panics().is_empty(), "{:?}", server.panics());
}

/// How many byte positions two strings of bytes share.
fn same_positions(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x == y).count()
}

#[tokio::test]
async fn asvs_3_2_2_session_identifiers_are_unique_and_random() {
    let server = InProc::builder()
        .config("[rate_limit]\nper_ip_per_minute = 1000")
        .start()
        .await;
    let mut seen: Vec<(Vec<u8>, Vec<u8>, String, String)> = Vec::new();
    for _ in 0..12 {
        let c = server.demo_client().await;
        let claims = c.claims().unwrap();
        let sid = b64url_decode(claims["sid"].as_str().unwrap()).expect("sid is base64url");
        let refresh = b64url_decode(&c.refresh_token().unwrap()).expect("refresh is base64url");
        assert!(sid.len() >= 16, "session id of {} bits", sid.len() * 8);
        assert!(
            refresh.len() >= 32,
            "refresh token of {} bits",
            refresh.len() * 8
        );
        let jti = claims["jti"].as_str().unwrap().to_owned();
        assert!(jti.len() >= 16, "jti {jti:?} too short to be unique");
        seen.push((sid, refresh, jti, c.csrf().unwrap()));
    }
    for (i, a) in seen.iter().enumerate() {
        for b in &seen[i + 1..] {
            // Random, not a counter or a clock: two ids agree in about 1/256 of positions.
            assert!(
                same_positions(&a.0, &b.0) <= 6,
                "session ids alike: {:?} {:?}",
                a.0,
                b.0
            );
            assert!(same_positions(&a.1, &b.1) <= 8, "refresh tokens alike");
            assert_ne!(a.2, b.2, "jti reused");
            assert_ne!(a.3, b.3, "CSRF token reused");
        }
    }
}

#[tokio::test]
async fn asvs_3_3_1_logged_out_tokens_cannot_be_replayed() {
    let t = Target::demo().await;
    let bystander = t.server.demo_client().await;
    let mut victim = t.victim.clone();
    let res = victim.post("/auth/logout").with_csrf().send().await;
    assert_eq!(res.status, 204, "{}", res.text());
    // The token (Bearer and cookies, every path) is dead at once.
    assert_refused(&t.server, &t.token, "access token after logout").await;
    // Re-signed with a new jti and a fresh iat: revocation is by session, not by token.
    let n = t.server.now().0.to_string();
    let token = t.forger.sign(&t.claims_with(
        &[
            ("jti", Some("\"after-logout\"")),
            ("iat", Some(n.as_str())),
            ("nbf", Some(n.as_str())),
        ],
        "",
    ));
    assert_refused(
        &t.server,
        &token,
        "re-signed token of the logged-out session",
    )
    .await;
    // Another session of the same user is untouched.
    let mut b = bystander.clone();
    let res = b.get("/api/whoami").send().await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert!(t.server.panics().is_empty(), "{:?}", t.server.panics());
}

#[tokio::test]
async fn asvs_3_3_3_logout_all_refuses_every_older_token_of_the_user() {
    let t = Target::demo().await;
    let n = t.server.now().0;
    // A token for a session the store never saw (key holder), issued before logout-all.
    let other_sid = serde_json::to_string(&random_id()).unwrap();
    let stray = t.forger.sign(&t.claims_with(
        &[
            ("sid", Some(other_sid.as_str())),
            ("jti", Some("\"stray\"")),
            ("iat", Some((n - 5).to_string().as_str())),
            ("nbf", Some((n - 5).to_string().as_str())),
        ],
        "",
    ));
    // Verification is in memory: before logout-all it passes wherever the store is not asked.
    for carrier in [Carrier::Bearer, Carrier::Cookies] {
        for path in ["/api/whoami", "/auth/verify"] {
            let res = present(&t.server, carrier, path, &stray).await;
            assert_eq!(res.status, 200, "{carrier:?} {path}: {}", res.text());
        }
    }
    let mut victim = t.victim.clone();
    let res = victim.post("/auth/logout-all").with_csrf().send().await;
    assert_eq!(res.status, 204, "{}", res.text());
    // The user's "not before" now refuses every older token, whatever its session.
    assert_refused(&t.server, &stray, "older token of an unknown session").await;
    assert_refused(&t.server, &t.token, "older token of a known session").await;
    assert!(t.server.panics().is_empty(), "{:?}", t.server.panics());
}

/// Every `Set-Cookie` of `res` has the attributes of docs/http-api.md "Browser endpoints" and
/// ASVS V3.4.1–V3.4.5, and a browser would keep it.
#[track_caller]
fn assert_cookie_attributes(res: &Resp, access_ttl: i64, what: &str) {
    assert!(!res.set_cookies.is_empty(), "{what}: no cookies set");
    for sc in &res.set_cookies {
        let ctx = format!("{what}: {}", sc.raw);
        assert!(ALL.contains(&sc.name.as_str()), "{ctx}: unexpected cookie");
        assert!(sc.secure, "{ctx}: not Secure (V3.4.1)");
        assert!(sc.domain.is_none(), "{ctx}: Domain set (V3.4.4)");
        assert!(
            sc.prefix_violation().is_none(),
            "{ctx}: {:?}",
            sc.prefix_violation()
        );
        let (http_only, same_site, path) = match sc.name.as_str() {
            n if n == CLAIMS => (false, "lax", "/"),
            n if n == SIG => (true, "lax", "/"),
            n if n == REFRESH => (true, "strict", "/auth"),
            n if n == CSRF => (false, "strict", "/"),
            _ => (true, "lax", "/"),
        };
        assert_eq!(sc.http_only, http_only, "{ctx}: HttpOnly (V3.4.2)");
        assert_eq!(
            sc.same_site_lower().as_deref(),
            Some(same_site),
            "{ctx}: SameSite (V3.4.3)"
        );
        assert_eq!(sc.path.as_deref(), Some(path), "{ctx}: Path (V3.4.5)");
        assert!(
            sc.name.len() + sc.value.len() <= 4096,
            "{ctx}: too large for a browser"
        );
        let max_age = sc.max_age.unwrap_or_else(|| panic!("{ctx}: no Max-Age"));
        if sc.is_deletion() {
            assert!(
                sc.value.is_empty(),
                "{ctx}: a cleared cookie keeps its value"
            );
        } else if sc.name == CLAIMS || sc.name == SIG {
            assert!(max_age <= access_ttl, "{ctx}: outlives the access token");
        }
    }
}

#[tokio::test]
async fn asvs_3_4_every_cookie_keeps_its_attributes_after_login() {
    let server = InProc::builder()
        .config("[tokens]\naccess_ttl = \"5m\"\nrefresh_grace = \"0s\"")
        .start()
        .await;
    let mut c = server.demo_client().await;
    let stolen = c.clone();

    // Refreshed cookies, a second on.
    server.advance(Duration::from_secs(1));
    let res = c.refresh().await;
    no_5xx(&server, &res, "refresh");
    assert_eq!(res.status, 200, "{}", res.text());
    assert_cookie_attributes(&res, 300, "refresh");
    for name in [CLAIMS, SIG, REFRESH, CSRF] {
        assert!(
            res.set_cookie(name).is_some_and(|c| !c.is_deletion()),
            "refresh: {name} not re-issued"
        );
    }
    // Cookies cleared by a detected reuse.
    let mut thief = stolen.clone();
    let res = thief.refresh().await;
    no_5xx(&server, &res, "refresh reuse");
    res.assert_error(401, "refresh_token_reused");
    assert_cookie_attributes(&res, 300, "refresh_token_reused");
    // Cookies cleared for a refresh token tessera does not know.
    let mut stranger = server.client();
    stranger
        .jar
        .insert(REFRESH, &b64url_encode(&[9u8; 32]), "/auth");
    let res = stranger
        .post("/auth/refresh")
        .same_origin()
        .header("x-csrf-token", "x")
        .send()
        .await;
    no_5xx(&server, &res, "unknown refresh token");
    assert_unauthenticated(&res, "unknown refresh token");
    assert_cookie_attributes(&res, 300, "unknown refresh token");
    // Cookies cleared by logout-all.
    let mut d = server.demo_client().await;
    let res = d.post("/auth/logout-all").with_csrf().send().await;
    assert_eq!(res.status, 204, "{}", res.text());
    assert_cookie_attributes(&res, 300, "logout-all");
    assert!(c.jar.rejected().is_empty() && d.jar.rejected().is_empty());
}

#[tokio::test]
async fn asvs_2_2_1_login_and_token_grant_share_one_throttle() {
    // `rate_limit.per_username_per_minute = 5` failures: alternating between the browser
    // login and the token endpoint must not double the guesses an attacker gets.
    let server = InProc::demo().await;
    let mut c = server.client();
    let mut limited = None;
    for attempt in 1..=8 {
        let res = if attempt % 2 == 1 {
            c.login("demo", "wrong-password-guess").await
        } else {
            c.post("/auth/token")
                .no_cookies()
                .body(
                    FORM,
                    "grant_type=password&username=demo&password=wrong-password-guess",
                )
                .send()
                .await
        };
        no_5xx(&server, &res, &format!("attempt {attempt}"));
        if res.status == 429 {
            limited = Some(attempt);
            break;
        }
        assert!(
            matches!(res.status, 400 | 401),
            "attempt {attempt}: {} {}",
            res.status,
            res.text()
        );
    }
    let attempt = limited.expect("8 alternating wrong passwords were never throttled");
    assert!(attempt <= 7, "throttled only at attempt {attempt}");
    // Both entry points are now closed for this account, each in its own error shape.
    let res = c.login("demo", "wrong-password-guess").await;
    res.assert_error(429, "rate_limited");
    assert!(res.header("retry-after").is_some());
    let res = c
        .post("/auth/token")
        .no_cookies()
        .body(
            FORM,
            "grant_type=password&username=demo&password=wrong-password-guess",
        )
        .send()
        .await;
    assert_eq!(res.status, 429, "{}", res.text());
    let v = res.json();
    assert_eq!(v["error"], "rate_limited", "{v}");
    assert!(v["error_description"].is_string(), "{v}");
    assert!(res.header("retry-after").is_some());
}
