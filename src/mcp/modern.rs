//! The MCP 2026-07-28 lane: stateless. Every request carries its revision
//! and the client's capabilities in `_meta`; the checks run in the order
//! the specification gives (`shared/mcp/2026-07-28.md`), each error echoes
//! the request id, and a question for the client ends the call as
//! `input_required` with a sealed `requestState` rather than a request on
//! the stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rocket::futures::stream::{self, StreamExt};
use rocket::tokio::sync::broadcast::error::RecvError;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::call::{self, Caller, Incoming, Peek, Request};
use super::dispatch::{MODERN_ONLY, SHARED};
use super::events::Event;
use super::jsonrpc::{self, RequestId, RpcError};
use super::outcome::{MISSING_CAPABILITY, Round, arguments, response};
use super::protocol::{self, TASKS_EXTENSION, log_rank};
use super::server::{MAX_LISTENERS, Mcp};
use super::wire::{Answer, Era, Facts};
use crate::tools::TaskSupport;

pub const VERSION: &str = protocol::MODERN;
/// An HTTP header disagrees with the body, or is missing.
pub const HEADER_MISMATCH: i32 = -32020;
/// The revision asked for is not served.
pub const UNSUPPORTED_VERSION: i32 = -32022;

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
    facts: &Facts<'_>,
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
        let sent = facts.header(&header).map(header_value).transpose()?;
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

fn unsupported(version: &str, message: String) -> RpcError {
    RpcError::new(UNSUPPORTED_VERSION, message)
        .with_data(json!({ "supported": [VERSION], "requested": version }))
}

/// Steps 1–5 of the pipeline; what passes is dispatched. The steps that
/// compare HTTP headers with the body apply only where there are headers.
fn admit(
    mcp: &Mcp,
    facts: &Facts<'_>,
    method: &str,
    peek: &Peek,
    params: Option<&RawValue>,
) -> Result<Map<String, Value>, RpcError> {
    let meta = peek.meta();
    let Some(version) = meta.protocol_version.as_ref().and_then(Value::as_str) else {
        // Here by the header alone: one that names no revision we serve.
        if let Some(v) = facts.version().filter(|v| *v != VERSION) {
            return Err(unsupported(
                v,
                format!(
                    "unsupported MCP-Protocol-Version header {v:?}; this server supports {VERSION} \
                     (with _meta) and {} (after initialize)",
                    protocol::SUPPORTED.join(", ")
                ),
            ));
        }
        return Err(RpcError::invalid_params(
            "_meta[\"io.modelcontextprotocol/protocolVersion\"] is required",
        ));
    };
    let capabilities = meta
        .client_capabilities
        .as_ref()
        .and_then(Value::as_object)
        .ok_or_else(|| {
            RpcError::invalid_params(
                "_meta[\"io.modelcontextprotocol/clientCapabilities\"] is required (an object)",
            )
        })?;
    let http = facts.headers.is_some();
    if http {
        check_version_header(facts, version)?;
    }
    if version != VERSION {
        return Err(unsupported(
            version,
            format!("unsupported protocol version {version:?}; this server supports {VERSION}"),
        ));
    }
    if http {
        check_headers(mcp, facts, method, peek, params)?;
    }
    if !(SHARED.contains(&method) || MODERN_ONLY.contains(&method)) {
        return Err(RpcError::method_not_found(method));
    }
    Ok(capabilities.clone())
}

/// HTTP: the `MCP-Protocol-Version` header must repeat the body's revision.
fn check_version_header(facts: &Facts<'_>, version: &str) -> Result<(), RpcError> {
    match facts.version() {
        None => Err(mismatch(
            "the MCP-Protocol-Version header is required and must equal the _meta protocolVersion",
        )),
        Some(v) if v != version => Err(mismatch(format!(
            "MCP-Protocol-Version header {v:?} differs from _meta protocolVersion {version:?}"
        ))),
        Some(_) => Ok(()),
    }
}

