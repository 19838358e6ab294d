//! MCP 2026-07-28 beside 2025-11-25 on one `/mcp`: the era rule, the
//! stateless lane's checks in order, its results, and multi-round requests
//! resumed on another replica.

use rocket::http::{Header, Method};
use serde_json::{Value, json};

use crate::helpers::{ACCEPT_BOTH, TestApp, TestDatabase, figment, read_until};

const SECRET: &str = "a state secret shared by every replica here";

async fn app(db: &TestDatabase, secret: &str) -> TestApp {
    let fig = figment(&db.url, None)
        .merge(("mcp_conformance_fixtures", true))
        .merge(("mcp_state_secret", secret));
    TestApp::try_spawn(fig).await.expect("application starts")
}

fn all_caps() -> Value {
    json!({ "elicitation": {}, "sampling": {}, "roots": {} })
}

/// POSTs `body` with the 2026 header and whatever else is given.
async fn raw(app: &TestApp, body: Value, extra: &[(&str, &str)]) -> (u16, Value) {
    let mut headers = vec![ACCEPT_BOTH, ("Content-Type", "application/json")];
    headers.extend_from_slice(extra);
    let ex = app.mcp(Method::Post, &body.to_string(), &headers).await;
    assert!(ex.session.is_none(), "2026 never mints a session");
    (ex.status, ex.response())
}

/// A 2026 `subscriptions/listen` stream on `app`.
async fn open_listen<'a>(
    app: &'a TestApp,
    listen: &Value,
) -> rocket::local::asynchronous::LocalResponse<'a> {
    app.client
        .post("/mcp")
        .header(Header::new("Accept", "application/json, text/event-stream"))
        .header(Header::new("Content-Type", "application/json"))
        .header(Header::new("MCP-Protocol-Version", "2026-07-28"))
        .header(Header::new("Mcp-Method", "subscriptions/listen"))
        .body(listen.to_string())
        .dispatch()
        .await
}

fn meta(version: &str) -> Value {
    json!({ "io.modelcontextprotocol/protocolVersion": version,
            "io.modelcontextprotocol/clientCapabilities": {} })
}

#[rocket::async_test]
async fn discover_selects_the_stateless_lane_and_initialize_keeps_sessions() {
    let db = TestDatabase::migrated();
    let app = app(&db, SECRET).await;
    // No header, no _meta: discover alone is modern, and says what it needs.
    let (status, body) = raw(
        &app,
        json!({ "jsonrpc": "2.0", "id": 7, "method": "server/discover", "params": {} }),
        &[],
    )
    .await;
    assert_eq!((status, body["id"].clone()), (400, json!(7)), "{body}");
    assert_eq!(body["error"]["code"], -32602);

    let ex = app.modern(1, "server/discover", json!({}), json!({})).await;
    assert_eq!(ex.status, 200, "{}", ex.body);
    let result = &ex.response()["result"];
    assert_eq!(result["supportedVersions"], json!(["2026-07-28"]));
    assert_eq!(result["resultType"], "complete");
    assert!(result["ttlMs"].is_u64() && result["cacheScope"] == "public");
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "mcp-server"
    );
    assert!(result["capabilities"]["tools"].is_object());

    // A modern initialize is a removed method; a legacy one (even asking
    // for 2026 in its params) is today's handshake.
    let (status, body) = raw(
        &app,
        json!({ "jsonrpc": "2.0", "id": "init", "method": "initialize",
                "params": { "_meta": meta("2026-07-28") } }),
        &[
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "initialize"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (404, json!(-32601))
    );
    assert_eq!(body["id"], "init");
    let init = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": { "protocolVersion": "2026-07-28", "capabilities": {},
                    "clientInfo": { "name": "t", "version": "1" } } });
    let ex = app.post(None, &init).await;
    assert_eq!(ex.response()["result"]["protocolVersion"], "2025-11-25");
    let session = ex.session.expect("a legacy session");
    assert_eq!(
        app.rpc(&session, 2, "ping", json!({})).await["result"],
        json!({})
    );

    // GET and DELETE belong to sessions.
    for method in [Method::Get, Method::Delete] {
        let ex = app
            .mcp(
                method,
                "",
                &[ACCEPT_BOTH, ("MCP-Protocol-Version", "2026-07-28")],
            )
            .await;
        assert_eq!(ex.status, 405, "{method}");
    }
}

