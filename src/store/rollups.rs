//! Hourly and daily rollups (`timeseries_rollups`, `…_daily`), read by the
//! analytics so that their cost follows the number of hours in a range, not
//! the number of points.
//!
//! The tables hold each series' hours before its `folded_to` (in
//! `timeseries_series`), complete. Rows from it on are never read: there
//! are none, unless a SQL writer moved `folded_to` back over them (the
//! invalidation log), and then the fold replaces them. Writes land
//! points only; the fold ([`fold`], run in the background) moves a series'
//! tail into the tables, and a write before `folded_to` recomputes what it
//! touched ([`refresh`]). A window's whole hours come from the tables up to
//! `folded_to`; the tail and the partial hours at either edge are summarised
//! from the raw points, with the columns of the SQL function that fills the
//! tables (`mcp_rollups_from_raw`: by it where sketches are read, else
//! point by point here), so every answer is exact and both halves agree.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Double, Integer, Nullable, Text, Timestamptz};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::aggregates::{Summary, TimedValue};
use crate::db::DbError;
use crate::domain::{Aggregate, Bucket, Series, Window};

/// The rollups' width.
pub const RESOLUTION_BUCKET: Bucket = Bucket::HOUR;
/// The same, in seconds.
pub const RESOLUTION: i64 = 3600;

/// The coarsest rows an answer merged: days where rollup retention dropped
/// the hours (`hours_from`), else hours.
pub fn resolution(hours_from: Option<DateTime<Utc>>) -> Bucket {
    if hours_from.is_some() {
        Bucket::DAY
    } else {
        RESOLUTION_BUCKET
    }
}

/// The sketches' relative accuracy: a percentile read from them is within
/// this fraction of a value of the right rank.
pub const SKETCH_ERROR: f64 = 0.01;

/// Where an answer came from, stated in the tools' results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Hourly rollups for whole hours, raw points for the partial hours at the edges.
    Rollup,
    /// Every raw point of the range (and what was stored before rollups).
    #[default]
    Raw,
}

/// One hour of one series (or the part of it inside a window).
#[derive(Debug, Clone, QueryableByName)]
pub struct Row {
    #[diesel(sql_type = Timestamptz)]
    pub bucket: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    pub count: i64,
    #[diesel(sql_type = Double)]
    pub sum: f64,
    #[diesel(sql_type = Double)]
    pub m2: f64,
    #[diesel(sql_type = Double)]
    pub min_value: f64,
    #[diesel(sql_type = Double)]
    pub max_value: f64,
    #[diesel(sql_type = Timestamptz)]
    pub first_time: DateTime<Utc>,
    #[diesel(sql_type = Double)]
    pub first_value: f64,
    #[diesel(sql_type = Timestamptz)]
    pub last_time: DateTime<Utc>,
    #[diesel(sql_type = Double)]
    pub last_value: f64,
    #[diesel(sql_type = Double)]
    pub mean_t: f64,
    #[diesel(sql_type = Double)]
    pub sxx: f64,
    #[diesel(sql_type = Double)]
    pub sxy: f64,
    #[diesel(sql_type = Nullable<Array<Integer>>, deserialize_as = SketchColumn)]
    pub sketch_keys: Vec<i32>,
    #[diesel(sql_type = Nullable<Array<Integer>>, deserialize_as = SketchColumn)]
    pub sketch_counts: Vec<i32>,
    /// A counter's increase between consecutive points inside the row
    /// (a drop counts as a restart from 0).
    #[diesel(sql_type = Double)]
    pub increase: f64,
    /// Seconds the row covers: a day, or an hour (or part of one, at a
    /// window's edge).
    #[diesel(sql_type = BigInt)]
    pub span: i64,
}

/// A sketch column, NULL in reads without sketches: sending an empty
/// array a row took the server a fifth of the time it spent sending a
/// fleet's 142,000 hour rows.
struct SketchColumn(Vec<i32>);

impl diesel::deserialize::FromSql<Nullable<Array<Integer>>, diesel::pg::Pg> for SketchColumn {
    fn from_sql(value: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
        <Vec<i32> as diesel::deserialize::FromSql<Array<Integer>, diesel::pg::Pg>>::from_sql(value)
            .map(SketchColumn)
    }

    fn from_nullable_sql(
        value: Option<diesel::pg::PgValue<'_>>,
    ) -> diesel::deserialize::Result<Self> {
        value.map_or(Ok(SketchColumn(Vec::new())), Self::from_sql)
    }
}

impl From<SketchColumn> for Vec<i32> {
    fn from(c: SketchColumn) -> Vec<i32> {
        c.0
    }
}

/// The daily level's width, in seconds.
pub const DAY: i64 = 86_400;

/// The start of `t`'s `width`-second bucket, as
/// `date_bin(width, t, TIMESTAMPTZ '2000-01-01Z')` (hours and days align
/// with the epoch too; other widths need that origin).
pub(crate) fn floor_to(t: DateTime<Utc>, width: i64) -> DateTime<Utc> {
    const ORIGIN_US: i64 = 946_684_800_000_000;
    let w = width.saturating_mul(1_000_000).max(1);
    let us = t.timestamp_micros();
    DateTime::from_timestamp_micros(ORIGIN_US + (us - ORIGIN_US).div_euclid(w) * w).unwrap_or(t)
}

fn ceil_to(t: DateTime<Utc>, width: i64) -> DateTime<Utc> {
    let floor = floor_to(t, width);
    if floor == t {
        t
    } else {
        floor + TimeDelta::seconds(width)
    }
}

fn hour_floor(t: DateTime<Utc>) -> DateTime<Utc> {
    floor_to(t, RESOLUTION)
}

/// A level of rollups: its width in seconds, and the function that
/// recomputes and stores its rows over (series, from, to) ranges.
struct Level {
    width: i64,
    store: &'static str,
}

const HOURS: Level = Level {
    width: RESOLUTION,
    store: "SELECT mcp_store_hours($1, $2, $3)",
};

const DAYS: Level = Level {
    width: DAY,
    store: "SELECT mcp_store_days($1, $2, $3)",
};

/// Points a write put before their series' `folded_to` (sorted).
pub type Touched<'a> = (&'a Series, &'a [(DateTime<Utc>, f64)]);

