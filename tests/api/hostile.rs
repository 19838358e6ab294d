//! Hostile input: it gets a clear error, and it cannot grow the server's
//! own state (metric labels, stored rows, echoed text) or lose other rows.

use chrono::{TimeZone, Utc};
use serde_json::json;

use crate::helpers::{ServerProcess, TestApp, TestDatabase};

#[rocket::async_test]
async fn a_nul_in_params_loses_no_request_log_row() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    app.call_tool(&session, "list_series", json!({ "prefix": "a\u{0}b" }))
        .await;
    for _ in 0..5 {
        app.call_tool(&session, "list_series", json!({})).await;
    }
    app.mcp_state().log.flush().await;
    let rows = db.count("SELECT count(*) AS n FROM mcp_request_logs WHERE method = 'tools/call'");
    assert_eq!(rows, 6, "every call is logged, the one with a NUL too");
    let replaced =
        db.count("SELECT count(*) AS n FROM mcp_request_logs WHERE params::text LIKE '%\u{FFFD}%'");
    assert_eq!(replaced, 1);
}

/// A tool error that tells the caller what to change (no error id).
fn invalid_argument(result: &serde_json::Value, says: &str) {
    let text = result["content"][0]["text"].as_str().unwrap_or_default();
    assert_eq!(result["isError"], true, "{result}");
    assert!(text.contains(says) && !text.contains("error id"), "{text}");
}

/// Every string argument of every tool, and the other methods' parameters,
/// refuse U+0000 at the edge with a message that names the argument: none
/// reaches PostgreSQL (`invalid byte sequence`, an "internal error").
#[rocket::async_test]
async fn a_nul_in_any_argument_is_refused_at_the_edge_and_named() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    let tools = app.rpc(&session, 1, "tools/list", json!({})).await;
    let mut tried = 0;
    for tool in tools["result"]["tools"].as_array().unwrap() {
        let name = tool["name"].as_str().unwrap();
        for (arg, _) in tool["inputSchema"]["properties"].as_object().unwrap() {
            for value in [json!("a\u{0}b"), json!({"k": ["x", "\u{0}"]})] {
                let r = app.call_tool(&session, name, json!({ arg: value })).await;
                invalid_argument(&r, "NUL");
                let text = r["content"][0]["text"].as_str().unwrap();
                assert!(text.contains(arg.as_str()), "{name}.{arg}: {text}");
                tried += 1;
            }
        }
    }
    assert!(tried > 100, "{tried}");
    for (method, params, at) in [
        (
            "completion/complete",
            json!({"ref": {"type": "ref/prompt", "name": "investigate_anomalies"},
                   "argument": {"name": "series", "value": "c\u{0}"}}),
            "params.argument.value",
        ),
        (
            "completion/complete",
            json!({"ref": {"type": "ref/resource", "uri": "timeseries://{series}"},
                   "argument": {"name": "series", "value": "\u{0}"}}),
            "params.argument.value",
        ),
        (
            "prompts/get",
            json!({"name": "forecast_report", "arguments": {"series": "x\u{0}"}}),
            "params.arguments.series",
        ),
        (
            "resources/read",
            json!({"uri": "timeseries://a\u{0}"}),
            "params.uri",
        ),
    ] {
        let r = app.rpc(&session, 2, method, params).await;
        assert_eq!(r["error"]["code"], -32602, "{method}: {r}");
        let message = r["error"]["message"].as_str().unwrap();
        assert!(message.contains(at) && message.contains("NUL"), "{message}");
    }
    // A backslash before u0000 is text, not the character.
    let r = app
        .call_tool(&session, "list_series", json!({"prefix": "a\\u0000"}))
        .await;
    assert_ne!(r["isError"], true, "{r}");
}

