//! `mcp_request_logs`: one row per MCP request, written in batches.

use diesel::prelude::*;

use crate::db::DbError;
use crate::models::NewMcpRequestLog;
use crate::schema::mcp_request_logs;

/// Binary `COPY`: a busy server logs thousands of rows a second, and this
/// costs PostgreSQL a fraction of a multi-row `INSERT`.
pub fn insert(conn: &mut PgConnection, rows: &[NewMcpRequestLog]) -> Result<usize, DbError> {
    Ok(diesel::copy_from(mcp_request_logs::table)
        .from_insertable(rows)
        .execute(conn)?)
}
