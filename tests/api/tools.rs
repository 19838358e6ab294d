//! The analytics tools against the real database, checked against
//! computations done here, independently, on the same synthetic series.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};

use crate::helpers::{CutProxy, OwnRedis, TestApp, TestDatabase, close};

const N: usize = 2000;
const SPIKES: [usize; 3] = [300, 900, 1500];

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

/// Trend + daily-ish seasonality + deterministic noise + three spikes, one per minute.
fn synthetic() -> Vec<(DateTime<Utc>, f64)> {
    let mut noise = 12345u64;
    (0..N)
        .map(|i| {
            noise = noise
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let e = ((noise >> 33) as f64 / (1u64 << 31) as f64) - 0.5;
            let t = i as f64;
            let mut v =
                10.0 + 0.001 * t + 2.0 * (2.0 * std::f64::consts::PI * t / 60.0).sin() + 0.3 * e;
            if SPIKES.contains(&i) {
                v += if i == 900 { -25.0 } else { 25.0 };
            }
            (t0() + Duration::minutes(i as i64), v)
        })
        .collect()
}

fn points_json(points: &[(DateTime<Utc>, f64)]) -> Value {
    Value::Array(
        points
            .iter()
            .map(|(t, v)| json!({ "time": t.to_rfc3339(), "value": v }))
            .collect(),
    )
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn stddev(v: &[f64]) -> f64 {
    let m = mean(v);
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
}

/// PostgreSQL's percentile_cont: linear interpolation at p·(n−1).
fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let pos = p * (s.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    s[lo] + (s[hi] - s[lo]) * (pos - lo as f64)
}

async fn app_with_series(
    db: &TestDatabase,
    redis: Option<&str>,
) -> (TestApp, String, Vec<(DateTime<Utc>, f64)>) {
    let app = TestApp::spawn(db, redis).await;
    let session = app.session().await;
    let data = synthetic();
    let r = app
        .call_tool(
            &session,
            "ingest_timeseries",
            json!({ "series": "synthetic", "points": points_json(&data) }),
        )
        .await;
    assert_eq!(r["structuredContent"]["written"], N, "{r}");
    (app, session, data)
}

#[rocket::async_test]
async fn statistics_agree_with_an_independent_computation_and_are_stored() {
    let db = TestDatabase::migrated();
    let (app, session, data) = app_with_series(&db, None).await;
    let values: Vec<f64> = data.iter().map(|p| p.1).collect();
    let r = app
        .call_tool(
            &session,
            "compute_statistics",
            json!({ "series": "synthetic" }),
        )
        .await;
    let s = &r["structuredContent"];
    assert_eq!(s["count"], N);
    close(s["mean"].as_f64().unwrap(), mean(&values), "mean");
    close(s["stddev"].as_f64().unwrap(), stddev(&values), "stddev");
    close(
        s["min"].as_f64().unwrap(),
        values.iter().copied().fold(f64::INFINITY, f64::min),
        "min",
    );
    close(
        s["max"].as_f64().unwrap(),
        values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        "max",
    );
    for (key, p) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)] {
        close(s[key].as_f64().unwrap(), percentile(&values, p), key);
    }
    assert_eq!(s["cached"], false);
    assert_eq!(db.count("SELECT count(*) AS n FROM statistics_data WHERE series_name = 'synthetic' AND count = 2000"), 1);

    // A window: the first hour only.
    let hour = app
        .call_tool(
            &session,
            "compute_statistics",
            json!({ "series": "synthetic",
        "start": t0().to_rfc3339(), "end": (t0() + Duration::hours(1)).to_rfc3339() }),
        )
        .await;
    assert_eq!(hour["structuredContent"]["count"], 60);
    close(
        hour["structuredContent"]["mean"].as_f64().unwrap(),
        mean(&values[..60]),
        "windowed mean",
    );
}

