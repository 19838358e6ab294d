//! The MCP 2025-11-25 lane (and 2025-06-18, 2025-03-26): `initialize`
//! opens a session, every later message names it in `Mcp-Session-Id`, the
//! client's answers and notifications arrive by POST, its GET stream
//! carries what is not tied to a request, and DELETE ends the session.

use std::sync::Arc;

use rocket::futures::stream;
use rocket::http::Status;
use rocket::response::stream::{Event, EventStream};
use serde_json::{Value, json};

use super::Mcp;
use super::call::{self, Caller, Incoming, Request};
use super::jsonrpc::{self, Params, RequestId};
use super::protocol;
use super::request_log::{Entry, Logged, audit, capped};
use super::session::{self, Session};
use super::transport::{McpHeaders, Reply, SseStream, refused};

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

pub async fn request(mcp: Arc<Mcp>, h: &McpHeaders<'_>, incoming: Incoming) -> Reply {
    let Incoming {
        id,
        method,
        params,
        peek,
        started,
        body,
    } = incoming;
    if method == "initialize" {
        return initialize(&mcp, id, params, body.bytes, started).await;
    }
    let session = match session_of(&mcp, h).await {
        Ok(s) => s,
        Err(reply) => return reply,
    };
    let request = Request {
        id,
        method,
        params,
        progress_token: peek.meta.and_then(|m| m.progress_token),
        name: peek.name,
        started,
        body,
    };
    call::run(mcp, Caller::Session(session), request).await
}

async fn initialize(
    mcp: &Mcp,
    id: RequestId,
    params: Option<Params>,
    body_bytes: usize,
    started: std::time::Instant,
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
    let result = protocol::initialize_result(version);
    audit(
        mcp,
        Entry {
            session: Some(session.id.clone()),
            client_name: session.client_name.clone(),
            id: &id,
            method: "initialize",
            logged: Logged {
                tool_name: None,
                params: logged,
            },
            started,
        },
        &Ok(result.clone()),
    );
    Reply::Json {
        status: Status::Ok,
        body: jsonrpc::success(&id, result),
        session: Some(session.id.clone()),
    }
}

pub async fn notification(
    mcp: &Mcp,
    h: &McpHeaders<'_>,
    method: &str,
    params: Option<Params>,
) -> Reply {
    let mut session = match session_of(mcp, h).await {
        Ok(s) => s,
        Err(reply) => return reply,
    };
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
    Reply::Empty(Status::Accepted)
}

/// The client's answer to one of our requests.
pub async fn response(
    mcp: &Mcp,
    h: &McpHeaders<'_>,
    id: &RequestId,
    outcome: Result<Value, Value>,
) -> Reply {
    match session_of(mcp, h).await {
        Ok(session) => {
            mcp.live.answer(&session.id, id, outcome);
            Reply::Empty(Status::Accepted)
        }
        Err(reply) => reply,
    }
}

/// The session's GET stream.
pub async fn stream(mcp: &Mcp, h: &McpHeaders<'_>) -> Reply {
    let session = match session_of(mcp, h).await {
        Ok(s) => s,
        Err(reply) => return reply,
    };
    let rx = mcp.live.open_stream(&session.id);
    let events: SseStream = Box::pin(stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|m| (Event::json(&m), rx))
    }));
    Reply::Sse(EventStream::from(events))
}

/// DELETE: ends the session.
pub async fn end(mcp: &Mcp, h: &McpHeaders<'_>) -> Reply {
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
