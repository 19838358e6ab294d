use diesel::prelude::*;

use crate::helpers::{NEWEST, NEWEST_DIR, OwnRedis, TestApp, TestDatabase, redis_url};

#[rocket::async_test]
async fn index_names_the_service_and_links() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let (status, body) = app.get_json("/").await;
    assert_eq!(status, 200);
    assert_eq!(body["name"], "mcp-server");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["links"]["health"], "/health");
    assert_eq!(body["links"]["mcp"], "/mcp");
    let (status, body) = app.get_json("/no/such/page").await;
    assert_eq!(
        (status, &body["error"]["status"]),
        (404, &serde_json::json!(404))
    );
}

#[rocket::async_test]
async fn health_is_ok_with_the_database_and_redis_up() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, Some(&redis_url())).await;
    let (status, body) = app.get_json("/health").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["database"]["reachable"], true);
    let latency = body["database"]["latency_ms"].as_f64().unwrap();
    assert!(
        latency > 0.0 && latency < 2000.0,
        "a measured round trip: {latency}"
    );
    assert_eq!(body["database"]["schema_version"], NEWEST);
    assert_eq!(body["database"]["pending_count"], 0);
    assert_eq!(body["cache"]["backend"], "redis");
    assert_eq!(body["cache"]["state"], "up");
}

#[rocket::async_test]
async fn health_without_redis_url_uses_the_in_process_cache() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let (status, body) = app.get_json("/health").await;
    assert_eq!((status, &body["status"]), (200, &serde_json::json!("ok")));
    assert_eq!(body["cache"]["backend"], "memory");
}

#[rocket::async_test]
async fn redis_down_is_degraded_not_down_and_recovers() {
    let db = TestDatabase::migrated();
    let mut redis = OwnRedis::start();
    let app = TestApp::spawn(&db, Some(&redis.url())).await;
    assert_eq!(app.get_json("/health").await.1["status"], "ok");

    redis.stop();
    let (status, body) = app.health_until(|_, b| b["status"] != "ok").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["cache"]["reachable"], false);
    assert_eq!(body["database"]["reachable"], true);

    redis.restart();
    app.health_until(|s, b| s == 200 && b["status"] == "ok")
        .await;
}

#[rocket::async_test]
async fn redis_at_a_closed_port_still_serves_degraded() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, Some("redis://127.0.0.1:1")).await;
    let (status, body) = app.get_json("/health").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["cache"]["state"], "down");
}

#[rocket::async_test]
async fn database_down_is_503_and_recovers() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    assert_eq!(app.get_json("/health").await.0, 200);

    db.allow_connections(false);
    let (status, body) = app.health_until(|s, _| s != 200).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["database"]["reachable"], false);
    let error = body["database"]["error"].as_str().unwrap();
    assert!(
        !error.contains("127.0.0.1") && !error.contains("5432") && !error.contains(&db.name),
        "the topology leaked: {error}"
    );

    db.allow_connections(true);
    app.health_until(|s, _| s == 200).await;
}

#[rocket::async_test]
async fn an_outage_says_to_retry_and_loses_no_request_log_row() {
    use std::sync::atomic::Ordering;
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    db.allow_connections(false);
    app.health_until(|s, _| s != 200).await;
    // Each call waits out the checkout timeout (5 s) before it is told.
    for _ in 0..2 {
        let result = app
            .call_tool(&session, "list_series", serde_json::json!({}))
            .await;
        let text = result["content"][0]["text"].as_str().unwrap();
        assert_eq!(result["isError"], true, "{result}");
        assert!(
            text.contains("unreachable")
                && text.contains("retry")
                && !text.contains("internal error"),
            "{text}"
        );
    }
    // The writer tries while the database is away; its rows are kept.
    rocket::tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    db.allow_connections(true);
    let log = &app.mcp_state().log;
    log.flush().await;
    let logged = db.count("SELECT count(*) AS n FROM mcp_request_logs WHERE method = 'tools/call'");
    let lost =
        log.counters.failed.load(Ordering::Relaxed) + log.counters.dropped.load(Ordering::Relaxed);
    assert_eq!(
        (logged, lost),
        (2, 0),
        "request-log rows lost to the outage"
    );
}

#[rocket::async_test]
async fn a_pending_migration_is_503_with_its_name() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    // Someone reverted the last migration behind the running server's back.
    diesel::sql_query(format!(
        "DELETE FROM __diesel_schema_migrations WHERE version = '{NEWEST}'"
    ))
    .execute(&mut db.conn())
    .unwrap();
    let (status, body) = app.health_until(|s, _| s != 200).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["database"]["pending_count"], 1);
    assert_eq!(
        body["database"]["pending_migrations"][0]["name"],
        NEWEST_DIR
    );
}

#[test]
fn an_outage_logs_its_start_and_end_not_every_attempt() {
    let db = TestDatabase::migrated();
    let server =
        crate::helpers::ServerProcess::start(&db, &[("DB_MIN_IDLE", "4"), ("RUST_LOG", "info")]);
    let health = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_mcp-server"))
            .args([
                "healthcheck",
                "--url",
                &format!("http://127.0.0.1:{}/health", server.port),
            ])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !health() {
        assert!(std::time::Instant::now() < deadline, "never healthy");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    db.allow_connections(false);
    // The pool keeps trying to refill its idle connections meanwhile.
    for _ in 0..30 {
        health();
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    db.allow_connections(true);
    while !health() {
        assert!(
            std::time::Instant::now() < deadline + std::time::Duration::from_secs(30),
            "never recovered"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let logs = server.stop();
    let count = |says: &str| logs.lines().filter(|l| l.contains(says)).count();
    // The probes (on a connection of their own) saw it; the pool, idle
    // meanwhile, may have too, once.
    assert_eq!(count("health: the database does not answer"), 1, "{logs}");
    assert_eq!(count("health: the database answers again"), 1, "{logs}");
    assert!(count("database connections failing") <= 1, "{logs}");
    assert!(count("health: database check failed") == 0, "{logs}");
    assert!(count("ERROR") <= 3, "{logs}");
}
