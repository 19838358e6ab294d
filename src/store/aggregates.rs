//! Aggregates computed inside PostgreSQL: the server never pulls a whole
//! series to summarise it.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Double, Integer, Nullable, Text, Timestamptz};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::db::DbError;
use crate::domain::{Aggregate, Bucket, Series, Window};

/// `$1` series, `$2`/`$3` the optional window.
const WINDOW: &str = "series_name = $1 AND time >= COALESCE($2, '-infinity'::timestamptz) \
                      AND time < COALESCE($3, 'infinity'::timestamptz)";

macro_rules! windowed {
    ($sql:expr, $series:expr, $window:expr) => {
        diesel::sql_query($sql)
            .bind::<Text, _>($series.as_str())
            .bind::<Nullable<Timestamptz>, _>($window.start)
            .bind::<Nullable<Timestamptz>, _>($window.end)
    };
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Summary {
    pub count: i64,
    pub mean: Option<f64>,
    /// Sample standard deviation (n − 1).
    pub stddev: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Percentiles: exact (`percentile_cont`, linear interpolation) or from
    /// the hourly sketches, as the result says.
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub first_time: Option<DateTime<Utc>>,
    pub last_time: Option<DateTime<Utc>>,
    /// Raw retention dropped the points before this time: before it, the
    /// window's edges are whole hours and the percentiles sketched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_from: Option<DateTime<Utc>>,
    /// Rollup retention dropped the hours before this time: before it, the
    /// window's edges are whole days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours_from: Option<DateTime<Utc>>,
}

/// Exact percentiles (`percentile_cont`) of the raw points in `window`.
pub fn percentiles<const N: usize>(
    conn: &mut PgConnection,
    series: &Series,
    window: Window,
    fractions: [f64; N],
) -> Result<[Option<f64>; N], DbError> {
    super::retention::require_raw(conn, &[series.as_str()], window)?;
    #[derive(QueryableByName)]
    struct P {
        #[diesel(sql_type = Nullable<Array<Nullable<Double>>>)]
        p: Option<Vec<Option<f64>>>,
    }
    // One ordered-set aggregate over an array of fractions sorts the values
    // once; separate ones cost about 25% more on a million points.
    let sql = format!(
        "SELECT percentile_cont($4::float8[]) WITHIN GROUP (ORDER BY value) AS p
           FROM timeseries_data WHERE {WINDOW}"
    );
    let row: P = windowed!(sql, series, window)
        .bind::<Array<Double>, _>(fractions.to_vec())
        .get_result(conn)?;
    let values = row.p.unwrap_or_default();
    Ok(std::array::from_fn(|i| values.get(i).copied().flatten()))
}

#[derive(Debug, Clone, QueryableByName)]
pub struct Spread {
    #[diesel(sql_type = BigInt)]
    pub count: i64,
    #[diesel(sql_type = Nullable<Double>)]
    pub mean: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub stddev: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub q1: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub median: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub q3: Option<f64>,
    /// Median absolute deviation from the median.
    #[diesel(sql_type = Nullable<Double>)]
    pub mad: Option<f64>,
}

pub fn spread(conn: &mut PgConnection, series: &Series, window: Window) -> Result<Spread, DbError> {
    super::retention::require_raw(conn, &[series.as_str()], window)?;
    let sql = format!(
        "WITH w AS (SELECT value FROM timeseries_data WHERE {WINDOW}),
              s AS (SELECT count(*) AS count, avg(value) AS mean, stddev_samp(value) AS stddev,
                           percentile_cont(ARRAY[0.25, 0.5, 0.75]) WITHIN GROUP (ORDER BY value) AS q
                      FROM w)
         SELECT s.count, s.mean, s.stddev, s.q[1] AS q1, s.q[2] AS median, s.q[3] AS q3,
                (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(w.value - s.q[2]))
                   FROM w) AS mad
           FROM s"
    );
    Ok(windowed!(sql, series, window).get_result(conn)?)
}

