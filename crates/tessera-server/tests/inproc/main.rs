//! In-process tests of tessera-server's credential checks (`auth`), its session logic
//! (login, refresh rotation, reuse detection, idle and absolute ends, logout,
//! revocation, throttling) and its OAuth-shaped token endpoint, each through HTTP against
//! [`tessera_testkit::inproc::InProc`]: the real `App` on a loopback port, an in-memory
//! store and a manual clock, so every time rule is checked at its exact second.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod auth;
mod sessions;
mod support;
mod token_endpoint;
