//! What a revert would drop, found by running the down migrations inside a
//! transaction that is always rolled back (PostgreSQL's DDL is
//! transactional): the catalog before and after each step, and the rows the
//! dropped tables and columns hold. Exact, whatever the SQL says; it takes
//! the same locks the revert would, for as long as the down SQL runs.

use diesel::migration::{Migration, MigrationSource};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel::sql_types::{BigInt, Text};
use diesel_migrations::MigrationHarness;
use std::collections::BTreeSet;

use super::{MigrationInfo, sorted};
use crate::db::DbError;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Dropped {
    pub table: String,
    /// `None`: the whole table.
    pub column: Option<String>,
    /// Rows of the table, or rows with a value in the column.
    pub rows: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Step {
    pub migration: MigrationInfo,
    pub drops: Vec<Dropped>,
}

/// Public tables and their columns, bookkeeping left out.
fn catalog(conn: &mut PgConnection) -> Result<Vec<(String, String)>, DieselError> {
    #[derive(QueryableByName)]
    struct Col {
        #[diesel(sql_type = Text)]
        table_name: String,
        #[diesel(sql_type = Text)]
        column_name: String,
    }
    let cols: Vec<Col> = diesel::sql_query(
        "SELECT c.table_name::text, c.column_name::text FROM information_schema.columns c
           JOIN information_schema.tables t USING (table_schema, table_name)
          WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
            AND c.table_name NOT LIKE '\\_\\_diesel%'
          ORDER BY 1, 2",
    )
    .load(conn)?;
    Ok(cols
        .into_iter()
        .map(|c| (c.table_name, c.column_name))
        .collect())
}

fn count(conn: &mut PgConnection, table: &str, column: Option<&str>) -> Result<i64, DieselError> {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let quote = |ident: &str| format!("\"{}\"", ident.replace('"', "\"\""));
    let what = column.map_or("*".to_owned(), quote);
    let sql = format!("SELECT count({what}) AS n FROM public.{}", quote(table));
    Ok(diesel::sql_query(sql).get_result::<N>(conn)?.n)
}

fn migration_error(e: impl std::fmt::Display) -> DieselError {
    DieselError::QueryBuilderError(e.to_string().into())
}

/// What reverting `migration` drops: the step runs in a savepoint that is
/// rolled back, so the dropped tables and columns can then be counted.
fn drops_of(
    conn: &mut PgConnection,
    migration: &dyn Migration<Pg>,
) -> Result<Vec<Dropped>, DieselError> {
    let before = catalog(conn)?;
    let mut after = None;
    let trial = conn.transaction::<(), DieselError, _>(|conn| {
        conn.revert_migration(migration).map_err(migration_error)?;
        after = Some(catalog(conn)?);
        Err(DieselError::RollbackTransaction)
    });
    let after = match (trial, after) {
        (Err(DieselError::RollbackTransaction), Some(after)) => after,
        (Err(e), _) => return Err(e),
        (Ok(()), _) => return Err(migration_error("the trial revert was not rolled back")),
    };
    let tables_after: BTreeSet<&String> = after.iter().map(|(t, _)| t).collect();
    let mut drops = Vec::new();
    let mut tables_seen = BTreeSet::new();
    for (table, column) in &before {
        if !tables_after.contains(table) {
            if tables_seen.insert(table.clone()) {
                drops.push(Dropped {
                    rows: count(conn, table, None)?,
                    table: table.clone(),
                    column: None,
                });
            }
        } else if !after.contains(&(table.clone(), column.clone())) {
            drops.push(Dropped {
                rows: count(conn, table, Some(column))?,
                table: table.clone(),
                column: Some(column.clone()),
            });
        }
    }
    Ok(drops)
}

/// The newest `steps` applied migrations that a revert would undo, in
/// order, each with what it drops. Nothing is changed. Stops early at a
/// version this binary does not carry (the caller refuses those).
pub fn plan<S: MigrationSource<Pg>>(
    conn: &mut PgConnection,
    source: &S,
    steps: usize,
) -> Result<Vec<Step>, DbError> {
    let known = sorted(source)?;
    let mut planned = Vec::new();
    let outcome = conn.transaction::<(), DieselError, _>(|conn| {
        for _ in 0..steps {
            let applied = super::applied(conn).map_err(migration_error)?;
            let Some(migration) = applied.last().and_then(|version| {
                known
                    .iter()
                    .find(|m| m.name().version().to_string() == *version)
            }) else {
                break;
            };
            let drops = drops_of(conn, migration.as_ref())?;
            planned.push(Step {
                migration: MigrationInfo::of(migration.as_ref()),
                drops,
            });
            // Really revert it (inside the outer transaction) so the next
            // step is planned against the schema it would meet.
            conn.revert_migration(migration.as_ref())
                .map_err(migration_error)?;
        }
        Err(DieselError::RollbackTransaction)
    });
    match outcome {
        Err(DieselError::RollbackTransaction) | Ok(()) => Ok(planned),
        Err(e) => Err(DbError::Migrations(format!(
            "could not plan the revert: {e}"
        ))),
    }
}
