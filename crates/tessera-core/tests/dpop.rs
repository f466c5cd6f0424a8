//! DPoP proofs (RFC 9449): every way a proof must be refused, the ways it is accepted, and
//! the shared vectors in `testdata/vectors/dpop.json`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ring::hmac;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use tessera_core::dpop::{
    self, ath, jwk_thumbprint, normalize_htu, verify_proof, verify_proof_once, DpopAlg, DpopCheck,
    DpopError, DpopJwk, DpopKey, MAX_PROOF_LEN,
};
use tessera_core::replay::ReplayCache;
use tessera_core::{b64, UnixTime};

const NOW: UnixTime = UnixTime(1_700_000_000);
const HTU: &str = "https://api.example.com/v1/items";
const TOKEN: &str = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhbGljZSJ9.c2ln";

fn check<'a>() -> DpopCheck<'a> {
    DpopCheck {
        method: "GET",
        htu: HTU,
        access_token: None,
        now: NOW,
        max_age: 60,
        max_skew: 5,
        nonce: None,
    }
}

/// A key made with ring directly (not through `DpopKey`), so signing in these tests does
/// not share code with the verifier.
enum TestKey {
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

impl TestKey {
    fn es256() -> Self {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        TestKey::Ec(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), &rng).unwrap(),
        )
    }

    fn eddsa() -> Self {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        TestKey::Ed(Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap())
    }

    fn alg(&self) -> &'static str {
        match self {
            TestKey::Ec(_) => "ES256",
            TestKey::Ed(_) => "EdDSA",
        }
    }

    fn jwk(&self) -> Value {
        match self {
            TestKey::Ec(k) => {
                let p = k.public_key().as_ref();
                assert_eq!((p.len(), p[0]), (65, 4));
                json!({"kty": "EC", "crv": "P-256", "x": b64::encode(&p[1..33]), "y": b64::encode(&p[33..])})
            }
            TestKey::Ed(k) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64::encode(k.public_key().as_ref())})
            }
        }
    }

    /// The RFC 7638 thumbprint computed here from the JSON members, independently.
    fn jkt(&self) -> String {
        let j = self.jwk();
        let canonical = match self {
            TestKey::Ec(_) => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                j["x"].as_str().unwrap(),
                j["y"].as_str().unwrap()
            ),
            TestKey::Ed(_) => format!(
                r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                j["x"].as_str().unwrap()
            ),
        };
        b64::encode(ring::digest::digest(
            &ring::digest::SHA256,
            canonical.as_bytes(),
        ))
    }

    fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": self.alg(), "jwk": self.jwk()})
    }

    fn sign_raw(&self, header: &str, payload: &str) -> String {
        let input = format!("{}.{}", b64::encode(header), b64::encode(payload));
        let sig = match self {
            TestKey::Ec(k) => k
                .sign(&SystemRandom::new(), input.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
            TestKey::Ed(k) => k.sign(input.as_bytes()).as_ref().to_vec(),
        };
        format!("{input}.{}", b64::encode(sig))
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        self.sign_raw(&header.to_string(), &claims.to_string())
    }

    fn proof(&self, claims: &Value) -> String {
        self.sign(&self.header(), claims)
    }
}

fn claims() -> Value {
    json!({"jti": "jti-1", "htm": "GET", "htu": HTU, "iat": NOW.0})
}

fn with(mut v: Value, k: &str, x: Value) -> Value {
    v[k] = x;
    v
}

fn without(mut v: Value, k: &str) -> Value {
    v.as_object_mut().unwrap().remove(k);
    v
}

fn keys() -> [TestKey; 2] {
    [TestKey::es256(), TestKey::eddsa()]
}

#[test]
fn happy_path_es256_and_eddsa() {
    for key in keys() {
        let proof = key.proof(&claims());
        let v = verify_proof(&proof, &check()).unwrap_or_else(|e| panic!("{}: {e:?}", key.alg()));
        assert_eq!(v.jkt, key.jkt());
        assert_eq!(v.jkt.len(), 43);
        assert_eq!(v.jti, "jti-1");
        assert_eq!(v.iat, NOW.0);
    }
}

