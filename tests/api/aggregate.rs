//! `aggregate_series` over series written by Prometheus remote write: a
//! counter's increase and rate with a reset, a late start, a gap and a
//! stale marker, each against a hand-computed answer; grouping, topk and
//! histogram_quantile; the bounds.

use mcp_server::ingest::remote_write::TimeSeries;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestDatabase};
use crate::writes::{T0, body, remote_write, series};

const STALE: f64 = f64::from_bits(0x7ff0_0000_0000_0002);

fn at(seconds: i64) -> i64 {
    T0 + seconds * 1000
}

fn counters() -> Vec<TimeSeries> {
    let s = |instance: &str, job: &str, samples: &[(f64, i64)]| {
        let labels = [
            ("__name__", "req_total"),
            ("instance", instance),
            ("job", job),
        ];
        let samples: Vec<(f64, i64)> = samples.iter().map(|&(v, t)| (v, at(t))).collect();
        series(&labels, &samples)
    };
    vec![
        // A reset at 60 s: 10 + (5 from 0) + 10 = 25 over 90 s.
        s("a", "api", &[(10.0, 0), (20.0, 30), (5.0, 60), (15.0, 90)]),
        // Starts inside the window: 30 over 30 s.
        s("b", "api", &[(100.0, 60), (130.0, 90)]),
        // One sample: no increase, no rate.
        s("c", "api", &[(7.0, 30)]),
        // A gap of 570 s: 50 over 600 s.
        s("d", "web", &[(0.0, 0), (10.0, 30), (50.0, 600)]),
        // A stale marker is no sample: 2 over 60 s.
        s("e", "web", &[(1.0, 0), (STALE, 30), (3.0, 60)]),
    ]
}

async fn aggregate(app: &TestApp, session: &str, args: Value) -> Value {
    let mut args = args;
    args["start"] = json!("2026-03-01T00:00:00Z");
    args["end"] = json!("2026-03-01T01:00:00Z");
    let r = app
        .call_tool(session, "aggregate_series", args.clone())
        .await;
    assert_ne!(r["isError"], true, "{args}: {r}");
    r["structuredContent"].clone()
}

