//! The series catalog (`timeseries_series`): each series' metric and tags,
//! for `list_series`' filters, and how far its rollups are folded.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Jsonb, Nullable, Text, Timestamptz};

use crate::db::DbError;
use crate::domain::{Selector, Series, SeriesPoints};

/// A write that would change a series' identity. Nothing is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Collision {
    /// A name derived from its tags already holds another label set: two
    /// tag sets whose hashes collide.
    #[error("series {0} already holds another label set whose name hashes the same")]
    Hash(String),
    /// A collector's series (its name derived from its labels) written by
    /// name under other tags: its labels are its identity, and changing
    /// them would have the collector's next write refused as a collision.
    #[error(
        "series {0} is a collector's series with the labels {1}; a write to it must carry \
         exactly these as its tags, or go to a series of its own"
    )]
    Owned(String, String),
}

/// Registers the series: new ones get a row, ones whose tags changed get
/// the new tags. Errors with [`Collision`] (as `Ok(Err)`) when a write
/// would change a collector's series' label set: a derived name that holds
/// another (a hash collision), or a write by name with other tags. The
/// caller rolls back.
///
/// A collector's series has its metric apart from its name; a series
/// written by name has its name as its metric, and a collector whose
/// derived name holds one (its tags changed by a write by name before such
/// writes were refused) takes its identity back.
pub fn register(
    conn: &mut PgConnection,
    series: &[&SeriesPoints],
) -> Result<Result<(), Collision>, DbError> {
    if series.is_empty() {
        return Ok(Ok(()));
    }
    #[derive(QueryableByName)]
    struct Clash {
        #[diesel(sql_type = Text)]
        series_name: String,
        #[diesel(sql_type = Text)]
        tags: String,
        #[diesel(sql_type = Bool)]
        derived: bool,
    }
    let names: Vec<&str> = series.iter().map(|s| s.series.as_str()).collect();
    let metrics: Vec<&str> = series.iter().map(|s| s.metric.as_str()).collect();
    let tags: Vec<&str> = series.iter().map(|s| s.tags.as_str()).collect();
    let derived: Vec<bool> = series.iter().map(|s| s.derived).collect();
    // The clash is read from the snapshot before the upsert; on a clash the
    // caller rolls the upsert back with the rest.
    let clash: Option<Clash> = diesel::sql_query(
        "WITH u AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[]) AS u(n, m, t, d)),
         clash AS (SELECT c.series_name, c.tags::text AS tags, u.d AS derived
                     FROM u JOIN timeseries_series c ON c.series_name = u.n
                    WHERE c.metric <> c.series_name AND c.tags IS DISTINCT FROM u.t::jsonb),
         stored AS (INSERT INTO timeseries_series AS c (series_name, metric, tags)
                    SELECT n, m, t::jsonb FROM u
                    ON CONFLICT (series_name) DO UPDATE SET tags = EXCLUDED.tags,
                           -- A write by name with its labels keeps a collector's metric.
                           metric = CASE WHEN EXCLUDED.metric = EXCLUDED.series_name
                                          AND c.metric <> c.series_name
                                         THEN c.metric ELSE EXCLUDED.metric END
                     WHERE c.tags IS DISTINCT FROM EXCLUDED.tags OR c.metric IS DISTINCT FROM EXCLUDED.metric)
         SELECT series_name, tags, derived FROM clash LIMIT 1",
    )
    .bind::<Array<Text>, _>(&names)
    .bind::<Array<Text>, _>(&metrics)
    .bind::<Array<Text>, _>(&tags)
    .bind::<Array<Bool>, _>(&derived)
    .get_result(conn)
    .optional()?;
    Ok(match clash {
        None => Ok(()),
        Some(c) if c.derived => Err(Collision::Hash(c.series_name)),
        Some(c) => Err(Collision::Owned(c.series_name, crate::domain::cut(&c.tags))),
    })
}

/// `folded_to` of the series of a write that have folded anything (the
/// others hold nothing in the rollups yet).
pub type Folded = HashMap<String, DateTime<Utc>>;

/// A row of [`Folded`], as `folded` and `mcp_lock_for_write` return it.
#[derive(QueryableByName)]
pub struct FoldedTo {
    #[diesel(sql_type = Text)]
    series_name: String,
    #[diesel(sql_type = Timestamptz)]
    folded_to: DateTime<Utc>,
}

impl FromIterator<FoldedTo> for Folded {
    fn from_iter<I: IntoIterator<Item = FoldedTo>>(rows: I) -> Self {
        rows.into_iter()
            .map(|r| (r.series_name, r.folded_to))
            .collect()
    }
}

