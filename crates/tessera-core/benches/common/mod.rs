//! Shared by the benches: the claims and the denylist every row uses.

#![allow(dead_code)]

use tessera_core::{AccessClaims, Denylist, SessionId, UnixTime};

pub const NOW: UnixTime = UnixTime(1_800_000_000);

pub fn claims() -> AccessClaims {
    let mut c = AccessClaims::example(NOW);
    c.iss = "https://app.example.com".into();
    c.aud = "https://app.example.com".into();
    c.username = "alice@example.com".into();
    c.roles = vec!["user".into(), "editor".into()];
    c.jti = "q1w2e3r4t5y6u7i8o9p0aa".into();
    c
}

pub fn denylist(n: u32) -> Denylist {
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
