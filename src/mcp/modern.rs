//! The MCP 2026-07-28 lane: stateless. Every request carries its revision
//! and the client's capabilities in `_meta`; the checks run in the order
//! the specification gives (`shared/mcp/2026-07-28.md`), each error echoes
//! the request id, and a question for the client ends the call as
//! `input_required` with a sealed `requestState` rather than a request on
//! the stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rocket::futures::stream::{self, StreamExt};
use rocket::response::stream::EventStream;
use rocket::tokio::sync::broadcast::error::RecvError;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rocket::http::Status;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::call::{self, Caller, Incoming, Peek, Request};
use super::dispatch::{MODERN_ONLY, SHARED, Stop};
use super::events::Event;
use super::jsonrpc::{
    self, INVALID_PARAMS, METHOD_NOT_FOUND, RESOURCE_NOT_FOUND, RequestId, RpcError,
};
use super::protocol::{self, log_rank};
use super::transport::{McpHeaders, Reply, SseStream};
use super::{MAX_LISTENERS, Mcp, dispatch, tasks};
use crate::tools::TaskSupport;

pub const VERSION: &str = "2026-07-28";
/// An HTTP header disagrees with the body, or is missing.
pub const HEADER_MISMATCH: i32 = -32020;
/// The revision asked for is not served.
pub const UNSUPPORTED_VERSION: i32 = -32022;

/// How long clients may reuse a listing that only changes with a release.
const STATIC_TTL_MS: u64 = 5 * 60 * 1000;

/// The era rule: a request is modern when its `_meta` names a revision, when
/// its header names one that is not a 2025-or-earlier revision, or when it
/// is `server/discover` with no header at all. Everything else keeps
/// today's sessions.
pub fn is_modern(header: Option<&str>, meta_version: bool, method: &str) -> bool {
    meta_version
        || header.is_some_and(|v| !protocol::is_legacy(v.trim()))
        || (header.is_none() && method == "server/discover")
}

/// Whether a header alone (GET, DELETE) names a modern revision.
pub fn header_is_modern(header: Option<&str>) -> bool {
    header.is_some_and(|v| !protocol::is_legacy(v.trim()))
}

fn mismatch(message: impl Into<String>) -> RpcError {
    RpcError::new(HEADER_MISMATCH, message)
}

/// A header value: optional whitespace trimmed, and the `=?base64?…?=` form
/// decoded. Bad base64 is an error; a value missing either end of the
/// sentinel is taken literally.
pub fn header_value(raw: &str) -> Result<String, RpcError> {
    let value = raw.trim_matches([' ', '\t']);
    match value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    {
        None => Ok(value.to_owned()),
        Some(encoded) => STANDARD
            .decode(encoded)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| mismatch(format!("header value {value:?} is not valid base64"))),
    }
}

/// The body's value that `Mcp-Name` must repeat, for the methods that have one.
fn named<'p>(method: &str, peek: &'p Peek) -> Option<&'p str> {
    match method {
        "tools/call" | "prompts/get" => peek.name.as_deref(),
        "resources/read" => peek.uri.as_deref(),
        "tasks/get" | "tasks/update" | "tasks/cancel" => {
            peek.task_id.as_ref().and_then(Value::as_str)
        }
        _ => None,
    }
}

