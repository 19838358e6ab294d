//! The Streamable HTTP transport, sessions, errors and security of `/mcp`.

use rocket::http::Method;
use serde_json::{Value, json};

use crate::helpers::{ACCEPT_BOTH, TestApp, TestDatabase, figment, read_until, redis_url};

fn ping(id: i64) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "method": "ping" })
}

async fn app_with(db: &TestDatabase, extra: &[(&str, Value)]) -> TestApp {
    let mut fig = figment(&db.url, None);
    for (k, v) in extra {
        fig = fig.merge((*k, v.clone()));
    }
    TestApp::try_spawn(fig).await.expect("application starts")
}

#[rocket::async_test]
async fn initialize_negotiates_and_issues_a_session() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    for (asked, got) in [
        ("2025-11-25", "2025-11-25"),
        ("2025-06-18", "2025-06-18"),
        ("2025-03-26", "2025-03-26"),
        ("1999-01-01", "2025-11-25"),
    ] {
        let init = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize",
                           "params": { "protocolVersion": asked, "capabilities": {}, "clientInfo": { "name": "t", "version": "1" } } });
        let ex = app.post(None, &init).await;
        assert_eq!(ex.status, 200);
        assert!(ex.content_type.starts_with("application/json"));
        let result = &ex.response()["result"];
        assert_eq!(result["protocolVersion"], got);
        assert_eq!(result["serverInfo"]["name"], "mcp-server");
        for cap in ["tools", "resources", "prompts", "logging", "completions"] {
            assert!(result["capabilities"][cap].is_object(), "{cap}");
        }
        let id = ex.session.unwrap();
        assert_eq!(id.len(), 64);
        assert!(id.bytes().all(|b| (0x21..=0x7e).contains(&b)));
    }
}

#[rocket::async_test]
async fn sessions_are_required_validated_and_ended() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let no_session = app.post(None, &ping(1)).await;
    assert_eq!(no_session.status, 400, "{}", no_session.body);
    assert_eq!(no_session.response()["error"]["code"], -32000);

    let unknown = app.post(Some("not-a-session"), &ping(1)).await;
    assert_eq!(unknown.status, 404);

    let session = app.session().await;
    let pong = app.rpc(&session, 7, "ping", json!({})).await;
    assert_eq!(pong["result"], json!({}));

    let end = app
        .mcp(Method::Delete, "", &[("Mcp-Session-Id", &session)])
        .await;
    assert!(matches!(end.status, 200 | 204), "{}", end.status);
    assert_eq!(app.post(Some(&session), &ping(2)).await.status, 404);
    assert_eq!(
        app.mcp(Method::Delete, "", &[("Mcp-Session-Id", &session)])
            .await
            .status,
        404
    );
    assert_eq!(app.mcp(Method::Delete, "", &[]).await.status, 400);
}

#[rocket::async_test]
async fn json_rpc_errors_have_the_specified_codes() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    let headers = [
        ACCEPT_BOTH,
        ("Content-Type", "application/json"),
        ("Mcp-Session-Id", session.as_str()),
    ];

    let parse = app.mcp(Method::Post, "{oops", &headers).await;
    assert_eq!(parse.status, 400);
    assert_eq!(parse.response()["error"]["code"], -32700);
    assert_eq!(parse.response()["id"], Value::Null);

    for bad in [
        r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
        r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
        r#"{"id":1,"method":"ping"}"#,
    ] {
        let ex = app.mcp(Method::Post, bad, &headers).await;
        assert_eq!(ex.response()["error"]["code"], -32600, "{bad}");
    }

    let unknown = app.rpc(&session, 5, "no/such/method", json!({})).await;
    assert_eq!(unknown["error"]["code"], -32601);

    let no_tool = app
        .rpc(
            &session,
            6,
            "tools/call",
            json!({ "name": "nope", "arguments": {} }),
        )
        .await;
    assert_eq!(no_tool["error"]["code"], -32602);
    let no_name = app.rpc(&session, 7, "tools/call", json!({})).await;
    assert_eq!(no_name["error"]["code"], -32602);
    let bad_level = app
        .rpc(&session, 8, "logging/setLevel", json!({ "level": "loud" }))
        .await;
    assert_eq!(bad_level["error"]["code"], -32602);
    let bad_cursor = app
        .rpc(&session, 9, "tools/list", json!({ "cursor": "garbage" }))
        .await;
    assert_eq!(bad_cursor["error"]["code"], -32602);
    let no_prompt = app
        .rpc(&session, 10, "prompts/get", json!({ "name": "nope" }))
        .await;
    assert_eq!(no_prompt["error"]["code"], -32602);
    let missing_arg = app
        .rpc(
            &session,
            11,
            "prompts/get",
            json!({ "name": "forecast_report" }),
        )
        .await;
    assert_eq!(missing_arg["error"]["code"], -32602);
    let no_resource = app
        .rpc(
            &session,
            12,
            "resources/read",
            json!({ "uri": "timeseries://absent" }),
        )
        .await;
    assert_eq!(no_resource["error"]["code"], -32002);

    // Invalid arguments are a tool result the model can act on, not a protocol error.
    let bad_args = app
        .call_tool(&session, "ingest_timeseries", json!({ "series": "x" }))
        .await;
    assert_eq!(bad_args["isError"], true);
    assert!(
        bad_args["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("points"),
        "{bad_args}"
    );
}

