//! A pool with one connection, held: calls fail fast with a retryable
//! message instead of queueing forever, and succeed once it is free.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{TestApp, TestDatabase, figment};

#[rocket::async_test]
async fn an_exhausted_pool_answers_busy_within_the_checkout_timeout() {
    let db = TestDatabase::migrated();
    let settings = figment(&db.url, None)
        .merge(("db_pool_size", 1))
        .merge(("db_min_idle", 0))
        .merge(("db_checkout_timeout_secs", 1));
    let app = TestApp::try_spawn(settings).await.expect("starts");
    let session = app.session().await;

    // The holder keeps the only connection until told to let go (bounded,
    // so a broken test cannot hang).
    let state = app.mcp_state().clone();
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = rocket::tokio::spawn(async move {
        state
            .db
            .run(move |_conn| {
                held_tx.send(()).ok();
                release_rx.recv_timeout(Duration::from_secs(30)).ok();
                Ok(())
            })
            .await
    });
    rocket::tokio::task::spawn_blocking(move || held_rx.recv_timeout(Duration::from_secs(10)))
        .await
        .unwrap()
        .expect("the holder got the connection");

    let busy = app.call_tool(&session, "list_series", json!({})).await;
    assert!(
        !holder.is_finished(),
        "the answer came while the connection was held"
    );
    assert_eq!(busy["isError"], true, "{busy}");
    let text = busy["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("busy") && text.contains("retry"), "{text}");
    // Busy is not down: /health probes on a connection of its own, and says
    // 200 with a probe taken while the pool is held (the snapshot it may
    // hold from before is at most two seconds old).
    rocket::tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, health) = app.get_json("/health").await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["database"]["reachable"], true, "{health}");
    assert!(!holder.is_finished());

    release_tx.send(()).unwrap();
    holder.await.unwrap().unwrap();
    let ok = app.call_tool(&session, "list_series", json!({})).await;
    assert!(ok.get("isError").is_none(), "{ok}");
}

#[rocket::async_test]
async fn a_statement_past_the_timeout_is_cancelled_and_says_what_to_do() {
    use diesel::connection::SimpleConnection;
    let db = TestDatabase::migrated();
    let settings = figment(&db.url, None).merge(("db_statement_timeout_secs", 1));
    let app = TestApp::try_spawn(settings).await.unwrap();
    let session = app.session().await;
    let ingest =
        json!({ "series": "slow", "points": [{ "time": "2026-01-01T00:00:00Z", "value": 1.0 }] });
    let r = app.call_tool(&session, "ingest_timeseries", ingest).await;
    assert_ne!(r["isError"], true, "{r}");
    // A lock held elsewhere stands in for a long scan: the wait counts.
    let mut holder = db.conn();
    holder
        .batch_execute("BEGIN; LOCK TABLE timeseries_rollups IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let started = std::time::Instant::now();
    let r = app
        .call_tool(&session, "compute_statistics", json!({ "series": "slow" }))
        .await;
    let waited = started.elapsed();
    holder.batch_execute("ROLLBACK").unwrap();
    assert_eq!(r["isError"], true, "{r}");
    let text = r["content"][0]["text"].as_str().unwrap();
    assert!(
        text.contains("statement timeout")
            && text.contains("narrow the window")
            && text.contains("task"),
        "{text}"
    );
    assert!(
        waited < Duration::from_secs(5),
        "cancelled after {waited:?}"
    );
    // The connection is fine afterwards.
    let r = app
        .call_tool(&session, "compute_statistics", json!({ "series": "slow" }))
        .await;
    assert_ne!(r["isError"], true, "{r}");
}
