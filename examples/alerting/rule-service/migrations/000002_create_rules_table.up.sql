-- Create rules: a client's alert conditions, evaluated by the aggregator.
-- A rule fires when `metric comparison threshold` holds for for_duration.
-- email optionally overrides where this rule's alerts go.
CREATE TABLE IF NOT EXISTS rules (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id     bigint      NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    name          text        NOT NULL,
    metric        text        NOT NULL,
    comparison    text        NOT NULL,
    threshold     numeric     NOT NULL,
    for_duration  interval    NOT NULL DEFAULT interval '5 minutes',
    severity      text        NOT NULL DEFAULT 'warning',
    email         text,
    enabled       boolean     NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT rules_comparison_check CHECK (comparison IN ('>', '>=', '<', '<=', '=', '!=')),
    CONSTRAINT rules_severity_check CHECK (severity IN ('info', 'warning', 'critical')),
    CONSTRAINT rules_for_duration_check CHECK (for_duration >= interval '0'),
    CONSTRAINT rules_name_not_blank CHECK (btrim(name) <> '')
);

-- Rule names are unique per client; the index also serves the ON DELETE CASCADE from clients.
CREATE UNIQUE INDEX IF NOT EXISTS rules_client_id_name_key ON rules (client_id, name);

-- The aggregator loads the enabled rules of a metric on every evaluation.
CREATE INDEX IF NOT EXISTS rules_metric_enabled_idx ON rules (metric) WHERE enabled;
