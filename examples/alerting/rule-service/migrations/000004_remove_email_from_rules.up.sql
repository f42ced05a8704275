-- Drop rules.email: per-rule addresses moved to endpoints (000003), which rule-service
-- has written since that release; nothing reads this column any more.
ALTER TABLE rules DROP COLUMN IF EXISTS email;
