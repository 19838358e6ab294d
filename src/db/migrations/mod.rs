//! Embedded migrations, the advisory lock that lets many replicas start at
//! once, and the operations behind `mcp-server migrate …`.

use std::time::{Duration, Instant};

use diesel::migration::{Migration, MigrationSource};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Int4, Nullable, Text};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use log::info;

use super::DbError;

pub mod checksums;
pub mod plan;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Session-level advisory lock key ("mcp_migr"): held on the connection that
/// runs the migrations, since Diesel commits each migration separately and a
/// transaction-level lock would be released after the first.
pub const LOCK_KEY: i64 = 0x6d63_705f_6d69_6772;

/// Shown as the starting point before the first migration, as Alembic does.
pub const BASE: &str = "<base>";

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MigrationInfo {
    pub version: String,
    pub name: String,
}

impl MigrationInfo {
    fn of(m: &dyn Migration<Pg>) -> Self {
        MigrationInfo {
            version: m.name().version().to_string(),
            name: m.name().to_string(),
        }
    }
}

/// Diesel's version of a migration given in any spelling operators use:
/// `20261125000001`, `2026-11-25-000001`, or the directory name
/// `2026-11-25-000001_create_tables`.
pub fn normalize_version(text: &str) -> String {
    text.split('_').next().unwrap_or(text).replace('-', "")
}

/// The database against this binary's migrations.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct State {
    /// Applied versions, oldest first.
    pub applied: Vec<String>,
    /// This binary's migrations not applied yet, oldest first.
    pub pending: Vec<MigrationInfo>,
    /// Applied versions this binary does not carry (a newer binary applied
    /// them: the rolling-deploy case).
    pub ahead: Vec<String>,
    /// Applied migrations whose files changed after they were applied.
    pub edited: Vec<checksums::Edited>,
}

impl State {
    /// Pending migrations may run only after everything applied: one older
    /// than an applied version would run out of order, against a schema it
    /// was not written for.
    pub fn out_of_order(&self) -> Vec<&MigrationInfo> {
        let newest = self.applied.last().map(String::as_str).unwrap_or("");
        self.pending
            .iter()
            .filter(|m| m.version.as_str() < newest)
            .collect()
    }

    /// Why reverting `count` migrations from here must not start: the newest
    /// applied one is not this binary's to undo.
    pub fn refuse_revert(&self, count: usize) -> Option<DbError> {
        self.applied
            .last()
            .filter(|newest| count > 0 && self.ahead.contains(newest))
            .map(|newest| ahead_of_revert(newest, 0))
    }

    /// Why this binary must not migrate, if it must not.
    pub fn refusal(&self) -> Option<DbError> {
        if !self.edited.is_empty() {
            let names = self
                .edited
                .iter()
                .map(|e| format!("{} ({})", e.version, e.name))
                .collect::<Vec<_>>()
                .join(", ");
            return Some(DbError::Edited(format!(
                "applied migration(s) {names} changed after they were applied (checksum differs). \
                 Restore the original files, or, if the change is deliberate and already reflected \
                 in the database, re-record them with `mcp-server migrate repair --yes`"
            )));
        }
        let early = self.out_of_order();
        if !early.is_empty() {
            let names = early
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            let newest = self.applied.last().map(String::as_str).unwrap_or(BASE);
            let ahead = if self.ahead.is_empty() {
                String::new()
            } else {
                format!(
                    " (the database is ahead of this binary: {})",
                    self.ahead.join(", ")
                )
            };
            return Some(DbError::Ahead(format!(
                "pending migration(s) {names} are older than the applied version {newest}{ahead}; \
                 applying them out of order could break the newer schema. Nothing was applied: \
                 deploy the binary that carries every applied migration, or mark them applied \
                 deliberately (`mcp-server migrate mark-applied VERSION --allow-gaps --yes`)"
            )));
        }
        None
    }
}

/// Reads the state: applied, pending, ahead, and edited checksums.
pub fn state<S: MigrationSource<Pg>>(
    conn: &mut PgConnection,
    source: &S,
) -> Result<State, DbError> {
    let applied = applied(conn)?;
    let known = sorted(source)?;
    let known_versions: Vec<String> = known
        .iter()
        .map(|m| m.name().version().to_string())
        .collect();
    Ok(State {
        pending: known
            .iter()
            .map(|m| MigrationInfo::of(m.as_ref()))
            .filter(|m| !applied.contains(&m.version))
            .collect(),
        ahead: applied
            .iter()
            .filter(|v| !known_versions.contains(v))
            .cloned()
            .collect(),
        edited: checksums::edited(conn)?,
        applied,
    })
}

