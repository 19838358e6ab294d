//! What a running call can send back to its client: log messages, progress,
//! and requests (sampling, elicitation). Any of these turns the POST's
//! response into an SSE stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rocket::tokio::sync::mpsc;
use rocket::tokio::time::timeout;
use serde_json::{Value, json};

use super::jsonrpc::{self, RpcError};
use super::live::Live;
use super::protocol::log_rank;
use crate::tools::Client;

/// How long a server-to-client request waits for its answer.
const ANSWER_WAIT: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct Peer {
    pub(super) out: mpsc::Sender<Value>,
    pub(super) session: String,
    pub(super) progress_token: Option<Value>,
    pub(super) min_log: usize,
    pub(super) cancelled: Arc<AtomicBool>,
    pub(super) live: Arc<Live>,
}

#[rocket::async_trait]
impl Client for Peer {
    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// `notifications/message`, when `level` is at or above the session's.
    async fn log(&self, level: &str, logger: &str, data: Value) {
        if log_rank(level).is_some_and(|r| r >= self.min_log) {
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

    async fn request(&self, method: &str, params: Value) -> Result<Value, String> {
        self.ask(method, params).await.map_err(|e| e.message)
    }

    fn resource_updated(&self, uri: &str) {
        self.live.resource_updated(uri);
    }
}

impl Peer {
    /// Sends a request to the client and waits for its answer.
    async fn ask(&self, method: &str, params: Value) -> Result<Value, RpcError> {
        let id = self.live.next_request_id();
        let answer = self.live.await_answer(&self.session, &id);
        if self
            .out
            .send(jsonrpc::request(&id, method, params))
            .await
            .is_err()
        {
            self.live.forget_answer(&self.session, &id);
            return Err(RpcError::internal("the client's stream is closed"));
        }
        let result = timeout(ANSWER_WAIT, answer).await;
        self.live.forget_answer(&self.session, &id);
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
