-- One-time values (DPoP proof `jti`s, request-signature nonces) seen by any node, so a
-- proof or signed request used on one node is refused on every other (RFC 9449 §11.1,
-- RFC 9421 §7.2.2). `id` is the SHA-256 of the value's replay key; a row is live while
-- `expires_at` (inclusive, Unix seconds) has not passed, and purged in the background.
CREATE TABLE replay_ids (
    kind       TEXT NOT NULL,             -- 'dpop' | 'sig'
    id         BYTEA NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX replay_ids_expires ON replay_ids(expires_at);
