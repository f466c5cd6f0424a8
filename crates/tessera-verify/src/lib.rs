//! Verify tessera access tokens inside any Rust API: a tower [`Layer`](tower::Layer)
//! ([`TesseraVerifyLayer`]) and axum extractors ([`Identity`], [`OptionalIdentity`]),
//! backed by a caching JWKS client ([`Jwks`]).
//!
//! Purpose: services that receive tessera tokens directly (mobile clients, other
//! services calling with a tessera token) check them in-process, with only tessera's
//! *public* keys: the signing secret never leaves tessera. APIs that sit behind the
//! tessera gateway do not need this crate: they get identity headers instead.
//!
//! What is checked, with the same strict rules as tessera itself: the token is at most
//! 8 KiB and three base64url segments; its header is byte-for-byte
//! `{"alg":"EdDSA","typ":"at+jwt","kid":"<kid>"}` for a key published in tessera's JWKS
//! (so `alg` comes from the key, never from the token); the Ed25519 signature; the claims
//! parse strictly (unknown names refused); `iss` and `aud` match; `exp`, `nbf` and `iat`
//! hold within a leeway of at most 60 s.
//!
//! Non-goals and limitations:
//! * **No revocation check.** Revocation (logout, reuse detection) is enforced by the
//!   tessera gateway; downstream verification trusts a token until its `exp`, which is
//!   short (tessera's `tokens.access_ttl`, 10 minutes by default).
//! * **EdDSA only.** A tessera configured with `tokens.algorithm = "HS256"` publishes an
//!   empty JWKS (HMAC keys are never published), so every token is refused.
//! * **No DPoP.** Tokens bound to a key (`cnf`) are refused, as is `Authorization: DPoP`.
//! * No roles or scopes policy: handlers decide with [`Identity::has_role`].
//!
//! Keys are fetched from `<tessera>/.well-known/jwks.json`, cached for the response's
//! `Cache-Control: max-age` (clamped to 10 s … 1 h) and refreshed in the background; a
//! token naming an unknown `kid` (after a key rotation) causes one refetch at most every
//! [`JwksBuilder::min_refetch_interval`] (30 s), shared by concurrent requests; a failed
//! fetch keeps the old keys.
//!
//! ```no_run
//! use axum::{routing::get, Json, Router};
//! use tessera_verify::{Identity, Jwks, TesseraVerifyLayer};
//!
//! async fn me(identity: Identity) -> Json<serde_json::Value> {
//!     Json(serde_json::json!({"user": identity.user_id.to_string(), "roles": identity.roles}))
//! }
//!
//! # async fn run(tls_client: reqwest::Client) -> Result<(), Box<dyn std::error::Error>> {
//! let jwks = Jwks::builder(
//!     "https://auth.example.com",  // where tessera serves /.well-known/jwks.json
//!     "https://auth.example.com",  // expected `iss` (tessera's public_origin by default)
//!     "https://auth.example.com",  // expected `aud` (likewise)
//! )
//! .http_client(tls_client)         // with the root certificates you trust
//! .build()?;
//! jwks.refresh().await?;           // optional: fail at start-up if tessera is unreachable
//! let app = Router::new()
//!     .route("/me", get(me))
//!     .layer(TesseraVerifyLayer::new(jwks));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```

mod identity;
mod jwks;
mod layer;

pub use identity::{AuthRejection, Identity, OptionalIdentity};
pub use jwks::{ConfigError, FetchError, Jwks, JwksBuilder, VerifyError, JWKS_PATH};
pub use layer::{TesseraVerify, TesseraVerifyLayer, ACCESS_COOKIE, CLAIMS_COOKIE, SIG_COOKIE};
pub use tessera_core::{AccessClaims, SessionId, TokenError, UserId};
