#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Every way an access token must be refused, and the one way it is accepted.

use tessera_core::{
    b64, AccessClaims, Algorithm, Denylist, KeyRing, SessionId, SigningKey, TokenError, TokenParts,
    UnixTime, UserId, Verifier,
};

const T0: UnixTime = UnixTime(1_700_000_000);

fn verifier() -> Verifier {
    Verifier::new("https://issuer.example", "https://app.example", 30)
}

fn ring(alg: Algorithm) -> KeyRing {
    KeyRing::new(vec![SigningKey::generate(alg, T0).unwrap()], T0)
}

fn claims() -> AccessClaims {
    AccessClaims::example(T0)
}

fn verify(ring: &KeyRing, token: &str) -> Result<AccessClaims, TokenError> {
    ring.verify(token, &verifier(), &Denylist::new(), T0.plus(10))
        .map(|v| v.into_claims())
}

fn parts(token: &str) -> (String, String, String) {
    let mut it = token.split('.');
    (
        it.next().unwrap().to_owned(),
        it.next().unwrap().to_owned(),
        it.next().unwrap().to_owned(),
    )
}

fn header_b64(json: &str) -> String {
    b64::encode(json)
}

#[test]
fn valid_tokens_verify_with_both_algorithms() {
    for alg in [Algorithm::EdDSA, Algorithm::HS256] {
        let r = ring(alg);
        let t = r.sign(&claims()).unwrap();
        assert_eq!(verify(&r, &t).unwrap(), claims());
        let (h, _, _) = parts(&t);
        let header: serde_json::Value = serde_json::from_slice(&b64::decode(&h).unwrap()).unwrap();
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(header["alg"], alg.name());
        assert_eq!(header["kid"], r.active().unwrap().kid());
    }
}

#[test]
fn tampered_payload_and_signature_are_refused() {
    for alg in [Algorithm::EdDSA, Algorithm::HS256] {
        let r = ring(alg);
        let t = r.sign(&claims()).unwrap();
        let (h, p, s) = parts(&t);
        let mut evil = claims();
        evil.roles = vec!["admin".into()];
        let p2 = b64::encode(serde_json::to_vec(&evil).unwrap());
        assert_eq!(
            verify(&r, &format!("{h}.{p2}.{s}")),
            Err(TokenError::BadSignature)
        );
        let mut sig = b64::decode(&s).unwrap();
        sig[0] ^= 1;
        let s2 = b64::encode(&sig);
        assert_eq!(
            verify(&r, &format!("{h}.{p}.{s2}")),
            Err(TokenError::BadSignature)
        );
        // Truncated signature and stripped signature.
        assert_eq!(
            verify(&r, &format!("{h}.{p}.{}", &s[..10])),
            Err(TokenError::BadSignature)
        );
        assert_eq!(verify(&r, &format!("{h}.{p}.")), Err(TokenError::Malformed));
        // The right tag with a non-canonical last character (an unused low bit set):
        // refused, as strict decoding would.
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = s.as_bytes()[s.len() - 1];
        let v = ALPHABET.iter().position(|&c| c == last).unwrap();
        let s3 = format!("{}{}", &s[..s.len() - 1], char::from(ALPHABET[v ^ 1]));
        assert_ne!(s3, s);
        assert_eq!(
            verify(&r, &format!("{h}.{p}.{s3}")),
            Err(TokenError::BadSignature)
        );
        // The right length with a character outside the alphabet, and a padded signature.
        let s4 = format!("+{}", &s[1..]);
        assert_eq!(
            verify(&r, &format!("{h}.{p}.{s4}")),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            verify(&r, &format!("{h}.{p}.{s}=")),
            Err(TokenError::Malformed)
        );
        // A signature one character short of the right length.
        assert_eq!(
            verify(&r, &format!("{h}.{p}.{}", &s[..s.len() - 1])),
            Err(TokenError::BadSignature)
        );
    }
}

