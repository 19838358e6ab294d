//! `list_series`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::selection;
use super::{Annotations, Output, Scopes, Spec, ToolContext, ToolError};
use crate::domain::{Bounded, Selector, Series};
use crate::store::catalog::{self, Filter};
use crate::store::series::{self, SeriesSummary};

pub const SPEC: Spec = Spec {
    name: "list_series",
    title: "List series",
    description: "The stored time series with their point counts, first/last timestamps, metric \
                  and tags. Filter by name prefix, and by a selector \
                  (http_requests_total{job=\"api\",code=~\"5..\"}) or by metric (a Prometheus \
                  metric name, an InfluxDB measurement.field) and tags (a Prometheus label set, \
                  InfluxDB tags with _measurement and _field): {\"job\": \"node\"} lists the \
                  series whose tags hold job=node",
    annotations: Annotations::READ_ONLY,
    scope: Scopes::READ,
};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListSeriesArgs {
    /// Only series whose name starts with this.
    #[serde(default)]
    pub prefix: String,
    /// Only series of this metric (e.g. node_cpu_seconds_total, cpu.usage_idle).
    pub metric: Option<String>,
    /// Only series whose tags hold every one of these, e.g. {"job": "node"}.
    pub tags: Option<serde_json::Map<String, serde_json::Value>>,
    /// Only the series this selects (instead of metric and tags).
    pub selector: Option<Selector>,
    /// At most this many series.
    #[serde(default)]
    pub limit: Bounded<1, 1000, 100>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ListSeriesResult {
    pub series: Vec<SeriesSummary>,
    /// True when more series match than were returned.
    pub truncated: bool,
}

pub async fn list_series(
    ctx: ToolContext,
    args: ListSeriesArgs,
) -> Result<Output<ListSeriesResult>, ToolError> {
    let ListSeriesArgs {
        prefix,
        metric,
        tags,
        selector,
        limit,
    } = args;
    if selector.is_some() && (metric.is_some() || tags.is_some()) {
        return Err(ToolError::invalid(
            "give a selector, or metric and tags, not both (a selector says both)",
        ));
    }
    let tags = tags.map(serde_json::Value::Object);
    let filtered = metric.is_some() || tags.is_some() || selector.is_some();
    let filter = Filter {
        prefix,
        metric,
        tags,
    };
    let (summaries, truncated) = ctx
        .db
        .run(move |conn| {
            let wanted = limit.as_i64() + 1;
            // `cut`: a selector's catalog read stopped short, so more match.
            let (mut names, cut) = if let Some(s) = &selector {
                let (entries, cut) = selection::all(conn, s)?;
                let names = entries
                    .into_iter()
                    .filter(|e| e.series_name.starts_with(&filter.prefix))
                    .filter_map(|e| Series::try_from(e.series_name).ok())
                    .collect();
                (names, cut)
            } else if filtered {
                (catalog::find(conn, &filter, wanted)?, false)
            } else {
                (series::names(conn, "", &filter.prefix, wanted)?, false)
            };
            let truncated = cut || names.len() > limit.as_usize();
            names.truncate(limit.as_usize());
            Ok((series::summaries(conn, &names)?, truncated))
        })
        .await?;
    let text = if summaries.is_empty() {
        if filtered {
            "No series match; list_series without metric and tags shows them all.".to_owned()
        } else {
            "No series stored yet; add points with ingest_timeseries.".to_owned()
        }
    } else {
        summaries
            .iter()
            .map(|s| match &s.tags {
                Some(t) if t.as_object().is_some_and(|m| !m.is_empty()) => {
                    format!("{}: {} points {t}", s.series, s.points)
                }
                _ => format!("{}: {} points", s.series, s.points),
            })
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
}