#[rocket::async_test]
async fn checks_run_in_order_and_every_error_echoes_the_id() {
    let db = TestDatabase::migrated();
    let app = app(&db, SECRET).await;
    let list = |id: i64, version: &str| {
        json!({ "jsonrpc": "2.0", "id": id, "method": "tools/list",
                "params": { "_meta": meta(version) } })
    };
    // (request, headers, HTTP status, JSON-RPC code)
    type Case<'a> = (Value, Vec<(&'a str, &'a str)>, u16, i64);
    let cases: [Case; 6] = [
        // Header missing, then differing from _meta.
        (
            list(1, "2026-07-28"),
            vec![("Mcp-Method", "tools/list")],
            400,
            -32020,
        ),
        (
            list(2, "2026-07-28"),
            vec![
                ("MCP-Protocol-Version", "v999.0.0"),
                ("Mcp-Method", "tools/list"),
            ],
            400,
            -32020,
        ),
        // Both name a revision we do not serve.
        (
            list(3, "v999.0.0"),
            vec![
                ("MCP-Protocol-Version", "v999.0.0"),
                ("Mcp-Method", "tools/list"),
            ],
            400,
            -32022,
        ),
        // Mcp-Method absent, then not the body's (values are case-sensitive).
        (
            list(4, "2026-07-28"),
            vec![("MCP-Protocol-Version", "2026-07-28")],
            400,
            -32020,
        ),
        (
            list(5, "2026-07-28"),
            vec![
                ("MCP-Protocol-Version", "2026-07-28"),
                ("Mcp-Method", "TOOLS/LIST"),
            ],
            400,
            -32020,
        ),
        // Removed in 2026.
        (
            json!({ "jsonrpc": "2.0", "id": 6, "method": "ping",
                    "params": { "_meta": meta("2026-07-28") } }),
            vec![
                ("MCP-Protocol-Version", "2026-07-28"),
                ("Mcp-Method", "ping"),
            ],
            404,
            -32601,
        ),
    ];
    for (body, headers, status, code) in cases {
        let id = body["id"].clone();
        let (got, reply) = raw(&app, body, &headers).await;
        assert_eq!(
            (got, reply["error"]["code"].clone()),
            (status, json!(code)),
            "{reply}"
        );
        assert_eq!(reply["id"], id);
    }
    let (_, reply) = raw(
        &app,
        list(9, "v999.0.0"),
        &[
            ("MCP-Protocol-Version", "v999.0.0"),
            ("Mcp-Method", "tools/list"),
        ],
    )
    .await;
    assert_eq!(
        reply["error"]["data"],
        json!({ "supported": ["2026-07-28"], "requested": "v999.0.0" })
    );

    // A header naming no revision we serve, with no _meta: the header and
    // its value are named (it once said _meta was required).
    for bad in ["1999-01-01", ""] {
        let body = json!({ "jsonrpc": "2.0", "id": 11, "method": "tools/list" });
        let (got, reply) = raw(&app, body, &[("MCP-Protocol-Version", bad)]).await;
        let message = reply["error"]["message"].as_str().unwrap();
        assert_eq!(
            (got, &reply["error"]["code"]),
            (400, &json!(-32022)),
            "{reply}"
        );
        assert!(
            message.contains("MCP-Protocol-Version header")
                && message.contains(&format!("{bad:?}")),
            "{message}"
        );
        assert_eq!(reply["error"]["data"]["requested"], bad);
    }

    // Mcp-Name must repeat the tool, after trimming and base64 decoding.
    let call = json!({ "jsonrpc": "2.0", "id": 10, "method": "tools/call",
        "params": { "name": "list_series", "arguments": {}, "_meta": meta("2026-07-28") } });
    let base = [
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", "tools/call"),
    ];
    for (name, status) in [
        ("  list_series\t", 200),
        ("=?base64?bGlzdF9zZXJpZXM=?=", 200),
        ("=?base64?bGlzdF9zZXJpZXM?=", 400),
        ("other_tool", 400),
    ] {
        let mut headers = base.to_vec();
        headers.push(("Mcp-Name", name));
        let (got, reply) = raw(&app, call.clone(), &headers).await;
        assert_eq!(got, status, "{name:?}: {reply}");
    }
    let (got, reply) = raw(&app, call, &base).await;
    assert_eq!((got, reply["error"]["code"].clone()), (400, json!(-32020)));
}

