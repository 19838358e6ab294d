//! What TimescaleDB adds, checked on the server `TIMESCALE_URL` names (any
//! edition; the TSL-only checks say when they find Apache). Without it they
//! are listed as ignored, never passed:
//! `TIMESCALE_URL=postgres://postgres@host:5432/postgres cargo test --test api timescale::`.
//! The plain-PostgreSQL side of the same migrations is checked on every run.

use diesel_migrations::MigrationHarness;
use mcp_server::db::migrations::{self as m, MIGRATIONS};
use serde_json::json;

use crate::helpers::{TestApp, TestDatabase};

const NEEDS: &str = "needs TimescaleDB: TIMESCALE_URL at a TimescaleDB server (preloaded, as in the official image)";

fn hypertables(db: &TestDatabase) -> i64 {
    db.count(
        "SELECT count(*) AS n FROM timescaledb_information.hypertables \
         WHERE hypertable_name = 'timeseries_data'",
    )
}

fn chunks(db: &TestDatabase) -> i64 {
    db.count(
        "SELECT count(*) AS n FROM timescaledb_information.chunks \
         WHERE hypertable_name = 'timeseries_data'",
    )
}

/// Three weeks of hourly points, through the ingest tool.
async fn three_weeks(db: &TestDatabase) -> usize {
    let app = TestApp::spawn(db, None).await;
    let session = app.session().await;
    let points: Vec<_> = (0..21 * 24)
        .map(|h| json!({ "time": format!("2026-01-{:02}T{:02}:00:00Z", 1 + h / 24, h % 24), "value": h }))
        .collect();
    let n = points.len();
    let r = app
        .call_tool(
            &session,
            "ingest_timeseries",
            json!({ "series": "ts.weeks", "points": points }),
        )
        .await;
    assert_eq!(r["structuredContent"]["written"], n, "{r}");
    // Into the rollups, so later writes into these days recompute them.
    assert!(app.fold().await > 0);
    n
}

/// Whether the server a database is on can make hypertables: the
/// condition the hypertable migration itself tests.
fn timescaledb_usable(db: &TestDatabase) -> bool {
    db.count(
        "SELECT count(*) AS n FROM pg_available_extensions WHERE name = 'timescaledb' \
         AND current_setting('shared_preload_libraries', true) LIKE '%timescaledb%'",
    ) == 1
}

/// Applies one migration file with psql, which prints the server's notices
/// (Diesel swallows them); returns what psql wrote to stderr.
fn psql_file(db: &TestDatabase, migration: &str, file: &str) -> String {
    let path = crate::helpers::project_dir()
        .join("migrations")
        .join(migration)
        .join(file);
    let out = std::process::Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &db.url, "-f"])
        .arg(&path)
        .output()
        .expect("psql (PostgreSQL's client) on PATH");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{}: {stderr}", path.display());
    stderr
}

/// Every run: the conditional migrations take the path the default test
/// server calls for. On plain PostgreSQL (CI here) that is a plain table, a
/// notice that says so, no columnstore, and a start-up that leaves the
/// policy alone; on a TimescaleDB server, the hypertable.
#[rocket::async_test]
async fn the_conditional_migrations_take_the_plain_postgresql_path_where_there_is_no_timescaledb() {
    let db = TestDatabase::migrated();
    if timescaledb_usable(&db) {
        assert_eq!(hypertables(&db), 1, "TimescaleDB here: the hypertable path");
        return;
    }
    let extension = "SELECT count(*) AS n FROM pg_extension WHERE extname = 'timescaledb'";
    assert_eq!(db.count(extension), 0, "no extension was created");
    assert_eq!(
        db.count(
            "SELECT count(*) AS n FROM pg_class WHERE relname = 'timeseries_data' AND relkind = 'r'"
        ),
        1,
        "timeseries_data is a plain table"
    );
    let n = three_weeks(&db).await as i64;
    let rows = "SELECT count(*) AS n FROM timeseries_data";

    // Each conditional migration again, by hand: the notice, and no change.
    let hyper = "2026-11-25-000002_timescale_hypertable";
    let columnstore = "2026-12-02-000002_columnstore";
    let notice = psql_file(&db, hyper, "up.sql");
    assert!(
        notice
            .contains("NOTICE:  timescaledb is not available: timeseries_data stays a plain table"),
        "{notice}"
    );
    for (dir, file) in [
        (columnstore, "up.sql"),
        (columnstore, "down.sql"),
        (hyper, "down.sql"),
    ] {
        assert_eq!(
            psql_file(&db, dir, file),
            "",
            "{dir}/{file}: a silent no-op"
        );
        assert_eq!(db.count(rows), n, "{dir}/{file} keeps every row");
    }
    assert_eq!(db.count(extension), 0);

    // Start-up with a columnstore age set finds no policy to move, and serves.
    let thirty =
        crate::helpers::figment(&db.url, None).merge(("timescale_compress_after_days", 30));
    let app = TestApp::try_spawn(thirty)
        .await
        .expect("starts on plain PostgreSQL");
    let session = app.session().await;
    let stats = app
        .call_tool(
            &session,
            "compute_statistics",
            json!({ "series": "ts.weeks" }),
        )
        .await;
    assert_eq!(stats["structuredContent"]["count"], n, "{stats}");
}

