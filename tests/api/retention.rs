//! Raw retention: the points past each metric's `raw_days` go, never those
//! of hours not folded; the answers over the dropped range stay exact from
//! the rollups (count, mean, stddev, min, max, trend to 1e-9) and say
//! `raw_from`; readers that need points, and writes before `raw_from`, are
//! refused with the reason; `retention --plan` drops nothing; `rollups
//! verify` still agrees.

use std::process::Command;

use chrono::{DateTime, Duration, DurationRound, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestDatabase, close, mcp, text};
use crate::rollups::reference;

/// `mcp-server retention <args>` over `db` with the retention settings
/// `env`: whether it exited 0, and what it printed.
pub fn run(db: &TestDatabase, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mcp-server"))
        .arg("retention")
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .expect("binary runs");
    (out.status.success(), text(&out))
}

/// Raw points kept 2 days, `short.*` 1, `keep.*` forever.
fn retention(db: &TestDatabase, args: &[&str]) -> (bool, String) {
    let overrides = r#"[{metric="keep.*"}, {regex="short\\..*", raw_days=1}]"#;
    run(
        db,
        args,
        &[
            ("RETENTION_RAW_DAYS", "2"),
            ("RETENTION_OVERRIDES", overrides),
        ],
    )
}

fn near(got: &Value, want: Option<f64>, what: &str) {
    close(got.as_f64().unwrap_or(f64::NAN), want.unwrap(), what);
}

#[rocket::async_test]
async fn raw_retention_keeps_exact_answers_from_the_rollups() {
    raw_retention_on(TestDatabase::migrated()).await;
}

