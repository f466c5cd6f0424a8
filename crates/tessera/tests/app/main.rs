//! The black-box suites that need no process of their own, in one test binary. Each module
//! was (or was split from) a file of `crates/tessera/tests/`; they serve tessera inside
//! this process (`tessera_testkit::inproc`: the real `App` on a loopback port, an
//! in-memory store, a manual clock), so what tessera decides by time is tested by moving
//! the clock. What needs the real binary (exit codes, signals, the CLI, the binary's
//! configuration loading and logging, restarts, RSS and threads of a process, nginx, two
//! nodes) stays in the other files of `tests/`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod attacks;
mod brute_force;
mod csrf;
mod gateway;
mod header_hygiene;
mod login;
mod observability;
mod openapi;
mod ops;
mod sessions;
mod spa;
mod standards;
mod tokens;
mod upstream_desync;
