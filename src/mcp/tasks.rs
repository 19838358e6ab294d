//! The 2026 Tasks extension (`io.modelcontextprotocol/tasks`): a call that
//! outlasts a moment becomes a task whose state lives in `mcp_tasks`, so any
//! replica answers `tasks/get`, `tasks/update` and `tasks/cancel`. The
//! replica that runs it supervises it: it renews the heartbeat (a task
//! whose heartbeat stops is reported failed), stores the outcome, and on
//! cancellation drops the work and cancels its running SQL statement.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rocket::tokio::task::JoinHandle;
use rocket::tokio::time::{MissedTickBehavior, interval, sleep};
use serde_json::{Map, Value, json};

use super::jsonrpc::RpcError;
use super::outcome::Stop;
use super::resources::db_failure;
use crate::db::{Db, Watch};
use crate::models::{McpTask, NewMcpTask};
use crate::store::tasks as store;
use crate::tools::{Ask, ToolError};

/// A task-supporting call that finishes within this is answered directly.
pub const GRACE: Duration = Duration::from_millis(100);
/// How long a task stays readable.
const TTL: Duration = Duration::from_secs(3600);
const POLL_INTERVAL_MS: u64 = 500;
/// How often the running replica checks for cancellation and answers.
const WATCH_EVERY: Duration = Duration::from_millis(250);
const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);
/// A task whose heartbeat is older than this has lost its replica.
const STALE: Duration = Duration::from_secs(10);
/// Tasks one replica runs at once; past it, calls are answered directly.
pub const MAX_RUNNING: usize = 64;

pub struct Tasks {
    db: Db,
    /// This replica, as the owner of the tasks it runs.
    owner: String,
    running: AtomicUsize,
}

/// Set once a call became a task: from then on its questions park the
/// task instead of ending the call.
pub type TaskSlot = OnceLock<(Arc<Tasks>, String)>;

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn unknown(id: &str) -> RpcError {
    RpcError::invalid_params(format!(
        "unknown task {id:?}: it never existed here or expired after its ttlMs; call the tool again"
    ))
    .with_data(json!({ "taskId": id }))
}

/// A row as rmcp's model of a task.
fn task_of(task: &McpTask) -> rmcp::model::Task {
    use rmcp::model::{Task, TaskStatus};
    let status: TaskStatus = serde_json::from_value(json!(task.status)).unwrap_or_default();
    let mut seed = Task::new(
        task.task_id.clone(),
        status,
        rfc3339(task.created_at),
        rfc3339(task.updated_at),
    );
    seed.status_message = task.status_message.clone();
    seed.ttl_ms = u64::try_from(task.ttl_ms).ok();
    seed.poll_interval_ms = Some(POLL_INTERVAL_MS);
    seed
}

/// The task fields every task answer has.
fn envelope(task: &McpTask) -> Map<String, Value> {
    match serde_json::to_value(task_of(task)) {
        Ok(Value::Object(fields)) => fields,
        _ => Map::new(),
    }
}

/// A stopped call as a task's stored outcome: a result (tool errors
/// included) completes it; a protocol error fails it.
pub fn outcome(
    stopped: Result<Result<Value, Stop>, rocket::tokio::task::JoinError>,
) -> Result<Value, RpcError> {
    match stopped {
        Ok(Ok(result)) => Ok(result),
        Ok(Err(Stop::Error(e))) => Err(e),
        Ok(Err(Stop::Input(_))) => Err(RpcError::internal(
            "the tool asked for input as it became a task; call it again",
        )),
        Err(e) => Err(RpcError::internal(format!("the task stopped: {e}"))),
    }
}

impl Tasks {
    /// Starts the heartbeat and expiry sweep; call from within the runtime.
    pub fn start(db: Db) -> Arc<Tasks> {
        let tasks = Arc::new(Tasks {
            db,
            owner: super::session::new_id(),
            running: AtomicUsize::new(0),
        });
        let beating = Arc::clone(&tasks);
        rocket::tokio::spawn(async move {
            let mut tick = interval(HEARTBEAT_EVERY);
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            for round in 0u64.. {
                tick.tick().await;
                let me = beating.owner.clone();
                if beating.running.load(Ordering::Acquire) > 0 {
                    let _ = beating.db.run(move |c| store::heartbeat(c, &me)).await;
                }
                if round % 30 == 0 {
                    let _ = beating.db.run(store::sweep).await;
                }
            }
        });
        tasks
    }

    pub fn has_room(&self) -> bool {
        self.running.load(Ordering::Acquire) < MAX_RUNNING
    }

    /// Records a task durably: `working`, or already ended with `ended`.
    /// Returns the `CreateTaskResult`.
    pub async fn create(
        &self,
        tool: &str,
        ended: Option<Result<Value, RpcError>>,
    ) -> Result<(String, Value), RpcError> {
        let id = super::session::new_id();
        let (tool, owner, task_id) = (tool.to_owned(), self.owner.clone(), id.clone());
        let task = self
            .db
            .run(move |c| {
                let (status, result, error) = match ended {
                    None => ("working", None, None),
                    Some(Ok(r)) => ("completed", Some(r), None),
                    Some(Err(e)) => ("failed", None, Some(e.to_json())),
                };
                store::create(
                    c,
                    &NewMcpTask {
                        task_id: &task_id,
                        tool_name: &tool,
                        status,
                        result,
                        error,
                        owner: &owner,
                        ttl_ms: TTL.as_millis() as i64,
                        expires_at: Utc::now() + TTL,
                    },
                )?;
                store::get(c, &task_id, STALE)
            })
            .await
            .map_err(db_failure)?
            .ok_or_else(|| RpcError::internal("the task was not stored"))?;
        let created = serde_json::to_value(rmcp::model::CreateTaskResult::new(task_of(&task)))
            .map_err(|e| RpcError::internal(format!("task not representable: {e}")))?;
        Ok((id, created))
    }

