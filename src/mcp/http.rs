//! Streamable HTTP at `/mcp`, a transport over the protocol core: the
//! guard, `Accept`/`Content-Type`, the body budget and limit, JSON-RPC
//! framing, and the core's answers as JSON or SSE with their statuses.
//! GET and DELETE belong to the 2025 session lane.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use rocket::data::{Data, Limits, ToByteUnit};
use rocket::futures::stream::{Stream, StreamExt};
use rocket::http::{Header, Status};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::response::stream::{Event, EventStream};
use rocket::response::{self, Responder, Response};
use rocket::{Route, State, delete, get, post, routes};
use serde_json::Value;

use super::call::Received;
use super::jsonrpc::{self, METHOD_NOT_FOUND, RpcError};
use super::modern::{self, HEADER_MISMATCH, UNSUPPORTED_VERSION};
use super::outcome::MISSING_CAPABILITY;
use super::security::Forbidden;
use super::server::Mcp;
use super::wire::{self, Answer, Era, Facts};
use super::{core, legacy};
use crate::auth::{Challenge, Grant};

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
    origin: Option<&'r str>,
    host: Option<&'r str>,
    authorization: Option<&'r str>,
    /// For the core: the revision, 2026's `Mcp-Method`, `Mcp-Name` and
    /// `Mcp-Param-*` headers.
    all: &'r rocket::http::HeaderMap<'r>,
}

impl wire::Headers for McpHeaders<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.all.get_one(name)
    }
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
            origin: h.get_one("Origin"),
            host: h.get_one("Host"),
            authorization: h.get_one("Authorization"),
            all: h,
        })
    }
}

impl McpHeaders<'_> {
    fn facts(&self, grant: Arc<Grant>) -> Facts<'_> {
        Facts {
            headers: Some(self),
            session: self.session,
            cancel: None,
            grant,
        }
    }

    fn accepts(&self, mime: &str) -> bool {
        self.accept.is_some_and(|a| {
            a.split(',')
                .map(|p| p.split(';').next().unwrap_or("").trim())
                .any(|p| p == mime || p == "*/*")
        })
    }
}

pub type SseStream = Pin<Box<dyn Stream<Item = Event> + Send>>;

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
        /// The JSON-RPC error code of the body.
        code: i32,
        message: String,
        /// `WWW-Authenticate` of a 401 or 403.
        challenge: Option<String>,
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
            Reply::Refused {
                status,
                code,
                message,
                challenge,
            } => {
                let body = jsonrpc::failure(None, &RpcError::new(code, message));
                let mut res =
                    Response::build_from(rocket::serde::json::Json(body).respond_to(req)?);
                res.status(status);
                if let Some(challenge) = challenge {
                    res.header(Header::new("WWW-Authenticate", challenge));
                }
                if status == Status::ServiceUnavailable {
                    res.header(Header::new("Retry-After", "1"));
                }
                res.ok()
            }
        }
    }
}

/// A refusal before the core ran: the transport's own (406, 415, 413 …).
fn refused(status: Status, message: impl Into<String>) -> Reply {
    Reply::Refused {
        status,
        code: wire::Refusal::BadRequest.code(),
        message: message.into(),
        challenge: None,
    }
}

/// HTTP status of a 2026 error, as the transport specification maps them.
fn status_of(body: &Value) -> Status {
    match body["error"]["code"].as_i64().map(|c| c as i32) {
        Some(METHOD_NOT_FOUND) => Status::NotFound,
        Some(
            jsonrpc::INVALID_PARAMS | HEADER_MISMATCH | UNSUPPORTED_VERSION | MISSING_CAPABILITY,
        ) => Status::BadRequest,
        _ => Status::Ok,
    }
}

/// The core's answer as HTTP for this caller. A scope it lacks is a 403
/// that says which to ask for (RFC 6750 `insufficient_scope`), so a client
/// can step up.
fn reply(mcp: &Mcp, grant: &Grant, answer: Answer) -> Reply {
    match answer {
        Answer::One { body, era, session } => Reply::Json {
            status: match era {
                Era::Modern => status_of(&body),
                Era::Legacy => Status::Ok,
            },
            body,
            session,
        },
        Answer::Stream(messages) => {
            let events: SseStream = Box::pin(messages.map(|m| Event::json(&m)));
            Reply::Sse(EventStream::from(events))
        }
        Answer::Accepted => Reply::Empty(Status::Accepted),
        Answer::Ended => Reply::Empty(Status::NoContent),
        Answer::Refused { why, message } => Reply::Refused {
            status: match why {
                wire::Refusal::BadRequest => Status::BadRequest,
                wire::Refusal::SessionNotFound => Status::NotFound,
                wire::Refusal::InsufficientScope(_) => Status::Forbidden,
            },
            code: why.code(),
            message,
            challenge: match why {
                wire::Refusal::InsufficientScope(needed) => {
                    Some(mcp.auth.challenge(Challenge::Insufficient {
                        needed,
                        held: grant.scopes,
                    }))
                }
                _ => None,
            },
        },
    }
}

/// Host/Origin allow-lists, then the caller's credentials, for every method.
async fn admit(mcp: &Mcp, h: &McpHeaders<'_>) -> Result<Arc<Grant>, Reply> {
    if let Err(Forbidden(m)) = mcp.guard.check(h.host, h.origin) {
        return Err(refused(Status::Forbidden, m));
    }
    mcp.auth
        .authenticate(h.authorization)
        .await
        .map_err(|denied| Reply::Refused {
            status: Status::Unauthorized,
            code: wire::Refusal::BadRequest.code(),
            message: denied.message(),
            challenge: Some(mcp.auth.challenge(Challenge::Denied(&denied))),
        })
}

