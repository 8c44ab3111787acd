-- fafnir-core: secrets shared by every instance on one database (e.g. the CSRF signing key),
-- created on first use.
CREATE TABLE server_secrets (
    name       TEXT PRIMARY KEY,
    value      BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
