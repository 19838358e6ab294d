-- Who made each request, as its token says (OAuth `sub` and `client_id`, or
-- a static token's name). The token itself is never stored.
ALTER TABLE mcp_request_logs
    ADD COLUMN auth_subject TEXT,
    ADD COLUMN auth_client_id TEXT;