/// What is left of a refused body is read and discarded, at most this much
/// and for at most [`DRAIN_WAIT`]: closing a connection with unread data
/// resets it, and the refusal with it (the gate in front then had no
/// answer to pass on).
pub const DRAIN_CAP: u64 = 64 << 20;
const DRAIN_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

pub async fn drain(stream: &mut rocket::data::DataStream<'_>) {
    let _ = tokio::time::timeout(DRAIN_WAIT, tokio::io::copy(stream, &mut tokio::io::sink())).await;
}

/// A request body, read whole.
pub enum Body {
    Read(Vec<u8>),
    /// Past the limit; the rest was read and discarded.
    TooLarge,
    Failed(std::io::Error),
}

/// Reads a body of at most `cap` bytes (`expected`, the `Content-Length`,
/// sizes the buffer). One past the limit is drained, so that the refusal
/// reaches the client.
pub async fn read_body(
    stream: &mut rocket::data::DataStream<'_>,
    cap: u64,
    expected: Option<u64>,
) -> Body {
    use tokio::io::AsyncReadExt;
    let expected = expected.unwrap_or(0).min(cap);
    let mut body = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
    if let Err(e) = (&mut *stream).take(cap + 1).read_to_end(&mut body).await {
        return Body::Failed(e);
    }
    if body.len() as u64 > cap {
        drop(body);
        drain(stream).await;
        return Body::TooLarge;
    }
    Body::Read(body)
}

/// The checks that need no body besides the caller's: `Accept`, `Content-Type`.
fn refusal(h: &McpHeaders<'_>) -> Option<Reply> {
    if !(h.accepts("application/json") && h.accepts("text/event-stream")) {
        return Some(refused(
            Status::NotAcceptable,
            "Not Acceptable: Accept must list application/json and text/event-stream",
        ));
    }
    if !h.content_type.is_some_and(|c| {
        c.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
    }) {
        return Some(refused(
            Status::UnsupportedMediaType,
            "Unsupported Media Type: Content-Type must be application/json",
        ));
    }
    None
}

#[post("/mcp", data = "<data>")]
pub async fn post_mcp(
    mcp: &State<Arc<Mcp>>,
    h: McpHeaders<'_>,
    limits: &Limits,
    data: Data<'_>,
) -> Reply {
    let mcp: Arc<Mcp> = Arc::clone(mcp);
    let limit = limits.get("json").unwrap_or(32.mebibytes());
    let mut stream = data.open(limit + DRAIN_CAP.bytes());
    let grant = match admit(&mcp, &h).await {
        Ok(grant) => grant,
        Err(reply) => {
            drain(&mut stream).await;
            return reply;
        }
    };
    if let Some(reply) = refusal(&h) {
        drain(&mut stream).await;
        return reply;
    }
    // A parsed body costs several times its size: bodies in flight share a
    // budget, and one that does not fit now is told to come back.
    let Some(share) = mcp
        .bodies
        .try_reserve(h.content_length.unwrap_or(limit.as_u64()))
    else {
        drain(&mut stream).await;
        return refused(
            Status::ServiceUnavailable,
            "Service Unavailable: too many large requests in flight; retry shortly",
        );
    };
    let body = match read_body(&mut stream, limit.as_u64(), h.content_length).await {
        Body::Read(body) => body,
        Body::Failed(e) => {
            return refused(
                Status::BadRequest,
                format!("Bad Request: could not read the body: {e}"),
            );
        }
        Body::TooLarge => {
            return refused(
                Status::PayloadTooLarge,
                format!("Payload Too Large: the limit is {limit}"),
            );
        }
    };
    let started = Instant::now();
    let bytes = body.len();
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
    let body = Received { bytes, share };
    let answer = core::handle(
        Arc::clone(&mcp),
        &h.facts(Arc::clone(&grant)),
        message,
        body,
        started,
    )
    .await;
    reply(&mcp, &grant, answer)
}

/// GET and DELETE: the guard and the caller, and 2026 has no stream to
/// open and no session to end.
async fn session_route(mcp: &Mcp, h: &McpHeaders<'_>) -> Result<Arc<Grant>, Reply> {
    let grant = admit(mcp, h).await?;
    if modern::header_is_modern(h.facts(Arc::clone(&grant)).version()) {
        return Err(refused(
            Status::MethodNotAllowed,
            "Method Not Allowed: MCP 2026-07-28 is stateless; POST requests to /mcp",
        ));
    }
    Ok(grant)
}

#[get("/mcp")]
pub async fn get_mcp(mcp: &State<Arc<Mcp>>, h: McpHeaders<'_>) -> Reply {
    let grant = match session_route(mcp, &h).await {
        Ok(grant) => grant,
        Err(reply) => return reply,
    };
    if !h.accepts("text/event-stream") {
        return refused(
            Status::NotAcceptable,
            "Not Acceptable: Accept must list text/event-stream",
        );
    }
    let answer = legacy::stream(mcp, &h.facts(Arc::clone(&grant))).await;
    reply(mcp, &grant, answer)
}

#[delete("/mcp")]
pub async fn delete_mcp(mcp: &State<Arc<Mcp>>, h: McpHeaders<'_>) -> Reply {
    let grant = match session_route(mcp, &h).await {
        Ok(grant) => grant,
        Err(reply) => return reply,
    };
    let answer = legacy::end(mcp, &h.facts(Arc::clone(&grant))).await;
    reply(mcp, &grant, answer)
}
