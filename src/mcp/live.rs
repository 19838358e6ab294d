//! Per-process session state that cannot be shared through the cache: open
//! GET streams, server-to-client requests awaiting their answer, running
//! calls (for cancellation) and resource subscriptions.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

use rocket::tokio::sync::{mpsc, oneshot};
use serde_json::Value;

use super::jsonrpc::{self, RequestId};

type Key = (String, String);
pub type Answer = Result<Value, Value>;

#[derive(Default)]
pub struct Live {
    streams: Mutex<HashMap<String, mpsc::Sender<Value>>>,
    pending: Mutex<HashMap<Key, oneshot::Sender<Answer>>>,
    running: Mutex<HashMap<Key, Arc<AtomicBool>>>,
    subscriptions: Mutex<HashMap<String, HashSet<String>>>,
    next_id: AtomicU64,
}

impl Live {
    /// Registers the session's GET stream, replacing an older one.
    pub fn open_stream(&self, session: &str) -> mpsc::Receiver<Value> {
        let (tx, rx) = mpsc::channel(256);
        self.streams.lock().insert(session.to_owned(), tx);
        rx
    }

    /// Sends on the session's GET stream, if it has one open here.
    pub fn push(&self, session: &str, message: Value) -> bool {
        let mut streams = self.streams.lock();
        match streams.get(session).map(|tx| tx.try_send(message)) {
            Some(Ok(())) => true,
            Some(Err(mpsc::error::TrySendError::Closed(_))) => {
                streams.remove(session);
                false
            }
            _ => false,
        }
    }

    pub fn next_request_id(&self) -> RequestId {
        RequestId::String(format!(
            "srv-{}",
            self.next_id.fetch_add(1, Ordering::Relaxed)
        ))
    }

    pub fn await_answer(&self, session: &str, id: &RequestId) -> oneshot::Receiver<Answer> {
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .insert((session.to_owned(), id.to_string()), tx);
        rx
    }

    pub fn forget_answer(&self, session: &str, id: &RequestId) {
        self.pending
            .lock()
            .remove(&(session.to_owned(), id.to_string()));
    }

    /// Routes a client's response to the request waiting for it; false when
    /// nothing here waits for that id.
    pub fn answer(&self, session: &str, id: &RequestId, answer: Answer) -> bool {
        match self
            .pending
            .lock()
            .remove(&(session.to_owned(), id.to_string()))
        {
            Some(tx) => tx.send(answer).is_ok(),
            None => false,
        }
    }

    pub fn start_call(&self, session: &str, id: &RequestId) -> Arc<AtomicBool> {
        let flag = Arc::new(AtomicBool::new(false));
        self.running
            .lock()
            .insert((session.to_owned(), id.to_string()), Arc::clone(&flag));
        flag
    }

    pub fn end_call(&self, session: &str, id: &RequestId) {
        self.running
            .lock()
            .remove(&(session.to_owned(), id.to_string()));
    }

    pub fn cancel(&self, session: &str, id: &RequestId) -> bool {
        match self
            .running
            .lock()
            .get(&(session.to_owned(), id.to_string()))
        {
            Some(flag) => {
                flag.store(true, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    pub fn subscribe(&self, session: &str, uri: &str) {
        self.subscriptions
            .lock()
            .entry(uri.to_owned())
            .or_default()
            .insert(session.to_owned());
    }

    pub fn unsubscribe(&self, session: &str, uri: &str) {
        if let Some(set) = self.subscriptions.lock().get_mut(uri) {
            set.remove(session);
        }
    }

    /// Tells every subscriber of `uri` on this replica that it changed.
    pub fn resource_updated(&self, uri: &str) {
        let sessions: Vec<String> = self
            .subscriptions
            .lock()
            .get(uri)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        for session in sessions {
            let note = jsonrpc::notification(
                "notifications/resources/updated",
                serde_json::json!({ "uri": uri }),
            );
            self.push(&session, note);
        }
    }

    /// Forgets everything of an ended session.
    pub fn end_session(&self, session: &str) {
        self.streams.lock().remove(session);
        self.pending.lock().retain(|(s, _), _| s != session);
        for flag in self
            .running
            .lock()
            .iter()
            .filter(|((s, _), _)| s == session)
            .map(|(_, f)| f)
        {
            flag.store(true, Ordering::Relaxed);
        }
        for set in self.subscriptions.lock().values_mut() {
            set.remove(session);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancellation_reaches_the_running_call_only() {
        let live = Live::default();
        let (a, b) = (RequestId::Number(1), RequestId::String("x".into()));
        let flag_a = live.start_call("s1", &a);
        let flag_b = live.start_call("s1", &b);
        assert!(live.cancel("s1", &a));
        assert!(!live.cancel("s2", &b), "another session cannot cancel it");
        assert!(flag_a.load(Ordering::Relaxed) && !flag_b.load(Ordering::Relaxed));
        live.end_call("s1", &a);
        assert!(!live.cancel("s1", &a), "finished calls are forgotten");
        live.end_session("s1");
        assert!(
            flag_b.load(Ordering::Relaxed),
            "ending the session cancels its calls"
        );
    }

    #[test]
    fn answers_route_to_the_waiting_request() {
        let live = Live::default();
        let id = live.next_request_id();
        let mut rx = live.await_answer("s", &id);
        assert!(!live.answer("other", &id, Ok(Value::Null)));
        assert!(live.answer("s", &id, Ok(serde_json::json!({ "ok": true }))));
        assert_eq!(rx.try_recv().unwrap().unwrap()["ok"], true);
    }
}