fn by_instance(result: &Value) -> Vec<(String, f64)> {
    result["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["labels"]["instance"].as_str().unwrap().to_owned(),
                g["value"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[rocket::async_test]
async fn increase_and_rate_handle_resets_late_starts_gaps_and_stale_markers() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    assert_eq!(remote_write(&app, body(counters())).await.status, 204);
    let session = app.session().await;
    let each = |per| json!({"selector": "req_total", "per_series": per, "across": "sum", "by": ["instance"]});
    let increase = aggregate(&app, &session, each("increase")).await;
    assert_eq!(
        by_instance(&increase),
        [
            ("a".into(), 25.0),
            ("b".into(), 30.0),
            ("d".into(), 50.0),
            ("e".into(), 2.0)
        ]
    );
    assert_eq!(
        (&increase["series_matched"], &increase["series_with_values"]),
        (&json!(5), &json!(4))
    );
    assert_eq!(increase["source"], "rollup");
    let rate = aggregate(&app, &session, each("rate")).await;
    let want = [
        ("a", 25.0 / 90.0),
        ("b", 1.0),
        ("d", 50.0 / 600.0),
        ("e", 2.0 / 60.0),
    ];
    for ((got_i, got), (want_i, want)) in by_instance(&rate).iter().zip(want) {
        assert_eq!(got_i, want_i);
        assert!((got - want).abs() < 1e-12, "{got_i}: {got} vs {want}");
    }
    // Grouped by job, the increases add up.
    let jobs = aggregate(
        &app,
        &session,
        json!({"selector": "req_total", "per_series": "increase", "across": "sum", "by": ["job"]}),
    )
    .await;
    assert_eq!(
        jobs["groups"],
        json!([{"labels": {"job": "api"}, "value": 55.0, "series": 2},
               {"labels": {"job": "web"}, "value": 52.0, "series": 2}])
    );
    // Read by its raw values, a counter says so.
    let raw = aggregate(
        &app,
        &session,
        json!({"selector": "req_total", "per_series": "max", "across": "max"}),
    )
    .await;
    assert_eq!(raw["groups"][0]["value"], 130.0);
    assert_eq!(raw["source"], "rollup");
    assert!(
        raw["notes"][0]
            .as_str()
            .unwrap()
            .contains("req_total count up"),
        "{raw}"
    );
    // So does compute_statistics over one of them; a gauge's does not.
    let one = app
        .call_tool(
            &session,
            "list_series",
            json!({"selector": "req_total{instance=\"a\"}"}),
        )
        .await;
    let name = one["structuredContent"]["series"][0]["series"].clone();
    let stats = app
        .call_tool(&session, "compute_statistics", json!({"series": name}))
        .await;
    let note = stats["structuredContent"]["note"]
        .as_str()
        .unwrap_or_default();
    assert!(
        note.contains("req_total is a counter") && note.contains("rate or increase"),
        "{stats}"
    );
    app.ingest(&session, "a.gauge", &[(chrono::Utc::now(), 1.0)])
        .await;
    let gauge = app
        .call_tool(&session, "compute_statistics", json!({"series": "a.gauge"}))
        .await;
    assert!(gauge["structuredContent"].get("note").is_none(), "{gauge}");
}

#[rocket::async_test]
async fn topk_bottomk_and_grouping_over_a_fleet_of_gauges() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let fleet: Vec<TimeSeries> = (0..6)
        .map(|i| {
            let instance = format!("n{i}");
            let zone = if i < 3 { "eu" } else { "us" };
            let v = f64::from(i);
            series(
                &[
                    ("__name__", "load"),
                    ("instance", &instance),
                    ("zone", zone),
                ],
                &[(v, at(0)), (v + 2.0, at(60))],
            )
        })
        .collect();
    assert_eq!(remote_write(&app, body(fleet)).await.status, 204);
    let session = app.session().await;
    let top = aggregate(
        &app,
        &session,
        json!({"selector": {"metric": "load"}, "per_series": "avg", "across": "avg",
               "by": ["instance"], "topk": 2}),
    )
    .await;
    assert_eq!(by_instance(&top), [("n5".into(), 6.0), ("n4".into(), 5.0)]);
    let bottom = aggregate(
        &app,
        &session,
        json!({"selector": "load", "per_series": "last", "across": "max", "without": ["zone"], "bottomk": 1}),
    )
    .await;
    assert_eq!(by_instance(&bottom), [("n0".into(), 2.0)]);
    let zones = aggregate(
        &app,
        &session,
        json!({"selector": "load{zone=\"eu\"}", "per_series": "avg", "across": "stddev"}),
    )
    .await;
    // Population stddev of 1, 2, 3.
    assert!((zones["groups"][0]["value"].as_f64().unwrap() - (2.0f64 / 3.0).sqrt()).abs() < 1e-12);
    let q = aggregate(
        &app,
        &session,
        json!({"selector": "load", "per_series": "avg", "across": "quantile", "q": 0.5, "by": ["zone"]}),
    )
    .await;
    assert_eq!(
        q["groups"],
        json!([{"labels": {"zone": "eu"}, "value": 2.0, "series": 3},
                                   {"labels": {"zone": "us"}, "value": 5.0, "series": 3}])
    );
    let few = aggregate(
        &app,
        &session,
        json!({"selector": "load", "per_series": "avg", "across": "sum", "by": ["instance"], "max_groups": 2}),
    )
    .await;
    assert_eq!(
        (few["groups"].as_array().unwrap().len(), &few["truncated"]),
        (2, &json!(true))
    );
}

#[rocket::async_test]
async fn histogram_quantile_per_group_from_classic_buckets() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    // Two scrapes of one histogram per handler: in between, 100
    // observations, 50 ≤ 0.1, 90 ≤ 0.5, all ≤ 1 (and the /b handler: all ≤ 0.1).
    let mut all = Vec::new();
    for (handler, counts) in [
        ("/a", [50.0, 90.0, 100.0, 100.0]),
        ("/b", [10.0, 10.0, 10.0, 10.0]),
    ] {
        for (le, n) in ["0.1", "0.5", "1", "+Inf"].iter().zip(counts) {
            let labels = [
                ("__name__", "lat_seconds_bucket"),
                ("handler", handler),
                ("le", le),
            ];
            all.push(series(&labels, &[(1.0, at(0)), (1.0 + n, at(60))]));
        }
    }
    assert_eq!(remote_write(&app, body(all)).await.status, 204);
    let session = app.session().await;
    let p = aggregate(
        &app,
        &session,
        json!({"selector": "lat_seconds_bucket", "per_series": "increase",
               "across": "histogram_quantile", "q": 0.7, "by": ["handler", "le"]}),
    )
    .await;
    let groups = p["groups"].as_array().unwrap();
    assert_eq!(groups[0]["labels"], json!({"handler": "/a"}));
    assert!(
        (groups[0]["value"].as_f64().unwrap() - 0.3).abs() < 1e-12,
        "{p}"
    );
    assert_eq!(groups[1]["labels"], json!({"handler": "/b"}));
    assert!(
        (groups[1]["value"].as_f64().unwrap() - 0.07).abs() < 1e-12,
        "{p}"
    );
}