#[test]
fn happy_path_with_access_token_and_nonce() {
    for key in keys() {
        let c = with(
            with(claims(), "ath", json!(ath(TOKEN))),
            "nonce",
            json!("srv-nonce"),
        );
        let proof = key.proof(&c);
        let chk = DpopCheck {
            access_token: Some(TOKEN),
            nonce: Some("srv-nonce"),
            ..check()
        };
        assert_eq!(verify_proof(&proof, &chk).unwrap().jkt, key.jkt());
    }
}

#[test]
fn dpop_key_helper_makes_accepted_proofs() {
    for alg in [DpopAlg::ES256, DpopAlg::EdDSA] {
        let key = DpopKey::generate(alg).unwrap();
        let proof = key
            .proof("POST", HTU, NOW.0, "j", Some(TOKEN), Some("n"))
            .unwrap();
        let chk = DpopCheck {
            method: "POST",
            access_token: Some(TOKEN),
            nonce: Some("n"),
            ..check()
        };
        let v = verify_proof(&proof, &chk).unwrap();
        assert_eq!(v.jkt, key.thumbprint());
        assert_eq!(v.jkt, jwk_thumbprint(key.jwk()));
        assert_eq!(key.alg(), alg);
    }
}

#[test]
fn wrong_method_is_refused_case_sensitively() {
    for key in keys() {
        let proof = key.proof(&claims());
        let post = DpopCheck {
            method: "POST",
            ..check()
        };
        assert_eq!(verify_proof(&proof, &post), Err(DpopError::MethodMismatch));
        let lower = key.proof(&with(claims(), "htm", json!("get")));
        assert_eq!(
            verify_proof(&lower, &check()),
            Err(DpopError::MethodMismatch)
        );
    }
}

#[test]
fn wrong_url_is_refused() {
    let key = TestKey::eddsa();
    let proof = key.proof(&claims());
    for other in [
        "https://api.example.com/v1/items/",
        "https://api.example.com/v1/other",
        "https://api.example.com:8443/v1/items",
        "http://api.example.com/v1/items",
        "https://evil.example.com/v1/items",
        "https://api.example.com/V1/items",
    ] {
        let htu = normalize_htu(other).unwrap();
        let chk = DpopCheck {
            htu: &htu,
            ..check()
        };
        assert_eq!(
            verify_proof(&proof, &chk),
            Err(DpopError::UrlMismatch),
            "{other}"
        );
    }
    // An unparsable htu on either side never matches.
    for bad in [
        "/v1/items",
        "https://user@api.example.com/v1/items",
        "ftp://api.example.com/v1/items",
    ] {
        let p = key.proof(&with(claims(), "htu", json!(bad)));
        assert_eq!(
            verify_proof(&p, &check()),
            Err(DpopError::UrlMismatch),
            "{bad}"
        );
    }
    let chk = DpopCheck {
        htu: "not a url",
        ..check()
    };
    assert_eq!(verify_proof(&proof, &chk), Err(DpopError::UrlMismatch));
}

#[test]
fn htu_normalisation_query_fragment_case_and_default_port() {
    let key = TestKey::es256();
    // The client's htu carries a query, fragment, default port and upper-case host…
    let proof = key.proof(&with(
        claims(),
        "htu",
        json!("HTTPS://API.Example.COM:443/v1/items?page=2#frag"),
    ));
    // …and the server's URL has its own query: both normalise to the same thing.
    let htu = normalize_htu("https://api.example.com/v1/items?page=3").unwrap();
    assert_eq!(htu, HTU);
    let chk = DpopCheck {
        htu: &htu,
        ..check()
    };
    assert!(verify_proof(&proof, &chk).is_ok());
    // Non-default ports and path case are significant.
    assert_eq!(
        normalize_htu("https://Api.Example.com:8443/A?b").as_deref(),
        Some("https://api.example.com:8443/A")
    );
    assert_eq!(normalize_htu("http://h:80").as_deref(), Some("http://h/"));
    assert_eq!(
        normalize_htu("http://h:443/").as_deref(),
        Some("http://h:443/")
    );
}

