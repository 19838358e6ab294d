//! What the frequent requests cost their dependencies, counted (never
//! timed): a cache hit is one Redis command, and health probes share one
//! background snapshot.

use std::collections::HashMap;
use std::time::Instant;

use serde_json::json;

use crate::helpers::{OwnRedis, TestApp, TestDatabase};

/// Calls per command since the last `CONFIG RESETSTAT`.
pub fn command_calls(redis: &OwnRedis) -> HashMap<String, u64> {
    redis
        .cli(&["INFO", "commandstats"])
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

#[rocket::async_test]
async fn a_cache_hit_is_one_redis_command() {
    let db = TestDatabase::migrated();
    let redis = OwnRedis::start();
    let app = TestApp::spawn(&db, Some(&redis.url())).await;
    let session = app.session().await;
    let points: Vec<_> = (0..100)
        .map(|i| json!({ "time": format!("2026-01-01T00:00:{:02}Z", i % 60), "value": i }))
        .collect();
    app.call_tool(
        &session,
        "ingest_timeseries",
        json!({ "series": "hot", "points": points }),
    )
    .await;
    let args = json!({ "series": "hot" });
    let first = app
        .call_tool(&session, "compute_statistics", args.clone())
        .await;
    assert_eq!(first["structuredContent"]["cached"], false, "{first}");

    assert_eq!(redis.cli(&["CONFIG", "RESETSTAT"]), "OK");
    let started = Instant::now();
    const HITS: u64 = 30;
    for _ in 0..HITS {
        let hit = app
            .call_tool(&session, "compute_statistics", args.clone())
            .await;
        assert_eq!(hit["structuredContent"]["cached"], true, "{hit}");
    }
    let seconds = started.elapsed().as_secs() + 1;
    let mut calls = command_calls(&redis);
    assert_eq!(
        calls.remove("evalsha"),
        Some(HITS),
        "one lookup per hit: {calls:?}"
    );
    // Redis counts the reads and writes inside the script as well.
    calls.retain(|command, _| !["get", "set", "config|resetstat"].contains(&command.as_str()));
    // Besides: the session's TTL refresh and the readiness ping, each at
    // most once a second, whatever the request rate.
    for (command, n) in calls {
        assert!(
            ["getex", "ping"].contains(&command.as_str()) && n <= seconds + 1,
            "{command} ran {n} times in {seconds} s"
        );
    }
}

#[rocket::async_test]
async fn health_probes_share_a_background_snapshot_and_live_touches_nothing() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let mut taken = std::collections::HashSet::new();
    const PROBES: usize = 40;
    for _ in 0..PROBES {
        let (status, body) = app.get_json("/health").await;
        assert_eq!(status, 200, "{body}");
        taken.insert(body["checked_at"].as_str().unwrap().to_owned());
    }
    assert!(
        taken.len() < PROBES / 2,
        "{PROBES} probes ran {} checks",
        taken.len()
    );

    // The database goes away: readiness says so, liveness does not care.
    db.allow_connections(false);
    app.health_until(|s, _| s == 503).await;
    assert_eq!(
        app.get_json("/live").await,
        (200, json!({ "status": "alive" }))
    );
    db.allow_connections(true);
}