#[rocket::async_test]
#[cfg_attr(
    not(timescale),
    ignore = "needs TimescaleDB: set TIMESCALE_URL (docs/development.md)"
)]
async fn three_weeks_of_points_make_at_least_three_chunks() {
    let db = TestDatabase::timescale();
    assert_eq!(hypertables(&db), 1, "{NEEDS}");
    three_weeks(&db).await;
    assert!(
        chunks(&db) >= 3,
        "7-day chunks over 21 days: {}",
        chunks(&db)
    );
}

#[rocket::async_test]
#[cfg_attr(
    not(timescale),
    ignore = "needs TimescaleDB: set TIMESCALE_URL (docs/development.md)"
)]
async fn revert_keeps_every_row_in_a_plain_table_and_reapplying_makes_a_hypertable_again() {
    let db = TestDatabase::timescale();
    assert_eq!(hypertables(&db), 1, "{NEEDS}");
    let n = three_weeks(&db).await as i64;
    let rows = "SELECT count(*) AS n FROM timeseries_data";
    let mut conn = db.conn();

    // Back to before the hypertable migration (newer ones are reverted first).
    let reverted = m::revert_while(&mut conn, &MIGRATIONS, |version, _| {
        version >= "20261125000002"
    })
    .unwrap();
    assert!(
        reverted
            .last()
            .is_some_and(|r| r.name.contains("timescale_hypertable")),
        "{reverted:?}"
    );
    assert_eq!(hypertables(&db), 0, "a plain table again");
    assert_eq!(db.count(rows), n, "revert keeps every row");
    let pkey = "SELECT count(*) AS n FROM pg_indexes WHERE indexname = 'timeseries_data_pkey'";
    assert_eq!(db.count(pkey), 1);

    conn.run_next_migration(MIGRATIONS).unwrap();
    assert_eq!(hypertables(&db), 1, "re-applying recreates the hypertable");
    assert_eq!(db.count(rows), n);
    assert!(chunks(&db) >= 3);
}

fn tsl(db: &TestDatabase) -> bool {
    db.count("SELECT count(*) AS n FROM pg_settings WHERE name = 'timescaledb.license' AND setting = 'timescale'") == 1
}

#[rocket::async_test]
#[cfg_attr(
    not(timescale),
    ignore = "needs TimescaleDB: set TIMESCALE_URL (docs/development.md)"
)]
async fn a_backfill_into_compressed_chunks_replaces_values_and_revert_decompresses() {
    let db = TestDatabase::timescale();
    assert_eq!(hypertables(&db), 1, "{NEEDS}");
    if !tsl(&db) {
        eprintln!("Apache edition: no columnstore, the migration is a no-op");
        assert_eq!(db.count("SELECT count(*) AS n FROM timescaledb_information.hypertables WHERE compression_enabled"), 0);
        return;
    }
    let n = three_weeks(&db).await as i64;
    let policy = "SELECT count(*) AS n FROM timescaledb_information.jobs \
                  WHERE proc_name = 'policy_compression' AND hypertable_name = 'timeseries_data' \
                  AND config->>'compress_after' = '7 days'";
    assert_eq!(db.count(policy), 1, "the policy, at the default age");
    // Start-up sets the age from TIMESCALE_COMPRESS_AFTER_DAYS.
    let thirty =
        crate::helpers::figment(&db.url, None).merge(("timescale_compress_after_days", 30));
    drop(TestApp::try_spawn(thirty).await.unwrap());
    let aged = "SELECT count(*) AS n FROM timescaledb_information.jobs \
                WHERE proc_name = 'policy_compression' AND hypertable_name = 'timeseries_data' \
                AND config->>'compress_after' = '30 days'";
    assert_eq!(db.count(aged), 1, "the age a setting gave");
    db.count("SELECT count(compress_chunk(c)) AS n FROM show_chunks('timeseries_data') c");
    let compressed = "SELECT count(*) AS n FROM timescaledb_information.chunks \
                      WHERE hypertable_name = 'timeseries_data' AND is_compressed";
    assert!(db.count(compressed) >= 3);

    // Replace a day inside a compressed chunk, through the tool.
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    let day: Vec<_> = (0..24)
        .map(|h| json!({ "time": format!("2026-01-02T{h:02}:00:00Z"), "value": -1 }))
        .collect();
    let r = app
        .call_tool(
            &session,
            "ingest_timeseries",
            json!({ "series": "ts.weeks", "points": day }),
        )
        .await;
    assert_ne!(r["isError"], true, "{r}");
    assert_eq!(
        db.count("SELECT count(*) AS n FROM timeseries_data"),
        n,
        "replaced, not added"
    );
    assert_eq!(
        db.count("SELECT count(*) AS n FROM timeseries_data WHERE value = -1"),
        24
    );
    assert_eq!(
        db.count(crate::rollups::MISMATCHES),
        0,
        "the rollups follow"
    );
    let stats = app
        .call_tool(
            &session,
            "compute_statistics",
            json!({ "series": "ts.weeks" }),
        )
        .await;
    assert_eq!(stats["structuredContent"]["min"], -1.0, "{stats}");
    assert_eq!(stats["structuredContent"]["count"], n);

    // Revert decompresses first and turns the columnstore off.
    let mut conn = db.conn();
    let reverted = m::revert_while(&mut conn, &MIGRATIONS, |version, _| {
        version >= "20261202000002"
    })
    .unwrap();
    assert!(
        reverted.iter().any(|r| r.name.contains("columnstore")),
        "{reverted:?}"
    );
    assert_eq!(db.count(compressed), 0);
    assert_eq!(db.count("SELECT count(*) AS n FROM timescaledb_information.hypertables WHERE compression_enabled"), 0);
    assert_eq!(db.count("SELECT count(*) AS n FROM timeseries_data"), n);
    conn.run_next_migration(MIGRATIONS).unwrap();
    assert_eq!(db.count(policy), 1, "re-applied");
}

