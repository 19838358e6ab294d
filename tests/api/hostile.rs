//! Hostile input: it gets a clear error, and it cannot grow the server's
//! own state (metric labels, stored rows, echoed text) or lose other rows.

use serde_json::json;

use crate::helpers::{TestApp, TestDatabase};

#[rocket::async_test]
async fn a_nul_in_params_loses_no_request_log_row() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    app.call_tool(&session, "list_series", json!({ "prefix": "a\u{0}b" })).await;
    for _ in 0..5 {
        app.call_tool(&session, "list_series", json!({})).await;
    }
    app.mcp_state().log.flush().await;
    let rows = db.count("SELECT count(*) AS n FROM mcp_request_logs WHERE method = 'tools/call'");
    assert_eq!(rows, 6, "every call is logged, the one with a NUL too");
    let replaced = db.count(
        "SELECT count(*) AS n FROM mcp_request_logs WHERE params::text LIKE '%\u{FFFD}%'",
    );
    assert_eq!(replaced, 1);
}

#[rocket::async_test]
async fn unknown_names_do_not_grow_the_metrics_or_the_errors() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    for i in 0..3 {
        let name = format!("{i}{}", "x".repeat(3000));
        let r = app
            .rpc(&session, 1, "tools/call", json!({ "name": name, "arguments": {} }))
            .await;
        let message = r["error"]["message"].as_str().unwrap();
        assert!(message.len() < 300, "echoed whole: {} bytes", message.len());
    }
    app.rpc(&session, 2, &"m".repeat(3000), json!({})).await;
    let text = app.client.get("/metrics").dispatch().await.into_string().await.unwrap();
    assert!(text.lines().all(|l| l.len() < 500), "a long label reached /metrics");
    assert!(text.contains(r#"mcp_rpc_requests_total{method="tools/call",status="error",tool="unknown"} 3"#), "{text}");
    assert!(text.contains(r#"method="unknown""#), "{text}");

    let huge = "é".repeat(2_000_000);
    let r = app.call_tool(&session, "compute_statistics", json!({ "series": huge })).await;
    let message = r["content"][0]["text"].as_str().unwrap();
    assert_eq!(r["isError"], true);
    assert!(message.len() < 500, "a 2,000,000-character name was echoed: {} bytes", message.len());
}
