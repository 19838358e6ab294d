//! Retention of raw points: a series' points older than its metric's
//! `raw_days` go, but only before its `folded_to`, so every hour dropped is
//! in the rollups. `raw_from` records how far they went: the hours and days
//! before it are kept without their points, and no write may land there
//! (the server refuses it, the invalidation trigger raises).

use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamptz};
use regex::Regex;

use crate::config::Settings;
use crate::db::DbError;

/// Which raw retention applies to each metric.
#[derive(Debug, Clone)]
pub struct Rules {
    default: Option<u32>,
    overrides: Vec<(Regex, Option<u32>)>,
}

impl Rules {
    pub fn from_settings(settings: &Settings) -> Result<Rules, String> {
        Ok(Rules {
            default: settings.retention_raw_days,
            overrides: settings
                .retention_overrides
                .iter()
                .map(|r| Ok((r.pattern()?, r.raw_days)))
                .collect::<Result<_, String>>()?,
        })
    }

    /// Days of raw points kept for `metric`; `None`: forever.
    pub fn raw_days(&self, metric: &str) -> Option<u32> {
        self.overrides
            .iter()
            .find(|(p, _)| p.is_match(metric))
            .map_or(self.default, |(_, days)| *days)
    }

    /// Nothing is ever dropped.
    pub fn keep_all(&self) -> bool {
        self.default.is_none() && self.overrides.iter().all(|(_, d)| d.is_none())
    }
}

#[derive(Debug, Clone, QueryableByName)]
pub struct CatalogRow {
    #[diesel(sql_type = Text)]
    pub series_name: String,
    #[diesel(sql_type = Text)]
    pub metric: String,
    /// `None`: nothing folded (-infinity).
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub folded_to: Option<DateTime<Utc>>,
    /// `None`: no point dropped (-infinity).
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub raw_from: Option<DateTime<Utc>>,
}

/// Up to `limit` catalogued series after `after`, in name order.
pub fn catalog_page(
    conn: &mut PgConnection,
    after: &str,
    limit: i64,
) -> Result<Vec<CatalogRow>, DbError> {
    Ok(diesel::sql_query(
        "SELECT series_name, metric, NULLIF(folded_to, '-infinity') AS folded_to,
                NULLIF(raw_from, '-infinity') AS raw_from
           FROM timeseries_series WHERE series_name > $1 ORDER BY series_name LIMIT $2",
    )
    .bind::<Text, _>(after)
    .bind::<BigInt, _>(limit)
    .load(conn)?)
}

/// A series whose raw points before `horizon` are to go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub series: String,
    pub metric: String,
    pub horizon: DateTime<Utc>,
    /// The settings would go further, but the hours from `horizon` on are
    /// not folded yet.
    pub held: bool,
}

/// The series of `rows` with raw points to drop at `now`: before the start
/// of the hour `raw_days` ago, and never past `folded_to`.
pub fn due(rows: &[CatalogRow], rules: &Rules, now: DateTime<Utc>) -> Vec<Due> {
    rows.iter()
        .filter_map(|r| {
            let days = rules.raw_days(&r.metric)?;
            let wanted = hour_floor(now - TimeDelta::days(i64::from(days)));
            // Never past folded_to (the SQL applies it again, under lock).
            let held = r.folded_to.is_none_or(|f| f < wanted);
            let horizon = r.folded_to.map_or(wanted, |f| f.min(wanted));
            (held || r.raw_from.is_none_or(|from| horizon > from)).then(|| Due {
                series: r.series_name.clone(),
                metric: r.metric.clone(),
                horizon,
                held,
            })
        })
        .collect()
}

fn hour_floor(t: DateTime<Utc>) -> DateTime<Utc> {
    let s = t.timestamp().div_euclid(3600) * 3600;
    DateTime::from_timestamp(s, 0).unwrap_or(t)
}

/// What dropping `due` would remove, per series.
#[derive(Debug, Clone, QueryableByName)]
pub struct Planned {
    #[diesel(sql_type = Text)]
    pub series_name: String,
    #[diesel(sql_type = BigInt)]
    pub points: i64,
    /// The rows' size in the table (`pg_column_size`), without indexes.
    #[diesel(sql_type = BigInt)]
    pub bytes: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub first: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub last: Option<DateTime<Utc>>,
}

