//! The records the store keeps.

use std::fmt;

use tessera_core::{SessionId, UnixTime, UserId};

/// A user account.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// Stable id (`sub`).
    pub id: UserId,
    /// Login name, unique.
    pub username: String,
    /// PHC string (argon2id, or an imported bcrypt/argon2 hash until the next login).
    pub password_hash: String,
    /// Roles, in order.
    pub roles: Vec<String>,
    /// When the account was made.
    pub created_at: UnixTime,
    /// Disabled accounts cannot log in or refresh.
    pub disabled: bool,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("password_hash", &"[redacted]")
            .field("roles", &self.roles)
            .field("disabled", &self.disabled)
            .finish()
    }
}

/// One login and the refresh-token family that follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The `sid`.
    pub id: SessionId,
    /// Whose session.
    pub user_id: UserId,
    /// Login time.
    pub created_at: UnixTime,
    /// Absolute end, whatever the refreshes.
    pub expires_at: UnixTime,
    /// Set once revoked.
    pub revoked_at: Option<UnixTime>,
    /// DPoP key thumbprint the family is bound to.
    pub dpop_jkt: Option<String>,
    /// `browser` or `api`.
    pub client: String,
}

/// A request to rotate a refresh token.
///
/// * The presented token is current: it is retired and `successor_hash` becomes current,
///   unless it has been idle longer than `idle_ttl` or the session ended.
/// * It was rotated at most `grace` seconds ago and its successor is still current: the
///   same successor is answered again (racing tabs).
/// * Otherwise it is reuse: the whole session is revoked, with a feed entry kept until
///   `revoke_until`.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// SHA-256 of the presented token.
    pub hash: [u8; 32],
    /// SHA-256 of its deterministic successor.
    pub successor_hash: [u8; 32],
    /// Now.
    pub now: UnixTime,
    /// Race grace in seconds (0 disables).
    pub grace: u64,
    /// Idle limit of a refresh token in seconds.
    pub idle_ttl: u64,
    /// Until when a revocation caused by reuse must stay in the denylist.
    pub revoke_until: UnixTime,
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The successor is now current (fresh, or answered again within the grace).
    Rotated {
        /// The session, still valid.
        session: Session,
        /// True if this was a repeat within the grace period.
        repeated: bool,
    },
    /// A retired token came back after the grace: the session is now revoked.
    Reused {
        /// The session that was revoked.
        session: Session,
    },
    /// Unknown token.
    NotFound,
    /// The session or the token is past its absolute or idle limit, or revoked.
    Ended,
}

/// An entry of the revocation feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// Position in the feed.
    pub id: i64,
    /// What is revoked.
    pub target: RevocationTarget,
    /// When.
    pub at: UnixTime,
    /// After this, no token it could deny is still valid.
    pub until: UnixTime,
}

/// What a revocation denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationTarget {
    /// One session.
    Session(SessionId),
    /// Every token of the user issued before the revocation time.
    User(UserId),
}

/// A signing key as stored: times in clear, the private part sealed under the master key.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// Key id.
    pub kid: String,
    /// `EdDSA` or `HS256`.
    pub alg: String,
    /// Made at.
    pub created_at: UnixTime,
    /// Signs from.
    pub activates_at: UnixTime,
    /// Stops signing at.
    pub retires_at: Option<UnixTime>,
    /// Stops verifying at.
    pub expires_at: Option<UnixTime>,
    /// AES-256-GCM(master key, AAD = kid).
    pub sealed: Vec<u8>,
}

impl fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("activates_at", &self.activates_at)
            .field("retires_at", &self.retires_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A service client that signs requests (RFC 9421).
#[derive(Clone, PartialEq, Eq)]
pub struct StoredClient {
    /// The `keyid` it signs with.
    pub key_id: String,
    /// Its name, unique; forwarded as `X-Tessera-Client`.
    pub name: String,
    /// The HMAC secret, sealed (AAD = key id).
    pub sealed: Vec<u8>,
    /// Made at.
    pub created_at: UnixTime,
    /// Disabled clients are refused.
    pub disabled: bool,
}

impl fmt::Debug for StoredClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredClient")
            .field("key_id", &self.key_id)
            .field("name", &self.name)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

/// A security-relevant event. Never holds a secret or a token.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditEvent {
    /// When.
    pub at: UnixTime,
    /// What: `login_success`, `login_failure`, `refresh`, `refresh_reuse`, `logout`,
    /// `logout_all`, `revoke`, `key_rotation`, …
    pub kind: String,
    /// The username given or known.
    pub username: Option<String>,
    /// The user id, if known.
    pub user_id: Option<String>,
    /// The session id, if any.
    pub session_id: Option<String>,
    /// Client IP.
    pub ip: Option<String>,
    /// Client user agent (truncated).
    pub user_agent: Option<String>,
    /// Free text, never secret.
    pub detail: Option<String>,
}

/// A user's TOTP factor (RFC 6238) as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpFactor {
    /// Whose.
    pub user_id: UserId,
    /// The secret, sealed under the master key by the caller.
    pub sealed: Vec<u8>,
    /// Confirmed with a first code; a pending factor is not a second factor yet.
    pub confirmed: bool,
    /// Set up at.
    pub created_at: UnixTime,
    /// The last time step accepted (0: none yet).
    pub last_used_step: u64,
}

impl fmt::Debug for TotpFactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpFactor")
            .field("user_id", &self.user_id)
            .field("confirmed", &self.confirmed)
            .field("created_at", &self.created_at)
            .field("last_used_step", &self.last_used_step)
            .finish_non_exhaustive()
    }
}

/// A WebAuthn credential (passkey) as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPasskey {
    /// The credential id, base64url.
    pub id: String,
    /// Whose.
    pub user_id: UserId,
    /// The name the user gave it.
    pub name: String,
    /// The serialized credential (public key, signature counter, backup flags); public
    /// data, no secret.
    pub passkey: String,
    /// Registered at.
    pub created_at: UnixTime,
    /// Last used to sign in.
    pub last_used_at: Option<UnixTime>,
}

/// What one-time ceremony state is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MfaStateKind {
    /// The `mfa_token` between a correct password and the second factor.
    MfaLogin,
    /// A WebAuthn registration ceremony.
    PasskeyRegistration,
    /// A WebAuthn authentication ceremony.
    PasskeyAuthentication,
}

impl MfaStateKind {
    /// The `kind` column's value.
    pub fn as_str(self) -> &'static str {
        match self {
            MfaStateKind::MfaLogin => "mfa_login",
            MfaStateKind::PasskeyRegistration => "webauthn_reg",
            MfaStateKind::PasskeyAuthentication => "webauthn_auth",
        }
    }
}

/// One-time ceremony state, usable once on any node until `expires_at` (inclusive).
#[derive(Clone, PartialEq, Eq)]
pub struct MfaState {
    /// What it is for.
    pub kind: MfaStateKind,
    /// The SHA-256 of the opaque value the client holds (`mfa_token`, `challenge_id`).
    pub id: [u8; 32],
    /// The user it is bound to, if any (a discoverable-credential login has none yet).
    pub user_id: Option<UserId>,
    /// The caller's state (e.g. the WebAuthn library's serialized ceremony state).
    pub payload: Vec<u8>,
    /// Last second at which it may be used.
    pub expires_at: UnixTime,
    /// Wrong codes counted against it so far.
    pub failures: u32,
}

impl fmt::Debug for MfaState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MfaState")
            .field("kind", &self.kind)
            .field("user_id", &self.user_id)
            .field("expires_at", &self.expires_at)
            .field("failures", &self.failures)
            .finish_non_exhaustive()
    }
}
