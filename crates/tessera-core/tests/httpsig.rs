//! HTTP Message Signatures (RFC 9421, hmac-sha256) and Content-Digest (RFC 9530): the
//! RFC's own HMAC example, the shared vectors in `testdata/vectors/httpsig.json`, and every
//! way a signed request must be refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::hmac;
use serde_json::Value;
use tessera_core::httpsig::{
    self, check_content_digest, content_digest, parse, sign, sign_base, verify, verify_request,
    ParsedSignature, SigError, SignatureParams, SignedRequest, DEFAULT_WINDOW, MAX_HEADER_LEN,
};
use tessera_core::replay::ReplayCache;
use tessera_core::UnixTime;

const NOW: UnixTime = UnixTime(1_700_000_000);
const SECRET: [u8; 32] = [0x5a; 32];
const URI: &str = "https://api.example.com/v1/items?limit=10&sort=desc";
const BODY: &[u8] = br#"{"name":"widget","qty":3}"#;

struct Signed {
    input: String,
    sig: String,
    digest: Option<String>,
}

fn signed(method: &str, uri: &str, body: Option<&[u8]>, nonce: &str, created: u64) -> Signed {
    let digest = body.map(content_digest);
    let (input, sig) = sign(
        method,
        uri,
        digest.as_deref(),
        "svc-1",
        nonce,
        created,
        &SECRET,
    )
    .unwrap();
    Signed { input, sig, digest }
}

fn req<'a>(method: &'a str, uri: &'a str, s: &'a Signed) -> SignedRequest<'a> {
    SignedRequest {
        method,
        target_uri: uri,
        content_digest: s.digest.as_deref(),
        has_body: s.digest.is_some(),
        signature_input: &s.input,
        signature: &s.sig,
        ..Default::default()
    }
}

fn lookup(keyid: &str) -> Option<[u8; 32]> {
    (keyid == "svc-1").then_some(SECRET)
}

fn check(r: &SignedRequest<'_>, body: &[u8], now: UnixTime) -> Result<SignatureParams, SigError> {
    verify_request(r, body, lookup, &ReplayCache::new(100), now, DEFAULT_WINDOW)
}

/// Builds a request with a hand-written Signature-Input, signed correctly over the base
/// that `parse` derives — so only the profile decides. Returns the parse error if any.
fn with_input(input_value: &str, r: SignedRequest<'_>) -> Result<SignatureParams, SigError> {
    let input = format!("sig1={input_value}");
    let probe = SignedRequest {
        signature_input: &input,
        signature: "sig1=::",
        ..r
    };
    let parsed = parse(&probe)?;
    let sig = format!(
        "sig1=:{}:",
        STANDARD.encode(sign_base(&parsed.base, &SECRET))
    );
    let full = SignedRequest {
        signature_input: &input,
        signature: &sig,
        ..r
    };
    check(&full, if full.has_body { BODY } else { b"" }, NOW)
}

fn body_req<'a>(digest: &'a str) -> SignedRequest<'a> {
    SignedRequest {
        method: "POST",
        target_uri: URI,
        content_digest: Some(digest),
        has_body: true,
        ..Default::default()
    }
}

// ---- RFC 9421 Appendix B.2.5 ---------------------------------------------------------

const RFC_SECRET_B64: &str =
    "uzvJfB4u3N0Jy4T7NZ75MDVcr8zSTInedJtkgcu46YW4XByzNJjxBdtjUkdJPBtbmHhIDi6pcl8jsasjlTMtDQ==";
const RFC_BASE: &str = "\"date\": Tue, 20 Apr 2021 02:07:55 GMT\n\
\"@authority\": example.com\n\
\"content-type\": application/json\n\
\"@signature-params\": (\"date\" \"@authority\" \"content-type\");created=1618884473;keyid=\"test-shared-secret\"";
const RFC_SIG_B64: &str = "pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8=";

