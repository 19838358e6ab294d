//! Finding what is stored: `list_metrics`, `list_labels` and `label_values`,
//! served from the series catalog (never by reading points), bounded and
//! truncated like `list_series`.

use std::collections::{BTreeMap, HashMap};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::selection;
use super::{Annotations, Output, Scopes, Spec, ToolContext, ToolError};
use crate::domain::{Bounded, MetricKind, Selector, cut};
use crate::ingest::identity::MAX_NAME;
use crate::store::catalog::{self, Count};

pub const LIST_METRICS: Spec = Spec {
    name: "list_metrics",
    title: "List metrics",
    description: "The metrics stored, each with its kind (counter, gauge, histogram, summary or \
                  unknown: from Prometheus' metadata, else naming conventions; a line-protocol \
                  field is a gauge), help, unit and number of series. Start here to find what \
                  to select; read a counter through rate or increase, not its raw values",
    annotations: Annotations::READ_ONLY,
    scope: Scopes::READ,
};

pub const LIST_LABELS: Spec = Spec {
    name: "list_labels",
    title: "List labels",
    description: "Label names (Prometheus labels, InfluxDB tags with _measurement and _field) with \
                  the number of series that carry each, over every series or those a selector \
                  matches. Use it to learn how series can be grouped and narrowed",
    annotations: Annotations::READ_ONLY,
    scope: Scopes::READ,
};

pub const LABEL_VALUES: Spec = Spec {
    name: "label_values",
    title: "Label values",
    description: "One label's values with the number of series of each, the most frequent first, \
                  over every series or those a selector matches (label __name__ gives the \
                  metrics). Use it to find the values to match or group by",
    annotations: Annotations::READ_ONLY,
    scope: Scopes::READ,
};

