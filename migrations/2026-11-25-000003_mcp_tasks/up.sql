-- MCP 2026 Tasks: the durable state of a long call, readable and cancellable
-- from any replica. The replica running it renews heartbeat_at; a task whose
-- heartbeat stops is reported failed rather than left working for ever.
CREATE TABLE mcp_tasks (
    task_id          TEXT PRIMARY KEY,
    tool_name        TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'working'
                     CHECK (status IN ('working', 'input_required', 'completed', 'failed', 'cancelled')),
    status_message   TEXT,
    -- The inlined CallToolResult once completed; the JSON-RPC error once failed.
    result           JSONB,
    error            JSONB,
    -- Questions waiting for tasks/update, and the answers received so far.
    input_requests   JSONB,
    input_responses  JSONB NOT NULL DEFAULT '{}'::jsonb,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    owner            TEXT NOT NULL,
    heartbeat_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    ttl_ms           BIGINT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at       TIMESTAMPTZ NOT NULL
);

-- Expired tasks are swept by expiry.
CREATE INDEX mcp_tasks_expires_at_idx ON mcp_tasks (expires_at);
