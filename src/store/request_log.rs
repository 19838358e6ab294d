//! `mcp_request_logs`: one row per MCP request, written in batches.

use diesel::prelude::*;

use crate::db::DbError;
use crate::models::NewMcpRequestLog;
use crate::schema::mcp_request_logs;

pub fn insert(conn: &mut PgConnection, rows: &[NewMcpRequestLog]) -> Result<usize, DbError> {
    Ok(diesel::insert_into(mcp_request_logs::table)
        .values(rows)
        .execute(conn)?)
}