/// The raw retention case on `db` (TimescaleDB runs it too).
pub async fn raw_retention_on(db: TestDatabase) {
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    let end = Utc::now().duration_trunc(Duration::hours(1)).unwrap() - Duration::hours(1);
    let t0 = end - Duration::days(5);
    let mut seed = 11u64;
    for series in ["ret.a", "keep.b", "short.c"] {
        let points: Vec<(DateTime<Utc>, f64)> = (0..5 * 24 * 60)
            .map(|i| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (
                    t0 + Duration::minutes(i),
                    (seed >> 40) as f64 / 1e4 + i as f64 * 1e-3,
                )
            })
            .collect();
        app.ingest(&session, series, &points).await;
    }
    assert!(app.fold_all().await > 0);
    // A series only SQL wrote, with one old point: the hour of a series'
    // newest point never folds, so that point is held.
    diesel::sql_query(format!(
        "INSERT INTO timeseries_data (series_name, time, value) VALUES ('late.d', '{}', 1)",
        t0.to_rfc3339()
    ))
    .execute(&mut db.conn())
    .unwrap();
    let start = t0 + Duration::minutes(17);
    // What the answers must be: the window's left edge is widened to its
    // hour, whose points will be gone.
    let reference = reference(&db, "ret.a", t0, end);
    let horizon = Utc::now().duration_trunc(Duration::hours(1)).unwrap() - Duration::days(2);
    let going = db.count(&format!(
        "SELECT count(*) AS n FROM timeseries_data WHERE series_name = 'ret.a' AND time < '{}'",
        horizon.to_rfc3339()
    ));
    let going_short = db.count(&format!(
        "SELECT count(*) AS n FROM timeseries_data WHERE series_name = 'short.c' AND time < '{}'",
        (horizon + Duration::days(1)).to_rfc3339()
    ));
    let before = db.count("SELECT count(*) AS n FROM timeseries_data");

    let (ok, plan) = retention(&db, &["--plan"]);
    assert!(ok, "{plan}");
    assert!(plan.contains("nothing is dropped"), "{plan}");
    let row = plan.lines().find(|l| l.starts_with("ret.a ")).expect(&plan);
    assert!(row.contains(&format!(" {going} ")), "{going}: {row}");
    assert!(plan.lines().any(|l| l.starts_with("short.c ")), "{plan}");
    assert!(!plan.contains("keep.b"), "{plan}");
    assert!(
        plan.contains("1 series keep raw points past their retention"),
        "{plan}"
    );
    assert_eq!(
        db.count("SELECT count(*) AS n FROM timeseries_data"),
        before
    );

    let (ok, ran) = retention(&db, &[]);
    assert!(ok, "{ran}");
    // (late.d's raw_from may move too, to its folded_to, dropping nothing,
    // once the background fold has reached it.)
    assert!(
        ran.contains(&format!("dropped {} raw points", going + going_short)),
        "{ran}"
    );
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) AS n FROM timeseries_data WHERE series_name = 'ret.a' AND time < '{}'",
            horizon.to_rfc3339()
        )),
        0
    );
    assert_eq!(
        db.count(
            "SELECT count(*) AS n FROM timeseries_data WHERE series_name IN ('keep.b', 'late.d')"
        ),
        7200 + 1,
        "kept forever, and held while unfolded"
    );
    let (ok, again) = retention(&db, &[]);
    assert!(ok && again.contains("dropped 0 raw points"), "{again}");

    // Answers over the dropped range, from the rollups: exact.
    let window = json!({ "series": "ret.a", "start": start.to_rfc3339(), "end": end.to_rfc3339() });
    let stats = app
        .call_tool(&session, "compute_statistics", window.clone())
        .await;
    let s = &stats["structuredContent"];
    assert_eq!(s["count"], reference.count, "{stats}");
    near(&s["mean"], reference.mean, "mean");
    near(&s["stddev"], reference.sd, "stddev");
    near(&s["min"], reference.lo, "min");
    near(&s["max"], reference.hi, "max");
    assert_eq!(s["resolution"], "1h");
    assert_eq!(s["percentiles"], "sketch", "{stats}");
    assert_eq!(
        s["raw_from"],
        json!(horizon.to_rfc3339().replace("+00:00", "Z")),
        "{stats}"
    );
    let trend = app
        .call_tool(&session, "analyze_trend", window.clone())
        .await;
    near(
        &trend["structuredContent"]["slope_per_day"],
        reference.slope,
        "slope",
    );
    assert!(
        trend["structuredContent"]["raw_from"].is_string(),
        "{trend}"
    );

    // What needs points says what is gone.
    for (tool, args) in [
        ("query_timeseries", window.clone()),
        (
            "detect_anomalies",
            json!({ "series": "ret.a", "method": "mad" }),
        ),
        (
            "compute_statistics",
            json!({ "series": "ret.a", "exact": true }),
        ),
    ] {
        let got = app.call_tool(&session, tool, args).await;
        assert_eq!(got["isError"], true, "{tool}: {got}");
        assert!(got.to_string().contains("no longer kept"), "{tool}: {got}");
    }
    let recent = app
        .call_tool(
            &session,
            "query_timeseries",
            json!({ "series": "ret.a", "start": horizon.to_rfc3339(), "max_points": 10 }),
        )
        .await;
    assert_ne!(recent["isError"], true, "{recent}");

    // Writes before raw_from: refused, whoever sends them.
    let old = app
        .call_tool(
            &session,
            "ingest_timeseries",
            json!({ "series": "ret.a", "points": [{ "time": t0.to_rfc3339(), "value": 1 }] }),
        )
        .await;
    assert_eq!(old["isError"], true, "{old}");
    assert!(old.to_string().contains("raw retention"), "{old}");
    let sql = diesel::sql_query(format!(
        "INSERT INTO timeseries_data (series_name, time, value) VALUES ('ret.a', '{}', 1)",
        t0.to_rfc3339()
    ))
    .execute(&mut db.conn());
    assert!(
        sql.as_ref()
            .is_err_and(|e| e.to_string().contains("raw retention horizon")),
        "{sql:?}"
    );

    let verified = mcp(&["rollups", "verify"], &db.url);
    assert_eq!(verified.status.code(), Some(0), "{}", text(&verified));
    let repaired = mcp(
        &["rollups", "verify", "--repair", "--series", "ret.a"],
        &db.url,
    );
    assert_eq!(repaired.status.code(), Some(0), "{}", text(&repaired));
    let stats = app.call_tool(&session, "compute_statistics", window).await;
    assert_eq!(
        stats["structuredContent"]["count"], reference.count,
        "{stats}"
    );
}

