//! Shared by the benches: the claims and the denylist every row uses.

#![allow(dead_code, clippy::unwrap_used)]

use tessera_core::{
    AccessClaims, Algorithm, Denylist, KeyRing, SessionId, SigningKey, TokenParts, UnixTime,
};
use zeroize::Zeroizing;

pub(crate) const NOW: UnixTime = UnixTime(1_800_000_000);

pub(crate) fn claims() -> AccessClaims {
    let mut c = AccessClaims::example(NOW);
    c.iss = "https://app.example.com".into();
    c.aud = "https://app.example.com".into();
    c.username = "alice@example.com".into();
    c.roles = vec!["user".into(), "editor".into()];
    c.jti = "q1w2e3r4t5y6u7i8o9p0aa".into();
    c
}

pub(crate) fn denylist(n: u32) -> Denylist {
    let d = Denylist::new();
    d.reserve(n as usize);
    for i in 0..n {
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&i.to_le_bytes());
        id[4..8].copy_from_slice(&(i.wrapping_mul(2_654_435_761)).to_le_bytes());
        d.revoke_session(SessionId(id), NOW.plus(600));
    }
    d
}

/// One key of `alg`, a token it signed, and that token's pieces: the split cookies and
/// the signing input and signature the raw primitives are timed over.
pub(crate) struct Signed {
    pub ring: KeyRing,
    pub secret: Zeroizing<Vec<u8>>,
    pub token: String,
    pub payload: String,
    pub sig_cookie: String,
    pub signing_input: String,
    pub sig: Vec<u8>,
}

pub(crate) fn signed(alg: Algorithm) -> Signed {
    let key = SigningKey::generate(alg, NOW).unwrap();
    let secret = key.export_secret();
    let ring = KeyRing::new(vec![key], NOW);
    let token = ring.sign(&claims()).unwrap();
    let (payload, sig_cookie) = TokenParts::split_cookies(&token).unwrap();
    let (signing_input, sig_b64) = token.rsplit_once('.').unwrap();
    let signing_input = signing_input.to_owned();
    let sig = tessera_core::b64::decode(sig_b64).unwrap();
    Signed {
        ring,
        secret,
        token,
        payload,
        sig_cookie,
        signing_input,
        sig,
    }
}
