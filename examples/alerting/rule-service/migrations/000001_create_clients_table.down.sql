-- Undo 000001: drop clients (its indexes and constraints go with it).
-- Fails while rules or endpoints still reference it: roll those back first.
DROP TABLE IF EXISTS clients;
