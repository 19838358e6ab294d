//! `mcp-server stdio`, run as a child process on a fresh database: both
//! revisions over one pipe, questions in each revision's way, bad lines,
//! cancellation, and the end of input. Every line on stdout must be a
//! JSON-RPC message, with RUST_LOG=debug.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::TestDatabase;

const WAIT: Duration = Duration::from_secs(30);

struct Piped {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Every stdout line, to check at the end.
    seen: Vec<String>,
    _db: TestDatabase,
}

fn modern_meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": { "elicitation": {} },
    })
}

impl Piped {
    fn start(env: &[(&str, &str)]) -> Piped {
        Self::start_with(&[], env)
    }

    /// `mcp-server stdio ARGS…`.
    fn start_with(args: &[&str], env: &[(&str, &str)]) -> Piped {
        let db = TestDatabase::migrated();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcp-server"));
        cmd.arg("stdio")
            .args(args)
            .env("DATABASE_URL", &db.url)
            .env("RUST_LOG", "debug")
            .env("MCP_CONFORMANCE_FIXTURES", "1")
            .env_remove("REDIS_URL")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("binary runs");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Piped {
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
            _db: db,
        }
    }

    fn send_raw(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    fn send(&mut self, message: Value) {
        self.send_raw(&message.to_string());
    }

    fn request(&mut self, id: i64, method: &str, params: Value) {
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
    }

    /// The next message on stdout.
    fn next(&mut self) -> Value {
        let line = self
            .lines
            .recv_timeout(WAIT)
            .expect("a message on stdout in time");
        self.seen.push(line.clone());
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// Messages until the response to `id`, which is returned last.
    fn until(&mut self, id: i64) -> Vec<Value> {
        let mut got = Vec::new();
        loop {
            let m = self.next();
            let done = m["id"] == json!(id) && m.get("method").is_none();
            got.push(m);
            if done {
                return got;
            }
        }
    }

    fn response(&mut self, id: i64) -> Value {
        self.until(id).pop().unwrap()
    }

    fn initialize(&mut self) {
        self.request(
            1,
            "initialize",
            json!({
                "protocolVersion": "2025-11-25",
                "capabilities": { "sampling": {} },
                "clientInfo": { "name": "stdio-test", "version": "1" },
            }),
        );
        let init = self.response(1);
        assert_eq!(init["result"]["protocolVersion"], "2025-11-25", "{init}");
        self.send(json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }));
    }

    /// Closes stdin and waits for the exit; the status and every line seen.
    fn finish(mut self) -> (std::process::ExitStatus, Vec<String>) {
        drop(self.stdin.take());
        let deadline = Instant::now() + WAIT;
        loop {
            match self.lines.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
            }
            assert!(Instant::now() < deadline, "the process did not exit");
        }
        let status = self.child.wait().unwrap();
        (status, std::mem::take(&mut self.seen))
    }
}

