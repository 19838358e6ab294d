//! Resources and completions as registries: the product's series
//! (`timeseries://<series>`, paged from the database) plus any fixed
//! sources registered beside them (the conformance fixtures).

use serde_json::{Value, json};

use super::jsonrpc::{self, RESOURCE_NOT_FOUND, RpcError};
use super::lists::list_result;
use crate::db::{Db, DbError};
use crate::domain::Series;
use crate::store::series;
use crate::tools::{ToolContext, ToolError, chart};

const SERIES_SCHEME: &str = "timeseries://";
pub const SERIES_TEMPLATE: &str = "timeseries://{series}";
/// A series' chart: `timeseries://<series>/chart.png`. (A series whose own
/// name ends in `/chart.png` is read through query_timeseries instead.)
const CHART_SUFFIX: &str = "/chart.png";
/// Points returned when a series is read as a resource.
const RESOURCE_POINTS: i64 = 1000;
/// Completion values returned at most (the spec's limit).
const COMPLETIONS: usize = 100;

/// Where an argument's completions come from.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Complete {
    #[default]
    Nothing,
    /// Series names, from the database.
    Series,
    /// A fixed list.
    Values(&'static [&'static str]),
}

/// A resource template and how its variables complete.
pub struct Template {
    pub listing: Value,
    pub arguments: Vec<(&'static str, Complete)>,
}

impl Template {
    fn uri(&self) -> &str {
        self.listing["uriTemplate"].as_str().unwrap_or_default()
    }
}

/// A fixed set of resources registered beside the series.
pub trait Source: Send + Sync {
    /// Listed on the first page.
    fn resources(&self) -> Vec<Value>;
    fn templates(&self) -> Vec<Template>;
    /// The `contents` of `uri`, when it is this source's.
    fn read(&self, uri: &str) -> Option<Value>;
}

pub struct ResourceRegistry {
    db: Db,
    sources: Vec<Box<dyn Source>>,
    templates: Vec<Template>,
}

/// A database failure behind a method, classified as for tools: a busy
/// pool or an unreachable database says to retry; anything else gives an
/// error id, and the cause goes to the log, never to the client.
pub fn db_failure(e: DbError) -> RpcError {
    tool_failure(ToolError::from(e))
}

fn tool_failure(e: ToolError) -> RpcError {
    match e {
        retry @ (ToolError::Busy(_) | ToolError::Unavailable) => {
            RpcError::new(jsonrpc::SERVER_ERROR, retry.to_string())
        }
        other => RpcError::internal(other),
    }
}

pub fn not_found(uri: &str) -> RpcError {
    RpcError::new(RESOURCE_NOT_FOUND, format!("Resource not found: {uri}"))
        .with_data(json!({ "uri": uri }))
}

fn series_of(uri: &str) -> Option<Series> {
    uri.strip_prefix(SERIES_SCHEME)
        .and_then(|s| Series::parse(s).ok())
}

fn chart_of(uri: &str) -> Option<Series> {
    uri.strip_suffix(CHART_SUFFIX).and_then(series_of)
}

impl ResourceRegistry {
    pub fn new(db: Db) -> ResourceRegistry {
        let series = Template {
            listing: json!({
                "uriTemplate": SERIES_TEMPLATE,
                "name": "timeseries",
                "title": "Time series",
                "description": "A series: point count, first and last time, and its latest points",
                "mimeType": "application/json",
            }),
            arguments: vec![("series", Complete::Series)],
        };
        let chart = Template {
            listing: json!({
                "uriTemplate": format!("{SERIES_TEMPLATE}{CHART_SUFFIX}"),
                "name": "timeseries-chart",
                "title": "Time series chart",
                "description": "A PNG chart of the whole series (bucketed to the pixel columns, min–max shaded); \
                                plot_series draws ranges, anomalies and forecasts",
                "mimeType": "image/png",
            }),
            arguments: vec![("series", Complete::Series)],
        };
        ResourceRegistry {
            db,
            sources: Vec::new(),
            templates: vec![series, chart],
        }
    }

    pub fn add(&mut self, source: Box<dyn Source>) {
        self.templates.extend(source.templates());
        self.sources.push(source);
    }

    pub fn templates(&self) -> Vec<&Value> {
        self.templates.iter().map(|t| &t.listing).collect()
    }

    /// Whether `uri` names a resource that can exist (for subscriptions).
    pub fn knows(&self, uri: &str) -> bool {
        series_of(uri).is_some() || self.sources.iter().any(|s| s.read(uri).is_some())
    }

