//! TOTP (RFC 6238) against codes computed by another implementation: Python `pyotp`, in
//! `testdata/vectors/totp_pyotp.json` (regenerate with `testdata/vectors/gen_totp.py`).
//! The code of a step verifies at that step's time, the codes one step either side verify
//! as their own steps, two steps away they do not, and a spent step is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use tessera_core::totp::{step_at, TotpError, TotpSecret};
use tessera_core::UnixTime;

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/vectors/totp_pyotp.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn pyotp_codes_verify_and_neighbours_do_not() {
    let v = vectors();
    assert_eq!(v["algorithm"], "SHA1");
    assert_eq!(v["digits"], 6);
    assert_eq!(v["period"], 30);
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let mut far_checked = 0;
    for c in cases {
        let name = format!("{} @ {}", c["secret_b32"], c["time"]);
        let secret = TotpSecret::from_base32(c["secret_b32"].as_str().unwrap()).unwrap();
        let time = UnixTime(c["time"].as_u64().unwrap());
        let step = c["step"].as_u64().unwrap();
        assert_eq!(step_at(time), step, "{name}");
        let code = c["code"].as_str().unwrap();
        let nb = |d: i64| c["neighbours"][d.to_string()].as_str();
        let window: Vec<&str> = [Some(code), nb(-1), nb(1)].into_iter().flatten().collect();

        // The code of the current step, as pyotp computes it, is tessera's too.
        assert_eq!(secret.code_at(time), code, "{name}");
        assert_eq!(secret.verify(code, time, 0), Ok(step), "{name}");
        assert_eq!(secret.verify(code, time, step - 1), Ok(step), "{name}");
        // Spent: refused at the same time, and at the next step's time.
        assert_eq!(
            secret.verify(code, time, step),
            Err(TotpError::Replayed),
            "{name}"
        );
        assert_eq!(
            secret.verify(code, time.plus(30), step),
            Err(TotpError::Replayed),
            "{name}"
        );

        // One step either side: accepted, as that step (unless it collides with the code).
        for d in [-1i64, 1] {
            let Some(n) = nb(d) else { continue };
            if n == code {
                continue;
            }
            let want = step.checked_add_signed(d).unwrap();
            if want == 0 {
                // `last_used_step` 0 means "none": step 0 (1970) counts as spent.
                assert_eq!(
                    secret.verify(n, time, 0),
                    Err(TotpError::Replayed),
                    "{name}"
                );
                continue;
            }
            assert_eq!(secret.verify(n, time, 0), Ok(want), "{name} step {d:+}");
        }
        // Two steps away: refused (unless, 1 in 10^6, it equals a code in the window).
        for d in [-2i64, 2] {
            let Some(n) = nb(d) else { continue };
            if window.contains(&n) {
                continue;
            }
            assert_eq!(
                secret.verify(n, time, 0),
                Err(TotpError::Invalid),
                "{name} step {d:+}"
            );
            far_checked += 1;
        }
        // And the code itself two steps later or earlier is refused.
        for other in [time.plus(60), time.minus(60)] {
            if other == time.minus(60) && step < 2 {
                continue;
            }
            let s = step_at(other);
            let around = [s.saturating_sub(1), s, s + 1];
            if around.iter().any(|&s| secret.code_for_step(s) == code) {
                continue;
            }
            assert_eq!(
                secret.verify(code, other, 0),
                Err(TotpError::Invalid),
                "{name} at {other:?}"
            );
        }
    }
    assert!(
        far_checked >= 100,
        "only {far_checked} far neighbours checked"
    );
}

#[test]
fn pyotp_codes_with_spaces_or_letters_are_malformed() {
    let v = vectors();
    let c = &v["cases"][0];
    let secret = TotpSecret::from_base32(c["secret_b32"].as_str().unwrap()).unwrap();
    let time = UnixTime(c["time"].as_u64().unwrap());
    let code = c["code"].as_str().unwrap();
    for bad in [
        format!("{} {}", &code[..3], &code[3..]),
        format!(" {code}"),
        format!("{code}0"),
        format!("{}x", &code[..5]),
    ] {
        assert_eq!(
            secret.verify(&bad, time, 0),
            Err(TotpError::Malformed),
            "{bad:?}"
        );
    }
}
