-- Drop clients.email: client addresses moved to endpoints (000003), which rule-service
-- has written since that release; nothing reads this column any more.
ALTER TABLE clients DROP COLUMN IF EXISTS email;
