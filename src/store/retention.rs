//! Retention: a series' raw points older than its metric's `raw_days` go,
//! but only before its `folded_to`, so every hour dropped is in the
//! rollups. `raw_from` records how far they went: the hours and days before
//! it are kept without their points, and no write may land there (the
//! server refuses it, the invalidation trigger raises).
//!
//! The rollups age the same way, each level only where the finer one is
//! gone: hours older than `hours_days` go before the day of `raw_from`
//! (`hours_from`, day-aligned, so the days there are whole in the daily
//! table), and days older than `days_days` before `hours_from`
//! (`days_from`; nothing older is kept).

use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamptz};
use regex::Regex;

use crate::config::{Keep, Settings};
use crate::db::DbError;
use crate::store::rollups::floor_to;

/// Which retention applies to each metric.
#[derive(Debug, Clone)]
pub struct Rules {
    default: Keep,
    overrides: Vec<(Regex, Keep)>,
}

impl Rules {
    pub fn from_settings(settings: &Settings) -> Result<Rules, String> {
        Ok(Rules {
            default: settings.retention_keep()?,
            overrides: settings
                .retention_overrides
                .iter()
                .map(|r| Ok((r.pattern()?, r.keep()?)))
                .collect::<Result<_, String>>()?,
        })
    }

    /// Days of each level kept for `metric`.
    pub fn keep(&self, metric: &str) -> Keep {
        self.overrides
            .iter()
            .find(|(p, _)| p.is_match(metric))
            .map_or(self.default, |(_, keep)| *keep)
    }

    /// Nothing is ever dropped (a level goes only where raw points went).
    pub fn keep_all(&self) -> bool {
        self.default.raw.is_none() && self.overrides.iter().all(|(_, k)| k.raw.is_none())
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
    /// `None`: no hour dropped.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub hours_from: Option<DateTime<Utc>>,
    /// `None`: no day dropped.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub days_from: Option<DateTime<Utc>>,
}

/// Up to `limit` catalogued series after `after`, in name order.
pub fn catalog_page(
    conn: &mut PgConnection,
    after: &str,
    limit: i64,
) -> Result<Vec<CatalogRow>, DbError> {
    Ok(diesel::sql_query(
        "SELECT series_name, metric, NULLIF(folded_to, '-infinity') AS folded_to,
                NULLIF(raw_from, '-infinity') AS raw_from,
                NULLIF(hours_from, '-infinity') AS hours_from,
                NULLIF(days_from, '-infinity') AS days_from
           FROM timeseries_series WHERE series_name > $1 ORDER BY series_name LIMIT $2",
    )
    .bind::<Text, _>(after)
    .bind::<BigInt, _>(limit)
    .load(conn)?)
}

/// A series whose raw points before `horizon` are to go, and its hours
/// before `hours` and days before `days` when given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub series: String,
    pub metric: String,
    pub horizon: DateTime<Utc>,
    pub hours: Option<DateTime<Utc>>,
    pub days: Option<DateTime<Utc>>,
    /// The settings would go further, but the hours from `horizon` on are
    /// not folded yet.
    pub held: bool,
}

/// The series of `rows` with something to drop at `now`: raw points before
/// the start of the hour `raw_days` ago, never past `folded_to`; hours
/// before the day `hours_days` ago, never past the day of the (new)
/// `raw_from`; days before the day `days_days` ago, never past the (new)
/// `hours_from`. [`mark`] applies the same bounds again, under lock.
pub fn due(rows: &[CatalogRow], rules: &Rules, now: DateTime<Utc>) -> Vec<Due> {
    let ago = |days: u32, width: i64| floor_to(now - TimeDelta::days(i64::from(days)), width);
    let later = |a: Option<DateTime<Utc>>, b: DateTime<Utc>| a.map_or(b, |a| a.max(b));
    rows.iter()
        .filter_map(|r| {
            let keep = rules.keep(&r.metric);
            let wanted = ago(keep.raw?, 3600);
            let held = r.folded_to.is_none_or(|f| f < wanted);
            let horizon = r.folded_to.map_or(wanted, |f| f.min(wanted));
            // Nothing folded: raw_from stays (mark's LEAST with folded_to).
            let raw_from = match r.folded_to {
                Some(_) => Some(later(r.raw_from, horizon)),
                None => r.raw_from,
            };
            let hours = keep
                .hours
                .zip(raw_from)
                .map(|(d, f)| ago(d, 86_400).min(floor_to(f, 86_400)));
            let hours_from = hours.map(|h| later(r.hours_from, h));
            let days = keep
                .days
                .zip(hours_from)
                .map(|(d, h)| ago(d, 86_400).min(h));
            let moves = |to: Option<DateTime<Utc>>, from: Option<DateTime<Utc>>| {
                to.filter(|t| from.is_none_or(|f| t > &f))
            };
            let (hours, days) = (moves(hours, r.hours_from), moves(days, r.days_from));
            let raw_moves = r.raw_from.is_none_or(|from| horizon > from);
            (held || raw_moves || hours.is_some() || days.is_some()).then(|| Due {
                series: r.series_name.clone(),
                metric: r.metric.clone(),
                horizon,
                hours,
                days,
                held,
            })
        })
        .collect()
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
    /// Hourly and daily rollup rows.
    #[diesel(sql_type = BigInt)]
    pub hours: i64,
    #[diesel(sql_type = BigInt)]
    pub days: i64,
}

