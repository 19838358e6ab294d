//! A database of its own for each test, copied from a template migrated
//! once per migrations state.

use std::collections::BTreeSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel_migrations::MigrationHarness;
use mcp_server::db::migrations::MIGRATIONS;
use rand::Rng;

/// The server to create test databases on; any database on it works.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A TimescaleDB server (any database on it) for the tests that need one.
/// Setting it at build time un-ignores them (build.rs sets `cfg(timescale)`).
pub fn timescale_url() -> String {
    std::env::var("TIMESCALE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .expect(
            "TIMESCALE_URL names a TimescaleDB server, e.g. postgres://postgres@host:5432/postgres",
        )
}

fn url_for(server: &str, db: &str) -> String {
    let mut url = url::Url::parse(server)
        .unwrap_or_else(|e| panic!("{server} (TEST_DATABASE_URL or TIMESCALE_URL) is a URL: {e}"));
    url.set_path(&format!("/{db}"));
    url.into()
}

pub fn admin() -> PgConnection {
    connect(&admin_url())
}

fn connect(server: &str) -> PgConnection {
    PgConnection::establish(server)
        .unwrap_or_else(|e| panic!("PostgreSQL at {server} is needed for tests: {e}"))
}

pub fn project_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The template is named after the migrations' contents, so a changed
/// migration gets a new template and never a stale one.
fn template_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let root = project_dir().join("migrations");
        let mut files = Vec::new();
        collect(&root, &mut files);
        files.sort();
        let mut h = DefaultHasher::new();
        for f in files {
            // Relative paths: every checkout of the same migrations shares a template.
            f.strip_prefix(&root).unwrap_or(&f).hash(&mut h);
            std::fs::read(&f).expect("readable migration").hash(&mut h);
        }
        format!("mcp_test_tpl_{:016x}", h.finish())
    })
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("migrations dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out)
        } else {
            out.push(path)
        }
    }
}

fn exists(conn: &mut PgConnection, db: &str) -> bool {
    diesel::sql_query("SELECT 1 AS n FROM pg_database WHERE datname = $1")
        .bind::<Text, _>(db)
        .execute(conn)
        .expect("query pg_database")
        == 1
}

fn databases_like(conn: &mut PgConnection, pattern: &str) -> Vec<String> {
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = Text)]
        datname: String,
    }
    diesel::sql_query("SELECT datname::text AS datname FROM pg_database WHERE datname LIKE $1")
        .bind::<Text, _>(pattern)
        .load::<Name>(conn)
        .expect("query pg_database")
        .into_iter()
        .map(|n| n.datname)
        .collect()
}

/// Runs `sql` (which needs `db` to have no sessions), ending the sessions
/// still there first; they may take a moment to go, so a few tries.
fn retry_while_in_use(conn: &mut PgConnection, db: &str, sql: &str) {
    for attempt in 0.. {
        diesel::sql_query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind::<Text, _>(db)
        .execute(conn)
        .expect("end sessions");
        match diesel::sql_query(sql).execute(conn) {
            Ok(_) => return,
            Err(e) if attempt < 50 && e.to_string().contains("being accessed by other users") => {
                std::thread::sleep(std::time::Duration::from_millis(100))
            }
            Err(e) => panic!("{sql}: {e}"),
        }
    }
}

/// Builds the migrated template once per migrations state and server. Test
/// processes may race (nextest, parallel runs): a cross-process advisory lock
/// serialises them, and the template appears under its name only complete.
fn ensure_template(server: &str) -> &'static str {
    static READY: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let name = template_name();
    // Held while building, so one test builds and the others wait for it.
    let mut ready = READY.lock().unwrap_or_else(|e| e.into_inner());
    if !ready.contains(server) {
        let mut conn = connect(server);
        diesel::sql_query("SELECT pg_advisory_lock(7171717171)")
            .execute(&mut conn)
            .unwrap();
        if !exists(&mut conn, name) {
            let building = format!("{name}_building");
            diesel::sql_query(format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
                .execute(&mut conn)
                .unwrap();
            diesel::sql_query(format!("CREATE DATABASE {building}"))
                .execute(&mut conn)
                .unwrap();
            {
                let mut tpl = PgConnection::establish(&url_for(server, &building)).unwrap();
                tpl.run_pending_migrations(MIGRATIONS)
                    .expect("migrations apply to the template");
            }
            // TimescaleDB's background workers connect to every database
            // with the extension, and a database being copied or renamed
            // must have no one connected: lock them out for good.
            diesel::sql_query(format!(
                "ALTER DATABASE {building} WITH ALLOW_CONNECTIONS false"
            ))
            .execute(&mut conn)
            .unwrap();
            retry_while_in_use(
                &mut conn,
                &building,
                &format!("ALTER DATABASE {building} RENAME TO {name}"),
            );
        }
        // Templates of other migration states are stale: drop them.
        for stale in databases_like(&mut conn, "mcp_test_tpl_%") {
            if stale != name {
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {stale} WITH (FORCE)"))
                    .execute(&mut conn);
            }
        }
        diesel::sql_query("SELECT pg_advisory_unlock(7171717171)")
            .execute(&mut conn)
            .unwrap();
        ready.insert(server.to_owned());
    }
    name
}

