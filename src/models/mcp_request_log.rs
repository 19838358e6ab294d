use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;

use crate::schema::mcp_request_logs;

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = mcp_request_logs, check_for_backend(diesel::pg::Pg))]
pub struct McpRequestLog {
    pub id: i64,
    pub session_id: Option<String>,
    pub request_id: Option<String>,
    pub method: String,
    pub tool_name: Option<String>,
    pub params: Option<serde_json::Value>,
    pub status: String,
    pub error_code: Option<i32>,
    pub error_message: Option<String>,
    pub duration_ms: f64,
    pub client_name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub auth_subject: Option<String>,
    pub auth_client_id: Option<String>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(
    table_name = mcp_request_logs,
    check_for_backend(diesel::pg::Pg),
    // `None` is NULL (every optional column is nullable), as `COPY` needs.
    treat_none_as_default_value = false
)]
pub struct NewMcpRequestLog {
    pub session_id: Option<String>,
    pub request_id: Option<String>,
    pub method: String,
    pub tool_name: Option<String>,
    pub params: Option<serde_json::Value>,
    pub status: String,
    pub error_code: Option<i32>,
    pub error_message: Option<String>,
    pub duration_ms: f64,
    pub client_name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub auth_subject: Option<String>,
    pub auth_client_id: Option<String>,
}
