//! Running one request, in either lane: the call runs in its own task; if
//! it sends anything before finishing (logs, progress, a question under
//! 2025), the answer becomes a stream of messages ending with the
//! response, otherwise it is the response alone.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use rocket::futures::stream::{self, StreamExt};
use rocket::tokio::sync::mpsc;
use serde_json::{Map, Value};

use super::budget::BodyReservation;
use super::dispatch::{self, Lane};
use super::jsonrpc::{self, Params, RequestId, RpcError};
use super::outcome::{self, Round, Stop};
use super::peer::{Asking, Peer};
use super::protocol::log_rank;
use super::request_log::{Entry, Logged};
use super::server::Mcp;
use super::session::Session;
use super::tasks::{self, TaskSlot};
use super::wire::{Answer, Era, Messages};
use crate::auth::Grant;
use crate::db::Watch;
use crate::tools::TaskSupport;
use crate::tools::ToolContext;

/// What the transport reads of any request's params: the target, the
/// `_meta` and the multi-round members. The rest (a tool's arguments) is
/// skipped unparsed.
#[derive(Default, serde::Deserialize)]
pub struct Peek {
    pub name: Option<String>,
    pub uri: Option<String>,
    #[serde(rename = "taskId")]
    pub task_id: Option<Value>,
    #[serde(rename = "_meta")]
    pub meta: Option<Meta>,
    #[serde(rename = "inputResponses")]
    pub input_responses: Option<Value>,
    #[serde(rename = "requestState")]
    pub request_state: Option<Value>,
}

/// A request's `_meta`: the progress token, and under 2026 the client's
/// revision, capabilities, identity and log level.
#[derive(Default, serde::Deserialize)]
pub struct Meta {
    #[serde(rename = "progressToken")]
    pub progress_token: Option<Value>,
    #[serde(rename = "io.modelcontextprotocol/protocolVersion")]
    pub protocol_version: Option<Value>,
    #[serde(rename = "io.modelcontextprotocol/clientCapabilities")]
    pub client_capabilities: Option<Value>,
    #[serde(rename = "io.modelcontextprotocol/clientInfo")]
    pub client_info: Option<Value>,
    #[serde(rename = "io.modelcontextprotocol/logLevel")]
    pub log_level: Option<Value>,
}

impl Peek {
    pub fn of(params: Option<&Params>) -> Peek {
        params
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or_default()
    }

    pub fn meta(&self) -> &Meta {
        static NONE: Meta = Meta {
            progress_token: None,
            protocol_version: None,
            client_capabilities: None,
            client_info: None,
            log_level: None,
        };
        self.meta.as_ref().unwrap_or(&NONE)
    }
}

/// A request body that was read: its size, and its share of the in-flight
/// budget (returned when the call ends).
pub struct Received {
    pub bytes: usize,
    pub share: BodyReservation,
}

/// Who is calling.
pub enum Caller {
    /// 2025: a session.
    Session(Arc<Session>),
    /// 2026: stateless; what the request declared about itself.
    Stateless {
        client_name: Option<String>,
        capabilities: Map<String, Value>,
        log_level: Option<usize>,
        round: Round,
        /// The client takes tasks and the tool may run as one.
        task: Option<TaskSupport>,
        /// Set when the transport cancels the call.
        cancelled: Arc<AtomicBool>,
    },
}

/// A request as the transport read it.
pub struct Incoming {
    pub id: RequestId,
    pub method: String,
    pub params: Option<jsonrpc::Params>,
    pub peek: Peek,
    pub started: Instant,
    pub body: Received,
    pub grant: Arc<Grant>,
}

/// A request as the lane hands it over.
pub struct Request {
    pub id: RequestId,
    pub method: String,
    pub params: Option<Params>,
    /// Read from the params by the transport.
    pub progress_token: Option<Value>,
    pub name: Option<String>,
    pub started: Instant,
    pub body: Received,
    pub grant: Arc<Grant>,
}

