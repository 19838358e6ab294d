-- IF EXISTS: a database whose migrations were only marked applied has no
-- such table to change.
ALTER TABLE IF EXISTS mcp_request_logs
    DROP COLUMN IF EXISTS auth_client_id,
    DROP COLUMN IF EXISTS auth_subject;
