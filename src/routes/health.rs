//! `/health` (readiness): 200 when the database answers and the schema is
//! current, 503 otherwise; Redis being down is "degraded", still 200.
//! `/live` (liveness): 200 whenever the process serves HTTP; it touches
//! nothing, so an orchestrator never restarts the server for a database
//! outage.
//!
//! Readiness is a snapshot refreshed in the background every second, so a
//! probe costs the same whatever the probe rate, and a failure shows within
//! about a second. A request that finds the snapshot overdue (the refresher
//! stalled) refreshes it itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use rocket::http::{ContentType, Status};
use rocket::serde::json::{Value, json};
use rocket::tokio::sync::Mutex;
use rocket::{State, get};

use crate::cache::Cache;
use crate::db::{Db, DbError};
use crate::store::health::probe;

/// Kept short: a hung database must not hold the snapshot back for long.
pub const DB_WAIT: Duration = Duration::from_secs(2);
/// How often the background refresher probes.
pub const EVERY: Duration = Duration::from_secs(1);
/// Older than this, a request refreshes the snapshot before answering.
const MAX_AGE: Duration = Duration::from_secs(2);

#[derive(Clone)]
struct Snapshot {
    status: Status,
    body: Arc<str>,
    taken: Instant,
}

/// The readiness snapshot, in managed state.
pub struct Readiness {
    /// Its own connection ([`crate::db::health_pool`]), not the server's pool.
    db: Db,
    cache: Arc<Cache>,
    current: RwLock<Option<Snapshot>>,
    /// One probe at a time; others wait for its result. Holds when the
    /// database stopped answering, so an outage logs its start and its end,
    /// not every probe.
    probing: Mutex<Option<Instant>>,
}

impl Readiness {
    /// `db` is the probes' own pool, from [`crate::db::health_pool`] with
    /// [`DB_WAIT`].
    pub fn new(db: Db, cache: Arc<Cache>) -> Readiness {
        Readiness {
            db,
            cache,
            current: RwLock::new(None),
            probing: Mutex::new(None),
        }
    }

    fn fresh(&self) -> Option<Snapshot> {
        self.current
            .read()
            .as_ref()
            .filter(|s| s.taken.elapsed() <= MAX_AGE)
            .cloned()
    }

    async fn get(&self) -> Snapshot {
        if let Some(s) = self.fresh() {
            return s;
        }
        let mut down = self.probing.lock().await;
        match self.fresh() {
            Some(s) => s, // taken while this request waited
            None => self.take(&mut down).await,
        }
    }

    /// Probes now and stores the result (the background refresher's step).
    pub async fn refresh(&self) {
        let mut down = self.probing.lock().await;
        self.take(&mut down).await;
    }

    async fn take(&self, down: &mut Option<Instant>) -> Snapshot {
        let (status, body) = check(&self.db, &self.cache, down).await;
        let snapshot = Snapshot {
            status,
            body: body.to_string().into(),
            taken: Instant::now(),
        };
        *self.current.write() = Some(snapshot.clone());
        snapshot
    }
}

fn public_error(e: &DbError) -> &'static str {
    match e {
        DbError::Busy(_) => "no database connection was free in time",
        DbError::Connect(_) => "the database is not reachable",
        _ => "the database check failed (see the server log)",
    }
}

/// Asks the database and the cache, both at once. `down` is when the
/// database stopped answering, if it has.
async fn check(db: &Db, cache: &Arc<Cache>, down: &mut Option<Instant>) -> (Status, Value) {
    let (database, cache) = rocket::tokio::join!(db.run_within(DB_WAIT, probe), cache.health());
    let database = match database {
        Ok(h) => {
            if let Some(since) = down.take() {
                log::warn!(
                    "health: the database answers again after {:.0?}",
                    since.elapsed()
                );
            }
            let m = h.migrations;
            json!({
                "reachable": true,
                "latency_ms": (h.latency_ms * 1000.0).round() / 1000.0,
                "schema_version": m.applied.last(),
                "pending_count": m.pending.len(),
                "pending_migrations": m.pending,
                // Applied by a newer binary (a rolling deploy): served as is.
                "ahead": m.ahead,
                "edited": m.edited.iter().map(|e| &e.version).collect::<Vec<_>>(),
                "up_to_date": m.pending.is_empty() && m.ahead.is_empty(),
            })
        }
        Err(e) => {
            // The cause (host, port, the driver's words) goes to the log,
            // once an outage; a probe that anyone may call learns only what
            // kind of failure.
            if down.is_none() {
                log::error!("health: the database does not answer: {e}");
                *down = Some(Instant::now());
            }
            json!({ "reachable": false, "error": public_error(&e) })
        }
    };
    let db_ok = database["reachable"] == true && database["pending_count"] == 0;
    let (status, code) = match (db_ok, cache.reachable) {
        (false, _) => ("unhealthy", Status::ServiceUnavailable),
        (true, false) => ("degraded", Status::Ok),
        (true, true) => ("ok", Status::Ok),
    };
    let body = json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "checked_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "database": database,
        "cache": {
            "backend": cache.backend,
            "reachable": cache.reachable,
            "state": if cache.reachable { "up" } else { "down" },
            "error": cache.error,
        },
    });
    (code, body)
}

#[get("/health")]
pub async fn health(readiness: &State<Arc<Readiness>>) -> (Status, (ContentType, Arc<str>)) {
    let s = readiness.get().await;
    (s.status, (ContentType::JSON, s.body))
}

#[get("/live")]
pub fn live() -> (ContentType, &'static str) {
    (ContentType::JSON, r#"{"status":"alive"}"#)
}