#[test]
fn iat_window_is_enforced() {
    let key = TestKey::eddsa();
    let at = |iat: u64| verify_proof(&key.proof(&with(claims(), "iat", json!(iat))), &check());
    assert!(at(NOW.0 - 60).is_ok(), "exactly max_age old");
    assert_eq!(at(NOW.0 - 61), Err(DpopError::Stale));
    assert_eq!(at(0), Err(DpopError::Stale));
    assert!(at(NOW.0 + 5).is_ok(), "exactly max_skew ahead");
    assert_eq!(at(NOW.0 + 6), Err(DpopError::FromFuture));
    assert_eq!(at(u64::MAX), Err(DpopError::FromFuture));
    // Mistyped iat.
    for bad in [
        json!("1700000000"),
        json!(1.7e9),
        json!(-1),
        json!(null),
        json!([1]),
    ] {
        let p = key.proof(&with(claims(), "iat", bad.clone()));
        assert_eq!(
            verify_proof(&p, &check()),
            Err(DpopError::BadClaims),
            "{bad}"
        );
    }
    let p = key.proof(&without(claims(), "iat"));
    assert_eq!(verify_proof(&p, &check()), Err(DpopError::BadClaims));
}

#[test]
fn ath_is_required_and_must_match_when_a_token_is_presented() {
    let key = TestKey::es256();
    let chk = DpopCheck {
        access_token: Some(TOKEN),
        ..check()
    };
    let no_ath = key.proof(&claims());
    assert_eq!(verify_proof(&no_ath, &chk), Err(DpopError::AthMissing));
    let wrong = key.proof(&with(claims(), "ath", json!(ath("another token"))));
    assert_eq!(verify_proof(&wrong, &chk), Err(DpopError::AthMismatch));
    let null = key.proof(&with(claims(), "ath", json!(null)));
    assert_eq!(verify_proof(&null, &chk), Err(DpopError::BadClaims));
    let right = key.proof(&with(claims(), "ath", json!(ath(TOKEN))));
    assert!(verify_proof(&right, &chk).is_ok());
    // Without a token (token endpoint), ath is not required.
    assert!(verify_proof(&no_ath, &check()).is_ok());
    // ath is unpadded base64url of SHA-256.
    assert_eq!(
        ath(TOKEN),
        b64::encode(ring::digest::digest(
            &ring::digest::SHA256,
            TOKEN.as_bytes()
        ))
    );
}

#[test]
fn nonce_when_required() {
    let key = TestKey::eddsa();
    let chk = DpopCheck {
        nonce: Some("n-1"),
        ..check()
    };
    assert_eq!(
        verify_proof(&key.proof(&claims()), &chk),
        Err(DpopError::NonceRequired)
    );
    let p = key.proof(&with(claims(), "nonce", json!("n-2")));
    assert_eq!(verify_proof(&p, &chk), Err(DpopError::NonceMismatch));
    let p = key.proof(&with(claims(), "nonce", json!("n-1")));
    assert!(verify_proof(&p, &chk).is_ok());
}

#[test]
fn typ_must_be_dpop_jwt() {
    let key = TestKey::eddsa();
    for typ in [
        "JWT",
        "at+jwt",
        "DPOP+JWT",
        "dpop+jwt ",
        "application/dpop+jwt",
        "",
    ] {
        let h = with(key.header(), "typ", json!(typ));
        assert_eq!(
            verify_proof(&key.sign(&h, &claims()), &check()),
            Err(DpopError::BadType),
            "{typ}"
        );
    }
    let h = without(key.header(), "typ");
    assert_eq!(
        verify_proof(&key.sign(&h, &claims()), &check()),
        Err(DpopError::BadHeader)
    );
    let h = with(key.header(), "typ", json!(1));
    assert_eq!(
        verify_proof(&key.sign(&h, &claims()), &check()),
        Err(DpopError::BadHeader)
    );
}