pub fn plan(conn: &mut PgConnection, due: &[Due]) -> Result<Vec<Planned>, DbError> {
    let (names, horizons): (Vec<&str>, Vec<DateTime<Utc>>) =
        due.iter().map(|d| (d.series.as_str(), d.horizon)).unzip();
    Ok(diesel::sql_query(
        "SELECT u.s AS series_name, count(d.time) AS points,
                COALESCE(sum(pg_column_size(d.*)), 0)::int8 AS bytes,
                min(d.time) AS first, max(d.time) AS last
           FROM unnest($1::text[], $2::timestamptz[]) AS u(s, h)
           JOIN timeseries_series c ON c.series_name = u.s
           LEFT JOIN LATERAL (SELECT t.* FROM timeseries_data t
                               WHERE t.series_name = u.s AND t.time < LEAST(u.h, c.folded_to)) d ON true
          GROUP BY u.s ORDER BY u.s",
    )
    .bind::<Array<Text>, _>(names)
    .bind::<Array<Timestamptz>, _>(horizons)
    .load(conn)?)
}

/// Moves the `raw_from` of each due series to its horizon (never past its
/// `folded_to`, read again under the lock), in one transaction holding
/// their stripes' fold lock exclusively: no writer of theirs is mid-way,
/// and every later one sees `raw_from` and stays after it.
pub fn mark(conn: &mut PgConnection, due: &[Due]) -> Result<usize, DbError> {
    let (names, horizons): (Vec<&str>, Vec<DateTime<Utc>>) =
        due.iter().map(|d| (d.series.as_str(), d.horizon)).unzip();
    conn.transaction(|conn| {
        crate::db::migrations::fence(conn)?;
        diesel::sql_query("SET LOCAL lock_timeout = '10s'").execute(conn)?;
        diesel::sql_query(
            "SELECT count(pg_advisory_xact_lock(hashtext('mcp_fold'), q.s))
               FROM (SELECT DISTINCT mcp_series_stripe(n) AS s FROM unnest($1::text[]) AS n ORDER BY 1) q",
        )
        .bind::<Array<Text>, _>(&names)
        .execute(conn)?;
        Ok(diesel::sql_query(
            "UPDATE timeseries_series c SET raw_from = LEAST(u.h, c.folded_to)
               FROM unnest($1::text[], $2::timestamptz[]) AS u(s, h)
              WHERE c.series_name = u.s AND LEAST(u.h, c.folded_to) > c.raw_from",
        )
        .bind::<Array<Text>, _>(&names)
        .bind::<Array<Timestamptz>, _>(&horizons)
        .execute(conn)?)
    })
}

/// Deletes up to `batch` of the raw points of `series` before its
/// `raw_from`, oldest first, in a transaction of its own (as the server's
/// write: the invalidation trigger skips it). Returns how many went.
///
/// Two statements: the time of the `batch`-th point from an index-only
/// scan, then a delete of the range before it. With that bound as a value
/// the planner takes the primary key's range (about 940,000 points/s here);
/// a subquery in its place read the whole table for each batch (45,000/s).
///
/// `from` is where the previous batch of the run ended: its dead index
/// entries are not walked again.
pub fn drop_batch(
    conn: &mut PgConnection,
    series: &str,
    from: Option<DateTime<Utc>>,
    batch: i64,
) -> Result<(usize, Option<DateTime<Utc>>), DbError> {
    #[derive(QueryableByName)]
    struct Bound {
        #[diesel(sql_type = Nullable<Timestamptz>)]
        bound: Option<DateTime<Utc>>,
    }
    conn.transaction(|conn| {
        crate::db::migrations::fence(conn)?;
        diesel::sql_query("SELECT set_config('mcp.writer', 'server', true)").execute(conn)?;
        let bound: Option<Bound> = diesel::sql_query(
            "SELECT NULLIF(LEAST(c.raw_from,
                                 (SELECT d.time FROM timeseries_data d
                                   WHERE d.series_name = $1 AND d.time >= COALESCE($3, '-infinity')
                                   ORDER BY d.time OFFSET $2 LIMIT 1)), '-infinity') AS bound
               FROM timeseries_series c WHERE c.series_name = $1",
        )
        .bind::<Text, _>(series)
        .bind::<BigInt, _>(batch)
        .bind::<Nullable<Timestamptz>, _>(from)
        .get_result(conn)
        .optional()?;
        let Some(bound) = bound.and_then(|b| b.bound) else {
            return Ok((0, from));
        };
        let n = diesel::sql_query(
            "DELETE FROM timeseries_data
              WHERE series_name = $1 AND time >= COALESCE($3, '-infinity') AND time < $2",
        )
        .bind::<Text, _>(series)
        .bind::<Timestamptz, _>(bound)
        .bind::<Nullable<Timestamptz>, _>(from)
        .execute(conn)?;
        Ok((n, Some(bound)))
    })
}

