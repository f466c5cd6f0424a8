//! HTTP plumbing shared by every route: the accept loop and its limits, TLS, the
//! middleware (request ids, shape checks, CORS, security headers), bodies, cookies.

pub mod body;
pub mod cookies;
pub(crate) mod error;
pub(crate) mod middleware;
pub(crate) mod peer;
pub(crate) mod per_ip;
pub mod serve;
pub mod tls;
