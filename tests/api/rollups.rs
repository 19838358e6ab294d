//! The hourly rollups: they agree with the raw points after every kind of
//! write, the migration fills them, and the tools that read them agree with
//! plain SQL over the raw points (exact fields to 1e-9, sketched
//! percentiles within their stated 1%).

use chrono::{DateTime, Duration, TimeZone, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Nullable};
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestDatabase, close, mcp, text};

/// Rollup rows that differ from a recomputation, either way, before each
/// series' `folded_to` (rows after it are not read: a SQL write moves it back
/// until the fold recomputes them): hours from the raw points,
/// days from the hours; counts, extremes and ends exactly, sums to 1e-9.
pub const MISMATCHES: &str = "
    WITH s AS (
        SELECT d.series_name, COALESCE(c.folded_to, '-infinity') AS f
          FROM (SELECT DISTINCT series_name FROM timeseries_data) d
          LEFT JOIN timeseries_series c USING (series_name)),
    fresh AS (
        SELECT r.* FROM s CROSS JOIN LATERAL mcp_rollups_from_raw(s.series_name, '-infinity', s.f) r),
    days AS (
        SELECT d.* FROM s CROSS JOIN LATERAL mcp_days_from_hours(s.series_name, '-infinity', s.f) d
         WHERE d.bucket < date_bin('1 day', s.f, TIMESTAMPTZ '2000-01-01Z')),
    hours_kept AS (
        SELECT r.* FROM timeseries_rollups r JOIN s USING (series_name) WHERE r.bucket < s.f),
    days_kept AS (
        SELECT r.* FROM timeseries_rollups_daily r JOIN s USING (series_name)
         WHERE r.bucket < date_bin('1 day', s.f, TIMESTAMPTZ '2000-01-01Z'))
    SELECT (SELECT count(*) FROM fresh f FULL JOIN hours_kept r USING (series_name, bucket)
             WHERE f.count IS DISTINCT FROM r.count OR f.min_value IS DISTINCT FROM r.min_value
                OR f.max_value IS DISTINCT FROM r.max_value OR f.first_time IS DISTINCT FROM r.first_time
                OR f.last_value IS DISTINCT FROM r.last_value
                OR f.sketch_counts IS DISTINCT FROM r.sketch_counts
                OR abs(f.sum - r.sum) > 1e-9 * greatest(abs(f.sum), 1)
                OR abs(f.increase - r.increase) > 1e-9 * greatest(abs(f.increase), 1))
         + (SELECT count(*) FROM days f FULL JOIN days_kept r USING (series_name, bucket)
             WHERE f.count IS DISTINCT FROM r.count OR f.min_value IS DISTINCT FROM r.min_value
                OR f.max_value IS DISTINCT FROM r.max_value OR f.last_value IS DISTINCT FROM r.last_value
                OR f.sketch_counts IS DISTINCT FROM r.sketch_counts
                OR abs(f.m2 - r.m2) > 1e-9 * greatest(abs(f.m2), 1)
                OR abs(f.increase - r.increase) > 1e-9 * greatest(abs(f.increase), 1)) AS n";

/// Points in the rollups: what the fold has moved.
pub const FOLDED: &str = "SELECT COALESCE(sum(count), 0)::bigint AS n FROM timeseries_rollups";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap()
}

/// A deterministic generator in [0, 1).
fn uniform(seed: &mut u64) -> f64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*seed >> 11) as f64 / (1u64 << 53) as f64
}

fn normal(seed: &mut u64) -> f64 {
    let (u, v) = (uniform(seed).max(1e-300), uniform(seed));
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

fn points(values: &[f64], start: DateTime<Utc>, step: Duration) -> Vec<(DateTime<Utc>, f64)> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| (start + step * i as i32, *v))
        .collect()
}

/// [`close`] for a JSON number.
fn near(got: &Value, want: f64, what: &str) {
    close(
        got.as_f64().unwrap_or_else(|| panic!("{what}: {got}")),
        want,
        what,
    );
}

#[derive(QueryableByName, Debug, Clone, Copy)]
pub struct Reference {
    #[diesel(sql_type = BigInt)]
    pub count: i64,
    #[diesel(sql_type = Nullable<Double>)]
    pub mean: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub sd: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub lo: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub hi: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub p50: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub p95: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub p99: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub slope: Option<f64>,
}

