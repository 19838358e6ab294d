//! Planner statistics kept current by the server itself. The reads' plans
//! depend on them: a table analysed while it was empty (or never) and then
//! bulk-loaded is believed empty, and a read of one series' raw tail gets a
//! plan for an empty table. Autovacuum analyses such a table within a
//! minute where it runs, but nothing guarantees it runs (it is off on the
//! machines this server is tested on), so the worker analyses the tables it
//! writes once their changes since the last analysis pass autovacuum's own
//! threshold, with a larger floor.

use diesel::prelude::*;
use diesel::sql_types::Text;

use crate::db::DbError;

/// The tables (and TimescaleDB's chunks of the hypertable) whose changes
/// since their last analysis pass the threshold, most changed first.
fn stale(conn: &mut PgConnection, limit: i64) -> Result<Vec<String>, DbError> {
    #[derive(QueryableByName)]
    struct Table {
        #[diesel(sql_type = Text)]
        name: String,
    }
    Ok(diesel::sql_query(
        "SELECT format('%I.%I', schemaname, relname) AS name
           FROM pg_stat_user_tables
          WHERE ((schemaname = current_schema()
                  AND relname IN ('timeseries_data', 'timeseries_rollups',
                                  'timeseries_rollups_daily', 'timeseries_series'))
                 OR schemaname = '_timescaledb_internal')
            AND n_mod_since_analyze > 10000 + 0.1 * greatest(n_live_tup, 0)
          ORDER BY n_mod_since_analyze DESC LIMIT $1",
    )
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .load::<Table>(conn)?
    .into_iter()
    .map(|t| t.name)
    .collect())
}

/// Analyses at most `limit` stale tables, each in a transaction that waits
/// at most a second for its lock (another replica analysing it, a
/// migration); returns the tables analysed.
pub fn refresh(conn: &mut PgConnection, limit: i64) -> Result<Vec<String>, DbError> {
    let mut done = Vec::new();
    for table in stale(conn, limit)? {
        let analysed = conn.transaction(|conn| {
            diesel::sql_query("SET LOCAL lock_timeout = '1s'").execute(conn)?;
            // The name comes from the catalog, quoted by format('%I').
            diesel::sql_query(format!("ANALYZE {table}")).execute(conn)?;
            Ok::<_, DbError>(())
        });
        match analysed {
            Ok(()) => done.push(table),
            Err(e) if e.is_lock_timeout() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}