#[rocket::async_test]
async fn trend_agrees_with_least_squares_done_here() {
    let db = TestDatabase::migrated();
    let (app, session, data) = app_with_series(&db, None).await;
    let xs: Vec<f64> = data
        .iter()
        .map(|p| (p.0 - t0()).as_seconds_f64() / 86_400.0)
        .collect();
    let ys: Vec<f64> = data.iter().map(|p| p.1).collect();
    let (mx, my) = (mean(&xs), mean(&ys));
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    let syy: f64 = ys.iter().map(|y| (y - my).powi(2)).sum();
    let slope = sxy / sxx;

    let r = app
        .call_tool(&session, "analyze_trend", json!({ "series": "synthetic" }))
        .await;
    let t = &r["structuredContent"];
    close(t["slope_per_day"].as_f64().unwrap(), slope, "slope");
    close(
        t["intercept"].as_f64().unwrap(),
        my - slope * mx,
        "intercept",
    );
    close(t["r2"].as_f64().unwrap(), sxy * sxy / (sxx * syy), "r2");
    assert_eq!(t["direction"], "increasing");
    let id = t["analysis_id"].as_i64().unwrap();
    let stored = app
        .call_tool(&session, "get_analysis", json!({ "id": id }))
        .await;
    let row = &stored["structuredContent"]["items"][0];
    assert_eq!(
        (row["analysis_type"].as_str(), row["status"].as_str()),
        (Some("trend"), Some("completed"))
    );
    close(
        row["result"]["slope_per_day"].as_f64().unwrap(),
        slope,
        "stored slope",
    );
    let listed = app
        .call_tool(
            &session,
            "list_analyses",
            json!({ "series": "synthetic", "analysis_type": "trend" }),
        )
        .await;
    let items = listed["structuredContent"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], id);
}

#[rocket::async_test]
async fn anomalies_are_the_injected_spikes_by_every_method() {
    let db = TestDatabase::migrated();
    let (app, session, data) = app_with_series(&db, None).await;
    let values: Vec<f64> = data.iter().map(|p| p.1).collect();
    let (m, sd) = (mean(&values), stddev(&values));
    let (q1, med, q3) = (
        percentile(&values, 0.25),
        percentile(&values, 0.5),
        percentile(&values, 0.75),
    );
    let deviations: Vec<f64> = values.iter().map(|v| (v - med).abs()).collect();
    let mad = percentile(&deviations, 0.5);
    let expected = |method: &str, thr: f64| -> Vec<usize> {
        (0..N)
            .filter(|&i| {
                let x = values[i];
                match method {
                    "zscore" => (x - m).abs() / sd > thr,
                    "iqr" => x < q1 - thr * (q3 - q1) || x > q3 + thr * (q3 - q1),
                    _ => 0.6745 * (x - med).abs() / mad > thr,
                }
            })
            .collect()
    };
    for (method, thr) in [("zscore", 3.0), ("iqr", 1.5), ("mad", 3.5)] {
        let want = expected(method, thr);
        assert_eq!(
            want, SPIKES,
            "the reference finds exactly the spikes with {method}"
        );
        let r = app
            .call_tool(
                &session,
                "detect_anomalies",
                json!({ "series": "synthetic", "method": method, "threshold": thr }),
            )
            .await;
        let a = &r["structuredContent"];
        let mut got: Vec<usize> = a["anomalies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let t = DateTime::parse_from_rfc3339(p["time"].as_str().unwrap()).unwrap();
                (t.with_timezone(&Utc) - t0()).num_minutes() as usize
            })
            .collect();
        got.sort();
        assert_eq!(got, want, "{method}: {a}");
        assert_eq!(a["total_anomalies"], 3);
        let center = if method == "zscore" { m } else { med };
        let extreme = *want
            .iter()
            .max_by(|&&i, &&j| {
                (values[i] - center)
                    .abs()
                    .total_cmp(&(values[j] - center).abs())
            })
            .unwrap();
        let first =
            DateTime::parse_from_rfc3339(a["anomalies"][0]["time"].as_str().unwrap()).unwrap();
        assert_eq!(
            first.with_timezone(&Utc),
            data[extreme].0,
            "{method}: most extreme first"
        );
    }
    assert_eq!(db.count("SELECT count(*) AS n FROM analysis_results WHERE analysis_type = 'anomaly' AND status = 'completed'"), 3);
}

