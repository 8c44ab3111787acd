-- fafnir-auth: social login. An identity is an account at an OAuth 2.0 / OpenID Connect
-- provider, keyed by (issuer, subject) and never by e-mail; it signs in the local account it is
-- linked to. A pending login is one authorization request in flight: kept server-side, single
-- use, expiring, bound to the browser that started it (only SHA-256 hashes of the `state` and of
-- the browser's binding cookie are stored).
--
-- An account made by a provider sign-in has no password: its `users.password_hash` is the empty
-- string (the column stays NOT NULL so that both dialects keep one shape; the store maps '' to
-- "no password", and no Argon2 hash is ever empty).
CREATE TABLE oauth_identities (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider     TEXT NOT NULL,
    issuer       TEXT NOT NULL,
    subject      TEXT NOT NULL,
    email        TEXT,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    UNIQUE (issuer, subject)
);
CREATE INDEX oauth_identities_by_user ON oauth_identities (user_id);

CREATE TABLE oauth_pending (
    state_hash    TEXT PRIMARY KEY,
    provider      TEXT NOT NULL,
    binding_hash  TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    nonce         TEXT,
    return_to     TEXT NOT NULL,
    link_user_id  TEXT,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX oauth_pending_expiry ON oauth_pending (expires_at);
