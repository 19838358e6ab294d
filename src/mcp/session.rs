//! MCP sessions. The state a session needs to be valid lives behind the
//! `Cache`, so with Redis any replica can validate any session; a local copy
//! keeps this replica's sessions working while Redis is down.
//!
//! What cannot leave the process (an open GET stream, a pending
//! server-to-client request, a running call's cancellation flag) is in
//! [`super::live::Live`]; a load balancer must keep a session on one replica
//! for those (sticky sessions).

use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;
use rocket::tokio::task::spawn_blocking;
use serde::{Deserialize, Serialize};

use crate::cache::{BackendKind, Cache};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Session {
    pub id: String,
    pub protocol_version: String,
    pub client_name: Option<String>,
    pub client_version: Option<String>,
    /// Minimum level of `notifications/message` (RFC 5424 name).
    pub log_level: Option<String>,
    pub initialized: bool,
}

pub struct Sessions {
    cache: Arc<Cache>,
    local: moka::sync::Cache<String, Session>,
    ttl: Duration,
}

fn key(id: &str) -> String {
    format!("mcp:session:{id}")
}

/// What an ended session's key holds until it expires, so a replica that
/// still has the session locally does not bring it back.
const ENDED: &str = "ended";

/// 256 random bits, hex: unguessable and visible ASCII as the spec requires.
pub fn new_id() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Sessions {
    pub fn new(cache: Arc<Cache>, ttl: Duration) -> Sessions {
        // Idle expiry: abandoned sessions disappear after `ttl` unused.
        let local = moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_idle(ttl)
            .build();
        Sessions { cache, local, ttl }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Stores (creates or updates) a session and restarts its idle clock.
    pub async fn put(&self, session: Session) {
        self.local.insert(session.id.clone(), session.clone());
        if self.cache.backend() == BackendKind::Memory {
            return; // the local copy is the store
        }
        let (cache, ttl) = (Arc::clone(&self.cache), self.ttl);
        let Ok(text) = serde_json::to_string(&session) else {
            return;
        };
        let _ = spawn_blocking(move || cache.set(&key(&session.id), &text, ttl)).await;
    }

    /// The session if it exists and has not expired; touching it restarts its
    /// idle clock.
    pub async fn get(&self, id: &str) -> Option<Session> {
        if self.cache.backend() == BackendKind::Memory {
            return self.local.get(id);
        }
        let (cache, k) = (Arc::clone(&self.cache), key(id));
        match spawn_blocking(move || cache.fetch(&k)).await {
            Ok(Ok(Some(text))) if text == ENDED => {
                self.local.invalidate(id);
                None
            }
            Ok(Ok(Some(text))) => {
                let session = serde_json::from_str::<Session>(&text).ok()?;
                self.put(session.clone()).await;
                Some(session)
            }
            // Redis lost it (restarted empty, flushed): this replica's own
            // copy is still good, and is written back for the others.
            Ok(Ok(None)) => {
                let session = self.local.get(id)?;
                self.put(session.clone()).await;
                Some(session)
            }
            // Redis down: this replica's own copy still counts.
            _ => self.local.get(id),
        }
    }

    pub async fn remove(&self, id: &str) -> bool {
        let existed = self.get(id).await.is_some();
        self.local.invalidate(id);
        if self.cache.backend() != BackendKind::Memory {
            let (cache, k, ttl) = (Arc::clone(&self.cache), key(id), self.ttl);
            let _ = spawn_blocking(move || cache.set(&k, ENDED, ttl)).await;
        }
        existed
    }
}
