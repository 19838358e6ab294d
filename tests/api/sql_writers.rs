//! Writes the server did not make (psql's UPDATE, INSERT, DELETE, \copy and
//! TRUNCATE) never leave a wrong answer: right after each, and after the
//! fold that recomputes the hours they touched, the tools agree with SQL
//! over the raw points. Both forms of the invalidation trigger run here:
//! statement-level (plain PostgreSQL) and row-level (what a hypertable gets).

use chrono::{DateTime, Duration, TimeZone, Utc};
use diesel::prelude::*;
use diesel::sql_types::Double;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestDatabase, close};
use crate::rollups::{MISMATCHES, reference};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap()
}

fn psql(db: &TestDatabase, command: &str) {
    let out = std::process::Command::new("psql")
        .args([
            db.url.as_str(),
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            command,
        ])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn near(got: &Value, want: Option<f64>, what: &str) {
    match want {
        Some(w) => close(got.as_f64().unwrap_or(f64::NAN), w, what),
        None => assert!(got.is_null(), "{what}: {got}"),
    }
}

/// Statistics, trend and hourly maxima of `series` from the tools, each
/// against the same in SQL over the raw points.
async fn agree(app: &TestApp, session: &str, db: &TestDatabase, series: &str, when: &str) {
    let (start, end) = (t0() - Duration::days(1), t0() + Duration::days(5));
    let want = reference(db, series, start, end);
    let window = json!({ "series": series, "start": start.to_rfc3339(), "end": end.to_rfc3339() });
    let stats = app
        .call_tool(session, "compute_statistics", window.clone())
        .await;
    if want.count == 0 {
        assert!(
            stats.to_string().contains("has no points"),
            "{when}: {stats}"
        );
        return;
    }
    let s = &stats["structuredContent"];
    assert_eq!(s["count"], want.count, "{when}: count {stats}");
    near(&s["mean"], want.mean, &format!("{when}: mean"));
    near(&s["stddev"], want.sd, &format!("{when}: stddev"));
    near(&s["min"], want.lo, &format!("{when}: min"));
    near(&s["max"], want.hi, &format!("{when}: max"));
    if want.count > 2 {
        let trend = app
            .call_tool(session, "analyze_trend", window.clone())
            .await;
        near(
            &trend["structuredContent"]["slope_per_day"],
            want.slope,
            &format!("{when}: slope"),
        );
    }
    #[derive(QueryableByName)]
    struct V {
        #[diesel(sql_type = Double)]
        v: f64,
    }
    let hours: Vec<V> = diesel::sql_query(format!(
        "SELECT max(value) AS v FROM timeseries_data WHERE series_name = '{series}'
          GROUP BY date_bin('1 hour', time, TIMESTAMPTZ '2000-01-01Z') ORDER BY 1 DESC, 1"
    ))
    .load(&mut db.conn())
    .unwrap();
    let mut args = window;
    args["bucket"] = json!("1h");
    args["aggregate"] = json!("max");
    args["max_points"] = json!(1000);
    let got = app.call_tool(session, "query_timeseries", args).await;
    let mut got: Vec<f64> = got["structuredContent"]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_f64().unwrap())
        .collect();
    got.sort_by(|a, b| b.total_cmp(a));
    let want: Vec<f64> = hours.iter().map(|h| h.v).collect();
    assert_eq!(got, want, "{when}: hourly maxima");
}

