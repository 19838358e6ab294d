//! What a running call can send back to its client: log messages, progress,
//! and questions (sampling, elicitation, roots). Any message turns the
//! POST's response into an SSE stream. Questions go out on that stream in
//! the 2025 lane; in the 2026 lane their answers come with the request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rocket::tokio::sync::mpsc;
use rocket::tokio::time::timeout;
use serde_json::{Map, Value, json};

use super::events::{Event, Events};
use super::jsonrpc::{self, RpcError};
use super::live::Live;
use super::protocol::log_rank;
use super::tasks::TaskSlot;
use crate::ingest::Notify;
use crate::tools::{Ask, Client, Pending, ToolError};

/// How long a server-to-client request waits for its answer.
const ANSWER_WAIT: Duration = Duration::from_secs(60);

pub struct Peer {
    pub(super) out: mpsc::Sender<Value>,
    pub(super) progress_token: Option<Value>,
    /// The least severe level sent; `None`: no log messages.
    pub(super) min_log: Option<usize>,
    pub(super) cancelled: Arc<AtomicBool>,
    pub(super) live: Arc<Live>,
    pub(super) events: Arc<Events>,
    pub(super) asking: Asking,
}

/// How questions reach the client.
pub enum Asking {
    /// 2025: as requests on the call's stream, within the session.
    Session(String),
    /// 2026: the answers the request carried (and its sealed state held);
    /// a question without one ends the call as `input_required`.
    Answers {
        capabilities: Map<String, Value>,
        answers: Map<String, Value>,
        /// Set when the call became a task: questions then park the task.
        task: Arc<TaskSlot>,
    },
}

#[rocket::async_trait]
impl Client for Peer {
    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// `notifications/message`, when `level` is at or above the client's.
    async fn log(&self, level: &str, logger: &str, data: Value) {
        let Some(min) = self.min_log else { return };
        if log_rank(level).is_some_and(|r| r >= min) {
            let params = json!({ "level": level, "logger": logger, "data": data });
            let _ = self
                .out
                .send(jsonrpc::notification("notifications/message", params))
                .await;
        }
    }

    /// `notifications/progress`, only when the request asked for it.
    async fn progress(&self, progress: f64, total: Option<f64>, message: Option<&str>) {
        let Some(token) = &self.progress_token else {
            return;
        };
        let mut params = json!({ "progressToken": token, "progress": progress });
        if let Some(t) = total {
            params["total"] = json!(t);
        }
        if let Some(m) = message {
            params["message"] = json!(m);
        }
        let _ = self
            .out
            .send(jsonrpc::notification("notifications/progress", params))
            .await;
    }

    fn supports(&self, capability: &str) -> bool {
        match &self.asking {
            // The session's capabilities are not kept; the client answers.
            Asking::Session(_) => true,
            Asking::Answers { capabilities, .. } => capabilities.contains_key(capability),
        }
    }

    async fn ask(&self, asks: Vec<Ask>) -> Result<Vec<Value>, ToolError> {
        match &self.asking {
            Asking::Session(session) => {
                let mut answers = Vec::with_capacity(asks.len());
                for ask in asks {
                    let answer = self
                        .request(session, ask.method, ask.params)
                        .await
                        .map_err(|e| ToolError::Invalid(e.message))?;
                    answers.push(answer);
                }
                Ok(answers)
            }
            Asking::Answers {
                capabilities,
                answers,
                task,
            } => {
                if let Some(missing) = asks
                    .iter()
                    .map(Ask::capability)
                    .find(|c| !capabilities.contains_key(*c))
                {
                    return Err(ToolError::Pending(Pending::Capability(missing)));
                }
                let unanswered: Vec<Ask> = asks
                    .iter()
                    .filter(|a| !answers.get(&a.key).is_some_and(|v| a.accepts(v)))
                    .cloned()
                    .collect();
                if !unanswered.is_empty() {
                    return match task.get() {
                        Some((tasks, id)) => tasks.ask(id, answers, asks).await,
                        None => Err(ToolError::Pending(Pending::Input(unanswered))),
                    };
                }
                Ok(asks.iter().map(|a| answers[&a.key].clone()).collect())
            }
        }
    }

    fn list_changed(&self, list: &str) {
        self.events.raise(Event::ListChanged {
            list: list.to_owned(),
        });
    }
}

impl Notify for Peer {
    fn resources_updated(&self, uris: Vec<String>) {
        self.events.resources_updated(uris);
    }
}

impl Peer {
    /// Sends a request to the client and waits for its answer.
    async fn request(&self, session: &str, method: &str, params: Value) -> Result<Value, RpcError> {
        let id = self.live.next_request_id();
        let answer = self.live.await_answer(session, &id);
        if self
            .out
            .send(jsonrpc::request(&id, method, params))
            .await
            .is_err()
        {
            self.live.forget_answer(session, &id);
            return Err(RpcError::internal("the client's stream is closed"));
        }
        let result = timeout(ANSWER_WAIT, answer).await;
        self.live.forget_answer(session, &id);
        match result {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(error))) => Err(RpcError::new(
                error["code"].as_i64().unwrap_or(-32603) as i32,
                error["message"]
                    .as_str()
                    .unwrap_or("client error")
                    .to_owned(),
            )),
            Ok(Err(_)) => Err(RpcError::internal(
                "session ended before the client answered",
            )),
            Err(_) => Err(RpcError::internal(format!(
                "client did not answer {method} within {} s",
                ANSWER_WAIT.as_secs()
            ))),
        }
    }
}
