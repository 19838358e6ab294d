use std::process::Command;

use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_migrations::{FileBasedMigrations, MigrationHarness};
use mcp_server::db::DbError;
use mcp_server::db::migrations::{self as m, MIGRATIONS};

use crate::helpers::{TABLES, TestDatabase, project_dir};

/// The schema as the catalog describes it: columns, constraints, indexes and
/// functions, one line each, sorted.
fn snapshot(conn: &mut PgConnection) -> Vec<String> {
    #[derive(QueryableByName)]
    struct Line {
        #[diesel(sql_type = Text)]
        line: String,
    }
    let sql = "
        SELECT format('column %s.%s %s null=%s default=%s', table_name, column_name,
                      data_type, is_nullable, coalesce(column_default, '-')) AS line
          FROM information_schema.columns WHERE table_schema = 'public'
        UNION ALL
        SELECT format('constraint %s %s %s', conrelid::regclass, conname, pg_get_constraintdef(oid))
          FROM pg_constraint WHERE connamespace = 'public'::regnamespace
        UNION ALL
        SELECT format('index %s', indexdef) FROM pg_indexes WHERE schemaname = 'public'
        UNION ALL
        SELECT format('function %s', p.oid::regprocedure) FROM pg_proc p
          WHERE p.pronamespace = 'public'::regnamespace
            -- An extension's own functions (TimescaleDB's, in public) are
            -- not ours: its migration leaves the extension installed.
            AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                               AND d.objid = p.oid AND d.deptype = 'e')
        ORDER BY 1";
    diesel::sql_query(sql)
        .load::<Line>(conn)
        .unwrap()
        .into_iter()
        .map(|l| l.line)
        .collect()
}

#[test]
fn the_tables_exist_with_their_keys() {
    let db = TestDatabase::migrated();
    assert_eq!(db.tables(), TABLES);
    #[derive(QueryableByName)]
    struct Key {
        #[diesel(sql_type = Text)]
        table_name: String,
        #[diesel(sql_type = Text)]
        columns: String,
    }
    let keys: Vec<(String, String)> = diesel::sql_query(
        "SELECT c.conrelid::regclass::text AS table_name,
                string_agg(a.attname, ',' ORDER BY k.ord) AS columns
           FROM pg_constraint c
           CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
           JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
          WHERE c.contype = 'p' AND c.connamespace = 'public'::regnamespace
          GROUP BY 1 ORDER BY 1",
    )
    .load::<Key>(&mut db.conn())
    .unwrap()
    .into_iter()
    .map(|k| (k.table_name, k.columns))
    .collect();
    let expected: Vec<(String, String)> = [
        ("__diesel_schema_migrations", "version"),
        ("analysis_results", "id"),
        ("mcp_request_logs", "id"),
        ("mcp_tasks", "task_id"),
        ("model_training_logs", "id"),
        ("performance_metrics", "id"),
        ("statistics_data", "id"),
        ("timeseries_data", "series_name,time"),
        ("timeseries_invalidations", "series_name"),
        ("timeseries_label_changes", "id"),
        ("timeseries_label_names", "name"),
        ("timeseries_label_values", "name,value"),
        ("timeseries_metrics", "metric"),
        ("timeseries_rollups", "series_name,bucket"),
        ("timeseries_rollups_daily", "series_name,bucket"),
        ("timeseries_series", "series_name"),
    ]
    .iter()
    .map(|(t, c)| (t.to_string(), c.to_string()))
    .collect();
    assert_eq!(keys, expected);
}

#[test]
fn a_repeated_timestamp_replaces_the_point_and_bad_values_are_refused() {
    let db = TestDatabase::migrated();
    let mut conn = db.conn();
    let upsert = "INSERT INTO timeseries_data (series_name, time, value) VALUES ('cpu', '2026-01-01T00:00:00Z', $1) \
                  ON CONFLICT (series_name, time) DO UPDATE SET value = EXCLUDED.value";
    for v in [1.0, 2.0] {
        diesel::sql_query(upsert)
            .bind::<diesel::sql_types::Double, _>(v)
            .execute(&mut conn)
            .unwrap();
    }
    assert_eq!(
        db.count("SELECT count(*) AS n FROM timeseries_data WHERE value = 2"),
        1
    );
    assert_eq!(db.count("SELECT count(*) AS n FROM timeseries_data"), 1);
    for bad in [
        "INSERT INTO timeseries_data (series_name, time, value) VALUES ('cpu', now(), 'NaN')",
        "INSERT INTO timeseries_data (series_name, time, value) VALUES ('bad name!', now(), 1)",
    ] {
        assert!(
            diesel::sql_query(bad).execute(&mut conn).is_err(),
            "accepted: {bad}"
        );
    }
}