/// The same statistics in plain SQL over the raw points.
pub fn reference(
    db: &TestDatabase,
    series: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Reference {
    diesel::sql_query(format!(
        "SELECT count(*) AS count, avg(value) AS mean, stddev_samp(value) AS sd,
                min(value) AS lo, max(value) AS hi,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY value) AS p50,
                percentile_cont(0.95) WITHIN GROUP (ORDER BY value) AS p95,
                percentile_cont(0.99) WITHIN GROUP (ORDER BY value) AS p99,
                regr_slope(value, date_part('epoch', time) / 86400) AS slope
           FROM timeseries_data
          WHERE series_name = '{series}' AND time >= '{}' AND time < '{}'",
        start.to_rfc3339(),
        end.to_rfc3339()
    ))
    .get_result(&mut db.conn())
    .unwrap()
}

#[rocket::async_test]
async fn rollups_follow_every_write_and_the_tools_agree_with_sql() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    let mut seed = 7;
    // Ten hours, a point every 10 s, values around 1000 with a small spread
    // (where Σv² would lose the variance) and a trend.
    let values: Vec<f64> = (0..3600)
        .map(|i| 1000.0 + i as f64 * 1e-3 + normal(&mut seed))
        .collect();
    app.ingest(
        &session,
        "r.cpu",
        &points(&values, t0(), Duration::seconds(10)),
    )
    .await;
    // Before the fold the whole series is a tail read from the points:
    // exact all the same.
    assert_eq!(db.count(FOLDED), 0, "a write lands points only");
    let (start, end) = (
        t0() + Duration::seconds(1234),
        t0() + Duration::seconds(31_111),
    );
    let window = json!({ "series": "r.cpu", "start": start.to_rfc3339(), "end": end.to_rfc3339() });
    let want = reference(&db, "r.cpu", start, end);
    let tail = app
        .call_tool(&session, "compute_statistics", window.clone())
        .await;
    near(
        &tail["structuredContent"]["mean"],
        want.mean.unwrap(),
        "tail mean",
    );
    near(
        &tail["structuredContent"]["stddev"],
        want.sd.unwrap(),
        "tail stddev",
    );
    assert!(app.fold().await > 0);
    assert_eq!(
        db.count(FOLDED),
        3240,
        "nine hours folded; the hour of the newest point stays a tail"
    );
    assert_eq!(db.count(MISMATCHES), 0, "after the fold");

    // Replace a stretch across an hour boundary, with new extremes.
    let replaced: Vec<f64> = (0..500)
        .map(|i| if i == 250 { 5000.0 } else { -3.0 })
        .collect();
    app.ingest(
        &session,
        "r.cpu",
        &points(
            &replaced,
            t0() + Duration::minutes(50),
            Duration::seconds(10),
        ),
    )
    .await;
    assert_eq!(
        db.count(MISMATCHES),
        0,
        "after a replacing upsert into folded hours"
    );

    // Concurrent writers into the same hours: the lock orders their refreshes.
    // (Two: the test client sends no Content-Length, so each body reserves
    // the whole 32 MiB limit of the 64 MiB budget.)
    let writes = (0..2).map(|w| {
        let (app, session) = (&app, &session);
        let vals: Vec<f64> = (0..200).map(|i| (w * 1000 + i) as f64).collect();
        async move {
            app.ingest(
                session,
                "r.cpu",
                &points(
                    &vals,
                    t0() + Duration::seconds(w * 3 + 1),
                    Duration::seconds(13),
                ),
            )
            .await
        }
    });
    rocket::futures::future::join_all(writes).await;
    assert_eq!(db.count(MISMATCHES), 0, "after concurrent writes");

    // An unaligned window: whole hours from the table, raw edges.
    let want = reference(&db, "r.cpu", start, end);
    let stats = app
        .call_tool(&session, "compute_statistics", window.clone())
        .await;
    let s = &stats["structuredContent"];
    assert_eq!(s["source"], "rollup", "{stats}");
    assert_eq!(s["resolution"], "1h");
    assert_eq!(s["percentiles"], "exact", "small windows stay exact");
    near(&s["mean"], want.mean.unwrap(), "mean");
    near(&s["stddev"], want.sd.unwrap(), "stddev");
    near(&s["min"], want.lo.unwrap(), "min");
    near(&s["max"], want.hi.unwrap(), "max");
    near(&s["p95"], want.p95.unwrap(), "p95");
    let trend = app
        .call_tool(&session, "analyze_trend", window.clone())
        .await;
    near(
        &trend["structuredContent"]["slope_per_day"],
        want.slope.unwrap(),
        "slope",
    );
    assert_eq!(trend["structuredContent"]["source"], "rollup");

    // Hourly buckets against GROUP BY date_bin, every aggregate.
    for aggregate in ["avg", "min", "max", "sum", "count", "first", "last"] {
        let sql_agg = match aggregate {
            "count" => "count(*)::float8".to_owned(),
            "first" => "(array_agg(value ORDER BY time))[1]".to_owned(),
            "last" => "(array_agg(value ORDER BY time DESC))[1]".to_owned(),
            a => format!("{a}(value)"),
        };
        #[derive(QueryableByName)]
        struct V {
            #[diesel(sql_type = Double)]
            v: f64,
        }
        let want: Vec<V> = diesel::sql_query(format!(
            "SELECT {sql_agg} AS v FROM timeseries_data
              WHERE series_name = 'r.cpu' AND time >= '{}' AND time < '{}'
              GROUP BY date_bin('2 hours', time, TIMESTAMPTZ '2000-01-01Z')
              ORDER BY date_bin('2 hours', time, TIMESTAMPTZ '2000-01-01Z')",
            start.to_rfc3339(),
            end.to_rfc3339()
        ))
        .load(&mut db.conn())
        .unwrap();
        let mut args = window.clone();
        args["bucket"] = json!("2h");
        args["aggregate"] = json!(aggregate);
        let got = app.call_tool(&session, "query_timeseries", args).await;
        let got = &got["structuredContent"];
        assert_eq!(got["source"], "rollup");
        let rows = got["points"].as_array().unwrap();
        assert_eq!(rows.len(), want.len(), "{aggregate}");
        for (g, w) in rows.iter().zip(&want) {
            near(&g["value"], w.v, aggregate);
        }
    }

    // z-score anomalies: the spike, found by reading only the hours whose
    // extremes cross a bound.
    let found = app
        .call_tool(&session, "detect_anomalies", json!({ "series": "r.cpu" }))
        .await;
    let f = &found["structuredContent"];
    assert_eq!(f["source"], "rollup", "{found}");
    let (lo, hi) = (
        f["lower_bound"].as_f64().unwrap(),
        f["upper_bound"].as_f64().unwrap(),
    );
    let outside = db.count(&format!(
        "SELECT count(*) AS n FROM timeseries_data WHERE series_name = 'r.cpu' AND (value < {lo} OR value > {hi})"
    ));
    assert_eq!(f["total_anomalies"], outside);
    assert!(f["scanned_hours"].as_i64().unwrap() < 10, "{found}");

    // A model on hourly means: ten hours, not 3,600 points.
    let model = app
        .call_tool(
            &session,
            "train_model",
            json!({ "series": "r.cpu", "model_type": "linear", "bucket": "1h", "holdout": 2 }),
        )
        .await;
    let m = &model["structuredContent"];
    assert_eq!(
        (m["training_points"].as_u64(), m["holdout_points"].as_u64()),
        (Some(8), Some(2)),
        "{model}"
    );
}

