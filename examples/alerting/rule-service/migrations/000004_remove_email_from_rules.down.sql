-- Undo 000004: add rules.email back as 000002 created it (text, nullable).
-- The old values are not restored; the addresses are in endpoints (kind = 'email').
ALTER TABLE rules ADD COLUMN IF NOT EXISTS email text;