#[test]
fn every_migration_reverts_and_reapplies_to_the_same_schema() {
    let db = TestDatabase::migrated();
    let mut conn = db.conn();
    let full = snapshot(&mut conn);
    let count = m::all(&MIGRATIONS).unwrap().len();
    assert_eq!(m::applied(&mut conn).unwrap().len(), count);

    // One step at a time, down to nothing...
    let mut seen = vec![full.clone()];
    for step in 1..=count {
        let reverted = m::revert_while(&mut conn, &MIGRATIONS, |_, n| n < 1).unwrap();
        assert_eq!(reverted.len(), 1, "step {step}");
        assert_eq!(m::applied(&mut conn).unwrap().len(), count - step);
        seen.push(snapshot(&mut conn));
    }
    assert!(db.tables().is_empty(), "left behind: {:?}", db.tables());
    assert!(
        snapshot(&mut conn)
            .iter()
            .all(|l| l.contains("__diesel_schema_migrations"))
    );

    // ...and up again, one at a time: each state matches the one on the way down.
    for step in (0..count).rev() {
        let version = conn.run_next_migration(MIGRATIONS).unwrap().to_string();
        assert_eq!(
            snapshot(&mut conn),
            seen[step],
            "schema after re-applying {version}"
        );
    }
    assert_eq!(snapshot(&mut conn), full);
}

/// Ignored by default, so a machine without the Diesel CLI shows it as
/// ignored rather than passing it; CI runs it with `--include-ignored`.
#[test]
#[ignore = "needs the Diesel CLI (cargo install diesel_cli --no-default-features --features postgres); run with --include-ignored"]
fn schema_rs_is_what_diesel_print_schema_prints() {
    let db = TestDatabase::migrated();
    let output = Command::new("diesel")
        .args(["print-schema", "--database-url", &db.url])
        .current_dir(project_dir())
        .output()
        .unwrap_or_else(|e| panic!("the Diesel CLI is not runnable ({e}): install it with `cargo install diesel_cli --no-default-features --features postgres`"));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8_lossy(&output.stdout);
    let committed = std::fs::read_to_string(project_dir().join("src/schema.rs")).unwrap();
    if printed != committed {
        let diff = similar::TextDiff::from_lines(committed.as_str(), printed.as_ref())
            .unified_diff()
            .header("src/schema.rs", "diesel print-schema")
            .to_string();
        panic!(
            "src/schema.rs differs from `diesel print-schema`: regenerate it (diesel print-schema > src/schema.rs), never edit it\n{diff}"
        );
    }
}

#[test]
fn a_failing_migration_is_named_and_leaves_the_database_as_it_was() {
    let db = TestDatabase::empty();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, up: &str, down: &str| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("up.sql"), up).unwrap();
        std::fs::write(d.join("down.sql"), down).unwrap();
    };
    write(
        "2020-01-01-000001_good",
        "CREATE TABLE good (id int);",
        "DROP TABLE good;",
    );
    write(
        "2020-01-01-000002_broken",
        "CREATE TABLE half_done (id int);\nSELECT 1 / 0;",
        "DROP TABLE half_done;",
    );
    write(
        "2020-01-01-000003_after",
        "CREATE TABLE after (id int);",
        "DROP TABLE after;",
    );
    let source = FileBasedMigrations::from_path(dir.path()).unwrap();

    let mut conn = db.conn();
    let err = m::with_lock(&mut conn, std::time::Duration::from_secs(5), |c| {
        m::run_pending(c, &source)
    })
    .unwrap_err();
    match &err {
        DbError::Migration { name, error } => {
            assert_eq!(name, "2020-01-01-000002_broken");
            assert!(error.contains("division by zero"), "{error}");
        }
        other => panic!("expected a migration error, got {other:?}"),
    }
    assert!(err.to_string().contains("2020-01-01-000002_broken"));
    assert_eq!(
        db.tables(),
        ["good"],
        "the broken migration's DDL was rolled back"
    );
    assert_eq!(m::applied(&mut conn).unwrap(), ["20200101000001"]);
    // The lock was released despite the failure.
    let ok = m::with_lock(
        &mut db.conn(),
        std::time::Duration::from_secs(1),
        |_| Ok(()),
    );
    assert!(ok.is_ok());
}