#[test]
fn swapped_claims_cookie_between_two_users_is_refused() {
    let r = ring(Algorithm::EdDSA);
    let alice = r.sign(&claims()).unwrap();
    let mut bob_claims = claims();
    bob_claims.username = "bob".into();
    bob_claims.sub = UserId([7; 16]).to_string().into();
    let bob = r.sign(&bob_claims).unwrap();
    let (alice_payload, _) = TokenParts::split_cookies(&alice).unwrap();
    let (_, bob_sig) = TokenParts::split_cookies(&bob).unwrap();
    let parts = TokenParts::from_split(&alice_payload, &bob_sig).unwrap();
    let err = r
        .verify_parts(parts, &verifier(), &Denylist::new(), T0)
        .unwrap_err();
    assert_eq!(err, TokenError::BadSignature);
    // And the matching halves verify.
    let (bob_payload, _) = TokenParts::split_cookies(&bob).unwrap();
    let parts = TokenParts::from_split(&bob_payload, &bob_sig).unwrap();
    assert!(r
        .verify_parts(parts, &verifier(), &Denylist::new(), T0)
        .is_ok());
}

#[test]
fn time_claims_are_enforced_with_bounded_leeway() {
    let r = ring(Algorithm::HS256);
    let t = r.sign(&claims()).unwrap();
    let v = verifier();
    let d = Denylist::new();
    // exp = T0 + 300, leeway 30.
    assert!(r.verify(&t, &v, &d, T0.plus(329)).is_ok());
    assert_eq!(
        r.verify(&t, &v, &d, T0.plus(330)).unwrap_err(),
        TokenError::Expired
    );
    let mut future = claims();
    future.nbf = T0.0 + 100;
    let t = r.sign(&future).unwrap();
    assert_eq!(
        r.verify(&t, &v, &d, T0).unwrap_err(),
        TokenError::NotYetValid
    );
    let mut future_iat = claims();
    future_iat.iat = T0.0 + 100;
    let t = r.sign(&future_iat).unwrap();
    assert_eq!(
        r.verify(&t, &v, &d, T0).unwrap_err(),
        TokenError::NotYetValid
    );
    // Leeway is capped at 60 s whatever is configured.
    assert_eq!(Verifier::new("a", "b", 3600).leeway(), 60);
}

#[test]
fn wrong_issuer_and_audience_are_refused() {
    let r = ring(Algorithm::EdDSA);
    let mut c = claims();
    c.iss = "https://evil.example".into();
    assert_eq!(
        verify(&r, &r.sign(&c).unwrap()),
        Err(TokenError::WrongIssuer)
    );
    let mut c = claims();
    c.aud = "https://other.example".into();
    assert_eq!(
        verify(&r, &r.sign(&c).unwrap()),
        Err(TokenError::WrongAudience)
    );
}