pub async fn run(mcp: Arc<Mcp>, caller: Caller, request: Request) -> Answer {
    let Request {
        id,
        method,
        params,
        progress_token,
        name,
        started,
        body,
        grant,
    } = request;
    let (out, mut rx) = mpsc::channel::<Value>(64);
    // What the log keeps is taken before the params move into the call.
    let logged = Logged::of(&method, name, params.as_deref(), body.bytes);
    // Only a 2026 call can become a task.
    let mut slot: Option<Arc<TaskSlot>> = None;
    let (min_log, cancelled, asking) = match &caller {
        Caller::Session(session) => (
            Some(
                session
                    .log_level
                    .as_deref()
                    .and_then(log_rank)
                    .or(log_rank("info"))
                    .unwrap_or(1),
            ),
            mcp.live.start_call(&session.id, &id),
            Asking::Session(session.id.clone()),
        ),
        Caller::Stateless {
            capabilities,
            log_level,
            round,
            cancelled,
            ..
        } => (
            *log_level,
            Arc::clone(cancelled),
            Asking::Answers {
                capabilities: capabilities.clone(),
                answers: round.answers.clone(),
                task: Arc::clone(slot.insert(Arc::default())),
            },
        ),
    };
    let peer = Peer {
        out,
        progress_token,
        min_log,
        cancelled,
        live: Arc::clone(&mcp.live),
        events: Arc::clone(&mcp.events),
        asking,
    };
    // A call that may become a task runs on a watched pool, so cancelling
    // the task can stop the SQL statement it is running.
    let (db, watch) = match &caller {
        Caller::Stateless { task: Some(_), .. } => {
            let (db, watch) = mcp.db.watched();
            (db, Some(watch))
        }
        _ => (mcp.db.clone(), None),
    };
    let ctx = ToolContext {
        db,
        cache: Arc::clone(&mcp.cache),
        client: Arc::new(peer),
        metrics: Arc::clone(&mcp.metrics),
        ingest: Arc::clone(&mcp.ingest),
    };
    let caller = match (caller, watch, slot) {
        (
            Caller::Stateless {
                task: Some(support),
                client_name,
                round,
                ..
            },
            Some(watch),
            Some(slot),
        ) => {
            let call = Call {
                id,
                method,
                params,
                logged,
                started,
                body,
                client_name,
                grant,
            };
            return as_task(mcp, call, ctx, support, round, slot, watch).await;
        }
        (caller, ..) => caller,
    };
    let task_id = id.clone();
    let era = match caller {
        Caller::Session(_) => Era::Legacy,
        Caller::Stateless { .. } => Era::Modern,
    };
    let task = rocket::tokio::spawn(async move {
        // The body's share of the in-flight budget is held until the call ends.
        let _body = body;
        let (outcome, session, client_name) = match caller {
            Caller::Session(mut session) => {
                let outcome = dispatch::dispatch(
                    &mcp,
                    Lane::Legacy(&mut session),
                    &method,
                    params.as_deref(),
                    ctx,
                    grant.scopes,
                )
                .await;
                mcp.live.end_call(&session.id, &task_id);
                let name = session.client_name.clone();
                (
                    outcome.map_err(outcome::legacy_error),
                    Some(session.id.clone()),
                    name,
                )
            }
            Caller::Stateless {
                client_name, round, ..
            } => {
                let outcome = dispatch::dispatch(
                    &mcp,
                    Lane::Modern,
                    &method,
                    params.as_deref(),
                    ctx,
                    grant.scopes,
                )
                .await;
                let outcome =
                    outcome::conclude(&mcp.sealer, &method, params.as_deref(), outcome, round);
                (outcome, None, client_name)
            }
        };
        mcp.audit(
            Entry {
                session,
                client_name,
                id: &task_id,
                method: &method,
                logged,
                started,
                grant: &grant,
            },
            &outcome,
        );
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
        None => Answer::One {
            body: finished(task.await),
            era,
            session: None,
        },
        Some(first) => {
            let rest = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
            let last = stream::once(async move { finished(task.await) });
            let messages: Messages =
                Box::pin(stream::once(async { first }).chain(rest).chain(last));
            Answer::Stream(messages)
        }
    }
}

/// A request on its way through a lane, for the task path.
struct Call {
    id: RequestId,
    method: String,
    params: Option<Params>,
    logged: Logged,
    started: Instant,
    body: Received,
    client_name: Option<String>,
    grant: Arc<Grant>,
}

/// A call that may run as a task: answered directly if it ends (or asks
/// for input) within [`tasks::GRACE`], else recorded as a task and left to
/// run under supervision. A tool that requires tasks always gets one.
/// Nothing is streamed: a task's client polls `tasks/get`.
async fn as_task(
    mcp: Arc<Mcp>,
    call: Call,
    ctx: ToolContext,
    support: TaskSupport,
    round: Round,
    slot: Arc<TaskSlot>,
    watch: Arc<Watch>,
) -> Answer {
    let tool = call.logged.tool_name.clone().unwrap_or_default();
    let running = Arc::clone(&mcp);
    // Shared with the call, for sealing the state if it asks for input.
    let params: Option<Arc<Params>> = call.params.map(Arc::new);
    let own = params.clone();
    let (body, method) = (call.body, call.method);
    let scopes = call.grant.scopes;
    let mut handle = rocket::tokio::spawn(async move {
        let _body = body;
        dispatch::dispatch(
            &running,
            Lane::Modern,
            &method,
            own.as_deref().map(|p| &**p),
            ctx,
            scopes,
        )
        .await
    });
    let early = rocket::tokio::time::timeout(tasks::GRACE, &mut handle).await;
    let required = support == TaskSupport::Required;
    let direct = |outcome: Result<Value, Stop>, round: Round| {
        let raw = params.as_deref().map(|p| &**p);
        outcome::conclude(&mcp.sealer, "tools/call", raw, outcome, round)
    };
    let reply = match early {
        // Asked for input before it became a task: a multi-round answer.
        Ok(Ok(Err(Stop::Input(asks)))) => direct(Err(Stop::Input(asks)), round),
        // Over within the grace period: answered directly, unless the tool
        // requires a task (one is recorded already ended).
        Ok(stopped) if !required => match tasks::outcome(stopped) {
            Ok(result) => direct(Ok(result), round),
            Err(e) => Err(e),
        },
        Ok(stopped) => mcp
            .tasks
            .create(&tool, Some(tasks::outcome(stopped)))
            .await
            .map(|(_, created)| created),
        // Too many tasks here: this one is answered when it ends.
        Err(_) if !mcp.tasks.has_room() && !required => match tasks::outcome(handle.await) {
            Ok(result) => direct(Ok(result), round),
            Err(e) => Err(e),
        },
        Err(_) => match mcp.tasks.create(&tool, None).await {
            Ok((task_id, created)) => {
                let _ = slot.set((Arc::clone(&mcp.tasks), task_id.clone()));
                mcp.tasks.supervise(task_id, handle, watch);
                Ok(created)
            }
            Err(e) => {
                handle.abort();
                Err(e)
            }
        },
    };
    mcp.audit(
        Entry {
            session: None,
            client_name: call.client_name,
            id: &call.id,
            method: "tools/call",
            logged: call.logged,
            started: call.started,
            grant: &call.grant,
        },
        &reply,
    );
    Answer::One {
        body: outcome::response(&call.id, &reply),
        era: Era::Modern,
        session: None,
    }
}