/// On a hypertable the migration chose the row-level trigger (hypertables
/// refuse transition tables), and every SQL write is in every answer.
#[rocket::async_test]
#[cfg_attr(
    not(timescale),
    ignore = "needs TimescaleDB: set TIMESCALE_URL (docs/development.md)"
)]
async fn sql_writes_into_a_hypertable_are_in_every_answer() {
    let db = TestDatabase::timescale();
    assert_eq!(hypertables(&db), 1, "{NEEDS}");
    // TRIGGER_TYPE_ROW is bit 0 of tgtype.
    let row_level = "SELECT count(*) AS n FROM pg_trigger
                      WHERE tgrelid = 'timeseries_data'::regclass
                        AND tgname LIKE 'timeseries_data_%' AND tgtype & 1 = 1";
    assert_eq!(db.count(row_level), 3, "inserted, deleted, updated");
    crate::sql_writers::each_sql_write_is_in_every_answer(db, None).await;
}

#[rocket::async_test]
#[cfg_attr(
    not(timescale),
    ignore = "needs TimescaleDB: set TIMESCALE_URL (docs/development.md)"
)]
async fn raw_and_rollup_retention_on_a_hypertable() {
    crate::retention::raw_retention_on(TestDatabase::timescale()).await;
    crate::retention::rollup_retention_on(TestDatabase::timescale()).await;
}

/// Thirty days of minutes, seven kept: the chunks wholly before the horizon
/// go by `drop_chunks`, the rest by deletes, and the count says both.
#[rocket::async_test]
#[cfg_attr(
    not(timescale),
    ignore = "needs TimescaleDB: set TIMESCALE_URL (docs/development.md)"
)]
async fn retention_drops_whole_chunks_and_counts_their_points() {
    use chrono::{Duration, DurationRound, Utc};
    let db = TestDatabase::timescale();
    assert_eq!(hypertables(&db), 1, "{NEEDS}");
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    let end = Utc::now().duration_trunc(Duration::hours(1)).unwrap();
    let points: Vec<_> = (1..=30 * 24 * 60)
        .map(|m| (end - Duration::minutes(m), (m % 97) as f64))
        .collect();
    app.ingest(&session, "ts.month", &points).await;
    assert!(app.fold_all().await > 0);
    let total = db.count("SELECT count(*) AS n FROM timeseries_data");
    let horizon = end - Duration::days(7);
    let going = db.count(&format!(
        "SELECT count(*) AS n FROM timeseries_data WHERE time < '{}'",
        horizon.to_rfc3339()
    ));
    let chunks_before = chunks(&db);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-server"))
        .arg("retention")
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .env("RETENTION_RAW_DAYS", "7")
        .output()
        .unwrap();
    let said = crate::helpers::text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains(&format!("dropped {going} raw points")),
        "{said}"
    );
    assert!(chunks(&db) < chunks_before, "{said}");
    // Every point is still counted, from the rollups before the horizon.
    let start = (end - Duration::days(31)).to_rfc3339();
    let after = app
        .call_tool(
            &session,
            "compute_statistics",
            json!({ "series": "ts.month", "start": start }),
        )
        .await;
    assert_eq!(after["structuredContent"]["count"], total, "{after}");
    assert_eq!(after["structuredContent"]["min"], 0.0, "{after}");
    assert_eq!(after["structuredContent"]["max"], 96.0, "{after}");
}