#[test]
fn rfc9421_b25_hmac_example_reproduces_the_rfc_signature() {
    let secret = STANDARD.decode(RFC_SECRET_B64).unwrap();
    assert_eq!(secret.len(), 64);
    let sig = sign_base(RFC_BASE, &secret);
    assert_eq!(STANDARD.encode(sig), RFC_SIG_B64);
    // Cross-check with ring's HMAC directly.
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &secret),
        RFC_BASE.as_bytes(),
    );
    assert_eq!(tag.as_ref(), &sig);
    // And `verify` accepts it at the RFC's time, refuses a changed base.
    let parsed = ParsedSignature {
        params: SignatureParams {
            label: "sig-b25".into(),
            keyid: "test-shared-secret".into(),
            nonce: String::new(),
            created: 1_618_884_473,
            expires: None,
            components: vec!["date".into(), "@authority".into(), "content-type".into()],
        },
        signature: sig.to_vec(),
        base: RFC_BASE.into(),
    };
    assert_eq!(
        verify(&parsed, &secret, UnixTime(1_618_884_473), 300),
        Ok(())
    );
    let mut other = parsed.clone();
    other.base = RFC_BASE.replace("example.com", "example.org");
    assert_eq!(
        verify(&other, &secret, UnixTime(1_618_884_473), 300),
        Err(SigError::BadSignature)
    );
    // The RFC's request is outside tessera's profile (it covers `date`, has no nonce).
    let input = r#"sig-b25=("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret""#;
    let r = SignedRequest {
        method: "POST",
        target_uri: "https://example.com/foo?param=Value&Pet=dog",
        signature_input: input,
        signature: "sig-b25=:pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8=:",
        ..Default::default()
    };
    assert_eq!(parse(&r).unwrap_err(), SigError::UnknownComponent);
}

// ---- round trips ---------------------------------------------------------------------

