-- Failed password checks per username (case-folded), counted by every node, so that the
-- per-username budget holds across a cluster: N nodes do not give an attacker N budgets.
-- One row per failure; rows older than an hour are deleted as new ones arrive.
CREATE TABLE login_failures (
    user_key TEXT NOT NULL,
    at       BIGINT NOT NULL
);
CREATE INDEX login_failures_key_at ON login_failures(user_key, at);
CREATE INDEX login_failures_at ON login_failures(at);