/// `retention` with raw points, hours and days kept `levels` days.
fn rollup_retention(db: &TestDatabase, args: &[&str], levels: [&str; 3]) -> (bool, String) {
    let env = [
        "RETENTION_RAW_DAYS",
        "RETENTION_HOURS_DAYS",
        "RETENTION_DAYS_DAYS",
    ];
    run(db, args, &env.into_iter().zip(levels).collect::<Vec<_>>())
}

#[rocket::async_test]
async fn rollup_retention_answers_from_days_and_drops_nothing_else() {
    rollup_retention_on(TestDatabase::migrated()).await;
}

/// The rollup retention case on `db` (TimescaleDB runs it too).
pub async fn rollup_retention_on(db: TestDatabase) {
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    let now = Utc::now();
    let end = now.duration_trunc(Duration::hours(1)).unwrap() - Duration::hours(1);
    let t0 = end - Duration::days(12);
    let mut seed = 5u64;
    let points: Vec<(DateTime<Utc>, f64)> = (0..12 * 24 * 6)
        .map(|i| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (
                t0 + Duration::minutes(10 * i),
                (seed >> 40) as f64 / 1e4 - i as f64 * 1e-2,
            )
        })
        .collect();
    app.ingest(&session, "roll_a", &points).await;
    assert!(app.fold_all().await > 0);

    // The horizons the settings give: raw at the hour 2 days ago, hours at
    // the day 5 days ago, days at the day 9 days ago.
    let day = |t: DateTime<Utc>| t.duration_trunc(Duration::days(1)).unwrap();
    let (hours_from, days_from) = (day(now - Duration::days(5)), day(now - Duration::days(9)));
    let rows = |table: &str, before: DateTime<Utc>| {
        db.count(&format!(
            "SELECT count(*) AS n FROM {table} WHERE series_name = 'roll_a' AND bucket < '{}'",
            before.to_rfc3339()
        ))
    };
    let (hours_going, days_going) = (
        rows("timeseries_rollups", hours_from),
        rows("timeseries_rollups_daily", days_from),
    );
    assert!(
        hours_going > 24 * 6 && days_going >= 2,
        "{hours_going} {days_going}"
    );
    // Whatever the window asks before days_from, what is kept starts there;
    // an edge before hours_from is widened to its day.
    let start = days_from + Duration::minutes(7 * 60 + 17);
    let reference = reference(&db, "roll_a", days_from, end);
    let first_kept: DateTime<Utc> = diesel::dsl::sql::<diesel::sql_types::Timestamptz>(&format!(
        "SELECT min(time) FROM timeseries_data WHERE series_name = 'roll_a' AND time >= '{}'",
        days_from.to_rfc3339()
    ))
    .get_result(&mut db.conn())
    .unwrap();

    let (ok, plan) = rollup_retention(&db, &["--plan"], ["2", "5", "9"]);
    assert!(ok, "{plan}");
    let row = plan
        .lines()
        .find(|l| l.starts_with("roll_a "))
        .expect(&plan);
    assert!(
        row.contains(&format!(" {hours_going} {days_going:>8} ")),
        "{hours_going} {days_going}: {row}"
    );
    assert_eq!(rows("timeseries_rollups", hours_from), hours_going);

    let (ok, ran) = rollup_retention(&db, &[], ["2", "5", "9"]);
    assert!(ok, "{ran}");
    assert!(
        ran.contains(&format!(
            "{hours_going} hourly and {days_going} daily rollup rows"
        )),
        "{ran}"
    );
    assert_eq!(rows("timeseries_rollups", hours_from), 0);
    assert_eq!(rows("timeseries_rollups_daily", days_from), 0);
    assert!(rows("timeseries_rollups", hours_from + Duration::days(1)) > 0);
    assert!(rows("timeseries_rollups_daily", hours_from + Duration::days(1)) > 0);
    let (ok, again) = rollup_retention(&db, &[], ["2", "5", "9"]);
    assert!(
        ok && again.contains("0 hourly and 0 daily rollup rows"),
        "{again}"
    );

    // Over the days: exact, and says so.
    let window =
        json!({ "series": "roll_a", "start": start.to_rfc3339(), "end": end.to_rfc3339() });
    let stats = app
        .call_tool(&session, "compute_statistics", window.clone())
        .await;
    let s = &stats["structuredContent"];
    assert_eq!(s["count"], reference.count, "{stats}");
    near(&s["mean"], reference.mean, "mean");
    near(&s["stddev"], reference.sd, "stddev");
    near(&s["min"], reference.lo, "min");
    near(&s["max"], reference.hi, "max");
    assert_eq!(s["resolution"], "1d", "{stats}");
    assert_eq!(
        s["hours_from"],
        json!(hours_from.to_rfc3339().replace("+00:00", "Z")),
        "{stats}"
    );
    let trend = app
        .call_tool(&session, "analyze_trend", window.clone())
        .await;
    let t = &trend["structuredContent"];
    near(&t["slope_per_day"], reference.slope, "slope");
    assert_eq!(t["resolution"], "1d", "{trend}");

    // Hours there are gone: buckets of hours say so, days answer, and a
    // chart picks days by itself.
    let mut hourly = window.clone();
    hourly["selector"] = json!("roll_a");
    hourly["per_series"] = json!("avg");
    hourly["across"] = json!("sum");
    hourly["bucket"] = json!("1h");
    hourly.as_object_mut().unwrap().remove("series");
    let got = app
        .call_tool(&session, "aggregate_series", hourly.clone())
        .await;
    assert_eq!(got["isError"], true, "{got}");
    assert!(got.to_string().contains("RETENTION_HOURS_DAYS"), "{got}");
    hourly["bucket"] = json!("1d");
    let got = app.call_tool(&session, "aggregate_series", hourly).await;
    assert_ne!(got["isError"], true, "{got}");
    let plot = app.call_tool(&session, "plot_series", window.clone()).await;
    assert_ne!(plot["isError"], true, "{plot}");
    let bucket = plot["structuredContent"]["bucket"].as_str().unwrap_or("");
    assert!(bucket.ends_with('d'), "{plot}");

    let verified = mcp(&["rollups", "verify"], &db.url);
    assert_eq!(verified.status.code(), Some(0), "{}", text(&verified));

    // Listed from what is kept, even once every point has gone (the hours
    // not folded yet, with them).
    let unfolded = db.count(
        "SELECT count(*) AS n FROM timeseries_data d JOIN timeseries_series c USING (series_name)
          WHERE series_name = 'roll_a' AND d.time >= c.folded_to",
    );
    db.conn()
        .batch_execute(
            "BEGIN; SELECT set_config('mcp.writer', 'server', true);
             DELETE FROM timeseries_data WHERE series_name = 'roll_a'; COMMIT;",
        )
        .unwrap();
    let listed = app
        .call_tool(&session, "list_series", json!({ "prefix": "roll_" }))
        .await;
    let row = &listed["structuredContent"]["series"][0];
    assert_eq!(row["series"], "roll_a", "{listed}");
    assert_eq!(row["points"], reference.count - unfolded, "{listed}");
    assert_eq!(
        row["first_time"],
        json!(first_kept.to_rfc3339().replace("+00:00", "Z")),
        "{listed}"
    );

    // A level kept longer than a coarser one is refused up front.
    let (ok, refused) = rollup_retention(&db, &["--plan"], ["", "5", "9"]);
    assert!(!ok, "{refused}");
    assert!(
        refused.contains("retention_hours_days needs retention_raw_days"),
        "{refused}"
    );
}
