-- Undo 000003: drop endpoints (its indexes and constraints go with it).
DROP TABLE IF EXISTS endpoints;
