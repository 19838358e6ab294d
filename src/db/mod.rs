//! PostgreSQL: the pool in managed state, start-up (connect, create, migrate
//! under a lock) and the errors of this layer.

pub mod connect;
pub mod migrations;

use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::PgConnection;
use diesel::RunQueryDsl;
use diesel::r2d2::{ConnectionManager, Pool};
use log::info;
use rocket::tokio::sync::Semaphore;
use rocket::tokio::task::spawn_blocking;

use crate::config::Settings;
use migrations::MigrationInfo;

pub type PgPool = Pool<ConnectionManager<PgConnection>>;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Connect(String),
    #[error("database busy: no connection free within {0:?}; retry shortly")]
    Busy(Duration),
    #[error("migration {name} failed: {error}")]
    Migration { name: String, error: String },
    #[error("migration lock: {0}")]
    LockTimeout(String),
    #[error(
        "version {0} is not one of this binary's migrations (see `mcp-server migrate history`)"
    )]
    UnknownVersion(String),
    #[error("migrations: {0}")]
    Migrations(String),
    /// Applied migrations whose files changed since.
    #[error("{0}")]
    Edited(String),
    /// The database has migrations this binary does not carry, and what was
    /// asked would act around them.
    #[error("{0}")]
    Ahead(String),
    /// A write before a series' raw retention horizon.
    #[error("{0}")]
    Retained(String),
    #[error("database error: {0}")]
    Query(#[from] diesel::result::Error),
    /// Aggregates of the data pass the range of double precision.
    #[error("values too large to aggregate in double precision")]
    TooLarge,
    #[error("database task failed: {0}")]
    Task(String),
}

impl DbError {
    pub fn migrations(e: impl std::fmt::Display) -> Self {
        DbError::Migrations(e.to_string())
    }

    /// A statement gave up waiting under `SET LOCAL lock_timeout` (55P03,
    /// which diesel has no kind for): the lock's holder is busy, not gone.
    pub fn is_lock_timeout(&self) -> bool {
        matches!(self, DbError::Query(diesel::result::Error::DatabaseError(_, info))
            if info.message().contains("lock timeout"))
    }

    /// The database could not take the work now but may in a moment: no
    /// connection free or reachable, a connection lost to a restart, a
    /// statement past its timeout, a deadlock broken. A sender should retry.
    pub fn is_transient(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error};
        match self {
            DbError::Busy(_) => true,
            _ if self.is_connection_lost() => true,
            DbError::Query(Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _)) => {
                true
            }
            DbError::Query(Error::DatabaseError(_, info)) => [
                "statement timeout",
                "deadlock detected",
                "could not serialize",
            ]
            .iter()
            .any(|m| info.message().contains(m)),
            _ => false,
        }
    }

    /// No connection could be made, or the one in use was lost under the
    /// work: a restart (`terminating connection due to administrator
    /// command`), a crash, the network. A call in flight then is told the
    /// database is unreachable, as a new one is, not "internal error"; a
    /// rollback on the lost connection fails with `no connection to the
    /// server`, and that error is the one returned.
    pub fn is_connection_lost(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error};
        match self {
            DbError::Connect(_) => true,
            DbError::Query(Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            )) => true,
            DbError::Query(Error::DatabaseError(_, info)) => [
                "terminating connection",
                "server closed the connection",
                "no connection to the server",
                "connection to server",
                "could not receive data from server",
                "could not send data to server",
                "SSL connection has been closed",
                "SSL SYSCALL error",
                "the database system is",
            ]
            .iter()
            .any(|m| info.message().contains(m)),
            _ => false,
        }
    }
}

/// What start-up did, kept in managed state (tests read it; so could an
/// admin route).
#[derive(Debug, Clone, Default)]
pub struct StartupReport {
    pub applied: Vec<MigrationInfo>,
}

/// The pool in managed state. A semaphore sized to the pool makes waiters
/// queue asynchronously (not on executor threads) with a bounded wait, and
/// every checkout and query runs on the blocking thread pool. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: PgPool,
    permits: Arc<Semaphore>,
    checkout_timeout: Duration,
    watch: Option<Arc<Watch>>,
    /// (the pool's `statement_timeout`, a task's): work on a watched pool
    /// (a task) runs under the second, and the first is restored after.
    statement_timeouts: Option<(Duration, Duration)>,
}

/// The server process a watched [`Db`] is running SQL on, so that work can
/// be stopped from outside (a cancelled MCP task).
#[derive(Debug, Default)]
pub struct Watch {
    pid: std::sync::atomic::AtomicI32,
}

impl Watch {
    /// The backend running a statement for the watched work, if any.
    pub fn backend(&self) -> Option<i32> {
        Some(self.pid.load(std::sync::atomic::Ordering::Acquire)).filter(|p| *p != 0)
    }
}

/// Clears the watched backend when the work ends, however it ends.
struct Watching<'a>(&'a Watch);

