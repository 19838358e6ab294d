//! `ingest_timeseries`: insert or replace the points of one series, all or
//! nothing, in one statement over arrays (no per-point round trips).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Bool, Double, Jsonb, Text, Timestamptz};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Series;
use crate::mcp::tools::{Output, Spec, ToolContext, ToolError, ToolRegistry};

pub const MAX_POINTS: usize = 100_000;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestArgs {
    series: Series,
    /// The points; a timestamp already stored (or repeated here) keeps the last value given.
    #[schemars(length(min = 1, max = 100000))]
    points: Vec<PointArg>,
    /// Tags stored with every point of this call.
    tags: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PointArg {
    /// RFC 3339 timestamp, e.g. 2026-01-01T00:00:00Z.
    time: String,
    /// A finite number.
    value: f64,
}

#[derive(Serialize, JsonSchema)]
pub struct IngestResult {
    series: String,
    /// Points in the call.
    received: usize,
    /// Distinct timestamps written (repeats within the call count once).
    written: usize,
    /// Of those, timestamps that were new.
    inserted: usize,
    /// Of those, timestamps whose stored value was replaced.
    replaced: usize,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Bool)]
    inserted: bool,
}

/// Checks every point before anything is written; the error names the first
/// bad point's index.
fn validate(args: &IngestArgs) -> Result<(Vec<DateTime<Utc>>, Vec<f64>), ToolError> {
    if args.points.is_empty() || args.points.len() > MAX_POINTS {
        return Err(ToolError(format!(
            "points must hold 1 to {MAX_POINTS} points, got {}; split larger loads into several calls",
            args.points.len()
        )));
    }
    // Last value wins for a timestamp repeated within the call.
    let mut by_time = BTreeMap::new();
    for (i, p) in args.points.iter().enumerate() {
        let time = DateTime::parse_from_rfc3339(&p.time)
            .map_err(|e| {
                ToolError(format!(
                    "points[{i}].time {:?} is not an RFC 3339 timestamp ({e}); nothing was written",
                    p.time
                ))
            })?
            .with_timezone(&Utc);
        if !p.value.is_finite() {
            return Err(ToolError(format!(
                "points[{i}].value must be a finite number; nothing was written"
            )));
        }
        by_time.insert(time, p.value);
    }
    Ok(by_time.into_iter().unzip())
}

pub fn register(reg: &mut ToolRegistry) {
    reg.typed(
        Spec {
            name: "ingest_timeseries",
            title: "Ingest points",
            description: "Insert or replace points of one series (up to 100,000 per call). All or nothing: \
                          a bad point rejects the whole call. Re-sending a timestamp replaces its value, so retries are safe.",
            annotations: json!({ "readOnlyHint": false, "destructiveHint": false, "idempotentHint": true, "openWorldHint": false }),
        },
        |ctx: ToolContext, args: IngestArgs| async move {
            let (times, values) = validate(&args)?;
            let received = args.points.len();
            let series = args.series.into_string();
            let tags = serde_json::Value::Object(args.tags.unwrap_or_default());
            let name = series.clone();
            let rows: Vec<Row> = ctx
                .db
                .run(move |conn| {
                    let sql = "INSERT INTO timeseries_data (series_name, time, value, tags) \
                               SELECT $1, u.t, u.v, $4 FROM unnest($2::timestamptz[], $3::float8[]) AS u(t, v) \
                               ON CONFLICT (series_name, time) DO UPDATE \
                               SET value = EXCLUDED.value, tags = EXCLUDED.tags, ingested_at = now() \
                               RETURNING (xmax = 0) AS inserted";
                    Ok(diesel::sql_query(sql)
                        .bind::<Text, _>(&name)
                        .bind::<Array<Timestamptz>, _>(&times)
                        .bind::<Array<Double>, _>(&values)
                        .bind::<Jsonb, _>(&tags)
                        .load(conn)?)
                })
                .await?;
            let inserted = rows.iter().filter(|r| r.inserted).count();
            // Cached figures of this series are stale from now on.
            let cache = Arc::clone(&ctx.cache);
            let scope = series.clone();
            let _ = rocket::tokio::task::spawn_blocking(move || cache.invalidate(&scope)).await;
            ctx.live.resource_updated(&format!("timeseries://{series}"));
            let result = IngestResult { series, received, written: rows.len(), inserted, replaced: rows.len() - inserted };
            let text = format!(
                "{}: wrote {} points ({} new, {} replaced)",
                result.series, result.written, result.inserted, result.replaced
            );
            Ok(Output { value: result, text })
        },
    );
}
