-- fafnir-auth: mail waiting to be sent, written in the same transaction as the change that
-- causes it, so nothing is lost when the mail server is down. Sent independently of each other
-- (no order), retried with backoff, and dead after a bounded number of tries. The subject and
-- bodies (they may carry a single-use link) are erased once the message is sent or dead.
CREATE TABLE mail_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body_text       TEXT NOT NULL,
    body_html       TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    sent_at         BIGINT,
    dead_at         BIGINT,
    last_error      TEXT
);

CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at, id) WHERE sent_at IS NULL AND dead_at IS NULL;