/// `folded_to` of the named series that have folded anything. Read after
/// the fold lock is held.
pub fn folded(conn: &mut PgConnection, names: &[&str]) -> Result<Folded, DbError> {
    Ok(diesel::sql_query(
        "SELECT series_name, folded_to FROM timeseries_series
          WHERE series_name = ANY($1) AND folded_to > '-infinity'",
    )
    .bind::<Array<Text>, _>(names)
    .load::<FoldedTo>(conn)?
    .into_iter()
    .collect())
}

/// How many transactions of SQL writers have touched `series` (0 for a
/// series not catalogued): part of the key of every cached answer about it.
pub fn sql_writes(conn: &mut PgConnection, series: &str) -> Result<i64, DbError> {
    use crate::schema::timeseries_series::dsl;
    Ok(dsl::timeseries_series
        .find(series)
        .select(dsl::sql_writes)
        .first(conn)
        .optional()?
        .unwrap_or(0))
}

/// What `list_series` filters the catalog by.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Name prefix.
    pub prefix: String,
    pub metric: Option<String>,
    /// A JSON object every listed series' tags contain (`@>`).
    pub tags: Option<serde_json::Value>,
}

/// Catalogued series matching `filter`, in name order, at most `limit`.
pub fn find(conn: &mut PgConnection, filter: &Filter, limit: i64) -> Result<Vec<Series>, DbError> {
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = Text)]
        series_name: String,
    }
    Ok(diesel::sql_query(
        "SELECT series_name FROM timeseries_series
          WHERE starts_with(series_name, $1)
            AND ($2::text IS NULL OR metric = $2)
            AND ($3::jsonb IS NULL OR tags @> $3)
          ORDER BY series_name LIMIT $4",
    )
    .bind::<Text, _>(&filter.prefix)
    .bind::<Nullable<Text>, _>(filter.metric.as_deref())
    .bind::<Nullable<Jsonb>, _>(filter.tags.as_ref())
    .bind::<BigInt, _>(limit)
    .load::<Name>(conn)?
    .into_iter()
    // The table's CHECK holds the same rule, so every stored name parses.
    .filter_map(|n| Series::try_from(n.series_name).ok())
    .collect())
}

/// A catalogued series as selectors and discovery see it.
#[derive(Debug, Clone, QueryableByName)]
pub struct Entry {
    #[diesel(sql_type = Text)]
    pub series_name: String,
    #[diesel(sql_type = Text)]
    pub metric: String,
    #[diesel(sql_type = Jsonb)]
    pub tags: serde_json::Value,
}

/// Which of `names` hold data in [from, to] (milliseconds, both ends in):
/// a raw point, or an hourly or daily rollup row (where the points aged
/// out). One index probe per series and table, as Prometheus' series
/// endpoints apply `start` and `end`.
pub fn active(
    conn: &mut PgConnection,
    names: &[&str],
    (from, to): (i64, i64),
) -> Result<Vec<String>, DbError> {
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = Text)]
        series_name: String,
    }
    Ok(diesel::sql_query(
        "WITH r AS (SELECT TIMESTAMPTZ 'epoch' + $2 * interval '1 millisecond' AS lo,
                           TIMESTAMPTZ 'epoch' + $3 * interval '1 millisecond' AS hi)
         SELECT n.name AS series_name FROM unnest($1::text[]) AS n(name), r
          WHERE EXISTS (SELECT 1 FROM timeseries_data
                         WHERE series_name = n.name AND time >= r.lo AND time <= r.hi)
             OR EXISTS (SELECT 1 FROM timeseries_rollups
                         WHERE series_name = n.name AND bucket >= date_trunc('hour', r.lo, 'UTC')
                           AND bucket <= r.hi)
             OR EXISTS (SELECT 1 FROM timeseries_rollups_daily
                         WHERE series_name = n.name AND bucket >= date_trunc('day', r.lo, 'UTC')
                           AND bucket <= r.hi)",
    )
    .bind::<Array<Text>, _>(names)
    .bind::<BigInt, _>(from)
    .bind::<BigInt, _>(to)
    .load::<Name>(conn)?
    .into_iter()
    .map(|n| n.series_name)
    .collect())
}

/// Catalogued series that `selector` matches, in name order. The catalog's
/// indexes pick the candidates (its metric equality, its tag equalities as
/// `tags @>`) and the other matchers filter them here; at most `cap`
/// candidates are read, and `true` says the cap cut the read.
pub fn select(
    conn: &mut PgConnection,
    selector: &Selector,
    cap: usize,
) -> Result<(Vec<Entry>, bool), DbError> {
    let (mut rows, cut) = limited(
        diesel::sql_query(
            "SELECT series_name, metric, tags FROM timeseries_series
              WHERE ($1::text IS NULL OR metric = $1) AND tags @> $2
              ORDER BY series_name LIMIT $3",
        )
        .bind::<Nullable<Text>, _>(selector.metric())
        .bind::<Jsonb, _>(selector.required_tags())
        .bind::<BigInt, _>(cap as i64 + 1)
        .load::<Entry>(conn)?,
        cap,
    )?;
    rows.retain(|e| selector.matches(&e.metric, &e.tags));
    Ok((rows, cut))
}

