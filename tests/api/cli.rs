use std::process::Command;
use std::time::{Duration, Instant};

use crate::helpers::{MIGRATION_COUNT, NEWEST, PREVIOUS, TABLES, TestDatabase, mcp, text};

#[test]
fn run_status_revert_and_history_round_trip() {
    let db = TestDatabase::empty();
    let status = mcp(&["migrate", "status"], &db.url);
    assert!(status.status.success(), "{}", text(&status));
    assert!(text(&status).contains("current version: <base>"));
    assert!(text(&status).contains("2026-11-25-000001_create_tables"));

    let run = mcp(&["migrate", "run"], &db.url);
    assert!(run.status.success(), "{}", text(&run));
    assert!(text(&run).contains("Running upgrade 00000000000000 -> 20261125000001"));
    assert_eq!(db.tables(), TABLES);

    let again = mcp(&["migrate", "run"], &db.url);
    assert!(
        text(&again).contains("no pending migrations"),
        "{}",
        text(&again)
    );

    let status = mcp(&["migrate", "status"], &db.url);
    assert!(text(&status).contains(&format!("current version: {NEWEST}")));
    assert!(text(&status).contains("pending: none"));

    let history = mcp(&["migrate", "history"], &db.url);
    assert!(history.status.success());
    assert_eq!(
        String::from_utf8_lossy(&history.stdout).lines().count(),
        1 + MIGRATION_COUNT as usize,
        "a header and every migration"
    );

    // Destructive without --yes and without a terminal: refused, nothing done.
    let refused = mcp(&["migrate", "revert", "--all"], &db.url);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("--yes"));
    assert_eq!(db.tables(), TABLES);

    let one = mcp(&["migrate", "revert", "--yes"], &db.url);
    assert!(one.status.success(), "{}", text(&one));
    assert_eq!(
        db.count("SELECT count(*) AS n FROM __diesel_schema_migrations"),
        MIGRATION_COUNT - 1
    );

    let to = mcp(
        &["migrate", "revert", "--to", "00000000000000", "--yes"],
        &db.url,
    );
    assert!(to.status.success(), "{}", text(&to));
    assert!(db.tables().is_empty());

    let redo_nothing = mcp(&["migrate", "run"], &db.url);
    assert!(redo_nothing.status.success());
    let all = mcp(&["migrate", "revert", "--all", "--yes"], &db.url);
    assert!(all.status.success(), "{}", text(&all));
    assert!(db.tables().is_empty());
    assert_eq!(
        db.count("SELECT count(*) AS n FROM __diesel_schema_migrations"),
        0
    );
}

#[test]
fn redo_and_mark_applied() {
    let db = TestDatabase::migrated();
    let redo = mcp(&["migrate", "redo", "--yes"], &db.url);
    assert!(redo.status.success(), "{}", text(&redo));
    assert!(text(&redo).contains(&format!("Running downgrade {NEWEST}")));
    assert!(text(&redo).contains(&format!("Running upgrade {PREVIOUS} -> {NEWEST}")));

    diesel::RunQueryDsl::execute(
        diesel::sql_query(format!(
            "DELETE FROM __diesel_schema_migrations WHERE version = '{NEWEST}'"
        )),
        &mut db.conn(),
    )
    .unwrap();
    let unknown = mcp(
        &["migrate", "mark-applied", "19990101000000", "--yes"],
        &db.url,
    );
    assert_eq!(unknown.status.code(), Some(1));
    assert!(text(&unknown).contains("not one of this binary's migrations"));
    let stamp = mcp(&["migrate", "mark-applied", NEWEST, "--yes"], &db.url);
    assert!(stamp.status.success(), "{}", text(&stamp));
    assert!(text(&mcp(&["migrate", "status"], &db.url)).contains("pending: none"));
}

#[test]
fn errors_are_one_line_and_non_zero() {
    let db = TestDatabase::migrated();
    let not_applied = mcp(
        &["migrate", "revert", "--to", "20000101000000", "--yes"],
        &db.url,
    );
    assert_eq!(not_applied.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&not_applied.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    let usage = mcp(&["migrate", "revert", "--all", "--steps", "2"], &db.url);
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn an_unreachable_database_fails_within_seconds() {
    let started = Instant::now();
    let out = mcp(
        &["migrate", "status"],
        "postgres://postgres@127.0.0.1:1/nothing",
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: cannot connect to postgres://postgres@127.0.0.1:1/nothing"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_missing_database_is_an_error_for_status() {
    let db = TestDatabase::unborn();
    let out = mcp(&["migrate", "status"], &db.url);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}

#[test]
fn a_failing_migration_exits_non_zero_naming_it() {
    let db = TestDatabase::empty();
    diesel::RunQueryDsl::execute(
        diesel::sql_query("CREATE TABLE statistics_data (x int)"),
        &mut db.conn(),
    )
    .unwrap();
    let out = mcp(&["migrate", "run"], &db.url);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: migration 2026-11-25-000001_create_tables failed")
            && stderr.contains("already exists"),
        "{stderr}"
    );
    assert_eq!(db.tables(), ["statistics_data"]);
}

#[test]
fn healthcheck_fails_when_nothing_listens() {
    let out = Command::new(env!("CARGO_BIN_EXE_mcp-server"))
        .args(["healthcheck", "--url", "http://127.0.0.1:1/health"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn token_new_prints_a_token_and_its_file_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_mcp-server"))
        .args([
            "token",
            "new",
            "--scopes",
            "timeseries:read,analytics:run",
            "--name",
            "agent",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let (token, line) = (lines[0], lines[1]);
    assert!(token.starts_with("mcp_") && token.len() > 40);
    assert!(!line.contains(token), "the line holds no secret");
    let entries = mcp_server::auth::tokens::parse(line).unwrap();
    assert_eq!(entries[0].digest, mcp_server::auth::tokens::sha256(token));
    assert_eq!(
        entries[0].scopes.to_string(),
        "timeseries:read analytics:run"
    );
    assert_eq!(entries[0].name, "agent");
    let bad = Command::new(env!("CARGO_BIN_EXE_mcp-server"))
        .args([
            "token",
            "new",
            "--scopes",
            "timeseries:admin",
            "--name",
            "x",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(text(&bad).contains("unknown scope"), "{}", text(&bad));
}
