//! The per-request check's targets as ratios that hold on a machine whose speed drifts.
//!
//! `cargo bench -p tessera-core --bench ratio`
//!
//! criterion times one row after another, minutes apart; on a shared virtual machine the
//! speed of scalar code drifts in that time, which moves a ratio of two rows by as much. Here each check and its raw primitive are timed in alternating short batches
//! over the same bytes (the order flips every round), so both see the same machine, and the
//! table gives the ratio of the medians with the 10th and 90th percentiles of the ratios
//! of paired batches.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Instant;

use ring::{hmac, signature};
use tessera_core::totp::{step_at, TotpSecret};
use tessera_core::{Algorithm, TokenParts, Verifier, VerifyCache};

mod common;
use common::{denylist, signed, NOW};

/// Times `a` and `b` in `rounds` alternating batches of `batch` calls; returns the median
/// ns/op of each and the 10th/50th/90th percentiles of the per-round ratio a/b.
fn paired(
    rounds: usize,
    batch: u32,
    mut a: impl FnMut(),
    mut b: impl FnMut(),
) -> (f64, f64, [f64; 3]) {
    let time = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        for _ in 0..batch {
            f();
        }
        t.elapsed().as_nanos() as f64 / f64::from(batch)
    };
    let (mut ta, mut tb, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds / 10 {
        time(&mut a);
        time(&mut b);
    }
    for r in 0..rounds {
        let (x, y) = if r % 2 == 0 {
            let x = time(&mut a);
            (x, time(&mut b))
        } else {
            let y = time(&mut b);
            (time(&mut a), y)
        };
        ta.push(x);
        tb.push(y);
        ratio.push(x / y);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (ma, mb) = (median(&mut ta), median(&mut tb));
    ratio.sort_by(f64::total_cmp);
    let pct = |p: usize| ratio[ratio.len() * p / 100];
    (ma, mb, [pct(10), pct(50), pct(90)])
}

fn row(name: &str, (a, b, r): (f64, f64, [f64; 3]), unit: &str, target: &str) {
    println!(
        "| {name} | {a:.0} ns | {b:.0} ns | {:.2} × | {:.2}–{:.2} × | {unit} | {target} |",
        a / b,
        r[0],
        r[2]
    );
}

fn main() {
    let verifier = Verifier::new("https://app.example.com", "https://app.example.com", 30);
    let deny = denylist(1_000_000);
    println!("| check | check median | primitive median | ratio of medians | paired ratios p10–p90 | primitive | target |");
    println!("|---|---:|---:|---:|---:|---|---|");
    for alg in [Algorithm::HS256, Algorithm::EdDSA] {
        let s = signed(alg);
        let full = || {
            let parts = TokenParts::from_split(black_box(&s.payload), black_box(&s.sig_cookie));
            black_box(
                s.ring
                    .verify_parts(parts.unwrap(), &verifier, &deny, NOW)
                    .unwrap(),
            );
        };
        match alg {
            Algorithm::HS256 => {
                let k = hmac::Key::new(hmac::HMAC_SHA256, &s.secret);
                let raw = || {
                    hmac::verify(&k, black_box(s.signing_input.as_bytes()), black_box(&s.sig))
                        .unwrap()
                };
                row(
                    "HS256 full check (split cookie)",
                    paired(20_000, 64, full, raw),
                    "raw HMAC-SHA256 verify (ring)",
                    "≤ 2 ×",
                );
                let cache = VerifyCache::new(10_000);
                let cached = || {
                    let parts =
                        TokenParts::from_split(black_box(&s.payload), black_box(&s.sig_cookie));
                    black_box(
                        s.ring
                            .verify_parts_cached(parts.unwrap(), &verifier, &deny, NOW, &cache)
                            .unwrap(),
                    );
                };
                row(
                    "HS256 cached check",
                    paired(20_000, 64, cached, raw),
                    "raw HMAC-SHA256 verify (ring)",
                    "",
                );
            }
            Algorithm::EdDSA => {
                let jwk = s.ring.active().unwrap().public_jwk().unwrap();
                let public = tessera_core::b64::decode(&jwk.x).unwrap();
                let raw = || {
                    signature::UnparsedPublicKey::new(&signature::ED25519, &public)
                        .verify(black_box(s.signing_input.as_bytes()), black_box(&s.sig))
                        .unwrap()
                };
                row(
                    "EdDSA full check (split cookie)",
                    paired(2_000, 4, full, raw),
                    "raw Ed25519 verify (ring)",
                    "≤ 1.2 ×",
                );
            }
        }
    }
    totp_rows();
}

/// TOTP (RFC 6238) check of the current step's code against one raw HMAC-SHA1 of the same
/// counter under the same secret. The replay lookup (the store's compare-and-set of the
/// last used step) is not in either: it is a database round trip, timed with the store.
fn totp_rows() {
    let secret = TotpSecret::generate();
    let bytes = secret.expose_bytes().to_vec();
    let step = step_at(NOW);
    let counter = step.to_be_bytes();
    let code = secret.code_at(NOW);
    let check = || {
        black_box(
            secret
                .verify(black_box(&code), black_box(NOW), black_box(0))
                .unwrap(),
        );
    };
    // One HMAC-SHA1 from the secret's bytes, as a TOTP check must compute it: the key
    // schedule (inner and outer pad) and the MAC of the 8-byte counter.
    let raw = || {
        let k = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, black_box(&bytes));
        black_box(hmac::sign(&k, black_box(&counter)));
    };
    row(
        "TOTP check (current step)",
        paired(20_000, 64, check, raw),
        "raw HMAC-SHA1 (ring), key from the secret",
        "≤ 1.3 × (+ the store's replay lookup)",
    );
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &bytes);
    let raw_keyed = || {
        black_box(hmac::sign(&key, black_box(&counter)));
    };
    row(
        "TOTP check (current step)",
        paired(20_000, 64, check, raw_keyed),
        "raw HMAC-SHA1 (ring), key schedule precomputed",
        "",
    );
    // A wrong code walks all three steps of the window.
    let wrong = if code == "000000" { "000001" } else { "000000" }.to_owned();
    let check_wrong = || {
        black_box(secret.verify(black_box(&wrong), black_box(NOW), black_box(0))).ok();
    };
    row(
        "TOTP check (wrong code: 3 steps)",
        paired(20_000, 64, check_wrong, raw),
        "raw HMAC-SHA1 (ring), key from the secret",
        "",
    );
}
