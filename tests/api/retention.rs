//! Raw retention: the points past each metric's `raw_days` go, never those
//! of hours not folded; the answers over the dropped range stay exact from
//! the rollups (count, mean, stddev, min, max, trend to 1e-9) and say
//! `raw_from`; readers that need points, and writes before `raw_from`, are
//! refused with the reason; `retention --plan` drops nothing; `rollups
//! verify` still agrees.

use std::process::Command;

use chrono::{DateTime, Duration, DurationRound, Utc};
use diesel::prelude::*;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestDatabase, close, mcp, text};
use crate::rollups::reference;

fn retention(db: &TestDatabase, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mcp-server"))
        .arg("retention")
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .env("RETENTION_RAW_DAYS", "2")
        .env(
            "RETENTION_OVERRIDES",
            r#"[{metric="keep.*"}, {regex="short\\..*", raw_days=1}]"#,
        )
        .output()
        .expect("binary runs");
    (out.status.success(), text(&out))
}

fn near(got: &Value, want: Option<f64>, what: &str) {
    close(got.as_f64().unwrap_or(f64::NAN), want.unwrap(), what);
}

#[rocket::async_test]
async fn raw_retention_keeps_exact_answers_from_the_rollups() {
    let db = TestDatabase::migrated();
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