#[test]
fn only_es256_and_eddsa_are_allowed() {
    let key = TestKey::eddsa();
    for alg in [
        "none", "None", "NONE", "HS256", "RS256", "PS256", "ES384", "ES256K", "Ed25519", "eddsa",
        "",
    ] {
        let h = with(key.header(), "alg", json!(alg));
        assert_eq!(
            verify_proof(&key.sign(&h, &claims()), &check()),
            Err(DpopError::UnsupportedAlgorithm),
            "{alg}"
        );
    }
    // alg=none with the empty signature it would carry: not even a well-formed JWS here.
    let h = with(key.header(), "alg", json!("none"));
    let unsigned = format!(
        "{}.{}.",
        b64::encode(h.to_string()),
        b64::encode(claims().to_string())
    );
    assert_eq!(verify_proof(&unsigned, &check()), Err(DpopError::Malformed));
    // HS256 "signed" with the public key bytes as the HMAC secret (the classic confusion).
    let jwk = key.jwk();
    let secret = b64::decode(jwk["x"].as_str().unwrap()).unwrap();
    let h = with(key.header(), "alg", json!("HS256"));
    let input = format!(
        "{}.{}",
        b64::encode(h.to_string()),
        b64::encode(claims().to_string())
    );
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &secret),
        input.as_bytes(),
    );
    let forged = format!("{input}.{}", b64::encode(tag));
    assert_eq!(
        verify_proof(&forged, &check()),
        Err(DpopError::UnsupportedAlgorithm)
    );
}

#[test]
fn alg_must_match_the_key_type() {
    let (ec, ed) = (TestKey::es256(), TestKey::eddsa());
    let h = with(ec.header(), "alg", json!("EdDSA"));
    assert_eq!(
        verify_proof(&ec.sign(&h, &claims()), &check()),
        Err(DpopError::AlgorithmKeyMismatch)
    );
    let h = with(ed.header(), "alg", json!("ES256"));
    assert_eq!(
        verify_proof(&ed.sign(&h, &claims()), &check()),
        Err(DpopError::AlgorithmKeyMismatch)
    );
    // A jwk that claims another alg or use.
    let h = with(ed.header(), "jwk", with(ed.jwk(), "alg", json!("ES256")));
    assert_eq!(
        verify_proof(&ed.sign(&h, &claims()), &check()),
        Err(DpopError::AlgorithmKeyMismatch)
    );
    let h = with(ed.header(), "jwk", with(ed.jwk(), "use", json!("enc")));
    assert_eq!(
        verify_proof(&ed.sign(&h, &claims()), &check()),
        Err(DpopError::AlgorithmKeyMismatch)
    );
    // Another key's jwk in the header: the signature does not verify.
    let h = with(ed.header(), "jwk", TestKey::eddsa().jwk());
    assert_eq!(
        verify_proof(&ed.sign(&h, &claims()), &check()),
        Err(DpopError::BadSignature)
    );
}

#[test]
fn private_key_members_are_refused() {
    for key in keys() {
        for member in ["d", "p", "q", "dp", "dq", "qi", "k", "oth"] {
            let h = with(key.header(), "jwk", with(key.jwk(), member, json!("AAAA")));
            assert_eq!(
                verify_proof(&key.sign(&h, &claims()), &check()),
                Err(DpopError::PrivateKeyInHeader),
                "{} {member}",
                key.alg()
            );
        }
    }
}

#[test]
fn bad_keys_are_refused() {
    let ec = TestKey::es256();
    let cases = [
        without(ec.jwk(), "y"),
        with(ec.jwk(), "crv", json!("P-384")),
        with(ec.jwk(), "kty", json!("OKP")),
        with(ec.jwk(), "x", json!("AAAA")),
        with(
            ec.jwk(),
            "x",
            json!(format!("{}=", ec.jwk()["x"].as_str().unwrap())),
        ),
    ];
    for jwk in cases {
        let h = with(ec.header(), "jwk", jwk.clone());
        let r = verify_proof(&ec.sign(&h, &claims()), &check());
        assert!(matches!(r, Err(DpopError::BadKey)), "{jwk}: {r:?}");
    }
    // Missing jwk.
    let h = without(ec.header(), "jwk");
    assert_eq!(
        verify_proof(&ec.sign(&h, &claims()), &check()),
        Err(DpopError::BadKey)
    );
    // Unknown jwk members (RSA's n/e) and a jwk that is not an object.
    let h = with(
        ec.header(),
        "jwk",
        json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}),
    );
    assert_eq!(
        verify_proof(&ec.sign(&h, &claims()), &check()),
        Err(DpopError::BadHeader)
    );
    let h = with(ec.header(), "jwk", json!("key"));
    assert_eq!(
        verify_proof(&ec.sign(&h, &claims()), &check()),
        Err(DpopError::BadHeader)
    );
}