#[rocket::async_test]
async fn sketched_percentiles_are_within_their_stated_error() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    let n = 30_000;
    let mut seed = 99;
    let distributions: [(&str, Vec<f64>); 4] = [
        (
            "skewed",
            (0..n)
                .map(|_| (2.0 + 1.5 * normal(&mut seed)).exp())
                .collect(),
        ),
        (
            "bimodal",
            (0..n)
                .map(|i| if i % 3 == 0 { 10.0 } else { 500.0 } + normal(&mut seed))
                .collect(),
        ),
        (
            "signed",
            (0..n).map(|_| 100.0 * normal(&mut seed)).collect(),
        ),
        (
            "heavy",
            (0..n).map(|_| 1.0 / uniform(&mut seed).max(1e-9)).collect(),
        ),
    ];
    let end = t0() + Duration::seconds(n as i64);
    for (name, values) in &distributions {
        let series = format!("sk.{name}");
        app.ingest(
            &session,
            &series,
            &points(values, t0(), Duration::seconds(1)),
        )
        .await;
        let want = reference(&db, &series, t0(), end);
        let r = app
            .call_tool(
                &session,
                "compute_statistics",
                json!({ "series": series, "exact": false }),
            )
            .await;
        let s = &r["structuredContent"];
        assert_eq!(s["percentiles"], "sketch", "{r}");
        let bound = s["percentile_relative_error"].as_f64().unwrap();
        assert_eq!(bound, 0.01);
        for (field, want) in [("p50", want.p50), ("p95", want.p95), ("p99", want.p99)] {
            let (got, want) = (s[field].as_f64().unwrap(), want.unwrap());
            let rel = ((got - want) / want).abs();
            eprintln!("sketch {name} {field}: {got} vs {want} ({rel:.5})");
            assert!(rel <= bound, "{name} {field}: {got} vs {want} ({rel})");
        }
        let exact = app
            .call_tool(
                &session,
                "compute_statistics",
                json!({ "series": series, "exact": true }),
            )
            .await;
        assert_eq!(exact["structuredContent"]["percentiles"], "exact");
        near(
            &exact["structuredContent"]["p99"],
            want.p99.unwrap(),
            "exact p99",
        );
    }
}

