//! Counter arithmetic over the raw points: a counter's increase in a
//! window with resets handled as Prometheus does (a drop is a restart from
//! 0, so the sample after it counts whole), for many series in one query.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Double, Nullable, Text, Timestamptz};

use crate::db::DbError;
use crate::domain::{Bucket, Window};

/// One series' samples in a window (or in one bucket of it), reduced.
#[derive(Debug, Clone, QueryableByName)]
pub struct Increase {
    #[diesel(sql_type = Text)]
    pub series_name: String,
    /// The bucket's start, when bucketed.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub bucket: Option<DateTime<Utc>>,
    /// Σ over consecutive samples of (v − prev), or v where v < prev.
    #[diesel(sql_type = Double)]
    pub increase: f64,
    #[diesel(sql_type = BigInt)]
    pub samples: i64,
    #[diesel(sql_type = Timestamptz)]
    pub first_time: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    pub last_time: DateTime<Utc>,
}

impl Increase {
    /// Per second between the first and last sample; none from one sample.
    pub fn rate(&self) -> Option<f64> {
        let seconds = (self.last_time - self.first_time).num_milliseconds() as f64 / 1e3;
        (self.samples >= 2 && seconds > 0.0).then(|| self.increase / seconds)
    }
}

/// The increase of each named series that has samples in `window`, or in
/// each `bucket` of it (`date_bin` buckets: pairs of samples within one
/// bucket, as a PromQL range query of that range and step reads them).
pub fn increases(
    conn: &mut PgConnection,
    names: &[&str],
    window: Window,
    bucket: Option<Bucket>,
) -> Result<Vec<Increase>, DbError> {
    Ok(diesel::sql_query(
        "SELECT series_name, b AS bucket,
                COALESCE(sum(CASE WHEN d >= 0 THEN d WHEN d < 0 THEN value END), 0) AS increase,
                count(*) AS samples, min(time) AS first_time, max(time) AS last_time
           FROM (SELECT series_name, time, value, b,
                        value - lag(value) OVER (PARTITION BY series_name, b ORDER BY time) AS d
                   FROM (SELECT series_name, time, value,
                                date_bin($4::interval, time, TIMESTAMPTZ '2000-01-01Z') AS b
                           FROM timeseries_data
                          WHERE series_name = ANY($1)
                            AND time >= COALESCE($2, '-infinity')
                            AND time < COALESCE($3, 'infinity')) q) p
          GROUP BY series_name, b ORDER BY series_name, b",
    )
    .bind::<Array<Text>, _>(names)
    .bind::<Nullable<Timestamptz>, _>(window.start)
    .bind::<Nullable<Timestamptz>, _>(window.end)
    .bind::<Nullable<Text>, _>(bucket.map(|b| b.interval()))
    .load(conn)?)
}
