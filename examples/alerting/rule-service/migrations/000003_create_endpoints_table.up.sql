-- Create endpoints: where a client's alerts are delivered (email, webhook, Slack, PagerDuty),
-- each with the lowest severity it wants. Replaces clients.email and rules.email.
CREATE TABLE IF NOT EXISTS endpoints (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id     bigint      NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    kind          text        NOT NULL,
    target        text        NOT NULL,
    min_severity  text        NOT NULL DEFAULT 'warning',
    enabled       boolean     NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT endpoints_kind_check CHECK (kind IN ('email', 'webhook', 'slack', 'pagerduty')),
    CONSTRAINT endpoints_min_severity_check CHECK (min_severity IN ('info', 'warning', 'critical')),
    CONSTRAINT endpoints_target_check CHECK (
        (kind = 'email' AND target ~ '^[^@\s]+@[^@\s]+$')
        OR (kind IN ('webhook', 'slack') AND target ~ '^https://')
        OR (kind = 'pagerduty' AND target ~ '^[A-Za-z0-9]{32}$')
    )
);

-- One row per destination; the index also serves the ON DELETE CASCADE from clients.
CREATE UNIQUE INDEX IF NOT EXISTS endpoints_client_id_kind_target_key
    ON endpoints (client_id, kind, target);
