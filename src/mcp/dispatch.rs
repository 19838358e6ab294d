//! One JSON-RPC request of an initialized session → its result or error.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::value::RawValue;

use serde_json::{Map, Value, json};

use super::jsonrpc::{self, Params, RESOURCE_NOT_FOUND, RpcError};
use super::protocol::log_rank;
use super::session::Session;
use super::{Mcp, fixtures, list_result, paged};
use crate::db::DbError;
use crate::domain::Series;
use crate::store::series;
use crate::tools::{CallError, ToolContext, ToolError};

const SERIES_SCHEME: &str = "timeseries://";
/// Points returned when a series is read as a resource.
const RESOURCE_POINTS: i64 = 1000;

/// The params object, taken rather than copied (an ingest's params are
/// the whole request body).
/// Params as an object (small: every method but `tools/call`, whose
/// arguments go to the tool unparsed).
fn params_obj(params: Option<&RawValue>) -> Result<Map<String, Value>, RpcError> {
    match params {
        None => Ok(Map::new()),
        Some(p) => serde_json::from_str(p.get()).map_err(RpcError::invalid_params),
    }
}

/// `tools/call` params, the arguments left as text.
#[derive(serde::Deserialize)]
struct CallParams<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
}

fn str_param<'a>(p: &'a Map<String, Value>, key: &str) -> Result<&'a str, RpcError> {
    p.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::invalid_params(format!("missing string parameter {key:?}")))
}

fn cursor(p: &Map<String, Value>) -> Result<Option<&str>, RpcError> {
    match p.get("cursor") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(c)) => Ok(Some(c)),
        Some(_) => Err(RpcError::invalid_params("cursor must be a string")),
    }
}

/// Runs a method; `session` is mutable for `logging/setLevel`.
pub async fn dispatch(
    mcp: &Mcp,
    session: &mut Arc<Session>,
    method: &str,
    params: Option<Params>,
    ctx: ToolContext,
) -> Result<Value, RpcError> {
    if method == "tools/call" {
        let call: CallParams = serde_json::from_str(params.as_deref().map_or("{}", RawValue::get))
            .map_err(|e| RpcError::invalid_params(format!("tools/call: {e}")))?;
        let name = call
            .name
            .ok_or_else(|| RpcError::invalid_params("missing string parameter \"name\""))?;
        return mcp
            .tools
            .call(&name, call.arguments, ctx)
            .await
            .map_err(|e| match e {
                CallError::Internal(cause) => RpcError::internal(ToolError::internal(cause)),
                invalid => RpcError::invalid_params(invalid),
            });
    }
    let p = params_obj(params.as_deref())?;
    match method {
        "ping" => Ok(json!({})),
        "tools/list" => paged("tools", &mcp.tools.listings(), cursor(&p)?, mcp.page_size),
        "prompts/list" => mcp.prompts.list(cursor(&p)?, mcp.page_size),
        "prompts/get" => {
            let args = match p.get("arguments") {
                None | Some(Value::Null) => None,
                Some(Value::Object(a)) => Some(a),
                Some(_) => return Err(RpcError::invalid_params("arguments must be an object")),
            };
            mcp.prompts.get(str_param(&p, "name")?, args)
        }
        "resources/list" => list_resources(mcp, cursor(&p)?).await,
        "resources/templates/list" => {
            let mut templates = vec![json!({
                "uriTemplate": "timeseries://{series}",
                "name": "timeseries",
                "title": "Time series",
                "description": "A series: point count, first and last time, and its latest points",
                "mimeType": "application/json",
            })];
            if mcp.fixtures {
                templates.extend(fixtures::resource_templates());
            }
            let refs: Vec<&Value> = templates.iter().collect();
            paged("resourceTemplates", &refs, cursor(&p)?, mcp.page_size)
        }
        "resources/read" => read_resource(mcp, str_param(&p, "uri")?).await,
        "resources/subscribe" => {
            let uri = str_param(&p, "uri")?;
            check_uri(mcp, uri)?;
            mcp.live.subscribe(&session.id, uri);
            Ok(json!({}))
        }
        "resources/unsubscribe" => {
            mcp.live.unsubscribe(&session.id, str_param(&p, "uri")?);
            Ok(json!({}))
        }
        "completion/complete" => complete(mcp, &p).await,
        "logging/setLevel" => {
            let level = str_param(&p, "level")?;
            if log_rank(level).is_none() {
                return Err(RpcError::invalid_params(format!(
                    "unknown log level {level:?}; use one of debug, info, notice, warning, error, critical, alert, emergency"
                )));
            }
            Arc::make_mut(session).log_level = Some(level.to_owned());
            mcp.sessions.put(Arc::clone(session)).await;
            Ok(json!({}))
        }
        _ => Err(RpcError::method_not_found(method)),
    }
}

