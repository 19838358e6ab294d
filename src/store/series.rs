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

/// Series names after `after`, starting with `prefix`, at most `limit`.
/// A loose index scan over the primary key: one index probe per series,
/// not a scan of every point. The prefix filters rather than bounds the
/// scan: under a linguistic collation names sharing a prefix need not be
/// adjacent in the index.
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
    let sql = "WITH RECURSIVE s(series_name) AS (
                 (SELECT series_name FROM timeseries_data
                   WHERE series_name > $1
                   ORDER BY series_name LIMIT 1)
                 UNION ALL
                 SELECT (SELECT t.series_name FROM timeseries_data t
                          WHERE t.series_name > s.series_name ORDER BY t.series_name LIMIT 1)
                   FROM s WHERE s.series_name IS NOT NULL)
               SELECT series_name FROM s
                WHERE series_name IS NOT NULL AND starts_with(series_name, $2)
                LIMIT $3";
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
    Ok(diesel::sql_query(
        "SELECT n.name AS series,
                COALESCE((SELECT sum(d.count) FROM timeseries_rollups_daily d
                           WHERE d.series_name = n.name AND d.bucket < f.day), 0)::bigint
              + COALESCE((SELECT sum(h.count) FROM timeseries_rollups h
                           WHERE h.series_name = n.name AND h.bucket >= f.day AND h.bucket < f.f), 0)::bigint
              + (SELECT count(*) FROM timeseries_data t
                  WHERE t.series_name = n.name AND t.time >= f.f) AS points,
                (SELECT min(time) FROM timeseries_data t WHERE t.series_name = n.name) AS first_time,
                (SELECT max(time) FROM timeseries_data t WHERE t.series_name = n.name) AS last_time,
                c.metric, c.tags
           FROM unnest($1::text[]) AS n(name)
           LEFT JOIN timeseries_series c ON c.series_name = n.name
          CROSS JOIN LATERAL (
                SELECT COALESCE(c.folded_to, '-infinity') AS f,
                       date_bin('1 day', COALESCE(c.folded_to, '-infinity'),
                                TIMESTAMPTZ '2000-01-01Z') AS day) f
          WHERE EXISTS (SELECT 1 FROM timeseries_data t WHERE t.series_name = n.name)
          ORDER BY n.name",
    )
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