/// Recomputes the hours, then the days, that `touched` points fall in, in
/// the writing transaction. It takes the refresh lock of their stripes, so
/// that two writers into one folded hour recompute it one after the other
/// and the second sees both writes; the fold lock (held shared) keeps the
/// fold away meanwhile.
pub fn refresh(conn: &mut PgConnection, touched: &[Touched]) -> Result<(), DbError> {
    if touched.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = touched.iter().map(|(s, _)| s.as_str()).collect();
    diesel::sql_query(
        "SELECT count(pg_advisory_xact_lock(hashtext('mcp_refresh'), s)) AS n
           FROM (SELECT DISTINCT mcp_series_stripe(n) AS s FROM unnest($1::text[]) AS n
                 ORDER BY s) q",
    )
    .bind::<Array<Text>, _>(&names)
    .execute(conn)?;
    recompute(conn, &HOURS, touched)?;
    recompute(conn, &DAYS, touched)
}

/// Upserts the rows of `level` that the points fall in, each run of
/// consecutive rows of a series computed by one call of its function.
fn recompute(conn: &mut PgConnection, level: &Level, touched: &[Touched]) -> Result<(), DbError> {
    let (mut series, mut from, mut to) = (vec![], vec![], vec![]);
    for (s, points) in touched {
        let (f, t) = runs(points, level.width);
        series.extend(std::iter::repeat_n(s.as_str(), f.len()));
        from.extend(f);
        to.extend(t);
    }
    if from.is_empty() {
        return Ok(());
    }
    diesel::sql_query(level.store)
        .bind::<Array<Text>, _>(&series)
        .bind::<Array<Timestamptz>, _>(&from)
        .bind::<Array<Timestamptz>, _>(&to)
        .execute(conn)?;
    Ok(())
}

/// Runs of consecutive `width`-second buckets that sorted `points` fall in,
/// one [from, to) range each.
fn runs(points: &[(DateTime<Utc>, f64)], width: i64) -> (Vec<DateTime<Utc>>, Vec<DateTime<Utc>>) {
    let (mut from, mut to): (Vec<DateTime<Utc>>, Vec<DateTime<Utc>>) = (vec![], vec![]);
    for &(t, _) in points {
        let start = floor_to(t, width);
        match to.last_mut() {
            Some(end) if start < *end => {}
            Some(end) if start == *end => *end = start + TimeDelta::seconds(width),
            _ => {
                from.push(start);
                to.push(start + TimeDelta::seconds(width));
            }
        }
    }
    (from, to)
}

/// Which lock stripe each named series is in (`mcp_series_stripe`).
pub fn stripes(conn: &mut PgConnection, names: &[&str]) -> Result<Vec<(i32, String)>, DbError> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Integer)]
        stripe: i32,
        #[diesel(sql_type = Text)]
        name: String,
    }
    Ok(diesel::sql_query(
        "SELECT mcp_series_stripe(n) AS stripe, n AS name FROM unnest($1::text[]) AS n ORDER BY 1",
    )
    .bind::<Array<Text>, _>(names)
    .load::<Row>(conn)?
    .into_iter()
    .map(|r| (r.stripe, r.name))
    .collect())
}

/// What one fold step did: how many series moved, and their first point at
/// or after the step's end.
pub type Fold = (i32, Option<DateTime<Utc>>);

/// Folds the named series (all of one stripe) up to `until`, an hour
/// boundary: their raw points from `folded_to` on go into the hours and
/// days, and `folded_to` moves to `until`, or to the hour of a series'
/// newest point if that is sooner (to that hour's end for the series in
/// `whole`). In its own transaction, with the stripe's fold lock held
/// exclusively; `None` when writers held it past [`FOLD_LOCK_WAIT`]
/// (`wait` false) and nothing was done. Returns how many series moved and
/// their first point at or after `until`.
pub fn fold(
    conn: &mut PgConnection,
    stripe: i32,
    (names, whole): (&[&str], &[&str]),
    until: DateTime<Utc>,
    wait: bool,
) -> Result<Option<Fold>, DbError> {
    #[derive(QueryableByName)]
    struct Moved {
        #[diesel(sql_type = Integer)]
        moved: i32,
        #[diesel(sql_type = Nullable<Timestamptz>)]
        next: Option<DateTime<Utc>>,
    }
    let folded: Result<_, DbError> = conn.transaction(|conn| {
        crate::db::migrations::fence(conn)?;
        if !wait {
            // Waits for the writers of the stripe that hold it now, not for
            // ever: a try-lock lost to a stream of writes (a backfill, a
            // collector catching up) almost every time, and the hours stayed
            // unfolded until the writes stopped, so reads right after paid
            // for raw points. Writers that come after queue behind the fold.
            diesel::sql_query(format!(
                "SET LOCAL lock_timeout = {}",
                FOLD_LOCK_WAIT.as_millis()
            ))
            .execute(conn)?;
        }
        // Past the wait, the lock timeout below says the stripe was busy.
        diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext('mcp_fold'), $1)")
            .bind::<Integer, _>(stripe)
            .execute(conn)?;
        if !wait {
            diesel::sql_query("SET LOCAL lock_timeout = DEFAULT").execute(conn)?;
        }
        let moved: Moved = diesel::sql_query(
            // The sibling subquery sees folded_to as it was before the fold.
            "SELECT mcp_fold($1, $2, $3) AS moved,
                    (SELECT min(m.t) FROM timeseries_series s
                      CROSS JOIN LATERAL (SELECT min(d.time) AS t FROM timeseries_data d
                                           WHERE d.series_name = s.series_name
                                             AND d.time >= GREATEST($2, s.folded_to)) m
                      WHERE s.series_name = ANY($1)) AS next",
        )
        .bind::<Array<Text>, _>(names)
        .bind::<Timestamptz, _>(until)
        .bind::<Array<Text>, _>(whole)
        .get_result(conn)?;
        Ok(Some((moved.moved, moved.next)))
    });
    match folded {
        Err(e) if e.is_lock_timeout() => Ok(None),
        other => other,
    }
}

