//! What `/health` asks the database.

use std::time::Instant;

use diesel::prelude::*;

use crate::db::{DbError, migrations};

pub struct DbHealth {
    pub latency_ms: f64,
    pub schema_version: Option<String>,
    pub pending: Vec<migrations::MigrationInfo>,
}

/// A round trip, then the applied and pending migrations.
pub fn probe(conn: &mut PgConnection) -> Result<DbHealth, DbError> {
    let started = Instant::now();
    diesel::sql_query("SELECT 1").execute(conn)?;
    let latency_ms = started.elapsed().as_secs_f64() * 1e3;
    let schema_version = migrations::applied(conn)?.pop();
    let pending = migrations::pending(conn, &migrations::MIGRATIONS)?;
    Ok(DbHealth {
        latency_ms,
        schema_version,
        pending,
    })
}