pub fn plan(conn: &mut PgConnection, due: &[Due]) -> Result<Vec<Planned>, DbError> {
    let a = arrays(due);
    Ok(diesel::sql_query(
        "SELECT u.s AS series_name, count(d.time) AS points,
                COALESCE(sum(pg_column_size(d.*)), 0)::int8 AS bytes,
                min(d.time) AS first, max(d.time) AS last,
                (SELECT count(*) FROM timeseries_rollups r
                  WHERE r.series_name = u.s AND r.bucket < u.hh) AS hours,
                (SELECT count(*) FROM timeseries_rollups_daily r
                  WHERE r.series_name = u.s AND r.bucket < u.dh) AS days
           FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::timestamptz[])
                AS u(s, h, hh, dh)
           JOIN timeseries_series c ON c.series_name = u.s
           LEFT JOIN LATERAL (SELECT t.* FROM timeseries_data t
                               WHERE t.series_name = u.s AND t.time < LEAST(u.h, c.folded_to)) d ON true
          GROUP BY u.s, u.hh, u.dh ORDER BY u.s",
    )
    .bind::<Array<Text>, _>(a.names)
    .bind::<Array<Timestamptz>, _>(a.raw)
    .bind::<Array<Nullable<Timestamptz>>, _>(a.hours)
    .bind::<Array<Nullable<Timestamptz>>, _>(a.days)
    .load(conn)?)
}

/// `due` as SQL arrays: names, and raw, hour and day horizons.
struct Arrays<'a> {
    names: Vec<&'a str>,
    raw: Vec<DateTime<Utc>>,
    hours: Vec<Option<DateTime<Utc>>>,
    days: Vec<Option<DateTime<Utc>>>,
}

fn arrays(due: &[Due]) -> Arrays<'_> {
    Arrays {
        names: due.iter().map(|d| d.series.as_str()).collect(),
        raw: due.iter().map(|d| d.horizon).collect(),
        hours: due.iter().map(|d| d.hours).collect(),
        days: due.iter().map(|d| d.days).collect(),
    }
}