/// How long a background fold waits for a stripe's writers.
const FOLD_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Catalogued series with raw points in [folded_to, until), with the first
/// of them: what a fold would move, found without a record of what was
/// written (after a restart), at most `limit`.
pub fn unfolded(
    conn: &mut PgConnection,
    until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<(String, DateTime<Utc>)>, DbError> {
    // As mcp_fold: no further than the hour of the series' newest point.
    Ok(diesel::sql_query(
        "SELECT s.series_name, t.first FROM timeseries_series s
          CROSS JOIN LATERAL (SELECT min(d.time) AS first, max(d.time) AS last
                                FROM timeseries_data d
                               WHERE d.series_name = s.series_name AND d.time >= s.folded_to) t
          WHERE s.folded_to < $1
            AND t.first < LEAST($1, date_bin('1 hour', t.last, TIMESTAMPTZ '2000-01-01Z'))
          LIMIT $2",
    )
    .bind::<Timestamptz, _>(until)
    .bind::<BigInt, _>(limit)
    .load::<Tail>(conn)?
    .into_iter()
    .map(|t| (t.series_name, t.first))
    .collect())
}

/// A series and the first time a fold has to start from.
#[derive(QueryableByName)]
struct Tail {
    #[diesel(sql_type = Text)]
    series_name: String,
    #[diesel(sql_type = Timestamptz)]
    first: DateTime<Utc>,
}

/// Takes up to `limit` entries of the invalidation log: series that SQL
/// writers touched (their `folded_to` is already back at the first hour
/// touched), with that hour. Entries of writers still open are left for
/// later rather than waited for.
pub fn invalidated(
    conn: &mut PgConnection,
    limit: i64,
) -> Result<Vec<(String, DateTime<Utc>)>, DbError> {
    Ok(diesel::sql_query(
        "DELETE FROM timeseries_invalidations
          WHERE series_name IN (SELECT series_name FROM timeseries_invalidations
                                 ORDER BY since LIMIT $1 FOR UPDATE SKIP LOCKED)
          RETURNING series_name, since AS first",
    )
    .bind::<BigInt, _>(limit)
    .load::<Tail>(conn)?
    .into_iter()
    .map(|t| (t.series_name, t.first))
    .collect())
}

/// The rows of `series` in `window`, in time order: whole days from the
/// daily table when `days`, whole hours from the hourly one, the hours from
/// the series' `folded_to` on summarised from the raw points (the tail the
/// fold has not reached), and the partial hours at the edges from the raw
/// points. At most `max_rows` when given; without sketches unless `sketch`.
pub fn read(
    conn: &mut PgConnection,
    series: &Series,
    window: Window,
    (days, sketch): (bool, bool),
    max_rows: Option<i64>,
) -> Result<Vec<Row>, DbError> {
    Ok(
        read_many(conn, &[series.as_str()], window, (days, sketch), max_rows)?
            .pop()
            .unwrap_or_default(),
    )
}

/// A row read for many series: whose it is, by its index in the names
/// asked for (a number, not the name: a read of 2,000 series' hours has
/// 144,000 rows).
#[derive(Debug, Clone, QueryableByName)]
struct IndexedRow {
    #[diesel(sql_type = Integer)]
    series: i32,
    #[diesel(embed)]
    row: Row,
}

/// Rows in (series, time) order, cut at `max_rows`, as one list per name.
fn per_series(mut rows: Vec<IndexedRow>, names: usize, max_rows: Option<i64>) -> Vec<Vec<Row>> {
    // Stable: runs already in order (the cut case) cost one pass.
    rows.sort_by_key(|r| (r.series, r.row.bucket));
    if let Some(max) = max_rows {
        rows.truncate(usize::try_from(max).unwrap_or(0));
    }
    let mut out = vec![Vec::new(); names];
    for r in rows {
        if let Some(rows) = usize::try_from(r.series).ok().and_then(|i| out.get_mut(i)) {
            rows.push(r.row);
        }
    }
    out
}

/// [`read`] for many series in one statement: each name's rows, in time
/// order.
///
/// Without `sketch` the rows carry none, and the raw parts are summarised
/// here rather than by `mcp_rollups_from_raw`: the same columns but the
/// sketch, four to five times cheaper over a large unfolded tail (the first
/// read after a bulk write).
pub fn read_many(
    conn: &mut PgConnection,
    names: &[&str],
    window: Window,
    (days, sketch): (bool, bool),
    max_rows: Option<i64>,
) -> Result<Vec<Vec<Row>>, DbError> {
    // One snapshot for the horizons and the rows: retention that moved a
    // horizon and deleted behind it in between would leave a gap.
    snapshot(conn, |conn| {
        let horizons = super::retention::horizons(conn, names)?;
        let window = widen(window, horizons);
        match horizons.hours_from {
            Some(from) if !days && window.start.is_none_or(|s| s < from) => {
                Err(super::retention::hours_retained(from))
            }
            _ => read_rows(conn, names, window, (days, sketch), max_rows),
        }
    })
}

/// Runs `read` in a read-only REPEATABLE READ transaction (one snapshot),
/// unless one is open already.
fn snapshot<T>(
    conn: &mut PgConnection,
    read: impl FnOnce(&mut PgConnection) -> Result<T, DbError>,
) -> Result<T, DbError> {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    if AnsiTransactionManager::transaction_manager_status_mut(conn)
        .transaction_depth()?
        .is_some()
    {
        return read(conn);
    }
    conn.build_transaction()
        .repeatable_read()
        .read_only()
        .run(read)
}

/// Before `hours_from` only whole days are kept, and before `raw_from`
/// whole hours: an edge there is widened to its day or hour, rather than
/// summarised from rows that are gone. Both horizons are aligned, so an
/// end before one lies in a day or hour that starts before it.
fn widen(window: Window, h: super::retention::Horizons) -> Window {
    let width = |t: DateTime<Utc>| {
        if h.hours_from.is_some_and(|f| t < f) {
            Some(DAY)
        } else {
            h.raw_from.is_some_and(|f| t < f).then_some(RESOLUTION)
        }
    };
    Window {
        start: window.start.map(|t| width(t).map_or(t, |w| floor_to(t, w))),
        end: window.end.map(|t| width(t).map_or(t, |w| ceil_to(t, w))),
    }
}

/// [`read_many`] over a window already widened.
fn read_rows(
    conn: &mut PgConnection,
    names: &[&str],
    window: Window,
    (days, sketch): (bool, bool),
    max_rows: Option<i64>,
) -> Result<Vec<Vec<Row>>, DbError> {
    // Whole hours are [hlo, hhi), whole days [dlo, dhi) inside them; NULL
    // stands for -infinity in a lower bound and +infinity in an upper one.
    let (mut hlo, mut hhi) = (
        window.start.map(|t| ceil_to(t, RESOLUTION)),
        window.end.map(hour_floor),
    );
    if let (Some(l), Some(h)) = (hlo, hhi)
        && l >= h
    {
        // No whole hour: all of it is the left edge.
        (hlo, hhi) = (window.end, window.end);
    }
    let (mut dlo, mut dhi) = (hlo.map(|t| ceil_to(t, DAY)), hhi.map(|t| floor_to(t, DAY)));
    if let (Some(l), Some(h)) = (dlo, dhi)
        && l >= h
    {
        (dlo, dhi) = (hhi, hhi);
    }
    let columns = format!(
        "bucket, count, sum, m2, min_value, max_value, first_time, first_value, \
         last_time, last_value, mean_t, sxx, sxy, {}, increase",
        if sketch {
            "sketch_keys, sketch_counts"
        } else {
            "NULL::int[] AS sketch_keys, NULL::int[] AS sketch_counts"
        }
    );
    // The raw parts (the tail from folded_to, and the partial hours at the
    // edges): with sketches by `mcp_rollups_from_raw`; without, streamed
    // and summarised here by [`raw_rows`], which is several times cheaper
    // than window functions in SQL over a large unfolded tail (the first
    // read after a bulk write).
    let raw = if sketch {
        format!(
            "UNION ALL
             SELECT c.i, {columns}, 3600 FROM c
              CROSS JOIN LATERAL mcp_rollups_from_raw(c.name, GREATEST(c.hlo, c.f), c.hhi)
              WHERE c.hhi > GREATEST(c.hlo, c.f)
             UNION ALL
             SELECT c.i, {columns}, 3600 FROM c CROSS JOIN LATERAL mcp_rollups_from_raw(c.name, $2, $4)
              WHERE $4 > $2
             UNION ALL
             SELECT c.i, {columns}, 3600 FROM c CROSS JOIN LATERAL mcp_rollups_from_raw(c.name, $5, $3)
              WHERE $3 > $5"
        )
    } else {
        String::new()
    };
    // The tables hold hours before f = folded_to, and days that end by it:
    // whole hours come from the table up to h1, whole days up to d1, and the
    // whole hours from f on are summarised from the raw points. Each series'
    // rows are one index range scan (OFFSET 0 keeps the subqueries apart):
    // joined as a whole, the planner hashed entire tables for a fleet.
    // Ordered in SQL only when cut at max_rows; always in Rust after.
    let order = if max_rows.is_some() {
        "ORDER BY series, bucket LIMIT $8"
    } else {
        ""
    };
    let sql = format!(
        "WITH b AS (
            SELECT COALESCE($4, '-infinity'::timestamptz) AS hlo,
                   COALESCE($5, 'infinity'::timestamptz) AS hhi,
                   COALESCE($6, '-infinity'::timestamptz) AS dlo,
                   COALESCE($7, 'infinity'::timestamptz) AS dhi),
         s AS (
            SELECT n.name, (n.i - 1)::int4 AS i, COALESCE(t.folded_to, '-infinity'::timestamptz) AS f
              FROM unnest($1::text[]) WITH ORDINALITY AS n(name, i)
              LEFT JOIN timeseries_series t ON t.series_name = n.name),
         c AS (
            SELECT s.name, s.i, b.hlo, b.hhi, b.dlo, s.f, LEAST(b.hhi, s.f) AS h1,
                   GREATEST(b.dlo, LEAST(b.dhi, date_bin('1 day', s.f, TIMESTAMPTZ '2000-01-01Z'))) AS d1
              FROM s CROSS JOIN b)
         SELECT c.i AS series, {columns}, 86400::int8 AS span
           FROM c CROSS JOIN LATERAL (
                SELECT * FROM timeseries_rollups_daily r
                 WHERE $9 AND r.series_name = c.name AND r.bucket >= c.dlo AND r.bucket < c.d1
                OFFSET 0) r
         UNION ALL
         SELECT c.i, {columns}, 3600 FROM c CROSS JOIN LATERAL (
                SELECT * FROM timeseries_rollups r
                 WHERE r.series_name = c.name AND r.bucket >= c.hlo
                   AND r.bucket < CASE WHEN $9 THEN LEAST(c.dlo, c.h1) ELSE c.h1 END
                OFFSET 0) r
         UNION ALL
         SELECT c.i, {columns}, 3600 FROM c CROSS JOIN LATERAL (
                SELECT * FROM timeseries_rollups r
                 WHERE $9 AND r.series_name = c.name AND r.bucket >= c.d1 AND r.bucket < c.h1
                OFFSET 0) r
         {raw}
         {order}"
    );
    let mut rows: Vec<IndexedRow> = diesel::sql_query(sql)
        .bind::<Array<Text>, _>(names)
        .bind::<Nullable<Timestamptz>, _>(window.start)
        .bind::<Nullable<Timestamptz>, _>(window.end)
        .bind::<Nullable<Timestamptz>, _>(hlo)
        .bind::<Nullable<Timestamptz>, _>(hhi)
        .bind::<Nullable<Timestamptz>, _>(dlo)
        .bind::<Nullable<Timestamptz>, _>(dhi)
        .bind::<Nullable<BigInt>, _>(max_rows)
        .bind::<diesel::sql_types::Bool, _>(days)
        .load(conn)?;
    if !sketch {
        let ranges = Ranges::Unfolded { window, hlo, hhi };
        rows.extend(raw_rows(conn, names, ranges, RESOLUTION, max_rows)?);
    }
    Ok(per_series(rows, names.len(), max_rows))
}