    /// `tasks/get`: the task, its result once completed, its error once
    /// failed, its questions while it waits for input.
    pub async fn get(&self, id: &str) -> Result<Value, RpcError> {
        let key = id.to_owned();
        let task = self
            .db
            .run(move |c| store::get(c, &key, STALE))
            .await
            .map_err(db_failure)?
            .ok_or_else(|| unknown(id))?;
        let mut out = envelope(&task);
        match task.status.as_str() {
            "completed" => {
                out.insert(
                    "result".into(),
                    task.result.unwrap_or_else(|| json!({ "content": [] })),
                );
            }
            "failed" => {
                out.insert(
                    "error".into(),
                    task.error
                        .unwrap_or_else(|| RpcError::internal("failed").to_json()),
                );
            }
            "input_required" => {
                out.insert(
                    "inputRequests".into(),
                    task.input_requests.unwrap_or_else(|| json!({})),
                );
            }
            _ => {}
        }
        Ok(Value::Object(out))
    }

    /// `tasks/update`: answers to the task's questions.
    pub async fn update(&self, id: &str, responses: Value) -> Result<Value, RpcError> {
        if !responses.is_object() {
            return Err(RpcError::invalid_params("inputResponses must be an object"));
        }
        let key = id.to_owned();
        let known = self
            .db
            .run(move |c| store::answer(c, &key, responses))
            .await
            .map_err(db_failure)?;
        if known {
            Ok(json!({}))
        } else {
            Err(unknown(id))
        }
    }

    /// `tasks/cancel`: an active task is cancelled at once; its replica
    /// stops the work. Cancelling an ended task changes nothing.
    pub async fn cancel(&self, id: &str) -> Result<Value, RpcError> {
        let key = id.to_owned();
        self.db
            .run(move |c| store::cancel(c, &key))
            .await
            .map_err(db_failure)?
            .ok_or_else(|| unknown(id))?;
        Ok(json!({}))
    }

    /// Runs a call that became a task to its end: stores the outcome, or
    /// stops the work when the task is cancelled (on any replica).
    pub fn supervise(
        self: &Arc<Self>,
        id: String,
        mut call: JoinHandle<Result<Value, Stop>>,
        watch: Arc<Watch>,
    ) {
        self.running.fetch_add(1, Ordering::AcqRel);
        let tasks = Arc::clone(self);
        rocket::tokio::spawn(async move {
            let mut tick = interval(WATCH_EVERY);
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                rocket::tokio::select! {
                    stopped = &mut call => {
                        let ended = outcome(stopped).map_err(|e| e.to_json());
                        let key = id.clone();
                        if let Err(e) = tasks.db.run(move |c| store::finish(c, &key, ended)).await {
                            log::warn!("task {id}: its outcome was not stored: {e}");
                        }
                        break;
                    }
                    _ = tick.tick() => {
                        let key = id.clone();
                        // A lost database leaves the work running; the next tick retries.
                        if let Ok(Some((true, _))) = tasks.db.run(move |c| store::watch(c, &key)).await {
                            call.abort();
                            // The statement under way, if any, and any the
                            // blocking work starts before it notices.
                            for _ in 0..20 {
                                if !tasks.db.cancel(&watch).await && watch.backend().is_none() {
                                    break;
                                }
                                sleep(WATCH_EVERY).await;
                            }
                            break;
                        }
                    }
                }
            }
            tasks.running.fetch_sub(1, Ordering::AcqRel);
        });
    }

    /// A running task's questions: it waits in `input_required` until
    /// `tasks/update` has answered every one (or it is cancelled).
    pub async fn ask(
        &self,
        id: &str,
        known: &Map<String, Value>,
        asks: Vec<Ask>,
    ) -> Result<Vec<Value>, ToolError> {
        let answered = |answers: &Map<String, Value>| -> Option<Vec<Value>> {
            asks.iter()
                .map(|a| answers.get(&a.key).filter(|v| a.accepts(v)).cloned())
                .collect()
        };
        if let Some(all) = answered(known) {
            return Ok(all);
        }
        let pending: Map<String, Value> = asks
            .iter()
            .filter(|a| !known.get(&a.key).is_some_and(|v| a.accepts(v)))
            .map(|a| {
                (
                    a.key.clone(),
                    json!({ "method": a.method, "params": a.params }),
                )
            })
            .collect();
        let key = id.to_owned();
        self.db
            .run(move |c| store::park(c, &key, Value::Object(pending)))
            .await?;
        let deadline = rocket::tokio::time::Instant::now() + TTL;
        while rocket::tokio::time::Instant::now() < deadline {
            sleep(WATCH_EVERY).await;
            let key = id.to_owned();
            let Some((stopped, responses)) = self.db.run(move |c| store::watch(c, &key)).await?
            else {
                break;
            };
            if stopped {
                break;
            }
            let mut answers = known.clone();
            if let Value::Object(r) = responses {
                answers.extend(r);
            }
            if let Some(all) = answered(&answers) {
                let key = id.to_owned();
                self.db.run(move |c| store::resume(c, &key)).await?;
                return Ok(all);
            }
        }
        Err(ToolError::invalid(
            "the task ended while it waited for input",
        ))
    }
}