#[rocket::async_test]
async fn nul_characters_and_huge_values_are_the_callers_to_fix() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    let r = app
        .call_tool(&session, "list_series", json!({ "prefix": "a\u{0}b" }))
        .await;
    invalid_argument(&r, "NUL");
    let point = json!([{ "time": "2026-01-01T00:00:00Z", "value": 1.0 }]);
    for tags in [
        json!({ "k": "a\u{0}b" }),
        json!({ "a\u{0}": 1 }),
        json!({ "k": ["\u{0}"] }),
    ] {
        let args = json!({ "series": "nul.tags", "points": point, "tags": tags });
        invalid_argument(
            &app.call_tool(&session, "ingest_timeseries", args).await,
            "NUL",
        );
    }
    // Three in one hour: their sum passes 1.7e308 in the hour's rollup, so
    // the write is refused whole.
    let huge = json!([
        { "time": "2026-01-01T00:00:00Z", "value": 1.7e308 },
        { "time": "2026-01-01T00:01:00Z", "value": 1.7e308 },
        { "time": "2026-01-01T00:02:00Z", "value": 1.7e308 },
    ]);
    let refused = app
        .call_tool(
            &session,
            "ingest_timeseries",
            json!({ "series": "huge", "points": huge }),
        )
        .await;
    invalid_argument(&refused, "too large");
    // One a day: each hour's and day's rollup holds, the window's sum does not.
    let day = |d: u32| Utc.with_ymd_and_hms(2026, 1, d, 0, 0, 0).unwrap();
    let apart = [(day(1), 1.7e308), (day(2), 1.7e308), (day(3), 1.7e308)];
    app.ingest(&session, "huge", &apart).await;
    for tool in ["compute_statistics", "analyze_trend", "detect_anomalies"] {
        let r = app
            .call_tool(&session, tool, json!({ "series": "huge" }))
            .await;
        invalid_argument(&r, "too large");
    }
}