/// Moves the `raw_from` of each due series to its horizon (never past its
/// `folded_to`, read again under the lock), then its `hours_from` (never
/// past the day of `raw_from`) and `days_from` (never past `hours_from`),
/// in one transaction holding their stripes' fold lock exclusively: no
/// writer of theirs is mid-way, and every later one sees `raw_from` and
/// stays after it.
pub fn mark(conn: &mut PgConnection, due: &[Due]) -> Result<usize, DbError> {
    let a = arrays(due);
    conn.transaction(|conn| {
        crate::db::migrations::fence(conn)?;
        diesel::sql_query("SET LOCAL lock_timeout = '10s'").execute(conn)?;
        diesel::sql_query(
            "SELECT count(pg_advisory_xact_lock(hashtext('mcp_fold'), q.s))
               FROM (SELECT DISTINCT mcp_series_stripe(n) AS s FROM unnest($1::text[]) AS n ORDER BY 1) q",
        )
        .bind::<Array<Text>, _>(&a.names)
        .execute(conn)?;
        let moved = diesel::sql_query(
            "UPDATE timeseries_series c SET raw_from = LEAST(u.h, c.folded_to)
               FROM unnest($1::text[], $2::timestamptz[]) AS u(s, h)
              WHERE c.series_name = u.s AND LEAST(u.h, c.folded_to) > c.raw_from",
        )
        .bind::<Array<Text>, _>(&a.names)
        .bind::<Array<Timestamptz>, _>(&a.raw)
        .execute(conn)?;
        // Each statement sees the one before: hours follow the new raw_from.
        diesel::sql_query(
            "UPDATE timeseries_series c
                SET hours_from = LEAST(u.h, date_bin('1 day', c.raw_from, TIMESTAMPTZ '2000-01-01Z'))
               FROM unnest($1::text[], $2::timestamptz[]) AS u(s, h)
              WHERE c.series_name = u.s AND u.h IS NOT NULL
                AND LEAST(u.h, date_bin('1 day', c.raw_from, TIMESTAMPTZ '2000-01-01Z')) > c.hours_from",
        )
        .bind::<Array<Text>, _>(&a.names)
        .bind::<Array<Nullable<Timestamptz>>, _>(&a.hours)
        .execute(conn)?;
        diesel::sql_query(
            "UPDATE timeseries_series c SET days_from = LEAST(u.h, c.hours_from)
               FROM unnest($1::text[], $2::timestamptz[]) AS u(s, h)
              WHERE c.series_name = u.s AND u.h IS NOT NULL AND LEAST(u.h, c.hours_from) > c.days_from",
        )
        .bind::<Array<Text>, _>(&a.names)
        .bind::<Array<Nullable<Timestamptz>>, _>(&a.days)
        .execute(conn)?;
        Ok(moved)
    })
}

