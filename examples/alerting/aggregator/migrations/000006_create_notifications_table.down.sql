-- Undo 000006: drop notifications (its indexes and constraints go with it).
DROP TABLE IF EXISTS notifications;
