//! Writing points.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Bool, Double, Jsonb, Text, Timestamptz};

use crate::db::DbError;
use crate::domain::Series;

pub struct Written {
    /// Distinct timestamps written.
    pub written: usize,
    /// Of those, timestamps that were new.
    pub inserted: usize,
}

/// Inserts or replaces the points of one series in one statement over
/// arrays (no per-point round trips); all or nothing.
pub fn upsert(
    conn: &mut PgConnection,
    series: &Series,
    times: &[DateTime<Utc>],
    values: &[f64],
    tags: &serde_json::Value,
) -> Result<Written, DbError> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Bool)]
        inserted: bool,
    }
    let sql = "INSERT INTO timeseries_data (series_name, time, value, tags) \
               SELECT $1, u.t, u.v, $4 FROM unnest($2::timestamptz[], $3::float8[]) AS u(t, v) \
               ON CONFLICT (series_name, time) DO UPDATE \
               SET value = EXCLUDED.value, tags = EXCLUDED.tags, ingested_at = now() \
               RETURNING (xmax = 0) AS inserted";
    let rows: Vec<Row> = diesel::sql_query(sql)
        .bind::<Text, _>(series.as_str())
        .bind::<Array<Timestamptz>, _>(times)
        .bind::<Array<Double>, _>(values)
        .bind::<Jsonb, _>(tags)
        .load(conn)?;
    Ok(Written {
        written: rows.len(),
        inserted: rows.iter().filter(|r| r.inserted).count(),
    })
}
