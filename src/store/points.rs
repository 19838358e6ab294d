//! Writing points: the one store path of every ingest (the MCP tool,
//! Prometheus remote write, InfluxDB line protocol, `mcp-server import`).
//!
//! A write lands its points and nothing else when they fall at or after
//! their series' `folded_to` (the usual case: series grow at their end); the
//! fold moves them into the rollups later. Points before it recompute the
//! hours and days they fall in, in the same transaction. Either way every
//! answer that follows is exact (see `rollups`).

use std::io::Write;

use chrono::{DateTime, Utc};
use diesel::expression::AsExpression;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::{Array, BigInt, Bool, Double, Jsonb, Text, Timestamptz};

use super::catalog::{Folded, FoldedTo};
use super::rollups;
use crate::db::DbError;
use crate::domain::SeriesPoints;
use crate::schema::timeseries_data;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Distinct (series, timestamp) pairs written.
    pub written: usize,
    /// Of those, pairs that were new.
    pub inserted: usize,
}

impl std::ops::AddAssign for Written {
    fn add_assign(&mut self, o: Written) {
        self.written += o.written;
        self.inserted += o.inserted;
    }
}

/// A JSON document already serialized once per series, sent as binary
/// `jsonb` (version byte, then the text) with every row.
#[derive(Debug, AsExpression)]
#[diesel(sql_type = Jsonb)]
struct JsonbText<'a>(&'a str);

impl ToSql<Jsonb, Pg> for JsonbText<'_> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        out.write_all(&[1])?;
        out.write_all(self.0.as_bytes())?;
        Ok(IsNull::No)
    }
}

#[derive(Insertable)]
#[diesel(table_name = timeseries_data, treat_none_as_default_value = false)]
struct NewPoint<'a> {
    series_name: &'a str,
    time: DateTime<Utc>,
    value: f64,
    tags: JsonbText<'a>,
}

/// Takes the fold lock shared on the stripes of `names` (every stripe when
/// `all`, for a transaction that will write more series than it knows
/// now), in stripe order, and reads their `folded_to` once it holds it
/// (`mcp_lock_for_write`): one round trip. Writers do not block one
/// another; the fold of a series waits for its writers and they for it.
/// First in the transaction.
pub fn lock(conn: &mut PgConnection, names: &[&str], all: bool) -> Result<Folded, DbError> {
    Ok(
        diesel::sql_query("SELECT series_name, folded_to FROM mcp_lock_for_write($1, $2)")
            .bind::<Array<Text>, _>(names)
            .bind::<Bool, _>(all)
            .load::<FoldedTo>(conn)?
            .into_iter()
            .collect(),
    )
}

/// Writes `batch` (each series' points sorted, one per timestamp) inside
/// the caller's transaction, which holds [`lock`] for these series: the
/// last value wins on a timestamp already stored.
///
/// Points go in by binary `COPY`, as fast as PostgreSQL loads rows. When a
/// timestamp is already stored (a retry, a correction) the `COPY` fails on
/// the key and is rolled back to its savepoint, and one upsert over arrays
/// replaces them instead.
/// `folded` holds the `folded_to` of the batch's series (from [`lock`], or
/// [`super::catalog::folded`] for a later chunk).
pub fn write(
    conn: &mut PgConnection,
    batch: &[&SeriesPoints],
    folded: &Folded,
) -> Result<Written, DbError> {
    retained(conn, batch, folded)?;
    let rows: Vec<NewPoint> = batch
        .iter()
        .flat_map(|s| {
            s.points.iter().map(|&(time, value)| NewPoint {
                series_name: s.series.as_str(),
                time,
                value,
                tags: JsonbText(s.tags.as_str()),
            })
        })
        .collect();
    let copied = conn.transaction(|conn| {
        diesel::copy_from(timeseries_data::table)
            .from_insertable(&rows)
            .execute(conn)
    });
    drop(rows);
    let written = match copied {
        Ok(n) => Written {
            written: n,
            inserted: n,
        },
        Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => replace(conn, batch)?,
        Err(e) => return Err(e.into()),
    };
    refresh_folded(conn, batch, folded)?;
    Ok(written)
}

