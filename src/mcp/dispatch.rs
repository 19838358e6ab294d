//! One JSON-RPC request → its result or error, for either lane: the methods
//! both revisions share run here over one set of tools, prompts and
//! resources; the few that belong to one lane say so.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::jsonrpc::RpcError;
use super::lists::paged;
use super::outcome::{Stop, pending};
use super::protocol::{self, log_rank};
use super::server::Mcp;
use super::session::Session;
use crate::auth::Scopes;
use crate::tools::{CallError, ToolContext, ToolError};

/// The revision a request came under, with what only that lane has.
pub enum Lane<'a> {
    /// 2025-11-25 and earlier: a session (mutable for `logging/setLevel`).
    Legacy(&'a mut Arc<Session>),
    /// 2026-07-28: stateless.
    Modern,
}

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

/// The methods of each lane, for telling "unknown here" from the rest
/// before any params are read.
pub const SHARED: [&str; 8] = [
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "completion/complete",
];
pub const LEGACY_ONLY: [&str; 4] = [
    "ping",
    "logging/setLevel",
    "resources/subscribe",
    "resources/unsubscribe",
];
/// `subscriptions/listen` is answered by the lane itself (a stream).
pub const MODERN_ONLY: [&str; 5] = [
    "server/discover",
    "subscriptions/listen",
    "tasks/get",
    "tasks/update",
    "tasks/cancel",
];

/// The scope a request needs before any lane runs it: a tool's own, and
/// reading for what shows stored data. Listing, the handshake and tasks
/// (whose ids only their creator holds) need none; `tools/list` shows only
/// what the caller's scopes allow.
pub fn needs(mcp: &Mcp, method: &str, tool: Option<&str>) -> Option<Scopes> {
    match method {
        "tools/call" => tool.and_then(|t| mcp.tools.scope(t)),
        "resources/list"
        | "resources/read"
        | "resources/subscribe"
        | "prompts/get"
        | "completion/complete" => Some(Scopes::READ),
        _ => None,
    }
}

pub async fn dispatch(
    mcp: &Mcp,
    lane: Lane<'_>,
    method: &str,
    params: Option<&RawValue>,
    ctx: ToolContext,
    granted: Scopes,
) -> Result<Value, Stop> {
    if method == "tools/call" {
        let call: CallParams = serde_json::from_str(params.map_or("{}", RawValue::get))
            .map_err(|e| RpcError::invalid_params(format!("tools/call: {e}")))?;
        let name = call
            .name
            .ok_or_else(|| RpcError::invalid_params("missing string parameter \"name\""))?;
        return mcp
            .tools
            .call(&name, call.arguments, ctx)
            .await
            .map_err(|e| match e {
                CallError::Internal(cause) => RpcError::internal(ToolError::internal(cause)).into(),
                CallError::Pending(p) => pending(p),
                invalid => RpcError::invalid_params(invalid).into(),
            });
    }
    // Tools check their arguments alike (ToolRegistry::call).
    if let Some(at) = params.and_then(|p| crate::domain::nul_in_json(p.get())) {
        return Err(RpcError::invalid_params(format!(
            "{method}: params.{at} must not contain the NUL character (\\u0000)"
        ))
        .into());
    }
    let p = params_obj(params)?;
    let result = match (method, lane) {
        ("tools/list", lane) => {
            let with_tasks = matches!(lane, Lane::Modern);
            paged(
                "tools",
                &mcp.tools.listings(with_tasks, granted),
                cursor(&p)?,
                mcp.page_size,
            )?
        }
        ("tasks/get", Lane::Modern) => mcp.tasks.get(str_param(&p, "taskId")?).await?,
        ("tasks/update", Lane::Modern) => {
            let responses = p
                .get("inputResponses")
                .cloned()
                .unwrap_or_else(|| json!({}));
            mcp.tasks
                .update(str_param(&p, "taskId")?, responses)
                .await?
        }
        ("tasks/cancel", Lane::Modern) => mcp.tasks.cancel(str_param(&p, "taskId")?).await?,
        ("prompts/list", _) => mcp.prompts.list(cursor(&p)?, mcp.page_size)?,
        ("prompts/get", _) => {
            let prompt = mcp.prompts.known(str_param(&p, "name")?)?;
            let args = match p.get("arguments") {
                None | Some(Value::Null) => None,
                Some(Value::Object(a)) => Some(a),
                Some(_) => {
                    return Err(RpcError::invalid_params("arguments must be an object").into());
                }
            };
            let answers = if prompt.asks.is_empty() {
                Vec::new()
            } else {
                ctx.client
                    .ask(prompt.asks.clone())
                    .await
                    .map_err(|e| match e {
                        ToolError::Pending(p) => pending(p),
                        other => RpcError::invalid_params(other).into(),
                    })?
            };
            let mut got = prompt.get(args, &answers)?;
            if let Some(figure) = prompt.figure {
                let shown = super::prompts::figure(&ctx, figure, args).await?;
                if let Some(messages) = got["messages"].as_array_mut() {
                    messages.splice(0..0, shown);
                }
            }
            got
        }
        ("resources/list", _) => mcp.resources.list(cursor(&p)?, mcp.page_size).await?,
        ("resources/templates/list", _) => paged(
            "resourceTemplates",
            &mcp.resources.templates(),
            cursor(&p)?,
            mcp.page_size,
        )?,
        ("resources/read", _) => mcp.resources.read(str_param(&p, "uri")?, &ctx).await?,
        ("completion/complete", _) => complete(mcp, &p).await?,
        ("server/discover", Lane::Modern) => protocol::discover_result(),
        ("ping", Lane::Legacy(_)) => json!({}),
        ("resources/subscribe", Lane::Legacy(session)) => {
            let uri = str_param(&p, "uri")?;
            if !mcp.resources.knows(uri) {
                return Err(RpcError::invalid_params(format!(
                    "unsupported resource URI {uri:?}; expected timeseries://<series>"
                ))
                .into());
            }
            mcp.live.subscribe(&session.id, uri);
            json!({})
        }
        ("resources/unsubscribe", Lane::Legacy(session)) => {
            mcp.live.unsubscribe(&session.id, str_param(&p, "uri")?);
            json!({})
        }
        ("logging/setLevel", Lane::Legacy(session)) => {
            let level = str_param(&p, "level")?;
            if log_rank(level).is_none() {
                return Err(RpcError::invalid_params(format!(
                    "unknown log level {level:?}; use one of debug, info, notice, warning, error, critical, alert, emergency"
                )).into());
            }
            Arc::make_mut(session).log_level = Some(level.to_owned());
            mcp.sessions.put(Arc::clone(session)).await;
            json!({})
        }
        _ => return Err(RpcError::method_not_found(method).into()),
    };
    Ok(result)
}

/// `completion/complete` for a prompt argument or a template variable.
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
    let how = match reference.get("type").and_then(Value::as_str) {
        Some("ref/prompt") => {
            let name = str_param(reference, "name")?;
            let prompt = mcp.prompts.known(name)?;
            prompt
                .arguments
                .iter()
                .find(|a| a.name == arg_name)
                .ok_or_else(|| {
                    RpcError::invalid_params(format!("prompt {name} has no argument {arg_name:?}"))
                })?
                .complete
        }
        Some("ref/resource") => mcp
            .resources
            .completion(str_param(reference, "uri")?, arg_name)?,
        _ => {
            return Err(RpcError::invalid_params(
                "ref.type must be ref/prompt or ref/resource",
            ));
        }
    };
    mcp.resources.complete(how, prefix).await
}