#[rocket::async_test]
async fn product_tools_answer_statelessly_with_result_types_and_gated_logs() {
    let db = TestDatabase::migrated();
    let app = app(&db, SECRET).await;
    let points: Vec<Value> = (0..20)
        .map(|i| json!({ "time": format!("2026-01-01T00:{i:02}:00Z"), "value": i }))
        .collect();
    let ex = app
        .modern(
            1,
            "tools/call",
            json!({ "name": "ingest_timeseries",
                    "arguments": { "series": "cpu.load", "points": points } }),
            json!({}),
        )
        .await;
    let result = &ex.response()["result"];
    assert_eq!(result["resultType"], "complete", "{result}");
    assert_eq!(result["structuredContent"]["inserted"], 20);

    let ex = app
        .modern(
            2,
            "tools/call",
            json!({ "name": "compute_statistics", "arguments": { "series": "cpu.load" } }),
            json!({}),
        )
        .await;
    assert_eq!(ex.response()["result"]["structuredContent"]["count"], 20);

    // The series is a resource; lists and reads carry caching hints.
    let ex = app
        .modern(
            3,
            "resources/read",
            json!({ "uri": "timeseries://cpu.load" }),
            json!({}),
        )
        .await;
    let read = ex.response()["result"].clone();
    assert_eq!(
        (read["ttlMs"].clone(), read["cacheScope"].clone()),
        (json!(0), json!("private"))
    );
    assert_eq!(read["resultType"], "complete");
    // A missing one is -32602 here (-32002 under 2025), with its uri.
    let ex = app
        .modern(
            4,
            "resources/read",
            json!({ "uri": "timeseries://absent" }),
            json!({}),
        )
        .await;
    assert_eq!(ex.status, 400);
    let error = &ex.response()["error"];
    assert_eq!(
        (error["code"].clone(), error["data"]["uri"].clone()),
        (json!(-32602), json!("timeseries://absent"))
    );

    // Log messages only when the request names a level.
    let ex = app
        .modern(
            5,
            "tools/call",
            json!({ "name": "test_logging_tool", "arguments": {} }),
            json!({}),
        )
        .await;
    assert!(
        ex.content_type.starts_with("application/json"),
        "no logs: plain JSON"
    );
    let ex = app
        .modern(
            6,
            "tools/call",
            json!({ "name": "test_logging_tool", "arguments": {},
                    "_meta": { "io.modelcontextprotocol/logLevel": "debug" } }),
            json!({}),
        )
        .await;
    let messages = ex.messages();
    assert_eq!(
        messages[0]["method"], "notifications/message",
        "{}",
        ex.body
    );
    assert_eq!(ex.response()["result"]["resultType"], "complete");
}

#[rocket::async_test]
async fn a_multi_round_call_resumes_on_another_replica_and_rejects_altered_state() {
    let db = TestDatabase::migrated();
    let a = app(&db, SECRET).await;
    let b = app(&db, SECRET).await;
    let stranger = app(&db, "a different secret, also 32 bytes long").await;
    let call = |responses: Value, state: Option<&str>| {
        let mut params = json!({ "name": "test_input_required_result_multi_round", "arguments": {},
                                 "inputResponses": responses });
        if let Some(s) = state {
            params["requestState"] = json!(s);
        }
        params
    };
    let accept = |content: Value| json!({ "action": "accept", "content": content });

    let r1 = a
        .modern(1, "tools/call", call(json!(null), None), all_caps())
        .await
        .response();
    let r1 = &r1["result"];
    assert_eq!(r1["resultType"], "input_required", "{r1}");
    assert_eq!(r1["inputRequests"]["step1"]["method"], "elicitation/create");
    let s1 = r1["requestState"].as_str().unwrap();

    // Round 2 lands on replica b: the first answer is carried in the state.
    let r2 = b
        .modern(
            2,
            "tools/call",
            call(
                json!({ "step1": accept(json!({ "name": "Ada" })) }),
                Some(s1),
            ),
            all_caps(),
        )
        .await
        .response();
    let r2 = &r2["result"];
    assert_eq!(r2["resultType"], "input_required", "{r2}");
    assert!(r2["inputRequests"].get("step1").is_none());
    let s2 = r2["requestState"].as_str().unwrap();
    assert_ne!(s1, s2);

    let done = a
        .modern(
            3,
            "tools/call",
            call(
                json!({ "step2": accept(json!({ "color": "teal" })) }),
                Some(s2),
            ),
            all_caps(),
        )
        .await
        .response();
    assert_eq!(
        done["result"]["content"][0]["text"], "Ada likes teal",
        "{done}"
    );

    // Altered state, state for other arguments, or another key: an error.
    for (replica, state) in [(&a, format!("{s2}-TAMPERED")), (&stranger, s2.to_owned())] {
        let ex = replica
            .modern(4, "tools/call", call(json!({}), Some(&state)), all_caps())
            .await;
        assert_eq!(ex.status, 400);
        assert_eq!(ex.response()["error"]["code"], -32602);
    }
    let mut other_args = call(json!({}), Some(s2));
    other_args["arguments"] = json!({ "extra": 1 });
    let ex = a.modern(5, "tools/call", other_args, all_caps()).await;
    assert_eq!(ex.response()["error"]["code"], -32602, "{}", ex.body);

    // A question the client cannot answer is -32021, naming the capability.
    let ex = a
        .modern(
            6,
            "tools/call",
            json!({ "name": "test_missing_capability", "arguments": {} }),
            json!({}),
        )
        .await;
    assert_eq!(ex.status, 400);
    let error = &ex.response()["error"];
    assert_eq!(error["code"], -32021);
    assert_eq!(
        error["data"]["requiredCapabilities"],
        json!({ "sampling": {} })
    );
}