#[rocket::async_test]
async fn notifications_and_responses_get_202_and_no_body() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    let note = app.post(Some(&session), &json!({ "jsonrpc": "2.0", "method": "notifications/cancelled", "params": { "requestId": 99 } })).await;
    assert_eq!((note.status, note.body.as_str()), (202, ""));
    let response = app
        .post(
            Some(&session),
            &json!({ "jsonrpc": "2.0", "id": "srv-unknown", "result": {} }),
        )
        .await;
    assert_eq!(response.status, 202);
}

#[rocket::async_test]
async fn http_rules_accept_content_type_version_and_size() {
    let db = TestDatabase::migrated();
    let app = app_with(&db, &[("limits", json!({ "json": "2 KiB" }))]).await;
    let session = app.session().await;
    let body = ping(1).to_string();
    let s = session.as_str();

    // (Accept, Content-Type, MCP-Protocol-Version) → expected status
    let cases = [
        ("application/json", "application/json", None, 406),
        (
            "application/json, text/event-stream",
            "text/plain",
            None,
            415,
        ),
        (
            "application/json, text/event-stream",
            "application/json",
            Some("2025-03-26"),
            200,
        ),
        (
            "application/json, text/event-stream",
            "application/json",
            Some("2099-01-01"),
            400,
        ),
        ("*/*", "application/json; charset=utf-8", None, 200),
    ];
    for (accept, content_type, version, status) in cases {
        let mut headers = vec![
            ("Accept", accept),
            ("Content-Type", content_type),
            ("Mcp-Session-Id", s),
        ];
        headers.extend(version.map(|v| ("MCP-Protocol-Version", v)));
        let ex = app.mcp(Method::Post, &body, &headers).await;
        assert_eq!(ex.status, status, "{headers:?}: {}", ex.body);
    }
    let big = json!({ "jsonrpc": "2.0", "id": 1, "method": "ping", "params": { "pad": "x".repeat(4096) } });
    assert_eq!(app.post(Some(s), &big).await.status, 413);
    // GET needs text/event-stream; without a session it is refused.
    assert_eq!(
        app.mcp(Method::Get, "", &[("Accept", "application/json")])
            .await
            .status,
        406
    );
    assert_eq!(
        app.mcp(Method::Get, "", &[("Accept", "text/event-stream")])
            .await
            .status,
        400
    );
    // The 2026 era's discovery probe gets a 4xx that is not -32022, so dual-era clients fall back.
    let discover = app
        .post(
            None,
            &json!({ "jsonrpc": "2.0", "id": 1, "method": "server/discover" }),
        )
        .await;
    assert_eq!(discover.status, 400);
    assert_ne!(discover.response()["error"]["code"], -32022);
}

