//! `mcp-server rollups verify`: every stored hour and day that readers use
//! (before the series' `folded_to`) against the raw points, and a rebuild
//! of the series where they differ.
//!
//! Hours are compared with `mcp_rollups_from_raw` over the same points;
//! days with `mcp_days_from_hours` over the stored hours (so a day agrees
//! with the points when its hours do). Counts, extremes, first and last
//! points and sketches must be equal; sums and moments within 1e-9 of each
//! other, relative (the same points summed in another order).

use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz};

use crate::db::DbError;

/// One verify statement covers this much time of one series, so that each
/// stays far within the statement timeout whatever the series' density.
pub const STEP: TimeDelta = TimeDelta::days(7);

/// A catalogued series and the extent of what readers take from its rollups.
#[derive(Debug, Clone, QueryableByName)]
pub struct Extent {
    #[diesel(sql_type = Text)]
    pub series_name: String,
    /// Hour-aligned; `None`: nothing folded.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub folded_to: Option<DateTime<Utc>>,
    /// The first hour in the tables or among the points.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub first: Option<DateTime<Utc>>,
    /// Retention dropped the points before it: hours before it are kept
    /// without them, and only days are checked there (against their hours).
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub raw_from: Option<DateTime<Utc>>,
    /// Rollup retention dropped the hours before it: days there are kept
    /// without them, and nothing is checked.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub hours_from: Option<DateTime<Utc>>,
}

/// Up to `limit` catalogued series after `after` in name order (only those
/// named, when `named` is not empty), with their extents.
pub fn extents(
    conn: &mut PgConnection,
    named: &[String],
    after: &str,
    limit: i64,
) -> Result<Vec<Extent>, DbError> {
    Ok(diesel::sql_query(
        "SELECT s.series_name, NULLIF(s.folded_to, '-infinity') AS folded_to,
                NULLIF(s.raw_from, '-infinity') AS raw_from,
                NULLIF(s.hours_from, '-infinity') AS hours_from,
                LEAST((SELECT min(r.bucket) FROM timeseries_rollups r WHERE r.series_name = s.series_name),
                      (SELECT date_bin('1 hour', min(d.time), TIMESTAMPTZ '2000-01-01Z')
                         FROM timeseries_data d WHERE d.series_name = s.series_name)) AS first
           FROM timeseries_series s
          WHERE s.series_name > $1 AND (cardinality($2::text[]) = 0 OR s.series_name = ANY($2))
          ORDER BY s.series_name LIMIT $3",
    )
    .bind::<Text, _>(after)
    .bind::<diesel::sql_types::Array<Text>, _>(named)
    .bind::<BigInt, _>(limit)
    .load(conn)?)
}

/// A stored row that readers would use and that the points contradict.
#[derive(Debug, Clone, QueryableByName)]
pub struct Difference {
    /// `hour` or `day`.
    #[diesel(sql_type = Text)]
    pub level: String,
    #[diesel(sql_type = Timestamptz)]
    pub bucket: DateTime<Utc>,
    /// `missing` (points, no row), `no points` (a row, no points) or
    /// `differs`, with the stored and recomputed counts.
    #[diesel(sql_type = Text)]
    pub what: String,
}

/// Whether two floats agree within 1e-9, relative.
const CLOSE: &str = "abs(f.{c} - s.{c}) <= 1e-9 * greatest(abs(f.{c}), abs(s.{c}), 1)";

fn differs() -> String {
    let exact = [
        "count",
        "min_value",
        "max_value",
        "first_time",
        "first_value",
        "last_time",
        "last_value",
        "sketch_keys",
        "sketch_counts",
    ]
    .map(|c| format!("f.{c} IS DISTINCT FROM s.{c}"));
    let close = ["sum", "m2", "mean_t", "sxx", "sxy", "increase"]
        .map(|c| format!("NOT ({})", CLOSE.replace("{c}", c)));
    exact
        .into_iter()
        .chain(close)
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// The hours of `series` in [max(from, raw_from), to) and its days in
/// [max(from, hours_from), days_to) that differ from what the points give.
pub fn differences(
    conn: &mut PgConnection,
    series: &str,
    (raw_from, hours_from): (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    (from, to, days_to): (DateTime<Utc>, DateTime<Utc>, DateTime<Utc>),
) -> Result<Vec<Difference>, DbError> {
    let differs = differs();
    let sql = format!(
        "WITH fh AS (SELECT * FROM mcp_rollups_from_raw($1, GREATEST($2, COALESCE($5, $2)), $3)),
              sh AS (SELECT * FROM timeseries_rollups
                      WHERE series_name = $1 AND bucket >= GREATEST($2, COALESCE($5, $2)) AND bucket < $3),
              fd AS (SELECT * FROM mcp_days_from_hours($1, GREATEST($2, COALESCE($6, $2)), $4)),
              sd AS (SELECT * FROM timeseries_rollups_daily
                      WHERE series_name = $1 AND bucket >= GREATEST($2, COALESCE($6, $2)) AND bucket < $4)
         SELECT 'hour' AS level, COALESCE(f.bucket, s.bucket) AS bucket,
                CASE WHEN s.bucket IS NULL THEN 'missing'
                     WHEN f.bucket IS NULL THEN 'no points'
                     ELSE format('differs (count %s stored, %s from the points)', s.count, f.count) END AS what
           FROM fh f FULL JOIN sh s ON f.bucket = s.bucket
          WHERE f.bucket IS NULL OR s.bucket IS NULL OR {differs}
         UNION ALL
         SELECT 'day', COALESCE(f.bucket, s.bucket),
                CASE WHEN s.bucket IS NULL THEN 'missing'
                     WHEN f.bucket IS NULL THEN 'no hours'
                     ELSE format('differs (count %s stored, %s from its hours)', s.count, f.count) END
           FROM fd f FULL JOIN sd s ON f.bucket = s.bucket
          WHERE f.bucket IS NULL OR s.bucket IS NULL OR {differs}
          ORDER BY 1 DESC, 2"
    );
    Ok(diesel::sql_query(sql)
        .bind::<Text, _>(series)
        .bind::<Timestamptz, _>(from)
        .bind::<Timestamptz, _>(to)
        .bind::<Timestamptz, _>(days_to)
        .bind::<Nullable<Timestamptz>, _>(raw_from)
        .bind::<Nullable<Timestamptz>, _>(hours_from)
        .load(conn)?)
}

/// Rebuilds one series' rollups from its points (`mcp_refold`, under the
/// series' fold lock).
pub fn rebuild(conn: &mut PgConnection, series: &str) -> Result<(), DbError> {
    conn.transaction(|conn| {
        crate::db::migrations::fence(conn)?;
        diesel::sql_query("SELECT mcp_refold($1)")
            .bind::<Text, _>(series)
            .execute(conn)?;
        Ok(())
    })
}
