-- Undo 000002: drop rules (its indexes and constraints go with it).
-- Fails while notifications (aggregator 000006) references it: roll that back first.
DROP TABLE IF EXISTS rules;
