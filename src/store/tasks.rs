//! `mcp_tasks`: the durable side of MCP tasks. Every transition is one
//! guarded UPDATE, so a task that reached a terminal state never leaves it,
//! whichever replica writes.

use diesel::dsl::{now, sql};
use diesel::prelude::*;
use diesel::sql_types::{Bool, Jsonb, Text};
use serde_json::Value;

use crate::db::DbError;
use crate::models::{McpTask, NewMcpTask};
use crate::schema::mcp_tasks::dsl::*;

const ACTIVE: [&str; 2] = ["working", "input_required"];

pub fn create(conn: &mut PgConnection, task: &NewMcpTask<'_>) -> Result<(), DbError> {
    diesel::insert_into(mcp_tasks).values(task).execute(conn)?;
    Ok(())
}

/// The task, after marking it failed if the replica running it stopped
/// renewing its heartbeat for `stale`. `None` when unknown or expired.
pub fn get(
    conn: &mut PgConnection,
    id: &str,
    stale: std::time::Duration,
) -> Result<Option<McpTask>, DbError> {
    let lost = serde_json::json!({ "code": -32603,
        "message": "the server running this task stopped before it finished" });
    diesel::update(
        mcp_tasks
            .filter(task_id.eq(id))
            .filter(status.eq_any(ACTIVE))
            // The database's clock on both sides: replicas' clocks may differ.
            .filter(sql::<Bool>(&format!(
                "heartbeat_at < now() - interval '{} milliseconds'",
                stale.as_millis()
            ))),
    )
    .set((
        status.eq("failed"),
        error.eq(Some(lost)),
        input_requests.eq(None::<Value>),
        updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(mcp_tasks
        .filter(task_id.eq(id))
        .filter(expires_at.gt(now))
        .select(McpTask::as_select())
        .first(conn)
        .optional()?)
}

/// Ends an active task: `completed` with its result, or `failed` with its
/// error. A cancelled (or otherwise ended) task is left as it is.
pub fn finish(
    conn: &mut PgConnection,
    id: &str,
    outcome: Result<Value, Value>,
) -> Result<(), DbError> {
    let (new_status, new_result, new_error) = match outcome {
        Ok(r) => ("completed", Some(r), None),
        Err(e) => ("failed", None, Some(e)),
    };
    diesel::update(
        mcp_tasks
            .filter(task_id.eq(id))
            .filter(status.eq_any(ACTIVE)),
    )
    .set((
        status.eq(new_status),
        result.eq(new_result),
        error.eq(new_error),
        input_requests.eq(None::<Value>),
        updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(())
}

/// Renews the heartbeat of every active task `me` runs.
pub fn heartbeat(conn: &mut PgConnection, me: &str) -> Result<(), DbError> {
    diesel::update(mcp_tasks.filter(owner.eq(me)).filter(status.eq_any(ACTIVE)))
        .set(heartbeat_at.eq(now))
        .execute(conn)?;
    Ok(())
}

/// Asks for cancellation: an active task is `cancelled` at once (its
/// replica stops the work when it sees the flag). The status after, or
/// `None` for an unknown task.
pub fn cancel(conn: &mut PgConnection, id: &str) -> Result<Option<String>, DbError> {
    diesel::update(mcp_tasks.filter(task_id.eq(id)).filter(expires_at.gt(now)))
        .set((
            cancel_requested.eq(true),
            status.eq(sql::<Text>(
                "CASE WHEN status IN ('working', 'input_required') THEN 'cancelled' ELSE status END",
            )),
            input_requests.eq(sql::<diesel::sql_types::Nullable<Jsonb>>(
                "CASE WHEN status IN ('working', 'input_required') THEN NULL ELSE input_requests END",
            )),
            updated_at.eq(now),
        ))
        .returning(status)
        .get_result(conn)
        .optional()
        .map_err(DbError::from)
}

/// Parks an active task on questions for the client.
pub fn park(conn: &mut PgConnection, id: &str, requests: Value) -> Result<(), DbError> {
    diesel::update(
        mcp_tasks
            .filter(task_id.eq(id))
            .filter(status.eq_any(ACTIVE)),
    )
    .set((
        status.eq("input_required"),
        input_requests.eq(Some(requests)),
        updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(())
}

/// Back to `working` once every question is answered.
pub fn resume(conn: &mut PgConnection, id: &str) -> Result<(), DbError> {
    diesel::update(
        mcp_tasks
            .filter(task_id.eq(id))
            .filter(status.eq("input_required")),
    )
    .set((
        status.eq("working"),
        input_requests.eq(None::<Value>),
        updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(())
}

/// `tasks/update`: adds the answers and takes the answered questions off
/// the pending ones. `false` for an unknown task.
pub fn answer(conn: &mut PgConnection, id: &str, responses: Value) -> Result<bool, DbError> {
    let keys: Vec<String> = responses
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let updated = diesel::update(mcp_tasks.filter(task_id.eq(id)).filter(expires_at.gt(now)))
        .set((
            input_responses.eq(sql::<Jsonb>("input_responses || ").bind::<Jsonb, _>(responses)),
            input_requests.eq(
                sql::<diesel::sql_types::Nullable<Jsonb>>("input_requests - ")
                    .bind::<diesel::sql_types::Array<Text>, _>(keys),
            ),
            updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(updated > 0)
}

/// What a running task's supervisor watches.
pub fn watch(conn: &mut PgConnection, id: &str) -> Result<Option<(bool, Value)>, DbError> {
    Ok(mcp_tasks
        .filter(task_id.eq(id))
        .select((
            cancel_requested.or(sql::<Bool>("status NOT IN ('working', 'input_required')")),
            input_responses,
        ))
        .first(conn)
        .optional()?)
}

/// Forgets tasks past their time to live.
pub fn sweep(conn: &mut PgConnection) -> Result<usize, DbError> {
    Ok(diesel::delete(mcp_tasks.filter(expires_at.lt(now))).execute(conn)?)
}