impl Drop for Watching<'_> {
    fn drop(&mut self) {
        self.0.pid.store(0, std::sync::atomic::Ordering::Release);
    }
}

impl Db {
    pub fn new(pool: PgPool, checkout_timeout: Duration) -> Self {
        let permits = Arc::new(Semaphore::new(pool.max_size() as usize));
        Db {
            pool,
            permits,
            checkout_timeout,
            watch: None,
            statement_timeouts: None,
        }
    }

    /// The pool of a running server: its checkout wait and the longer
    /// statement limit of tasks.
    pub fn from_settings(pool: PgPool, settings: &Settings) -> Self {
        Db {
            statement_timeouts: Some((
                settings.statement_timeout(),
                settings.task_statement_timeout(),
            )),
            ..Db::new(pool, settings.checkout_timeout())
        }
    }

    /// This pool, with every connection it hands out recorded in the
    /// returned [`Watch`] while it runs.
    pub fn watched(&self) -> (Db, Arc<Watch>) {
        let watch = Arc::new(Watch::default());
        let db = Db {
            watch: Some(Arc::clone(&watch)),
            ..self.clone()
        };
        (db, watch)
    }

    /// Cancels the statement running for `watch` (`pg_cancel_backend`).
    /// `true` when a statement was running.
    pub async fn cancel(&self, watch: &Watch) -> bool {
        let Some(pid) = watch.backend() else {
            return false;
        };
        let unwatched = Db {
            watch: None,
            ..self.clone()
        };
        unwatched
            .run(move |conn| {
                diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
                    "pg_cancel_backend({pid})"
                )))
                .get_result::<bool>(conn)
                .map_err(DbError::from)
            })
            .await
            .unwrap_or(false)
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs `f` with a pooled connection off the async executor.
    pub async fn run<F, R>(&self, f: F) -> Result<R, DbError>
    where
        F: FnOnce(&mut PgConnection) -> Result<R, DbError> + Send + 'static,
        R: Send + 'static,
    {
        self.run_within(self.checkout_timeout, f).await
    }

    /// [`Db::run`] with its own bound on the wait for a connection.
    pub async fn run_within<F, R>(&self, wait: Duration, f: F) -> Result<R, DbError>
    where
        F: FnOnce(&mut PgConnection) -> Result<R, DbError> + Send + 'static,
        R: Send + 'static,
    {
        let started = Instant::now();
        let permit = rocket::tokio::time::timeout(wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| DbError::Busy(wait))?
            .map_err(|e| DbError::Task(e.to_string()))?;
        let left = wait
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(100));
        let pool = self.pool.clone();
        let watch = self.watch.clone();
        let longer = self.statement_timeouts.filter(|_| watch.is_some());
        spawn_blocking(move || {
            let _permit = permit;
            let mut conn = pool
                .get_timeout(left)
                .map_err(|e| DbError::Connect(e.to_string()))?;
            let _watching = match &watch {
                Some(w) => {
                    let pid: i32 = diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>(
                        "pg_backend_pid()",
                    ))
                    .get_result(&mut *conn)?;
                    w.pid.store(pid, std::sync::atomic::Ordering::Release);
                    Some(Watching(w))
                }
                None => None,
            };
            let Some((usual, task)) = longer else {
                return f(&mut conn);
            };
            set_statement_timeout(&mut conn, task)?;
            let result = f(&mut conn);
            // Failing here means the connection is broken, and the pool's
            // check on the next checkout drops it.
            let _ = set_statement_timeout(&mut conn, usual);
            result
        })
        .await
        .map_err(|e| DbError::Task(e.to_string()))?
    }
}

fn set_statement_timeout(conn: &mut PgConnection, limit: Duration) -> diesel::QueryResult<()> {
    use diesel::connection::SimpleConnection;
    conn.batch_execute(&format!("SET statement_timeout = {}", limit.as_millis()))
}

/// Sets each new pooled connection up (its `statement_timeout`, no JIT), and keeps
/// the pool's connection errors to one line per change of state plus a
/// summary a minute: r2d2 would log every failed attempt.
#[derive(Debug, Clone)]
struct Connections {
    statement_timeout: Duration,
    failing: Arc<std::sync::Mutex<Option<Failing>>>,
}

#[derive(Debug)]
struct Failing {
    since: Instant,
    summarised: Instant,
    attempts: u64,
}

/// How often a database that stays away is reported.
const FAILING_SUMMARY: Duration = Duration::from_secs(60);

impl diesel::r2d2::CustomizeConnection<PgConnection, diesel::r2d2::Error> for Connections {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        use diesel::connection::SimpleConnection;
        set_statement_timeout(conn, self.statement_timeout)
            .map_err(diesel::r2d2::Error::QueryError)?;
        // The server's statements are bounded reads and writes. Over a
        // fleet's rows the planner's estimates cross JIT's thresholds, and
        // compiling took 750 ms of a statement that runs in 100.
        conn.batch_execute("SET jit = off")
            .map_err(diesel::r2d2::Error::QueryError)?;
        let recovered = self.failing.lock().ok().and_then(|mut f| f.take());
        if let Some(f) = recovered {
            log::warn!(
                "database connections work again after {:.0?} ({} failed attempts)",
                f.since.elapsed(),
                f.attempts
            );
        }
        Ok(())
    }
}

