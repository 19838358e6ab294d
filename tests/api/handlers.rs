//! Tools called as plain `async fn`s, without HTTP or JSON-RPC: a context
//! over a test database, the in-process cache and a client that records.

use std::sync::Arc;
use std::time::Duration;

use diesel::PgConnection;
use diesel::r2d2::{ConnectionManager, Pool};
use mcp_server::cache::Cache;
use mcp_server::config::Settings;
use mcp_server::db::Db;
use mcp_server::ingest::fold::Folder;
use mcp_server::ingest::{Ingest, Limits, Notify};
use mcp_server::metrics::Metrics;
use mcp_server::tools::{Ask, Client, Pending, ToolContext, ToolError, ingest, query, records};
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::helpers::TestDatabase;

/// Records what a tool tells its client.
#[derive(Default)]
struct Recorder {
    updated: Mutex<Vec<String>>,
}

#[rocket::async_trait]
impl Client for Recorder {
    fn is_cancelled(&self) -> bool {
        false
    }
    async fn log(&self, _: &str, _: &str, _: Value) {}
    async fn progress(&self, _: f64, _: Option<f64>, _: Option<&str>) {}
    fn supports(&self, _: &str) -> bool {
        false
    }
    async fn ask(&self, asks: Vec<Ask>) -> Result<Vec<Value>, ToolError> {
        Err(ToolError::Pending(Pending::Input(asks)))
    }
    fn list_changed(&self, _: &str) {}
}

impl Notify for Recorder {
    fn resources_updated(&self, uris: Vec<String>) {
        self.updated.lock().extend(uris);
    }
}

fn context(db: &TestDatabase, client: Arc<Recorder>) -> ToolContext {
    let pool = Pool::builder()
        .max_size(2)
        .build(ConnectionManager::<PgConnection>::new(&db.url))
        .unwrap();
    let db = Db::new(pool, Duration::from_secs(5));
    let cache = Arc::new(Cache::memory());
    let folder = Folder::idle(db.clone(), Duration::ZERO);
    let limits = Limits::from_settings(&Settings::default());
    ToolContext {
        ingest: Arc::new(Ingest::new(db.clone(), Arc::clone(&cache), folder, limits)),
        db,
        cache,
        client,
        metrics: Arc::new(Metrics::new()),
    }
}

fn args<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("valid arguments")
}

#[rocket::async_test]
async fn ingest_then_statistics_called_directly() {
    let db = TestDatabase::migrated();
    let recorder = Arc::new(Recorder::default());
    let ctx = context(&db, Arc::clone(&recorder));
    let points: Vec<Value> = (0..10)
        .map(|i| json!({ "time": format!("2026-01-01T00:00:{i:02}Z"), "value": i }))
        .collect();
    let written = ingest::ingest_timeseries(
        ctx.clone(),
        args(json!({ "series": "direct", "points": points })),
    )
    .await
    .unwrap();
    assert!(written.text.contains("10 new"), "{}", written.text);
    assert_eq!(
        *recorder.updated.lock(),
        ["timeseries://direct", "timeseries://direct/chart.png"]
    );

    let stats = query::compute_statistics(ctx.clone(), args(json!({ "series": "direct" })))
        .await
        .unwrap()
        .value;
    assert_eq!((stats.summary.count, stats.summary.mean), (10, Some(4.5)));
    assert!(!stats.cached);
    let again = query::compute_statistics(ctx, args(json!({ "series": "direct" })))
        .await
        .unwrap()
        .value;
    assert!(again.cached);
}

#[rocket::async_test]
async fn a_database_failure_reaches_the_client_as_an_id_not_as_sql() {
    let db = TestDatabase::migrated();
    let ctx = context(&db, Arc::default());
    diesel::RunQueryDsl::execute(
        diesel::sql_query("DROP TABLE analysis_results"),
        &mut db.conn(),
    )
    .unwrap();
    let err = records::get_analysis(ctx, args(json!({ "id": 1 })))
        .await
        .expect_err("the table is gone");
    let ToolError::Internal { id } = &err else {
        panic!("an internal error, got {err:?}");
    };
    let message = err.to_string();
    assert!(message.contains(id.as_str()), "{message}");
    assert!(
        !message.contains("analysis_results") && !message.contains("relation"),
        "{message}"
    );
}

#[rocket::async_test]
async fn argument_types_reject_what_the_schema_forbids() {
    let bad = [
        json!({ "series": "-x" }),
        json!({ "series": "x", "max_points": 0 }),
        json!({ "series": "x", "bucket": "1y" }),
        json!({ "series": "x", "start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z" }),
    ];
    for value in bad {
        assert!(
            serde_json::from_value::<query::QueryArgs>(value.clone()).is_err(),
            "{value}"
        );
    }
}

#[test]
fn every_tool_schema_is_self_contained_and_states_its_bounds() {
    let tools = mcp_server::tools::all();
    for listing in tools.listings(true, mcp_server::auth::Scopes::all()) {
        let text = listing.to_string();
        assert!(
            !text.contains("$ref") && !text.contains("$defs"),
            "{}",
            listing["name"]
        );
        assert_eq!(
            listing["inputSchema"]["type"], "object",
            "{}",
            listing["name"]
        );
    }
    let query = tools
        .listings(true, mcp_server::auth::Scopes::all())
        .into_iter()
        .find(|l| l["name"] == "query_timeseries")
        .unwrap();
    let max_points = &query["inputSchema"]["properties"]["max_points"];
    assert_eq!(
        (max_points["minimum"].clone(), max_points["maximum"].clone()),
        (json!(1), json!(10_000))
    );
    assert_eq!(query["inputSchema"]["required"], json!(["series"]));
    let models = tools
        .listings(true, mcp_server::auth::Scopes::all())
        .into_iter()
        .find(|l| l["name"] == "list_models")
        .unwrap();
    assert!(
        models["inputSchema"]["properties"]
            .get("analysis_type")
            .is_none()
    );
}

#[rocket::async_test]
async fn concurrent_ingests_of_the_same_new_points_each_land_whole() {
    let db = TestDatabase::migrated();
    let ctx = context(&db, Arc::new(Recorder::default()));
    const N: i64 = 3000;
    for round in 0..4 {
        let series = format!("race{round}");
        let call = |value: f64| {
            let points: Vec<Value> = (0..N)
                .map(|i| {
                    let time = chrono::DateTime::from_timestamp(1_767_225_600 + i, 0).unwrap();
                    json!({ "time": time.to_rfc3339(), "value": value })
                })
                .collect();
            ingest::ingest_timeseries(
                ctx.clone(),
                args(json!({ "series": series, "points": points })),
            )
        };
        // Both may find the range empty and start a COPY; the second then
        // meets the first's keys and replaces instead.
        let (a, b) = rocket::tokio::join!(call(1.0), call(2.0));
        let (a, b) = (a.unwrap().value, b.unwrap().value);
        assert_eq!(a.inserted + b.inserted, N as usize, "round {round}");
        assert_eq!(a.written + b.written, 2 * N as usize);
        assert_eq!(
            db.count(&format!(
                "SELECT count(*) AS n FROM timeseries_data WHERE series_name = '{series}'"
            )),
            N
        );
        assert_eq!(
            db.count(&format!(
                "SELECT count(DISTINCT value) AS n FROM timeseries_data WHERE series_name = '{series}'"
            )),
            1,
            "one call's values throughout: each call is all or nothing"
        );
    }
}