#[rocket::async_test]
async fn unknown_names_do_not_grow_the_metrics_or_the_errors() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    for i in 0..3 {
        let name = format!("{i}{}", "x".repeat(3000));
        let r = app
            .rpc(
                &session,
                1,
                "tools/call",
                json!({ "name": name, "arguments": {} }),
            )
            .await;
        let message = r["error"]["message"].as_str().unwrap();
        assert!(message.len() < 300, "echoed whole: {} bytes", message.len());
    }
    app.rpc(&session, 2, &"m".repeat(3000), json!({})).await;
    let text = app.metrics_text().await;
    assert!(
        text.lines().all(|l| l.len() < 500),
        "a long label reached /metrics"
    );
    assert!(
        text.contains(
            r#"mcp_rpc_requests_total{method="tools/call",status="error",tool="unknown"} 3"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"method="unknown""#), "{text}");

    let huge = "é".repeat(2_000_000);
    let r = app
        .call_tool(&session, "compute_statistics", json!({ "series": huge }))
        .await;
    let message = r["content"][0]["text"].as_str().unwrap();
    assert_eq!(r["isError"], true);
    assert!(
        message.len() < 500,
        "a 2,000,000-character name was echoed: {} bytes",
        message.len()
    );
}

/// The real binary at `RUST_LOG=debug,rocket=debug`: Rocket dumps request
/// headers, and neither the bearer credential nor the configured token may show.
#[test]
fn no_log_level_prints_the_token() {
    let db = TestDatabase::migrated();
    let server = ServerProcess::start(
        &db,
        &[
            ("RUST_LOG", "debug,rocket=debug"),
            ("MCP_AUTH_TOKEN", "s3cret-token-value"),
        ],
    );
    let status = {
        use std::io::{Read, Write};
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        write!(
            conn,
            "POST /mcp HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer s3cret-token-value\r\n\
             Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        let _ = conn.read_to_string(&mut answer);
        answer
    };
    let logs = server.stop();
    assert!(
        status.starts_with("HTTP/1.1 "),
        "the server answered: {status}"
    );
    assert!(
        logs.contains("Bearer ***"),
        "Rocket's header dump is there, redacted"
    );
    assert!(!logs.contains("s3cret-token-value"), "the token was logged");
}

/// Slow clients are dropped: a request head must arrive, and a body must
/// keep coming, within the configured bounds (1 s here). The checks wait at
/// most 10 s for what should take about 1.
#[test]
fn slow_headers_and_stalled_bodies_are_cut_off() {
    use std::io::{Read, Write};
    let db = TestDatabase::migrated();
    let server = ServerProcess::start(
        &db,
        &[
            ("MCP_HEADER_TIMEOUT_SECS", "1"),
            ("MCP_BODY_TIMEOUT_SECS", "1"),
        ],
    );
    let connect = || {
        let s = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        s
    };
    let mut slow_head = connect();
    slow_head
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n")
        .unwrap();
    let mut buf = [0u8; 256];
    let n = slow_head.read(&mut buf).expect("closed, not left hanging");
    assert_eq!(
        n,
        0,
        "the connection is closed: {:?}",
        String::from_utf8_lossy(&buf[..n])
    );

    let mut slow_body = connect();
    slow_body
        .write_all(
            b"POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
              Accept: application/json, text/event-stream\r\nContent-Length: 100\r\n\r\n{\"jsonrpc\"",
        )
        .unwrap();
    let n = slow_body
        .read(&mut buf)
        .expect("answered, not left hanging");
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    // A client that keeps pace is served as before.
    let mut ok = connect();
    ok.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut all = String::new();
    ok.read_to_string(&mut all).unwrap();
    assert!(all.starts_with("HTTP/1.1 200"), "{all}");
}

#[rocket::async_test]
async fn a_forecast_past_the_end_of_time_is_a_tool_error() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    let points: Vec<_> = ["0001", "3000", "6000", "9999"]
        .iter()
        .enumerate()
        .map(|(i, y)| json!({ "time": format!("{y}-01-01T00:00:00Z"), "value": i }))
        .collect();
    app.call_tool(
        &session,
        "ingest_timeseries",
        json!({ "series": "eons", "points": points }),
    )
    .await;
    let model = app
        .call_tool(
            &session,
            "train_model",
            json!({ "series": "eons", "model_type": "linear", "holdout": 1 }),
        )
        .await;
    let id = model["structuredContent"]["model_id"]
        .as_i64()
        .expect("trained");
    let r = app
        .call_tool(
            &session,
            "forecast",
            json!({ "model_id": id, "horizon": 10000 }),
        )
        .await;
    assert_eq!(r["isError"], true, "{r}");
    let message = r["content"][0]["text"].as_str().unwrap();
    assert!(
        message.contains("representable time range") && message.contains("smaller horizon"),
        "{message}"
    );
}

#[rocket::async_test]
async fn bodies_beyond_the_in_flight_budget_get_503_with_retry_after() {
    let db = TestDatabase::migrated();
    let app = TestApp::try_spawn(
        crate::helpers::figment(&db.url, None).merge(("mcp_body_budget_mib", 1)),
    )
    .await
    .expect("starts");
    let session = app.session().await;
    // Another request holds the whole budget.
    let held = app
        .mcp_state()
        .bodies
        .try_reserve(1024 * 1024)
        .expect("free at first");
    let busy = app
        .post(
            Some(&session),
            &json!({ "jsonrpc": "2.0", "id": 1, "method": "ping" }),
        )
        .await;
    assert_eq!(busy.status, 503, "{}", busy.body);
    assert!(
        busy.headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("Retry-After") && v == "1")
    );
    drop(held);
    let ok = app
        .post(
            Some(&session),
            &json!({ "jsonrpc": "2.0", "id": 2, "method": "ping" }),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
}

#[rocket::async_test]
async fn a_bad_point_is_named_by_its_index_whatever_is_wrong_with_it() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    let ok = json!({ "time": "2026-01-01T00:00:00Z", "value": 1 });
    for (bad, field) in [
        (
            json!({ "time": "2026-01-01T00:00:02Z", "value": "x" }),
            "points[2].value",
        ),
        (json!({ "time": "yesterday", "value": 1 }), "points[2].time"),
        (json!({ "time": "2026-01-01T00:00:02Z" }), "points[2]"),
    ] {
        let r = app
            .call_tool(
                &session,
                "ingest_timeseries",
                json!({ "series": "idx", "points": [ok, ok, bad] }),
            )
            .await;
        let message = r["content"][0]["text"].as_str().unwrap();
        assert!(
            r["isError"] == true && message.contains(field),
            "{field}: {message}"
        );
    }
    assert_eq!(
        db.count("SELECT count(*) AS n FROM timeseries_data"),
        0,
        "nothing was written"
    );
}

#[rocket::async_test]
async fn a_failing_method_gives_an_error_id_not_sql() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    diesel::RunQueryDsl::execute(
        diesel::sql_query("DROP TABLE timeseries_data"),
        &mut db.conn(),
    )
    .unwrap();
    let r = app.rpc(&session, 3, "resources/list", json!({})).await;
    let message = r["error"]["message"].as_str().unwrap();
    assert!(message.contains("error id"), "{message}");
    assert!(
        !message.contains("timeseries_data") && !message.contains("relation"),
        "{message}"
    );
}