#[test]
fn alg_none_and_unknown_algorithms_are_refused() {
    let r = ring(Algorithm::EdDSA);
    let kid = r.active().unwrap().kid().to_owned();
    let t = r.sign(&claims()).unwrap();
    let (_, p, s) = parts(&t);
    for alg in ["none", "None", "noNE", "RS256", "ES256", "HS512", ""] {
        let h = header_b64(&format!(
            r#"{{"alg":"{alg}","typ":"at+jwt","kid":"{kid}"}}"#
        ));
        assert_eq!(
            verify(&r, &format!("{h}.{p}.{s}")),
            Err(TokenError::AlgorithmMismatch),
            "{alg}"
        );
    }
    // alg none with an empty signature segment never even reaches key lookup.
    let h = header_b64(r#"{"alg":"none","typ":"at+jwt"}"#);
    assert_eq!(verify(&r, &format!("{h}.{p}.")), Err(TokenError::Malformed));
    let h = header_b64(r#"{"typ":"at+jwt"}"#);
    assert_eq!(
        verify(&r, &format!("{h}.{p}.{s}")),
        Err(TokenError::AlgorithmMismatch)
    );
}

#[test]
fn hs256_token_presented_to_an_eddsa_key_is_refused() {
    // Algorithm confusion: HMAC keyed with the *public* key bytes.
    let r = ring(Algorithm::EdDSA);
    let kid = r.active().unwrap().kid().to_owned();
    let jwk = r.active().unwrap().public_jwk().unwrap();
    let public = b64::decode(&jwk.x).unwrap();
    let h = header_b64(&format!(
        r#"{{"alg":"HS256","typ":"at+jwt","kid":"{kid}"}}"#
    ));
    let p = b64::encode(serde_json::to_vec(&claims()).unwrap());
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &public);
    let sig = ring::hmac::sign(&key, format!("{h}.{p}").as_bytes());
    let t = format!("{h}.{p}.{}", b64::encode(sig.as_ref()));
    assert_eq!(verify(&r, &t), Err(TokenError::AlgorithmMismatch));
}

#[test]
fn unknown_and_expired_kids_are_refused() {
    let r = ring(Algorithm::EdDSA);
    let other = ring(Algorithm::EdDSA);
    let t = other.sign(&claims()).unwrap();
    assert_eq!(verify(&r, &t), Err(TokenError::UnknownKey));

    // A retired key verifies until it expires, then is gone.
    let old = SigningKey::generate(Algorithm::EdDSA, T0).unwrap();
    let old_ring = KeyRing::new(vec![old], T0);
    let t = old_ring.sign(&claims()).unwrap();
    let old = old_ring.keys()[0].kid().to_owned();
    let secret = old_ring.keys()[0].export_secret();
    let retired = |expires: u64| {
        SigningKey::from_parts(
            old.clone(),
            Algorithm::EdDSA,
            T0,
            T0,
            Some(T0.plus(1)),
            Some(UnixTime(expires)),
            &secret,
        )
        .unwrap()
    };
    let new = SigningKey::generate(Algorithm::EdDSA, T0.plus(1)).unwrap();
    let ring2 = KeyRing::new(vec![retired(T0.0 + 400), new], T0.plus(5));
    assert_ne!(ring2.active().unwrap().kid(), old, "the new key signs");
    assert!(verify(&ring2, &t).is_ok(), "retired key still verifies");
    let ring3 = KeyRing::new(vec![retired(T0.0 + 5)], T0.plus(5));
    assert_eq!(verify(&ring3, &t), Err(TokenError::UnknownKey));
}

#[test]
fn extra_header_parameters_are_refused() {
    let r = ring(Algorithm::EdDSA);
    let kid = r.active().unwrap().kid().to_owned();
    let t = r.sign(&claims()).unwrap();
    let (_, p, s) = parts(&t);
    for extra in [
        r#","jku":"https://evil.example/jwks""#,
        r#","jwk":{"kty":"OKP","crv":"Ed25519","x":"AAAA"}"#,
        r#","x5u":"https://evil.example/cert""#,
        r#","crit":["exp"]"#,
    ] {
        let h = header_b64(&format!(
            r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"{kid}"{extra}}}"#
        ));
        assert_eq!(
            verify(&r, &format!("{h}.{p}.{s}")),
            Err(TokenError::BadHeader),
            "{extra}"
        );
    }
    // kid injection: path traversal or SQL in kid is simply an unknown key.
    let h = header_b64(r#"{"alg":"EdDSA","typ":"at+jwt","kid":"../../dev/null"}"#);
    assert_eq!(
        verify(&r, &format!("{h}.{p}.{s}")),
        Err(TokenError::UnknownKey)
    );
    // A different typ (e.g. a DPoP proof or ID token) never passes as an access token.
    let h = header_b64(&format!(
        r#"{{"alg":"EdDSA","typ":"dpop+jwt","kid":"{kid}"}}"#
    ));
    assert_eq!(
        verify(&r, &format!("{h}.{p}.{s}")),
        Err(TokenError::BadHeader)
    );
}

