//! MCP over stdio, a transport over the protocol core: newline-delimited
//! JSON-RPC on stdin and stdout, one client per process. Logs go to
//! stderr only, so stdout carries nothing but messages.
//!
//! - Requests run concurrently, so a client's answer to a 2025 question
//!   (sampling, elicitation) is read while the call waits for it.
//! - A 2025 client's `initialize` opens the process's one session; what the
//!   session's HTTP GET stream would carry (resource updates) is written
//!   here too. A 2026 client sends `_meta` with every request and is never
//!   sent a request.
//! - `notifications/cancelled` stops the call it names (its response is
//!   not sent) or closes a `subscriptions/listen` stream.
//! - A line longer than the limit is skipped to its end without being
//!   buffered and answered with an error; a malformed line gets its
//!   JSON-RPC error; either way the next line is read.
//! - At end of input (or SIGTERM) calls in flight finish within
//!   [`Options::drain`], and the request log is flushed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rocket::futures::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};

use super::call::Received;
use super::jsonrpc::{self, Message, RequestId, RpcError};
use super::server::Mcp;
use super::wire::{Answer, Facts};
use super::{core, legacy};
use crate::auth::Grant;

pub struct Options {
    /// The longest line taken, in bytes (the HTTP body limit).
    pub line_limit: usize,
    /// How long calls in flight may take to finish once input ends.
    pub drain: Duration,
    /// What the client may do (`mcp-server stdio --scopes`; every scope by
    /// default: whoever launches the process owns it).
    pub grant: Arc<Grant>,
}

/// Messages waiting for stdout at most; a slow reader holds the calls back.
const OUTBOX: usize = 256;

/// One line of input.
enum Line {
    Message(Vec<u8>),
    /// Over the limit: skipped, only its length counted.
    TooLong(usize),
}