/// Arguments a tool declares with `x-mcp-header` must be repeated, equal,
/// in `Mcp-Param-<name>` headers.
fn check_param_headers(
    mcp: &Mcp,
    h: &McpHeaders<'_>,
    tool: &str,
    params: Option<&RawValue>,
) -> Result<(), RpcError> {
    let declared = mcp.tools.header_params(tool);
    if declared.is_empty() {
        return Ok(());
    }
    #[derive(serde::Deserialize)]
    struct Args {
        arguments: Option<Map<String, Value>>,
    }
    let args = params
        .and_then(|p| serde_json::from_str::<Args>(p.get()).ok())
        .and_then(|a| a.arguments)
        .unwrap_or_default();
    for (prop, suffix) in declared {
        let header = format!("Mcp-Param-{suffix}");
        let body = match args.get(prop) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        };
        let sent = h.all.get_one(&header).map(header_value).transpose()?;
        if sent != body {
            return Err(mismatch(match (sent, body) {
                (None, _) => format!("the {header} header is required: the body sets {prop:?}"),
                (Some(v), None) => format!("{header} is {v:?} but the body has no {prop:?}"),
                (Some(v), Some(b)) => format!("{header} {v:?} differs from {prop:?} {b:?}"),
            }));
        }
    }
    Ok(())
}

/// Steps 1–5 of the pipeline; what passes is dispatched.
fn admit(
    mcp: &Mcp,
    h: &McpHeaders<'_>,
    method: &str,
    peek: &Peek,
    params: Option<&RawValue>,
) -> Result<Map<String, Value>, RpcError> {
    let meta = peek.meta();
    let version = meta
        .protocol_version
        .as_ref()
        .and_then(Value::as_str)
        .ok_or_else(|| {
            RpcError::invalid_params(
                "_meta[\"io.modelcontextprotocol/protocolVersion\"] is required",
            )
        })?;
    let capabilities = meta
        .client_capabilities
        .as_ref()
        .and_then(Value::as_object)
        .ok_or_else(|| {
            RpcError::invalid_params(
                "_meta[\"io.modelcontextprotocol/clientCapabilities\"] is required (an object)",
            )
        })?;
    match h.version.map(str::trim) {
        None => {
            return Err(mismatch(
                "the MCP-Protocol-Version header is required and must equal the _meta protocolVersion",
            ));
        }
        Some(v) if v != version => {
            return Err(mismatch(format!(
                "MCP-Protocol-Version header {v:?} differs from _meta protocolVersion {version:?}"
            )));
        }
        Some(_) => {}
    }
    if version != VERSION {
        return Err(RpcError::new(
            UNSUPPORTED_VERSION,
            format!("unsupported protocol version {version:?}; this server supports {VERSION}"),
        )
        .with_data(json!({ "supported": [VERSION], "requested": version })));
    }
    match h.mcp_method.map(header_value).transpose()? {
        None => return Err(mismatch("the Mcp-Method header is required")),
        Some(m) if m != method => {
            return Err(mismatch(format!(
                "Mcp-Method header {m:?} differs from the body's method {method:?}"
            )));
        }
        Some(_) => {}
    }
    if let Some(expected) = named(method, peek) {
        match h.mcp_name.map(header_value).transpose()? {
            None => {
                return Err(mismatch(format!(
                    "the Mcp-Name header is required for {method}"
                )));
            }
            Some(n) if n != expected => {
                return Err(mismatch(format!(
                    "Mcp-Name header {n:?} differs from the body's {expected:?}"
                )));
            }
            Some(_) => {}
        }
    }
    if method == "tools/call"
        && let Some(tool) = &peek.name
    {
        check_param_headers(mcp, h, tool, params)?;
    }
    if !(SHARED.contains(&method) || MODERN_ONLY.contains(&method)) {
        return Err(RpcError::method_not_found(method));
    }
    Ok(capabilities.clone())
}

/// HTTP status of a 2026 error, as the transport specification maps them.
pub fn status_of(body: &Value) -> Status {
    match body["error"]["code"].as_i64().map(|c| c as i32) {
        Some(METHOD_NOT_FOUND) => Status::NotFound,
        Some(
            INVALID_PARAMS | HEADER_MISMATCH | UNSUPPORTED_VERSION | dispatch::MISSING_CAPABILITY,
        ) => Status::BadRequest,
        _ => Status::Ok,
    }
}

