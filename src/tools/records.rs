//! `get_analysis`, `list_analyses`, `list_models`: read back stored runs.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Series;
use crate::mcp::tools::{Output, Spec, ToolContext, ToolError, ToolRegistry};
use crate::store::runs;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetArgs {
    /// An analysis id returned by detect_anomalies, analyze_trend or forecast.
    id: i64,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListArgs {
    /// Only this series.
    series: Option<Series>,
    /// Only this kind: anomaly, trend or forecast (list_analyses only).
    analysis_type: Option<String>,
    /// Newest first, at most this many (1-500, default 50).
    #[schemars(range(min = 1, max = 500))]
    limit: Option<u32>,
}

/// Rows as stored, newest first.
#[derive(Serialize, JsonSchema)]
pub struct Rows {
    items: Vec<Value>,
}

fn limit(l: Option<u32>) -> Result<i64, ToolError> {
    match l.unwrap_or(50) {
        n @ 1..=500 => Ok(i64::from(n)),
        n => Err(ToolError(format!(
            "limit must be between 1 and 500, got {n}"
        ))),
    }
}

fn read_only(name: &'static str, title: &'static str, description: &'static str) -> Spec {
    Spec {
        name,
        title,
        description,
        annotations: json!({ "readOnlyHint": true, "openWorldHint": false }),
    }
}

pub fn register(reg: &mut ToolRegistry) {
    reg.typed(
        read_only("get_analysis", "Get an analysis", "One stored analysis run (trend, anomaly, forecast) with its parameters, result, status and error"),
        |ctx: ToolContext, args: GetArgs| async move {
            let id = args.id;
            let row = ctx.db.run(move |conn| runs::get_analysis(conn, id)).await?.ok_or_else(|| ToolError(format!("no analysis {id}; see list_analyses")))?;
            let text = format!("analysis {id}: {} of {} ({})", row.analysis_type, row.series_name, row.status);
            Ok(Output { value: Rows { items: vec![serde_json::to_value(row)?] }, text })
        },
    );
    reg.typed(
        read_only(
            "list_analyses",
            "List analyses",
            "Stored analysis runs, newest first, optionally for one series or kind",
        ),
        |ctx: ToolContext, args: ListArgs| async move {
            let n = limit(args.limit)?;
            let rows = ctx
                .db
                .run(move |conn| {
                    runs::list_analyses(
                        conn,
                        args.series.as_ref().map(Series::as_str),
                        args.analysis_type.as_deref(),
                        n,
                    )
                })
                .await?;
            let text = format!("{} analyses", rows.len());
            Ok(Output {
                value: Rows {
                    items: rows
                        .into_iter()
                        .map(serde_json::to_value)
                        .collect::<Result<_, _>>()?,
                },
                text,
            })
        },
    );
    reg.typed(
        read_only(
            "list_models",
            "List models",
            "Training runs with their status, holdout metrics and fitted model, newest first",
        ),
        |ctx: ToolContext, args: ListArgs| async move {
            if args.analysis_type.is_some() {
                return Err(ToolError(
                    "list_models takes series and limit, not analysis_type".into(),
                ));
            }
            let n = limit(args.limit)?;
            let rows = ctx
                .db
                .run(move |conn| {
                    runs::list_models(conn, args.series.as_ref().map(Series::as_str), n)
                })
                .await?;
            let text = rows
                .iter()
                .map(|m| {
                    format!(
                        "{} {} ({}, {}) MAE {:?}",
                        m.id, m.model_name, m.model_type, m.status, m.mae
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            Ok(Output {
                value: Rows {
                    items: rows
                        .into_iter()
                        .map(serde_json::to_value)
                        .collect::<Result<_, _>>()?,
                },
                text,
            })
        },
    );
}
