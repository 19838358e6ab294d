//! What a transport hands the protocol core with each message, and what it
//! gets back: [`Facts`] in, an [`Answer`] out. HTTP maps an answer to JSON
//! or SSE and a status; stdio to lines.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use rocket::futures::stream::Stream;
use serde_json::Value;

use super::jsonrpc;
use crate::auth::{Grant, Scopes};

/// A transport's request headers, looked up by name (case-insensitive).
pub trait Headers: Sync {
    fn get(&self, name: &str) -> Option<&str>;
}

/// What the transport knows about a message besides its body.
#[derive(Default)]
pub struct Facts<'a> {
    /// HTTP's headers; `None` over stdio, where there are none, so the
    /// 2026 checks that compare headers with the body do not apply.
    pub headers: Option<&'a dyn Headers>,
    /// The 2025 session the message belongs to (HTTP: `Mcp-Session-Id`;
    /// stdio: the process's one session).
    pub session: Option<&'a str>,
    /// Set by the transport to cancel a 2026 call (stdio's
    /// `notifications/cancelled`; HTTP cancels by closing the stream).
    pub cancel: Option<Arc<AtomicBool>>,
    /// What the caller may do: HTTP's token; stdio's `--scopes` (every
    /// scope by default).
    pub grant: Arc<Grant>,
}

impl<'a> Facts<'a> {
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers.and_then(|h| h.get(name))
    }

    /// `MCP-Protocol-Version`, trimmed.
    pub fn version(&self) -> Option<&'a str> {
        self.header("MCP-Protocol-Version").map(str::trim)
    }
}

/// The revision a message was answered under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// 2025-11-25 and earlier: sessions.
    Legacy,
    /// 2026-07-28: stateless.
    Modern,
}

/// Messages for the client, in order; the response, when there is one, last.
pub type Messages = Pin<Box<dyn Stream<Item = Value> + Send>>;

/// Why the core refused a message before any lane ran it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The message cannot be served as sent (no session, a bad revision).
    BadRequest,
    /// The session ended or expired: initialize a new one.
    SessionNotFound,
    /// The caller's grant lacks this scope (HTTP 403 `insufficient_scope`).
    InsufficientScope(Scopes),
}

impl Refusal {
    /// The JSON-RPC error code a refusal is told with.
    pub fn code(self) -> i32 {
        match self {
            Refusal::BadRequest => jsonrpc::SERVER_ERROR,
            Refusal::SessionNotFound => jsonrpc::SESSION_NOT_FOUND,
            Refusal::InsufficientScope(_) => jsonrpc::FORBIDDEN,
        }
    }
}

pub enum Answer {
    /// The response alone.
    One {
        body: Value,
        era: Era,
        /// A session `initialize` opened.
        session: Option<String>,
    },
    /// Messages sent while the request ran, then its response; or an
    /// open-ended stream (the 2025 session stream, `subscriptions/listen`).
    Stream(Messages),
    /// Taken; nothing to answer (a notification, the client's response).
    Accepted,
    /// The session was ended.
    Ended,
    Refused {
        why: Refusal,
        message: String,
    },
}

impl Answer {
    pub fn refused(why: Refusal, message: impl Into<String>) -> Answer {
        Answer::Refused {
            why,
            message: message.into(),
        }
    }
}
