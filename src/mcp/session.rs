//! MCP sessions. The state a session needs to be valid lives behind the
//! `Cache`, so with Redis any replica can validate any session; a local copy
//! keeps this replica's sessions working while Redis is down.
//!
//! What cannot leave the process (an open GET stream, a pending
//! server-to-client request, a running call's cancellation flag) is in
//! [`super::live::Live`]; a load balancer must keep a session on one replica
//! for those (sticky sessions).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::RngCore;
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
    /// Whose token opened it: a session id is not a credential, so only
    /// the same subject may use it.
    #[serde(default)]
    pub subject: Option<String>,
}

pub struct Sessions {
    cache: Arc<Cache>,
    /// This replica's copies, and when each was last confirmed with Redis.
    local: moka::sync::Cache<String, (Arc<Session>, Instant)>,
    ttl: Duration,
}

fn key(id: &str) -> String {
    format!("mcp:session:{id}")
}

/// What an ended session's key holds until it expires, so a replica that
/// still has the session locally does not bring it back.
const ENDED: &str = "ended";

/// How long a local copy is trusted without asking Redis. Asking confirms
/// the session was not ended on another replica and restarts its TTL there,
/// so a busy session costs Redis one round trip per second, not one per
/// request, and an end elsewhere is seen within this long.
const RECHECK: Duration = Duration::from_secs(1);

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

    fn shared(&self) -> bool {
        self.cache.backend() != BackendKind::Memory
    }

    /// Stores (creates or updates) a session and restarts its idle clock.
    pub async fn put(&self, session: Arc<Session>) {
        self.local
            .insert(session.id.clone(), (Arc::clone(&session), Instant::now()));
        if !self.shared() {
            return; // the local copy is the store
        }
        if let Ok(text) = serde_json::to_string(&*session) {
            self.cache.set(&key(&session.id), &text, self.ttl).await;
        }
    }

    /// The session if it exists and has not expired; using it restarts its
    /// idle clock.
    pub async fn get(&self, id: &str) -> Option<Arc<Session>> {
        let local = self.local.get(id);
        if !self.shared() {
            return local.map(|(s, _)| s);
        }
        if let Some((session, checked)) = &local
            && checked.elapsed() < RECHECK
        {
            return Some(Arc::clone(session));
        }
        // One round trip: read the shared copy and restart its TTL.
        match self.cache.fetch_touch(&key(id), self.ttl).await {
            Ok(Some(text)) if text == ENDED => {
                self.local.invalidate(id);
                None
            }
            Ok(Some(text)) => {
                let session = Arc::new(serde_json::from_str::<Session>(&text).ok()?);
                self.local
                    .insert(id.to_owned(), (Arc::clone(&session), Instant::now()));
                Some(session)
            }
            // Redis lost it (restarted empty, flushed): this replica's own
            // copy is still good, and is written back for the others.
            Ok(None) => {
                let (session, _) = local?;
                self.put(Arc::clone(&session)).await;
                Some(session)
            }
            // Redis down: this replica's own copy still counts.
            Err(_) => local.map(|(s, _)| s),
        }
    }

    pub async fn remove(&self, id: &str) -> bool {
        let existed = self.get(id).await.is_some();
        self.local.invalidate(id);
        if self.shared() {
            self.cache.set(&key(id), ENDED, self.ttl).await;
        }
        existed
    }
}