impl diesel::r2d2::HandleError<diesel::r2d2::Error> for Connections {
    fn handle_error(&self, error: diesel::r2d2::Error) {
        let Ok(mut failing) = self.failing.lock() else {
            return;
        };
        // libpq's messages span lines; a log line is one line.
        let one_line = || {
            error
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        };
        match failing.as_mut() {
            None => {
                log::error!("database connections failing: {}", one_line());
                let now = Instant::now();
                *failing = Some(Failing {
                    since: now,
                    summarised: now,
                    attempts: 1,
                });
            }
            Some(f) => {
                f.attempts += 1;
                if f.summarised.elapsed() >= FAILING_SUMMARY {
                    f.summarised = Instant::now();
                    log::error!(
                        "database connections still failing after {:.0?} ({} attempts): {}",
                        f.since.elapsed(),
                        f.attempts,
                        one_line()
                    );
                }
            }
        }
    }
}

/// Sets the age of the columnstore policy's chunks (TimescaleDB TSL, where
/// the columnstore migration added one), when it differs.
fn compression_policy(conn: &mut PgConnection, days: u32) -> Result<(), DbError> {
    #[derive(diesel::QueryableByName)]
    struct Present {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        jobs: bool,
    }
    let present: Present =
        diesel::sql_query("SELECT to_regclass('timescaledb_information.jobs') IS NOT NULL AS jobs")
            .get_result(conn)?;
    if !present.jobs {
        return Ok(());
    }
    let changed = diesel::sql_query(
        "SELECT alter_job(j.job_id, config => jsonb_set(j.config, '{compress_after}',
                          to_jsonb(make_interval(days => $1)::text)))::text
           FROM timescaledb_information.jobs j
          WHERE j.proc_name = 'policy_compression' AND j.hypertable_name = 'timeseries_data'
            AND j.config->>'compress_after' IS DISTINCT FROM make_interval(days => $1)::text",
    )
    .bind::<diesel::sql_types::Integer, _>(i32::try_from(days).unwrap_or(i32::MAX))
    .execute(conn)?;
    if changed > 0 {
        info!("columnstore policy: chunks older than {days} days are compressed");
    }
    Ok(())
}

/// The pool `/health` probes through: one connection of its own, opened on
/// first use, beside the server's pool. A pool whose every connection is at
/// work is busy, not down, and a probe that queued behind 64 analyses
/// answered 503 ("no database connection was free in time"), so an
/// orchestrator would replace a working server. `wait` bounds a probe's
/// checkout and its statements; a database that stays away is the
/// server's pool's to log (this one logs nothing).
pub fn health_pool(settings: &Settings, wait: Duration) -> Result<Db, DbError> {
    let url = connect::connection_url(&settings.database_url, settings.connect_timeout())?;
    let pool = Pool::builder()
        .connection_customizer(Box::new(Connections {
            statement_timeout: wait,
            failing: Arc::default(),
        }))
        .error_handler(Box::new(diesel::r2d2::NopErrorHandler))
        .max_size(1)
        .min_idle(Some(0))
        .connection_timeout(wait)
        .build_unchecked(ConnectionManager::<PgConnection>::new(url));
    Ok(Db::new(pool, wait))
}

/// Start-up, blocking: connect (creating the database, retrying while it
/// boots), apply pending migrations under the advisory lock, build the pool.
pub fn prepare(settings: &Settings) -> Result<(PgPool, StartupReport), DbError> {
    let url = connect::connection_url(&settings.database_url, settings.connect_timeout())?;
    info!("connecting to {}", connect::redact(&settings.database_url));
    let mut conn =
        connect::connect_with_retry(&url, settings.startup_timeout(), "DB_STARTUP_TIMEOUT_SECS")?;
    let applied = migrations::with_lock(&mut conn, settings.migration_lock_timeout(), |conn| {
        let applied = migrations::upgrade(conn, &migrations::MIGRATIONS)?;
        compression_policy(conn, settings.timescale_compress_after_days)?;
        Ok(applied)
    })?;
    drop(conn);
    let connections = Connections {
        statement_timeout: settings.statement_timeout(),
        failing: Arc::default(),
    };
    let pool = Pool::builder()
        .connection_customizer(Box::new(connections.clone()))
        .error_handler(Box::new(connections))
        .max_size(settings.db_pool_size)
        .min_idle(Some(settings.db_min_idle))
        .connection_timeout(settings.checkout_timeout())
        .build(ConnectionManager::<PgConnection>::new(url))
        .map_err(|e| DbError::Connect(format!("could not fill the connection pool: {e}")))?;
    Ok((pool, StartupReport { applied }))
}