#[rocket::async_test]
async fn foreign_origins_and_hosts_are_forbidden() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let init = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": { "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "t", "version": "1" } } });
    let body = init.to_string();
    let base = [ACCEPT_BOTH, ("Content-Type", "application/json")];
    let with = |extra: (&'static str, &'static str)| {
        let mut h = base.to_vec();
        h.push(extra);
        h
    };
    assert_eq!(
        app.mcp(
            Method::Post,
            &body,
            &with(("Origin", "http://evil.example.com"))
        )
        .await
        .status,
        403
    );
    assert_eq!(
        app.mcp(Method::Post, &body, &with(("Host", "evil.example.com")))
            .await
            .status,
        403
    );
    assert_eq!(
        app.mcp(
            Method::Post,
            &body,
            &with(("Origin", "http://localhost:6274"))
        )
        .await
        .status,
        200
    );
    assert_eq!(
        app.mcp(Method::Post, &body, &with(("Host", "127.0.0.1:8000")))
            .await
            .status,
        200
    );

    let configured = app_with(
        &db,
        &[("mcp_allowed_origins", json!("https://app.example.com"))],
    )
    .await;
    assert_eq!(
        configured
            .mcp(
                Method::Post,
                &body,
                &with(("Origin", "https://app.example.com"))
            )
            .await
            .status,
        200
    );
}

#[rocket::async_test]
async fn a_configured_token_is_required() {
    let db = TestDatabase::migrated();
    let app = app_with(&db, &[("mcp_auth_token", json!("s3cret-token"))]).await;
    let init = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": { "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "t", "version": "1" } } }).to_string();
    let base = [ACCEPT_BOTH, ("Content-Type", "application/json")];
    let none = app.mcp(Method::Post, &init, &base).await;
    assert_eq!(none.status, 401);
    assert!(
        none.headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("www-authenticate") && v.starts_with("Bearer"))
    );
    let mut wrong = base.to_vec();
    wrong.push(("Authorization", "Bearer nope"));
    assert_eq!(app.mcp(Method::Post, &init, &wrong).await.status, 401);
    let mut right = base.to_vec();
    right.push(("Authorization", "Bearer s3cret-token"));
    assert_eq!(app.mcp(Method::Post, &init, &right).await.status, 200);
}

#[rocket::async_test]
async fn tools_list_shows_only_product_tools_without_fixtures() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    let tools = app.rpc(&session, 1, "tools/list", json!({})).await["result"]["tools"].clone();
    let names: Vec<&str> = tools
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"ingest_timeseries") && names.contains(&"list_series"),
        "{names:?}"
    );
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("test_") || n.starts_with("json_schema")),
        "{names:?}"
    );
    for tool in tools.as_array().unwrap() {
        assert!(tool["description"].as_str().is_some_and(|d| !d.is_empty()));
        assert_eq!(tool["inputSchema"]["type"], "object", "{tool}");
        assert_eq!(
            tool["inputSchema"]["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert_eq!(tool["outputSchema"]["type"], "object", "{tool}");
        if let Some(series) = tool["inputSchema"]["properties"]
            .get("series")
            .filter(|s| s["type"] == "string")
        {
            assert_eq!(
                series["pattern"],
                mcp_server::domain::series::SERIES_PATTERN,
                "{}",
                tool["name"]
            );
        }
    }
    assert_eq!(names.len(), 19, "{names:?}");
    let prompts =
        app.rpc(&session, 2, "prompts/list", json!({})).await["result"]["prompts"].clone();
    assert_eq!(prompts.as_array().unwrap().len(), 2, "{prompts}");
}

#[rocket::async_test]
async fn calls_that_talk_back_stream_sse_and_others_answer_json() {
    let db = TestDatabase::migrated();
    let app = app_with(&db, &[("mcp_conformance_fixtures", json!(true))]).await;
    let session = app.session().await;
    app.rpc(&session, 1, "logging/setLevel", json!({ "level": "debug" }))
        .await;

    let msg = json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/call",
                      "params": { "name": "test_tool_with_logging", "arguments": {} } });
    let ex = app.post(Some(&session), &msg).await;
    assert!(
        ex.content_type.starts_with("text/event-stream"),
        "{}",
        ex.content_type
    );
    let messages = ex.messages();
    let logs: Vec<&Value> = messages
        .iter()
        .filter(|m| m["method"] == "notifications/message")
        .collect();
    assert_eq!(logs.len(), 3, "{messages:?}");
    assert_eq!(messages.last().unwrap()["id"], 2);

    let progress = json!({ "jsonrpc": "2.0", "id": 3, "method": "tools/call",
                           "params": { "name": "test_tool_with_progress", "arguments": {}, "_meta": { "progressToken": "p1" } } });
    let ex = app.post(Some(&session), &progress).await;
    let values: Vec<f64> = ex
        .messages()
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .map(|m| {
            assert_eq!(m["params"]["progressToken"], "p1");
            m["params"]["progress"].as_f64().unwrap()
        })
        .collect();
    assert_eq!(values, [0.0, 50.0, 100.0]);

    let plain = app
        .post(
            Some(&session),
            &json!({ "jsonrpc": "2.0", "id": 4, "method": "tools/call",
                                                   "params": { "name": "test_simple_text" } }),
        )
        .await;
    assert!(plain.content_type.starts_with("application/json"));
    // Logging above the session's level is filtered out.
    app.rpc(&session, 5, "logging/setLevel", json!({ "level": "error" }))
        .await;
    let quiet = app.post(Some(&session), &msg).await;
    assert!(
        quiet.content_type.starts_with("application/json"),
        "info logs are below error"
    );
}

