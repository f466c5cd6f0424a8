-- Second factors: TOTP (RFC 6238), recovery codes, WebAuthn passkeys, and the one-time
-- state of their ceremonies (an MFA login's token, a WebAuthn challenge), kept here so any
-- node can finish what another started.

-- A user's TOTP factor: the secret sealed under the master key by the caller (AAD names
-- the user), pending until confirmed with a first code. `last_used_step` is the last
-- RFC 6238 time step accepted (0: none); it only grows, by a compare-and-set, so each
-- code is accepted once on every node (RFC 6238 §5.2).
CREATE TABLE totp_factors (
    user_id        TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    sealed         BLOB NOT NULL,
    confirmed      INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL,
    last_used_step INTEGER NOT NULL DEFAULT 0
);

-- Recovery codes, only as keyed hashes (HMAC-SHA256 under a master-key-derived key);
-- single-use: `used_at` is set once, by a compare-and-set.
CREATE TABLE recovery_codes (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    hash    BLOB NOT NULL,
    used_at INTEGER,
    PRIMARY KEY (user_id, hash)
) WITHOUT ROWID;

-- WebAuthn credentials: `id` is the credential id (base64url), `passkey` the serialized
-- credential (public key, counter, backup flags) as the WebAuthn library writes it.
CREATE TABLE webauthn_credentials (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    passkey      TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
);
CREATE INDEX webauthn_credentials_user ON webauthn_credentials(user_id);

-- One-time ceremony state: `id` is the SHA-256 of the opaque value the client holds
-- (`mfa_token`, `challenge_id`), `kind` what it is for; taken (read and deleted in one
-- statement) when used, purged when expired. `failures` counts wrong codes against it.
CREATE TABLE mfa_states (
    kind       TEXT NOT NULL,
    id         BLOB NOT NULL,
    user_id    TEXT REFERENCES users(id) ON DELETE CASCADE,
    payload    BLOB NOT NULL,
    expires_at INTEGER NOT NULL,
    failures   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, id)
) WITHOUT ROWID;
CREATE INDEX mfa_states_expires ON mfa_states(expires_at);