#[derive(Debug, Clone, QueryableByName, Serialize, Deserialize, JsonSchema)]
pub struct Outlier {
    #[diesel(sql_type = Timestamptz)]
    pub time: DateTime<Utc>,
    #[diesel(sql_type = Double)]
    pub value: f64,
    /// Signed distance from the centre in the method's units.
    #[diesel(sql_type = Double)]
    pub score: f64,
}

/// Time ranges [from, to), as two columns.
pub type Ranges<'a> = (&'a [DateTime<Utc>], &'a [DateTime<Utc>]);

/// Points outside `[low, high]`, most extreme first, at most `limit`; and
/// how many there are in all. Only the ranges [from, to) are read: the
/// caller knows from the rollups that nothing else crosses a bound.
pub fn outside(
    conn: &mut PgConnection,
    (series, window, (from, to)): (&Series, Window, Ranges),
    (low, high): (f64, f64),
    (center, unit): (f64, f64),
    limit: i64,
) -> Result<(Vec<Outlier>, i64), DbError> {
    super::retention::require_raw(conn, &[series.as_str()], window)?;
    if from.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let candidates = format!(
        "SELECT time, value FROM unnest($9::timestamptz[], $10::timestamptz[]) AS h(f, t)
          CROSS JOIN LATERAL (SELECT time, value FROM timeseries_data
                               WHERE {WINDOW} AND time >= h.f AND time < h.t
                                 AND (value < $4 OR value > $5)) x"
    );
    #[derive(QueryableByName)]
    struct Found {
        #[diesel(sql_type = Timestamptz)]
        time: DateTime<Utc>,
        #[diesel(sql_type = Double)]
        value: f64,
        #[diesel(sql_type = Double)]
        score: f64,
        #[diesel(sql_type = BigInt)]
        total: i64,
    }
    let sql = format!(
        "SELECT time, value, (value - $6) / $7 AS score, count(*) OVER () AS total
           FROM ({candidates}) c
          ORDER BY abs(value - $6) DESC, time LIMIT $8"
    );
    let rows: Vec<Found> = windowed!(sql, series, window)
        .bind::<Double, _>(low)
        .bind::<Double, _>(high)
        .bind::<Double, _>(center)
        .bind::<Double, _>(unit)
        .bind::<BigInt, _>(limit)
        .bind::<Array<Timestamptz>, _>(from)
        .bind::<Array<Timestamptz>, _>(to)
        .load(conn)?;
    let total = rows.first().map_or(0, |r| r.total);
    let outliers = rows
        .into_iter()
        .map(|r| Outlier {
            time: r.time,
            value: r.value,
            score: r.score,
        })
        .collect();
    Ok((outliers, total))
}

#[derive(Debug, Clone, QueryableByName, Serialize, Deserialize, JsonSchema)]
pub struct TimedValue {
    #[diesel(sql_type = Timestamptz)]
    pub time: DateTime<Utc>,
    #[diesel(sql_type = Double)]
    pub value: f64,
    /// Points in the bucket (bucketed queries only).
    #[diesel(sql_type = Nullable<BigInt>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
}

fn aggregate_sql(aggregate: Aggregate) -> &'static str {
    match aggregate {
        Aggregate::Avg => "avg(value)",
        Aggregate::Min => "min(value)",
        Aggregate::Max => "max(value)",
        Aggregate::Sum => "sum(value)",
        Aggregate::Count => "count(*)::float8",
        Aggregate::First => "(array_agg(value ORDER BY time))[1]",
        Aggregate::Last => "(array_agg(value ORDER BY time DESC))[1]",
    }
}

/// Points in time order, at most `limit` (the caller asks one more to learn
/// whether there are more).
pub fn points(
    conn: &mut PgConnection,
    series: &Series,
    window: Window,
    limit: i64,
) -> Result<Vec<TimedValue>, DbError> {
    super::retention::require_raw(conn, &[series.as_str()], window)?;
    let sql = format!(
        "SELECT time, value, NULL::bigint AS count FROM timeseries_data WHERE {WINDOW} ORDER BY time LIMIT $4"
    );
    Ok(windowed!(sql, series, window)
        .bind::<BigInt, _>(limit)
        .load(conn)?)
}