/// A database failure behind a method, classified as for tools: a busy
/// pool says to retry; anything else gives an error id, and the cause goes
/// to the log, never to the client.
fn db_failure(e: DbError) -> RpcError {
    match ToolError::from(e) {
        busy @ ToolError::Busy(_) => RpcError::new(jsonrpc::SERVER_ERROR, busy.to_string()),
        other => RpcError::internal(other),
    }
}

fn check_uri(mcp: &Mcp, uri: &str) -> Result<(), RpcError> {
    let ok = uri
        .strip_prefix(SERIES_SCHEME)
        .is_some_and(|s| Series::parse(s).is_ok())
        || (mcp.fixtures && uri.starts_with("test://"));
    if ok {
        Ok(())
    } else {
        Err(RpcError::invalid_params(format!(
            "unsupported resource URI {uri:?}; expected timeseries://<series>"
        )))
    }
}

async fn list_resources(mcp: &Mcp, cursor: Option<&str>) -> Result<Value, RpcError> {
    // Cursor: the last series name of the previous page ("s:<name>").
    let after = match cursor {
        None => String::new(),
        Some(c) => c
            .strip_prefix("s:")
            .map(str::to_owned)
            .ok_or_else(|| RpcError::invalid_params(format!("invalid cursor {c:?}")))?,
    };
    let limit = mcp.page_size as i64;
    let names = mcp
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
    if mcp.fixtures && cursor.is_none() {
        resources.extend(fixtures::resources());
    }
    let next = page.last().filter(|_| more).map(|last| format!("s:{last}"));
    Ok(list_result("resources", resources, next))
}

async fn read_resource(mcp: &Mcp, uri: &str) -> Result<Value, RpcError> {
    if mcp.fixtures && uri.starts_with("test://") {
        return fixtures::read(uri).ok_or_else(|| not_found(uri));
    }
    let name = uri
        .strip_prefix(SERIES_SCHEME)
        .and_then(|s| Series::parse(s).ok())
        .ok_or_else(|| not_found(uri))?;
    let found = mcp
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

fn not_found(uri: &str) -> RpcError {
    RpcError::new(RESOURCE_NOT_FOUND, format!("Resource not found: {uri}"))
        .with_data(json!({ "uri": uri }))
}

/// Completes series names for prompt arguments marked as series and for the
/// `timeseries://{series}` template; fixture prompts complete from a list.
async fn complete(mcp: &Mcp, p: &Map<String, Value>) -> Result<Value, RpcError> {
    let reference = p
        .get("ref")
        .and_then(Value::as_object)
        .ok_or_else(|| RpcError::invalid_params("missing ref"))?;
    let argument = p
        .get("argument")
        .and_then(Value::as_object)
        .ok_or_else(|| RpcError::invalid_params("missing argument"))?;
    let arg_name = str_param(argument, "name")?;
    let prefix = argument
        .get("value")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let series_arg = match reference.get("type").and_then(Value::as_str) {
        Some("ref/prompt") => {
            let name = str_param(reference, "name")?;
            let prompt = mcp
                .prompts
                .find(name)
                .ok_or_else(|| RpcError::invalid_params(format!("Unknown prompt: {name}")))?;
            let arg = prompt
                .arguments
                .iter()
                .find(|a| a.name == arg_name)
                .ok_or_else(|| {
                    RpcError::invalid_params(format!("prompt {name} has no argument {arg_name:?}"))
                })?;
            arg.series
        }
        Some("ref/resource") => {
            let uri = str_param(reference, "uri")?;
            if uri == "timeseries://{series}" {
                arg_name == "series"
            } else if mcp.fixtures && uri.starts_with("test://") {
                false
            } else {
                return Err(RpcError::invalid_params(format!(
                    "unknown resource template {uri:?}"
                )));
            }
        }
        _ => {
            return Err(RpcError::invalid_params(
                "ref.type must be ref/prompt or ref/resource",
            ));
        }
    };
    let values: Vec<String> = if series_arg {
        mcp.db
            .run(move |conn| series::names(conn, "", &prefix, 101))
            .await
            .map_err(db_failure)?
            .into_iter()
            .map(String::from)
            .collect()
    } else {
        ["testValue1", "testValue2", "test-value", "example"]
            .iter()
            .filter(|v| v.starts_with(prefix.as_str()))
            .map(|v| v.to_string())
            .collect()
    };
    let has_more = values.len() > 100;
    let values: Vec<String> = values.into_iter().take(100).collect();
    Ok(json!({ "completion": { "values": values, "total": values.len(), "hasMore": has_more } }))
}