/// The raw points a reader summarises.
#[derive(Clone, Copy)]
enum Ranges {
    /// What the tables do not hold: from the series' `folded_to` (or the
    /// whole hours' start `hlo`) to `hhi`, and the partial hours at the
    /// window's edges.
    Unfolded {
        window: Window,
        hlo: Option<DateTime<Utc>>,
        hhi: Option<DateTime<Utc>>,
    },
    /// Every point in the window.
    All(Window),
}

/// Rows of `width` seconds (aligned as date_bin's, 2000-01-01T00:00Z)
/// summarised from the raw points of `names` in `ranges`: the columns of
/// `mcp_rollups_from_raw` but the sketch. The points stream in series and
/// time order (one index range scan each, sorted within the series), so
/// memory holds one row at a time, however many points. At most
/// `max_rows` rows, the first in that order.
fn raw_rows(
    conn: &mut PgConnection,
    names: &[&str],
    ranges: Ranges,
    width: i64,
    max_rows: Option<i64>,
) -> Result<Vec<IndexedRow>, DbError> {
    let (window, hlo, hhi, folded) = match ranges {
        Ranges::Unfolded { window, hlo, hhi } => (window, hlo, hhi, true),
        Ranges::All(w) => (w, w.start, w.end, false),
    };
    let points = diesel::sql_query(
        "SELECT (n.i - 1)::int4 AS series, d.time, d.value
           FROM (SELECT n.name, n.i,
                        GREATEST(COALESCE($4, '-infinity'::timestamptz),
                                 CASE WHEN $6 THEN COALESCE(t.folded_to, '-infinity'::timestamptz)
                                      ELSE '-infinity'::timestamptz END) AS lo
                   FROM unnest($1::text[]) WITH ORDINALITY AS n(name, i)
                   LEFT JOIN timeseries_series t ON t.series_name = n.name
                  ORDER BY n.i OFFSET 0) n
          CROSS JOIN LATERAL (
                SELECT n.lo, COALESCE($5, 'infinity'::timestamptz) AS hi
                UNION ALL SELECT $2, $4 WHERE $4 > $2
                UNION ALL SELECT $5, $3 WHERE $3 > $5) r
          CROSS JOIN LATERAL (
                SELECT time, value FROM timeseries_data
                 WHERE series_name = n.name AND time >= r.lo AND time < r.hi OFFSET 0) d
          ORDER BY n.i, d.time",
    )
    .bind::<Array<Text>, _>(names)
    .bind::<Nullable<Timestamptz>, _>(window.start)
    .bind::<Nullable<Timestamptz>, _>(window.end)
    .bind::<Nullable<Timestamptz>, _>(hlo)
    .bind::<Nullable<Timestamptz>, _>(hhi)
    .bind::<diesel::sql_types::Bool, _>(folded)
    .load_iter::<super::aggregates::IndexedPoint, diesel::pg::PgRowByRowLoadingMode>(conn)?;
    let max = max_rows.map_or(usize::MAX, |m| usize::try_from(m).unwrap_or(0));
    let mut out: Vec<IndexedRow> = Vec::new();
    let mut open: Option<(i32, Summing)> = None;
    let close = |out: &mut Vec<IndexedRow>, (series, s): (i32, Summing)| {
        out.push(IndexedRow {
            series,
            row: s.row(width),
        });
    };
    for p in points {
        let p = p?;
        let bucket = floor_to(p.time, width);
        match &mut open {
            Some((series, s)) if *series == p.series && s.bucket == bucket => {
                s.add(p.time, p.value)
            }
            _ => {
                if let Some(done) = open.take() {
                    close(&mut out, done);
                }
                if out.len() >= max {
                    break;
                }
                let mut s = Summing::new(bucket);
                s.add(p.time, p.value);
                open = Some((p.series, s));
            }
        }
    }
    if let Some(done) = open.take()
        && out.len() < max
    {
        close(&mut out, done);
    }
    Ok(out)
}

