//! `query_timeseries` and `compute_statistics`: cache-aside reads.

use std::time::{Duration, Instant};

use chrono::Utc;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::args::{Bucket, Window};
use super::{Series, fmt_num};
use crate::cache::cache_aside;
use crate::mcp::tools::{Output, Spec, ToolContext, ToolError, ToolRegistry};
use crate::store::aggregates::{self, Aggregate, Summary, TimedValue};
use crate::store::runs;

/// Cached results live at most this long even without writes.
const TTL: Duration = Duration::from_secs(300);
pub const MAX_POINTS: u32 = 10_000;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryArgs {
    series: Series,
    #[serde(flatten)]
    window: Window,
    /// Bucket width (30s, 5m, 1h, 1d, 1w); absent: raw points.
    bucket: Option<String>,
    /// Aggregate per bucket (default avg).
    aggregate: Option<Aggregate>,
    /// At most this many points or buckets (1-10000, default 1000).
    #[schemars(range(min = 1, max = 10000))]
    max_points: Option<u32>,
}

#[derive(Serialize, Deserialize, JsonSchema)]
pub struct QueryResult {
    series: String,
    bucket: Option<String>,
    aggregate: Option<Aggregate>,
    points: Vec<TimedValueOut>,
    /// More points or buckets match than `max_points`: narrow the window or widen the bucket.
    truncated: bool,
    cached: bool,
}

#[derive(Serialize, Deserialize, JsonSchema)]
pub struct TimedValueOut {
    time: chrono::DateTime<Utc>,
    value: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<i64>,
}

impl From<TimedValue> for TimedValueOut {
    fn from(t: TimedValue) -> Self {
        TimedValueOut {
            time: t.time,
            value: t.value,
            count: t.count,
        }
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatsArgs {
    series: Series,
    #[serde(flatten)]
    window: Window,
}

#[derive(Serialize, Deserialize, JsonSchema)]
pub struct StatsResult {
    series: String,
    #[serde(flatten)]
    summary: Summary,
    /// The `statistics_data` row written when these were computed.
    statistics_id: Option<i64>,
    cached: bool,
}

pub fn register(reg: &mut ToolRegistry) {
    reg.typed(
        Spec {
            name: "query_timeseries",
            title: "Query points",
            description: "Points of a series in a time range, or buckets (30s, 5m, 1h, 1d …) with an aggregate \
                          (avg, min, max, sum, count, first, last). Bounded by max_points; says when truncated.",
            annotations: json!({ "readOnlyHint": true, "openWorldHint": false }),
        },
        |ctx: ToolContext, args: QueryArgs| async move {
            let series = args.series.into_string();
            let range = args.window.parse()?;
            let bucket = args.bucket.as_deref().map(Bucket::parse).transpose()?;
            if args.aggregate.is_some() && bucket.is_none() {
                return Err(ToolError("aggregate needs a bucket, e.g. \"bucket\": \"1h\"".into()));
            }
            let aggregate = bucket.map(|_| args.aggregate.unwrap_or(Aggregate::Avg));
            let max = args.max_points.unwrap_or(1000);
            if !(1..=MAX_POINTS).contains(&max) {
                return Err(ToolError(format!("max_points must be between 1 and {MAX_POINTS}, got {max}")));
            }
            let rest = format!("query:{}:{:?}:{:?}:{max}", range.key(), bucket, aggregate);
            let (s, db) = (series.clone(), ctx.db.clone());
            let (mut rows, cached) = cache_aside(&ctx.cache, &series, &rest, TTL, async move {
                db.run(move |conn| match (bucket, aggregate) {
                    (Some(b), Some(a)) => aggregates::buckets(conn, &s, range, &b.interval(), a, i64::from(max) + 1),
                    _ => aggregates::points(conn, &s, range, i64::from(max) + 1),
                })
                .await
                .map(|rows| rows.into_iter().map(TimedValueOut::from).collect::<Vec<_>>())
            })
            .await?;
            let truncated = rows.len() > max as usize;
            rows.truncate(max as usize);
            let text = format!(
                "{series}: {} {}{}",
                rows.len(),
                if bucket.is_some() { "buckets" } else { "points" },
                if truncated { " (truncated: narrow the window or widen the bucket)" } else { "" }
            );
            Ok(Output { value: QueryResult { series, bucket: args.bucket, aggregate, points: rows, truncated, cached }, text })
        },
    );

    reg.typed(
        Spec {
            name: "compute_statistics",
            title: "Compute statistics",
            description: "Count, mean, sample stddev, min, max and p50/p95/p99 of a series over a time range, \
                          computed in PostgreSQL, stored in statistics_data, and cached until the series changes.",
            annotations: json!({ "readOnlyHint": false, "destructiveHint": false, "idempotentHint": true, "openWorldHint": false }),
        },
        |ctx: ToolContext, args: StatsArgs| async move {
            let series = args.series.into_string();
            let range = args.window.parse()?;
            let started = Instant::now();
            let (s, db) = (series.clone(), ctx.db.clone());
            let ((summary, statistics_id), cached) = cache_aside(&ctx.cache, &series, &format!("stats:{}", range.key()), TTL, async move {
                db.run(move |conn| {
                    let summary = aggregates::summary(conn, &s, range)?;
                    let id = match summary.count {
                        0 => None,
                        _ => Some(runs::save_statistics(conn, &s, range, &summary)?),
                    };
                    Ok((summary, id))
                })
                .await
            })
            .await?;
            if summary.count == 0 {
                return Err(ToolError(format!("series {series:?} has no points in this range; see list_series")));
            }
            let text = format!(
                "{series}: n={} mean={} sd={} min={} p50={} p95={} p99={} max={} ({}, {:.1} ms)",
                summary.count,
                fmt_num(summary.mean),
                fmt_num(summary.stddev),
                fmt_num(summary.min),
                fmt_num(summary.p50),
                fmt_num(summary.p95),
                fmt_num(summary.p99),
                fmt_num(summary.max),
                if cached { "cached" } else { "computed" },
                started.elapsed().as_secs_f64() * 1e3,
            );
            Ok(Output { value: StatsResult { series, summary, statistics_id, cached }, text })
        },
    );
}