#[test]
fn the_migration_fills_rollups_for_points_already_there() {
    let db = TestDatabase::migrated();
    // Points written behind the server's back: no rollups for them yet.
    diesel::sql_query(
        "INSERT INTO timeseries_data (series_name, time, value)
         SELECT 'm.' || (g % 3), TIMESTAMPTZ '2026-01-01Z' + g * interval '7 seconds', sin(g)
           FROM generate_series(1, 20000) g",
    )
    .execute(&mut db.conn())
    .unwrap();
    assert_eq!(db.count(FOLDED), 0);
    // Back to before the rollups migration, and forward again.
    let back = mcp(
        &["migrate", "revert", "--to", "2026-11-25-000003", "--yes"],
        &db.url,
    );
    assert!(back.status.success(), "{}", text(&back));
    let redo = mcp(&["migrate", "run"], &db.url);
    assert!(redo.status.success(), "{}", text(&redo));
    assert_eq!(db.count(MISMATCHES), 0);
    assert_eq!(db.count(FOLDED), 20_000);
    // The catalog migration found the three series, folded through their
    // last hour.
    assert_eq!(
        db.count("SELECT count(*) AS n FROM timeseries_series WHERE folded_to > '2026-01-02Z'"),
        3
    );
}

#[rocket::async_test]
async fn reverting_the_catalog_folds_every_tail_first() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    let tail = points(&[1.0, 2.0, 3.0], t0(), Duration::minutes(50));
    app.ingest(&session, "r.tail", &tail).await;
    assert_eq!(db.count(FOLDED), 0, "not folded yet");
    // The code before the catalog expects rollups of every point.
    let back = mcp(
        &["migrate", "revert", "--to", "2026-12-02-000003", "--yes"],
        &db.url,
    );
    assert!(back.status.success(), "{}", text(&back));
    assert_eq!(db.count(FOLDED), 3);
    assert_eq!(
        db.count("SELECT sum(count)::bigint AS n FROM timeseries_rollups_daily"),
        3
    );
}

/// Rows without sketches (the raw parts summarised by the server's own
/// statement) are the rows with them, but for the sketch: on an unfolded
/// tail, after the fold, and at partial hours on either edge.
#[rocket::async_test]
async fn rows_without_sketches_are_the_same_rows() {
    use mcp_server::domain::Window;
    use mcp_server::store::rollups::{Row, read_many};
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    // A counter with a reset, one point every 7 minutes over 30 hours.
    let values: Vec<f64> = (0..260)
        .map(|i| f64::from(if i < 130 { i * 3 } else { i - 130 }))
        .collect();
    app.ingest(&session, "c", &points(&values, t0(), Duration::minutes(7)))
        .await;
    app.ingest(
        &session,
        "g",
        &points(&values[..50], t0(), Duration::minutes(11)),
    )
    .await;
    let mut conn = db.conn();
    let windows = [
        Window::default(),
        Window {
            start: Some(t0() + Duration::minutes(95)),
            end: Some(t0() + Duration::hours(26) + Duration::minutes(13)),
        },
        Window {
            start: Some(t0() + Duration::minutes(5)),
            end: Some(t0() + Duration::minutes(40)),
        },
    ];
    let fields = |rows: Vec<Vec<Row>>| -> Vec<String> {
        rows.into_iter()
            .enumerate()
            .flat_map(|(i, rows)| rows.into_iter().map(move |r| (i, r)))
            .map(|(i, r)| {
                format!(
                    "{} {} {} {} {:.9} {} {} {} {} {} {} {:.9} {:.9} {:.9} {:.9} {}",
                    i,
                    r.bucket,
                    r.count,
                    r.sum,
                    r.m2,
                    r.min_value,
                    r.max_value,
                    r.first_time,
                    r.first_value,
                    r.last_time,
                    r.last_value,
                    r.mean_t,
                    r.sxx,
                    r.sxy,
                    r.increase,
                    r.span
                )
            })
            .collect()
    };
    for folded in [false, true] {
        if folded {
            assert!(app.fold().await > 0);
        }
        for window in windows {
            for days in [false, true] {
                let with = read_many(&mut conn, &["c", "g"], window, (days, true), None).unwrap();
                assert!(with.iter().flatten().all(|r| !r.sketch_keys.is_empty()));
                let without =
                    read_many(&mut conn, &["c", "g"], window, (days, false), None).unwrap();
                assert!(without.iter().flatten().all(|r| r.sketch_keys.is_empty()));
                assert_eq!(
                    fields(with),
                    fields(without),
                    "folded {folded}, {window:?}, days {days}"
                );
            }
        }
    }
}

