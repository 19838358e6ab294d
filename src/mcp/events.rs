//! Changes clients may be told about (a resource updated, a list changed),
//! fanned out to every replica through Redis pub/sub and, on each, to the
//! 2025 GET streams and the 2026 `subscriptions/listen` streams open there.
//! With the in-process cache, or while Redis is away, events stay on the
//! replica that raised them.

use std::sync::Arc;

use rocket::tokio::sync::broadcast;
use serde::{Deserialize, Serialize};

use crate::cache::Cache;
use crate::ingest::Notify;

const CHANNEL: &str = "mcp:events";
/// Events a slow listener may fall behind by before it skips some.
const BACKLOG: usize = 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// One resource (as replicas before the batched form send it).
    ResourceUpdated { uri: String },
    /// Many resources at once: one message for a write of many series.
    ResourcesUpdated { uris: Vec<String> },
    /// `tools`, `prompts` or `resources`.
    ListChanged { list: String },
}

pub struct Events {
    tx: broadcast::Sender<Event>,
    cache: Arc<Cache>,
}

impl Events {
    /// Subscribes to the other replicas' events (with Redis); call from
    /// within the runtime.
    pub fn start(cache: Arc<Cache>) -> Arc<Events> {
        let (tx, _) = broadcast::channel(BACKLOG);
        let relayed = tx.clone();
        cache.relay(CHANNEL, move |payload| {
            if let Ok(event) = serde_json::from_str::<Event>(&payload) {
                // No receiver is not an error: nobody listens here yet.
                let _ = relayed.send(event);
            }
        });
        Arc::new(Events { tx, cache })
    }

    /// Tells every replica (through Redis, which echoes it back here too),
    /// or only this one when Redis is not there.
    pub async fn publish(&self, event: Event) {
        let payload = serde_json::to_string(&event).unwrap_or_default();
        if self.cache.publish(CHANNEL, &payload).await.is_err() {
            let _ = self.tx.send(event);
        }
    }

    /// [`Events::publish`] from synchronous code: it is sent from a task.
    pub fn raise(self: &Arc<Self>, event: Event) {
        let events = Arc::clone(self);
        rocket::tokio::spawn(async move { events.publish(event).await });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}

impl Event {
    /// The resources an event says changed.
    pub fn updated(&self) -> &[String] {
        match self {
            Event::ResourceUpdated { uri } => std::slice::from_ref(uri),
            Event::ResourcesUpdated { uris } => uris,
            Event::ListChanged { .. } => &[],
        }
    }
}

impl Notify for Arc<Events> {
    fn resources_updated(&self, uris: Vec<String>) {
        self.raise(Event::ResourcesUpdated { uris });
    }
}
