-- Tessera schema v1 (SQLite). Times are Unix seconds; ids are base64url text.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    roles         TEXT NOT NULL,          -- JSON array of strings
    created_at    INTEGER NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,          -- absolute limit, whatever the refreshes
    revoked_at INTEGER,
    dpop_jkt   TEXT,                      -- DPoP key thumbprint the family is bound to
    client     TEXT NOT NULL DEFAULT 'browser'
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE INDEX sessions_expires ON sessions(expires_at);

-- Every refresh token a session was ever given, as SHA-256 hashes: the current one has
-- rotated_at NULL; older ones are kept to detect reuse until the session ends.
CREATE TABLE refresh_tokens (
    hash       BLOB PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    issued_at  INTEGER NOT NULL,
    rotated_at INTEGER,
    successor  BLOB
);
CREATE INDEX refresh_tokens_session ON refresh_tokens(session_id);

-- The revocation feed every node replays into its in-memory denylist.
CREATE TABLE revocations (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    kind    TEXT NOT NULL,                -- 'session' | 'user'
    subject TEXT NOT NULL,                -- session id or user id
    at      INTEGER NOT NULL,
    until   INTEGER NOT NULL              -- after this no token it could deny is valid
);
CREATE INDEX revocations_until ON revocations(until);

CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    alg          TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    activates_at INTEGER NOT NULL,
    retires_at   INTEGER,
    expires_at   INTEGER,
    sealed       BLOB NOT NULL            -- AES-256-GCM under the master key, AAD = kid
);

CREATE TABLE clients (
    key_id     TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    sealed     BLOB NOT NULL,             -- the HMAC secret, sealed like signing keys
    created_at INTEGER NOT NULL,
    disabled   INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE audit_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    username   TEXT,
    user_id    TEXT,
    session_id TEXT,
    ip         TEXT,
    user_agent TEXT,
    detail     TEXT
);