/// Reads the next line (its `\n` and a `\r` before it dropped) into `buf`,
/// keeping at most `limit` bytes of it: `None` at end of input.
async fn next_line<R: AsyncBufRead + Unpin>(
    input: &mut R,
    buf: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<Option<Line>> {
    buf.clear();
    let (mut seen, mut over) = (0usize, false);
    loop {
        let chunk = input.fill_buf().await?;
        if chunk.is_empty() {
            if seen == 0 {
                return Ok(None);
            }
            break;
        }
        let end = chunk.iter().position(|b| *b == b'\n');
        let take = end.unwrap_or(chunk.len());
        seen += take;
        if !over && buf.len() + take > limit {
            over = true;
            *buf = Vec::new();
        }
        if !over {
            buf.extend_from_slice(&chunk[..take]);
        }
        input.consume(take + usize::from(end.is_some()));
        if end.is_some() {
            break;
        }
    }
    if over {
        return Ok(Some(Line::TooLong(seen)));
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(Some(Line::Message(std::mem::take(buf))))
}

/// A request being answered, for `notifications/cancelled`.
struct InFlight {
    cancel: Arc<AtomicBool>,
    abort: AbortHandle,
}

/// What the reading loop shares with the calls it started.
struct Shared {
    mcp: Arc<Mcp>,
    out: mpsc::Sender<Value>,
    /// The process's 2025 session, once `initialize` opened it.
    session: Mutex<Option<String>>,
    in_flight: Mutex<HashMap<RequestId, InFlight>>,
    /// Open-ended streams (the session's, `subscriptions/listen`): not
    /// waited for at the end.
    streams: Mutex<JoinSet<()>>,
    grant: Arc<Grant>,
}

impl Shared {
    async fn send(&self, message: Value) {
        // A closed stdout ends the process's reading loop; nothing to do here.
        let _ = self.out.send(message).await;
    }

    /// Writes what the core answered to a message (`id`: a request's).
    async fn deliver(&self, id: Option<&RequestId>, answer: Answer) {
        match answer {
            Answer::One { body, .. } => self.send(body).await,
            Answer::Stream(mut messages) => {
                while let Some(message) = messages.next().await {
                    self.send(message).await;
                }
            }
            Answer::Accepted | Answer::Ended => {}
            Answer::Refused { why, message } => match id {
                Some(id) => {
                    let error = RpcError::new(why.code(), message);
                    self.send(jsonrpc::failure(Some(id), &error)).await;
                }
                None => log::debug!("stdio: a notification was refused: {message}"),
            },
        }
    }

    /// `initialize` opened the session: its stream is written here, and it
    /// is kept alive while the process runs.
    async fn opened(self: &Arc<Self>, id: String) {
        *self.session.lock() = Some(id.clone());
        let facts = Facts {
            session: Some(&id),
            grant: Arc::clone(&self.grant),
            ..Facts::default()
        };
        let stream = legacy::stream(&self.mcp, &facts).await;
        let shared = Arc::clone(self);
        let every = (self.mcp.sessions.ttl() / 3).max(Duration::from_secs(1));
        let mut streams = self.streams.lock();
        streams.spawn(async move {
            let keep = Arc::clone(&shared);
            let alive = async move {
                // Using the session restarts its idle clock (and writes it
                // back to a Redis that lost it).
                loop {
                    tokio::time::sleep(every).await;
                    keep.mcp.sessions.get(&id).await;
                }
            };
            tokio::select! {
                () = shared.deliver(None, stream) => {}
                () = alive => {}
            }
        });
    }

    /// Runs one request to its answer, cancellable by its id. `initialize`
    /// is answered before the next line is read, so what follows it is in
    /// its session.
    async fn request(self: &Arc<Self>, calls: &mut JoinSet<()>, message: Message, body: Received) {
        let Message::Request { id, method, .. } = &message else {
            return;
        };
        let (id, listen) = (id.clone(), method == "subscriptions/listen");
        let initialize = method == "initialize";
        let cancel = Arc::new(AtomicBool::new(false));
        let shared = Arc::clone(self);
        let (own_id, own_cancel) = (id.clone(), Arc::clone(&cancel));
        let work = async move {
            let session = shared.session.lock().clone();
            let facts = Facts {
                headers: None,
                session: session.as_deref(),
                cancel: Some(own_cancel),
                grant: Arc::clone(&shared.grant),
            };
            let answer = core::handle(
                Arc::clone(&shared.mcp),
                &facts,
                message,
                body,
                Instant::now(),
            )
            .await;
            if let Answer::One {
                session: Some(opened),
                ..
            } = &answer
            {
                shared.opened(opened.clone()).await;
            }
            shared.deliver(Some(&own_id), answer).await;
            shared.in_flight.lock().remove(&own_id);
        };
        if initialize {
            return work.await;
        }
        // A listen stream never ends by itself: it is not waited for.
        let abort = if listen {
            self.streams.lock().spawn(work)
        } else {
            calls.spawn(work)
        };
        self.in_flight.lock().insert(id, InFlight { cancel, abort });
    }

    /// `notifications/cancelled`: the call stops and its response is not
    /// sent; the 2025 lane hears of it too.
    fn cancelled(&self, params: Option<&jsonrpc::Params>) {
        let Some(request_id) = jsonrpc::cancelled_request(params) else {
            return;
        };
        if let Some(call) = self.in_flight.lock().remove(&request_id) {
            call.cancel.store(true, Ordering::Relaxed);
            call.abort.abort();
        }
    }
}

/// Serves one client on `input` and `output` until input ends or `stop`
/// resolves.
pub async fn serve<R, W>(
    mcp: Arc<Mcp>,
    mut input: R,
    mut output: W,
    options: Options,
    stop: impl std::future::Future<Output = ()>,
) -> std::io::Result<()>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (out, mut outbox) = mpsc::channel::<Value>(OUTBOX);
    let writer = tokio::spawn(async move {
        while let Some(message) = outbox.recv().await {
            let mut line = serde_json::to_vec(&message).unwrap_or_default();
            line.push(b'\n');
            output.write_all(&line).await?;
            output.flush().await?;
        }
        Ok::<_, std::io::Error>(())
    });
    let shared = Arc::new(Shared {
        mcp: Arc::clone(&mcp),
        out,
        session: Mutex::new(None),
        in_flight: Mutex::default(),
        streams: Mutex::new(JoinSet::new()),
        grant: Arc::clone(&options.grant),
    });
    let mut calls = JoinSet::new();
    let mut buf = Vec::new();
    tokio::pin!(stop);
    let read = loop {
        let line = tokio::select! {
            line = next_line(&mut input, &mut buf, options.line_limit) => line,
            () = &mut stop => break Ok(()),
        };
        while calls.try_join_next().is_some() {}
        let bytes = match line {
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
            Ok(Some(Line::TooLong(n))) => {
                let error = RpcError::invalid_request(format!(
                    "a message of {n} bytes is over the {}-byte limit and was skipped; \
                     send less per message (ingest in several calls), or raise the limit \
                     with ROCKET_LIMITS (json)",
                    options.line_limit
                ));
                shared.send(jsonrpc::failure(None, &error)).await;
                continue;
            }
            Ok(Some(Line::Message(bytes))) if bytes.iter().all(u8::is_ascii_whitespace) => continue,
            Ok(Some(Line::Message(bytes))) => bytes,
        };
        if shared.out.is_closed() {
            break Ok(());
        }
        // A parsed message costs several times its size: lines in flight
        // share the HTTP bodies' budget, and reading waits for room.
        let Some(share) = mcp.bodies.reserve(bytes.len() as u64).await else {
            break Ok(());
        };
        let body = Received {
            bytes: bytes.len(),
            share,
        };
        let message = match jsonrpc::parse_message(&bytes) {
            Ok(message) => message,
            Err(rejected) => {
                shared
                    .send(jsonrpc::failure(rejected.id.as_ref(), &rejected.error))
                    .await;
                continue;
            }
        };
        drop(bytes);
        match &message {
            Message::Request { id, method, .. }
                if method == "initialize" && shared.session.lock().is_some() =>
            {
                let error = RpcError::invalid_request(
                    "this process already has a session: start another for a new one",
                );
                shared.send(jsonrpc::failure(Some(id), &error)).await;
            }
            Message::Request { .. } => shared.request(&mut calls, message, body).await,
            Message::Notification { .. } | Message::Response { .. } => {
                if let Message::Notification { method, params } = &message
                    && method == "notifications/cancelled"
                {
                    shared.cancelled(params.as_ref());
                }
                let session = shared.session.lock().clone();
                let facts = Facts {
                    session: session.as_deref(),
                    grant: Arc::clone(&shared.grant),
                    ..Facts::default()
                };
                let answer = core::handle(Arc::clone(&mcp), &facts, message, body, Instant::now());
                shared.deliver(None, answer.await).await;
            }
        }
    };
    // Input is over: the calls started finish, within the bound.
    let drained = tokio::time::timeout(options.drain, async {
        while calls.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        log::warn!(
            "stdio: {} call(s) still running after {} s at the end of input; stopped",
            calls.len(),
            options.drain.as_secs()
        );
        calls.abort_all();
    }
    shared.streams.lock().abort_all();
    let session = shared.session.lock().take();
    if let Some(id) = session {
        mcp.sessions.remove(&id).await;
        mcp.live.end_session(&id);
    }
    mcp.log.flush().await;
    drop(shared);
    match writer.await {
        Ok(Ok(())) => read,
        // The client stopped reading: nothing more can be told it.
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => read,
        Ok(Err(e)) => Err(e),
        Err(e) => Err(std::io::Error::other(e)),
    }
}
