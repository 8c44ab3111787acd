-- fafnir-auth: single-use tokens for actions taken from an e-mailed link (verify an address,
-- reset a password, confirm a new address). Only the SHA-256 of a token is stored; a token is
-- bound to its purpose, its account and the address it was sent to.
CREATE TABLE action_tokens (
    token_hash TEXT PRIMARY KEY,
    purpose    TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);

CREATE INDEX action_tokens_by_user ON action_tokens (user_id, purpose);
