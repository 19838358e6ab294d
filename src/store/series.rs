//! Series as a whole: names, sizes, recent points.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Jsonb, Nullable, Text, Timestamptz};
use serde::Serialize;

use crate::db::DbError;
use crate::domain::Series;
use crate::models::Point;
use crate::schema::timeseries_data;

#[derive(Debug, Clone, QueryableByName, Serialize, schemars::JsonSchema)]
pub struct SeriesSummary {
    #[diesel(sql_type = Text)]
    pub series: String,
    #[diesel(sql_type = BigInt)]
    pub points: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub first_time: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub last_time: Option<DateTime<Utc>>,
    /// The collector's metric (Prometheus `__name__`, InfluxDB
    /// `measurement.field`), or the series name.
    #[diesel(sql_type = Nullable<Text>)]
    pub metric: Option<String>,
    /// The tags last written with the series: a Prometheus label set, an
    /// InfluxDB tag set with `_measurement` and `_field`.
    #[diesel(sql_type = Nullable<Jsonb>)]
    pub tags: Option<serde_json::Value>,
}

/// Whether the catalogued series `{c}` has anything kept: points, or the
/// rollups that retention left without them.
fn kept(c: &str) -> String {
    format!(
        "(EXISTS (SELECT 1 FROM timeseries_data t WHERE t.series_name = {c}.series_name)
          OR ({c}.raw_from > '-infinity'
              AND (EXISTS (SELECT 1 FROM timeseries_rollups_daily d WHERE d.series_name = {c}.series_name)
                   OR EXISTS (SELECT 1 FROM timeseries_rollups h WHERE h.series_name = {c}.series_name))))"
    )
}

/// Series names after `after`, starting with `prefix`, at most `limit`,
/// from the catalog in name order, with one index probe per series for
/// what it keeps. The prefix filters rather than bounds the scan: under a
/// linguistic collation names sharing a prefix need not be adjacent in the
/// index.
pub fn names(
    conn: &mut PgConnection,
    after: &str,
    prefix: &str,
    limit: i64,
) -> Result<Vec<Series>, DbError> {
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = Text)]
        series_name: String,
    }
    let sql = format!(
        "SELECT c.series_name FROM timeseries_series c
          WHERE c.series_name > $1 AND starts_with(c.series_name, $2) AND {}
          ORDER BY c.series_name LIMIT $3",
        kept("c")
    );
    Ok(diesel::sql_query(sql)
        .bind::<Text, _>(after)
        .bind::<Text, _>(prefix)
        .bind::<BigInt, _>(limit)
        .load::<Name>(conn)?
        .into_iter()
        // The table's CHECK holds the same rule, so every stored name parses.
        .filter_map(|n| Series::try_from(n.series_name).ok())
        .collect())
}

pub fn summary(conn: &mut PgConnection, series: &Series) -> Result<Option<SeriesSummary>, DbError> {
    Ok(summaries(conn, std::slice::from_ref(series))?.pop())
}

/// Point counts, first/last times, metric and tags of the named series
/// that have points, in name order: one query, whose cost follows the days
/// of each series (counts come from the rollups up to `folded_to`, and from
/// the points after it), not its points.
pub fn summaries(conn: &mut PgConnection, names: &[Series]) -> Result<Vec<SeriesSummary>, DbError> {
    let names: Vec<&str> = names.iter().map(Series::as_str).collect();
    // Before raw retention's horizon the first row of the rollups holds
    // the first time.
    let sql = format!(
        "SELECT n.name AS series,
                COALESCE((SELECT sum(d.count) FROM timeseries_rollups_daily d
                           WHERE d.series_name = n.name AND d.bucket < f.day), 0)::bigint
              + COALESCE((SELECT sum(h.count) FROM timeseries_rollups h
                           WHERE h.series_name = n.name AND h.bucket >= f.day AND h.bucket < f.f), 0)::bigint
              + (SELECT count(*) FROM timeseries_data t
                  WHERE t.series_name = n.name AND t.time >= f.f) AS points,
                LEAST((SELECT min(time) FROM timeseries_data t WHERE t.series_name = n.name),
                      (SELECT d.first_time FROM timeseries_rollups_daily d
                        WHERE d.series_name = n.name ORDER BY d.bucket LIMIT 1),
                      (SELECT h.first_time FROM timeseries_rollups h
                        WHERE h.series_name = n.name ORDER BY h.bucket LIMIT 1)) AS first_time,
                COALESCE((SELECT max(time) FROM timeseries_data t WHERE t.series_name = n.name),
                         (SELECT h.last_time FROM timeseries_rollups h
                           WHERE h.series_name = n.name ORDER BY h.bucket DESC LIMIT 1)) AS last_time,
                c.metric, c.tags
           FROM unnest($1::text[]) AS n(name)
           JOIN timeseries_series c ON c.series_name = n.name
          CROSS JOIN LATERAL (
                SELECT c.folded_to AS f,
                       date_bin('1 day', c.folded_to, TIMESTAMPTZ '2000-01-01Z') AS day) f
          WHERE {}
          ORDER BY n.name",
        kept("c")
    );
    Ok(diesel::sql_query(sql)
        .bind::<Array<Text>, _>(names)
        .load(conn)?)
}

pub fn latest(conn: &mut PgConnection, series: &Series, limit: i64) -> Result<Vec<Point>, DbError> {
    let mut points: Vec<Point> = timeseries_data::table
        .filter(timeseries_data::series_name.eq(series.as_str()))
        .order(timeseries_data::time.desc())
        .limit(limit)
        .select(Point::as_select())
        .load(conn)?;
    points.reverse();
    Ok(points)
}
