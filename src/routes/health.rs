//! `/health`: 200 when the database answers and the schema is current,
//! 503 otherwise. Redis being down is "degraded", still 200.

use std::sync::Arc;
use std::time::Duration;

use rocket::serde::json::{Json, Value, json};
use rocket::tokio::task::spawn_blocking;
use rocket::{State, get, http::Status};

use crate::cache::{Cache, CacheHealth};
use crate::db::{Db, DbError};
use crate::store::health::probe;

/// Kept short: orchestrators call this every few seconds.
const DB_WAIT: Duration = Duration::from_secs(2);

fn public_error(e: &DbError) -> &'static str {
    match e {
        DbError::Busy(_) => "no database connection was free in time",
        DbError::Connect(_) => "the database is not reachable",
        _ => "the database check failed (see the server log)",
    }
}

#[get("/health")]
pub async fn health(db: &State<Db>, cache: &State<Arc<Cache>>) -> (Status, Json<Value>) {
    let cache = Arc::clone(cache);
    let cache_check = spawn_blocking(move || cache.health());
    let database = match db.run_within(DB_WAIT, probe).await {
        Ok(h) => {
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
            // The cause (host, port, the driver's words) goes to the log;
            // a probe that anyone may call learns only what kind of failure.
            log::warn!("health: database check failed: {e}");
            json!({ "reachable": false, "error": public_error(&e) })
        }
    };
    let cache = cache_check.await.unwrap_or_else(|e| CacheHealth {
        backend: "unknown",
        reachable: false,
        error: Some(e.to_string()),
    });
    let db_ok = database["reachable"] == true && database["pending_count"] == 0;
    let (status, code) = match (db_ok, cache.reachable) {
        (false, _) => ("unhealthy", Status::ServiceUnavailable),
        (true, false) => ("degraded", Status::Ok),
        (true, true) => ("ok", Status::Ok),
    };
    let body = json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "database": database,
        "cache": {
            "backend": cache.backend,
            "reachable": cache.reachable,
            "state": if cache.reachable { "up" } else { "down" },
            "error": cache.error,
        },
    });
    (code, Json(body))
}
