-- Create clients: the customer accounts that own alert rules.
-- email is where a client's alerts go; optional, so a client can be created first.
CREATE TABLE IF NOT EXISTS clients (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug        text        NOT NULL,
    name        text        NOT NULL,
    email       text,
    timezone    text        NOT NULL DEFAULT 'UTC',
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT clients_slug_format CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    CONSTRAINT clients_name_not_blank CHECK (btrim(name) <> '')
);

-- Clients are addressed by slug in URLs and API keys.
CREATE UNIQUE INDEX IF NOT EXISTS clients_slug_key ON clients (slug);