/// A database of its own for one test, dropped (with force) afterwards.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    /// The server it lives on (any database there), to drop it through.
    server: String,
}

impl TestDatabase {
    fn named(server: String) -> Self {
        let suffix: u64 = rand::rng().random();
        let name = format!("mcp_test_{suffix:016x}");
        TestDatabase {
            url: url_for(&server, &name),
            name,
            server,
        }
    }

    /// A name only: the database does not exist yet.
    pub fn unborn() -> Self {
        Self::named(admin_url())
    }

    /// Created, with no migrations applied.
    pub fn empty() -> Self {
        let db = Self::named(admin_url());
        diesel::sql_query(format!("CREATE DATABASE {}", db.name))
            .execute(&mut admin())
            .unwrap();
        db
    }

    /// Created from the migrated template: the current schema, no rows.
    pub fn migrated() -> Self {
        Self::migrated_on(admin_url())
    }

    /// The same on the TimescaleDB server `TIMESCALE_URL` names.
    pub fn timescale() -> Self {
        let db = Self::migrated_on(timescale_url());
        let made = "SELECT count(*) AS n FROM pg_extension WHERE extname = 'timescaledb'";
        assert_eq!(
            db.count(made),
            1,
            "TIMESCALE_URL={} has no TimescaleDB: the migrations made no extension \
             (it must be installed and in shared_preload_libraries, as in the official image)",
            db.server
        );
        db
    }

    fn migrated_on(server: String) -> Self {
        let template = ensure_template(&server);
        let db = Self::named(server);
        let sql = format!("CREATE DATABASE {} TEMPLATE {template}", db.name);
        retry_while_in_use(&mut connect(&db.server), template, &sql);
        db
    }

    pub fn conn(&self) -> PgConnection {
        PgConnection::establish(&self.url).unwrap()
    }

    /// Refuses new connections to this database and ends the open ones
    /// (`false`), or lets them in again (`true`): a database outage.
    pub fn allow_connections(&self, allow: bool) {
        let mut admin = connect(&self.server);
        diesel::sql_query(format!(
            "ALTER DATABASE {} WITH ALLOW_CONNECTIONS {allow}",
            self.name
        ))
        .execute(&mut admin)
        .unwrap();
        // A connection already past its start-up check when the ALTER
        // landed is only in pg_stat_activity a moment later: end the
        // open ones a few times over.
        for _ in 0..(if allow { 0 } else { 5 }) {
            diesel::sql_query(format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'",
                self.name
            ))
            .execute(&mut admin)
            .unwrap();
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    pub fn count(&self, sql: &str) -> i64 {
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        diesel::sql_query(sql)
            .get_result::<N>(&mut self.conn())
            .unwrap()
            .n
    }

    /// Public tables other than Diesel's bookkeeping, sorted.
    pub fn tables(&self) -> Vec<String> {
        #[derive(QueryableByName)]
        struct T {
            #[diesel(sql_type = Text)]
            table_name: String,
        }
        diesel::sql_query(
            "SELECT table_name::text AS table_name FROM information_schema.tables \
             WHERE table_schema = 'public' AND table_name NOT LIKE '\\_\\_diesel%' \
             ORDER BY table_name",
        )
        .load::<T>(&mut self.conn())
        .unwrap()
        .into_iter()
        .map(|t| t.table_name)
        .collect()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = diesel::sql_query(sql).execute(&mut connect(&self.server)) {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

/// The newest migration, the one before it, and how many there are: tests
/// that walk the history name them through these.
pub const NEWEST: &str = "20261207000002";
pub const NEWEST_DIR: &str = "2026-12-07-000002_fold_quiet_hour";
pub const PREVIOUS: &str = "20261207000001";
pub const MIGRATION_COUNT: i64 = 15;

pub const TABLES: [&str; 15] = [
    "analysis_results",
    "mcp_request_logs",
    "mcp_tasks",
    "model_training_logs",
    "performance_metrics",
    "statistics_data",
    "timeseries_data",
    "timeseries_invalidations",
    "timeseries_label_changes",
    "timeseries_label_names",
    "timeseries_label_values",
    "timeseries_metrics",
    "timeseries_rollups",
    "timeseries_rollups_daily",
    "timeseries_series",
];
