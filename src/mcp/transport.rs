//! Streamable HTTP at `/mcp`: POST (one JSON-RPC message), GET (the
//! session's server-to-client SSE stream), DELETE (end the session).

use std::borrow::Cow;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use rocket::data::{Data, Limits, ToByteUnit};
use rocket::futures::stream::{self, Stream, StreamExt};
use rocket::http::{Header, Status};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::response::stream::{Event, EventStream};
use rocket::response::{self, Responder, Response};
use rocket::tokio::sync::mpsc;
use rocket::{Route, State, delete, get, post, routes};
use serde_json::{Value, json};

use super::BodyReservation;
use super::jsonrpc::{self, Message, Params, RequestId, RpcError, SERVER_ERROR};
use super::peer::Peer;
use super::protocol::{self, log_rank};
use super::request_log::capped;
use super::security::Refusal;
use super::session::{self, Session};
use super::{Mcp, dispatch};
use crate::models::NewMcpRequestLog;
use crate::tools::ToolContext;

pub fn routes() -> Vec<Route> {
    routes![post_mcp, get_mcp, delete_mcp]
}

const SESSION_HEADER: &str = "Mcp-Session-Id";

/// The headers the transport rules look at; never fails.
pub struct McpHeaders<'r> {
    accept: Option<&'r str>,
    content_type: Option<&'r str>,
    content_length: Option<u64>,
    session: Option<&'r str>,
    version: Option<&'r str>,
    origin: Option<&'r str>,
    host: Option<&'r str>,
    authorization: Option<&'r str>,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for McpHeaders<'r> {
    type Error = ();
    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, ()> {
        let h = req.headers();
        Outcome::Success(McpHeaders {
            accept: h.get_one("Accept"),
            content_type: h.get_one("Content-Type"),
            content_length: h
                .get_one("Content-Length")
                .and_then(|n| n.trim().parse().ok()),
            session: h.get_one(SESSION_HEADER),
            version: h.get_one("MCP-Protocol-Version"),
            origin: h.get_one("Origin"),
            host: h.get_one("Host"),
            authorization: h.get_one("Authorization"),
        })
    }
}

impl McpHeaders<'_> {
    fn accepts(&self, mime: &str) -> bool {
        self.accept.is_some_and(|a| {
            a.split(',')
                .map(|p| p.split(';').next().unwrap_or("").trim())
                .any(|p| p == mime || p == "*/*")
        })
    }
}

type SseStream = Pin<Box<dyn Stream<Item = Event> + Send>>;

pub enum Reply {
    Json {
        status: Status,
        body: Value,
        session: Option<String>,
    },
    Sse(EventStream<SseStream>),
    Empty(Status),
    Refused {
        status: Status,
        message: String,
    },
}

impl<'r> Responder<'r, 'r> for Reply {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'r> {
        match self {
            Reply::Json {
                status,
                body,
                session,
            } => {
                let mut res =
                    Response::build_from(rocket::serde::json::Json(body).respond_to(req)?);
                res.status(status);
                if let Some(id) = session {
                    res.header(Header::new(SESSION_HEADER, id));
                }
                res.ok()
            }
            Reply::Sse(stream) => stream.respond_to(req),
            Reply::Empty(status) => Response::build().status(status).ok(),
            Reply::Refused { status, message } => {
                let code = if status == Status::NotFound {
                    jsonrpc::SESSION_NOT_FOUND
                } else {
                    SERVER_ERROR
                };
                let body = jsonrpc::failure(None, &RpcError::new(code, message));
                let mut res =
                    Response::build_from(rocket::serde::json::Json(body).respond_to(req)?);
                res.status(status);
                if status == Status::Unauthorized {
                    res.header(Header::new("WWW-Authenticate", "Bearer"));
                }
                if status == Status::ServiceUnavailable {
                    res.header(Header::new("Retry-After", "1"));
                }
                res.ok()
            }
        }
    }
}

fn refused(status: Status, message: impl Into<String>) -> Reply {
    Reply::Refused {
        status,
        message: message.into(),
    }
}

/// Host/Origin allow-lists and the bearer token, for every method.
fn admit(mcp: &Mcp, h: &McpHeaders<'_>) -> Result<(), Reply> {
    mcp.guard
        .check(h.host, h.origin, h.authorization)
        .map_err(|r| match r {
            Refusal::Forbidden(m) => refused(Status::Forbidden, m),
            Refusal::Unauthorized(m) => refused(Status::Unauthorized, m),
        })
}