#[test]
fn malformed_and_oversized_tokens_are_refused_before_crypto() {
    let r = ring(Algorithm::HS256);
    let t = r.sign(&claims()).unwrap();
    let (h, p, s) = parts(&t);
    assert_eq!(verify(&r, &"a".repeat(9000)), Err(TokenError::TooLarge));
    assert_eq!(verify(&r, ""), Err(TokenError::Malformed));
    assert_eq!(verify(&r, "a.b"), Err(TokenError::Malformed));
    assert_eq!(
        verify(&r, &format!("{h}.{p}.{s}.x.y")),
        Err(TokenError::Malformed),
        "JWE shape"
    );
    // Exactly three segments in both forms, before anything else is read (a fuzzing run
    // found the compact form accepting a fourth one at the parts level).
    assert_eq!(
        TokenParts::from_compact(&format!("{h}.{p}.{s}.x.y")).err(),
        Some(TokenError::Malformed)
    );
    assert_eq!(
        TokenParts::from_split(&p, &format!("{h}.x.{s}")).err(),
        Some(TokenError::Malformed)
    );
    assert_eq!(
        TokenParts::from_split(&format!("{p}.x"), &format!("{h}.{s}")).err(),
        Some(TokenError::Malformed),
        "separator in the claims cookie"
    );
    assert_eq!(
        TokenParts::from_split(&p, &format!("{h}{s}")).err(),
        Some(TokenError::Malformed),
        "no separator in the signature cookie"
    );
    assert_eq!(
        TokenParts::from_split(&p, &format!(".{h}{s}")).err(),
        Some(TokenError::Malformed),
        "empty header"
    );
    assert_eq!(
        verify(&r, &format!("{h}.{p}=.{s}")),
        Err(TokenError::Malformed),
        "padding"
    );
    assert_eq!(
        verify(&r, &format!("{h} .{p}.{s}")),
        Err(TokenError::Malformed),
        "whitespace"
    );
    assert_eq!(
        verify(&r, &format!("{h}.{p}+.{s}")),
        Err(TokenError::Malformed),
        "std alphabet"
    );
    assert_eq!(
        verify(&r, &format!(r#"{{"payload":"{p}"}}"#)),
        Err(TokenError::Malformed),
        "JSON serialization"
    );
    let big_header = "A".repeat(300);
    assert_eq!(
        verify(&r, &format!("{big_header}.{p}.{s}")),
        Err(TokenError::TooLarge)
    );
}

#[test]
fn claims_must_be_well_typed_unique_and_known() {
    // Sign hand-made payloads with the real key so only the claims check can refuse them.
    let r = ring(Algorithm::HS256);
    let good = serde_json::to_value(claims()).unwrap();
    let sign_raw = |payload: &str| -> String {
        // Reuse the ring's header and HMAC by signing a token and swapping the payload,
        // then re-signing through a one-key ring built from the same secret.
        let key = &r.keys()[0];
        let secret = key.export_secret();
        let h = b64::encode(format!(
            r#"{{"alg":"HS256","typ":"at+jwt","kid":"{}"}}"#,
            key.kid()
        ));
        let p = b64::encode(payload);
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
        let sig = ring::hmac::sign(&k, format!("{h}.{p}").as_bytes());
        format!("{h}.{p}.{}", b64::encode(sig.as_ref()))
    };
    assert!(verify(&r, &sign_raw(&good.to_string())).is_ok());

    let mut mistyped = good.clone();
    mistyped["exp"] = serde_json::json!("9999999999");
    assert_eq!(
        verify(&r, &sign_raw(&mistyped.to_string())),
        Err(TokenError::BadClaims)
    );

    let mut huge = good.to_string();
    huge = huge.replacen(&format!("\"exp\":{}", T0.0 + 300), "\"exp\":1e400", 1);
    assert_eq!(verify(&r, &sign_raw(&huge)), Err(TokenError::BadClaims));

    let mut unknown = good.clone();
    unknown["admin"] = serde_json::json!(true);
    assert_eq!(
        verify(&r, &sign_raw(&unknown.to_string())),
        Err(TokenError::BadClaims)
    );

    let dup = good.to_string().replacen('{', r#"{"username":"root","#, 1);
    assert_eq!(
        verify(&r, &sign_raw(&dup)),
        Err(TokenError::BadClaims),
        "duplicate claim"
    );

    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        verify(&r, &sign_raw(&missing.to_string())),
        Err(TokenError::BadClaims)
    );

    let mut neg = good.clone();
    neg["iat"] = serde_json::json!(-1);
    assert_eq!(
        verify(&r, &sign_raw(&neg.to_string())),
        Err(TokenError::BadClaims)
    );

    assert_eq!(
        verify(&r, &sign_raw("not json")),
        Err(TokenError::BadClaims)
    );
}

#[test]
fn revoked_session_and_user_not_before_are_refused() {
    let r = ring(Algorithm::EdDSA);
    let t = r.sign(&claims()).unwrap();
    let v = verifier();
    let d = Denylist::new();
    d.revoke_session(SessionId([2; 16]), T0.plus(1000));
    assert_eq!(r.verify(&t, &v, &d, T0).unwrap_err(), TokenError::Revoked);

    let d = Denylist::new();
    d.revoke_user_before(UserId([1; 16]), T0.plus(1), T0.plus(1000));
    assert_eq!(
        r.verify(&t, &v, &d, T0.plus(2)).unwrap_err(),
        TokenError::Revoked,
        "iat before not-before"
    );
    let d = Denylist::new();
    d.revoke_user_before(UserId([1; 16]), T0, T0.plus(1000));
    assert!(
        r.verify(&t, &v, &d, T0.plus(2)).is_ok(),
        "iat at not-before passes"
    );
}

#[test]
fn next_key_is_published_but_does_not_sign_yet() {
    let active = SigningKey::generate(Algorithm::EdDSA, T0).unwrap();
    let secret = SigningKey::generate(Algorithm::EdDSA, T0).unwrap();
    let next = SigningKey::from_parts(
        "next-key".into(),
        Algorithm::EdDSA,
        T0,
        T0.plus(3600),
        None,
        None,
        &secret.export_secret(),
    )
    .unwrap();
    let active_kid = active.kid().to_owned();
    let r = KeyRing::new(vec![active, next], T0);
    assert_eq!(r.active().unwrap().kid(), active_kid);
    assert_eq!(r.jwks().len(), 2);
    assert!(r.jwks().iter().any(|k| k.kid == "next-key"));
    let later = KeyRing::new(
        r.keys()
            .iter()
            .map(|k| {
                SigningKey::from_parts(
                    k.kid().into(),
                    k.alg(),
                    k.created_at(),
                    k.activates_at(),
                    k.retires_at(),
                    k.expires_at(),
                    &k.export_secret(),
                )
                .unwrap()
            })
            .collect(),
        T0.plus(3600),
    );
    assert_eq!(later.active().unwrap().kid(), "next-key");
}

#[test]
fn symmetric_keys_are_never_published_and_debug_is_redacted() {
    let r = ring(Algorithm::HS256);
    assert!(r.jwks().is_empty());
    let dbg = format!("{:?}", r.keys()[0]);
    assert!(dbg.contains("redacted"));
    assert!(
        SigningKey::from_parts("k".into(), Algorithm::HS256, T0, T0, None, None, &[1; 16]).is_err(),
        "short HMAC key"
    );
}

#[test]
fn cache_skips_crypto_but_never_revocation_expiry_or_tampering() {
    use tessera_core::VerifyCache;
    let cache = VerifyCache::new(100);
    let r = ring(Algorithm::EdDSA);
    let t = r.sign(&claims()).unwrap();
    let v = verifier();
    let d = Denylist::new();
    let check = |token: &str, d: &Denylist, now: UnixTime| {
        TokenParts::from_compact(token).and_then(|p| r.verify_parts_cached(p, &v, d, now, &cache))
    };
    assert!(check(&t, &d, T0).is_ok());
    assert_eq!(cache.len(), 1);
    assert!(check(&t, &d, T0).is_ok(), "hit");
    // Same signature, different payload: not a hit, and the signature check refuses it.
    let (h, _, s) = parts(&t);
    let mut evil = claims();
    evil.roles = vec!["admin".into()];
    let p2 = b64::encode(serde_json::to_vec(&evil).unwrap());
    assert_eq!(
        check(&format!("{h}.{p2}.{s}"), &d, T0).unwrap_err(),
        TokenError::BadSignature
    );
    // Revocation and expiry win over the cache.
    d.revoke_session(SessionId([2; 16]), T0.plus(1000));
    assert_eq!(check(&t, &d, T0).unwrap_err(), TokenError::Revoked);
    let fresh = Denylist::new();
    assert_eq!(
        check(&t, &fresh, T0.plus(400)).unwrap_err(),
        TokenError::Expired
    );
    // Bounded.
    for i in 0..500 {
        let mut c = claims();
        c.jti = format!("jti-{i}").into();
        let t = r.sign(&c).unwrap();
        assert!(check(&t, &fresh, T0).is_ok());
    }
    assert!(cache.len() <= 112, "bounded: {}", cache.len());
    cache.clear();
    assert!(cache.is_empty());
}

/// Claims too large for the on-stack decoding buffer take the heap path with the same
/// decoder and the same verdicts.
#[test]
fn large_claims_decode_on_the_heap_alike() {
    let r = ring(Algorithm::HS256);
    let mut c = claims();
    c.roles = (0..200).map(|i| format!("role-{i:04}").into()).collect();
    let t = r.sign(&c).unwrap();
    let (h, p, s) = parts(&t);
    assert!(
        p.len() > 2000,
        "payload of {} chars stays on the stack",
        p.len()
    );
    assert_eq!(verify(&r, &t), Ok(c));
    assert_eq!(
        verify(&r, &format!("{h}.{}+.{s}", &p[..p.len() - 1])),
        Err(TokenError::Malformed)
    );
}