#[test]
fn sign_then_verify_with_body() {
    let s = signed("POST", URI, Some(BODY), "nonce-1", NOW.0);
    assert!(s.input.starts_with(r#"sig1=("@method" "@target-uri" "content-digest");created=1700000000;keyid="svc-1";nonce="nonce-1";alg="hmac-sha256""#), "{}", s.input);
    assert!(s.sig.starts_with("sig1=:") && s.sig.ends_with(':'));
    let r = req("POST", URI, &s);
    let p = check(&r, BODY, NOW).unwrap();
    assert_eq!(p.keyid, "svc-1");
    assert_eq!(p.nonce, "nonce-1");
    assert_eq!(p.created, NOW.0);
    assert_eq!(p.label, "sig1");
    assert_eq!(p.components, ["@method", "@target-uri", "content-digest"]);
    // The base, spelled out.
    let parsed = parse(&r).unwrap();
    assert_eq!(
        parsed.base,
        format!(
            "\"@method\": POST\n\"@target-uri\": {URI}\n\"content-digest\": {}\n\"@signature-params\": {}",
            s.digest.as_deref().unwrap(),
            s.input.strip_prefix("sig1=").unwrap()
        )
    );
    assert_eq!(parsed.signature.len(), 32);
}

#[test]
fn sign_then_verify_without_body() {
    let s = signed("GET", URI, None, "nonce-2", NOW.0);
    assert!(!s.input.contains("content-digest"));
    let p = check(&req("GET", URI, &s), b"", NOW).unwrap();
    assert_eq!(p.components, ["@method", "@target-uri"]);
}

#[test]
fn replayed_nonce_is_refused() {
    let cache = ReplayCache::new(100);
    let s = signed("GET", URI, None, "nonce-3", NOW.0);
    let r = req("GET", URI, &s);
    let p = verify_request(&r, b"", lookup, &cache, NOW, 300).unwrap();
    assert_eq!(
        verify_request(&r, b"", lookup, &cache, NOW.plus(1), 300),
        Err(SigError::Replayed)
    );
    // A fresh signature with the same nonce is still a replay.
    let s2 = signed("GET", URI, None, "nonce-3", NOW.0 + 5);
    assert_eq!(
        verify_request(&req("GET", URI, &s2), b"", lookup, &cache, NOW.plus(5), 300),
        Err(SigError::Replayed)
    );
    assert_eq!(p.replay_expires(300), NOW.plus(300));
    // Unauthenticated requests do not consume cache entries.
    let full = ReplayCache::new(1);
    let bad = SignedRequest {
        signature: "sig1=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:",
        ..r
    };
    assert_eq!(
        verify_request(&bad, b"", lookup, &full, NOW, 300),
        Err(SigError::BadSignature)
    );
    assert!(full.is_empty());
    assert!(verify_request(&r, b"", lookup, &full, NOW, 300).is_ok());
    let s4 = signed("GET", URI, None, "nonce-4", NOW.0);
    assert_eq!(
        verify_request(&req("GET", URI, &s4), b"", lookup, &full, NOW, 300),
        Err(SigError::ReplayCacheFull)
    );
}

// ---- tampering -----------------------------------------------------------------------

#[test]
fn tampered_method_path_query_host_are_refused() {
    let s = signed("POST", URI, Some(BODY), "n", NOW.0);
    for (method, uri) in [
        ("PUT", URI),
        ("post", URI),
        (
            "POST",
            "https://api.example.com/v1/admin?limit=10&sort=desc",
        ),
        (
            "POST",
            "https://api.example.com/v1/items?limit=1000&sort=desc",
        ),
        ("POST", "https://api.example.com/v1/items"),
        (
            "POST",
            "https://api.example.com/v1/items?limit=10&sort=desc&x=1",
        ),
        (
            "POST",
            "https://evil.example.com/v1/items?limit=10&sort=desc",
        ),
        ("POST", "http://api.example.com/v1/items?limit=10&sort=desc"),
    ] {
        let r = req(method, uri, &s);
        assert_eq!(
            check(&r, BODY, NOW),
            Err(SigError::BadSignature),
            "{method} {uri}"
        );
    }
}

#[test]
fn tampered_body_is_refused_by_the_digest() {
    let s = signed("POST", URI, Some(BODY), "n", NOW.0);
    let r = req("POST", URI, &s);
    assert_eq!(
        check(&r, br#"{"name":"widget","qty":300}"#, NOW),
        Err(SigError::DigestMismatch)
    );
    assert_eq!(
        check(&r, b"", NOW),
        Err(SigError::DigestMismatch),
        "body removed"
    );
    // A recomputed digest for the new body breaks the signature instead.
    let forged = content_digest(b"evil");
    let r2 = SignedRequest {
        content_digest: Some(&forged),
        ..r
    };
    assert_eq!(check(&r2, b"evil", NOW), Err(SigError::BadSignature));
}

#[test]
fn body_requires_content_digest_to_be_covered() {
    // Signed without a digest, sent with a body.
    let s = signed("POST", URI, None, "n", NOW.0);
    let r = req("POST", URI, &s);
    assert_eq!(
        check(&r, BODY, NOW),
        Err(SigError::MissingComponent("content-digest"))
    );
    let r = SignedRequest {
        has_body: true,
        ..r
    };
    assert_eq!(
        parse(&r).unwrap_err(),
        SigError::MissingComponent("content-digest")
    );
    // Covered, but the header is absent.
    let s = signed("POST", URI, Some(BODY), "n", NOW.0);
    let r = SignedRequest {
        content_digest: None,
        ..req("POST", URI, &s)
    };
    assert_eq!(
        check(&r, BODY, NOW),
        Err(SigError::MissingHeader("content-digest"))
    );
}

// ---- time ----------------------------------------------------------------------------

#[test]
fn created_must_be_within_the_window() {
    let cases = [
        (NOW.0 - 300, Ok(())),
        (NOW.0 - 301, Err(SigError::Stale)),
        (NOW.0 - 100_000, Err(SigError::Stale)),
        (NOW.0 + 300, Ok(())),
        (NOW.0 + 301, Err(SigError::FromFuture)),
        (0, Err(SigError::Stale)),
        (999_999_999_999_999, Err(SigError::FromFuture)),
    ];
    for (created, want) in cases {
        let s = signed("GET", URI, None, "n", created);
        let got = check(&req("GET", URI, &s), b"", NOW).map(|_| ());
        assert_eq!(got, want, "created {created}");
    }
}

#[test]
fn expires_is_enforced() {
    let r = SignedRequest {
        method: "GET",
        target_uri: URI,
        ..Default::default()
    };
    let base = format!(
        r#"("@method" "@target-uri");created={};keyid="svc-1";nonce="n""#,
        NOW.0 - 20
    );
    assert!(with_input(&format!("{base};expires={}", NOW.0), r).is_ok());
    assert_eq!(
        with_input(&format!("{base};expires={}", NOW.0 - 1), r),
        Err(SigError::Expired)
    );
    assert_eq!(
        with_input(&format!("{base};expires={}", NOW.0 - 21), r),
        Err(SigError::BadParameter)
    );
    assert_eq!(
        with_input(&format!("{base};expires=\"x\""), r),
        Err(SigError::BadParameter)
    );
}

// ---- keys ----------------------------------------------------------------------------

#[test]
fn wrong_secret_and_unknown_keyid_look_the_same() {
    let s = signed("GET", URI, None, "n", NOW.0);
    let r = req("GET", URI, &s);
    let other = |_: &str| Some([0x11u8; 32]);
    assert_eq!(
        verify_request(&r, b"", other, &ReplayCache::new(10), NOW, 300),
        Err(SigError::BadSignature)
    );
    let none = |_: &str| None::<[u8; 32]>;
    assert_eq!(
        verify_request(&r, b"", none, &ReplayCache::new(10), NOW, 300),
        Err(SigError::BadSignature)
    );
    // Short secrets are refused on both sides.
    assert_eq!(
        sign("GET", URI, None, "k", "n", NOW.0, b"short").unwrap_err(),
        SigError::WeakKey
    );
    let parsed = parse(&r).unwrap();
    assert_eq!(
        verify(&parsed, &SECRET[..31], NOW, 300),
        Err(SigError::WeakKey)
    );
    assert_eq!(verify(&parsed, &SECRET, NOW, 300), Ok(()));
}

// ---- profile -------------------------------------------------------------------------

#[test]
fn parameters_profile() {
    let r = SignedRequest {
        method: "GET",
        target_uri: URI,
        ..Default::default()
    };
    let c = r#"("@method" "@target-uri")"#;
    let t = NOW.0;
    let cases: Vec<(String, Result<(), SigError>)> = vec![
        (
            format!(r#"{c};created={t};keyid="svc-1";nonce="n""#),
            Ok(()),
        ),
        (
            format!(r#"{c};created={t};keyid="svc-1";nonce="n";alg="hmac-sha256""#),
            Ok(()),
        ),
        (
            format!(r#"{c};nonce="n";keyid="svc-1";created={t}"#),
            Ok(()),
        ),
        (
            format!(r#"{c};keyid="svc-1";nonce="n""#),
            Err(SigError::MissingParameter("created")),
        ),
        (
            format!(r#"{c};created={t};nonce="n""#),
            Err(SigError::MissingParameter("keyid")),
        ),
        (
            format!(r#"{c};created={t};keyid="svc-1""#),
            Err(SigError::MissingParameter("nonce")),
        ),
        (
            format!(r#"{c};created={t};keyid="svc-1";nonce="n";alg="hmac-sha512""#),
            Err(SigError::UnsupportedAlgorithm),
        ),
        (
            format!(r#"{c};created={t};keyid="svc-1";nonce="n";alg="HMAC-SHA256""#),
            Err(SigError::UnsupportedAlgorithm),
        ),
        (
            format!(r#"{c};created={t};keyid="svc-1";nonce="n";alg="ed25519""#),
            Err(SigError::UnsupportedAlgorithm),
        ),
        (
            format!(r#"{c};created={t};keyid="svc-1";nonce="n";alg=hmac-sha256"#),
            Err(SigError::BadParameter),
        ),
        (
            format!(r#"{c};created="{t}";keyid="svc-1";nonce="n""#),
            Err(SigError::BadParameter),
        ),
        (
            format!(r#"{c};created={t}.5;keyid="svc-1";nonce="n""#),
            Err(SigError::Malformed),
        ),
        (
            format!(r#"{c};created=-{t};keyid="svc-1";nonce="n""#),
            Err(SigError::BadParameter),
        ),
        (
            format!(r#"{c};created;keyid="svc-1";nonce="n""#),
            Err(SigError::BadParameter),
        ),
        (
            format!(r#"{c};created={t};keyid=svc;nonce="n""#),
            Err(SigError::BadParameter),
        ),
        (
            format!(r#"{c};created={t};keyid="svc-1";nonce=:AAAA:"#),
            Err(SigError::BadParameter),
        ),
        (
            format!(r#"{c};created={t};keyid="svc-1";nonce="""#),
            Err(SigError::BadParameter),
        ),
        (
            format!(
                r#"{c};created={t};keyid="svc-1";nonce="{}""#,
                "n".repeat(129)
            ),
            Err(SigError::BadParameter),
        ),
        (
            format!(
                r#"{c};created={t};keyid="svc-1";nonce="{}""#,
                "n".repeat(128)
            ),
            Ok(()),
        ),
        (
            format!(r#"{c};created={t};created={t};keyid="svc-1";nonce="n""#),
            Err(SigError::BadParameter),
        ),
        (
            format!(r#"{c};created={t};keyid="svc-1";nonce="n";tag="x""#),
            Err(SigError::UnknownParameter),
        ),
        (
            format!(r#"{c};created={t};keyid="svc-1";nonce="n";foo"#),
            Err(SigError::UnknownParameter),
        ),
    ];
    for (input, want) in cases {
        assert_eq!(with_input(&input, r).map(|_| ()), want, "{input}");
    }
}

#[test]
fn components_profile() {
    let d = content_digest(BODY);
    let params = format!(r#";created={};keyid="svc-1";nonce="n""#, NOW.0);
    let get = SignedRequest {
        method: "GET",
        target_uri: URI,
        content_type: Some("application/json"),
        content_length: Some("25"),
        ..Default::default()
    };
    let cases: Vec<(&str, SignedRequest<'_>, Result<(), SigError>)> = vec![
        (r#"("@method" "@target-uri")"#, get, Ok(())),
        (r#"("@target-uri" "@method")"#, get, Ok(())),
        (
            r#"("@method" "@target-uri" "@authority" "@path" "@query" "content-type" "content-length")"#,
            get,
            Ok(()),
        ),
        (
            r#"("@method" "@target-uri" "content-digest")"#,
            body_req(&d),
            Ok(()),
        ),
        (
            r#"("@method")"#,
            get,
            Err(SigError::MissingComponent("@target-uri")),
        ),
        (
            r#"("@target-uri")"#,
            get,
            Err(SigError::MissingComponent("@method")),
        ),
        (r#"()"#, get, Err(SigError::MissingComponent("@method"))),
        (
            r#"("@method" "@path" "@query" "@authority")"#,
            get,
            Err(SigError::MissingComponent("@target-uri")),
        ),
        (
            r#"("@method" "@target-uri")"#,
            body_req(&d),
            Err(SigError::MissingComponent("content-digest")),
        ),
        (
            r#"("@method" "@target-uri" "date")"#,
            get,
            Err(SigError::UnknownComponent),
        ),
        (
            r#"("@method" "@target-uri" "@request-target")"#,
            get,
            Err(SigError::UnknownComponent),
        ),
        (
            r#"("@method" "@target-uri" "@scheme")"#,
            get,
            Err(SigError::UnknownComponent),
        ),
        (
            r#"("@method" "@target-uri" "authorization")"#,
            get,
            Err(SigError::UnknownComponent),
        ),
        (
            r#"("@Method" "@target-uri")"#,
            get,
            Err(SigError::UnknownComponent),
        ),
        (
            r#"("@method" "@target-uri" "@query-param";name="limit")"#,
            get,
            Err(SigError::UnknownComponent),
        ),
        (
            r#"("@method" "@target-uri" "content-type";sf)"#,
            get,
            Err(SigError::UnknownComponent),
        ),
        (
            r#"("@method" "@target-uri" "@method")"#,
            get,
            Err(SigError::DuplicateComponent),
        ),
        (
            r#"("@method" "@target-uri" "content-digest")"#,
            get,
            Err(SigError::MissingHeader("content-digest")),
        ),
        (r#"(@method "@target-uri")"#, get, Err(SigError::Malformed)),
        (r#"("@method""@target-uri")"#, get, Err(SigError::Malformed)),
        // Unclosed: the parameters read as component parameters.
        (
            r#"("@method" "@target-uri""#,
            get,
            Err(SigError::UnknownComponent),
        ),
        (
            r#"("@method" "@target-uri" "#,
            get,
            Err(SigError::Malformed),
        ),
    ];
    for (comps, r, want) in cases {
        let input = format!("{comps}{params}");
        assert_eq!(with_input(&input, r).map(|_| ()), want, "{input}");
    }
    // More than 16 components.
    let many = format!("({}){params}", vec!["\"@method\""; 17].join(" "));
    assert_eq!(with_input(&many, get).map(|_| ()), Err(SigError::TooLarge));
}

#[test]
fn derived_components_are_computed_from_the_target_uri() {
    let input = format!(
        r#"sig1=("@method" "@target-uri" "@authority" "@path" "@query");created={};keyid="k";nonce="n""#,
        NOW.0
    );
    let base_of = |uri: &str| {
        let r = SignedRequest {
            method: "GET",
            target_uri: uri,
            signature_input: &input,
            signature: "sig1=::",
            ..Default::default()
        };
        parse(&r).map(|p| {
            p.base
                .lines()
                .take(5)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(
        base_of("https://API.Example.com:443/a/b?x=1&y=%20").unwrap(),
        [
            "\"@method\": GET",
            "\"@target-uri\": https://API.Example.com:443/a/b?x=1&y=%20",
            "\"@authority\": api.example.com",
            "\"@path\": /a/b",
            "\"@query\": ?x=1&y=%20",
        ]
    );
    let b = base_of("http://h:8080").unwrap();
    assert_eq!(
        b[2..],
        ["\"@authority\": h:8080", "\"@path\": /", "\"@query\": ?"]
    );
    for bad in [
        "/a/b",
        "https://u:p@h/",
        "https://h/a#frag",
        "ftp://h/",
        "https://h/a b",
        "https://h:x/",
    ] {
        assert_eq!(base_of(bad).unwrap_err(), SigError::BadTargetUri, "{bad}");
    }
}

#[test]
fn header_values_cannot_inject_lines_into_the_base() {
    let evil = format!("{}\n\"@method\": GET", content_digest(BODY));
    let params = format!(
        r#"("@method" "@target-uri" "content-digest");created={};keyid="svc-1";nonce="n""#,
        NOW.0
    );
    assert_eq!(
        with_input(&params, body_req(&evil)).map(|_| ()),
        Err(SigError::BadHeaderValue)
    );
    let r = SignedRequest {
        method: "GET\n",
        target_uri: URI,
        ..Default::default()
    };
    let p2 = format!(
        r#"("@method" "@target-uri");created={};keyid="svc-1";nonce="n""#,
        NOW.0
    );
    assert_eq!(with_input(&p2, r).map(|_| ()), Err(SigError::BadMethod));
}

#[test]
fn one_signature_with_matching_labels() {
    let s = signed("GET", URI, None, "n", NOW.0);
    let r = req("GET", URI, &s);
    let two_inputs = format!("{}, {}", s.input, s.input.replacen("sig1", "sig2", 1));
    let two_sigs = format!("{}, {}", s.sig, s.sig.replacen("sig1", "sig2", 1));
    let r2 = SignedRequest {
        signature_input: &two_inputs,
        ..r
    };
    assert_eq!(check(&r2, b"", NOW), Err(SigError::MultipleSignatures));
    let r3 = SignedRequest {
        signature: &two_sigs,
        ..r
    };
    assert_eq!(check(&r3, b"", NOW), Err(SigError::MultipleSignatures));
    let other_label = s.sig.replacen("sig1", "sig9", 1);
    let r4 = SignedRequest {
        signature: &other_label,
        ..r
    };
    assert_eq!(check(&r4, b"", NOW), Err(SigError::LabelMismatch));
    // Surrounding whitespace (HTTP OWS) is fine.
    let padded_in = format!("  {}\t", s.input);
    let padded_sig = format!(" {} ", s.sig);
    let r5 = SignedRequest {
        signature_input: &padded_in,
        signature: &padded_sig,
        ..r
    };
    assert!(check(&r5, b"", NOW).is_ok());
}

#[test]
fn sign_refuses_what_verify_would_refuse() {
    for (method, uri, keyid, nonce) in [
        ("GET", "/relative", "k", "n"),
        ("G ET", URI, "k", "n"),
        ("GET", URI, "", "n"),
        ("GET", URI, "k", ""),
        ("GET", URI, "k\n", "n"),
        ("GET", URI, "k", "ñ"),
    ] {
        assert!(
            sign(method, uri, None, keyid, nonce, NOW.0, &SECRET).is_err(),
            "{method} {uri} {keyid:?} {nonce:?}"
        );
    }
    // Quotes and backslashes are escaped and survive the round trip.
    let (input, sig) = sign("GET", URI, None, r#"k"\1"#, "n", NOW.0, &SECRET).unwrap();
    assert!(input.contains(r#"keyid="k\"\\1""#), "{input}");
    let r = SignedRequest {
        method: "GET",
        target_uri: URI,
        signature_input: &input,
        signature: &sig,
        ..Default::default()
    };
    let p = parse(&r).unwrap();
    assert_eq!(p.params.keyid, r#"k"\1"#);
    assert_eq!(verify(&p, &SECRET, NOW, 300), Ok(()));
}

// ---- malformed input ----------------------------------------------------------------

#[test]
fn malformed_fields_are_errors_never_panics() {
    let good = signed("GET", URI, None, "n", NOW.0);
    let garbage_inputs: Vec<String> = vec![
        String::new(),
        " ".into(),
        "sig1".into(),
        "sig1=".into(),
        "sig1=(".into(),
        "sig1=)".into(),
        "sig1=()".into(),
        "sig1=(\"".into(),
        "sig1=(\"@method".into(),
        "sig1=(\"@method\\".into(),
        "sig1=(\"@method\\x\")".into(),
        "sig1=(\"@method\" \"@target-uri\");".into(),
        "sig1=(\"@method\" \"@target-uri\");=1".into(),
        "sig1=(\"@method\" \"@target-uri\");created=".into(),
        "sig1=(\"@method\" \"@target-uri\");created=-".into(),
        "sig1=(\"@method\" \"@target-uri\");created=99999999999999999999".into(),
        "sig1=(\"@method\" \"@target-uri\");created=1;keyid=\"".into(),
        "sig1=(\"@method\" \"@target-uri\");created=1;keyid=:".into(),
        "sig1=(\"@method\" \"@target-uri\");created=1;keyid=:!!:".into(),
        "sig1=(\"@method\" \"@target-uri\");created=1;keyid=?2".into(),
        "sig1=(\"@method\" \"@target-uri\");created=1;keyid=?".into(),
        "sig1=(\"@method\" \"@target-uri\") ;created=1".into(),
        "sig1=(\"@method\" \"@target-uri\");created=1,".into(),
        "sig1=(\"@method\" \"@target-uri\");created=1 x".into(),
        "SIG1=(\"@method\")".into(),
        "1sig=(\"@method\")".into(),
        "sig1=\"@method\"".into(),
        "sig1=((\"@method\"))".into(),
        "sig1=(\"é\")".into(),
        "sig1=(\"\u{0}\")".into(),
        "é=()".into(),
        "\u{feff}sig1=()".into(),
        format!("sig1=({})", "\"@method\" ".repeat(2000)),
        format!("sig1=(\"@method\" \"@target-uri\"){}", ";a=1".repeat(20)),
        format!("{}=()", "a".repeat(100)),
        "sig1=(\"@method\" \"@target-uri\");created=1;keyid=\"k\";nonce=\"n\"".repeat(100),
    ];
    let garbage_sigs: Vec<String> = vec![
        String::new(),
        "sig1".into(),
        "sig1=".into(),
        "sig1=:".into(),
        "sig1=:AAA".into(),
        "sig1=:A:".into(),
        "sig1=:AB=C:".into(),
        "sig1=:AAAA:;x=1".into(),
        "sig1=:AAAA: x".into(),
        "sig1=abc".into(),
        "sig1=?1".into(),
        "sig1=:é:".into(),
        format!("sig1=:{}:", "A".repeat(MAX_HEADER_LEN)),
    ];
    for gi in &garbage_inputs {
        let r = SignedRequest {
            signature_input: gi,
            ..req("GET", URI, &good)
        };
        assert!(check(&r, b"", NOW).is_err(), "input {gi:?}");
    }
    for gs in &garbage_sigs {
        let r = SignedRequest {
            signature: gs,
            ..req("GET", URI, &good)
        };
        assert!(check(&r, b"", NOW).is_err(), "signature {gs:?}");
    }
    // Every truncation and single-byte change of valid fields: an error, never a panic.
    for field in [&good.input, &good.sig] {
        for i in 0..field.len() {
            let (a, b) = (
                field[..i].to_owned(),
                format!("{}{}", &field[..i], &field[i + 1..]),
            );
            // RFC 8941 §4.2.7: a byte sequence without its `=` padding is still valid.
            let b = if field[i..].starts_with('=') {
                a.clone()
            } else {
                b
            };
            for m in [a, b] {
                let r = if std::ptr::eq(field, &good.input) {
                    SignedRequest {
                        signature_input: &m,
                        ..req("GET", URI, &good)
                    }
                } else {
                    SignedRequest {
                        signature: &m,
                        ..req("GET", URI, &good)
                    }
                };
                assert!(check(&r, b"", NOW).is_err(), "{m:?}");
            }
        }
    }
    let unpadded = good.sig.replace('=', "");
    let unpadded = unpadded.replacen("sig1", "sig1=", 1);
    let r = SignedRequest {
        signature: &unpadded,
        ..req("GET", URI, &good)
    };
    assert!(check(&r, b"", NOW).is_ok(), "{unpadded}");
    // Oversized fields are refused before parsing.
    let big = "a".repeat(MAX_HEADER_LEN + 1);
    let r = SignedRequest {
        signature_input: &big,
        ..req("GET", URI, &good)
    };
    assert_eq!(check(&r, b"", NOW), Err(SigError::TooLarge));
    let long_uri = format!("https://h/{}", "a".repeat(9000));
    let r = req("GET", &long_uri, &good);
    assert_eq!(check(&r, b"", NOW), Err(SigError::TooLarge));
}

// ---- Content-Digest ------------------------------------------------------------------

#[test]
fn content_digest_rfc9530_examples() {
    let body = br#"{"hello": "world"}"#;
    assert_eq!(
        content_digest(body),
        "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
    );
    assert!(check_content_digest(
        "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:",
        body
    ));
    assert!(check_content_digest(
        "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
        body
    ));
    assert!(!check_content_digest(
        "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:",
        b"other"
    ));
    assert!(!check_content_digest(&"a".repeat(MAX_HEADER_LEN + 1), body));
    assert!(!check_content_digest(
        &format!("{}, sha-256=:AAAA:", "x=:AAAA:, ".repeat(8)),
        body
    ));
}

// ---- shared vectors ------------------------------------------------------------------

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/vectors/httpsig.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn variant(e: &impl std::fmt::Debug) -> String {
    let d = format!("{e:?}");
    d.split('(').next().unwrap_or_default().to_owned()
}

#[test]
fn vector_rfc9421_b25() {
    let v = vectors();
    let c = &v["rfc9421_b25"];
    let secret = STANDARD.decode(c["secret_b64"].as_str().unwrap()).unwrap();
    let sig = sign_base(c["signature_base"].as_str().unwrap(), &secret);
    assert_eq!(STANDARD.encode(sig), c["signature_b64"].as_str().unwrap());
    assert_eq!(c["signature_base"].as_str().unwrap(), RFC_BASE);
}

#[test]
fn vector_content_digests() {
    let v = vectors();
    for case in v["content_digest"].as_array().unwrap() {
        let header = case["header"].as_str().unwrap();
        let body = case["body"].as_str().unwrap().as_bytes();
        assert_eq!(
            check_content_digest(header, body),
            case["ok"].as_bool().unwrap(),
            "{header}"
        );
    }
}

#[test]
fn vector_requests() {
    let v = vectors();
    let cases = v["requests"].as_array().unwrap();
    assert!(cases.len() >= 50, "{} cases", cases.len());
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let r = &case["request"];
        let req = SignedRequest {
            method: r["method"].as_str().unwrap(),
            target_uri: r["target_uri"].as_str().unwrap(),
            content_digest: r["content_digest"].as_str(),
            content_type: r["content_type"].as_str(),
            content_length: r["content_length"].as_str(),
            has_body: r["has_body"].as_bool().unwrap(),
            signature_input: r["signature_input"].as_str().unwrap(),
            signature: r["signature"].as_str().unwrap(),
        };
        let body = r["body"].as_str().unwrap().as_bytes();
        let secret = STANDARD
            .decode(case["secret_b64"].as_str().unwrap())
            .unwrap();
        let known = case["keyid_known"].as_bool().unwrap();
        let lookup = |_: &str| known.then(|| secret.clone());
        let now = UnixTime(case["now"].as_u64().unwrap());
        let window = case["window"].as_u64().unwrap();
        let got = verify_request(&req, body, lookup, &ReplayCache::new(10), now, window);
        let expect = &case["expect"];
        match (&got, expect.get("ok"), expect.get("error")) {
            (Ok(_), Some(ok), None) => {
                let parsed = parse(&SignedRequest {
                    has_body: req.has_body || !body.is_empty(),
                    ..req
                })
                .unwrap();
                assert_eq!(parsed.base, ok["base"].as_str().unwrap(), "{name}");
            }
            (Err(e), None, Some(want)) => assert_eq!(variant(e), want.as_str().unwrap(), "{name}"),
            _ => panic!("{name}: got {got:?}, expected {expect}"),
        }
    }
}

#[test]
fn defaults() {
    assert_eq!(DEFAULT_WINDOW, 300);
    assert_eq!(httpsig::ALG, "hmac-sha256");
}

/// `verify_head` decides everything but the body from the fields alone: a server calls it
/// before reading the body, so only holders of a client secret get a body buffered.
#[test]
fn verify_head_checks_all_but_the_body() {
    use tessera_core::httpsig::verify_head;
    let s = signed("POST", URI, Some(BODY), "n-head", NOW.0);
    let r = req("POST", URI, &s);
    let head = verify_head(&r, lookup, NOW, DEFAULT_WINDOW).unwrap();
    assert_eq!(head.params.keyid, "svc-1");
    assert!(head.body_allowed());
    // The body is checked later against the digest the signature covered.
    assert_eq!(head.check_body(BODY), Ok(()));
    assert_eq!(head.check_body(b"{}"), Err(SigError::DigestMismatch));
    assert_eq!(head.check_body(b""), Err(SigError::DigestMismatch));

    // Unknown key id and wrong secret: refused before any body, with the same error.
    let none = |_: &str| None::<[u8; 32]>;
    assert_eq!(
        verify_head(&r, none, NOW, DEFAULT_WINDOW),
        Err(SigError::BadSignature)
    );
    let wrong = |_: &str| Some([0x11u8; 32]);
    assert_eq!(
        verify_head(&r, wrong, NOW, DEFAULT_WINDOW),
        Err(SigError::BadSignature)
    );
    // Outside the window.
    assert_eq!(
        verify_head(&r, lookup, NOW.plus(DEFAULT_WINDOW + 1), DEFAULT_WINDOW),
        Err(SigError::Stale)
    );
    // A body announced but not covered by the signature.
    let g = signed("POST", URI, None, "n-nocover", NOW.0);
    let announced = SignedRequest {
        has_body: true,
        ..req("POST", URI, &g)
    };
    assert_eq!(
        verify_head(&announced, lookup, NOW, DEFAULT_WINDOW),
        Err(SigError::MissingComponent("content-digest"))
    );
    // Covered but the field is missing, or names no supported algorithm.
    let missing = SignedRequest {
        content_digest: None,
        ..r
    };
    assert!(verify_head(&missing, lookup, NOW, DEFAULT_WINDOW).is_err());
    let md5 = "md5=:AAAAAAAAAAAAAAAAAAAAAA==:".to_owned();
    let (input, sig) = sign("POST", URI, Some(&md5), "svc-1", "n-md5", NOW.0, &SECRET).unwrap();
    let weak = SignedRequest {
        method: "POST",
        target_uri: URI,
        content_digest: Some(&md5),
        has_body: true,
        signature_input: &input,
        signature: &sig,
        ..Default::default()
    };
    assert_eq!(
        verify_head(&weak, lookup, NOW, DEFAULT_WINDOW),
        Err(SigError::DigestMismatch)
    );

    // No digest covered: only an empty body passes, so nothing needs buffering.
    let head = verify_head(&req("POST", URI, &g), lookup, NOW, DEFAULT_WINDOW).unwrap();
    assert!(!head.body_allowed());
    assert_eq!(head.check_body(b""), Ok(()));
    assert!(head.check_body(b"x").is_err());
}