/// The session named by the request: 400 without one, 404 when unknown or
/// expired, 400 for an unsupported `MCP-Protocol-Version`.
async fn session_of(mcp: &Mcp, h: &McpHeaders<'_>) -> Result<Arc<Session>, Reply> {
    if let Some(v) = h.version
        && !protocol::is_supported(v)
    {
        return Err(refused(
            Status::BadRequest,
            format!(
                "Bad Request: unsupported MCP-Protocol-Version {v:?} (supported: {})",
                protocol::SUPPORTED.join(", ")
            ),
        ));
    }
    let Some(id) = h.session else {
        return Err(refused(
            Status::BadRequest,
            "Bad Request: Mcp-Session-Id header is required (send initialize first)",
        ));
    };
    mcp.sessions.get(id).await.ok_or_else(|| {
        refused(
            Status::NotFound,
            "Session not found: it ended or expired; initialize a new one",
        )
    })
}

#[post("/mcp", data = "<data>")]
pub async fn post_mcp(
    mcp: &State<Arc<Mcp>>,
    h: McpHeaders<'_>,
    limits: &Limits,
    data: Data<'_>,
) -> Reply {
    let mcp: Arc<Mcp> = Arc::clone(mcp);
    if let Err(reply) = admit(&mcp, &h) {
        return reply;
    }
    if !(h.accepts("application/json") && h.accepts("text/event-stream")) {
        return refused(
            Status::NotAcceptable,
            "Not Acceptable: Accept must list application/json and text/event-stream",
        );
    }
    if !h.content_type.is_some_and(|c| {
        c.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
    }) {
        return refused(
            Status::UnsupportedMediaType,
            "Unsupported Media Type: Content-Type must be application/json",
        );
    }
    let limit = limits.get("json").unwrap_or(32.mebibytes());
    // A parsed body costs several times its size: bodies in flight share a
    // budget, and one that does not fit now is told to come back.
    let Some(reserved) = mcp
        .bodies
        .try_reserve(h.content_length.unwrap_or(limit.as_u64()))
    else {
        return refused(
            Status::ServiceUnavailable,
            "Service Unavailable: too many large requests in flight; retry shortly",
        );
    };
    let body = match data.open(limit).into_bytes().await {
        Ok(b) if b.is_complete() => b.into_inner(),
        Ok(_) => {
            return refused(
                Status::PayloadTooLarge,
                format!("Payload Too Large: the limit is {limit}"),
            );
        }
        Err(e) => {
            return refused(
                Status::BadRequest,
                format!("Bad Request: could not read the body: {e}"),
            );
        }
    };
    let started = Instant::now();
    let body_bytes = body.len();
    let parsed = jsonrpc::parse_message(&body);
    // The params were copied out as text: the body's memory is not held
    // while the call runs.
    drop(body);
    let message = match parsed {
        Ok(m) => m,
        Err(rejected) => {
            let body = jsonrpc::failure(rejected.id.as_ref(), &rejected.error);
            return Reply::Json {
                status: Status::BadRequest,
                body,
                session: None,
            };
        }
    };
    match message {
        Message::Request { id, method, params } if method == "initialize" => {
            initialize(&mcp, id, params, body_bytes, started).await
        }
        Message::Request { id, method, params } => {
            let session = match session_of(&mcp, &h).await {
                Ok(s) => s,
                Err(reply) => return reply,
            };
            let received = Received {
                bytes: body_bytes,
                _share: reserved,
            };
            call(mcp, session, id, method, params, started, received).await
        }
        Message::Notification { method, params } => {
            let session = match session_of(&mcp, &h).await {
                Ok(s) => s,
                Err(reply) => return reply,
            };
            notified(&mcp, session, &method, params).await;
            Reply::Empty(Status::Accepted)
        }
        Message::Response { id, outcome } => {
            let session = match session_of(&mcp, &h).await {
                Ok(s) => s,
                Err(reply) => return reply,
            };
            mcp.live.answer(&session.id, &id, outcome);
            Reply::Empty(Status::Accepted)
        }
    }
}