#[rocket::async_test]
async fn every_request_is_logged_in_the_background() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    app.rpc(&session, 1, "ping", json!({})).await;
    app.rpc(&session, 2, "nope", json!({})).await;
    app.call_tool(&session, "list_series", json!({})).await;
    app.call_tool(&session, "ingest_timeseries", json!({ "series": "bad name!", "points": [{ "time": "2026-01-01T00:00:00Z", "value": 1 }] })).await;
    app.mcp_state().log.flush().await;

    #[derive(diesel::QueryableByName, Debug)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        method: String,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        tool_name: Option<String>,
        #[diesel(sql_type = diesel::sql_types::Text)]
        status: String,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Integer>)]
        error_code: Option<i32>,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        client_name: Option<String>,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        session_id: Option<String>,
    }
    use diesel::RunQueryDsl;
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT method, tool_name, status, error_code, client_name, session_id FROM mcp_request_logs ORDER BY id",
    )
    .load(&mut db.conn())
    .unwrap();
    let summary: Vec<(&str, Option<&str>, &str, Option<i32>)> = rows
        .iter()
        .map(|r| {
            (
                r.method.as_str(),
                r.tool_name.as_deref(),
                r.status.as_str(),
                r.error_code,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("initialize", None, "ok", None),
            ("ping", None, "ok", None),
            ("nope", None, "error", Some(-32601)),
            ("tools/call", Some("list_series"), "ok", None),
            ("tools/call", Some("ingest_timeseries"), "error", None),
        ]
    );
    assert!(
        rows.iter()
            .all(|r| r.client_name.as_deref() == Some("api-tests")
                && r.session_id.as_deref() == Some(session.as_str()))
    );
}

#[rocket::async_test]
async fn with_redis_any_replica_validates_any_session() {
    let db = TestDatabase::migrated();
    let a = TestApp::spawn(&db, Some(&redis_url())).await;
    let b = TestApp::spawn(&db, Some(&redis_url())).await;
    let session = a.session().await;
    assert_eq!(
        b.rpc(&session, 1, "ping", json!({})).await["result"],
        json!({})
    );
    assert_eq!(
        b.mcp(Method::Delete, "", &[("Mcp-Session-Id", &session)])
            .await
            .status,
        204
    );
    // Replica a trusts its own copy for up to a second, then asks Redis.
    let mut status = 0;
    for _ in 0..30 {
        status = a.post(Some(&session), &ping(2)).await.status;
        if status == 404 {
            break;
        }
        rocket::tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 404, "an end on another replica is seen");
}