/// On a hypertable: drops the chunks wholly before every series' `raw_from`
/// (TimescaleDB's `drop_chunks`), and returns how many. Elsewhere: 0.
pub fn drop_chunks(conn: &mut PgConnection) -> Result<i64, DbError> {
    #[derive(QueryableByName)]
    struct Dropped {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    // TimescaleDB marks a hypertable's root with its insert blocker.
    let hypertable: i64 = diesel::sql_query(
        "SELECT count(*) AS n FROM pg_trigger
          WHERE tgrelid = 'timeseries_data'::regclass AND tgname = 'ts_insert_blocker'",
    )
    .get_result::<Dropped>(conn)?
    .n;
    if hypertable == 0 {
        return Ok(0);
    }
    Ok(diesel::sql_query(
        "SELECT count(*) AS n FROM (SELECT min(raw_from) AS m FROM timeseries_series) b
          CROSS JOIN LATERAL drop_chunks('timeseries_data', older_than => b.m) c
          WHERE b.m > '-infinity'",
    )
    .get_result::<Dropped>(conn)?
    .n)
}

/// Holds the retention lock for this session if no other does: one replica
/// enforces retention, the others skip their turn.
pub fn try_lock(conn: &mut PgConnection) -> Result<bool, DbError> {
    #[derive(QueryableByName)]
    struct Got {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        got: bool,
    }
    Ok(
        diesel::sql_query("SELECT pg_try_advisory_lock(hashtext('mcp_retention')) AS got")
            .get_result::<Got>(conn)?
            .got,
    )
}

pub fn unlock(conn: &mut PgConnection) -> Result<(), DbError> {
    diesel::sql_query("SELECT pg_advisory_unlock(hashtext('mcp_retention'))").execute(conn)?;
    Ok(())
}

/// The latest `raw_from` of the named series, when retention dropped any of
/// their points: before it, answers come from the rollups' whole hours.
pub fn raw_from(conn: &mut PgConnection, names: &[&str]) -> Result<Option<DateTime<Utc>>, DbError> {
    #[derive(QueryableByName)]
    struct From {
        #[diesel(sql_type = Nullable<Timestamptz>)]
        raw_from: Option<DateTime<Utc>>,
    }
    Ok(diesel::sql_query(
        "SELECT max(raw_from) AS raw_from FROM timeseries_series
          WHERE series_name = ANY($1) AND raw_from > '-infinity'",
    )
    .bind::<Array<Text>, _>(names)
    .get_result::<From>(conn)?
    .raw_from)
}

/// For readers of raw points: a clear refusal when `window` reaches before
/// the named series' `raw_from`, rather than an answer over fewer points.
pub fn require_raw(
    conn: &mut PgConnection,
    names: &[&str],
    window: crate::domain::Window,
) -> Result<(), DbError> {
    match raw_from(conn, names)? {
        Some(from) if window.start.is_none_or(|s| s < from) => Err(DbError::Retained(format!(
            "raw points before {} are no longer kept (raw retention, RETENTION_RAW_DAYS): \
             this needs raw points, so start the window at or after it; statistics, trends \
             and buckets of whole hours or days still answer from the rollups before it",
            from.to_rfc3339()
        ))),
        _ => Ok(()),
    }
}