#[rocket::async_test]
async fn an_ingest_with_a_bad_point_writes_nothing() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    let mut points = points_json(&synthetic()[..10]);
    points[5]["time"] = json!("not a time");
    let r = app
        .call_tool(
            &session,
            "ingest_timeseries",
            json!({ "series": "s", "points": points }),
        )
        .await;
    assert_eq!(r["isError"], true);
    let text = r["content"][0]["text"].as_str().unwrap();
    assert!(
        text.contains("points[5].time") && text.contains("is not an RFC 3339 timestamp"),
        "{text}"
    );
    assert_eq!(db.count("SELECT count(*) AS n FROM timeseries_data"), 0);

    for (bad, expect) in [
        (
            json!({ "series": "bad name", "points": [{ "time": "2026-01-01T00:00:00Z", "value": 1 }] }),
            "invalid series name",
        ),
        (json!({ "series": "s", "points": [] }), "1 to 100000"),
        (
            json!({ "series": "s", "points": [{ "time": "2026-01-01T00:00:00Z", "value": "NaN" }] }),
            "Invalid arguments",
        ),
        (
            json!({ "series": "s", "points": [{ "time": "2026-01-01T00:00:00Z" }] }),
            "value",
        ),
    ] {
        let r = app.call_tool(&session, "ingest_timeseries", bad).await;
        assert_eq!(r["isError"], true);
        assert!(
            r["content"][0]["text"].as_str().unwrap().contains(expect),
            "{r}"
        );
    }
    assert_eq!(db.count("SELECT count(*) AS n FROM timeseries_data"), 0);
}

#[rocket::async_test]
async fn re_ingesting_is_idempotent_and_replaces_values() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    let data = synthetic();
    let body = json!({ "series": "s", "points": points_json(&data[..100]) });
    let first = app
        .call_tool(&session, "ingest_timeseries", body.clone())
        .await;
    assert_eq!(
        (
            first["structuredContent"]["inserted"].as_u64(),
            first["structuredContent"]["replaced"].as_u64()
        ),
        (Some(100), Some(0))
    );
    let again = app.call_tool(&session, "ingest_timeseries", body).await;
    assert_eq!(
        (
            again["structuredContent"]["inserted"].as_u64(),
            again["structuredContent"]["replaced"].as_u64()
        ),
        (Some(0), Some(100))
    );
    assert_eq!(db.count("SELECT count(*) AS n FROM timeseries_data"), 100);
    // A repeated timestamp within one call keeps the last value.
    let t = data[0].0.to_rfc3339();
    let dup = app.call_tool(&session, "ingest_timeseries", json!({ "series": "s", "points": [{ "time": t, "value": 1.0 }, { "time": t, "value": 42.0 }] })).await;
    assert_eq!(dup["structuredContent"]["written"], 1);
    assert_eq!(
        db.count("SELECT count(*) AS n FROM timeseries_data WHERE value = 42"),
        1
    );
}

async fn stats(app: &TestApp, session: &str) -> Value {
    app.call_tool(session, "compute_statistics", json!({ "series": "fresh" }))
        .await["structuredContent"]
        .clone()
}

async fn query(app: &TestApp, session: &str) -> Value {
    app.call_tool(
        session,
        "query_timeseries",
        json!({ "series": "fresh", "bucket": "1d", "aggregate": "sum" }),
    )
    .await["structuredContent"]
        .clone()
}

async fn assert_reads_follow_writes(app: &TestApp, session: &str) {
    let ingest = |value: f64, minute: i64| json!({ "series": "fresh", "points": [{ "time": (t0() + Duration::minutes(minute)).to_rfc3339(), "value": value }] });
    app.call_tool(session, "ingest_timeseries", ingest(1.0, 0))
        .await;
    assert_eq!(stats(app, session).await["cached"], false);
    let hit = stats(app, session).await;
    assert_eq!(
        (hit["cached"].as_bool(), hit["count"].as_i64()),
        (Some(true), Some(1))
    );
    assert_eq!(query(app, session).await["cached"], false);
    assert_eq!(query(app, session).await["cached"], true);

    for (i, value) in [2.0, 3.0, 4.0].into_iter().enumerate() {
        app.call_tool(session, "ingest_timeseries", ingest(value, i as i64 + 1))
            .await;
        let s = stats(app, session).await;
        assert_eq!(
            s["count"].as_i64(),
            Some(i as i64 + 2),
            "stale statistics after ingest: {s}"
        );
        assert_eq!(s["cached"], false);
        let q = query(app, session).await;
        assert_eq!(
            q["points"][0]["value"].as_f64(),
            Some((1..=i + 2).map(|v| v as f64).sum()),
            "stale query: {q}"
        );
    }
    // Replacing a value (same timestamp) invalidates as well.
    app.call_tool(session, "ingest_timeseries", ingest(100.0, 0))
        .await;
    assert_eq!(stats(app, session).await["max"].as_f64(), Some(100.0));
}