#[test]
fn refusals_come_through_the_gate_as_sent() {
    // Bodies over the limit, several at once over a small budget: Rocket
    // refuses each early (413, or 503 with Retry-After), and the gate must
    // pass that on rather than 502 (it once did, for 4 bodies in 12).
    let db = TestDatabase::migrated();
    let server = ServerProcess::start(
        &db,
        &[
            ("ROCKET_LIMITS", "{json=\"1 MiB\"}"),
            ("MCP_BODY_BUDGET_MIB", "2"),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("big.json");
    std::fs::write(&body, vec![b' '; 3 << 20]).unwrap();
    let url = format!("http://127.0.0.1:{}/mcp", server.port);
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let runs: Vec<_> = (0..6)
            .map(|_| {
                std::process::Command::new("curl")
                    .args(["-s", "-D", "-", "-o", "/dev/null", "--max-time", "30"])
                    // The whole body is sent, with no 100-continue to refuse it first.
                    .args(["-H", "Expect:", "-H", "Content-Type: application/json"])
                    .args(["-H", "Accept: application/json, text/event-stream"])
                    .arg("--data-binary")
                    .arg(format!("@{}", body.display()))
                    .arg(&url)
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for run in runs {
            let head =
                String::from_utf8_lossy(&run.wait_with_output().unwrap().stdout).to_lowercase();
            let status = head.split_whitespace().nth(1).unwrap_or("none").to_owned();
            if status == "503" {
                assert!(head.contains("retry-after"), "{head}");
            }
            statuses.push(status);
        }
    }
    assert!(
        statuses.iter().all(|s| s == "413" || s == "503"),
        "{statuses:?}"
    );
}

#[test]
fn a_client_hanging_up_mid_body_is_counted_not_warned_about() {
    use std::io::{Read, Write};
    let db = TestDatabase::migrated();
    let server = ServerProcess::start(&db, &[("RUST_LOG", "info")]);
    for _ in 0..5 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        s.write_all(
            b"POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
              Accept: application/json, text/event-stream\r\nContent-Length: 1000\r\n\r\n{\"jsonrpc\"",
        )
        .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        drop(s);
    }
    let count = || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("mcp_http_client_aborts_total "))
            .map(|n| n.trim().to_owned())
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while count().as_deref() != Some("5") {
        assert!(
            std::time::Instant::now() < deadline,
            "aborts counted: {:?}",
            count()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let logs = server.stop();
    assert!(!logs.contains("did not answer"), "{logs}");
}
