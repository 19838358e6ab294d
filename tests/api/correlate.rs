//! `correlate_series` over hourly rollups of series written by remote
//! write: a copy two hours late is found at lag 2, a mirror at −1, and a
//! flat line is left out.

use serde_json::json;

use crate::helpers::{TestApp, TestDatabase};
use crate::writes::{T0, body, remote_write, series};

#[rocket::async_test]
async fn followers_mirrors_and_flat_lines() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let wave = |h: i64| (h as f64 * 0.7).sin() + (h as f64 * 0.29).cos();
    // Six points an hour for two days, each hour at its wave's value.
    let make = |name: &str, f: &dyn Fn(i64) -> f64| {
        let samples: Vec<(f64, i64)> = (0..48 * 6).map(|k| (f(k / 6), T0 + k * 600_000)).collect();
        series(&[("__name__", name), ("job", "x")], &samples)
    };
    let all = vec![
        make("cpu", &|h| wave(h)),
        make("follower", &|h| 3.0 * wave(h - 2) + 1.0),
        make("mirror", &|h| -wave(h)),
        make("flat", &|_| 5.0),
    ];
    assert_eq!(remote_write(&app, body(all)).await.status, 204);
    let session = app.session().await;
    let listed = app
        .call_tool(&session, "list_series", json!({"selector": "cpu"}))
        .await;
    let cpu = listed["structuredContent"]["series"][0]["series"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .call_tool(
            &session,
            "correlate_series",
            json!({"series": cpu, "selector": {"match": {"job": "x"}}, "max_lag": 3,
                   "start": "2026-03-01T00:00:00Z", "end": "2026-03-03T00:00:00Z"}),
        )
        .await;
    assert_ne!(r["isError"], true, "{r}");
    let c = &r["structuredContent"];
    assert_eq!(
        (&c["series_matched"], &c["series_without_correlation"]),
        (&json!(3), &json!(1)),
        "{c}"
    );
    assert_eq!(c["source"], "rollup");
    let results = c["results"].as_array().unwrap();
    let find = |m: &str| {
        results
            .iter()
            .find(|x| x["labels"]["__name__"] == m)
            .unwrap()
    };
    let follower = find("follower");
    assert!(
        (follower["pearson"].as_f64().unwrap() - 1.0).abs() < 1e-9,
        "{follower}"
    );
    assert_eq!(
        (&follower["lag"], &follower["samples"]),
        (&json!(2), &json!(46))
    );
    let mirror = find("mirror");
    assert!((mirror["pearson"].as_f64().unwrap() + 1.0).abs() < 1e-9);
    assert!((mirror["spearman"].as_f64().unwrap() + 1.0).abs() < 1e-9);
    assert_eq!(mirror["lag"], 0);

    let short = json!({"series": cpu, "selector": "mirror",
                       "start": "2026-03-01T00:00:00Z", "end": "2026-03-01T02:00:00Z"});
    let text = app.tool_error(&session, "correlate_series", short).await;
    assert!(text.contains("at least 3"), "{text}");
}
