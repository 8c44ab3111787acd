-- fafnir-auth: account lifecycle and the audit log.
-- An account is disabled by an administrator (disabled_at set): it cannot sign in, and its
-- sessions were revoked when it was disabled. last_sign_in_at is for the administrators' list.
ALTER TABLE users ADD COLUMN disabled_at BIGINT;
ALTER TABLE users ADD COLUMN last_sign_in_at BIGINT;

-- Security events, append-only (pruned after the retention period, never updated). No secret
-- is ever written here: types, ids, the client's address and user agent, and small details.
CREATE TABLE audit_events (
    id BIGSERIAL PRIMARY KEY,
    at         BIGINT NOT NULL,
    type       TEXT NOT NULL,
    actor_id   TEXT,
    subject_id TEXT,
    ip         TEXT,
    user_agent TEXT,
    details    TEXT NOT NULL
);

CREATE INDEX audit_events_by_subject ON audit_events (subject_id, id);
CREATE INDEX audit_events_by_actor ON audit_events (actor_id, id);
CREATE INDEX audit_events_by_type ON audit_events (type, id);
CREATE INDEX audit_events_by_time ON audit_events (at);