/// One series' catalog row.
pub fn entry(conn: &mut PgConnection, series: &str) -> Result<Option<Entry>, DbError> {
    Ok(diesel::sql_query(
        "SELECT series_name, metric, tags FROM timeseries_series WHERE series_name = $1",
    )
    .bind::<Text, _>(series)
    .get_result::<Entry>(conn)
    .optional()?)
}

/// Label names over the whole catalog with the series that carry each,
/// by name, at most `limit` (and whether more exist). Read from the label
/// index: its counts plus the changes the worker has not moved yet.
pub fn label_names(conn: &mut PgConnection, limit: usize) -> Result<(Vec<Count>, bool), DbError> {
    limited(
        diesel::sql_query(
            "SELECT name AS key, sum(series)::int8 AS series
               FROM (SELECT name, series FROM timeseries_label_names
                     UNION ALL
                     SELECT name, delta FROM timeseries_label_changes WHERE name <> '__name__') c
              GROUP BY name HAVING sum(series) > 0 ORDER BY name LIMIT $1",
        )
        .bind::<BigInt, _>(limit as i64 + 1)
        .load(conn)?,
        limit,
    )
}

/// One label's string values over the whole catalog, the most frequent
/// first; `__name__`'s are the metrics (of series written by name too).
/// From the label index, as [`label_names`].
pub fn label_values(
    conn: &mut PgConnection,
    label: &str,
    limit: usize,
) -> Result<(Vec<Count>, bool), DbError> {
    limited(
        diesel::sql_query(
            "SELECT value AS key, sum(series)::int8 AS series
               FROM (SELECT value, series FROM timeseries_label_values WHERE name = $1
                     UNION ALL
                     SELECT value, delta FROM timeseries_label_changes
                      WHERE name = $1 AND value IS NOT NULL) c
              GROUP BY value HAVING sum(series) > 0 ORDER BY 2 DESC, 1 LIMIT $2",
        )
        .bind::<Text, _>(label)
        .bind::<BigInt, _>(limit as i64 + 1)
        .load(conn)?,
        limit,
    )
}

/// Moves the label index's changes into its counts (`mcp_labels_settle`),
/// so that readers add few; returns how many change rows moved.
pub fn settle_labels(conn: &mut PgConnection) -> Result<i64, DbError> {
    #[derive(QueryableByName)]
    struct Moved {
        #[diesel(sql_type = BigInt)]
        moved: i64,
    }
    Ok(diesel::sql_query("SELECT mcp_labels_settle() AS moved")
        .get_result::<Moved>(conn)?
        .moved)
}

/// Metrics starting with `prefix` and their series, by name.
pub fn metrics(
    conn: &mut PgConnection,
    prefix: &str,
    limit: usize,
) -> Result<(Vec<MetricCount>, bool), DbError> {
    limited(
        diesel::sql_query(
            "SELECT metric, count(*) AS series, bool_or(tags ? '_measurement') AS influx
               FROM timeseries_series WHERE starts_with(metric, $1)
              GROUP BY metric ORDER BY metric LIMIT $2",
        )
        .bind::<Text, _>(prefix)
        .bind::<BigInt, _>(limit as i64 + 1)
        .load(conn)?,
        limit,
    )
}

/// A key (a label name or value) and the series that have it.
#[derive(Debug, Clone, QueryableByName)]
pub struct Count {
    #[diesel(sql_type = Text)]
    pub key: String,
    #[diesel(sql_type = BigInt)]
    pub series: i64,
}

#[derive(Debug, Clone, QueryableByName)]
pub struct MetricCount {
    #[diesel(sql_type = Text)]
    pub metric: String,
    #[diesel(sql_type = BigInt)]
    pub series: i64,
    /// Written as InfluxDB line protocol (its fields are gauges).
    #[diesel(sql_type = Bool)]
    pub influx: bool,
}

/// The first `limit` of rows read with `LIMIT limit + 1`, and whether more exist.
fn limited<T>(mut rows: Vec<T>, limit: usize) -> Result<(Vec<T>, bool), DbError> {
    let more = rows.len() > limit;
    rows.truncate(limit);
    Ok((rows, more))
}
