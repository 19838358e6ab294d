//! What `/health` asks the database.

use std::time::Instant;

use diesel::prelude::*;

use crate::db::{DbError, migrations};

pub struct DbHealth {
    pub latency_ms: f64,
    pub migrations: migrations::State,
}

/// A round trip, then the applied and pending migrations.
pub fn probe(conn: &mut PgConnection) -> Result<DbHealth, DbError> {
    let started = Instant::now();
    diesel::sql_query("SELECT 1").execute(conn)?;
    let latency_ms = started.elapsed().as_secs_f64() * 1e3;
    Ok(DbHealth {
        latency_ms,
        migrations: migrations::state(conn, &migrations::MIGRATIONS)?,
    })
}

/// Holds the connection in one statement for `seconds` (`pg_sleep`): a
/// stand-in for a long query, used by the conformance fixtures and tests.
pub fn sleep(conn: &mut PgConnection, seconds: f64) -> Result<(), DbError> {
    diesel::sql_query("SELECT pg_sleep($1)")
        .bind::<diesel::sql_types::Double, _>(seconds)
        .execute(conn)?;
    Ok(())
}