/// How much a counter grew from `before` to `after`: a drop is a restart
/// from 0, as Prometheus counts it.
fn counter_step(before: f64, after: f64) -> f64 {
    if after >= before {
        after - before
    } else {
        after
    }
}

/// One row summed point by point (Welford's updates for the moments, so
/// it holds no points): what `mcp_rollups_from_raw` computes in SQL.
struct Summing {
    bucket: DateTime<Utc>,
    n: i64,
    sum: f64,
    min: f64,
    max: f64,
    first: (DateTime<Utc>, f64),
    last: (DateTime<Utc>, f64),
    mean_x: f64,
    mean_y: f64,
    sxx: f64,
    syy: f64,
    sxy: f64,
    increase: f64,
}

impl Summing {
    fn new(bucket: DateTime<Utc>) -> Summing {
        Summing {
            bucket,
            n: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            first: (bucket, 0.0),
            last: (bucket, 0.0),
            mean_x: 0.0,
            mean_y: 0.0,
            sxx: 0.0,
            syy: 0.0,
            sxy: 0.0,
            increase: 0.0,
        }
    }

    /// The next point, in time order.
    fn add(&mut self, t: DateTime<Utc>, v: f64) {
        if self.n == 0 {
            self.first = (t, v);
        } else {
            self.increase += counter_step(self.last.1, v);
        }
        self.last = (t, v);
        self.n += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        let x = (t - self.bucket).as_seconds_f64();
        let n = self.n as f64;
        let (dx, dy) = (x - self.mean_x, v - self.mean_y);
        self.mean_x += dx / n;
        self.mean_y += dy / n;
        self.sxx += dx * (x - self.mean_x);
        self.syy += dy * (v - self.mean_y);
        self.sxy += dx * (v - self.mean_y);
    }

    fn row(self, span: i64) -> Row {
        Row {
            bucket: self.bucket,
            count: self.n,
            sum: self.sum,
            m2: self.syy,
            min_value: self.min,
            max_value: self.max,
            first_time: self.first.0,
            first_value: self.first.1,
            last_time: self.last.0,
            last_value: self.last.1,
            mean_t: self.mean_x,
            sxx: self.sxx,
            sxy: self.sxy,
            sketch_keys: Vec::new(),
            sketch_counts: Vec::new(),
            increase: self.increase,
            span,
        }
    }
}

/// Rows of `width` (any width, aligned as date_bin's) summarised from the
/// raw points of each of `names` in `window`, ordered by series, then time:
/// what [`read_many`] gives for whole hours, for buckets finer than the
/// rollups. No sketches (their percentiles need whole hours).
pub fn read_many_raw(
    conn: &mut PgConnection,
    names: &[&str],
    window: Window,
    width: Bucket,
) -> Result<Vec<Vec<Row>>, DbError> {
    super::retention::require_raw(conn, names, window)?;
    let rows = raw_rows(conn, names, Ranges::All(window), width.seconds(), None)?;
    Ok(per_series(rows, names.len(), None))
}

