//! `performance_metrics`: the server's own figures over time.

use diesel::prelude::*;

use crate::db::DbError;
use crate::models::{NewPerformanceMetric, PerformanceMetric};
use crate::schema::performance_metrics;

pub fn insert(conn: &mut PgConnection, rows: &[NewPerformanceMetric]) -> Result<usize, DbError> {
    Ok(diesel::insert_into(performance_metrics::table)
        .values(rows)
        .execute(conn)?)
}

/// Newest first, optionally one metric only.
pub fn recent(
    conn: &mut PgConnection,
    metric_name: Option<&str>,
    limit: i64,
) -> Result<Vec<PerformanceMetric>, DbError> {
    let mut q = performance_metrics::table
        .select(PerformanceMetric::as_select())
        .into_boxed();
    if let Some(n) = metric_name {
        q = q.filter(performance_metrics::metric_name.eq(n));
    }
    Ok(q.order(performance_metrics::id.desc())
        .limit(limit)
        .load(conn)?)
}
