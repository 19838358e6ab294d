use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::schema::mcp_tasks;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = mcp_tasks, check_for_backend(diesel::pg::Pg))]
pub struct McpTask {
    pub task_id: String,
    pub tool_name: String,
    pub status: String,
    pub status_message: Option<String>,
    pub result: Option<serde_json::Value>,
    pub error: Option<serde_json::Value>,
    pub input_requests: Option<serde_json::Value>,
    pub input_responses: serde_json::Value,
    pub cancel_requested: bool,
    pub owner: String,
    pub heartbeat_at: DateTime<Utc>,
    pub ttl_ms: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = mcp_tasks, check_for_backend(diesel::pg::Pg))]
pub struct NewMcpTask<'a> {
    pub task_id: &'a str,
    pub tool_name: &'a str,
    pub status: &'a str,
    pub result: Option<serde_json::Value>,
    pub error: Option<serde_json::Value>,
    pub owner: &'a str,
    pub ttl_ms: i64,
    pub expires_at: DateTime<Utc>,
}