async fn initialize(
    mcp: &Mcp,
    id: RequestId,
    params: Option<Params>,
    body_bytes: usize,
    started: Instant,
) -> Reply {
    let logged = params.as_deref().map(|p| capped(p, body_bytes));
    let p = params
        .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
        .unwrap_or_else(|| json!({}));
    let requested = p.get("protocolVersion").and_then(Value::as_str);
    let version = protocol::negotiate(requested);
    let info = p.get("clientInfo");
    let session = Arc::new(Session {
        id: session::new_id(),
        protocol_version: version.to_owned(),
        client_name: info.and_then(|c| c["name"].as_str()).map(str::to_owned),
        client_version: info.and_then(|c| c["version"].as_str()).map(str::to_owned),
        log_level: None,
        initialized: false,
    });
    mcp.sessions.put(Arc::clone(&session)).await;
    let result = protocol::initialize_result(version, INSTRUCTIONS);
    record(
        mcp,
        &session,
        &id,
        "initialize",
        Logged {
            tool_name: None,
            params: logged,
        },
        &Ok(result.clone()),
        started,
    );
    Reply::Json {
        status: Status::Ok,
        body: jsonrpc::success(&id, result),
        session: Some(session.id.clone()),
    }
}

const INSTRUCTIONS: &str = "Time-series analytics over PostgreSQL. Ingest points with \
ingest_timeseries, then query, summarise (compute_statistics), look for anomalies and trends, \
train forecasting models and forecast. Each series is also a resource: timeseries://<series>.";

async fn notified(mcp: &Mcp, mut session: Arc<Session>, method: &str, params: Option<Params>) {
    match method {
        "notifications/initialized" if !session.initialized => {
            Arc::make_mut(&mut session).initialized = true;
            mcp.sessions.put(session).await;
        }
        "notifications/cancelled" => {
            #[derive(serde::Deserialize)]
            struct Cancelled {
                #[serde(rename = "requestId")]
                request_id: RequestId,
            }
            if let Some(Cancelled { request_id: id }) =
                params.and_then(|p| serde_json::from_str(p.get()).ok())
            {
                mcp.live.cancel(&session.id, &id);
            }
        }
        _ => {}
    }
}

/// A request body that was read: its size, and its share of the in-flight
/// budget (returned when the call ends).
struct Received {
    bytes: usize,
    _share: BodyReservation,
}

/// Runs a request. If it sends anything to the client before finishing
/// (logs, progress, a request of its own), the reply becomes an SSE stream
/// ending with the response; otherwise it is plain JSON.
async fn call(
    mcp: Arc<Mcp>,
    session: Arc<Session>,
    id: RequestId,
    method: String,
    params: Option<Params>,
    started: Instant,
    body: Received,
) -> Reply {
    let (out, mut rx) = mpsc::channel::<Value>(64);
    let peek = params
        .as_deref()
        .and_then(|p| serde_json::from_str::<Peek>(p.get()).ok())
        .unwrap_or_default();
    let min_log = session
        .log_level
        .as_deref()
        .and_then(log_rank)
        .or(log_rank("info"))
        .unwrap_or(1);
    let peer = Peer {
        out,
        session: session.id.clone(),
        progress_token: peek.meta.and_then(|m| m.progress_token),
        min_log,
        cancelled: mcp.live.start_call(&session.id, &id),
        live: Arc::clone(&mcp.live),
    };
    let ctx = ToolContext {
        db: mcp.db.clone(),
        cache: Arc::clone(&mcp.cache),
        client: Arc::new(peer),
        metrics: Arc::clone(&mcp.metrics),
    };
    let task_id = id.clone();
    // What the log keeps is taken before the params move into the call.
    let logged = Logged {
        tool_name: peek
            .name
            .filter(|_| method == "tools/call")
            .map(Cow::into_owned),
        params: params.as_deref().map(|p| capped(p, body.bytes)),
    };
    let task = rocket::tokio::spawn(async move {
        // The body's share of the in-flight budget is held until the call ends.
        let _body = body;
        let mut session = session;
        let outcome = dispatch::dispatch(&mcp, &mut session, &method, params, ctx).await;
        mcp.live.end_call(&session.id, &task_id);
        record(&mcp, &session, &task_id, &method, logged, &outcome, started);
        match outcome {
            Ok(result) => jsonrpc::success(&task_id, result),
            Err(e) => jsonrpc::failure(Some(&task_id), &e),
        }
    });
    let finished = move |joined: Result<Value, rocket::tokio::task::JoinError>| {
        joined.unwrap_or_else(|e| {
            jsonrpc::failure(
                Some(&id),
                &RpcError::internal(format!("the request failed: {e}")),
            )
        })
    };
    match rx.recv().await {
        // Nothing was sent before the end: the task dropped its sender.
        None => Reply::Json {
            status: Status::Ok,
            body: finished(task.await),
            session: None,
        },
        Some(first) => {
            let rest = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
            let last = stream::once(async move { finished(task.await) });
            let events: SseStream = Box::pin(
                stream::once(async { first })
                    .chain(rest)
                    .chain(last)
                    .map(|m| Event::json(&m)),
            );
            Reply::Sse(EventStream::from(events))
        }
    }
}

