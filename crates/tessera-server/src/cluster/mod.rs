//! What nodes share through the store: the signing-key schedule and the revocation feed,
//! with the background tasks that keep this node's copy current.

pub mod keys;
pub mod sync;

pub use sync::spawn;
