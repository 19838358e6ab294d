//! Redis connections whose every wait is bounded, and that notice when the
//! Redis behind them is a different one.
//!
//! - Connecting (TCP, AUTH, SELECT) and every read and write are bounded by
//!   `REDIS_TIMEOUT_MS`: a hung Redis (SIGSTOP) costs a request at most that.
//! - No PING on checkout: a dead pooled connection fails on use, is dropped,
//!   and the caller backs off. (r2d2's PING ran before any timeout was set.)
//! - Each new connection reads the server's `run_id`. A different one means
//!   Redis restarted, perhaps from an older snapshot whose entries and
//!   versions predate writes made since: the epoch that every key embeds is
//!   renewed, so nothing cached before the restart can be served.

use std::sync::Arc;
use std::time::Duration;

use diesel::r2d2;
use parking_lot::Mutex;
use redis::{Connection, ConnectionLike, RedisError};

/// Every cache key embeds this key's value; a fresh random value orphans
/// every entry at once.
pub const EPOCH_KEY: &str = "mcp:cache:epoch";

pub struct Manager {
    client: redis::Client,
    timeout: Duration,
    /// The `run_id` of the Redis last connected to.
    run_id: Arc<Mutex<Option<String>>>,
}

impl Manager {
    pub fn new(client: redis::Client, timeout: Duration) -> Manager {
        Manager {
            client,
            timeout,
            run_id: Arc::default(),
        }
    }
}

/// A random token: epochs and series versions are never counters, so a
/// flushed or evicted key can never come back as a value in use before.
pub fn token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Replaces the epoch: everything cached so far becomes unreachable.
pub fn renew_epoch(conn: &mut Connection) -> redis::RedisResult<()> {
    redis::cmd("SET").arg(EPOCH_KEY).arg(token()).query(conn)
}

fn run_id(conn: &mut Connection) -> redis::RedisResult<Option<String>> {
    let info: String = redis::cmd("INFO").arg("server").query(conn)?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix("run_id:"))
        .map(|id| id.trim().to_owned()))
}

impl r2d2::ManageConnection for Manager {
    type Connection = Connection;
    type Error = RedisError;

    fn connect(&self) -> Result<Connection, RedisError> {
        let mut conn = self.client.get_connection_with_timeout(self.timeout)?;
        conn.set_read_timeout(Some(self.timeout))?;
        conn.set_write_timeout(Some(self.timeout))?;
        let now = run_id(&mut conn)?;
        let mut seen = self.run_id.lock();
        if *seen != now {
            // First sight, or a restarted Redis: what it holds may be older
            // than the database (a snapshot), so start a new epoch.
            renew_epoch(&mut conn)?;
            if seen.is_some() {
                log::warn!("Redis restarted (run_id changed): cache epoch renewed");
            }
            *seen = now;
        }
        Ok(conn)
    }

    fn is_valid(&self, _: &mut Connection) -> Result<(), RedisError> {
        Ok(())
    }

    fn has_broken(&self, conn: &mut Connection) -> bool {
        !conn.is_open()
    }
}
