-- Fafnir schema, PostgreSQL dialect. Keep in step with migrations/sqlite/0001_init.sql:
-- the same tables and columns; only types differ where the dialects do.
-- Ids are TEXT (UUID), times are BIGINT milliseconds since the Unix epoch, flags are BIGINT 0/1.

-- fafnir-core: signing keys (active = 1 for exactly one key, NULL for retired ones)
CREATE TABLE signing_keys (
    kid           TEXT PRIMARY KEY,
    algorithm     TEXT NOT NULL,
    private_key   BYTEA NOT NULL,
    public_key    BYTEA NOT NULL,
    created_at    BIGINT NOT NULL,
    active        BIGINT UNIQUE CHECK (active = 1),
    retired_at    BIGINT,
    publish_until BIGINT
);

-- fafnir-core: transactional outbox, one row per (event, subscriber)
CREATE TABLE outbox (
    id              BIGSERIAL PRIMARY KEY,
    subscriber      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    delivered_at    BIGINT,
    last_error      TEXT
);
CREATE INDEX outbox_pending ON outbox (next_attempt_at, id) WHERE delivered_at IS NULL;

-- fafnir-auth: accounts, sessions (refresh-token families), refresh tokens, login throttling
CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    email          TEXT NOT NULL UNIQUE,
    password_hash  TEXT NOT NULL,
    email_verified BIGINT NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

CREATE TABLE sessions (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    generation    BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT NOT NULL,
    rotated_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    revoked_at    BIGINT,
    revoke_reason TEXT,
    user_agent    TEXT,
    ip            TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    generation BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE login_throttle (
    key          TEXT PRIMARY KEY,
    failures     BIGINT NOT NULL,
    window_start BIGINT NOT NULL,
    locked_until BIGINT NOT NULL
);

-- fafnir-rbac: subjects, roles, permissions, inheritance, grants, and a version counter that
-- every write bumps (other instances poll it to refresh their in-memory snapshot)
CREATE TABLE rbac_users (
    user_id    TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);

CREATE TABLE roles (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    builtin     BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL
);

CREATE TABLE role_permissions (
    role       TEXT NOT NULL REFERENCES roles (name) ON DELETE CASCADE,
    permission TEXT NOT NULL,
    PRIMARY KEY (role, permission)
);

CREATE TABLE role_parents (
    role   TEXT NOT NULL REFERENCES roles (name) ON DELETE CASCADE,
    parent TEXT NOT NULL REFERENCES roles (name) ON DELETE CASCADE,
    PRIMARY KEY (role, parent)
);

CREATE TABLE user_roles (
    user_id    TEXT NOT NULL REFERENCES rbac_users (user_id) ON DELETE CASCADE,
    role       TEXT NOT NULL REFERENCES roles (name) ON DELETE CASCADE,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, role)
);
CREATE INDEX user_roles_role ON user_roles (role);

CREATE TABLE rbac_version (
    id      BIGINT PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO rbac_version (id, version) VALUES (1, 0);

INSERT INTO roles (name, description, builtin, created_at) VALUES
    ('admin', 'Full access to everything', 1, 0),
    ('member', 'Every registered user: their own profile', 1, 0);
INSERT INTO role_permissions (role, permission) VALUES
    ('admin', '*:*'),
    ('member', 'profile:read'),
    ('member', 'profile:write');

-- fafnir-users: profiles
CREATE TABLE profiles (
    user_id      TEXT PRIMARY KEY,
    first_name   TEXT,
    last_name    TEXT,
    display_name TEXT,
    avatar_url   TEXT,
    bio          TEXT,
    locale       TEXT,
    timezone     TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