/// The hour rows of `series` in the ranges [from, to), in time order: the
/// hours of days whose summary is not fine enough.
pub fn hours_in(
    conn: &mut PgConnection,
    series: &Series,
    (from, to): super::aggregates::Ranges,
) -> Result<Vec<Row>, DbError> {
    Ok(diesel::sql_query(
        "SELECT r.bucket, r.count, r.sum, r.m2, r.min_value, r.max_value, r.first_time,
                r.first_value, r.last_time, r.last_value, r.mean_t, r.sxx, r.sxy,
                r.sketch_keys, r.sketch_counts, r.increase, 3600::int8 AS span
           FROM unnest($2::timestamptz[], $3::timestamptz[]) AS u(f, t)
           JOIN timeseries_rollups r ON r.series_name = $1 AND r.bucket >= u.f AND r.bucket < u.t
          ORDER BY r.bucket",
    )
    .bind::<Text, _>(series.as_str())
    .bind::<Array<Timestamptz>, _>(from)
    .bind::<Array<Timestamptz>, _>(to)
    .load(conn)?)
}

/// Whether buckets of this width are whole numbers of rollup hours (they
/// all align to 2000-01-01T00:00Z, an hour boundary).
pub fn serves(bucket: Bucket) -> bool {
    bucket.seconds() >= RESOLUTION && bucket.seconds() % RESOLUTION == 0
}

/// Moments of a set of points, mergeable exactly (Chan, Golub and LeVeque):
/// means and co-moments about the means, with x in seconds from an origin.
#[derive(Debug, Clone, Copy, Default)]
pub struct Moments {
    pub n: i64,
    pub sum: f64,
    mean_v: f64,
    m2: f64,
    mean_x: f64,
    sxx: f64,
    sxy: f64,
}

impl Moments {
    fn of(row: &Row, origin: DateTime<Utc>) -> Moments {
        let n = row.count;
        Moments {
            n,
            sum: row.sum,
            mean_v: row.sum / n as f64,
            m2: row.m2,
            mean_x: (row.bucket - origin).as_seconds_f64() + row.mean_t,
            sxx: row.sxx,
            sxy: row.sxy,
        }
    }

    fn merge(&mut self, o: &Moments) {
        if o.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = *o;
            return;
        }
        let (na, nb) = (self.n as f64, o.n as f64);
        let n = na + nb;
        let f = na * nb / n;
        let (dx, dy) = (o.mean_x - self.mean_x, o.mean_v - self.mean_v);
        self.m2 += o.m2 + dy * dy * f;
        self.sxx += o.sxx + dx * dx * f;
        self.sxy += o.sxy + dx * dy * f;
        self.mean_x += dx * nb / n;
        self.mean_v += dy * nb / n;
        self.n += o.n;
        self.sum += o.sum;
    }

    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then_some(self.mean_v)
    }

    /// Sample standard deviation, as `stddev_samp`.
    pub fn stddev(&self) -> Option<f64> {
        (self.n > 1).then(|| (self.m2.max(0.0) / (self.n - 1) as f64).sqrt())
    }

    /// Least squares of value on time, as `regr_slope`, `regr_intercept`
    /// and `regr_r2` with x in days since `first`: (slope per day,
    /// intercept at `first`, r²).
    pub fn fit(
        &self,
        origin: DateTime<Utc>,
        first: DateTime<Utc>,
    ) -> Option<(f64, f64, Option<f64>)> {
        if self.n < 2 || self.sxx <= 0.0 {
            return None;
        }
        let slope_per_second = self.sxy / self.sxx;
        let slope = slope_per_second * 86_400.0;
        let mean_days = (self.mean_x - (first - origin).as_seconds_f64()) / 86_400.0;
        let intercept = self.mean_v - slope * mean_days;
        // regr_r2: 1 when every value is equal.
        let r2 = if self.m2 == 0.0 {
            Some(1.0)
        } else {
            Some(self.sxy * self.sxy / (self.sxx * self.m2))
        };
        Some((slope, intercept, r2))
    }
}

/// A DDSketch: counts by logarithmic key (see `mcp_sketch_key`), merged by
/// adding counts.
#[derive(Debug, Clone, Default)]
pub struct Sketch {
    counts: BTreeMap<i32, u64>,
    total: u64,
}

/// Keys are offset by this much so that their sign can carry the value's.
const KEY_OFFSET: i32 = 40_000;

/// ln γ with γ = (1 + α) / (1 − α), as `mcp_sketch_key` writes it: keys
/// decode to the values SQL mapped them from.
const LN_GAMMA: f64 = 0.020000666706669522;

/// `mcp_sketch_key(v)`, for the test that keys round-trip.
#[cfg(test)]
fn sketch_key(v: f64) -> i32 {
    if v.abs() < 1e-300 {
        return 0;
    }
    let k = (v.abs().ln() / LN_GAMMA).ceil() as i32 + KEY_OFFSET;
    if v < 0.0 { -k } else { k }
}

impl Sketch {
    fn add(&mut self, keys: &[i32], counts: &[i32]) {
        for (&k, &c) in keys.iter().zip(counts) {
            let c = u64::try_from(c).unwrap_or(0);
            *self.counts.entry(k).or_default() += c;
            self.total += c;
        }
    }

    /// The value a key stands for: within [`SKETCH_ERROR`] of every value
    /// mapped to it.
    fn value(key: i32) -> f64 {
        if key == 0 {
            return 0.0;
        }
        let gamma = LN_GAMMA.exp();
        let k = key.abs() - KEY_OFFSET;
        let v = 2.0 * gamma.powi(k) / (gamma + 1.0);
        if key < 0 { -v } else { v }
    }

    /// The `q` quantile (0..=1) at rank q·(n − 1), interpolated between the
    /// two nearest ranks as `percentile_cont` does (so the bound holds for
    /// the interpolated value too), clamped to the exact [min, max].
    pub fn quantile(&self, q: f64, (min, max): (f64, f64)) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * (self.total - 1) as f64;
        let (lo, frac) = (rank.floor() as u64, rank.fract());
        let at = |index: u64| {
            let mut seen = 0;
            for (&k, &c) in &self.counts {
                seen += c;
                if seen > index {
                    return Sketch::value(k).clamp(min, max);
                }
            }
            max
        };
        let low = at(lo);
        Some(if frac > 0.0 {
            low + frac * (at(lo + 1) - low)
        } else {
            low
        })
    }
}

/// Rows merged into one summary of the whole window.
#[derive(Debug, Clone, Default)]
pub struct Merged {
    pub moments: Moments,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub first: Option<(DateTime<Utc>, f64)>,
    pub last: Option<(DateTime<Utc>, f64)>,
    pub sketch: Sketch,
    /// x of the moments is in seconds from here.
    pub origin: Option<DateTime<Utc>>,
    /// A counter's increase over every pair of consecutive points: the
    /// rows' own, and the pairs across rows (rows come in time order).
    pub increase: f64,
}

