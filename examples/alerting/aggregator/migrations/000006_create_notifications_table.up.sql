-- Create notifications: one row per alert the aggregator raises; the sender delivers
-- the pending ones. References clients (000001) and rules (000002), owned by rule-service.
-- migcoord:depends rule-service:000002, 000001
CREATE TABLE IF NOT EXISTS notifications (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    client_id    bigint      NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    -- Kept as history when its rule is deleted.
    rule_id      bigint      REFERENCES rules (id) ON DELETE SET NULL,
    severity     text        NOT NULL,
    status       text        NOT NULL DEFAULT 'pending',
    fingerprint  text        NOT NULL,
    summary      text        NOT NULL,
    payload      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    attempts     integer     NOT NULL DEFAULT 0,
    fired_at     timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    sent_at      timestamptz,
    CONSTRAINT notifications_severity_check CHECK (severity IN ('info', 'warning', 'critical')),
    CONSTRAINT notifications_status_check
        CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'suppressed')),
    CONSTRAINT notifications_attempts_check CHECK (attempts >= 0),
    CONSTRAINT notifications_payload_is_object CHECK (jsonb_typeof(payload) = 'object'),
    CONSTRAINT notifications_sent_at_check CHECK ((status = 'sent') = (sent_at IS NOT NULL))
);

-- The sender's queue: oldest pending first, without reading delivered rows.
CREATE INDEX IF NOT EXISTS notifications_pending_idx
    ON notifications (created_at) WHERE status = 'pending';

-- De-duplication: at most one open notification per rule and fingerprint.
CREATE UNIQUE INDEX IF NOT EXISTS notifications_open_key
    ON notifications (rule_id, fingerprint) WHERE status IN ('pending', 'sending');

-- A client's (and a rule's) recent alerts; these also serve the FKs' ON DELETE actions.
CREATE INDEX IF NOT EXISTS notifications_client_id_fired_at_idx
    ON notifications (client_id, fired_at DESC);
CREATE INDEX IF NOT EXISTS notifications_rule_id_fired_at_idx
    ON notifications (rule_id, fired_at DESC);
