//! `mcp_request_logs` without a database round trip on the request path:
//! requests hand their row to a bounded channel, and one background task
//! inserts them in batches. When a batch cannot be written at all (the pool
//! busy, the database down or restarting) its rows stay queued and are
//! tried again with back-off; only what the queue's bound forces out is
//! dropped, and counted. Shutdown flushes what is queued.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use log::{error, warn};
use rocket::tokio::sync::{mpsc, oneshot};
use rocket::tokio::time::timeout;

use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::jsonrpc::RequestId;
use crate::db::{Db, DbError};
use crate::models::NewMcpRequestLog;

const QUEUE: usize = 10_000;
/// Rows kept for writing while the database cannot take them; past it the
/// oldest go.
const PENDING: usize = 50_000;
const BATCH: usize = 500;
const FLUSH_EVERY: Duration = Duration::from_millis(500);
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Params larger than this are stored as a truncated preview.
pub const PARAMS_CAP: usize = 4096;

enum Msg {
    Row(Box<NewMcpRequestLog>),
    Flush(oneshot::Sender<()>),
}

#[derive(Default)]
pub struct Counters {
    pub written: AtomicU64,
    pub dropped: AtomicU64,
    pub failed: AtomicU64,
}

impl crate::metrics::LogCounts for Counters {
    fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }
    fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
    fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}

pub struct RequestLog {
    tx: mpsc::Sender<Msg>,
    pub counters: Arc<Counters>,
}

impl RequestLog {
    /// Starts the writer task; call from within the runtime.
    pub fn start(db: Db) -> RequestLog {
        let (tx, rx) = mpsc::channel(QUEUE);
        let counters = Arc::new(Counters::default());
        rocket::tokio::spawn(writer(db, rx, Arc::clone(&counters)));
        RequestLog { tx, counters }
    }

    /// Never waits: a full queue drops the row.
    pub fn record(&self, row: NewMcpRequestLog) {
        if self.tx.try_send(Msg::Row(Box::new(row))).is_err() {
            drop_rows(&self.counters, 1, "the queue was full");
        }
    }

    /// Waits (bounded) until everything queued before this call is written.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = timeout(Duration::from_secs(10), wait).await;
        }
    }
}

/// Longest stored text of a name (method, tool, client) or a session id.
const NAME_CAP: usize = 200;

/// What PostgreSQL can store, and no more than we mean to keep: NUL (which
/// neither `text` nor `jsonb` accepts) becomes U+FFFD, and names are cut.
fn storable(mut row: NewMcpRequestLog) -> NewMcpRequestLog {
    let text = |s: &str, cap: usize| -> String {
        s.chars()
            .take(cap)
            .map(|c| if c == '\0' { '\u{FFFD}' } else { c })
            .collect()
    };
    let opt = |s: Option<String>, cap: usize| s.map(|s| text(&s, cap));
    row.method = text(&row.method, NAME_CAP);
    row.tool_name = opt(row.tool_name, NAME_CAP);
    row.session_id = opt(row.session_id, NAME_CAP);
    row.request_id = opt(row.request_id, NAME_CAP);
    row.client_name = opt(row.client_name, NAME_CAP);
    row.auth_subject = opt(row.auth_subject, NAME_CAP);
    row.auth_client_id = opt(row.auth_client_id, NAME_CAP);
    row.error_message = opt(row.error_message, 1000);
    row.params = row.params.map(without_nul);
    row
}

fn without_nul(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    let clean = |s: String| {
        if s.contains('\0') {
            s.replace('\0', "\u{FFFD}")
        } else {
            s
        }
    };
    match value {
        Value::String(s) => Value::String(clean(s)),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nul).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (clean(k), without_nul(v)))
                .collect(),
        ),
        other => other,
    }
}

/// Size-caps `params` for storage: small ones are kept whole, larger ones
/// as a preview of their text (no pass over the rest). `body_bytes` is the
/// size of the request the params came in.
pub fn capped(params: &RawValue, body_bytes: usize) -> Value {
    let text = params.get();
    if text.len() <= PARAMS_CAP {
        return serde_json::from_str(text).unwrap_or(Value::Null);
    }
    let mut end = PARAMS_CAP / 2;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    json!({ "truncated": true, "body_bytes": body_bytes, "preview": &text[..end] })
}

/// What the request log keeps of a request's params.
pub struct Logged {
    pub tool_name: Option<String>,
    pub params: Option<Value>,
}

impl Logged {
    /// A request's: the tool name only for `tools/call`, the params capped.
    pub fn of(
        method: &str,
        name: Option<String>,
        params: Option<&RawValue>,
        body_bytes: usize,
    ) -> Logged {
        Logged {
            tool_name: name.filter(|_| method == "tools/call"),
            params: params.map(|p| capped(p, body_bytes)),
        }
    }
}

/// One request, as the audit sees it.
pub struct Entry<'a> {
    /// 2025 lane only.
    pub session: Option<String>,
    pub client_name: Option<String>,
    pub id: &'a RequestId,
    pub method: &'a str,
    pub logged: Logged,
    pub started: std::time::Instant,
    /// Who called: the token's `sub` and `client_id` are logged, never the token.
    pub grant: &'a crate::auth::Grant,
}

/// Counts rows the bound forces out, warning at powers of two.
fn drop_rows(counters: &Counters, n: u64, why: &str) {
    let before = counters.dropped.fetch_add(n, Ordering::Relaxed);
    let after = before + n;
    if (before + 1..=after).any(u64::is_power_of_two) {
        warn!("request log: {after} rows dropped so far ({why})");
    }
}