/// A 2026 answer as JSON, with the HTTP status its error maps to.
pub fn answer(id: &RequestId, outcome: &Result<Value, RpcError>) -> Reply {
    let body = match outcome {
        Ok(result) => jsonrpc::success(id, result.clone()),
        Err(e) => jsonrpc::failure(Some(id), e),
    };
    Reply::Json {
        status: status_of(&body),
        body,
        session: None,
    }
}

fn refuse(id: &RequestId, error: &RpcError) -> Reply {
    answer(id, &Err(error.clone()))
}

/// What a round of a multi-round request resumes from.
pub struct Round {
    /// `tools/call <name>`, `prompts/get <name>` or `resources/read <uri>`.
    pub target: String,
    pub answers: Map<String, Value>,
}

/// The `arguments` member of the params (null when absent), which a
/// sealed state is bound to.
fn arguments(params: Option<&RawValue>) -> Value {
    #[derive(serde::Deserialize)]
    struct Args {
        arguments: Option<Value>,
    }
    params
        .and_then(|p| serde_json::from_str::<Args>(p.get()).ok())
        .and_then(|a| a.arguments)
        .unwrap_or(Value::Null)
}

pub async fn serve(mcp: Arc<Mcp>, h: &McpHeaders<'_>, incoming: Incoming) -> Reply {
    let Incoming {
        id,
        method,
        params,
        mut peek,
        started,
        body,
    } = incoming;
    let capabilities = match admit(&mcp, h, &method, &peek, params.as_deref()) {
        Ok(c) => c,
        Err(e) => return refuse(&id, &e),
    };
    if method == "subscriptions/listen" {
        return listen(&mcp, id, params.as_deref());
    }
    let target = format!(
        "{method} {}",
        peek.name.as_deref().or(peek.uri.as_deref()).unwrap_or("")
    );
    let mut answers = match peek.request_state.take() {
        None | Some(Value::Null) => Map::new(),
        Some(Value::String(sealed)) => {
            match mcp
                .sealer
                .open(&sealed, &target, &arguments(params.as_deref()))
            {
                Ok(answers) => answers,
                Err(e) => {
                    return refuse(
                        &id,
                        &RpcError::invalid_params(format!(
                            "requestState refused ({e}); it must come unaltered from this \
                             server's answer to this same request within 15 minutes: \
                             start the request again without it"
                        )),
                    );
                }
            }
        }
        Some(_) => {
            return refuse(
                &id,
                &RpcError::invalid_params(
                    "requestState must be the string this server returned; send it back unchanged, or leave it out to start again",
                ),
            );
        }
    };
    // Answers that are not an object are ignored: the questions are asked again.
    if let Some(Value::Object(new)) = peek.input_responses.take() {
        answers.extend(new);
    }
    let meta = peek.meta.take().unwrap_or_default();
    let takes_tasks = capabilities
        .get("extensions")
        .and_then(|e| e.get(tasks::EXTENSION))
        .is_some();
    let task = match peek.name.as_deref().filter(|_| method == "tools/call") {
        Some(tool) => mcp.tools.task_support(tool),
        None => None,
    };
    if (task == Some(TaskSupport::Required) || method.starts_with("tasks/")) && !takes_tasks {
        return refuse(
            &id,
            &RpcError::new(
                dispatch::MISSING_CAPABILITY,
                format!(
                    "{method} needs tasks: declare the {} extension in \
                     _meta[\"io.modelcontextprotocol/clientCapabilities\"].extensions",
                    tasks::EXTENSION
                ),
            )
            .with_data(
                json!({ "requiredCapabilities": { "extensions": { tasks::EXTENSION: {} } } }),
            ),
        );
    }
    let caller = Caller::Stateless {
        task: task.filter(|_| takes_tasks),
        client_name: meta
            .client_info
            .as_ref()
            .and_then(|c| c["name"].as_str())
            .map(str::to_owned),
        capabilities,
        log_level: meta
            .log_level
            .as_ref()
            .and_then(Value::as_str)
            .and_then(log_rank),
        round: Round { target, answers },
    };
    let request = Request {
        id,
        method,
        params,
        progress_token: meta.progress_token,
        name: peek.name,
        started,
        body,
    };
    call::run(mcp, caller, request).await
}

