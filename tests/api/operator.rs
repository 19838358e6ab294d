//! Migrations an operator can trust: a database ahead of the binary, an
//! edited migration, stamping, exact reports and a revert plan.

use diesel::RunQueryDsl;

use crate::helpers::{
    MIGRATION_COUNT, NEWEST_DIR, TABLES, TestApp, TestDatabase, figment, mcp, text,
};

/// Start-up is refused (the error is inspected: an unhandled Rocket error
/// aborts the process when dropped).
async fn start_is_refused(db: &TestDatabase) -> bool {
    match TestApp::try_spawn(figment(&db.url, None)).await {
        Ok(_) => false,
        Err(e) => matches!(e.kind(), rocket::error::ErrorKind::FailedFairings(_)),
    }
}

fn sql(db: &TestDatabase, statement: &str) {
    diesel::sql_query(statement)
        .execute(&mut db.conn())
        .unwrap();
}

const NEWER: &str = "29990101000000";
const APPLIED: &str = "SELECT count(*) AS n FROM __diesel_schema_migrations";

#[rocket::async_test]
async fn a_database_ahead_is_served_reported_and_never_reverted_around() {
    let db = TestDatabase::migrated();
    sql(
        &db,
        &format!("INSERT INTO __diesel_schema_migrations (version) VALUES ('{NEWER}')"),
    );

    // The rolling-deploy case: an older replica starts and serves.
    let app = TestApp::spawn(&db, None).await;
    let (status, health) = app.get_json("/health").await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["database"]["ahead"], serde_json::json!([NEWER]));
    assert_eq!(health["database"]["up_to_date"], false);

    let status = mcp(&["migrate", "status"], &db.url);
    assert_eq!(status.status.code(), Some(3), "{}", text(&status));
    assert!(
        text(&status).contains("database is ahead of this binary") && text(&status).contains(NEWER)
    );

    let revert = mcp(&["migrate", "revert", "--yes"], &db.url);
    assert_eq!(revert.status.code(), Some(1), "{}", text(&revert));
    assert!(
        text(&revert).contains("not in this binary"),
        "{}",
        text(&revert)
    );
    assert_eq!(
        db.count(APPLIED),
        MIGRATION_COUNT + 1,
        "nothing was reverted"
    );

    // A pending migration older than what is applied would run out of order.
    sql(
        &db,
        "DELETE FROM __diesel_schema_migrations WHERE version = '20261125000002'",
    );
    let run = mcp(&["migrate", "run"], &db.url);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    assert!(
        text(&run).contains("out of order") && text(&run).contains(NEWER),
        "{}",
        text(&run)
    );
    assert_eq!(db.count(APPLIED), MIGRATION_COUNT, "nothing was applied");
    assert!(start_is_refused(&db).await, "start-up refuses too");
}

#[rocket::async_test]
async fn an_edited_migration_stops_start_up_until_restored_or_repaired() {
    let db = TestDatabase::migrated();
    // Applied by the Diesel harness: no checksums yet; the first start
    // records them (trust on first use).
    drop(TestApp::spawn(&db, None).await);
    let checksums = "SELECT count(*) AS n FROM __diesel_schema_migrations_checksums";
    assert_eq!(db.count(checksums), MIGRATION_COUNT);

    // What an edit of 2026-11-25-000001's file looks like from here.
    sql(
        &db,
        "UPDATE __diesel_schema_migrations_checksums SET checksum = 'edited' WHERE version = '20261125000001'",
    );
    assert!(start_is_refused(&db).await, "start-up stops");
    let status = mcp(&["migrate", "status"], &db.url);
    assert_eq!(status.status.code(), Some(4), "{}", text(&status));
    assert!(
        text(&status).contains("20261125000001")
            && text(&status).contains("2026-11-25-000001_create_tables")
            && text(&status).contains("repair"),
        "{}",
        text(&status)
    );

    let repair = mcp(&["migrate", "repair", "--yes"], &db.url);
    assert!(repair.status.success(), "{}", text(&repair));
    assert!(mcp(&["migrate", "status"], &db.url).status.success());
    drop(TestApp::spawn(&db, None).await);

    // Reverting clears the record with the row it belongs to.
    let revert = mcp(&["migrate", "revert", "--yes"], &db.url);
    assert!(revert.status.success(), "{}", text(&revert));
    assert_eq!(db.count(checksums), MIGRATION_COUNT - 1);
}

