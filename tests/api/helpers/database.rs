//! A database of its own for each test, copied from a template migrated
//! once per migrations state.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

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

fn url_for(db: &str) -> String {
    let mut url = url::Url::parse(&admin_url()).expect("TEST_DATABASE_URL is a URL");
    url.set_path(&format!("/{db}"));
    url.into()
}

pub fn admin() -> PgConnection {
    PgConnection::establish(&admin_url())
        .unwrap_or_else(|e| panic!("PostgreSQL at {} is needed for tests: {e}", admin_url()))
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

/// Builds the migrated template once per migrations state. Test processes
/// may race (nextest, parallel runs): a cross-process advisory lock
/// serialises them, and the template appears under its name only complete.
fn ensure_template() -> &'static str {
    static READY: OnceLock<()> = OnceLock::new();
    let name = template_name();
    READY.get_or_init(|| {
        let mut conn = admin();
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
                let mut tpl = PgConnection::establish(&url_for(&building)).unwrap();
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
    });
    name
}

/// A database of its own for one test, dropped (with force) afterwards.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    fn named() -> Self {
        let suffix: u64 = rand::rng().random();
        let name = format!("mcp_test_{suffix:016x}");
        TestDatabase {
            url: url_for(&name),
            name,
        }
    }

    /// A name only: the database does not exist yet.
    pub fn unborn() -> Self {
        Self::named()
    }

    /// Created, with no migrations applied.
    pub fn empty() -> Self {
        let db = Self::named();
        diesel::sql_query(format!("CREATE DATABASE {}", db.name))
            .execute(&mut admin())
            .unwrap();
        db
    }

    /// Created from the migrated template: the current schema, no rows.
    pub fn migrated() -> Self {
        let template = ensure_template();
        let db = Self::named();
        let sql = format!("CREATE DATABASE {} TEMPLATE {template}", db.name);
        retry_while_in_use(&mut admin(), template, &sql);
        db
    }

    pub fn conn(&self) -> PgConnection {
        PgConnection::establish(&self.url).unwrap()
    }

    /// Refuses new connections to this database and ends the open ones
    /// (`false`), or lets them in again (`true`): a database outage.
    pub fn allow_connections(&self, allow: bool) {
        let mut admin = admin();
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
        if let Err(e) = diesel::sql_query(sql).execute(&mut admin()) {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

/// The newest migration, the one before it, and how many there are: tests
/// that walk the history name them through these.
pub const NEWEST: &str = "20261203000001";
pub const NEWEST_DIR: &str = "2026-12-03-000001_series_catalog";
pub const PREVIOUS: &str = "20261202000003";
pub const MIGRATION_COUNT: i64 = 8;

pub const TABLES: [&str; 10] = [
    "analysis_results",
    "mcp_request_logs",
    "mcp_tasks",
    "model_training_logs",
    "performance_metrics",
    "statistics_data",
    "timeseries_data",
    "timeseries_rollups",
    "timeseries_rollups_daily",
    "timeseries_series",
];
