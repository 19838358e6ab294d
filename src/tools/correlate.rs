//! `correlate_series`: which series move together with one series. Each
//! is bucketed (bucket averages, from the rollups for whole hours), aligned
//! on the buckets, and correlated at the lag of largest |Pearson|.

use std::collections::HashMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::aggregate::labels;
use super::selection::{self, MaxSeries};
use super::{Annotations, Output, Scopes, Spec, ToolContext, ToolError, fmt_num};
use crate::analytics::across::Labels;
use crate::analytics::correlate::{self, Aligned};
use crate::domain::{Aggregate, Bounded, Bucket, Selector, Series, Window};
use crate::store::aggregates::TimedValue;
use crate::store::rollups::{self, Source};

pub const SPEC: Spec = Spec {
    name: "correlate_series",
    title: "Correlate series",
    description: "Which series move together with one series: Pearson and Spearman correlation of \
                  its bucket averages (default 1h) against those of every series a selector \
                  matches, at the lag (up to ±max_lag buckets) where they agree best. Ranked by \
                  |pearson|; each result gives its lag and how many buckets were paired",
    annotations: Annotations::READ_ONLY,
    scope: Scopes::ANALYTICS,
};

/// Buckets read per series.
const MAX_BUCKETS: i64 = 5_000;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CorrelateArgs {
    /// The series to compare the others with.
    pub series: Series,
    /// The series to compare it with (itself is left out).
    pub selector: Selector,
    #[serde(flatten)]
    pub window: Window,
    /// Bucket width (default 1h: the rollups serve it).
    pub bucket: Option<Bucket>,
    /// Search lags of up to this many buckets either way (default 0).
    #[serde(default)]
    pub max_lag: Bounded<0, 100, 0>,
    #[serde(default)]
    pub max_series: MaxSeries,
    /// At most this many results.
    #[serde(default)]
    pub limit: Bounded<1, 1000, 20>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Correlation {
    pub series: String,
    pub labels: Labels,
    pub pearson: f64,
    pub spearman: Option<f64>,
    /// Buckets by which this series follows the reference (negative: leads it).
    pub lag: i64,
    /// Buckets paired at that lag.
    pub samples: usize,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CorrelateResult {
    pub series: Series,
    pub bucket: Bucket,
    /// The largest |pearson| first.
    pub results: Vec<Correlation>,
    pub series_matched: usize,
    /// Series left out: fewer than 3 buckets paired, or a flat line.
    pub series_without_correlation: usize,
    pub source: Source,
    pub truncated: bool,
}

pub async fn correlate_series(
    ctx: ToolContext,
    args: CorrelateArgs,
) -> Result<Output<CorrelateResult>, ToolError> {
    let CorrelateArgs {
        series,
        selector,
        window,
        bucket,
        max_lag,
        max_series,
        limit,
    } = args;
    let bucket = bucket.unwrap_or(rollups::RESOLUTION_BUCKET);
    let reference = series.clone();
    let (entries, reference_buckets, others, source) = ctx
        .db
        .run(move |conn| {
            let mut entries = match selection::bounded(conn, &selector, max_series)? {
                Ok(e) => e,
                Err(refused) => return Ok(Err(refused)),
            };
            entries.retain(|e| e.series_name != reference.as_str());
            let read = |conn: &mut diesel::PgConnection, s: &Series| {
                rollups::any_buckets(conn, (s, window), bucket, Aggregate::Avg, MAX_BUCKETS)
            };
            let (reference_buckets, source) = read(conn, &reference)?;
            let others = if source == Source::Rollup {
                // Whole hours: every series' rows in one statement.
                let names: Vec<&str> = entries.iter().map(|e| e.series_name.as_str()).collect();
                let days = bucket.seconds() % rollups::DAY == 0;
                rollups::read_many(conn, &names, window, (days, false), None)?
                    .iter()
                    .map(|rows| {
                        rollups::group(rows, bucket, MAX_BUCKETS as usize, false)
                            .into_iter()
                            .filter_map(|(time, m)| {
                                Some(TimedValue {
                                    time,
                                    value: m.moments.mean()?,
                                    count: None,
                                })
                            })
                            .collect()
                    })
                    .collect()
            } else {
                let mut others = Vec::with_capacity(entries.len());
                for e in &entries {
                    // The catalog's CHECK holds the name rule: every name parses.
                    others.push(match Series::try_from(e.series_name.clone()) {
                        Ok(s) => read(conn, &s)?.0,
                        Err(_) => Vec::new(),
                    });
                }
                others
            };
            Ok(Ok((entries, reference_buckets, others, source)))
        })
        .await??;
    if reference_buckets.len() < 3 {
        return Err(ToolError::invalid(format!(
            "{series} has {} buckets of {} s in the window; correlation needs at least 3: \
             widen the window or narrow the bucket",
            reference_buckets.len(),
            bucket.seconds()
        )));
    }
    let keyed = |b: &[TimedValue]| -> HashMap<i64, f64> {
        b.iter()
            .map(|v| (v.time.timestamp().div_euclid(bucket.seconds()), v.value))
            .collect()
    };
    let reference_map = keyed(&reference_buckets);
    let max_lag = i64::from(max_lag.get());
    let mut results: Vec<Correlation> = entries
        .iter()
        .zip(&others)
        .filter_map(|(e, b)| {
            let Aligned {
                pearson,
                spearman,
                lag,
                samples,
            } = correlate::best_lag(&reference_map, &keyed(b), max_lag)?;
            Some(Correlation {
                series: e.series_name.clone(),
                labels: labels(e),
                pearson,
                spearman,
                lag,
                samples,
            })
        })
        .collect();
    let without = entries.len() - results.len();
    results.sort_by(|a, b| b.pearson.abs().total_cmp(&a.pearson.abs()));
    let truncated = results.len() > limit.as_usize();
    results.truncate(limit.as_usize());
    let mut lines: Vec<String> = results
        .iter()
        .map(|r| {
            format!(
                "{}: pearson {} spearman {} lag {} ({} buckets)",
                r.series,
                fmt_num(Some(r.pearson)),
                fmt_num(r.spearman),
                r.lag,
                r.samples
            )
        })
        .collect();
    lines.push(format!(
        "{} series matched, {without} without a correlation.",
        entries.len()
    ));
    Ok(Output {
        value: CorrelateResult {
            series,
            bucket,
            results,
            series_matched: entries.len(),
            series_without_correlation: without,
            source,
            truncated,
        },
        text: lines.join("\n"),
    })
}