#[test]
fn mark_applied_all_refuses_gaps_and_takes_either_spelling() {
    let db = TestDatabase::empty();
    let gap = mcp(
        &["migrate", "mark-applied", "2026-11-25-000002", "--yes"],
        &db.url,
    );
    assert_eq!(gap.status.code(), Some(1), "{}", text(&gap));
    assert!(
        text(&gap).contains("unapplied beneath it"),
        "{}",
        text(&gap)
    );
    assert_eq!(db.count(APPLIED), 0);

    let head = mcp(&["migrate", "mark-applied", "--all", "--yes"], &db.url);
    assert!(head.status.success(), "{}", text(&head));
    assert!(
        text(&head).contains(&format!("marked {MIGRATION_COUNT} migration(s)")),
        "{}",
        text(&head)
    );
    let status = mcp(&["migrate", "status"], &db.url);
    assert!(text(&status).contains("pending: none"), "{}", text(&status));
    let again = mcp(&["migrate", "mark-applied", "head", "--yes"], &db.url);
    assert!(
        text(&again).contains(&format!(
            "marked 0 migration(s); {MIGRATION_COUNT} already applied"
        )),
        "{}",
        text(&again)
    );

    let to = mcp(
        &["migrate", "revert", "--to", "2026-11-25-000001", "--yes"],
        &db.url,
    );
    assert!(to.status.success(), "{}", text(&to));
    assert!(
        text(&to).contains(&format!("reverted {} migration(s)", MIGRATION_COUNT - 2)),
        "{}",
        text(&to)
    );
}

#[test]
fn redo_re_applies_only_what_it_reverted_and_says_so() {
    let db = TestDatabase::migrated();
    sql(
        &db,
        "DELETE FROM __diesel_schema_migrations WHERE version > '20261125000001'",
    );
    let redo = mcp(&["migrate", "redo", "--yes"], &db.url);
    assert!(redo.status.success(), "{}", text(&redo));
    let out = text(&redo);
    assert!(
        out.contains("reverted 2026-11-25-000001_create_tables"),
        "{out}"
    );
    assert!(
        out.contains("re-applied 2026-11-25-000001_create_tables"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{} other pending migration(s) left pending",
            MIGRATION_COUNT - 2
        )),
        "{out}"
    );
    assert!(
        !out.contains("applied 2026-11-25-000002"),
        "redo applied more than it reverted: {out}"
    );
    assert_eq!(db.count(APPLIED), 2);
}

#[test]
fn the_revert_plan_names_what_is_dropped_and_changes_nothing() {
    let db = TestDatabase::migrated();
    sql(
        &db,
        "INSERT INTO timeseries_data (series_name, time, value)
         SELECT 'plan', t, 1 FROM generate_series(now() - interval '4 hours', now(), interval '1 hour') t",
    );
    let plan = mcp(
        &["migrate", "revert", "--to", "00000000000000", "--plan"],
        &db.url,
    );
    assert!(plan.status.success(), "{}", text(&plan));
    let out = String::from_utf8_lossy(&plan.stdout);
    let newest = out.find(NEWEST_DIR).expect("the newest step");
    let rollups = out.find("2026-12-02-000001_rollups").expect("rollups");
    let tasks = out.find("2026-11-25-000003_mcp_tasks").expect("tasks");
    let hypertable = out
        .find("2026-11-25-000002_timescale_hypertable")
        .expect("hypertable");
    let tables = out.find("2026-11-25-000001_create_tables").expect("tables");
    assert!(
        newest < rollups && rollups < tasks && tasks < hypertable && hypertable < tables,
        "newest first: {out}"
    );
    assert!(
        out.contains("drops table timeseries_data (5 rows)"),
        "{out}"
    );
    for table in TABLES {
        assert!(
            out.contains(&format!("drops table {table} (")),
            "{table}: {out}"
        );
    }
    assert_eq!(db.tables(), TABLES, "a plan changes nothing");
    assert_eq!(db.count("SELECT count(*) AS n FROM timeseries_data"), 5);

    // Without --yes and a terminal: the plan is shown, and nothing is done.
    let refused = mcp(&["migrate", "revert", "--all"], &db.url);
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused).contains("drops table timeseries_data (5 rows)"));
    assert_eq!(db.tables(), TABLES);
}
