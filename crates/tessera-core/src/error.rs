//! Why a credential was refused. Shown to operators in logs, never to clients in detail.

/// Why an access token was refused.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Longer than [`crate::MAX_TOKEN_LEN`] or a part longer than its bound.
    #[error("token too large")]
    TooLarge,
    /// Not three non-empty base64url segments.
    #[error("token is not a compact JWS")]
    Malformed,
    /// The header names an algorithm other than the one configured for its `kid`
    /// (including `none` and HS256 presented to an EdDSA key).
    #[error("algorithm not allowed for this key")]
    AlgorithmMismatch,
    /// The header is not exactly the header tessera issues for a known key.
    #[error("unsupported token header")]
    BadHeader,
    /// No key with this `kid`, or the key no longer verifies.
    #[error("unknown key id")]
    UnknownKey,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// The claims are not valid JSON of the expected shape (types, duplicates, unknown names).
    #[error("malformed claims")]
    BadClaims,
    /// `iss` is not ours.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` is not ours.
    #[error("wrong audience")]
    WrongAudience,
    /// `exp` has passed.
    #[error("token expired")]
    Expired,
    /// `nbf` or `iat` is in the future.
    #[error("token not yet valid")]
    NotYetValid,
    /// The session was revoked, or the token predates the user's "not before" time.
    #[error("session revoked")]
    Revoked,
    /// The token is bound to a DPoP key but was presented without a proof, or vice versa.
    #[error("token binding mismatch")]
    BindingMismatch,
}