/// Deletes the hourly rollups of `series` before its `hours_from` and its
/// daily ones before its `days_from`, in one transaction; returns how many
/// of each went. A year of one series' hours is 8,760 rows: one statement.
pub fn drop_rollups(conn: &mut PgConnection, series: &str) -> Result<(usize, usize), DbError> {
    conn.transaction(|conn| {
        crate::db::migrations::fence(conn)?;
        let hours = diesel::sql_query(
            "DELETE FROM timeseries_rollups r USING timeseries_series c
              WHERE c.series_name = $1 AND r.series_name = $1 AND r.bucket < c.hours_from",
        )
        .bind::<Text, _>(series)
        .execute(conn)?;
        let days = diesel::sql_query(
            "DELETE FROM timeseries_rollups_daily r USING timeseries_series c
              WHERE c.series_name = $1 AND r.series_name = $1 AND r.bucket < c.days_from",
        )
        .bind::<Text, _>(series)
        .execute(conn)?;
        Ok((hours, days))
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
/// (TimescaleDB's `drop_chunks`), and returns how many, and how many points
/// they held (counted first, in the same transaction, so that `/metrics`
/// counts them too). Elsewhere: (0, 0).
pub fn drop_chunks(conn: &mut PgConnection) -> Result<(i64, i64), DbError> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    // TimescaleDB marks a hypertable's root with its insert blocker.
    let hypertable: i64 = diesel::sql_query(
        "SELECT count(*) AS n FROM pg_trigger
          WHERE tgrelid = 'timeseries_data'::regclass AND tgname = 'ts_insert_blocker'",
    )
    .get_result::<Count>(conn)?
    .n;
    if hypertable == 0 {
        return Ok((0, 0));
    }
    conn.transaction(|conn| {
        crate::db::migrations::fence(conn)?;
        let points = diesel::sql_query(
            "SELECT count(*) AS n FROM timeseries_data
              WHERE time < (SELECT max(k.range_end) FROM timescaledb_information.chunks k
                             WHERE k.hypertable_name = 'timeseries_data'
                               AND k.range_end <= (SELECT min(raw_from) FROM timeseries_series))",
        )
        .get_result::<Count>(conn)?
        .n;
        let chunks = diesel::sql_query(
            "SELECT count(*) AS n FROM (SELECT min(raw_from) AS m FROM timeseries_series) b
              CROSS JOIN LATERAL drop_chunks('timeseries_data', older_than => b.m) c
              WHERE b.m > '-infinity'",
        )
        .get_result::<Count>(conn)?
        .n;
        Ok((chunks, points))
    })
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

/// How far retention went for a set of series: the latest `raw_from` and
/// `hours_from` among them (`None`: nothing dropped at that level).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, QueryableByName)]
pub struct Horizons {
    /// Before it, answers come from the rollups' whole hours.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub raw_from: Option<DateTime<Utc>>,
    /// Before it, answers come from the rollups' whole days.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub hours_from: Option<DateTime<Utc>>,
}

impl Horizons {
    /// Those that `window` reaches before.
    pub fn reached(self, window: crate::domain::Window) -> Horizons {
        let before = |from: &DateTime<Utc>| window.start.is_none_or(|s| s < *from);
        Horizons {
            raw_from: self.raw_from.filter(before),
            hours_from: self.hours_from.filter(before),
        }
    }

    /// The finest width, in seconds, kept over all of `window`: 0 (the
    /// points), an hour or a day.
    pub fn finest(self, window: crate::domain::Window) -> i64 {
        let reached = self.reached(window);
        if reached.hours_from.is_some() {
            super::rollups::DAY
        } else if reached.raw_from.is_some() {
            super::rollups::RESOLUTION
        } else {
            0
        }
    }
}

pub fn horizons(conn: &mut PgConnection, names: &[&str]) -> Result<Horizons, DbError> {
    Ok(diesel::sql_query(
        "SELECT NULLIF(max(raw_from), '-infinity') AS raw_from,
                NULLIF(max(hours_from), '-infinity') AS hours_from
           FROM timeseries_series WHERE series_name = ANY($1)",
    )
    .bind::<Array<Text>, _>(names)
    .get_result(conn)?)
}

/// The refusal of a reader of hours (buckets finer than a day) over a
/// window before `hours_from`.
pub fn hours_retained(hours_from: DateTime<Utc>) -> DbError {
    DbError::Retained(format!(
        "hourly rollups before {} are no longer kept (rollup retention, RETENTION_HOURS_DAYS): \
         use buckets of whole days there, or start the window at or after it",
        hours_from.to_rfc3339()
    ))
}

/// For readers of raw points: a clear refusal when `window` reaches before
/// the named series' `raw_from`, rather than an answer over fewer points.
pub fn require_raw(
    conn: &mut PgConnection,
    names: &[&str],
    window: crate::domain::Window,
) -> Result<(), DbError> {
    match horizons(conn, names)?.raw_from {
        Some(from) if window.start.is_none_or(|s| s < from) => Err(DbError::Retained(format!(
            "raw points before {} are no longer kept (raw retention, RETENTION_RAW_DAYS): \
             this needs raw points, so start the window at or after it; statistics, trends \
             and buckets of whole hours or days still answer from the rollups before it",
            from.to_rfc3339()
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn row(folded_to: Option<&str>, raw_from: Option<&str>) -> CatalogRow {
        CatalogRow {
            series_name: "s".into(),
            metric: "m".into(),
            folded_to: folded_to.map(at),
            raw_from: raw_from.map(at),
            hours_from: None,
            days_from: None,
        }
    }

    #[test]
    fn each_level_stops_where_the_finer_one_stopped() {
        let rules = Rules {
            default: Keep {
                raw: Some(2),
                hours: Some(5),
                days: Some(9),
            },
            overrides: Vec::new(),
        };
        let now = at("2026-12-20T10:30:00Z");
        // Folded past every horizon: each level goes to its own.
        let d = &due(&[row(Some("2026-12-20T09:00:00Z"), None)], &rules, now)[0];
        assert_eq!(d.horizon, at("2026-12-18T10:00:00Z"));
        assert_eq!(d.hours, Some(at("2026-12-15T00:00:00Z")));
        assert_eq!(d.days, Some(at("2026-12-11T00:00:00Z")));
        assert!(!d.held);
        // Folded only to 2026-12-10: raw stops there, and so do the hours
        // (its day) and the days.
        let d = &due(&[row(Some("2026-12-10T07:00:00Z"), None)], &rules, now)[0];
        assert_eq!(d.horizon, at("2026-12-10T07:00:00Z"));
        assert_eq!(d.hours, Some(at("2026-12-10T00:00:00Z")));
        assert_eq!(d.days, Some(at("2026-12-10T00:00:00Z")));
        assert!(d.held);
        // Nothing folded: nothing moves, the series is only held.
        let d = &due(&[row(None, None)], &rules, now)[0];
        assert_eq!((d.hours, d.days, d.held), (None, None, true));
        // Already there: not due.
        let mut done = row(Some("2026-12-20T09:00:00Z"), Some("2026-12-18T10:00:00Z"));
        done.hours_from = Some(at("2026-12-15T00:00:00Z"));
        done.days_from = Some(at("2026-12-11T00:00:00Z"));
        assert!(due(&[done], &rules, now).is_empty());
    }
}
