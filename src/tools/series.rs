//! `list_series`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::mcp::tools::{Output, Spec, ToolContext, ToolError, ToolRegistry};
use crate::store::series::{self, SeriesSummary};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListSeriesArgs {
    /// Only series whose name starts with this.
    #[serde(default)]
    prefix: String,
    /// At most this many series (1-1000, default 100).
    #[schemars(range(min = 1, max = 1000))]
    limit: Option<u32>,
}

#[derive(Serialize, JsonSchema)]
pub struct ListSeriesResult {
    series: Vec<SeriesSummary>,
    /// True when more series match than were returned.
    truncated: bool,
}

pub fn register(reg: &mut ToolRegistry) {
    reg.typed(
        Spec {
            name: "list_series",
            title: "List series",
            description: "The stored time series with their point counts and first/last timestamps",
            annotations: json!({ "readOnlyHint": true, "openWorldHint": false }),
        },
        |ctx: ToolContext, args: ListSeriesArgs| async move {
            let limit = args.limit.unwrap_or(100);
            if !(1..=1000).contains(&limit) {
                return Err(ToolError(format!(
                    "limit must be between 1 and 1000, got {limit}"
                )));
            }
            let prefix = args.prefix;
            let (summaries, truncated) = ctx
                .db
                .run(move |conn| {
                    let names = series::names(conn, "", &prefix, i64::from(limit) + 1)?;
                    let truncated = names.len() > limit as usize;
                    let names: Vec<String> = names.into_iter().take(limit as usize).collect();
                    Ok((series::summaries(conn, &names)?, truncated))
                })
                .await?;
            let text = if summaries.is_empty() {
                "No series stored yet; add points with ingest_timeseries.".to_owned()
            } else {
                summaries
                    .iter()
                    .map(|s| format!("{}: {} points", s.series, s.points))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            Ok(Output {
                value: ListSeriesResult {
                    series: summaries,
                    truncated,
                },
                text,
            })
        },
    );
}