#[rocket::async_test]
async fn cached_reads_never_go_stale_in_process() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    assert_reads_follow_writes(&app, &session).await;
}

#[rocket::async_test]
async fn cached_reads_never_go_stale_with_redis() {
    let db = TestDatabase::migrated();
    // Its own Redis: every replica that starts renews the shared epoch.
    let redis = OwnRedis::start();
    let app = TestApp::spawn(&db, Some(&redis.url())).await;
    let session = app.session().await;
    assert_reads_follow_writes(&app, &session).await;
}

#[rocket::async_test]
async fn a_write_during_a_redis_outage_does_not_leave_stale_entries() {
    let db = TestDatabase::migrated();
    let redis = OwnRedis::start();
    let link = CutProxy::start(redis.port);
    let app = TestApp::spawn(&db, Some(&link.url())).await;
    let session = app.session().await;
    let one =
        json!({ "series": "o", "points": [{ "time": "2026-01-01T00:00:00Z", "value": 1.0 }] });
    app.call_tool(&session, "ingest_timeseries", one).await;
    app.call_tool(&session, "compute_statistics", json!({ "series": "o" }))
        .await;
    assert_eq!(
        app.call_tool(&session, "compute_statistics", json!({ "series": "o" }))
            .await["structuredContent"]["cached"],
        true
    );

    // The link to Redis is cut, its data intact: the invalidation is lost …
    link.cut();
    let two =
        json!({ "series": "o", "points": [{ "time": "2026-01-01T00:01:00Z", "value": 2.0 }] });
    let written = app.call_tool(&session, "ingest_timeseries", two).await;
    assert_eq!(
        written["structuredContent"]["written"], 1,
        "writes succeed without Redis"
    );
    let during = app
        .call_tool(&session, "compute_statistics", json!({ "series": "o" }))
        .await;
    assert_eq!(
        during["structuredContent"]["count"], 2,
        "computed without the cache: {during}"
    );
    // … and Redis comes back still holding the entry for one point.
    link.restore();
    assert_eq!(app.get_json("/health").await.1["cache"]["state"], "up");
    let after = app
        .call_tool(&session, "compute_statistics", json!({ "series": "o" }))
        .await;
    assert_eq!(
        after["structuredContent"]["count"], 2,
        "stale entry served after the outage: {after}"
    );
}

#[rocket::async_test]
async fn models_fit_a_line_exactly_and_forecast_from_the_stored_model() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    let line: Vec<(DateTime<Utc>, f64)> = (0..200)
        .map(|i| (t0() + Duration::hours(i), 5.0 + 0.25 * i as f64))
        .collect();
    app.call_tool(
        &session,
        "ingest_timeseries",
        json!({ "series": "line", "points": points_json(&line) }),
    )
    .await;

    let r = app
        .call_tool(
            &session,
            "train_model",
            json!({ "series": "line", "model_type": "linear", "holdout": 40 }),
        )
        .await;
    let m = &r["structuredContent"];
    assert!(m["metrics"]["mae"].as_f64().unwrap() < 1e-9, "{m}");
    assert!(m["metrics"]["rmse"].as_f64().unwrap() < 1e-9);
    assert_eq!(
        (m["training_points"].as_u64(), m["holdout_points"].as_u64()),
        (Some(160), Some(40))
    );
    let id = m["model_id"].as_i64().unwrap();

    let f = app
        .call_tool(
            &session,
            "forecast",
            json!({ "model_id": id, "horizon": 3 }),
        )
        .await;
    let points = f["structuredContent"]["points"].as_array().unwrap().clone();
    for (h, p) in points.iter().enumerate() {
        close(
            p["value"].as_f64().unwrap(),
            5.0 + 0.25 * (200 + h) as f64,
            "forecast value",
        );
        let t = DateTime::parse_from_rfc3339(p["time"].as_str().unwrap()).unwrap();
        assert_eq!(
            t.with_timezone(&Utc),
            t0() + Duration::hours(200 + h as i64)
        );
    }
    for kind in ["holt", "ar"] {
        let r = app
            .call_tool(
                &session,
                "train_model",
                json!({ "series": "line", "model_type": kind, "params": { "p": 1 } }),
            )
            .await;
        if kind == "holt" {
            assert!(r["isError"].is_null(), "{r}");
            assert!(
                r["structuredContent"]["metrics"]["mae"].as_f64().unwrap() < 1e-6,
                "{r}"
            );
        }
    }
    let models = app
        .call_tool(&session, "list_models", json!({ "series": "line" }))
        .await;
    let rows = models["structuredContent"]["items"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert!(
        rows.iter().all(|r| r["status"] != "running"),
        "every run finished: {rows:?}"
    );
    assert_eq!(db.count("SELECT count(*) AS n FROM analysis_results WHERE analysis_type = 'forecast' AND status = 'completed'"), 1);
}