    /// Series by name, a page at a time (cursor: the last name, `s:<name>`);
    /// the fixed sources come on the first page.
    pub async fn list(&self, cursor: Option<&str>, page: usize) -> Result<Value, RpcError> {
        let after = match cursor {
            None => String::new(),
            Some(c) => c
                .strip_prefix("s:")
                .map(str::to_owned)
                .ok_or_else(|| RpcError::invalid_params(format!("invalid cursor {c:?}")))?,
        };
        let limit = page as i64;
        let names = self
            .db
            .run(move |conn| series::names(conn, &after, "", limit + 1))
            .await
            .map_err(db_failure)?;
        let more = names.len() as i64 > limit;
        let page: Vec<&Series> = names.iter().take(limit as usize).collect();
        let mut resources: Vec<Value> = page
            .iter()
            .map(|name| {
                json!({
                    "uri": format!("{SERIES_SCHEME}{name}"),
                    "name": name,
                    "title": format!("Time series {name}"),
                    "mimeType": "application/json",
                })
            })
            .collect();
        if cursor.is_none() {
            resources.extend(self.sources.iter().flat_map(|s| s.resources()));
        }
        let next = page.last().filter(|_| more).map(|last| format!("s:{last}"));
        Ok(list_result("resources", resources, next))
    }

    pub async fn read(&self, uri: &str, ctx: &ToolContext) -> Result<Value, RpcError> {
        if let Some(found) = self.sources.iter().find_map(|s| s.read(uri)) {
            return Ok(found);
        }
        if let Some(name) = chart_of(uri) {
            let plot = match chart::plot(ctx, chart::PlotArgs::of(name)).await {
                Ok(plot) => plot,
                // With default arguments only an empty series is refused.
                Err(ToolError::Invalid(_)) => return Err(not_found(uri)),
                Err(other) => return Err(tool_failure(other)),
            };
            return Ok(json!({
                "contents": [{ "uri": uri, "mimeType": "image/png", "blob": plot.base64() }]
            }));
        }
        let name = series_of(uri).ok_or_else(|| not_found(uri))?;
        let found = self
            .db
            .run(move |conn| {
                let Some(summary) = series::summary(conn, &name)? else {
                    return Ok(None);
                };
                let points = series::latest(conn, &name, RESOURCE_POINTS)?;
                Ok(Some((summary, points)))
            })
            .await
            .map_err(db_failure)?;
        let (summary, points) = found.ok_or_else(|| not_found(uri))?;
        let body = json!({
            "series": summary.series,
            "points": summary.points,
            "first_time": summary.first_time,
            "last_time": summary.last_time,
            "latest": points.iter().map(|p| json!({ "time": p.time, "value": p.value })).collect::<Vec<_>>(),
            "latest_truncated": summary.points > RESOURCE_POINTS,
        });
        Ok(
            json!({ "contents": [{ "uri": uri, "mimeType": "application/json", "text": body.to_string() }] }),
        )
    }

    /// How `argument` of the template `uri` completes.
    pub fn completion(&self, uri: &str, argument: &str) -> Result<Complete, RpcError> {
        let template = self
            .templates
            .iter()
            .find(|t| t.uri() == uri)
            .ok_or_else(|| {
                RpcError::invalid_params(format!("unknown resource template {uri:?}"))
            })?;
        Ok(template
            .arguments
            .iter()
            .find(|(name, _)| *name == argument)
            .map(|(_, c)| *c)
            .unwrap_or_default())
    }

    /// The `completion/complete` result for `prefix`.
    pub async fn complete(&self, how: Complete, prefix: String) -> Result<Value, RpcError> {
        let values: Vec<String> = match how {
            Complete::Nothing => Vec::new(),
            Complete::Values(values) => values
                .iter()
                .filter(|v| v.starts_with(prefix.as_str()))
                .map(|v| v.to_string())
                .collect(),
            Complete::Series => self
                .db
                .run(move |conn| series::names(conn, "", &prefix, COMPLETIONS as i64 + 1))
                .await
                .map_err(db_failure)?
                .into_iter()
                .map(String::from)
                .collect(),
        };
        let has_more = values.len() > COMPLETIONS;
        let values: Vec<String> = values.into_iter().take(COMPLETIONS).collect();
        Ok(
            json!({ "completion": { "values": values, "total": values.len(), "hasMore": has_more } }),
        )
    }
}