/// The `server/discover` result (rmcp's model of it). Its caching hints
/// and server identity are set by [`conclude`], as for the lists.
pub fn discover(_mcp: &Mcp) -> Value {
    use rmcp::model::{
        DiscoverResult, JsonObject, PromptsCapability, ProtocolVersion, ResourcesCapability,
        ServerCapabilities, ToolsCapability,
    };
    let mut tools = ToolsCapability::default();
    let mut prompts = PromptsCapability::default();
    let mut resources = ResourcesCapability::default();
    // Changes reach `subscriptions/listen` streams on every replica.
    tools.list_changed = Some(true);
    prompts.list_changed = Some(true);
    resources.subscribe = Some(true);
    let mut capabilities = ServerCapabilities::default();
    capabilities.tools = Some(tools);
    capabilities.prompts = Some(prompts);
    capabilities.resources = Some(resources);
    capabilities.logging = Some(JsonObject::new());
    capabilities.completions = Some(JsonObject::new());
    capabilities.extensions = Some([(tasks::EXTENSION.to_owned(), JsonObject::new())].into());
    let mut result = DiscoverResult::new(vec![ProtocolVersion::V_2026_07_28], capabilities);
    result.instructions = Some(protocol::INSTRUCTIONS.to_owned());
    serde_json::to_value(result).unwrap_or_else(|_| json!({}))
}

/// A dispatched request's outcome in 2026 terms: `resultType` on every
/// result, caching hints where the specification asks for them, questions
/// as `input_required` with sealed state, and `-32602` for a missing
/// resource.
pub fn conclude(
    mcp: &Mcp,
    method: &str,
    params: Option<&RawValue>,
    outcome: Result<Value, Stop>,
    round: Round,
) -> Result<Value, RpcError> {
    match outcome {
        Ok(mut result) => {
            if let Some(obj) = result.as_object_mut() {
                obj.entry("resultType").or_insert(json!("complete"));
                let cache = match method {
                    "server/discover"
                    | "tools/list"
                    | "prompts/list"
                    | "resources/templates/list" => Some((STATIC_TTL_MS, "public")),
                    // Series change with every ingest.
                    "resources/list" | "resources/read" => Some((0, "private")),
                    _ => None,
                };
                // Ours, over any a model type defaulted to.
                if let Some((ttl, scope)) = cache {
                    obj.insert("ttlMs".into(), json!(ttl));
                    obj.insert("cacheScope".into(), json!(scope));
                }
                if method == "server/discover" {
                    obj.insert(
                        "_meta".into(),
                        json!({ "io.modelcontextprotocol/serverInfo": protocol::server_info() }),
                    );
                }
            }
            Ok(result)
        }
        Err(Stop::Input(asks)) => {
            if !matches!(method, "tools/call" | "prompts/get" | "resources/read") {
                return Err(RpcError::internal(format!(
                    "{method} cannot ask the client"
                )));
            }
            let Round {
                target,
                mut answers,
            } = round;
            let mut requests = Map::new();
            for ask in asks {
                answers.remove(&ask.key);
                requests.insert(
                    ask.key,
                    json!({ "method": ask.method, "params": ask.params }),
                );
            }
            let state = mcp.sealer.seal(&target, &arguments(params), answers);
            Ok(json!({
                "resultType": "input_required",
                "inputRequests": requests,
                "requestState": state,
            }))
        }
        Err(Stop::Error(e)) if e.code == RESOURCE_NOT_FOUND => Err(RpcError {
            code: INVALID_PARAMS,
            ..e
        }),
        Err(Stop::Error(e)) => Err(e),
    }
}