/// The case on `db`, with the trigger form `row_level` sets, or the one
/// the migration chose when `None` (row-level on a hypertable).
pub async fn each_sql_write_is_in_every_answer(db: TestDatabase, row_level: Option<bool>) {
    if let Some(row_level) = row_level {
        psql(&db, &format!("SELECT mcp_data_triggers({row_level})"));
    }
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    // The case: three days of 1-minute points through the tool.
    let points: Vec<(DateTime<Utc>, f64)> = (0..4320)
        .map(|i| (t0() + Duration::minutes(i), (i % 10) as f64))
        .collect();
    app.ingest(&session, "w.cpu", &points).await;
    assert!(app.fold_all().await > 0);
    agree(&app, &session, &db, "w.cpu", "ingested").await;

    // One file per form: both tests run in one process under `cargo test`.
    let csv = std::env::temp_dir().join(format!(
        "sql-writers-{}-{row_level:?}.csv",
        std::process::id()
    ));
    let lines: String = (0..500)
        .flat_map(|i| {
            let t = t0() + Duration::seconds(i * 600 + 17);
            [
                format!("w.cpu,{},{}\n", t.to_rfc3339(), -(i as f64)),
                format!("w.etl,{},{}\n", t.to_rfc3339(), i as f64 * 0.5),
            ]
        })
        .collect();
    std::fs::write(&csv, lines).unwrap();
    let steps = [
        (
            "update",
            "UPDATE timeseries_data SET value = 1000 WHERE series_name = 'w.cpu'
               AND time >= '2026-02-02T03:00:00Z' AND time < '2026-02-02T09:00:00Z'"
                .to_owned(),
        ),
        (
            "insert",
            "INSERT INTO timeseries_data (series_name, time, value)
             SELECT 'w.cpu', TIMESTAMPTZ '2026-02-01T05:00:30Z' + g * interval '1 minute', -500
               FROM generate_series(0, 99) g"
                .to_owned(),
        ),
        (
            "delete",
            "DELETE FROM timeseries_data WHERE series_name = 'w.cpu'
               AND time >= '2026-02-03T10:00:00Z' AND time < '2026-02-03T13:00:00Z'"
                .to_owned(),
        ),
        (
            "copy",
            format!(
                "\\copy timeseries_data (series_name, time, value) FROM '{}' WITH (FORMAT csv)",
                csv.display()
            ),
        ),
    ];
    for (what, command) in &steps {
        psql(&db, command);
        agree(&app, &session, &db, "w.cpu", &format!("after {what}")).await;
        app.fold_all().await;
        agree(
            &app,
            &session,
            &db,
            "w.cpu",
            &format!("after {what}, folded"),
        )
        .await;
        assert_eq!(db.count(MISMATCHES), 0, "after {what}, folded");
    }
    std::fs::remove_file(&csv).ok();
    // The series only \copy wrote joined the catalog, and folds.
    let listed = app
        .call_tool(&session, "list_series", json!({ "prefix": "w.etl" }))
        .await;
    assert!(listed.to_string().contains("w.etl"), "{listed}");
    agree(&app, &session, &db, "w.etl", "copied").await;
    assert_eq!(
        db.count("SELECT count(*) AS n FROM timeseries_rollups WHERE series_name = 'w.etl'"),
        db.count(
            "SELECT count(DISTINCT date_bin('1 hour', time, TIMESTAMPTZ '2000-01-01Z')) - 1 AS n
               FROM timeseries_data WHERE series_name = 'w.etl'"
        ),
        "every hour of w.etl but its newest folded"
    );
    assert_eq!(
        db.count("SELECT count(*) AS n FROM timeseries_invalidations"),
        0
    );

    psql(&db, "TRUNCATE timeseries_data");
    agree(&app, &session, &db, "w.cpu", "after truncate").await;
    assert_eq!(db.count("SELECT count(*) AS n FROM timeseries_rollups"), 0);
    // The server's writes leave no log and bump nothing.
    app.ingest(&session, "w.cpu", &points[..100]).await;
    assert_eq!(
        db.count("SELECT count(*) AS n FROM timeseries_invalidations"),
        0
    );
    agree(&app, &session, &db, "w.cpu", "written again").await;
}

#[rocket::async_test]
async fn each_sql_write_is_in_every_answer_statement_level() {
    each_sql_write_is_in_every_answer(TestDatabase::migrated(), Some(false)).await;
}

#[rocket::async_test]
async fn each_sql_write_is_in_every_answer_row_level() {
    each_sql_write_is_in_every_answer(TestDatabase::migrated(), Some(true)).await;
}
