//! `mcp_request_logs` without a database round trip on the request path:
//! requests hand their row to a bounded channel, and one background task
//! inserts them in batches. A full channel drops the row and counts it;
//! shutdown flushes what is queued.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use log::{error, warn};
use rocket::tokio::sync::{mpsc, oneshot};
use rocket::tokio::time::timeout;

use crate::db::Db;
use crate::models::NewMcpRequestLog;

const QUEUE: usize = 10_000;
const BATCH: usize = 500;
const FLUSH_EVERY: Duration = Duration::from_millis(500);
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
            let n = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                warn!("request log queue full: {n} rows dropped so far");
            }
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

/// Size-caps `params` for storage.
pub fn capped(params: &serde_json::Value) -> serde_json::Value {
    let text = params.to_string();
    if text.len() <= PARAMS_CAP {
        return params.clone();
    }
    let mut cut = PARAMS_CAP / 2;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    serde_json::json!({ "truncated": true, "bytes": text.len(), "preview": &text[..cut] })
}

async fn writer(db: Db, mut rx: mpsc::Receiver<Msg>, counters: Arc<Counters>) {
    let mut batch: Vec<NewMcpRequestLog> = Vec::with_capacity(BATCH);
    loop {
        let msg = timeout(FLUSH_EVERY, rx.recv()).await;
        let quiet = msg.is_err();
        let mut flushed = None;
        let closed = match msg {
            Ok(Some(Msg::Row(row))) => {
                batch.push(*row);
                false
            }
            Ok(Some(Msg::Flush(done))) => {
                flushed = Some(done);
                false
            }
            Ok(None) => true,
            Err(_) => false, // quiet period: write what we have
        };
        let due = batch.len() >= BATCH || flushed.is_some() || closed || quiet;
        if due && !batch.is_empty() {
            write(&db, std::mem::take(&mut batch), &counters).await;
        }
        if let Some(done) = flushed {
            let _ = done.send(());
        }
        if closed {
            return;
        }
    }
}

async fn write(db: &Db, rows: Vec<NewMcpRequestLog>, counters: &Counters) {
    let n = rows.len() as u64;
    let result = db
        .run(move |conn| crate::store::request_log::insert(conn, &rows))
        .await;
    match result {
        Ok(_) => counters.written.fetch_add(n, Ordering::Relaxed),
        Err(e) => {
            error!("could not write {n} request log rows: {e}");
            counters.failed.fetch_add(n, Ordering::Relaxed)
        }
    };
}
