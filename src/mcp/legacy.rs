//! The MCP 2025-11-25 lane (and 2025-06-18, 2025-03-26): `initialize`
//! opens a session, every later message names it (over HTTP in
//! `Mcp-Session-Id`), the client's answers and notifications come as
//! messages of their own, the session's stream carries what is not tied to
//! a request, and ending the session (HTTP's DELETE) forgets it.

use std::sync::Arc;

use rocket::futures::stream;
use serde_json::{Value, json};

use super::call::{self, Caller, Incoming, Request};
use super::jsonrpc::{self, Params, RequestId};
use super::protocol;
use super::request_log::{Entry, Logged, capped};
use super::server::Mcp;
use super::session::{self, Session};
use super::wire::{Answer, Era, Facts, Refusal};
use crate::auth::Grant;

/// The session named by the request: refused without one, not found when
/// unknown or expired, refused for an unsupported `MCP-Protocol-Version`.
async fn session_of(mcp: &Mcp, facts: &Facts<'_>) -> Result<Arc<Session>, Answer> {
    if let Some(v) = facts.version()
        && !protocol::is_supported(v)
    {
        return Err(Answer::refused(
            Refusal::BadRequest,
            format!(
                "Bad Request: unsupported MCP-Protocol-Version {v:?} (supported: {})",
                protocol::SUPPORTED.join(", ")
            ),
        ));
    }
    let Some(id) = facts.session else {
        return Err(Answer::refused(
            Refusal::BadRequest,
            "Bad Request: no session: send initialize first (over HTTP, name the session in the Mcp-Session-Id header)",
        ));
    };
    mcp.sessions
        .get(id)
        .await
        .filter(|s| s.subject == facts.grant.subject)
        .ok_or_else(|| {
            Answer::refused(
                Refusal::SessionNotFound,
                "Session not found: it ended or expired; initialize a new one",
            )
        })
}

pub async fn request(mcp: Arc<Mcp>, facts: &Facts<'_>, incoming: Incoming) -> Answer {
    let Incoming {
        id,
        method,
        params,
        peek,
        started,
        body,
        grant,
    } = incoming;
    if method == "initialize" {
        return initialize(&mcp, id, params, body.bytes, started, &grant).await;
    }
    let session = match session_of(&mcp, facts).await {
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
        grant,
    };
    call::run(mcp, Caller::Session(session), request).await
}

async fn initialize(
    mcp: &Mcp,
    id: RequestId,
    params: Option<Params>,
    body_bytes: usize,
    started: std::time::Instant,
    grant: &Grant,
) -> Answer {
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
        subject: grant.subject.clone(),
    });
    mcp.sessions.put(Arc::clone(&session)).await;
    let result = protocol::initialize_result(version);
    mcp.audit(
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
            grant,
        },
        &Ok(result.clone()),
    );
    Answer::One {
        body: jsonrpc::success(&id, result),
        era: Era::Legacy,
        session: Some(session.id.clone()),
    }
}

pub async fn notification(
    mcp: &Mcp,
    facts: &Facts<'_>,
    method: &str,
    params: Option<Params>,
) -> Answer {
    let mut session = match session_of(mcp, facts).await {
        Ok(s) => s,
        Err(reply) => return reply,
    };
    match method {
        "notifications/initialized" if !session.initialized => {
            Arc::make_mut(&mut session).initialized = true;
            mcp.sessions.put(session).await;
        }
        "notifications/cancelled" => {
            if let Some(id) = jsonrpc::cancelled_request(params.as_ref()) {
                mcp.live.cancel(&session.id, &id);
            }
        }
        _ => {}
    }
    Answer::Accepted
}

/// The client's answer to one of our requests.
pub async fn response(
    mcp: &Mcp,
    facts: &Facts<'_>,
    id: &RequestId,
    outcome: Result<Value, Value>,
) -> Answer {
    match session_of(mcp, facts).await {
        Ok(session) => {
            mcp.live.answer(&session.id, id, outcome);
            Answer::Accepted
        }
        Err(reply) => reply,
    }
}

/// The session's stream (HTTP's GET): what is not tied to a request.
pub async fn stream(mcp: &Mcp, facts: &Facts<'_>) -> Answer {
    let session = match session_of(mcp, facts).await {
        Ok(s) => s,
        Err(reply) => return reply,
    };
    let rx = mcp.live.open_stream(&session.id);
    Answer::Stream(Box::pin(stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|m| (m, rx))
    })))
}

/// Ends the session (HTTP's DELETE).
pub async fn end(mcp: &Mcp, facts: &Facts<'_>) -> Answer {
    let Some(id) = facts.session else {
        return Answer::refused(
            Refusal::BadRequest,
            "Bad Request: Mcp-Session-Id header is required",
        );
    };
    if mcp.sessions.remove(id).await {
        mcp.live.end_session(id);
        Answer::Ended
    } else {
        Answer::refused(Refusal::SessionNotFound, "Session not found")
    }
}
