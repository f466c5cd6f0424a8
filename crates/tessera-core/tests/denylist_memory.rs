//! Memory of the denylist, measured with a counting allocator: one million revoked
//! sessions must fit in 64 MiB. `cargo test -p tessera-core --test denylist_memory -- --nocapture`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use tessera_core::{Denylist, SessionId, UnixTime, UserId};

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[test]
fn one_million_revoked_sessions_fit_in_64_mib() {
    let before = LIVE.load(Ordering::Relaxed);
    let d = Denylist::new();
    for i in 0u64..1_000_000 {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
        id[8..].copy_from_slice(&i.to_le_bytes());
        d.revoke_session(SessionId(id), UnixTime(2_000_000_000));
    }
    let bytes = LIVE.load(Ordering::Relaxed) - before;
    let mib = bytes as f64 / (1024.0 * 1024.0);
    println!(
        "denylist: 1,000,000 revoked sessions use {mib:.1} MiB ({:.1} bytes each)",
        bytes as f64 / 1e6
    );
    assert!(mib <= 64.0, "{mib:.1} MiB for 1M revoked sessions");
    // Lookups still answer correctly at that size.
    let mut probe = [0u8; 16];
    probe[..8].copy_from_slice(&7u64.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
    probe[8..].copy_from_slice(&7u64.to_le_bytes());
    assert!(d.denies(&SessionId(probe), &UserId([0; 16]), UnixTime(1)));
    assert!(!d.denies(&SessionId([0xFF; 16]), &UserId([0; 16]), UnixTime(1)));
    // Entries leave once nothing they deny can still be valid.
    d.purge(UnixTime(2_000_000_001));
    assert_eq!(d.stats().sessions, 0);
}
