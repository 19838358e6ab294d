//! Typed helpers for the MCP conversation over `/mcp`: tests read like
//! the exchange they check.

use super::TestApp;

/// One HTTP exchange with `/mcp`.
pub struct Exchange {
    pub status: u16,
    pub content_type: String,
    pub session: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Exchange {
    /// The JSON-RPC messages in the body: one for JSON, each `data:` line's
    /// for SSE.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        if self.content_type.starts_with("text/event-stream") {
            self.body
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .filter(|d| !d.trim().is_empty())
                .map(|d| serde_json::from_str(d.trim()).expect("SSE data is JSON"))
                .collect()
        } else if self.body.is_empty() {
            Vec::new()
        } else {
            vec![
                serde_json::from_str(&self.body)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body)),
            ]
        }
    }

    /// The last message: the response.
    pub fn response(&self) -> serde_json::Value {
        self.messages().pop().expect("a response message")
    }
}

pub const ACCEPT_BOTH: (&str, &str) = ("Accept", "application/json, text/event-stream");

impl TestApp {
    pub async fn mcp(
        &self,
        method: rocket::http::Method,
        body: &str,
        headers: &[(&str, &str)],
    ) -> Exchange {
        let sent = self
            .request(method, "/mcp", body.as_bytes().to_vec(), headers)
            .await;
        Exchange {
            content_type: sent.header("Content-Type").unwrap_or_default().to_owned(),
            session: sent.header("Mcp-Session-Id").map(str::to_owned),
            status: sent.status,
            headers: sent.headers,
            body: sent.body,
        }
    }

    /// POSTs a JSON-RPC message with the headers a conforming client sends.
    pub async fn post(&self, session: Option<&str>, message: &serde_json::Value) -> Exchange {
        let mut headers = vec![ACCEPT_BOTH, ("Content-Type", "application/json")];
        if let Some(s) = session {
            headers.push(("Mcp-Session-Id", s));
            headers.push(("MCP-Protocol-Version", "2025-11-25"));
        }
        self.mcp(rocket::http::Method::Post, &message.to_string(), &headers)
            .await
    }

    /// initialize + notifications/initialized; returns the session id.
    pub async fn session(&self) -> String {
        let init = serde_json::json!({
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": { "protocolVersion": "2025-11-25", "capabilities": {},
                        "clientInfo": { "name": "api-tests", "version": "1.0" } }
        });
        let ex = self.post(None, &init).await;
        assert_eq!(ex.status, 200, "{}", ex.body);
        let session = ex.session.expect("initialize issues a session id");
        let note = serde_json::json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
        assert_eq!(self.post(Some(&session), &note).await.status, 202);
        session
    }

    /// A request on `session`; returns the final JSON-RPC response.
    pub async fn rpc(
        &self,
        session: &str,
        id: i64,
        method: &str,
        params: serde_json::Value,
    ) -> serde_json::Value {
        let msg =
            serde_json::json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        let ex = self.post(Some(session), &msg).await;
        assert_eq!(ex.status, 200, "{method}: {}", ex.body);
        let response = ex.response();
        assert_eq!(response["id"], id, "{response}");
        response
    }

    /// `tools/call`; returns the CallToolResult.
    pub async fn call_tool(
        &self,
        session: &str,
        name: &str,
        arguments: serde_json::Value,
    ) -> serde_json::Value {
        let response = self
            .rpc(
                session,
                1,
                "tools/call",
                serde_json::json!({ "name": name, "arguments": arguments }),
            )
            .await;
        assert!(response.get("error").is_none(), "{name}: {response}");
        response["result"].clone()
    }

    /// `tools/call` that must fail as a tool error (`isError`, not a
    /// JSON-RPC error); returns its text.
    pub async fn tool_error(
        &self,
        session: &str,
        name: &str,
        arguments: serde_json::Value,
    ) -> String {
        let r = self.call_tool(session, name, arguments.clone()).await;
        assert_eq!(r["isError"], true, "{name} {arguments}: {r}");
        r["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// `ingest_timeseries` of `points`, asserting that every one was written.
    pub async fn ingest(
        &self,
        session: &str,
        series: &str,
        points: &[(chrono::DateTime<chrono::Utc>, f64)],
    ) {
        let points: Vec<serde_json::Value> = points
            .iter()
            .map(|(t, v)| serde_json::json!({ "time": t.to_rfc3339(), "value": v }))
            .collect();
        let r = self
            .call_tool(
                session,
                "ingest_timeseries",
                serde_json::json!({ "series": series, "points": points }),
            )
            .await;
        assert_eq!(r["structuredContent"]["written"], points.len(), "{r}");
    }

    /// A 2026-07-28 request: `_meta` with the revision, `capabilities` and
    /// a client name, and the headers that repeat the method and target.
    pub async fn modern(
        &self,
        id: i64,
        method: &str,
        params: serde_json::Value,
        capabilities: serde_json::Value,
    ) -> Exchange {
        self.modern_with(id, method, params, capabilities, &[])
            .await
    }

    /// [`TestApp::modern`] with more headers (`Authorization`).
    pub async fn modern_with(
        &self,
        id: i64,
        method: &str,
        mut params: serde_json::Value,
        capabilities: serde_json::Value,
        extra: &[(&str, &str)],
    ) -> Exchange {
        let meta = params
            .as_object_mut()
            .expect("params are an object")
            .entry("_meta")
            .or_insert_with(|| serde_json::json!({}));
        meta["io.modelcontextprotocol/protocolVersion"] = "2026-07-28".into();
        meta["io.modelcontextprotocol/clientCapabilities"] = capabilities;
        meta["io.modelcontextprotocol/clientInfo"] =
            serde_json::json!({ "name": "api-tests", "version": "1.0" });
        let name = params["name"]
            .as_str()
            .or(params["uri"].as_str())
            .or(params["taskId"].as_str())
            .map(str::to_owned);
        let msg =
            serde_json::json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        let mut headers = vec![
            ACCEPT_BOTH,
            ("Content-Type", "application/json"),
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", method),
        ];
        if let Some(n) = &name {
            headers.push(("Mcp-Name", n));
        }
        headers.extend_from_slice(extra);
        self.mcp(rocket::http::Method::Post, &msg.to_string(), &headers)
            .await
    }

    pub fn mcp_state(&self) -> &std::sync::Arc<mcp_server::mcp::Mcp> {
        self.client.rocket().state().expect("MCP state")
    }
}

/// Reads an SSE stream until `want` appears (bounded).
pub async fn read_until(
    stream: &mut rocket::local::asynchronous::LocalResponse<'_>,
    want: &str,
) -> String {
    use rocket::tokio::io::AsyncReadExt;
    let mut seen = String::new();
    let mut buf = vec![0u8; 8192];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !seen.contains(want) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rocket::tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            _ => break,
        }
    }
    seen
}

/// `got` equals `want` to 1e-9 relative (or 1e-12 absolute near zero).
pub fn close(got: f64, want: f64, what: &str) {
    let rel = (got - want).abs() / want.abs().max(1e-300);
    assert!(
        rel <= 1e-9 || (got - want).abs() <= 1e-12,
        "{what}: got {got}, want {want} (relative error {rel:e})"
    );
}