type Limit = Bounded<1, 1000, 100>;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListMetricsArgs {
    /// Only metrics whose name starts with this.
    #[serde(default)]
    pub prefix: String,
    /// At most this many metrics.
    #[serde(default)]
    pub limit: Limit,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct MetricInfo {
    pub name: String,
    pub kind: MetricKind,
    pub help: String,
    pub unit: String,
    /// Series of this metric.
    pub series: i64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ListMetricsResult {
    pub metrics: Vec<MetricInfo>,
    /// True when more metrics match than were returned.
    pub truncated: bool,
}

pub async fn list_metrics(
    ctx: ToolContext,
    args: ListMetricsArgs,
) -> Result<Output<ListMetricsResult>, ToolError> {
    let ListMetricsArgs { prefix, limit } = args;
    let (metrics, truncated) = ctx
        .db
        .run(move |conn| {
            let (rows, more) = catalog::metrics(conn, &prefix, limit.as_usize())?;
            let names: Vec<(&str, bool)> =
                rows.iter().map(|r| (r.metric.as_str(), r.influx)).collect();
            let metrics = rows
                .iter()
                .zip(selection::describe(conn, &names)?)
                .map(|(r, (kind, meta))| {
                    let (help, unit) = meta.map(|m| (m.help, m.unit)).unwrap_or_default();
                    MetricInfo {
                        name: r.metric.clone(),
                        kind,
                        help,
                        unit,
                        series: r.series,
                    }
                })
                .collect::<Vec<_>>();
            Ok((metrics, more))
        })
        .await?;
    let text = if metrics.is_empty() {
        "No metrics stored yet (or none with that prefix).".to_owned()
    } else {
        metrics
            .iter()
            .map(|m| {
                let help = if m.help.is_empty() {
                    String::new()
                } else {
                    format!(": {}", m.help)
                };
                format!("{} ({}, {} series){help}", m.name, m.kind, m.series)
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    Ok(Output {
        value: ListMetricsResult { metrics, truncated },
        text,
    })
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListLabelsArgs {
    /// Only the series this selects; every series when absent.
    pub selector: Option<Selector>,
    /// At most this many labels.
    #[serde(default)]
    pub limit: Limit,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct LabelCount {
    pub name: String,
    /// Series that carry the label.
    pub series: i64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ListLabelsResult {
    pub labels: Vec<LabelCount>,
    /// True when more labels exist than were returned, or the selector's
    /// series were more than could be read.
    pub truncated: bool,
}

pub async fn list_labels(
    ctx: ToolContext,
    args: ListLabelsArgs,
) -> Result<Output<ListLabelsResult>, ToolError> {
    let ListLabelsArgs { selector, limit } = args;
    let limit = limit.as_usize();
    let (counts, truncated) = ctx
        .db
        .run(move |conn| match &selector {
            None => catalog::label_names(conn, limit),
            Some(s) => {
                let (entries, cut) = selection::all(conn, s)?;
                let mut names: BTreeMap<&str, i64> = BTreeMap::new();
                for e in &entries {
                    for k in e.tags.as_object().into_iter().flatten().map(|(k, _)| k) {
                        if k != "__name__" {
                            *names.entry(k).or_default() += 1;
                        }
                    }
                }
                let more = names.len() > limit;
                let counts = names
                    .into_iter()
                    .take(limit)
                    .map(|(k, series)| Count {
                        key: k.to_owned(),
                        series,
                    })
                    .collect();
                Ok((counts, more || cut))
            }
        })
        .await?;
    let labels: Vec<LabelCount> = counts
        .into_iter()
        .map(|c| LabelCount {
            name: c.key,
            series: c.series,
        })
        .collect();
    let text = if labels.is_empty() {
        "No labels: no series match, or they carry none.".to_owned()
    } else {
        labels
            .iter()
            .map(|l| format!("{} ({} series)", l.name, l.series))
            .collect::<Vec<_>>()
            .join("\n")
    };
    Ok(Output {
        value: ListLabelsResult { labels, truncated },
        text,
    })
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LabelValuesArgs {
    /// The label, e.g. instance, code, _measurement; __name__ for the metrics.
    pub label: String,
    /// Only the series this selects; every series when absent.
    pub selector: Option<Selector>,
    /// At most this many values.
    #[serde(default)]
    pub limit: Limit,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ValueCount {
    pub value: String,
    /// Series with this value.
    pub series: i64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct LabelValuesResult {
    pub label: String,
    pub values: Vec<ValueCount>,
    /// True when more values exist than were returned, or the selector's
    /// series were more than could be read.
    pub truncated: bool,
}

pub async fn label_values(
    ctx: ToolContext,
    args: LabelValuesArgs,
) -> Result<Output<LabelValuesResult>, ToolError> {
    let LabelValuesArgs {
        label,
        selector,
        limit,
    } = args;
    if label.is_empty() || label.len() > MAX_NAME {
        return Err(ToolError::invalid(format!(
            "label is a label name of 1 to {MAX_NAME} bytes; list_labels shows them"
        )));
    }
    let limit = limit.as_usize();
    let name = label.clone();
    let (counts, truncated) = ctx
        .db
        .run(move |conn| match &selector {
            None => catalog::label_values(conn, &name, limit),
            Some(s) => {
                let (entries, cut) = selection::all(conn, s)?;
                let mut values: HashMap<&str, i64> = HashMap::new();
                for e in &entries {
                    let value = if name == "__name__" {
                        Some(e.metric.as_str())
                    } else {
                        e.tags.get(&name).and_then(|v| v.as_str())
                    };
                    if let Some(v) = value {
                        *values.entry(v).or_default() += 1;
                    }
                }
                let mut counts: Vec<Count> = values
                    .into_iter()
                    .map(|(k, series)| Count {
                        key: k.to_owned(),
                        series,
                    })
                    .collect();
                counts.sort_by(|a, b| b.series.cmp(&a.series).then_with(|| a.key.cmp(&b.key)));
                let more = counts.len() > limit;
                counts.truncate(limit);
                Ok((counts, more || cut))
            }
        })
        .await?;
    let values: Vec<ValueCount> = counts
        .into_iter()
        .map(|c| ValueCount {
            value: c.key,
            series: c.series,
        })
        .collect();
    let text = if values.is_empty() {
        format!(
            "No series carry {} (list_labels shows the labels).",
            cut(&label)
        )
    } else {
        values
            .iter()
            .map(|v| format!("{} ({} series)", v.value, v.series))
            .collect::<Vec<_>>()
            .join("\n")
    };
    Ok(Output {
        value: LabelValuesResult {
            label,
            values,
            truncated,
        },
        text,
    })
}
