//! Checksums of applied migrations, as sqlx and Flyway keep them: recorded
//! when a migration is applied (or, for one applied by the Diesel CLI, the
//! first time this binary sees it), verified at start-up and by `status`.
//!
//! They live beside Diesel's bookkeeping, in a table keyed by version with
//! `ON DELETE CASCADE`, so any revert (this binary's or the Diesel CLI's)
//! clears the record with the row it belongs to.

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;

use crate::db::DbError;

include!(concat!(env!("OUT_DIR"), "/checksums.rs"));

/// The bookkeeping table; `diesel.toml` keeps it out of `schema.rs`.
pub const TABLE: &str = "__diesel_schema_migrations_checksums";

/// This binary's checksum of `version`, if it carries that migration.
pub fn embedded(version: &str) -> Option<&'static str> {
    CHECKSUMS
        .iter()
        .find(|(v, ..)| *v == version)
        .map(|(.., sum)| *sum)
}

/// The directory of the migration `version` in this binary.
fn directory(version: &str) -> &'static str {
    CHECKSUMS
        .iter()
        .find(|(v, ..)| *v == version)
        .map_or("", |(_, dir, _)| *dir)
}

/// An applied migration whose file changed after it was applied.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Edited {
    pub version: String,
    /// Its directory, e.g. `2026-11-25-000001_create_tables`.
    pub name: &'static str,
    pub recorded: String,
    pub now: String,
}

fn ensure_table(conn: &mut PgConnection) -> Result<(), DbError> {
    // Diesel's own table first (its harness creates it): the foreign key
    // points at it.
    super::applied(conn)?;
    conn.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {TABLE} (
             version VARCHAR(50) PRIMARY KEY
                     REFERENCES __diesel_schema_migrations (version) ON DELETE CASCADE,
             checksum TEXT NOT NULL,
             recorded_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    ))?;
    Ok(())
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    version: String,
    #[diesel(sql_type = Text)]
    checksum: String,
}

/// What is recorded; nothing before the first record (reads create nothing,
/// so `/health` and `status` never run DDL).
fn recorded(conn: &mut PgConnection) -> Result<Vec<Row>, DbError> {
    #[derive(QueryableByName)]
    struct Exists {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        exists: bool,
    }
    let table: Exists = diesel::sql_query(format!(
        "SELECT to_regclass('{TABLE}') IS NOT NULL AS exists"
    ))
    .get_result(conn)?;
    if !table.exists {
        return Ok(Vec::new());
    }
    Ok(diesel::sql_query(format!("SELECT version::text, checksum FROM {TABLE}")).load(conn)?)
}

/// Applied migrations this binary carries whose recorded checksum differs.
pub fn edited(conn: &mut PgConnection) -> Result<Vec<Edited>, DbError> {
    Ok(recorded(conn)?
        .into_iter()
        .filter_map(|r| {
            let now = embedded(&r.version)?;
            (now != r.checksum).then(|| Edited {
                name: directory(&r.version),
                version: r.version,
                recorded: r.checksum,
                now: now.to_owned(),
            })
        })
        .collect())
}

/// Records this binary's checksum for each of `versions` that is applied
/// and has none yet (trust on first use); returns how many were recorded.
pub fn record_missing(conn: &mut PgConnection, versions: &[String]) -> Result<usize, DbError> {
    ensure_table(conn)?;
    let mut n = 0;
    for version in versions {
        if let Some(sum) = embedded(version) {
            n += diesel::sql_query(format!(
                "INSERT INTO {TABLE} (version, checksum)
                 SELECT version, $2 FROM __diesel_schema_migrations WHERE version = $1
                 ON CONFLICT (version) DO NOTHING"
            ))
            .bind::<Text, _>(version)
            .bind::<Text, _>(sum)
            .execute(conn)?;
        }
    }
    Ok(n)
}

/// Replaces the record of `version` with this binary's checksum (the
/// deliberate "yes, this edit is intended"); false when it carries no such
/// migration.
pub fn rerecord(conn: &mut PgConnection, version: &str) -> Result<bool, DbError> {
    let Some(sum) = embedded(version) else {
        return Ok(false);
    };
    ensure_table(conn)?;
    diesel::sql_query(format!(
        "INSERT INTO {TABLE} (version, checksum)
         SELECT version, $2 FROM __diesel_schema_migrations WHERE version = $1
         ON CONFLICT (version) DO UPDATE SET checksum = EXCLUDED.checksum, recorded_at = now()"
    ))
    .bind::<Text, _>(version)
    .bind::<Text, _>(sum)
    .execute(conn)
    .map(|n| n == 1)
    .map_err(Into::into)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_embedded_migration_has_a_checksum() {
        let on_disk = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
            .unwrap()
            .flatten()
            .filter(|e| e.path().join("up.sql").is_file())
            .count();
        assert_eq!(super::CHECKSUMS.len(), on_disk);
        assert!(super::embedded("20261125000001").is_some_and(|s| s.len() == 64));
        assert!(super::embedded("29990101000000").is_none());
    }
}
