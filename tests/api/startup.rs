use diesel::prelude::*;
use mcp_server::db::StartupReport;
use mcp_server::db::migrations::{self as m, MIGRATIONS};

use crate::helpers::{TABLES, TestApp, TestDatabase, figment};

#[rocket::async_test]
async fn start_creates_a_missing_database_and_migrates_it() {
    let db = TestDatabase::unborn();
    let app = TestApp::spawn(&db, None).await;
    let report = app.client.rocket().state::<StartupReport>().unwrap();
    assert_eq!(report.applied.len(), m::all(&MIGRATIONS).unwrap().len());
    assert_eq!(db.tables(), TABLES);
    let (status, health) = app.get_json("/health").await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["database"]["pending_count"], 0);
}

#[rocket::async_test]
async fn four_replicas_starting_together_migrate_once_and_all_serve() {
    let db = TestDatabase::unborn();
    let starts = (0..4).map(|_| TestApp::try_spawn(figment(&db.url, None)));
    let apps: Vec<TestApp> = futures_join_all(starts).await;
    let applied: usize = apps
        .iter()
        .map(|a| {
            a.client
                .rocket()
                .state::<StartupReport>()
                .unwrap()
                .applied
                .len()
        })
        .sum();
    let total = m::all(&MIGRATIONS).unwrap().len();
    assert_eq!(
        applied, total,
        "each migration is applied by exactly one replica"
    );
    assert_eq!(
        db.count("SELECT count(*) AS n FROM __diesel_schema_migrations"),
        total as i64
    );
    for app in &apps {
        assert_eq!(app.get_json("/health").await.0, 200);
    }
}

/// Starts every future on its own task so the ignites really overlap.
async fn futures_join_all(
    starts: impl Iterator<Item = impl Future<Output = Result<TestApp, rocket::Error>> + Send + 'static>,
) -> Vec<TestApp> {
    let handles: Vec<_> = starts.map(rocket::tokio::spawn).collect();
    let mut apps = Vec::new();
    for h in handles {
        apps.push(h.await.unwrap().expect("replica starts"));
    }
    apps
}

#[rocket::async_test]
async fn a_failing_migration_aborts_the_launch() {
    let db = TestDatabase::empty();
    // A table in the way makes the create-tables migration fail.
    diesel::sql_query("CREATE TABLE timeseries_data (x int)")
        .execute(&mut db.conn())
        .unwrap();
    let result = TestApp::try_spawn(figment(&db.url, None)).await;
    let err = result.err().expect("launch is refused");
    assert!(
        matches!(err.kind(), rocket::error::ErrorKind::FailedFairings(_)),
        "{err}"
    );
    // Only the setup migration went in; the failed one left nothing.
    assert_eq!(db.tables(), ["timeseries_data"]);
    assert_eq!(
        db.count("SELECT count(*) AS n FROM __diesel_schema_migrations"),
        1
    );
}

#[rocket::async_test]
async fn an_unreachable_database_fails_start_up_within_the_configured_wait() {
    let started = std::time::Instant::now();
    let fig = figment("postgres://postgres@127.0.0.1:1/nothing", None)
        .merge(("db_startup_timeout_secs", 3));
    let err = TestApp::try_spawn(fig).await.err().expect("start-up fails");
    assert!(
        matches!(err.kind(), rocket::error::ErrorKind::FailedFairings(_)),
        "{err}"
    );
    // The whole wait, with a last attempt at its end (it once gave up at 1.8 s).
    let waited = started.elapsed();
    assert!(
        waited >= std::time::Duration::from_secs(3) && waited < std::time::Duration::from_secs(10),
        "{waited:?}"
    );
}
