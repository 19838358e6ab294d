//! `query_timeseries` and `compute_statistics`: cache-aside reads.

use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Annotations, Output, Scopes, Spec, ToolContext, ToolError, fmt_num, selection};
use crate::domain::{Aggregate, Bounded, Bucket, Series, Window};
use crate::store::aggregates::{self, Summary, TimedValue};
use crate::store::rollups::{self, Percentiles, Source};
use crate::store::{catalog, runs};

/// Cached results live at most this long even without writes.
const TTL: Duration = Duration::from_secs(300);

pub const QUERY: Spec = Spec {
    name: "query_timeseries",
    title: "Query points",
    description: "Points of a series in a time range, or buckets (30s, 5m, 1h, 1d …) with an aggregate \
                  (avg, min, max, sum, count, first, last). Bounded by max_points; says when truncated.",
    annotations: Annotations::READ_ONLY,
    scope: Scopes::READ,
};

pub const STATISTICS: Spec = Spec {
    name: "compute_statistics",
    title: "Compute statistics",
    description: "Count, mean, sample stddev, min, max and p50/p95/p99 of a series over a time range. \
                  Exact moments from hourly rollups whatever the range; percentiles exact up to 100,000 points \
                  (or with exact: true), else from hourly sketches within 1%. Stored in statistics_data, and \
                  cached until the series changes.",
    annotations: Annotations::additive(true),
    scope: Scopes::READ,
};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryArgs {
    pub series: Series,
    #[serde(flatten)]
    pub window: Window,
    /// Bucket width (30s, 5m, 1h, 1d, 1w); absent: raw points.
    pub bucket: Option<Bucket>,
    /// Aggregate per bucket (default avg); needs a bucket.
    pub aggregate: Option<Aggregate>,
    /// At most this many points or buckets.
    #[serde(default)]
    pub max_points: Bounded<1, 10_000, 1000>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct QueryResult {
    pub series: Series,
    pub bucket: Option<Bucket>,
    pub aggregate: Option<Aggregate>,
    pub points: Vec<TimedValue>,
    /// Buckets of whole hours come from the hourly rollups; finer ones and
    /// raw points from the raw points.
    pub source: Source,
    /// More points or buckets match than `max_points`: narrow the window or widen the bucket.
    pub truncated: bool,
    pub cached: bool,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatsArgs {
    pub series: Series,
    #[serde(flatten)]
    pub window: Window,
    /// Exact percentiles from every raw point (true), or from the hourly
    /// sketches within 1% (false). Default: exact up to 100,000 points.
    pub exact: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct StatsResult {
    pub series: Series,
    #[serde(flatten)]
    pub summary: Summary,
    /// Count, mean, stddev, min and max come from the hourly rollups (with
    /// the raw points of partial hours at the window's edges): exact.
    pub source: Source,
    pub resolution: Bucket,
    /// Exact (`percentile_cont`) or from the sketches.
    pub percentiles: Percentiles,
    /// The sketches' bound on a percentile's relative error, when used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percentile_relative_error: Option<f64>,
    /// The `statistics_data` row written when these were computed.
    pub statistics_id: Option<i64>,
    /// Set for a counter: these summarise its raw, cumulative values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub cached: bool,
}

pub async fn query_timeseries(
    ctx: ToolContext,
    args: QueryArgs,
) -> Result<Output<QueryResult>, ToolError> {
    let QueryArgs {
        series,
        window,
        bucket,
        aggregate,
        max_points,
    } = args;
    if aggregate.is_some() && bucket.is_none() {
        return Err(ToolError::invalid(
            "aggregate needs a bucket, e.g. \"bucket\": \"1h\"",
        ));
    }
    let aggregate = bucket.map(|_| aggregate.unwrap_or_default());
    let max = max_points.as_usize();
    let rest = format!("query:{}:{bucket:?}:{aggregate:?}:{max}", window.key());
    let (s, db) = (series.clone(), ctx.db.clone());
    // One more than asked tells whether there are more.
    let limit = max_points.as_i64() + 1;
    let (mut points, cached) = ctx
        .cached(&series, &rest, TTL, async move {
            db.run(move |conn| match (bucket, aggregate) {
                (Some(b), Some(a)) => Ok(rollups::any_buckets(conn, (&s, window), b, a, limit)?.0),
                _ => aggregates::points(conn, &s, window, limit),
            })
            .await
        })
        .await?;
    let truncated = points.len() > max;
    points.truncate(max);
    let text = format!(
        "{series}: {} {}{}",
        points.len(),
        if bucket.is_some() {
            "buckets"
        } else {
            "points"
        },
        if truncated {
            " (truncated: narrow the window or widen the bucket)"
        } else {
            ""
        }
    );
    Ok(Output {
        value: QueryResult {
            series,
            bucket,
            aggregate,
            points,
            source: match bucket {
                Some(b) if rollups::serves(b) => Source::Rollup,
                _ => Source::Raw,
            },
            truncated,
            cached,
        },
        text,
    })
}

pub async fn compute_statistics(
    ctx: ToolContext,
    args: StatsArgs,
) -> Result<Output<StatsResult>, ToolError> {
    let StatsArgs {
        series,
        window,
        exact,
    } = args;
    let started = Instant::now();
    let (s, db) = (series.clone(), ctx.db.clone());
    let rest = format!("stats:{}:{exact:?}", window.key());
    let ((summary, percentiles, statistics_id, note), cached) = ctx
        .cached(&series, &rest, TTL, async move {
            db.run(move |conn| {
                let (summary, percentiles) = rollups::statistics(conn, &s, window, exact)?;
                let id = match summary.count {
                    0 => None,
                    _ => Some(runs::save_statistics(conn, &s, window, &summary)?),
                };
                Ok((summary, percentiles, id, counter_note(conn, &s)?))
            })
            .await
        })
        .await?;
    if summary.count == 0 {
        return Err(ToolError::invalid(format!(
            "series {:?} has no points in this range; see list_series",
            series.as_str()
        )));
    }
    let mut text = format!(
        "{series}: n={} mean={} sd={} min={} p50={} p95={} p99={} max={} ({}, {} percentiles, {:.1} ms)",
        summary.count,
        fmt_num(summary.mean),
        fmt_num(summary.stddev),
        fmt_num(summary.min),
        fmt_num(summary.p50),
        fmt_num(summary.p95),
        fmt_num(summary.p99),
        fmt_num(summary.max),
        if cached { "cached" } else { "computed" },
        match percentiles {
            Percentiles::Exact => "exact",
            Percentiles::Sketch => "sketched (±1%)",
        },
        started.elapsed().as_secs_f64() * 1e3,
    );
    if let Some(note) = &note {
        text = format!("{text}\n{note}");
    }
    Ok(Output {
        value: StatsResult {
            series,
            resolution: rollups::resolution(summary.hours_from),
            summary,
            source: Source::Rollup,
            percentiles,
            percentile_relative_error: (percentiles == Percentiles::Sketch)
                .then_some(rollups::SKETCH_ERROR),
            statistics_id,
            note,
            cached,
        },
        text,
    })
}

/// What to say when the series is a counter (or a histogram's counts):
/// its raw values are cumulative, so their mean and spread mislead.
fn counter_note(
    conn: &mut diesel::PgConnection,
    series: &Series,
) -> Result<Option<String>, crate::db::DbError> {
    let Some(entry) = catalog::entry(conn, series.as_str())? else {
        return Ok(None);
    };
    let kinds = selection::kinds(conn, std::slice::from_ref(&entry))?;
    Ok(kinds
        .get(&entry.metric)
        .filter(|k| k.counts_up(&entry.metric))
        .map(|k| {
            format!(
                "{} is a {k}: these are statistics of its cumulative count, which resets to 0 when \
             its process restarts; aggregate_series with per_series rate or increase gives how \
             fast or how much it grew",
                entry.metric
            )
        }))
}