impl Merged {
    /// The rows merged; [`DbError::TooLarge`] when a sum passes the range
    /// of double precision (SQL would have said "value out of range").
    pub fn checked<'a>(
        rows: impl IntoIterator<Item = &'a Row>,
        with_sketch: bool,
    ) -> Result<Merged, DbError> {
        let m = Merged::of(rows, with_sketch);
        let Moments { sum, m2, sxy, .. } = m.moments;
        if [sum, m2, sxy].iter().all(|v| v.is_finite()) {
            Ok(m)
        } else {
            Err(DbError::TooLarge)
        }
    }

    pub fn of<'a>(rows: impl IntoIterator<Item = &'a Row>, with_sketch: bool) -> Merged {
        let mut m = Merged::default();
        for row in rows {
            let origin = *m.origin.get_or_insert(row.bucket);
            m.moments.merge(&Moments::of(row, origin));
            m.min = Some(m.min.map_or(row.min_value, |v| v.min(row.min_value)));
            m.max = Some(m.max.map_or(row.max_value, |v| v.max(row.max_value)));
            if m.first.is_none_or(|(t, _)| row.first_time < t) {
                m.first = Some((row.first_time, row.first_value));
            }
            m.increase += row.increase;
            if let Some((_, before)) = m.last {
                m.increase += counter_step(before, row.first_value);
            }
            if m.last.is_none_or(|(t, _)| row.last_time > t) {
                m.last = Some((row.last_time, row.last_value));
            }
            if with_sketch {
                m.sketch.add(&row.sketch_keys, &row.sketch_counts);
            }
        }
        m
    }

    /// A counter's increase, with at least two points.
    pub fn counter_increase(&self) -> Option<f64> {
        (self.moments.n >= 2).then_some(self.increase)
    }

    /// A counter's increase per second between its first and last point.
    pub fn counter_rate(&self) -> Option<f64> {
        let ((t0, _), (t1, _)) = (self.first?, self.last?);
        let seconds = (t1 - t0).num_milliseconds() as f64 / 1e3;
        (self.moments.n >= 2 && seconds > 0.0).then(|| self.increase / seconds)
    }

    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.sketch.quantile(q, (self.min?, self.max?))
    }

    /// The window's statistics; percentiles from the sketch.
    pub fn summary(&self) -> Summary {
        Summary {
            count: self.moments.n,
            mean: self.moments.mean(),
            stddev: self.moments.stddev(),
            min: self.min,
            max: self.max,
            p50: self.quantile(0.5),
            p95: self.quantile(0.95),
            p99: self.quantile(0.99),
            first_time: self.first.map(|f| f.0),
            last_time: self.last.map(|l| l.0),
            raw_from: None,
            hours_from: None,
        }
    }

    /// One bucket's aggregate.
    pub fn aggregate(&self, aggregate: Aggregate) -> Option<f64> {
        match aggregate {
            Aggregate::Avg => self.moments.mean(),
            Aggregate::Min => self.min,
            Aggregate::Max => self.max,
            Aggregate::Sum => Some(self.moments.sum),
            Aggregate::Count => Some(self.moments.n as f64),
            Aggregate::First => self.first.map(|f| f.1),
            Aggregate::Last => self.last.map(|l| l.1),
        }
    }
}

/// The hours grouped into buckets of `bucket` (a whole number of hours), in
/// time order, at most `limit`; with their sketches merged when `sketch`.
pub fn group(
    rows: &[Row],
    bucket: Bucket,
    limit: usize,
    sketch: bool,
) -> Vec<(DateTime<Utc>, Merged)> {
    let width = bucket.seconds();
    let mut out: Vec<(DateTime<Utc>, Merged)> = Vec::new();
    let mut start = 0;
    while start < rows.len() && out.len() < limit {
        let time = floor_to(rows[start].bucket, width);
        let end = rows[start..]
            .iter()
            .position(|r| floor_to(r.bucket, width) != time)
            .map_or(rows.len(), |p| start + p);
        out.push((time, Merged::of(&rows[start..end], sketch)));
        start = end;
    }
    out
}

/// Above this many points, percentiles come from the sketches unless exact
/// ones are asked for; at or below it `percentile_cont` is cheap.
pub const SKETCH_THRESHOLD: i64 = 100_000;

/// How a result's percentiles were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Percentiles {
    /// `percentile_cont` over the raw points.
    Exact,
    /// Merged hourly sketches, within `percentile_relative_error`.
    Sketch,
}

/// The statistics of a window: moments, extremes and ends from the
/// rollups; percentiles from the sketches or, when `exact` (by default
/// when the window is small), from the raw points.
pub fn statistics(
    conn: &mut PgConnection,
    series: &Series,
    window: Window,
    exact: Option<bool>,
) -> Result<(Summary, Percentiles), DbError> {
    let merged = Merged::checked(&read(conn, series, window, (true, true), None)?, true)?;
    let mut summary = merged.summary();
    // Exact percentiles need every raw point: past raw retention, the
    // sketches answer unless exact ones were asked for (then refused).
    let retained = retained(conn, series, window)?;
    (summary.raw_from, summary.hours_from) = (retained.raw_from, retained.hours_from);
    let by_default = summary.count <= SKETCH_THRESHOLD && summary.raw_from.is_none();
    if summary.count > 0 && exact.unwrap_or(by_default) {
        [summary.p50, summary.p95, summary.p99] =
            super::aggregates::percentiles(conn, series, window, [0.5, 0.95, 0.99])?;
        return Ok((summary, Percentiles::Exact));
    }
    Ok((summary, Percentiles::Sketch))
}

/// A least-squares fit of value on time.
#[derive(Debug, Clone)]
pub struct Trend {
    pub count: i64,
    /// Slope per day, intercept at `first_time`, r².
    pub fit: Option<(f64, f64, Option<f64>)>,
    pub mean: Option<f64>,
    pub first_time: Option<DateTime<Utc>>,
    pub last_time: Option<DateTime<Utc>>,
    /// As [`Summary::raw_from`] and [`Summary::hours_from`].
    pub raw_from: Option<DateTime<Utc>>,
    pub hours_from: Option<DateTime<Utc>>,
}

