//! `compare_windows` over counters written by Prometheus remote write: an
//! error rate that grew on one code of one instance is found, its share of
//! the change told; gauges compare their means, with how many baseline
//! standard deviations they moved.

use mcp_server::ingest::remote_write::TimeSeries;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestDatabase};
use crate::writes::{T0, body, remote_write, series};

/// A sample a minute for two hours; per minute +1, and +`then` in the second hour.
fn counter(labels: &[(&str, &str)], then: f64) -> TimeSeries {
    let mut v = 0.0;
    let samples: Vec<(f64, i64)> = (0..120)
        .map(|m| {
            v += if m >= 60 { then } else { 1.0 };
            (v, T0 + m * 60_000)
        })
        .collect();
    series(labels, &samples)
}

async fn compare(app: &TestApp, session: &str, args: Value) -> Value {
    let r = app
        .call_tool(session, "compare_windows", args.clone())
        .await;
    assert_ne!(r["isError"], true, "{args}: {r}");
    r["structuredContent"].clone()
}

#[rocket::async_test]
async fn the_change_is_found_and_explained_by_its_label_values() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let mut all = Vec::new();
    for instance in ["a", "b"] {
        for code in ["200", "503"] {
            let then = if (instance, code) == ("b", "503") {
                10.0
            } else {
                1.0
            };
            let labels = [
                ("__name__", "http_errors_total"),
                ("code", code),
                ("instance", instance),
            ];
            all.push(counter(&labels, then));
        }
    }
    assert_eq!(remote_write(&app, body(all)).await.status, 204);
    let session = app.session().await;
    let c = compare(
        &app,
        &session,
        json!({"selector": "http_errors_total", "start": "2026-03-01T01:00:00Z", "end": "2026-03-01T02:00:00Z"}),
    )
    .await;
    // The answer's text, as docs/mcp.md quotes it.
    let said = app
        .call_tool(
            &session,
            "compare_windows",
            json!({"selector": "http_errors_total", "start": "2026-03-01T01:00:00Z", "end": "2026-03-01T02:00:00Z"}),
        )
        .await;
    let text = said["content"][0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("total rate: 0.066667 → 0.216667 (delta 0.15, 3.25×)\n100% of the change from code=\"503\""),
        "{text}"
    );
    // A counter: compared by rate, the baseline the hour before.
    assert_eq!(c["per_series"], "rate");
    assert_eq!(
        c["baseline"],
        json!({"start": "2026-03-01T00:00:00Z", "end": "2026-03-01T01:00:00Z"})
    );
    let close = |v: &Value, want: f64| (v.as_f64().unwrap() - want).abs() < 1e-9;
    assert!(close(&c["total"]["baseline"], 4.0 / 60.0), "{}", c["total"]);
    assert!(close(&c["total"]["window"], 13.0 / 60.0), "{}", c["total"]);
    assert!(close(&c["total"]["ratio"], 13.0 / 4.0));
    let top = &c["series"][0];
    assert_eq!(
        (&top["labels"]["instance"], &top["labels"]["code"]),
        (&json!("b"), &json!("503"))
    );
    assert!(close(&top["ratio"], 10.0));
    // All of the change from code=503 and from instance=b; none from the others.
    let shares: Vec<(String, String, f64)> = c["explained_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["label"].as_str().unwrap().into(),
                s["value"].as_str().unwrap().into(),
                s["share"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(&shares[0].0[..], "code");
    assert_eq!(&shares[0].1[..], "503");
    assert!((shares[0].2 - 1.0).abs() < 1e-9, "{shares:?}");
    assert_eq!((&shares[1].0[..], &shares[1].1[..]), ("instance", "b"));
    let code_shares: f64 = shares.iter().filter(|s| s.0 == "code").map(|s| s.2).sum();
    assert!(
        (code_shares - 1.0).abs() < 1e-9,
        "shares of one label sum to 1: {shares:?}"
    );
    assert!(c["series"][0]["z"].is_null(), "no z for a rate");
}

#[rocket::async_test]
async fn gauges_compare_means_and_say_how_far_they_moved() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    // Baseline alternating 9 and 11 (mean 10, sd 1); then 14 on host x, 10 on y.
    let gauge = |host: &str, after: f64| {
        let samples: Vec<(f64, i64)> = (0..120)
            .map(|m| {
                let v = if m < 60 {
                    if m % 2 == 0 { 9.0 } else { 11.0 }
                } else {
                    after
                };
                (v, T0 + m * 60_000)
            })
            .collect();
        series(&[("__name__", "temp"), ("host", host)], &samples)
    };
    assert_eq!(
        remote_write(&app, body(vec![gauge("x", 14.0), gauge("y", 10.0)]))
            .await
            .status,
        204
    );
    let session = app.session().await;
    let c = compare(
        &app,
        &session,
        json!({"selector": "temp", "start": "2026-03-01T01:00:00Z", "end": "2026-03-01T02:00:00Z",
               "baseline_start": "2026-03-01T00:00:00Z", "baseline_end": "2026-03-01T01:00:00Z"}),
    )
    .await;
    assert_eq!(c["per_series"], "avg");
    assert_eq!(c["series"][0]["labels"]["host"], "x");
    assert_eq!(c["series"][0]["delta"], 4.0);
    // The baseline's sample stddev over 60 points of ±1 is sqrt(60/59).
    let z = c["series"][0]["z"].as_f64().unwrap();
    assert!((z - 4.0 / (60.0f64 / 59.0).sqrt()).abs() < 1e-9, "{z}");
    assert_eq!(
        c["explained_by"][0],
        json!({"label": "host", "value": "x", "share": 1.0, "delta": 4.0})
    );
    let open = json!({"selector": "temp", "start": "2026-03-01T01:00:00Z"});
    let text = app.tool_error(&session, "compare_windows", open).await;
    assert!(text.contains("needs start and end"), "{text}");
}