/// `date_bin` buckets (aligned to 2000-01-01T00:00Z) with one aggregate.
pub fn buckets(
    conn: &mut PgConnection,
    series: &Series,
    window: Window,
    bucket: Bucket,
    aggregate: Aggregate,
    limit: i64,
) -> Result<Vec<TimedValue>, DbError> {
    super::retention::require_raw(conn, &[series.as_str()], window)?;
    let sql = format!(
        "SELECT date_bin($4::interval, time, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS time,
                {} AS value, count(*) AS count
           FROM timeseries_data WHERE {WINDOW}
          GROUP BY 1 ORDER BY 1 LIMIT $5",
        aggregate_sql(aggregate)
    );
    Ok(windowed!(sql, series, window)
        .bind::<Text, _>(bucket.interval())
        .bind::<BigInt, _>(limit)
        .load(conn)?)
}

/// Values in time order for model fitting: the latest `limit` raw points,
/// or bucket averages when `bucket` is given (buckets of whole hours come
/// from [`super::rollups::training_values`] instead).
pub fn training_values(
    conn: &mut PgConnection,
    series: &Series,
    window: Window,
    bucket: Option<Bucket>,
    limit: i64,
) -> Result<Vec<TimedValue>, DbError> {
    let inner = match bucket {
        Some(_) => format!(
            "SELECT date_bin($4::interval, time, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS time,
                    avg(value) AS value, count(*) AS count
               FROM timeseries_data WHERE {WINDOW} GROUP BY 1 ORDER BY 1 DESC LIMIT $5"
        ),
        None => format!(
            "SELECT time, value, NULL::bigint AS count FROM timeseries_data
              WHERE {WINDOW} AND $4::text IS NULL ORDER BY time DESC LIMIT $5"
        ),
    };
    let sql = format!("SELECT * FROM ({inner}) latest ORDER BY time");
    Ok(windowed!(sql, series, window)
        .bind::<Nullable<Text>, _>(bucket.map(Bucket::interval))
        .bind::<BigInt, _>(limit)
        .load(conn)?)
}

/// The first and last time of something.
pub type Extent = (DateTime<Utc>, DateTime<Utc>);

/// The first and last time of any of `names` in a window (index-only ends,
/// two per series).
pub fn extent(
    conn: &mut PgConnection,
    names: &[&str],
    window: Window,
) -> Result<Option<Extent>, DbError> {
    #[derive(QueryableByName)]
    struct Ends {
        #[diesel(sql_type = Nullable<Timestamptz>)]
        first: Option<DateTime<Utc>>,
        #[diesel(sql_type = Nullable<Timestamptz>)]
        last: Option<DateTime<Utc>>,
    }
    // Before raw retention's horizon the rollups' rows hold the ends: the
    // first row of each level (one index probe), clamped to the window.
    let e: Ends = diesel::sql_query(
        "WITH w AS (SELECT COALESCE($2, '-infinity'::timestamptz) AS lo,
                           COALESCE($3, 'infinity'::timestamptz) AS hi)
         SELECT min(e.first) AS first, max(e.last) AS last FROM unnest($1::text[]) AS n(name)
          CROSS JOIN w CROSS JOIN LATERAL (
                SELECT LEAST(min(time),
                             (SELECT GREATEST(r.first_time, w.lo) FROM timeseries_rollups_daily r
                               WHERE r.series_name = n.name AND r.bucket < w.hi
                                 AND r.bucket >= date_bin('1 day', w.lo, TIMESTAMPTZ '2000-01-01Z')
                               ORDER BY r.bucket LIMIT 1),
                             (SELECT GREATEST(r.first_time, w.lo) FROM timeseries_rollups r
                               WHERE r.series_name = n.name AND r.bucket < w.hi
                                 AND r.bucket >= date_bin('1 hour', w.lo, TIMESTAMPTZ '2000-01-01Z')
                               ORDER BY r.bucket LIMIT 1)) AS first,
                       COALESCE(max(time),
                                (SELECT LEAST(r.last_time, w.hi) FROM timeseries_rollups r
                                  WHERE r.series_name = n.name AND r.bucket < w.hi
                                    AND r.bucket >= date_bin('1 hour', w.lo, TIMESTAMPTZ '2000-01-01Z')
                                  ORDER BY r.bucket DESC LIMIT 1),
                                (SELECT LEAST(r.last_time, w.hi) FROM timeseries_rollups_daily r
                                  WHERE r.series_name = n.name AND r.bucket < w.hi
                                    AND r.bucket >= date_bin('1 day', w.lo, TIMESTAMPTZ '2000-01-01Z')
                                  ORDER BY r.bucket DESC LIMIT 1)) AS last
                  FROM timeseries_data
                 WHERE series_name = n.name AND time >= w.lo AND time < w.hi) e",
    )
    .bind::<Array<Text>, _>(names)
    .bind::<Nullable<Timestamptz>, _>(window.start)
    .bind::<Nullable<Timestamptz>, _>(window.end)
    .get_result(conn)?;
    Ok(e.first.zip(e.last))
}