#[rocket::async_test]
async fn changes_on_one_replica_reach_listeners_and_sessions_on_another() {
    let db = TestDatabase::migrated();
    let redis = crate::helpers::OwnRedis::start();
    let spawn = || async {
        let fig = figment(&db.url, Some(&redis.url())).merge(("mcp_conformance_fixtures", true));
        TestApp::try_spawn(fig).await.expect("application starts")
    };
    let (a, b) = (spawn().await, spawn().await);
    let uri = "timeseries://shared";

    // On b: a 2025 session subscribed with its GET stream open, and a 2026 listener.
    let session = b.session().await;
    b.rpc(&session, 1, "resources/subscribe", json!({ "uri": uri }))
        .await;
    let mut get = b
        .client
        .get("/mcp")
        .header(Header::new("Accept", "text/event-stream"))
        .header(Header::new("Mcp-Session-Id", session.clone()))
        .dispatch()
        .await;
    let listen = json!({ "jsonrpc": "2.0", "id": "sub-1", "method": "subscriptions/listen",
        "params": { "notifications": { "toolsListChanged": true, "resourceSubscriptions": [uri, "timeseries://no such"] },
                    "_meta": meta("2026-07-28") } });
    let mut listener = open_listen(&b, &listen).await;
    let ack = read_until(&mut listener, "acknowledged").await;
    assert!(
        ack.contains(r#""resourceSubscriptions":["timeseries://shared"]"#),
        "{ack}"
    );
    assert!(
        ack.contains(r#""io.modelcontextprotocol/subscriptionId":"sub-1""#),
        "{ack}"
    );

    // Points arrive on a; b's subscribers hear it. (b's Redis subscription is
    // made in the background at start, so the first write may precede it.)
    let mut heard = String::new();
    for i in 0..5 {
        let points = json!([{ "time": format!("2026-01-01T00:00:0{i}Z"), "value": i }]);
        a.modern(i, "tools/call",
            json!({ "name": "ingest_timeseries", "arguments": { "series": "shared", "points": points } }),
            json!({}))
            .await;
        heard = read_until(&mut listener, "resources/updated").await;
        if heard.contains("resources/updated") {
            break;
        }
    }
    assert!(
        heard.contains(uri) && heard.contains("sub-1"),
        "listener: {heard}"
    );
    let pushed = read_until(&mut get, "resources/updated").await;
    assert!(pushed.contains(uri), "GET stream: {pushed}");

    // A list change on a reaches b's listener, which asked for tools only.
    a.modern(
        9,
        "tools/call",
        json!({ "name": "test_trigger_prompt_change", "arguments": {} }),
        json!({}),
    )
    .await;
    a.modern(
        10,
        "tools/call",
        json!({ "name": "test_trigger_tool_change", "arguments": {} }),
        json!({}),
    )
    .await;
    let changed = read_until(&mut listener, "tools/list_changed").await;
    assert!(!changed.contains("prompts/list_changed"), "{changed}");
    assert!(changed.contains("tools/list_changed"), "{changed}");
}

#[rocket::async_test]
async fn listeners_hear_changes_again_after_redis_restarts() {
    let db = TestDatabase::migrated();
    let mut redis = crate::helpers::OwnRedis::start();
    let spawn = || async {
        let fig = figment(&db.url, Some(&redis.url())).merge(("mcp_conformance_fixtures", true));
        TestApp::try_spawn(fig).await.expect("application starts")
    };
    let (a, b) = (spawn().await, spawn().await);
    redis.restart_empty();
    // b's relay resubscribes within about a second, and a's publishing
    // resumes after its Redis back-off: a change on a then reaches b again.
    let listen = json!({ "jsonrpc": "2.0", "id": "after-restart", "method": "subscriptions/listen",
        "params": { "notifications": { "toolsListChanged": true }, "_meta": meta("2026-07-28") } });
    let mut listener = open_listen(&b, &listen).await;
    assert!(
        read_until(&mut listener, "acknowledged")
            .await
            .contains("after-restart")
    );
    let mut heard = String::new();
    for i in 0..8 {
        a.modern(
            i,
            "tools/call",
            json!({ "name": "test_trigger_tool_change", "arguments": {} }),
            json!({}),
        )
        .await;
        heard = read_until(&mut listener, "tools/list_changed").await;
        if heard.contains("tools/list_changed") {
            break;
        }
    }
    assert!(heard.contains("tools/list_changed"), "{heard}");
}