/// What the transport itself reads of a request's params: the name (for the
/// log and metrics of `tools/call`) and the progress token. The rest is
/// skipped unparsed.
#[derive(Default, serde::Deserialize)]
struct Peek<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(rename = "_meta")]
    meta: Option<PeekMeta>,
}

#[derive(serde::Deserialize)]
struct PeekMeta {
    #[serde(rename = "progressToken")]
    progress_token: Option<Value>,
}

/// What the request log keeps of a request's params.
struct Logged {
    tool_name: Option<String>,
    params: Option<Value>,
}

/// Queues the request's row for `mcp_request_logs` (never waits).
fn record(
    mcp: &Mcp,
    session: &Session,
    id: &RequestId,
    method: &str,
    logged: Logged,
    outcome: &Result<Value, RpcError>,
    started: Instant,
) {
    let Logged { tool_name, params } = logged;
    let (status, error_code, error_message) = match outcome {
        Ok(r) if r["isError"] == true => (
            "error",
            None,
            r["content"][0]["text"]
                .as_str()
                .map(|t| t.chars().take(1000).collect()),
        ),
        Ok(_) => ("ok", None, None),
        Err(e) => (
            "error",
            Some(e.code),
            Some(e.message.chars().take(1000).collect()),
        ),
    };
    let elapsed = started.elapsed();
    // Labels only from known names: input must not grow the metric set.
    let method_label = match outcome {
        Err(e) if e.code == jsonrpc::METHOD_NOT_FOUND => "unknown",
        _ => method,
    };
    let tool_label = tool_name
        .as_deref()
        .map(|t| if mcp.tools.contains(t) { t } else { "unknown" });
    mcp.metrics
        .rpc(method_label, tool_label, status == "ok", elapsed);
    mcp.log.record(NewMcpRequestLog {
        session_id: Some(session.id.clone()),
        request_id: Some(id.to_string()),
        method: method.to_owned(),
        tool_name,
        params,
        status: status.to_owned(),
        error_code,
        error_message,
        duration_ms: elapsed.as_secs_f64() * 1e3,
        client_name: session.client_name.clone(),
        created_at: Utc::now(),
    });
}

#[get("/mcp")]
pub async fn get_mcp(mcp: &State<Arc<Mcp>>, h: McpHeaders<'_>) -> Reply {
    if let Err(reply) = admit(mcp, &h) {
        return reply;
    }
    if !h.accepts("text/event-stream") {
        return refused(
            Status::NotAcceptable,
            "Not Acceptable: Accept must list text/event-stream",
        );
    }
    let session = match session_of(mcp, &h).await {
        Ok(s) => s,
        Err(reply) => return reply,
    };
    let rx = mcp.live.open_stream(&session.id);
    let events: SseStream = Box::pin(stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|m| (Event::json(&m), rx))
    }));
    Reply::Sse(EventStream::from(events))
}

#[delete("/mcp")]
pub async fn delete_mcp(mcp: &State<Arc<Mcp>>, h: McpHeaders<'_>) -> Reply {
    if let Err(reply) = admit(mcp, &h) {
        return reply;
    }
    let Some(id) = h.session else {
        return refused(
            Status::BadRequest,
            "Bad Request: Mcp-Session-Id header is required",
        );
    };
    if mcp.sessions.remove(id).await {
        mcp.live.end_session(id);
        Reply::Empty(Status::NoContent)
    } else {
        refused(Status::NotFound, "Session not found")
    }
}