/// The median spacing of a series' first points in a window, in seconds:
/// how often it is sampled (a counter's rate needs a few samples a bucket).
pub fn spacing(
    conn: &mut PgConnection,
    series: &str,
    window: Window,
) -> Result<Option<f64>, DbError> {
    #[derive(QueryableByName)]
    struct Spacing {
        #[diesel(sql_type = Nullable<Double>)]
        seconds: Option<f64>,
    }
    let sql = format!(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d) AS seconds
           FROM (SELECT date_part('epoch', time - lag(time) OVER (ORDER BY time)) AS d
                   FROM (SELECT time FROM timeseries_data WHERE {WINDOW} ORDER BY time LIMIT 101) f) g"
    );
    Ok(diesel::sql_query(sql)
        .bind::<Text, _>(series)
        .bind::<Nullable<Timestamptz>, _>(window.start)
        .bind::<Nullable<Timestamptz>, _>(window.end)
        .get_result::<Spacing>(conn)?
        .seconds)
}

/// A bucket for drawing: its aggregate, its min and max, and its size.
#[derive(Debug, Clone, QueryableByName)]
pub struct Envelope {
    #[diesel(sql_type = Timestamptz)]
    pub time: DateTime<Utc>,
    #[diesel(sql_type = Double)]
    pub value: f64,
    #[diesel(sql_type = Double)]
    pub low: f64,
    #[diesel(sql_type = Double)]
    pub high: f64,
    #[diesel(sql_type = BigInt)]
    pub count: i64,
}

/// [`buckets`] with each bucket's min and max, for a chart: spikes stay
/// visible however wide the bucket. `extent` is the data's first and last
/// time in the window.
///
/// One index range scan per bucket rather than a GROUP BY: the planner
/// cannot know that `date_bin` keeps time order, so it would sort every
/// point (spilling to disk at a million) to group a few hundred buckets.
pub fn envelope(
    conn: &mut PgConnection,
    (series, window, extent): (&Series, Window, Extent),
    bucket: Bucket,
    aggregate: Aggregate,
    limit: i64,
) -> Result<Vec<Envelope>, DbError> {
    super::retention::require_raw(conn, &[series.as_str()], window)?;
    let sql = format!(
        "SELECT g.b AS time, s.value, s.low, s.high, s.count
           FROM generate_series(date_bin($4::interval, $5, TIMESTAMPTZ '2000-01-01 00:00:00+00'),
                                $6, $4::interval) AS g(b)
          CROSS JOIN LATERAL (
                SELECT {} AS value, min(value) AS low, max(value) AS high, count(*) AS count
                  FROM timeseries_data
                 WHERE {WINDOW} AND time >= g.b AND time < g.b + $4::interval) s
          WHERE s.count > 0 ORDER BY 1 LIMIT $7",
        aggregate_sql(aggregate)
    );
    Ok(windowed!(sql, series, window)
        .bind::<Text, _>(bucket.interval())
        .bind::<Timestamptz, _>(extent.0)
        .bind::<Timestamptz, _>(extent.1)
        .bind::<BigInt, _>(limit)
        .load(conn)?)
}