#[rocket::async_test]
async fn bounds_and_bad_arguments_are_tool_errors() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    assert_eq!(remote_write(&app, body(counters())).await.status, 204);
    let session = app.session().await;
    for (args, says) in [
        (
            json!({"selector": "req_total", "per_series": "avg", "across": "sum", "max_series": 3}),
            "matches 5 series, past max_series 3 (at most 10,000); narrow it with a matcher on instance (5 values), job (2 values)",
        ),
        (
            json!({"selector": "req_total", "per_series": "avg", "across": "quantile"}),
            "needs q",
        ),
        (
            json!({"selector": "req_total", "per_series": "avg", "across": "quantile", "q": 2}),
            "in [0, 1]",
        ),
        (
            json!({"selector": "req_total", "per_series": "avg", "across": "sum", "by": [], "without": []}),
            "not both",
        ),
        (
            json!({"selector": "req_total", "per_series": "avg", "across": "sum", "topk": 1, "bottomk": 1}),
            "not both",
        ),
        (
            json!({"selector": "req_total", "per_series": "avg", "across": "histogram_quantile", "q": 0.5}),
            "rate or increase",
        ),
        (
            json!({"selector": "req_total", "per_series": "rate", "across": "histogram_quantile", "q": 0.5}),
            "le label",
        ),
        (
            json!({"selector": "req_total{", "per_series": "avg", "across": "sum"}),
            "not a PromQL selector",
        ),
        (
            json!({"selector": "req_total", "per_series": "median", "across": "sum"}),
            "unknown variant",
        ),
    ] {
        let text = app
            .tool_error(&session, "aggregate_series", args.clone())
            .await;
        assert!(text.contains(says), "{args}: {text}");
    }
}

