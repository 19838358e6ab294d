//! The one Redis connection every request shares (multiplexed: concurrent
//! commands are pipelined on it, and no thread waits on Redis), with every
//! wait bounded, and that notices when the Redis behind it is a different
//! one.
//!
//! - Connecting (TCP, AUTH, SELECT) and every command's reply are bounded
//!   by `REDIS_TIMEOUT_MS`: a hung Redis (SIGSTOP) costs a request at most
//!   that.
//! - A failed command drops the connection; the next use connects anew.
//!   Only one task connects at a time; the others wait for it, and share
//!   its failure instead of each trying again.
//! - Each new connection reads the server's `run_id`. A different one means
//!   Redis restarted, perhaps from an older snapshot whose entries and
//!   versions predate writes made since: the epoch that every key embeds is
//!   renewed, so nothing cached before the restart can be served.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ErrorKind, RedisError, RedisResult};
use rocket::tokio::time::timeout;

/// Every cache key embeds this key's value; a fresh random value orphans
/// every entry at once.
pub const EPOCH_KEY: &str = "mcp:cache:epoch";

/// A random token: epochs and series versions are never counters, so a
/// flushed or evicted key can never come back as a value in use before.
pub fn token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Replaces the epoch: everything cached so far becomes unreachable.
pub async fn renew_epoch(conn: &mut MultiplexedConnection) -> RedisResult<()> {
    redis::cmd("SET")
        .arg(EPOCH_KEY)
        .arg(token())
        .query_async(conn)
        .await
}

pub struct Link {
    client: redis::Client,
    timeout: Duration,
    current: Mutex<Option<MultiplexedConnection>>,
    connecting: rocket::tokio::sync::Mutex<()>,
    /// Connect attempts so far.
    attempts: AtomicU64,
    /// The `run_id` of the Redis last connected to.
    run_id: Mutex<Option<String>>,
}

fn timed_out() -> RedisError {
    RedisError::from((ErrorKind::IoError, "timed out connecting to Redis"))
}

impl Link {
    pub fn new(client: redis::Client, timeout: Duration) -> Link {
        Link {
            client,
            timeout,
            current: Mutex::new(None),
            connecting: rocket::tokio::sync::Mutex::new(()),
            attempts: AtomicU64::new(0),
            run_id: Mutex::new(None),
        }
    }

    /// The shared connection, connecting first if there is none. Callers
    /// that arrive while a connect is under way wait for it (it is bounded);
    /// if it fails they fail with it rather than each trying again.
    pub async fn get(&self) -> RedisResult<MultiplexedConnection> {
        if let Some(conn) = self.current.lock().clone() {
            return Ok(conn);
        }
        let seen = self.attempts.load(Ordering::Acquire);
        let _connecting = self.connecting.lock().await;
        if let Some(conn) = self.current.lock().clone() {
            return Ok(conn);
        }
        if self.attempts.load(Ordering::Acquire) != seen {
            return Err(RedisError::from((
                ErrorKind::IoError,
                "could not connect to Redis",
            )));
        }
        self.attempts.fetch_add(1, Ordering::AcqRel);
        let conn = timeout(self.timeout * 2, self.connect())
            .await
            .map_err(|_| timed_out())??;
        *self.current.lock() = Some(conn.clone());
        Ok(conn)
    }

    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Forgets the connection after a failure; the next use reconnects.
    pub fn reset(&self) {
        *self.current.lock() = None;
    }

    async fn connect(&self) -> RedisResult<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(self.timeout)
            .set_response_timeout(self.timeout);
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut conn)
            .await?;
        let now = info
            .lines()
            .find_map(|l| l.strip_prefix("run_id:"))
            .map(|id| id.trim().to_owned());
        let seen = self.run_id.lock().clone();
        if seen != now {
            // First sight, or a restarted Redis: what it holds may be older
            // than the database (a snapshot), so start a new epoch.
            renew_epoch(&mut conn).await?;
            if seen.is_some() {
                log::warn!("Redis restarted (run_id changed): cache epoch renewed");
            }
            *self.run_id.lock() = now;
        }
        Ok(conn)
    }
}