/// What a `subscriptions/listen` stream asked for and was granted.
struct Listening {
    tools: bool,
    prompts: bool,
    uris: std::collections::HashSet<String>,
    /// `_meta` naming the subscription: the listen request's id.
    tag: Value,
}

/// Resource subscriptions one listen request may hold.
const MAX_URIS: usize = 100;

impl Listening {
    fn note(&self, event: &Event) -> Option<Value> {
        let (method, mut params) = match event {
            Event::ListChanged { list } if list == "tools" && self.tools => {
                ("notifications/tools/list_changed", json!({}))
            }
            Event::ListChanged { list } if list == "prompts" && self.prompts => {
                ("notifications/prompts/list_changed", json!({}))
            }
            Event::ResourceUpdated { uri } if self.uris.contains(uri) => {
                ("notifications/resources/updated", json!({ "uri": uri }))
            }
            _ => return None,
        };
        params["_meta"] = self.tag.clone();
        Some(jsonrpc::notification(method, params))
    }
}

/// Counts an open listen stream until it is dropped.
struct Listener(Arc<AtomicUsize>);

impl Drop for Listener {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `subscriptions/listen`: acknowledges what it will deliver, then streams
/// matching changes from every replica until the client goes away.
fn listen(mcp: &Arc<Mcp>, id: RequestId, params: Option<&RawValue>) -> Reply {
    #[derive(serde::Deserialize, Default)]
    #[serde(rename_all = "camelCase", default)]
    struct Filter {
        tools_list_changed: bool,
        prompts_list_changed: bool,
        resource_subscriptions: Vec<String>,
    }
    #[derive(serde::Deserialize)]
    struct Params {
        notifications: Filter,
    }
    let filter = match params.map(|p| serde_json::from_str::<Params>(p.get())) {
        Some(Ok(p)) => p.notifications,
        _ => {
            return refuse(
                &id,
                &RpcError::invalid_params(
                    "subscriptions/listen needs a notifications filter object",
                ),
            );
        }
    };
    if mcp.listeners.fetch_add(1, Ordering::AcqRel) >= MAX_LISTENERS {
        mcp.listeners.fetch_sub(1, Ordering::AcqRel);
        return refuse(
            &id,
            &RpcError::internal("too many open subscriptions on this server; retry later"),
        );
    }
    let guard = Listener(Arc::clone(&mcp.listeners));
    let listening = Listening {
        tools: filter.tools_list_changed,
        prompts: filter.prompts_list_changed,
        uris: filter
            .resource_subscriptions
            .into_iter()
            .filter(|u| mcp.resources.knows(u))
            .take(MAX_URIS)
            .collect(),
        tag: json!({ "io.modelcontextprotocol/subscriptionId": id }),
    };
    // Subscribed before the acknowledgement, so nothing after it is missed.
    let rx = mcp.events.subscribe();
    let mut granted = Map::new();
    if listening.tools {
        granted.insert("toolsListChanged".into(), json!(true));
    }
    if listening.prompts {
        granted.insert("promptsListChanged".into(), json!(true));
    }
    if !listening.uris.is_empty() {
        granted.insert("resourceSubscriptions".into(), json!(listening.uris));
    }
    let ack = jsonrpc::notification(
        "notifications/subscriptions/acknowledged",
        json!({ "notifications": granted, "_meta": listening.tag }),
    );
    let changes = stream::unfold(
        (rx, listening, guard),
        |(mut rx, listening, guard)| async move {
            loop {
                match rx.recv().await {
                    Ok(event) => {
                        if let Some(note) = listening.note(&event) {
                            return Some((note, (rx, listening, guard)));
                        }
                    }
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return None,
                }
            }
        },
    );
    let events: SseStream = Box::pin(
        stream::once(async move { ack })
            .chain(changes)
            .map(|m| rocket::response::stream::Event::json(&m)),
    );
    Reply::Sse(EventStream::from(events))
}
