//! Series as a whole: names, sizes, recent points.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamptz};
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

/// Point counts and first/last times of the named series that have points,
/// in name order: one grouped query, not one per series.
pub fn summaries(conn: &mut PgConnection, names: &[Series]) -> Result<Vec<SeriesSummary>, DbError> {
    let names: Vec<&str> = names.iter().map(Series::as_str).collect();
    Ok(diesel::sql_query(
        "SELECT series_name AS series, count(*) AS points, min(time) AS first_time, max(time) AS last_time \
           FROM timeseries_data WHERE series_name = ANY($1) \
          GROUP BY series_name ORDER BY series_name",
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