#[rocket::async_test]
async fn a_failed_training_run_is_recorded_as_failed() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    let flat: Vec<(DateTime<Utc>, f64)> = (0..50)
        .map(|i| (t0() + Duration::minutes(i), 7.0))
        .collect();
    app.call_tool(
        &session,
        "ingest_timeseries",
        json!({ "series": "flat", "points": points_json(&flat) }),
    )
    .await;
    let r = app
        .call_tool(
            &session,
            "train_model",
            json!({ "series": "flat", "model_type": "ar" }),
        )
        .await;
    assert_eq!(r["isError"], true);
    assert!(
        r["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("recorded as failed"),
        "{r}"
    );
    assert_eq!(db.count("SELECT count(*) AS n FROM model_training_logs WHERE status = 'failed' AND error LIKE '%not identifiable%'"), 1);
    let f = app
        .call_tool(&session, "forecast", json!({ "model_id": 1_000_000 }))
        .await;
    assert_eq!(f["isError"], true);
    let trend = app
        .call_tool(
            &session,
            "analyze_trend",
            json!({ "series": "nothing-here" }),
        )
        .await;
    assert_eq!(trend["isError"], true);
    assert_eq!(db.count("SELECT count(*) AS n FROM analysis_results WHERE status = 'failed' AND error IS NOT NULL"), 1);
}

#[rocket::async_test]
async fn query_buckets_match_and_bounds_are_enforced() {
    let db = TestDatabase::migrated();
    let (app, session, data) = app_with_series(&db, None).await;
    let r = app
        .call_tool(
            &session,
            "query_timeseries",
            json!({ "series": "synthetic", "bucket": "1h", "aggregate": "avg" }),
        )
        .await;
    let buckets = r["structuredContent"]["points"].as_array().unwrap().clone();
    assert_eq!(buckets.len(), N.div_ceil(60));
    let first: Vec<f64> = data[..60].iter().map(|p| p.1).collect();
    close(
        buckets[0]["value"].as_f64().unwrap(),
        mean(&first),
        "hourly avg",
    );
    assert_eq!(buckets[0]["count"], 60);

    let raw = app
        .call_tool(
            &session,
            "query_timeseries",
            json!({ "series": "synthetic", "max_points": 10 }),
        )
        .await;
    assert_eq!(
        raw["structuredContent"]["points"].as_array().unwrap().len(),
        10
    );
    assert_eq!(raw["structuredContent"]["truncated"], true);

    for bad in [
        json!({ "series": "synthetic", "max_points": 0 }),
        json!({ "series": "synthetic", "max_points": 20000 }),
        json!({ "series": "synthetic", "bucket": "1y" }),
        json!({ "series": "synthetic", "aggregate": "avg" }),
        json!({ "series": "synthetic", "aggregate": "median", "bucket": "1h" }),
        json!({ "series": "synthetic", "start": "2026-02-01T00:00:00Z", "end": "2026-01-01T00:00:00Z" }),
        json!({ "series": "synthetic", "unknown": 1 }),
    ] {
        let r = app
            .call_tool(&session, "query_timeseries", bad.clone())
            .await;
        assert_eq!(r["isError"], true, "{bad} → {r}");
    }
    for (tool, bad) in [
        (
            "detect_anomalies",
            json!({ "series": "synthetic", "threshold": -1 }),
        ),
        (
            "detect_anomalies",
            json!({ "series": "synthetic", "method": "magic" }),
        ),
        (
            "train_model",
            json!({ "series": "synthetic", "model_type": "ar", "params": { "p": 99 } }),
        ),
        ("forecast", json!({ "model_id": 1, "horizon": 0 })),
        ("list_analyses", json!({ "limit": 100000 })),
    ] {
        let r = app.call_tool(&session, tool, bad.clone()).await;
        assert_eq!(r["isError"], true, "{tool} {bad} → {r}");
    }
    let listed = app.call_tool(&session, "list_series", json!({})).await;
    assert_eq!(listed["structuredContent"]["series"][0]["points"], N);
}