#[rocket::async_test]
async fn series_are_resources_with_completion() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    for name in ["cpu.load", "cpu.temp", "mem.used"] {
        let r = app.call_tool(&session, "ingest_timeseries", json!({ "series": name,
            "points": [{ "time": "2026-01-01T00:00:00Z", "value": 1.5 }, { "time": "2026-01-01T00:01:00Z", "value": 2.5 }] })).await;
        assert_eq!(r["structuredContent"]["written"], 2, "{r}");
    }
    let list = app.rpc(&session, 1, "resources/list", json!({})).await;
    let uris: Vec<&str> = list["result"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uri"].as_str().unwrap())
        .collect();
    assert_eq!(
        uris,
        [
            "timeseries://cpu.load",
            "timeseries://cpu.temp",
            "timeseries://mem.used"
        ]
    );

    let read = app
        .rpc(
            &session,
            2,
            "resources/read",
            json!({ "uri": "timeseries://cpu.temp" }),
        )
        .await;
    let content = &read["result"]["contents"][0];
    assert_eq!(content["mimeType"], "application/json");
    let body: Value = serde_json::from_str(content["text"].as_str().unwrap()).unwrap();
    assert_eq!(body["points"], 2);
    assert_eq!(body["latest"][1]["value"], 2.5);

    let complete = app
        .rpc(
            &session,
            3,
            "completion/complete",
            json!({
        "ref": { "type": "ref/prompt", "name": "investigate_anomalies" },
        "argument": { "name": "series", "value": "cpu" } }),
        )
        .await;
    assert_eq!(
        complete["result"]["completion"]["values"],
        json!(["cpu.load", "cpu.temp"])
    );
    let template = app
        .rpc(
            &session,
            4,
            "completion/complete",
            json!({
        "ref": { "type": "ref/resource", "uri": "timeseries://{series}" },
        "argument": { "name": "series", "value": "m" } }),
        )
        .await;
    assert_eq!(
        template["result"]["completion"]["values"],
        json!(["mem.used"])
    );

    let prompt = app
        .rpc(
            &session,
            5,
            "prompts/get",
            json!({ "name": "forecast_report", "arguments": { "series": "cpu.load" } }),
        )
        .await;
    // The chart of the series, its caption, then the instructions.
    let messages = prompt["result"]["messages"].as_array().unwrap();
    assert_eq!(messages[0]["content"]["type"], "image", "{prompt}");
    assert!(
        messages[2]["content"]["text"]
            .as_str()
            .unwrap()
            .contains("cpu.load")
    );
}

#[rocket::async_test]
async fn idle_sessions_expire() {
    let db = TestDatabase::migrated();
    for redis in [None, Some(redis_url())] {
        let mut fig = figment(&db.url, redis.as_deref());
        fig = fig.merge(("mcp_session_ttl_secs", 1));
        let app = TestApp::try_spawn(fig).await.unwrap();
        let session = app.session().await;
        assert_eq!(app.post(Some(&session), &ping(1)).await.status, 200);
        rocket::tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
        assert_eq!(
            app.post(Some(&session), &ping(2)).await.status,
            404,
            "redis: {redis:?}"
        );
    }
}

#[rocket::async_test]
async fn subscribers_hear_when_a_series_receives_points() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    app.rpc(
        &session,
        1,
        "resources/subscribe",
        json!({ "uri": "timeseries://watched" }),
    )
    .await;
    let bad = app
        .rpc(
            &session,
            2,
            "resources/subscribe",
            json!({ "uri": "ftp://elsewhere" }),
        )
        .await;
    assert_eq!(bad["error"]["code"], -32602);

    let mut stream = app
        .client
        .get("/mcp")
        .header(rocket::http::Header::new("Accept", "text/event-stream"))
        .header(rocket::http::Header::new("Mcp-Session-Id", session.clone()))
        .dispatch()
        .await;
    assert_eq!(
        stream.content_type(),
        Some(rocket::http::ContentType::EventStream)
    );
    app.call_tool(
        &session,
        "ingest_timeseries",
        json!({ "series": "watched",
        "points": [{ "time": "2026-01-01T00:00:00Z", "value": 1 }] }),
    )
    .await;
    let text = read_until(&mut stream, "notifications/resources/updated").await;
    assert!(
        text.contains("notifications/resources/updated") && text.contains("timeseries://watched"),
        "{text}"
    );
}

#[rocket::async_test]
async fn shutdown_flushes_the_request_log_and_writes_a_snapshot() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    for id in 1..=5 {
        app.rpc(&session, id, "ping", json!({})).await;
    }
    app.client.terminate().await;
    assert_eq!(db.count("SELECT count(*) AS n FROM mcp_request_logs"), 6);
    assert!(
        db.count("SELECT count(*) AS n FROM performance_metrics WHERE metric_name = 'requests'")
            > 0
    );
}