#[rocket::async_test]
async fn per_bucket_groups_one_point_per_hour() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    // Three hours at a sample a minute: gauge a is the hour's index, b ten
    // times it; the counter grows 1 a minute.
    let minutes = |f: &dyn Fn(i64) -> f64| -> Vec<(f64, i64)> {
        (0..180).map(|m| (f(m), at(m * 60))).collect()
    };
    let all = vec![
        series(
            &[("__name__", "g"), ("host", "a")],
            &minutes(&|m| (m / 60) as f64),
        ),
        series(
            &[("__name__", "g"), ("host", "b")],
            &minutes(&|m| (10 * (m / 60)) as f64),
        ),
        series(
            &[("__name__", "c_total"), ("host", "a")],
            &minutes(&|m| m as f64),
        ),
        // Restarts as the third hour begins (119 → 0), and inside it (149 → 5).
        series(
            &[("__name__", "r_total")],
            &minutes(&|m| if m < 120 { m } else { m - 120 } as f64),
        ),
        series(
            &[("__name__", "s_total")],
            &minutes(&|m| if m < 150 { m } else { m - 145 } as f64),
        ),
    ];
    assert_eq!(remote_write(&app, body(all)).await.status, 204);
    let session = app.session().await;
    let window =
        json!({"start": "2026-03-01T00:00:00Z", "end": "2026-03-01T03:00:00Z", "bucket": "1h"});
    let call = |extra: Value| {
        let mut args = window.clone();
        args.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (app, session) = (&app, &session);
        async move {
            let r = app
                .call_tool(session, "aggregate_series", args.clone())
                .await;
            assert_ne!(r["isError"], true, "{args}: {r}");
            r["structuredContent"].clone()
        }
    };
    let points = |g: &Value| -> Vec<f64> {
        g["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["value"].as_f64().unwrap())
            .collect()
    };
    let sum = call(json!({"selector": "g", "per_series": "avg", "across": "sum"})).await;
    assert_eq!(sum["bucket"], "1h");
    assert_eq!(points(&sum["groups"][0]), [0.0, 11.0, 22.0]);
    assert_eq!(
        sum["groups"][0]["points"][1]["time"],
        "2026-03-01T01:00:00Z"
    );
    let top = call(
        json!({"selector": "g", "per_series": "max", "across": "max", "by": ["host"], "topk": 1}),
    )
    .await;
    assert_eq!(top["groups"].as_array().unwrap().len(), 1);
    assert_eq!(top["groups"][0]["labels"], json!({"host": "b"}));
    assert_eq!(
        (points(&top["groups"][0]), &top["groups"][0]["value"]),
        (vec![0.0, 10.0, 20.0], &json!(10.0))
    );
    // A counter's rate per hour: 59 increments over the 59 minutes between its samples.
    let rate = call(json!({"selector": "c_total", "per_series": "rate", "across": "sum"})).await;
    for v in points(&rate["groups"][0]) {
        assert!((v - 1.0 / 60.0).abs() < 1e-12, "{rate}");
    }
    // Over the window, from the raw tail, then from the rollups once folded:
    // 119 + 0 + 59, and 149 + 5 + 29.
    let whole = |metric: &str| {
        json!({"selector": metric, "per_series": "increase", "across": "sum",
               "start": "2026-03-01T00:00:00Z", "end": "2026-03-01T03:00:00Z"})
    };
    for folded in [false, true] {
        if folded {
            assert!(app.fold().await > 0);
        }
        for (metric, want) in [("r_total", 178.0), ("s_total", 183.0), ("c_total", 179.0)] {
            let r = app
                .call_tool(&session, "aggregate_series", whole(metric))
                .await;
            assert_eq!(
                r["structuredContent"]["groups"][0]["value"], want,
                "{metric}, folded {folded}: {r}"
            );
        }
    }
    assert_eq!(
        db.count(crate::rollups::MISMATCHES),
        0,
        "the rollups' increase is the points'"
    );
    for (extra, says) in [
        (json!({"bucket": "5m"}), "whole number of hours"),
        (json!({"start": null}), "needs start and end"),
    ] {
        let mut args = json!({"selector": "g", "per_series": "avg", "across": "sum"});
        args.as_object_mut()
            .unwrap()
            .extend(window.as_object().unwrap().clone());
        args.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let text = app.tool_error(&session, "aggregate_series", args).await;
        assert!(text.contains(says), "{text}");
    }
}