/// A table bulk-loaded after it was analysed empty gets its statistics
/// from the worker, not from an autovacuum that may not run (it is off on
/// the machines CI runs on): the reads' plans then see the rows.
#[test]
fn the_worker_refreshes_statistics_a_bulk_load_made_stale() {
    use mcp_server::store::statistics;
    let db = TestDatabase::migrated();
    diesel::sql_query("ANALYZE timeseries_data")
        .execute(&mut db.conn())
        .unwrap();
    diesel::sql_query(
        "INSERT INTO timeseries_data (series_name, time, value)
         SELECT 'bulk', TIMESTAMPTZ '2026-01-01Z' + g * interval '1 second', g
           FROM generate_series(1, 30000) g",
    )
    .execute(&mut db.conn())
    .unwrap();
    let mut conn = db.conn();
    // The counters behind the choice reach the statistics a moment after
    // the writing session's commit.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let analysed = loop {
        let analysed = statistics::refresh(&mut conn, 4).unwrap();
        if !analysed.is_empty() || std::time::Instant::now() > deadline {
            break analysed;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert!(
        analysed.iter().any(|t| t.ends_with(".timeseries_data")),
        "{analysed:?}"
    );
    assert_eq!(
        db.count("SELECT reltuples::int8 AS n FROM pg_class WHERE relname = 'timeseries_data'"),
        30000
    );
    assert_eq!(
        statistics::refresh(&mut conn, 4).unwrap(),
        Vec::<String>::new()
    );
}

/// A series nobody writes to any more (`ROLLUP_FOLD_AFTER_SECS` since its
/// last write) folds whole, its newest hour too, so reads sum no raw
/// points; a sample that comes later into that hour refreshes it. While
/// written, the newest hour stays in the tail.
#[rocket::async_test]
async fn a_quiet_series_folds_its_newest_hour_too() {
    let folded_to = "SELECT extract(epoch FROM folded_to)::int8 AS n FROM timeseries_series \
                     WHERE series_name = 'q'";
    let hours = |h: i64| t0().timestamp() + h * 3600;
    // 90 points a minute apart: the newest is in the second hour.
    let values: Vec<f64> = (0..90).map(f64::from).collect();
    let writes = points(&values, t0(), Duration::minutes(1));

    // Written a moment ago (the default 300 s): the newest hour waits.
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    app.ingest(&session, "q", &writes).await;
    app.fold_all().await;
    assert_eq!(db.count(folded_to), hours(1));

    // Quiet at once: it folds through the end of its newest hour.
    let db = TestDatabase::migrated();
    let quiet = crate::helpers::figment(&db.url, None).merge(("rollup_fold_after_secs", 0));
    let app = TestApp::try_spawn(quiet).await.expect("application starts");
    let session = app.session().await;
    app.ingest(&session, "q", &writes).await;
    app.fold_all().await;
    // And no further: a sample after it would land in the tail.
    assert_eq!(db.count(folded_to), hours(2));
    assert_eq!(db.count(FOLDED), 90);
    // A late sample into the folded hour: the hour is recomputed with it.
    app.ingest(&session, "q", &[(t0() + Duration::seconds(5430), 1000.0)])
        .await;
    assert_eq!(db.count(FOLDED), 91);
    assert_eq!(db.count(MISMATCHES), 0);
    let stats = app
        .call_tool(&session, "compute_statistics", json!({ "series": "q" }))
        .await;
    let summary = &stats["structuredContent"];
    assert_eq!(summary["count"], 91, "{stats}");
    assert_eq!(summary["max"], 1000.0, "{stats}");
}