impl Drop for Piped {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn assert_only_json_rpc(lines: &[String]) {
    assert!(!lines.is_empty());
    for line in lines {
        let m: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(m["jsonrpc"], "2.0", "not JSON-RPC: {line}");
    }
}

#[test]
fn both_revisions_share_the_pipe_and_stdout_holds_only_json_rpc() {
    let mut s = Piped::start(&[]);
    // 2026 first: no initialize needed.
    s.request(2, "server/discover", json!({ "_meta": modern_meta() }));
    let discover = s.response(2);
    assert_eq!(
        discover["result"]["supportedVersions"],
        json!(["2026-07-28"])
    );
    s.initialize();
    let ingest = json!({
        "name": "ingest_timeseries",
        "arguments": {
            "series": "stdio.cpu",
            "points": [
                { "time": "2026-01-01T00:00:00Z", "value": 1.0 },
                { "time": "2026-01-01T00:01:00Z", "value": 2.0 },
            ],
        },
    });
    s.request(3, "tools/call", ingest);
    let ingested = s.response(3);
    assert_eq!(ingested["result"]["isError"], Value::Null, "{ingested}");
    // 2025: progress and log messages come on the same pipe, before the response.
    s.request(4, "logging/setLevel", json!({ "level": "debug" }));
    s.response(4);
    s.request(
        5,
        "tools/call",
        json!({ "name": "test_tool_with_progress", "arguments": {}, "_meta": { "progressToken": "p" } }),
    );
    let messages = s.until(5);
    assert!(
        messages
            .iter()
            .any(|m| m["method"] == "notifications/progress" && m["params"]["progressToken"] == "p"),
        "{messages:?}"
    );
    // 2026 on the same process: the series the 2025 session wrote.
    s.request(
        6,
        "tools/call",
        json!({ "name": "compute_statistics", "arguments": { "series": "stdio.cpu" }, "_meta": modern_meta() }),
    );
    let stats = s.response(6);
    assert_eq!(stats["result"]["resultType"], "complete", "{stats}");
    assert_eq!(stats["result"]["structuredContent"]["count"], 2, "{stats}");
    let (status, lines) = s.finish();
    assert!(status.success(), "{status}");
    assert_only_json_rpc(&lines);
}

#[test]
fn questions_go_as_requests_in_2025_and_as_input_required_in_2026() {
    let mut s = Piped::start(&[]);
    s.initialize();
    s.request(
        2,
        "tools/call",
        json!({ "name": "test_sampling", "arguments": { "prompt": "hi" } }),
    );
    let ask = s.next();
    assert_eq!(ask["method"], "sampling/createMessage", "{ask}");
    s.send(json!({
        "jsonrpc": "2.0",
        "id": ask["id"],
        "result": { "role": "assistant", "content": { "type": "text", "text": "hello" }, "model": "m" },
    }));
    let answered = s.response(2);
    assert!(
        answered["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("hello"),
        "{answered}"
    );
    // 2026: the server never sends a request; the question ends the call.
    s.request(
        3,
        "tools/call",
        json!({ "name": "test_elicitation", "arguments": { "message": "name?" }, "_meta": modern_meta() }),
    );
    let messages = s.until(3);
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(
        messages[0]["result"]["resultType"], "input_required",
        "{messages:?}"
    );
    assert!(messages[0]["result"]["requestState"].is_string());
    let (status, lines) = s.finish();
    assert!(status.success());
    assert_only_json_rpc(&lines);
}

#[test]
fn bad_lines_get_errors_and_the_process_goes_on() {
    let mut s = Piped::start(&[("ROCKET_LIMITS", "{json=\"4 KiB\"}")]);
    s.send_raw("{not json");
    let parse = s.next();
    assert_eq!(parse["error"]["code"], -32700, "{parse}");
    s.send_raw(&format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/list\",\"params\":{{\"pad\":\"{}\"}}}}",
        "x".repeat(100_000)
    ));
    let long = s.next();
    assert_eq!(long["error"]["code"], -32600, "{long}");
    assert!(
        long["error"]["message"]
            .as_str()
            .unwrap()
            .contains("4096-byte limit"),
        "{long}"
    );
    s.send_raw("[]");
    assert_eq!(s.next()["error"]["code"], -32600);
    // Before initialize, a 2025 request is refused, not dropped.
    s.request(2, "tools/list", json!({}));
    let refused = s.response(2);
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("initialize"),
        "{refused}"
    );
    s.initialize();
    s.request(3, "initialize", json!({ "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "again", "version": "1" } }));
    assert_eq!(s.response(3)["error"]["code"], -32600);
    s.request(4, "tools/list", json!({}));
    assert!(s.response(4)["result"]["tools"].is_array());
    let (status, lines) = s.finish();
    assert!(status.success());
    assert_only_json_rpc(&lines);
}

/// No token over stdio: `--scopes` limits the client, and a call beyond
/// them gets a plain JSON-RPC error where HTTP would answer 403.
#[test]
fn scopes_limit_a_stdio_client() {
    let mut s = Piped::start_with(&["--scopes", "timeseries:read"], &[]);
    s.initialize();
    s.request(2, "tools/list", json!({}));
    let listed = s.response(2);
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"query_timeseries") && !names.contains(&"ingest_timeseries"));
    s.request(
        3,
        "tools/call",
        json!({ "name": "ingest_timeseries", "arguments": { "series": "s", "points": [] } }),
    );
    let refused = s.response(3);
    assert_eq!(refused["error"]["code"], -32003, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("timeseries:write"),
        "{refused}"
    );
    let (status, lines) = s.finish();
    assert!(status.success());
    assert_only_json_rpc(&lines);
}

#[test]
fn a_cancelled_call_is_not_answered_and_the_end_of_input_waits_for_the_rest() {
    let mut s = Piped::start(&[]);
    let slow = |seconds: u64| json!({ "name": "slow_compute", "arguments": { "seconds": seconds }, "_meta": modern_meta() });
    s.request(2, "tools/call", slow(30));
    std::thread::sleep(Duration::from_millis(300));
    s.send(json!({ "jsonrpc": "2.0", "method": "notifications/cancelled", "params": { "requestId": 2 } }));
    // A listen stream, cancelled the same way.
    s.request(
        3,
        "subscriptions/listen",
        json!({ "notifications": { "toolsListChanged": true }, "_meta": modern_meta() }),
    );
    let ack = s.next();
    assert_eq!(
        ack["method"], "notifications/subscriptions/acknowledged",
        "{ack}"
    );
    assert_eq!(
        ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        3
    );
    s.send(json!({ "jsonrpc": "2.0", "method": "notifications/cancelled", "params": { "requestId": 3 } }));
    // Input ends while a 1 s call runs: it is answered, then the process exits 0.
    s.request(4, "tools/call", slow(1));
    let started = Instant::now();
    let (status, lines) = s.finish();
    assert!(status.success(), "{status}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "waited for the cancelled call"
    );
    assert_only_json_rpc(&lines);
    let answered: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|m| m.get("method").is_none())
        .map(|m| m["id"].clone())
        .collect();
    assert!(answered.contains(&json!(4)), "{lines:?}");
    assert!(
        !answered.contains(&json!(2)),
        "the cancelled call answered: {lines:?}"
    );
}

#[test]
fn sigterm_and_sigint_end_the_process_cleanly() {
    for signal in ["-TERM", "-INT"] {
        let mut s = Piped::start(&[]);
        s.initialize();
        let pid = s.child.id().to_string();
        let killed = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(killed.success());
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = s.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "no exit after {signal}");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "{signal}: {status}");
    }
}
