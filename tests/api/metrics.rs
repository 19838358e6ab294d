//! `/metrics`, `server_metrics` and the `performance_metrics` snapshots.

use serde_json::json;

use crate::helpers::{TestApp, TestDatabase, figment};

#[rocket::async_test]
async fn prometheus_text_counts_routes_tools_cache_and_pool() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    app.call_tool(&session, "list_series", json!({})).await;
    app.call_tool(
        &session,
        "ingest_timeseries",
        json!({ "series": "m", "points": [{ "time": "2026-01-01T00:00:00Z", "value": 1 }] }),
    )
    .await;
    app.call_tool(&session, "compute_statistics", json!({ "series": "m" }))
        .await;
    app.call_tool(&session, "compute_statistics", json!({ "series": "m" }))
        .await;
    app.get_json("/health").await;

    let response = app.client.get("/metrics").dispatch().await;
    assert_eq!(response.status().code, 200);
    assert!(
        response
            .content_type()
            .is_some_and(|c| c.to_string().starts_with("text/plain"))
    );
    let text = response.into_string().await.unwrap();
    for needle in [
        r#"mcp_rpc_requests_total{method="tools/call",status="ok",tool="list_series"} 1"#,
        r#"mcp_rpc_requests_total{method="initialize",status="ok",tool=""} 1"#,
        r#"mcp_http_requests_total{route="/health",status="200"} 1"#,
        "mcp_rpc_duration_seconds_bucket{method=\"tools/call\",tool=\"compute_statistics\",le=",
        "mcp_cache_hits_total 1",
        "mcp_cache_misses_total 1\n",
        "mcp_db_pool_max_connections 16",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[rocket::async_test]
async fn server_metrics_reports_live_figures_and_snapshots() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    app.call_tool(
        &session,
        "ingest_timeseries",
        json!({ "series": "m", "points": [{ "time": "2026-01-01T00:00:00Z", "value": 1 }] }),
    )
    .await;
    for _ in 0..3 {
        app.call_tool(&session, "compute_statistics", json!({ "series": "m" }))
            .await;
    }
    let state = app.mcp_state();
    mcp_server::metrics::write_snapshot(&state.metrics, &state.db, &state.cache).await;

    let r = app
        .call_tool(&session, "server_metrics", json!({ "limit": 1000 }))
        .await;
    let live = &r["structuredContent"]["live"];
    assert_eq!(live["cache"]["hits"], 2);
    assert_eq!(live["cache"]["misses"], 1);
    assert_eq!(live["requests"]["tool:compute_statistics"]["ok"], 3.0);
    let recent = r["structuredContent"]["recent"].as_array().unwrap();
    let find = |name: &str, key: &str| {
        recent
            .iter()
            .find(|m| m["metric_name"] == name && m["labels"]["key"] == key)
            .cloned()
    };
    assert_eq!(
        find("requests", "tool:compute_statistics").unwrap()["value"],
        3.0
    );
    assert!(find("latency_p95", "tool:compute_statistics").is_some());
    let ratio = recent
        .iter()
        .find(|m| m["metric_name"] == "cache_hit_ratio")
        .unwrap();
    assert!((ratio["value"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-12);
    assert!(
        recent
            .iter()
            .any(|m| m["metric_name"] == "db_pool_max" && m["value"] == 16.0)
    );
}

#[rocket::async_test]
async fn snapshots_are_written_periodically() {
    let db = TestDatabase::migrated();
    let app = TestApp::try_spawn(figment(&db.url, None).merge(("metrics_snapshot_secs", 1)))
        .await
        .unwrap();
    let session = app.session().await;
    app.rpc(&session, 1, "ping", json!({})).await;
    for _ in 0..50 {
        if db.count(
            "SELECT count(*) AS n FROM performance_metrics WHERE metric_name = 'db_pool_max'",
        ) > 0
        {
            return;
        }
        rocket::tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no snapshot within 5 s");
}
