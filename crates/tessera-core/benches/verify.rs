//! The per-request check next to the raw primitive it is built on, in one run.
//!
//! `cargo bench -p tessera-core --bench verify`
//!
//! Rows: full verify (split-cookie reassembly, header match, signature, claims, iss/aud/
//! time checks, denylist of 1 000 000 revoked sessions) for HS256 and EdDSA, against raw
//! HMAC-SHA256 and raw Ed25519 verification of the same signing input.
// `criterion_main!` defines an undocumented `pub fn main`.
#![allow(missing_docs)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use ring::{hmac, signature};
use tessera_core::csrf::CsrfKey;
use tessera_core::{AccessClaims, Algorithm, KeyRing, SessionId, SigningKey, TokenParts, Verifier};

mod common;
use common::{claims, denylist, signed, NOW};

fn bench(c: &mut Criterion) {
    let verifier = Verifier::new("https://app.example.com", "https://app.example.com", 30);
    let deny = denylist(1_000_000);
    let mut g = c.benchmark_group("verify");

    for alg in [Algorithm::HS256, Algorithm::EdDSA] {
        let s = signed(alg);
        let name = alg.name();

        g.bench_function(format!("{name}/tessera_full_check_split_cookie"), |b| {
            b.iter(|| {
                let parts = TokenParts::from_split(black_box(&s.payload), black_box(&s.sig_cookie))
                    .unwrap();
                s.ring.verify_parts(parts, &verifier, &deny, NOW).unwrap()
            })
        });
        let cache = tessera_core::VerifyCache::new(10_000);
        g.bench_function(format!("{name}/tessera_cached_check_split_cookie"), |b| {
            b.iter(|| {
                let parts = TokenParts::from_split(black_box(&s.payload), black_box(&s.sig_cookie))
                    .unwrap();
                s.ring
                    .verify_parts_cached(parts, &verifier, &deny, NOW, &cache)
                    .unwrap()
            })
        });
        g.bench_function(format!("{name}/tessera_full_check_bearer"), |b| {
            b.iter(|| {
                s.ring
                    .verify(black_box(&s.token), &verifier, &deny, NOW)
                    .unwrap()
            })
        });
        match alg {
            Algorithm::HS256 => {
                let k = hmac::Key::new(hmac::HMAC_SHA256, &s.secret);
                g.bench_function(format!("{name}/raw_hmac_sha256_verify"), |b| {
                    b.iter(|| {
                        hmac::verify(&k, black_box(s.signing_input.as_bytes()), black_box(&s.sig))
                            .unwrap()
                    })
                });
            }
            Algorithm::EdDSA => {
                let jwk = s.ring.active().unwrap().public_jwk().unwrap();
                let public = tessera_core::b64::decode(&jwk.x).unwrap();
                g.bench_function(format!("{name}/raw_ed25519_verify"), |b| {
                    b.iter(|| {
                        signature::UnparsedPublicKey::new(&signature::ED25519, &public)
                            .verify(black_box(s.signing_input.as_bytes()), black_box(&s.sig))
                            .unwrap()
                    })
                });
            }
        }
    }
    g.finish();

    // The pieces of the full check: claims parsing (ours vs serde_json's derive, same
    // verdicts) and base64url decoding of the payload (`b64::decode_slice`, base64-simd,
    // vs the base64 crate).
    let mut g = c.benchmark_group("parts");
    let key = SigningKey::generate(Algorithm::HS256, NOW).unwrap();
    let token = KeyRing::new(vec![key], NOW).sign(&claims()).unwrap();
    let payload = token.split('.').nth(1).unwrap().to_owned();
    let json = tessera_core::b64::decode(&payload).unwrap();
    let (claims_cookie, sig_cookie) = TokenParts::split_cookies(&token).unwrap();
    g.bench_function("split_cookie_reassembly", |b| {
        b.iter(|| {
            TokenParts::from_split(black_box(&claims_cookie), black_box(&sig_cookie)).unwrap()
        })
    });
    g.bench_function("claims_parse/tessera", |b| {
        b.iter(|| AccessClaims::from_json(black_box(&json)).unwrap())
    });
    g.bench_function("claims_parse/serde_json", |b| {
        b.iter(|| serde_json::from_slice::<AccessClaims>(black_box(&json)).unwrap())
    });
    let mut buf = [0u8; 1024];
    g.bench_function("payload_b64_decode/tessera_base64_simd", |b| {
        b.iter(|| tessera_core::b64::decode_slice(black_box(&payload), &mut buf).unwrap())
    });
    g.bench_function("payload_b64_decode/base64_crate", |b| {
        use base64::Engine;
        b.iter(|| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode_slice(black_box(&payload), &mut buf)
                .unwrap()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("csrf");
    let csrf = CsrfKey::new(&[7; 32]);
    let sid = SessionId([3; 16]);
    let t = csrf.issue(&sid);
    g.bench_function("csrf_token_check", |b| {
        b.iter(|| assert!(csrf.verify(black_box(&sid), black_box(&t))))
    });
    g.finish();

    // DPoP proof check (parse, header rules, jwk, signature, claims) next to the raw
    // signature verification of the same proof bytes.
    let mut g = c.benchmark_group("dpop");
    use tessera_core::dpop::{verify_proof, DpopAlg, DpopCheck, DpopKey};
    let htu = "https://app.example.com/api/notes";
    for alg in [DpopAlg::ES256, DpopAlg::EdDSA] {
        let key = DpopKey::generate(alg).unwrap();
        let at = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhIn0.c2ln";
        let proof = key
            .proof("GET", htu, NOW.0, "jti-1", Some(at), None)
            .unwrap();
        let check = DpopCheck {
            method: "GET",
            htu,
            access_token: Some(at),
            now: NOW,
            max_age: 60,
            max_skew: 5,
            nonce: None,
        };
        g.bench_function(format!("{}/tessera_proof_check", alg.name()), |b| {
            b.iter(|| verify_proof(black_box(&proof), &check).unwrap())
        });
        let (input, sig_b64) = proof.rsplit_once('.').unwrap();
        let sig = tessera_core::b64::decode(sig_b64).unwrap();
        let jwk: serde_json::Value = serde_json::from_str(&key.jwk().to_json()).unwrap();
        match alg {
            DpopAlg::ES256 => {
                let mut point = vec![4u8];
                point.extend(tessera_core::b64::decode(jwk["x"].as_str().unwrap()).unwrap());
                point.extend(tessera_core::b64::decode(jwk["y"].as_str().unwrap()).unwrap());
                g.bench_function("ES256/raw_p256_verify", |b| {
                    b.iter(|| {
                        signature::UnparsedPublicKey::new(
                            &signature::ECDSA_P256_SHA256_FIXED,
                            &point,
                        )
                        .verify(black_box(input.as_bytes()), black_box(&sig))
                        .unwrap()
                    })
                });
            }
            DpopAlg::EdDSA => {
                let x = tessera_core::b64::decode(jwk["x"].as_str().unwrap()).unwrap();
                g.bench_function("EdDSA/raw_ed25519_verify", |b| {
                    b.iter(|| {
                        signature::UnparsedPublicKey::new(&signature::ED25519, &x)
                            .verify(black_box(input.as_bytes()), black_box(&sig))
                            .unwrap()
                    })
                });
            }
        }
    }
    g.finish();

    // RFC 9421 request signature (parse both fields, build the signature base, HMAC,
    // time window) next to raw HMAC-SHA256 over the same signature base.
    let mut g = c.benchmark_group("httpsig");
    {
        use tessera_core::httpsig;
        let secret = [9u8; 32];
        let uri = "https://app.example.com/api/notes?limit=10";
        let digest = httpsig::content_digest(b"{\"text\":\"hello\"}");
        let (input, sig) = httpsig::sign(
            "POST",
            uri,
            Some(&digest),
            "client-1",
            "nonce-1",
            NOW.0,
            &secret,
        )
        .unwrap();
        let req = httpsig::SignedRequest {
            method: "POST",
            target_uri: uri,
            content_digest: Some(&digest),
            has_body: true,
            signature_input: &input,
            signature: &sig,
            ..Default::default()
        };
        g.bench_function("tessera_signature_check", |b| {
            b.iter(|| {
                let parsed = httpsig::parse(black_box(&req)).unwrap();
                httpsig::verify(&parsed, &secret, NOW, 300).unwrap()
            })
        });
        let parsed = httpsig::parse(&req).unwrap();
        let k = hmac::Key::new(hmac::HMAC_SHA256, &secret);
        g.bench_function("raw_hmac_sha256_verify", |b| {
            b.iter(|| {
                hmac::verify(
                    &k,
                    black_box(parsed.base.as_bytes()),
                    black_box(&parsed.signature),
                )
                .unwrap()
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("denylist");
    let probe = SessionId([0xAB; 16]);
    let user = tessera_core::UserId([0xCD; 16]);
    g.bench_function("lookup_in_1m", |b| {
        b.iter(|| deny.denies(black_box(&probe), &user, NOW))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