/// HTTP: the method, target and declared arguments repeated in headers
/// must equal the body's.
fn check_headers(
    mcp: &Mcp,
    facts: &Facts<'_>,
    method: &str,
    peek: &Peek,
    params: Option<&RawValue>,
) -> Result<(), RpcError> {
    match facts.header("Mcp-Method").map(header_value).transpose()? {
        None => return Err(mismatch("the Mcp-Method header is required")),
        Some(m) if m != method => {
            return Err(mismatch(format!(
                "Mcp-Method header {m:?} differs from the body's method {method:?}"
            )));
        }
        Some(_) => {}
    }
    if let Some(expected) = named(method, peek) {
        match facts.header("Mcp-Name").map(header_value).transpose()? {
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
        check_param_headers(mcp, facts, tool, params)?;
    }
    Ok(())
}

/// A 2026 answer: the response alone.
fn answer(id: &RequestId, outcome: &Result<Value, RpcError>) -> Answer {
    Answer::One {
        body: response(id, outcome),
        era: Era::Modern,
        session: None,
    }
}

fn refuse(id: &RequestId, error: &RpcError) -> Answer {
    answer(id, &Err(error.clone()))
}

pub async fn serve(mcp: Arc<Mcp>, facts: &Facts<'_>, incoming: Incoming) -> Answer {
    let Incoming {
        id,
        method,
        params,
        mut peek,
        started,
        body,
        grant,
    } = incoming;
    let capabilities = match admit(&mcp, facts, &method, &peek, params.as_deref()) {
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
        .and_then(|e| e.get(TASKS_EXTENSION))
        .is_some();
    let task = match peek.name.as_deref().filter(|_| method == "tools/call") {
        Some(tool) => mcp.tools.task_support(tool),
        None => None,
    };
    if (task == Some(TaskSupport::Required) || method.starts_with("tasks/")) && !takes_tasks {
        return refuse(
            &id,
            &RpcError::new(
                MISSING_CAPABILITY,
                format!(
                    "{method} needs tasks: declare the {} extension in \
                     _meta[\"io.modelcontextprotocol/clientCapabilities\"].extensions",
                    TASKS_EXTENSION
                ),
            )
            .with_data(
                json!({ "requiredCapabilities": { "extensions": { TASKS_EXTENSION: {} } } }),
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
        cancelled: facts.cancel.clone().unwrap_or_default(),
    };
    let request = Request {
        id,
        method,
        params,
        progress_token: meta.progress_token,
        name: peek.name,
        started,
        body,
        grant,
    };
    call::run(mcp, caller, request).await
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
    /// The notifications an event makes on this stream (a write of many
    /// series may touch several subscribed resources).
    fn notes(&self, event: &Event) -> Vec<Value> {
        let tagged = |method: &str, mut params: Value| {
            params["_meta"] = self.tag.clone();
            jsonrpc::notification(method, params)
        };
        match event {
            Event::ListChanged { list } if list == "tools" && self.tools => {
                vec![tagged("notifications/tools/list_changed", json!({}))]
            }
            Event::ListChanged { list } if list == "prompts" && self.prompts => {
                vec![tagged("notifications/prompts/list_changed", json!({}))]
            }
            _ => event
                .updated()
                .iter()
                .filter(|uri| self.uris.contains(*uri))
                .map(|uri| tagged("notifications/resources/updated", json!({ "uri": uri })))
                .collect(),
        }
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
fn listen(mcp: &Arc<Mcp>, id: RequestId, params: Option<&RawValue>) -> Answer {
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
                        let notes = listening.notes(&event);
                        if !notes.is_empty() {
                            return Some((stream::iter(notes), (rx, listening, guard)));
                        }
                    }
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return None,
                }
            }
        },
    );
    Answer::Stream(Box::pin(
        stream::once(async move { ack }).chain(changes.flatten()),
    ))
}