/// Refuses points before their series' `raw_from`: retention dropped the
/// raw points there, and the hours kept as rollups cannot be recomputed.
/// Read only for series written before their `folded_to` (never past it).
fn retained(
    conn: &mut PgConnection,
    batch: &[&SeriesPoints],
    folded: &Folded,
) -> Result<(), DbError> {
    let early: Vec<(&str, DateTime<Utc>)> = batch
        .iter()
        .filter_map(|s| {
            let first = s.points.iter().map(|p| p.0).min()?;
            let until = folded.get(s.series.as_str())?;
            (first < *until).then_some((s.series.as_str(), first))
        })
        .collect();
    if early.is_empty() {
        return Ok(());
    }
    #[derive(QueryableByName)]
    struct Kept {
        #[diesel(sql_type = Text)]
        series_name: String,
        #[diesel(sql_type = Timestamptz)]
        raw_from: DateTime<Utc>,
    }
    let (names, firsts): (Vec<&str>, Vec<DateTime<Utc>>) = early.into_iter().unzip();
    let kept: Option<Kept> = diesel::sql_query(
        "SELECT c.series_name, c.raw_from FROM unnest($1::text[], $2::timestamptz[]) AS u(s, f)
           JOIN timeseries_series c ON c.series_name = u.s WHERE u.f < c.raw_from LIMIT 1",
    )
    .bind::<Array<Text>, _>(names)
    .bind::<Array<Timestamptz>, _>(firsts)
    .get_result(conn)
    .optional()?;
    match kept {
        None => Ok(()),
        Some(k) => Err(DbError::Retained(format!(
            "series {} keeps no raw points before {} (raw retention): its hours there are kept \
             as rollups only and cannot change; send points from then on. Nothing was written",
            k.series_name,
            k.raw_from.to_rfc3339()
        ))),
    }
}

/// The hours and days of points written before their series' `folded_to`
/// are in the rollups already: recompute them.
fn refresh_folded(
    conn: &mut PgConnection,
    batch: &[&SeriesPoints],
    folded: &Folded,
) -> Result<(), DbError> {
    let touched: Vec<rollups::Touched> = batch
        .iter()
        .filter_map(|s| {
            let until = *folded.get(s.series.as_str())?;
            // Sorted: the points before `until` are a prefix.
            let n = s.points.partition_point(|p| p.0 < until);
            (n > 0).then(|| (&s.series, &s.points[..n]))
        })
        .collect();
    rollups::refresh(conn, &touched)
}

/// The upsert: one statement over arrays, counting what was new.
fn replace(conn: &mut PgConnection, batch: &[&SeriesPoints]) -> Result<Written, DbError> {
    #[derive(QueryableByName)]
    struct Counts {
        #[diesel(sql_type = BigInt)]
        written: i64,
        #[diesel(sql_type = BigInt)]
        inserted: i64,
    }
    let names: Vec<&str> = batch.iter().map(|s| s.series.as_str()).collect();
    let tags: Vec<&str> = batch.iter().map(|s| s.tags.as_str()).collect();
    let n: usize = batch.iter().map(|s| s.points.len()).sum();
    let (mut index, mut times, mut values) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (i, s) in batch.iter().enumerate() {
        for &(t, v) in &s.points {
            // WITH ORDINALITY counts from 1.
            index.push(i as i64 + 1);
            times.push(t);
            values.push(v);
        }
    }
    let sql = "WITH s AS (SELECT * FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS s(name, tags, i)),
               w AS (INSERT INTO timeseries_data (series_name, time, value, tags)
                     SELECT s.name, u.t, u.v, s.tags::jsonb
                       FROM unnest($3::int8[], $4::timestamptz[], $5::float8[]) AS u(i, t, v)
                       JOIN s USING (i)
                     ON CONFLICT (series_name, time) DO UPDATE
                     SET value = EXCLUDED.value, tags = EXCLUDED.tags, ingested_at = now()
                     RETURNING (xmax = 0) AS inserted)
               SELECT count(*) AS written, count(*) FILTER (WHERE inserted) AS inserted FROM w";
    let counts: Counts = diesel::sql_query(sql)
        .bind::<Array<Text>, _>(&names)
        .bind::<Array<Text>, _>(&tags)
        .bind::<Array<BigInt>, _>(&index)
        .bind::<Array<Timestamptz>, _>(&times)
        .bind::<Array<Double>, _>(&values)
        .get_result(conn)?;
    Ok(Written {
        written: counts.written as usize,
        inserted: counts.inserted as usize,
    })
}
