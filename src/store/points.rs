//! Writing points.

use std::io::Write;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use diesel::expression::AsExpression;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::{Array, BigInt, Bool, Double, Jsonb, Text, Timestamptz};

use super::rollups;
use crate::db::DbError;
use crate::domain::Series;
use crate::schema::timeseries_data;

pub struct Written {
    /// Distinct timestamps written.
    pub written: usize,
    /// Of those, timestamps that were new.
    pub inserted: usize,
}

/// A JSON document already serialized once for the whole call, sent as
/// binary `jsonb` (version byte, then the text) with every row.
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

/// The series lock, and whether `[$2, $3]` holds points of series `$1`.
static LOCK_AND_OVERLAP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {}::text AS locked, EXISTS (SELECT 1 FROM timeseries_data
                 WHERE series_name = $1 AND time BETWEEN $2 AND $3) AS overlaps",
        rollups::SERIES_LOCK
    )
});

/// Inserts or replaces the points of one series, and recomputes the hourly
/// rollups they touch; all or nothing. `points` are sorted by time, without
/// repeats.
///
/// New points (the usual case: a series grows at its end) go in by binary
/// `COPY`, as fast as PostgreSQL loads rows. When the call's time range
/// already holds points of the series, or a concurrent call wrote some of
/// them first (the `COPY` fails on the key and is rolled back to its
/// savepoint), one upsert statement over arrays replaces them instead.
pub fn upsert(
    conn: &mut PgConnection,
    series: &Series,
    points: &[(DateTime<Utc>, f64)],
    tags: &serde_json::Value,
) -> Result<Written, DbError> {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return Ok(Written {
            written: 0,
            inserted: 0,
        });
    };
    conn.transaction(|conn| {
        // The series lock, and whether the range holds points already, in
        // one round trip. The check's snapshot predates the lock: a writer
        // that committed meanwhile makes the COPY fail on the key, and the
        // upsert takes over.
        #[derive(QueryableByName)]
        struct Overlap {
            #[diesel(sql_type = Bool)]
            overlaps: bool,
        }
        let overlaps = diesel::sql_query(LOCK_AND_OVERLAP.as_str())
            .bind::<Text, _>(series.as_str())
            .bind::<Timestamptz, _>(first.0)
            .bind::<Timestamptz, _>(last.0)
            .get_result::<Overlap>(conn)?
            .overlaps;
        if !overlaps {
            let tags = tags.to_string();
            let rows: Vec<NewPoint> = points
                .iter()
                .map(|&(time, value)| NewPoint {
                    series_name: series.as_str(),
                    time,
                    value,
                    tags: JsonbText(&tags),
                })
                .collect();
            let copied = conn.transaction(|conn| {
                diesel::copy_from(timeseries_data::table)
                    .from_insertable(&rows)
                    .execute(conn)
            });
            match copied {
                Ok(n) => {
                    // All new: merged into their hours, no hour read again.
                    rollups::add(conn, series, points)?;
                    return Ok(Written {
                        written: n,
                        inserted: n,
                    });
                }
                Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let written = replace(conn, series, points, tags)?;
        rollups::refresh(conn, series, points)?;
        Ok(written)
    })
}

/// The upsert: one statement over arrays, counting what was new.
fn replace(
    conn: &mut PgConnection,
    series: &Series,
    points: &[(DateTime<Utc>, f64)],
    tags: &serde_json::Value,
) -> Result<Written, DbError> {
    #[derive(QueryableByName)]
    struct Counts {
        #[diesel(sql_type = BigInt)]
        written: i64,
        #[diesel(sql_type = BigInt)]
        inserted: i64,
    }
    let (times, values): (Vec<DateTime<Utc>>, Vec<f64>) = points.iter().copied().unzip();
    let sql = "WITH w AS (INSERT INTO timeseries_data (series_name, time, value, tags) \
               SELECT $1, u.t, u.v, $4 FROM unnest($2::timestamptz[], $3::float8[]) AS u(t, v) \
               ON CONFLICT (series_name, time) DO UPDATE \
               SET value = EXCLUDED.value, tags = EXCLUDED.tags, ingested_at = now() \
               RETURNING (xmax = 0) AS inserted) \
               SELECT count(*) AS written, count(*) FILTER (WHERE inserted) AS inserted FROM w";
    let counts: Counts = diesel::sql_query(sql)
        .bind::<Text, _>(series.as_str())
        .bind::<Array<Timestamptz>, _>(&times)
        .bind::<Array<Double>, _>(&values)
        .bind::<Jsonb, _>(tags)
        .get_result(conn)?;
    Ok(Written {
        written: counts.written as usize,
        inserted: counts.inserted as usize,
    })
}
