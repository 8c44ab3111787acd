-- fafnir-auth: attempts in progress per throttle key, so that parallel guesses cannot all pass
-- the check before any of them is counted. `inflight_at` lets a crashed instance's claims expire.
ALTER TABLE login_throttle ADD COLUMN inflight BIGINT NOT NULL DEFAULT 0;
ALTER TABLE login_throttle ADD COLUMN inflight_at BIGINT NOT NULL DEFAULT 0;
