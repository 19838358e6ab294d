//! `ingest_timeseries`: insert or replace the points of one series, all or
//! nothing.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Annotations, Output, Scopes, Spec, ToolContext, ToolError};
use crate::domain::{Series, SeriesPoints, Tags, Timestamp};
use crate::ingest::IngestError;

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

impl From<IngestError> for ToolError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Invalid(m) | IngestError::TooLarge(m) => {
                ToolError::invalid(format!("{m}; nothing was written"))
            }
            IngestError::Unavailable(_) => ToolError::Unavailable,
            IngestError::Fenced(m) => ToolError::invalid(m),
            IngestError::Internal(m) => ToolError::internal(m),
        }
    }
}

pub async fn ingest_timeseries(
    ctx: ToolContext,
    args: IngestArgs,
) -> Result<Output<IngestResult>, ToolError> {
    let received = args.points.len();
    if received == 0 || received > MAX_POINTS {
        return Err(ToolError::invalid(format!(
            "points must hold 1 to {MAX_POINTS} points, got {received}; split larger loads into several calls"
        )));
    }
    // Timestamps were checked as the arguments were read; the error names the point.
    if let Some(i) = args.points.iter().position(|p| !p.value.is_finite()) {
        return Err(ToolError::invalid(format!(
            "points[{i}].value must be a finite number; nothing was written"
        )));
    }
    let tags = Tags::from_object(args.tags.unwrap_or_default())
        .map_err(|e| ToolError::invalid(format!("{e}; nothing was written")))?;
    let mut batch = SeriesPoints::named(args.series, tags);
    batch.points = args
        .points
        .into_iter()
        .map(|p| (p.time.0, p.value))
        .collect();
    batch.settle();
    let series = batch.series.clone();
    let report = ctx.ingest.write(vec![batch], &*ctx.client).await?;
    let written = report.written;
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