/// The exact least-squares fit of the window from the rollups' co-moments.
pub fn trend(conn: &mut PgConnection, series: &Series, window: Window) -> Result<Trend, DbError> {
    let m = Merged::checked(&read(conn, series, window, (true, false), None)?, false)?;
    let first = m.first.map(|f| f.0);
    let retained = retained(conn, series, window)?;
    Ok(Trend {
        count: m.moments.n,
        fit: m.origin.zip(first).and_then(|(o, f)| m.moments.fit(o, f)),
        mean: m.moments.mean(),
        first_time: first,
        last_time: m.last.map(|l| l.0),
        raw_from: retained.raw_from,
        hours_from: retained.hours_from,
    })
}

/// The series' horizons that `window` reaches before.
fn retained(
    conn: &mut PgConnection,
    series: &Series,
    window: Window,
) -> Result<super::retention::Horizons, DbError> {
    Ok(super::retention::horizons(conn, &[series.as_str()])?.reached(window))
}

/// Buckets of a whole number of hours, from the rollups, at most `limit`.
pub fn buckets(
    conn: &mut PgConnection,
    series: &Series,
    window: Window,
    bucket: Bucket,
    limit: i64,
) -> Result<Vec<(DateTime<Utc>, Merged)>, DbError> {
    // `limit` buckets span at most this many hours: all but the last bucket
    // read are whole.
    let hours = limit.saturating_mul(bucket.seconds() / RESOLUTION);
    // Day rows only fit buckets of whole days.
    let rows = read(
        conn,
        series,
        window,
        (bucket.seconds() % DAY == 0, false),
        Some(hours),
    )?;
    Ok(group(
        &rows,
        bucket,
        usize::try_from(limit).unwrap_or(usize::MAX),
        false,
    ))
}

/// [`buckets`] as values of `aggregate`, with each bucket's count.
pub fn bucket_values(
    conn: &mut PgConnection,
    (series, window): (&Series, Window),
    bucket: Bucket,
    aggregate: Aggregate,
    limit: i64,
) -> Result<Vec<TimedValue>, DbError> {
    Ok(buckets(conn, series, window, bucket, limit)?
        .into_iter()
        .filter_map(|(time, m)| {
            Some(TimedValue {
                time,
                value: m.aggregate(aggregate)?,
                count: Some(m.moments.n),
            })
        })
        .collect())
}

/// Buckets of any width with one aggregate: from the rollups when they are
/// whole hours, else from the raw points; and where they came from.
pub fn any_buckets(
    conn: &mut PgConnection,
    (series, window): (&Series, Window),
    bucket: Bucket,
    aggregate: Aggregate,
    limit: i64,
) -> Result<(Vec<TimedValue>, Source), DbError> {
    Ok(if serves(bucket) {
        (
            bucket_values(conn, (series, window), bucket, aggregate, limit)?,
            Source::Rollup,
        )
    } else {
        let raw = super::aggregates::buckets(conn, series, window, bucket, aggregate, limit)?;
        (raw, Source::Raw)
    })
}

/// [`super::aggregates::training_values`] for buckets of whole hours: the
/// latest `limit` bucket means, from the rollups, never the raw points.
pub fn training_values(
    conn: &mut PgConnection,
    (series, window): (&Series, Window),
    bucket: Bucket,
    limit: i64,
) -> Result<Vec<TimedValue>, DbError> {
    let mut all = bucket_values(conn, (series, window), bucket, Aggregate::Avg, i64::MAX)?;
    let skip = all
        .len()
        .saturating_sub(usize::try_from(limit).unwrap_or(0));
    all.drain(..skip);
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sketch_values_are_within_the_stated_error() {
        for v in [1e-12, 0.5, 1.0, 3.7, 99.9, 1e6, 1.7e300, -2.5, -1e-3] {
            let est = Sketch::value(sketch_key(v));
            assert!(
                ((est - v) / v).abs() <= SKETCH_ERROR + 1e-12,
                "{v} -> {est}"
            );
        }
    }

    #[test]
    fn hours_round_both_ways() {
        let t = DateTime::parse_from_rfc3339("2026-01-01T10:20:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(hour_floor(t).to_rfc3339(), "2026-01-01T10:00:00+00:00");
        assert_eq!(
            ceil_to(t, RESOLUTION).to_rfc3339(),
            "2026-01-01T11:00:00+00:00"
        );
        assert_eq!(floor_to(t, DAY).to_rfc3339(), "2026-01-01T00:00:00+00:00");
        let h = hour_floor(t);
        assert_eq!(ceil_to(h, RESOLUTION), h);
    }

    #[test]
    fn buckets_start_where_date_bin_starts_them() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        // 7 s does not divide the seconds from the epoch to 2000-01-01.
        assert_eq!(
            floor_to(at("2000-01-01T00:00:13Z"), 7),
            at("2000-01-01T00:00:07Z")
        );
        assert_eq!(
            floor_to(at("1999-12-31T23:59:59Z"), 7),
            at("1999-12-31T23:59:53Z")
        );
        assert_eq!(
            floor_to(at("2026-01-01T10:20:00.5Z"), 3600),
            at("2026-01-01T10:00:00Z")
        );
    }

    #[test]
    fn a_row_summed_point_by_point_has_the_moments_and_the_counters_increase() {
        let b = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let points = [(0, 10.0), (30, 12.0), (60, 3.0), (90, 7.0)];
        let mut s = Summing::new(b);
        for (x, v) in points {
            s.add(b + TimeDelta::seconds(x), v);
        }
        let row = s.row(3600);
        let (n, mx, my) = (4.0, 45.0, 8.0);
        let syy: f64 = points.iter().map(|(_, v)| (v - my) * (v - my)).sum();
        let sxx: f64 = points.iter().map(|(x, _)| (*x as f64 - mx).powi(2)).sum();
        let sxy: f64 = points
            .iter()
            .map(|(x, v)| (*x as f64 - mx) * (v - my))
            .sum();
        assert_eq!(
            (row.count, row.sum, row.min_value, row.max_value),
            (4, n * my, 3.0, 12.0)
        );
        assert!((row.m2 - syy).abs() < 1e-9 && (row.sxx - sxx).abs() < 1e-9);
        assert!((row.sxy - sxy).abs() < 1e-9 && (row.mean_t - mx).abs() < 1e-12);
        // 10 → 12 is 2; the drop to 3 restarts from 0 (3); 3 → 7 is 4.
        assert_eq!(row.increase, 9.0);
        assert_eq!(
            (row.first_value, row.last_value, row.span),
            (10.0, 7.0, 3600)
        );
    }
}
