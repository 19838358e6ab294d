//! `timeseries_metrics`: each metric family's kind, help and unit, as
//! Prometheus sends them.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel::sql_types::{Array, Text};

use crate::db::DbError;
use crate::models::MetricMetadata;
use crate::schema::timeseries_metrics as m;

/// Keeps what was sent last for each family; rows that did not change are
/// not rewritten (Prometheus resends every family each minute).
pub fn upsert(conn: &mut PgConnection, rows: &[MetricMetadata]) -> Result<usize, DbError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let column = |f: fn(&MetricMetadata) -> &str| rows.iter().map(f).collect::<Vec<&str>>();
    Ok(diesel::sql_query(
        "INSERT INTO timeseries_metrics AS m (metric, kind, help, unit)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
         ON CONFLICT (metric) DO UPDATE
            SET kind = EXCLUDED.kind, help = EXCLUDED.help, unit = EXCLUDED.unit, updated_at = now()
          WHERE (m.kind, m.help, m.unit) IS DISTINCT FROM (EXCLUDED.kind, EXCLUDED.help, EXCLUDED.unit)",
    )
    .bind::<Array<Text>, _>(column(|r| &r.metric))
    .bind::<Array<Text>, _>(column(|r| r.kind.as_str()))
    .bind::<Array<Text>, _>(column(|r| &r.help))
    .bind::<Array<Text>, _>(column(|r| &r.unit))
    .execute(conn)?)
}

/// The metadata of these families, by family.
pub fn of(
    conn: &mut PgConnection,
    families: &[&str],
) -> Result<HashMap<String, MetricMetadata>, DbError> {
    Ok(m::table
        .filter(m::metric.eq_any(families))
        .select(MetricMetadata::as_select())
        .load::<MetricMetadata>(conn)?
        .into_iter()
        .map(|r| (r.metric.clone(), r))
        .collect())
}

/// The families described, by name (only `metric` when given), at most
/// `limit`.
pub fn list(
    conn: &mut PgConnection,
    metric: Option<&str>,
    limit: i64,
) -> Result<Vec<MetricMetadata>, DbError> {
    let mut q = m::table
        .order(m::metric)
        .limit(limit)
        .select(MetricMetadata::as_select())
        .into_boxed();
    if let Some(metric) = metric {
        q = q.filter(m::metric.eq(metric));
    }
    Ok(q.load(conn)?)
}
