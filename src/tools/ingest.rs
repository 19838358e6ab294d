//! `ingest_timeseries`: insert or replace the points of one series, all or
//! nothing.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Annotations, Output, Scopes, Spec, ToolContext, ToolError};
use crate::domain::{Series, Timestamp};
use crate::store::points;

pub const MAX_POINTS: usize = 100_000;

pub const SPEC: Spec = Spec {
    name: "ingest_timeseries",
    title: "Ingest points",
    description: "Insert or replace points of one series (up to 100,000 per call). All or nothing: \
                  a bad point rejects the whole call. Re-sending a timestamp replaces its value, so retries are safe.",
    annotations: Annotations::additive(true),
    scope: Scopes::WRITE,
};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestArgs {
    pub series: Series,
    /// The points; a timestamp already stored (or repeated here) keeps the last value given.
    #[schemars(length(min = 1, max = MAX_POINTS))]
    pub points: Vec<PointArg>,
    /// Tags stored with every point of this call.
    pub tags: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PointArg {
    /// RFC 3339 timestamp, e.g. 2026-01-01T00:00:00Z.
    pub time: Timestamp,
    /// A finite number.
    pub value: f64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct IngestResult {
    pub series: Series,
    /// Points in the call.
    pub received: usize,
    /// Distinct timestamps written (repeats within the call count once).
    pub written: usize,
    /// Of those, timestamps that were new.
    pub inserted: usize,
    /// Of those, timestamps whose stored value was replaced.
    pub replaced: usize,
}

/// Checks every point before anything is written, and orders them by time
/// with the last value kept for a repeated timestamp. (Timestamps were
/// checked as the arguments were read; the error names the point.)
fn validate(mut points: Vec<PointArg>) -> Result<Vec<(DateTime<Utc>, f64)>, ToolError> {
    if points.is_empty() || points.len() > MAX_POINTS {
        return Err(ToolError::invalid(format!(
            "points must hold 1 to {MAX_POINTS} points, got {}; split larger loads into several calls",
            points.len()
        )));
    }
    if let Some(i) = points.iter().position(|p| !p.value.is_finite()) {
        return Err(ToolError::invalid(format!(
            "points[{i}].value must be a finite number; nothing was written"
        )));
    }
    // Stable: equal timestamps keep the call's order, and each repeat
    // hands its value to the one kept, so the last value wins.
    points.sort_by_key(|p| p.time);
    points.dedup_by(|later, kept| {
        let repeat = later.time == kept.time;
        if repeat {
            kept.value = later.value;
        }
        repeat
    });
    Ok(points.into_iter().map(|p| (p.time.0, p.value)).collect())
}

pub async fn ingest_timeseries(
    ctx: ToolContext,
    args: IngestArgs,
) -> Result<Output<IngestResult>, ToolError> {
    let received = args.points.len();
    let points = validate(args.points)?;
    let tags = serde_json::Value::Object(args.tags.unwrap_or_default());
    if crate::domain::holds_nul(&tags) {
        return Err(ToolError::invalid(
            "tags must not contain the NUL character (\\u0000) in a key or a string; nothing was written",
        ));
    }
    let series = args.series;
    let name = series.clone();
    let written = ctx
        .db
        .run(move |conn| points::upsert(conn, &name, &points, &tags))
        .await?;
    // Cached figures of this series are stale from now on.
    ctx.cache.invalidate(series.as_str()).await;
    // The series resource and its chart both changed.
    ctx.client
        .resource_updated(&format!("timeseries://{series}"));
    ctx.client
        .resource_updated(&format!("timeseries://{series}/chart.png"));
    let result = IngestResult {
        series,
        received,
        written: written.written,
        inserted: written.inserted,
        replaced: written.written - written.inserted,
    };
    let text = format!(
        "{}: wrote {} points ({} new, {} replaced)",
        result.series, result.written, result.inserted, result.replaced
    );
    Ok(Output {
        value: result,
        text,
    })
}
