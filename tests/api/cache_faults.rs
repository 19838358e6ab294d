//! The cache under Redis faults: restored from an older snapshot, restarted
//! during a miss, flushed, hung. No read may return a figure older than the
//! last acknowledged write; no wait may exceed REDIS_TIMEOUT_MS by much.

use std::time::{Duration, Instant};

use mcp_server::cache::Cache;
use serde_json::json;

use crate::helpers::{OwnRedis, TestApp, TestDatabase};

const TIMEOUT: Duration = Duration::from_millis(300);

fn cache_on(redis: &OwnRedis) -> Cache {
    Cache::redis(&redis.url(), TIMEOUT).expect("valid URL")
}

/// Redis is retried at once (health pings and ends the back-off).
async fn recover(cache: &Cache) {
    assert!(cache.health().await.reachable, "Redis answers again");
}

/// A lookup that Redis answers: a connect may outlast the short timeout on
/// a loaded machine, and health ends the back-off that leaves behind.
async fn answered_lookup(cache: &Cache, scope: &str) -> (String, Option<String>) {
    for _ in 0..20 {
        if let Some(found) = cache.lookup(scope, "stats").await {
            return found;
        }
        cache.health().await;
    }
    panic!("Redis never answered a lookup");
}

#[rocket::async_test]
async fn a_restore_from_an_older_snapshot_serves_nothing_from_it() {
    let mut redis = OwnRedis::start();
    let cache = cache_on(&redis);
    let (key, found) = answered_lookup(&cache, "s").await;
    assert_eq!(found, None);
    cache.set(&key, "count=1", Duration::from_secs(60)).await;
    assert_eq!(
        answered_lookup(&cache, "s").await.1.as_deref(),
        Some("count=1")
    );
    assert_eq!(redis.cli(&["SAVE"]), "OK");

    // A write after the snapshot, then Redis comes back from the snapshot.
    cache.invalidate(&["s"]).await;
    let (key, _) = answered_lookup(&cache, "s").await;
    cache.set(&key, "count=2", Duration::from_secs(60)).await;
    redis.restart_from_snapshot();
    assert!(
        redis.cli(&["KEYS", "c:*"]).contains(":s:"),
        "the old entry is back in Redis"
    );

    let _ = cache.lookup("s", "stats").await; // the dead connection fails once
    recover(&cache).await;
    let after = answered_lookup(&cache, "s").await;
    assert_ne!(
        after.1.as_deref(),
        Some("count=1"),
        "served from the older snapshot"
    );
}

#[rocket::async_test]
async fn a_restart_during_a_miss_cannot_plant_a_stale_entry() {
    let mut redis = OwnRedis::start();
    let cache = cache_on(&redis);
    // A slow miss starts: it has its key, and computes …
    let (key, _) = answered_lookup(&cache, "s").await;
    // … Redis restarts empty, and a write lands (its invalidation may be lost) …
    redis.restart_empty();
    cache.invalidate(&["s"]).await;
    recover(&cache).await;
    // … then the miss stores what it computed before the write.
    cache
        .set(&key, "computed before the write", Duration::from_secs(60))
        .await;
    let after = answered_lookup(&cache, "s").await;
    assert_eq!(after.1, None, "a pre-write result was served");
}

#[rocket::async_test]
async fn a_flush_during_a_miss_cannot_plant_a_stale_entry() {
    let redis = OwnRedis::start();
    let cache = cache_on(&redis);
    let (key, _) = answered_lookup(&cache, "s").await;
    assert_eq!(redis.cli(&["FLUSHALL"]), "OK");
    cache.invalidate(&["s"]).await;
    cache
        .set(&key, "computed before the write", Duration::from_secs(60))
        .await;
    assert_eq!(answered_lookup(&cache, "s").await.1, None);
}

#[rocket::async_test]
async fn a_hung_redis_costs_a_bounded_wait_then_none() {
    let redis = OwnRedis::start();
    let cache = cache_on(&redis);
    // The first connect may outlast the short timeout on a loaded machine;
    // health ends the back-off that leaves behind.
    let mut up = false;
    for _ in 0..20 {
        up = cache.health().await.reachable && cache.lookup("s", "stats").await.is_some();
        if up {
            break;
        }
    }
    assert!(up, "Redis answers before it hangs");
    redis.freeze(true);
    let started = Instant::now();
    assert_eq!(
        cache.lookup("s", "stats").await,
        None,
        "no answer from a hung Redis"
    );
    let first = started.elapsed();
    // Seen as down: the next calls do not wait at all.
    let started = Instant::now();
    for _ in 0..100 {
        assert_eq!(cache.lookup("s", "stats").await, None);
    }
    let next = started.elapsed();
    let health = cache.health().await;
    redis.freeze(false);
    assert!(!health.reachable);
    // Generous bounds: a hang would take forever, not 10 × the timeout.
    assert!(first < TIMEOUT * 10, "first call waited {first:?}");
    assert!(next < TIMEOUT, "100 calls while down took {next:?}");
}

#[rocket::async_test]
async fn sessions_survive_redis_restarting_empty_and_are_written_back() {
    let db = TestDatabase::migrated();
    let mut redis = OwnRedis::start();
    let app = TestApp::spawn(&db, Some(&redis.url())).await;
    let session = app.session().await;
    redis.restart_empty();
    assert_eq!(
        redis.cli(&["EXISTS", &format!("mcp:session:{session}")]),
        "0"
    );
    // The replica checks its sessions with Redis once a second, and writes
    // back the ones Redis lost; it goes on serving them meanwhile.
    let mut written_back = false;
    for id in 0..50 {
        let pong = app.rpc(&session, id, "ping", json!({})).await;
        assert_eq!(pong["result"], json!({}), "{pong}");
        if redis.cli(&["EXISTS", &format!("mcp:session:{session}")]) == "1" {
            written_back = true;
            break;
        }
        rocket::tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(written_back, "the replica wrote its session back");
    // A session ended anywhere stays ended.
    let ended = app
        .mcp(
            rocket::http::Method::Delete,
            "",
            &[
                ("Mcp-Session-Id", &session),
                ("MCP-Protocol-Version", "2025-11-25"),
            ],
        )
        .await;
    assert_eq!(ended.status, 204, "{}", ended.body);
    let gone = app
        .post(
            Some(&session),
            &json!({ "jsonrpc": "2.0", "id": 8, "method": "ping" }),
        )
        .await;
    assert_eq!(gone.status, 404);
}