/// A raw point of one of several series (its index in the names given).
#[derive(Debug, Clone, Copy, QueryableByName)]
pub struct IndexedPoint {
    #[diesel(sql_type = Integer)]
    pub series: i32,
    /// Read as PostgreSQL's binary microseconds: `extract(epoch …)` is
    /// numeric arithmetic a row, the slowest part of a large read.
    #[diesel(sql_type = Timestamptz)]
    pub time: DateTime<Utc>,
    #[diesel(sql_type = Double)]
    pub value: f64,
}

/// Points of `series` series as (ms, value) per series, each in time order.
pub fn by_series(points: Vec<IndexedPoint>, series: usize) -> Vec<Vec<(i64, f64)>> {
    let mut out: Vec<Vec<(i64, f64)>> = vec![Vec::new(); series];
    for p in points {
        if let Some(s) = usize::try_from(p.series).ok().and_then(|i| out.get_mut(i)) {
            s.push((p.ms(), p.value));
        }
    }
    for s in &mut out {
        if !s.is_sorted_by_key(|p| p.0) {
            s.sort_unstable_by_key(|p| p.0);
        }
    }
    out
}

impl IndexedPoint {
    /// Its time in milliseconds since the epoch, as Prometheus counts.
    pub fn ms(&self) -> i64 {
        self.time.timestamp_millis()
    }
}

/// Which raw points of a series to read, in milliseconds, both ends in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// All of [from, to].
    Whole(i64, i64),
    /// Only those in [t - width, t] for t = first, first + every, … up to
    /// last: what a range query with a step wider than its windows reads.
    Windows {
        first: i64,
        last: i64,
        every: i64,
        width: i64,
    },
}

/// The raw points of `names` in `span`, at most `limit` (as Prometheus'
/// remote read and PromQL ask), in no order: see [`by_series`]. Before a series'
/// raw retention horizon there are none.
pub fn points_many(
    conn: &mut PgConnection,
    names: &[&str],
    span: Span,
    limit: i64,
) -> Result<Vec<IndexedPoint>, DbError> {
    const AT: &str = "TIMESTAMPTZ 'epoch' + interval '1 millisecond' *";
    let (windows, from, to, (first, last, every)) = match span {
        Span::Whole(from, to) => ("(VALUES (0::int8)) AS w(t)", from, to, (0, 0, 1)),
        Span::Windows {
            first,
            last,
            every,
            width,
        } => (
            "generate_series($5::int8, $6::int8, $7::int8) AS w(t)",
            -width,
            0,
            (first, last, every),
        ),
    };
    // Whole: one index range scan a series. Windows: one a series and
    // window, which never overlap (every > width), so no point twice. No
    // ORDER BY: sorting every row costs more than the scan; [`by_series`]
    // puts them in order.
    let sql = format!(
        "SELECT (n.i - 1)::int4 AS series, d.time, d.value
           FROM unnest($1::text[]) WITH ORDINALITY AS n(name, i)
          CROSS JOIN {windows}
          CROSS JOIN LATERAL (
                SELECT time, value FROM timeseries_data
                 WHERE series_name = n.name
                   AND time >= {AT} (w.t + $2) AND time <= {AT} (w.t + $3)
                 ORDER BY time) d
          LIMIT $4"
    );
    Ok(diesel::sql_query(sql)
        .bind::<Array<Text>, _>(names)
        .bind::<BigInt, _>(from)
        .bind::<BigInt, _>(to)
        .bind::<BigInt, _>(limit)
        .bind::<BigInt, _>(first)
        .bind::<BigInt, _>(last)
        .bind::<BigInt, _>(every)
        .load(conn)?)
}