async fn writer(db: Db, mut rx: mpsc::Receiver<Msg>, counters: Arc<Counters>) {
    let mut pending: VecDeque<NewMcpRequestLog> = VecDeque::with_capacity(BATCH);
    // After a failed write: when to try again, and the wait after that.
    let mut retry: Option<(Instant, Duration)> = None;
    loop {
        let wait = retry.map_or(FLUSH_EVERY, |(at, _)| {
            at.saturating_duration_since(Instant::now())
                .min(FLUSH_EVERY)
        });
        let msg = timeout(wait, rx.recv()).await;
        let quiet = msg.is_err();
        let mut flushed = None;
        let closed = match msg {
            Ok(Some(Msg::Row(row))) => {
                if pending.len() >= PENDING {
                    pending.pop_front();
                    drop_rows(&counters, 1, "the database could not take them in time");
                }
                // Made storable here, off the request path.
                pending.push_back(storable(*row));
                false
            }
            Ok(Some(Msg::Flush(done))) => {
                flushed = Some(done);
                false
            }
            Ok(None) => true,
            Err(_) => false, // quiet period: write what we have
        };
        let due = pending.len() >= BATCH || flushed.is_some() || closed || quiet;
        // A flush or the end tries at once; otherwise the back-off holds.
        let ready = retry.is_none_or(|(at, _)| Instant::now() >= at) || flushed.is_some() || closed;
        if due && ready {
            while !pending.is_empty() {
                let take = pending.len().min(BATCH);
                let batch: Vec<NewMcpRequestLog> = pending.drain(..take).collect();
                match write(&db, batch, &counters).await {
                    Ok(()) => retry = None,
                    Err(back) => {
                        let left = pending.len() + back.len();
                        for row in back.into_iter().rev() {
                            pending.push_front(row);
                        }
                        let next = retry.map_or(RETRY_FIRST, |(_, d)| (d * 2).min(RETRY_MAX));
                        if retry.is_none() {
                            warn!(
                                "request log: the database cannot take rows now; {left} kept, retrying"
                            );
                        }
                        retry = Some((Instant::now() + next, next));
                        break;
                    }
                }
            }
        }
        if let Some(done) = flushed {
            let _ = done.send(());
        }
        if closed {
            if !pending.is_empty() {
                drop_rows(
                    &counters,
                    pending.len() as u64,
                    "the server stopped with the database away",
                );
            }
            return;
        }
    }
}

/// One batch insert; if PostgreSQL refuses it, row by row, so one bad row
/// loses only itself. The rows come back when nothing could be tried (no
/// connection, or it broke), to be written later.
async fn write(
    db: &Db,
    rows: Vec<NewMcpRequestLog>,
    counters: &Counters,
) -> Result<(), Vec<NewMcpRequestLog>> {
    use diesel::result::{DatabaseErrorKind, Error};
    let n = rows.len();
    let rows = Arc::new(rows);
    let shared = Arc::clone(&rows);
    let result = db
        .run(move |conn| {
            match crate::store::request_log::insert(conn, &shared) {
                Ok(_) => return Ok((n, Vec::new())),
                // The connection went: the batch is tried again later.
                Err(
                    e @ DbError::Query(Error::DatabaseError(
                        DatabaseErrorKind::ClosedConnection
                        | DatabaseErrorKind::UnableToSendCommand,
                        _,
                    )),
                ) => return Err(e),
                Err(_) => {}
            }
            let mut written = 0;
            let mut errors = Vec::new();
            for row in shared.iter() {
                match crate::store::request_log::insert(conn, std::slice::from_ref(row)) {
                    Ok(_) => written += 1,
                    Err(e) => errors.push(e.to_string()),
                }
            }
            Ok((written, errors))
        })
        .await;
    match result {
        Ok((written, errors)) => {
            counters
                .written
                .fetch_add(written as u64, Ordering::Relaxed);
            if let Some(first) = errors.first() {
                counters
                    .failed
                    .fetch_add(errors.len() as u64, Ordering::Relaxed);
                error!(
                    "{} of {n} request log rows refused by the database: {first}",
                    errors.len()
                );
            }
            Ok(())
        }
        Err(e) => {
            log::debug!("request log: {n} rows not written yet: {e}");
            Err(Arc::try_unwrap(rows).unwrap_or_else(|shared| shared.as_ref().clone()))
        }
    }
}
#[cfg(test)]
mod tests {
    use super::{PARAMS_CAP, capped};
    use serde_json::json;
    use serde_json::value::RawValue;

    fn raw(v: &serde_json::Value) -> Box<RawValue> {
        RawValue::from_string(v.to_string()).unwrap()
    }

    #[test]
    fn params_past_the_cap_keep_a_preview_only() {
        let small = json!({ "name": "list_series" });
        assert_eq!(capped(&raw(&small), 100), small);
        let big = json!({ "arguments": { "points": vec!["é"; 100_000] } });
        let body = big.to_string().len() + 50;
        let kept = capped(&raw(&big), body);
        assert_eq!(kept["truncated"], true);
        assert_eq!(kept["body_bytes"], body);
        let preview = kept["preview"].as_str().unwrap();
        assert!(preview.len() <= PARAMS_CAP / 2 && big.to_string().starts_with(preview));
        // A large body whose params are small keeps them whole.
        assert_eq!(capped(&raw(&small), 10 * PARAMS_CAP), small);
    }
}
