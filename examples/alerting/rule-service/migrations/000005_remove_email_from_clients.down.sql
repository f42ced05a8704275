-- Undo 000005: add clients.email back as 000001 created it (text, nullable).
-- The old values are not restored; the addresses are in endpoints (kind = 'email').
ALTER TABLE clients ADD COLUMN IF NOT EXISTS email text;