#[test]
fn forbidden_header_members_are_refused() {
    let key = TestKey::eddsa();
    for (k, v) in [
        ("kid", json!("k1")),
        ("jku", json!("https://evil.example/jwks.json")),
        ("x5u", json!("https://evil.example/cert.pem")),
        ("x5c", json!(["MIIB"])),
        ("crit", json!(["exp"])),
        ("b64", json!(false)),
        ("cty", json!("JWT")),
    ] {
        let h = with(key.header(), k, v);
        assert_eq!(
            verify_proof(&key.sign(&h, &claims()), &check()),
            Err(DpopError::BadHeader),
            "{k}"
        );
    }
    // kid instead of jwk.
    let h = with(without(key.header(), "jwk"), "kid", json!("k1"));
    assert_eq!(
        verify_proof(&key.sign(&h, &claims()), &check()),
        Err(DpopError::BadHeader)
    );
}

#[test]
fn duplicate_json_members_are_refused() {
    let key = TestKey::eddsa();
    let jwk = key.jwk().to_string();
    let dup_header = format!(r#"{{"typ":"dpop+jwt","alg":"none","alg":"EdDSA","jwk":{jwk}}}"#);
    assert_eq!(
        verify_proof(&key.sign_raw(&dup_header, &claims().to_string()), &check()),
        Err(DpopError::BadHeader)
    );
    let dup_claims = format!(
        r#"{{"jti":"a","htm":"POST","htm":"GET","htu":"{HTU}","iat":{}}}"#,
        NOW.0
    );
    assert_eq!(
        verify_proof(
            &key.sign_raw(&key.header().to_string(), &dup_claims),
            &check()
        ),
        Err(DpopError::BadClaims)
    );
}

#[test]
fn jti_bounds() {
    let key = TestKey::eddsa();
    for (jti, ok) in [
        (json!(""), false),
        (json!("a"), true),
        (json!("é".repeat(128)), true),
        (json!("a".repeat(129)), false),
        (json!(5), false),
        (json!(null), false),
    ] {
        let r = verify_proof(&key.proof(&with(claims(), "jti", jti.clone())), &check());
        assert_eq!(r.is_ok(), ok, "{jti}: {r:?}");
    }
}

#[test]
fn tampering_anywhere_is_detected() {
    for key in keys() {
        let proof = key.proof(&claims());
        let (h, rest) = proof.split_once('.').unwrap();
        let (_, s) = rest.split_once('.').unwrap();
        // Another payload under the original signature.
        let other = b64::encode(with(claims(), "htm", json!("POST")).to_string());
        let post = DpopCheck {
            method: "POST",
            ..check()
        };
        assert_eq!(
            verify_proof(&format!("{h}.{other}.{s}"), &post),
            Err(DpopError::BadSignature)
        );
        // Every single-character change fails.
        let bytes = proof.as_bytes();
        for i in 0..bytes.len() {
            if bytes[i] == b'.' {
                continue;
            }
            let mut m = bytes.to_vec();
            m[i] = if m[i] == b'A' { b'B' } else { b'A' };
            let m = String::from_utf8(m).unwrap();
            assert!(
                verify_proof(&m, &check()).is_err(),
                "{} position {i}",
                key.alg()
            );
        }
    }
}

#[test]
fn replayed_jti_is_caught_by_the_replay_cache() {
    let cache = ReplayCache::new(1000);
    let key = TestKey::es256();
    let proof = key.proof(&claims());
    let first = verify_proof_once(&proof, &check(), &cache).unwrap();
    assert_eq!(
        verify_proof_once(&proof, &check(), &cache),
        Err(DpopError::Replayed)
    );
    // A new proof reusing the jti (new signature) is still a replay for this key…
    let again = key.proof(&claims());
    assert_ne!(again, proof);
    let later = DpopCheck {
        now: NOW.plus(10),
        ..check()
    };
    assert_eq!(
        verify_proof_once(&again, &later, &cache),
        Err(DpopError::Replayed)
    );
    // …but the same jti from another key is not.
    let other = TestKey::eddsa().proof(&claims());
    assert!(verify_proof_once(&other, &check(), &cache).is_ok());
    // The manual way gives the same answer.
    let v = verify_proof(&proof, &check()).unwrap();
    assert_eq!(v, first);
    assert!(cache
        .check_and_insert(v.replay_key(), v.replay_expires(&check()), NOW)
        .is_err());
    assert_eq!(v.replay_expires(&check()), NOW.plus(60));
    // Once the proof is too old to be accepted, the entry may go.
    assert!(!cache.contains(v.replay_key(), NOW.plus(61)));
    assert_eq!(
        verify_proof_once(
            &proof,
            &DpopCheck {
                now: NOW.plus(61),
                ..check()
            },
            &cache
        ),
        Err(DpopError::Stale)
    );
    // Forged proofs never reach the cache.
    let full = ReplayCache::new(1);
    assert!(verify_proof_once(&format!("{proof}x"), &check(), &full).is_err());
    assert!(full.is_empty());
    assert!(verify_proof_once(&proof, &check(), &full).is_ok());
    assert_eq!(
        verify_proof_once(
            &key.proof(&with(claims(), "jti", json!("jti-2"))),
            &check(),
            &full
        ),
        Err(DpopError::ReplayCacheFull)
    );
}

#[test]
fn shape_and_size_limits() {
    let key = TestKey::eddsa();
    let proof = key.proof(&claims());
    let parts: Vec<&str> = proof.split('.').collect();
    let (h, p, s) = (parts[0], parts[1], parts[2]);
    for bad in [
        format!("{h}.{p}"),
        format!("{h}.{p}.{s}.{s}"),
        format!("{h}.{p}.{s}.{p}.{s}"),
        format!("{h}..{s}"),
        format!(".{p}.{s}"),
        format!("{h}.{p}.{s}="),
        format!("{h}.{p}.{s} "),
        format!("{h}.{p}.+{}", &s[1..]),
        String::new(),
        ".".into(),
        "..".into(),
    ] {
        let r = verify_proof(&bad, &check());
        assert!(
            matches!(r, Err(DpopError::Malformed | DpopError::BadSignature)),
            "{bad}: {r:?}"
        );
    }
    let big = key.proof(&with(claims(), "pad", json!("x".repeat(MAX_PROOF_LEN))));
    assert_eq!(verify_proof(&big, &check()), Err(DpopError::TooLarge));
    assert_eq!(
        verify_proof(&"a".repeat(MAX_PROOF_LEN + 1), &check()),
        Err(DpopError::TooLarge)
    );
    // Just under the cap is fine.
    let pad = MAX_PROOF_LEN - proof.len() - 20;
    let near = key.proof(&with(claims(), "p", json!("x".repeat(pad * 3 / 4))));
    assert!(near.len() <= MAX_PROOF_LEN);
    assert!(verify_proof(&near, &check()).is_ok());
}

#[test]
fn garbage_never_panics() {
    let key = TestKey::eddsa();
    let valid = key.proof(&claims());
    let mut inputs: Vec<String> = vec![
        "\0".into(),
        "é.é.é".into(),
        "eyJ9.eyJ9.eyJ9".into(),
        "e30.e30.e30".into(),
        format!("{}.e30.AA", b64::encode("null")),
        format!("{}.{}.AA", b64::encode("{}"), b64::encode("{}")),
        format!(
            "{}.e30.AA",
            b64::encode(r#"{"typ":"dpop+jwt","alg":"EdDSA","jwk":{}}"#)
        ),
        format!("{}.e30.AA", b64::encode("[".repeat(3000))),
        format!("{}.e30.AA", b64::encode("{\"a\":".repeat(500))),
        valid.replace('.', ".."),
        valid.chars().rev().collect(),
    ];
    for n in 0..200usize {
        let cut = 1 + (n * 7919) % (valid.len() - 1);
        inputs.push(valid[..cut].to_owned());
        inputs.push(format!("{}{}", &valid[cut..], &valid[..cut]));
    }
    for s in &inputs {
        assert!(verify_proof(s, &check()).is_err(), "{s:?}");
    }
}

#[test]
fn debug_of_check_redacts_the_token() {
    let chk = DpopCheck {
        access_token: Some(TOKEN),
        ..check()
    };
    let d = format!("{chk:?}");
    assert!(!d.contains(TOKEN) && d.contains("redacted"), "{d}");
}

// ---- shared vectors -----------------------------------------------------------------

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/vectors/dpop.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn variant(e: &impl std::fmt::Debug) -> String {
    let d = format!("{e:?}");
    d.split('(').next().unwrap_or_default().to_owned()
}

#[test]
fn vector_proofs() {
    let v = vectors();
    let cases = v["proofs"].as_array().unwrap();
    assert!(cases.len() >= 80, "{} cases", cases.len());
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let c = &case["check"];
        let htu = normalize_htu(c["htu"].as_str().unwrap()).unwrap();
        let chk = DpopCheck {
            method: c["method"].as_str().unwrap(),
            htu: &htu,
            access_token: c["access_token"].as_str(),
            now: UnixTime(c["now"].as_u64().unwrap()),
            max_age: c["max_age"].as_u64().unwrap(),
            max_skew: c["max_skew"].as_u64().unwrap(),
            nonce: c["nonce"].as_str(),
        };
        let got = verify_proof(case["proof"].as_str().unwrap(), &chk);
        let expect = &case["expect"];
        match (&got, expect.get("ok"), expect.get("error")) {
            (Ok(p), Some(ok), None) => {
                assert_eq!(p.jkt, ok["jkt"].as_str().unwrap(), "{name}");
                assert_eq!(p.jti, ok["jti"].as_str().unwrap(), "{name}");
                assert_eq!(p.iat, ok["iat"].as_u64().unwrap(), "{name}");
            }
            (Err(e), None, Some(want)) => assert_eq!(variant(e), want.as_str().unwrap(), "{name}"),
            _ => panic!("{name}: got {got:?}, expected {expect}"),
        }
    }
}

#[test]
fn vector_thumbprints_including_rfc8037_a3() {
    let v = vectors();
    let cases = v["thumbprints"].as_array().unwrap();
    assert!(cases
        .iter()
        .any(|c| c["expect"]["ok"] == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"));
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let got = DpopJwk::parse(&case["jwk"].to_string()).map(|k| jwk_thumbprint(&k));
        match (&got, case["expect"].get("ok"), case["expect"].get("error")) {
            (Ok(t), Some(want), None) => assert_eq!(t, want.as_str().unwrap(), "{name}"),
            (Err(e), None, Some(want)) => assert_eq!(variant(e), want.as_str().unwrap(), "{name}"),
            _ => panic!("{name}: got {got:?}"),
        }
    }
    // RFC 8037 A.3 directly, through the public type.
    let x = b64::decode_array::<32>("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo").unwrap();
    assert_eq!(
        jwk_thumbprint(&DpopJwk::Ed25519 { x }),
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );
    // And the RFC 8037 A.1 private key gives that public key.
    let seed = b64::decode_array::<32>("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A").unwrap();
    let key = DpopKey::ed25519_from_seed(&seed).unwrap();
    assert_eq!(
        key.thumbprint(),
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );
}

#[test]
fn vector_htu_and_ath() {
    let v = vectors();
    for case in v["normalize_htu"].as_array().unwrap() {
        let input = case["input"].as_str().unwrap();
        assert_eq!(
            normalize_htu(input).as_deref(),
            case["output"].as_str(),
            "{input}"
        );
    }
    for case in v["ath"].as_array().unwrap() {
        assert_eq!(
            ath(case["access_token"].as_str().unwrap()),
            case["ath"].as_str().unwrap()
        );
    }
}

#[test]
fn module_is_reexported_consistently() {
    // The alg names round-trip and nothing else parses.
    for a in [DpopAlg::ES256, DpopAlg::EdDSA] {
        assert_eq!(DpopAlg::parse(a.name()), Some(a));
    }
    assert_eq!(DpopAlg::parse("es256"), None);
    assert_eq!(dpop::MAX_PROOF_LEN, 4096);
}
