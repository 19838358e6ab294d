//! MCP 2026 tasks across replicas: state in the database, cancellation that
//! stops running SQL from another replica, and a task whose replica dies
//! reported failed.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{ServerProcess, TestApp, TestDatabase, figment};

const SECRET: &str = "a state secret shared by every replica here";

fn takes_tasks() -> Value {
    json!({ "extensions": { "io.modelcontextprotocol/tasks": {} } })
}

async fn replica(db: &TestDatabase) -> TestApp {
    let fig = figment(&db.url, None)
        .merge(("mcp_conformance_fixtures", true))
        .merge(("mcp_state_secret", SECRET));
    TestApp::try_spawn(fig).await.expect("application starts")
}

/// A 2026 request to a server process, over plain HTTP/1.1.
fn post(port: u16, id: i64, method: &str, mut params: Value, name: &str) -> Value {
    params["_meta"] = json!({ "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                              "io.modelcontextprotocol/clientCapabilities": takes_tasks() });
    let body =
        json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }).to_string();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json, text/event-stream\r\n\
         Content-Type: application/json\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: {method}\r\n\
         Mcp-Name: {name}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    let json = reply.split("\r\n\r\n").nth(1).expect("a body");
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {reply}"))
}

async fn task_status(app: &TestApp, id: &str) -> Value {
    app.modern(7, "tasks/get", json!({ "taskId": id }), takes_tasks())
        .await
        .response()["result"]
        .clone()
}

fn sleeping_statements(db: &TestDatabase) -> i64 {
    db.count(
        "SELECT count(*) AS n FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'SELECT pg_sleep%' AND state = 'active'",
    )
}

#[rocket::async_test]
async fn cancelling_on_another_replica_stops_the_running_statement() {
    let db = TestDatabase::migrated();
    let (a, b) = (replica(&db).await, replica(&db).await);
    let created = a
        .modern(
            1,
            "tools/call",
            json!({ "name": "slow_sql", "arguments": { "seconds": 60 } }),
            takes_tasks(),
        )
        .await
        .response();
    let created = &created["result"];
    assert_eq!(created["resultType"], "task", "{created}");
    let id = created["taskId"].as_str().unwrap().to_owned();
    // Readable at once, from the other replica too.
    assert_eq!(task_status(&b, &id).await["status"], "working");

    let deadline = Instant::now() + Duration::from_secs(5);
    while sleeping_statements(&db) == 0 {
        assert!(Instant::now() < deadline, "the statement never started");
        rocket::tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ack = b
        .modern(2, "tasks/cancel", json!({ "taskId": id }), takes_tasks())
        .await
        .response();
    assert_eq!(ack["result"], json!({ "resultType": "complete" }));
    assert_eq!(task_status(&a, &id).await["status"], "cancelled");
    let deadline = Instant::now() + Duration::from_secs(5);
    while sleeping_statements(&db) > 0 {
        assert!(Instant::now() < deadline, "the statement still runs");
        rocket::tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Cancelling again, or an ended task, is the same ack; an unknown id is -32602.
    let again = b
        .modern(3, "tasks/cancel", json!({ "taskId": id }), takes_tasks())
        .await;
    assert_eq!(again.response()["result"]["resultType"], "complete");
    let unknown = b
        .modern(
            4,
            "tasks/get",
            json!({ "taskId": "no-such-task" }),
            takes_tasks(),
        )
        .await;
    assert_eq!(unknown.response()["error"]["code"], -32602);
    // Without the extension, the task methods are refused as such.
    let refused = b
        .modern(5, "tasks/get", json!({ "taskId": id }), json!({}))
        .await;
    assert_eq!(
        (refused.status, refused.response()["error"]["code"].clone()),
        (400, json!(-32021))
    );
}

#[rocket::async_test]
async fn a_task_whose_replica_dies_is_reported_failed() {
    let db = TestDatabase::migrated();
    let dying = ServerProcess::start(
        &db,
        &[
            ("MCP_CONFORMANCE_FIXTURES", "1"),
            ("MCP_STATE_SECRET", SECRET),
            ("RUST_LOG", "warn"),
        ],
    );
    let created = post(
        dying.port,
        1,
        "tools/call",
        json!({ "name": "slow_compute", "arguments": { "seconds": 120 } }),
        "slow_compute",
    );
    let id = created["result"]["taskId"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_owned();
    let survivor = replica(&db).await;
    assert_eq!(task_status(&survivor, &id).await["status"], "working");
    drop(dying);
    // The heartbeat stops; within its staleness bound the task is failed.
    let deadline = Instant::now() + Duration::from_secs(20);
    let task = loop {
        let task = task_status(&survivor, &id).await;
        if task["status"] != "working" || Instant::now() > deadline {
            break task;
        }
        rocket::tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(task["status"], "failed", "{task}");
    assert!(task.get("result").is_none());
    assert!(
        task["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stopped"),
        "{task}"
    );
}

#[rocket::async_test]
async fn long_tools_offer_tasks_and_quick_calls_answer_directly() {
    let db = TestDatabase::migrated();
    let app = replica(&db).await;
    let listed = app
        .modern(1, "tools/list", json!({}), json!({}))
        .await
        .response();
    let support: Vec<(String, Value)> = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| !t["name"].as_str().unwrap().starts_with("test_"))
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_owned(),
                t["execution"]["taskSupport"].clone(),
            )
        })
        .collect();
    for tool in [
        "train_model",
        "detect_anomalies",
        "analyze_trend",
        "compute_statistics",
    ] {
        assert!(
            support.contains(&(tool.to_owned(), json!("optional"))),
            "{tool}: {support:?}"
        );
    }
    assert!(support.contains(&("ingest_timeseries".to_owned(), Value::Null)));
    // A quick statistics call from a client that takes tasks is answered directly.
    let quick = app
        .modern(
            2,
            "tools/call",
            json!({ "name": "compute_statistics", "arguments": { "series": "none.yet" } }),
            takes_tasks(),
        )
        .await
        .response();
    assert_eq!(quick["result"]["resultType"], "complete", "{quick}");
    // A tool that requires tasks is refused to a client that does not take them.
    let refused = app
        .modern(
            3,
            "tools/call",
            json!({ "name": "failing_job", "arguments": {} }),
            json!({}),
        )
        .await;
    let error = refused.response()["error"].clone();
    assert_eq!(error["code"], -32021);
    assert_eq!(
        error["data"]["requiredCapabilities"],
        json!({ "extensions": { "io.modelcontextprotocol/tasks": {} } })
    );
}