/// Start-up and `migrate run`: refuses edited or out-of-order migrations,
/// warns about a database ahead of this binary (and still serves), applies
/// what is pending, and records the checksums of what is applied.
pub fn upgrade<S: MigrationSource<Pg>>(
    conn: &mut PgConnection,
    source: &S,
) -> Result<Vec<MigrationInfo>, DbError> {
    let state = state(conn, source)?;
    if let Some(refusal) = state.refusal() {
        return Err(refusal);
    }
    if !state.ahead.is_empty() {
        log::warn!(
            "the database is ahead of this binary: migration(s) {} were applied by a newer version; \
             serving with the schema as it is (the rolling-deploy case)",
            state.ahead.join(", ")
        );
    }
    let ran = run_pending(conn, source)?;
    let now_applied = applied(conn)?;
    checksums::record_missing(conn, &now_applied)?;
    Ok(ran)
}

#[derive(QueryableByName)]
struct Holder {
    #[diesel(sql_type = Int4)]
    pid: i32,
    #[diesel(sql_type = Nullable<Text>)]
    application_name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    client_addr: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    since: Option<String>,
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

fn lock_holder(conn: &mut PgConnection) -> Option<String> {
    let sql = "SELECT a.pid, a.application_name, host(a.client_addr) AS client_addr, \
               to_char(a.backend_start, 'YYYY-MM-DD\"T\"HH24:MI:SSOF') AS since \
               FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
               WHERE l.locktype = 'advisory' AND l.granted \
               AND l.classid::bigint = ($1 >> 32) AND l.objid::bigint = ($1 & 4294967295) \
               AND l.objsubid = 1 LIMIT 1";
    let holder: Holder = diesel::sql_query(sql)
        .bind::<BigInt, _>(LOCK_KEY)
        .get_result(conn)
        .ok()?;
    Some(format!(
        "pid {} ({} from {}, connected since {})",
        holder.pid,
        holder
            .application_name
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or("unnamed"),
        holder.client_addr.as_deref().unwrap_or("local socket"),
        holder.since.as_deref().unwrap_or("?"),
    ))
}

/// Runs `f` while holding the migration lock on `conn`, waiting up to
/// `patience` for another process to release it.
pub fn with_lock<R>(
    conn: &mut PgConnection,
    patience: Duration,
    f: impl FnOnce(&mut PgConnection) -> Result<R, DbError>,
) -> Result<R, DbError> {
    let started = Instant::now();
    let mut last_report: Option<Instant> = None;
    loop {
        let got: Locked = diesel::sql_query("SELECT pg_try_advisory_lock($1) AS locked")
            .bind::<BigInt, _>(LOCK_KEY)
            .get_result(conn)?;
        if got.locked {
            break;
        }
        let holder = lock_holder(conn).unwrap_or_else(|| "a process that just let go".into());
        if started.elapsed() >= patience {
            return Err(DbError::LockTimeout(format!(
                "gave up after {} s waiting for the migration lock held by {holder}; \
                 if that process is stuck, end it with SELECT pg_terminate_backend(pid)",
                patience.as_secs()
            )));
        }
        if last_report.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            info!("waiting for the migration lock held by {holder}");
            last_report = Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let result = f(conn);
    // Released explicitly: the connection may live on in a pool.
    let unlocked = diesel::sql_query("SELECT pg_advisory_unlock($1) AS locked")
        .bind::<BigInt, _>(LOCK_KEY)
        .get_result::<Locked>(conn);
    match (result, unlocked) {
        (Ok(r), Ok(_)) => Ok(r),
        (Err(e), _) => Err(e),
        (Ok(_), Err(e)) => Err(e.into()),
    }
}

fn sorted<S: MigrationSource<Pg>>(source: &S) -> Result<Vec<Box<dyn Migration<Pg>>>, DbError> {
    let mut all = source.migrations().map_err(DbError::migrations)?;
    all.sort_by(|a, b| a.name().version().cmp(&b.name().version()));
    Ok(all)
}

/// Applied versions, oldest first.
pub fn applied(conn: &mut PgConnection) -> Result<Vec<String>, DbError> {
    let mut versions: Vec<String> = conn
        .applied_migrations()
        .map_err(DbError::migrations)?
        .iter()
        .map(|v| v.to_string())
        .collect();
    versions.sort();
    Ok(versions)
}

/// Applies every pending migration, each in its own transaction, logging one
/// Alembic-style line per migration. Call inside [`with_lock`]: the pending
/// set is read after the lock is taken, so a replica that waited applies
/// nothing twice.
pub fn run_pending<S: MigrationSource<Pg>>(
    conn: &mut PgConnection,
    source: &S,
) -> Result<Vec<MigrationInfo>, DbError> {
    let done = applied(conn)?;
    let mut from = done.last().cloned().unwrap_or_else(|| BASE.to_owned());
    let todo: Vec<_> = sorted(source)?
        .into_iter()
        .filter(|m| !done.contains(&m.name().version().to_string()))
        .collect();
    if todo.is_empty() {
        info!("no pending migrations (schema at version {from})");
        return Ok(Vec::new());
    }
    let mut ran = Vec::with_capacity(todo.len());
    for migration in todo {
        let info = apply(conn, migration.as_ref(), &from)?;
        from = info.version.clone();
        ran.push(info);
    }
    Ok(ran)
}

/// Runs one migration in its own transaction, logging the Alembic-style line.
fn apply(
    conn: &mut PgConnection,
    migration: &dyn Migration<Pg>,
    from: &str,
) -> Result<MigrationInfo, DbError> {
    let info = MigrationInfo::of(migration);
    info!("Running upgrade {from} -> {}, {}", info.version, info.name);
    conn.run_migration(migration)
        .map_err(|e| DbError::Migration {
            name: info.name.clone(),
            error: e.to_string(),
        })?;
    Ok(info)
}

/// Applies exactly `version` (what `redo` reverted), nothing else, and
/// records its checksum.
pub fn reapply<S: MigrationSource<Pg>>(
    conn: &mut PgConnection,
    source: &S,
    version: &str,
) -> Result<MigrationInfo, DbError> {
    let known = sorted(source)?;
    let migration = known
        .iter()
        .find(|m| m.name().version().to_string() == version)
        .ok_or_else(|| DbError::UnknownVersion(version.to_owned()))?;
    let from = applied(conn)?.pop().unwrap_or_else(|| BASE.to_owned());
    let info = apply(conn, migration.as_ref(), &from)?;
    checksums::record_missing(conn, std::slice::from_ref(&info.version))?;
    Ok(info)
}

/// Reverts applied migrations, newest first, while `keep_going(version,
/// reverted_so_far)` says so.
pub fn revert_while<S: MigrationSource<Pg>>(
    conn: &mut PgConnection,
    source: &S,
    mut keep_going: impl FnMut(&str, usize) -> bool,
) -> Result<Vec<MigrationInfo>, DbError> {
    let known = sorted(source)?;
    let mut reverted = Vec::new();
    while let Some(version) = applied(conn)?.pop() {
        if !keep_going(&version, reverted.len()) {
            break;
        }
        let migration = known
            .iter()
            .find(|m| m.name().version().to_string() == version)
            .ok_or_else(|| ahead_of_revert(&version, reverted.len()))?;
        let info = MigrationInfo::of(migration.as_ref());
        let to = applied(conn)?
            .iter()
            .rev()
            .nth(1)
            .cloned()
            .unwrap_or_else(|| BASE.to_owned());
        info!("Running downgrade {} -> {to}, {}", info.version, info.name);
        conn.revert_migration(migration)
            .map_err(|e| DbError::Migration {
                name: info.name.clone(),
                error: e.to_string(),
            })?;
        reverted.push(info);
    }
    Ok(reverted)
}

fn ahead_of_revert(version: &str, reverted: usize) -> DbError {
    DbError::Ahead(format!(
        "the newest applied migration {version} is not in this binary (a newer version of \
         mcp-server applied it); revert it with that version first. {}",
        match reverted {
            0 => "Nothing was reverted".to_owned(),
            n => format!("{n} migration(s) newer than it were reverted, nothing past it"),
        }
    ))
}

/// Records each of `versions` as applied without running it (Alembic's
/// `stamp`), with its checksum. Refuses a version that would leave an
/// older one unapplied beneath it unless `allow_gaps`. Returns the versions
/// newly recorded.
pub fn mark_applied<S: MigrationSource<Pg>>(
    conn: &mut PgConnection,
    source: &S,
    versions: &[String],
    allow_gaps: bool,
) -> Result<Vec<String>, DbError> {
    let known: Vec<String> = sorted(source)?
        .iter()
        .map(|m| m.name().version().to_string())
        .collect();
    let versions: Vec<String> = versions.iter().map(|v| normalize_version(v)).collect();
    if let Some(unknown) = versions.iter().find(|v| !known.contains(v)) {
        return Err(DbError::UnknownVersion(unknown.clone()));
    }
    let done = applied(conn)?;
    if !allow_gaps {
        let newest = versions.iter().max().cloned().unwrap_or_default();
        let gaps: Vec<&String> = known
            .iter()
            .filter(|k| **k < newest && !done.contains(k) && !versions.contains(k))
            .collect();
        if !gaps.is_empty() {
            return Err(DbError::Migrations(format!(
                "marking {newest} applied would leave older migration(s) {} unapplied beneath it; \
                 mark them too (`mark-applied --all` marks every one), or pass --allow-gaps",
                gaps.iter()
                    .map(|g| g.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    let mut marked = Vec::new();
    for version in versions.iter().filter(|v| !done.contains(v)) {
        diesel::sql_query(
            "INSERT INTO __diesel_schema_migrations (version) VALUES ($1) ON CONFLICT DO NOTHING",
        )
        .bind::<Text, _>(version)
        .execute(conn)?;
        marked.push(version.clone());
    }
    checksums::record_missing(conn, &marked)?;
    Ok(marked)
}

/// `(version, name, applied at)` of every applied migration plus the
/// embedded ones not applied yet (`None`), oldest first.
pub fn history<S: MigrationSource<Pg>>(
    conn: &mut PgConnection,
    source: &S,
) -> Result<Vec<(String, String, Option<String>)>, DbError> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        version: String,
        #[diesel(sql_type = Text)]
        run_on: String,
    }
    applied(conn)?;
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT version::text, to_char(run_on, 'YYYY-MM-DD HH24:MI:SS') AS run_on \
         FROM __diesel_schema_migrations ORDER BY version",
    )
    .load(conn)?;
    let known = sorted(source)?;
    let name_of = |v: &str| {
        known
            .iter()
            .find(|m| m.name().version().to_string() == v)
            .map(|m| m.name().to_string())
            .unwrap_or_else(|| format!("{v} (not in this binary: applied by a newer version?)"))
    };
    let mut out: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.version.clone(),
                name_of(&r.version),
                Some(r.run_on.clone()),
            )
        })
        .collect();
    for m in &known {
        let v = m.name().version().to_string();
        if !rows.iter().any(|r| r.version == v) {
            out.push((v, m.name().to_string(), None));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The newest migration this binary carries.
pub fn newest_known() -> &'static str {
    static NEWEST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NEWEST.get_or_init(|| {
        all(&MIGRATIONS)
            .ok()
            .and_then(|all| all.last().map(|m| normalize_version(&m.version)))
            .unwrap_or_default()
    })
}

/// The fence for an older binary, checked in the transaction of every
/// write of points and every fold: `Err(Ahead)` once the database holds a
/// migration newer than this binary's, applied by a newer mcp-server in a
/// rolling deploy. The old replica then writes nothing (its writes would
/// skip what the new schema keeps, and answers would go wrong) and serves
/// reads until it is replaced. One index probe of a table of a few rows.
pub fn fence(conn: &mut PgConnection) -> Result<(), DbError> {
    #[derive(QueryableByName)]
    struct Newer {
        #[diesel(sql_type = diesel::sql_types::Text)]
        version: String,
    }
    let newer: Option<Newer> = diesel::sql_query(
        "SELECT version FROM __diesel_schema_migrations WHERE version > $1 ORDER BY version LIMIT 1",
    )
    .bind::<diesel::sql_types::Text, _>(newest_known())
    .get_result(conn)
    .optional()?;
    match newer {
        None => Ok(()),
        Some(n) => Err(DbError::Ahead(format!(
            "this server is older than the database: migration {} was applied by a newer \
             mcp-server, so this one writes nothing until it is upgraded (reads are served)",
            n.version
        ))),
    }
}

/// Every embedded migration, oldest first.
pub fn all<S: MigrationSource<Pg>>(source: &S) -> Result<Vec<MigrationInfo>, DbError> {
    Ok(sorted(source)?
        .iter()
        .map(|m| MigrationInfo::of(m.as_ref()))
        .collect())
}
