//! Protocol revisions, log levels and the initialize result.

use serde_json::{Value, json};

/// Newest first. 2025-03-26 is also what clients may send in the
/// `MCP-Protocol-Version` header on a newer session (the conformance suite
/// does), so all three are accepted there.
pub const SUPPORTED: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];
pub const LATEST: &str = SUPPORTED[0];

/// The requested revision when supported, else our latest (the client then
/// decides whether it can use it).
pub fn negotiate(requested: Option<&str>) -> &'static str {
    requested
        .and_then(|r| SUPPORTED.iter().find(|s| **s == r).copied())
        .unwrap_or(LATEST)
}

pub fn is_supported(version: &str) -> bool {
    SUPPORTED.contains(&version)
}

/// The handshake-era revisions: a header naming one of these keeps a
/// request in the session lane (2024-11-05 is then refused there).
pub fn is_legacy(version: &str) -> bool {
    is_supported(version) || version == "2024-11-05"
}

pub const INSTRUCTIONS: &str = "Time-series analytics over PostgreSQL. Ingest points with \
ingest_timeseries, then query, summarise (compute_statistics), look for anomalies and trends, \
train forecasting models and forecast. Each series is also a resource: timeseries://<series>.";

pub fn server_info() -> Value {
    json!({
        "name": env!("CARGO_PKG_NAME"),
        "title": "Time-series analytics",
        "version": env!("CARGO_PKG_VERSION"),
    })
}

/// RFC 5424 severities, least severe first.
pub const LOG_LEVELS: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

pub fn log_rank(level: &str) -> Option<usize> {
    LOG_LEVELS.iter().position(|l| *l == level)
}

/// The 2026 revision, served beside the ones above.
pub const MODERN: &str = "2026-07-28";

/// The tasks extension a 2026 client declares to take tasks.
pub const TASKS_EXTENSION: &str = "io.modelcontextprotocol/tasks";

/// The `server/discover` result (rmcp's model of it). Its caching hints
/// and server identity are added with the lists' (`outcome::conclude`).
pub fn discover_result() -> Value {
    use rmcp::model::{
        DiscoverResult, JsonObject, PromptsCapability, ProtocolVersion, ResourcesCapability,
        ServerCapabilities, ToolsCapability,
    };
    let mut tools = ToolsCapability::default();
    let mut prompts = PromptsCapability::default();
    let mut resources = ResourcesCapability::default();
    // Changes reach `subscriptions/listen` streams on every replica.
    tools.list_changed = Some(true);
    prompts.list_changed = Some(true);
    resources.subscribe = Some(true);
    let mut capabilities = ServerCapabilities::default();
    capabilities.tools = Some(tools);
    capabilities.prompts = Some(prompts);
    capabilities.resources = Some(resources);
    capabilities.logging = Some(JsonObject::new());
    capabilities.completions = Some(JsonObject::new());
    capabilities.extensions = Some([(TASKS_EXTENSION.to_owned(), JsonObject::new())].into());
    let mut result = DiscoverResult::new(vec![ProtocolVersion::V_2026_07_28], capabilities);
    result.instructions = Some(INSTRUCTIONS.to_owned());
    serde_json::to_value(result).unwrap_or_else(|_| json!({}))
}

pub fn initialize_result(version: &str) -> Value {
    json!({
        "protocolVersion": version,
        "capabilities": {
            "tools": { "listChanged": false },
            "resources": { "subscribe": true, "listChanged": false },
            "prompts": { "listChanged": false },
            "logging": {},
            "completions": {},
        },
        "serverInfo": server_info(),
        "instructions": INSTRUCTIONS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_echoes_supported_and_counter_offers_latest() {
        assert_eq!(negotiate(Some("2025-06-18")), "2025-06-18");
        assert_eq!(negotiate(Some("2025-03-26")), "2025-03-26");
        assert_eq!(negotiate(Some("2024-11-05")), LATEST);
        assert_eq!(negotiate(Some("2026-07-28")), LATEST);
        assert_eq!(negotiate(None), LATEST);
    }

    #[test]
    fn levels_are_ordered() {
        assert!(log_rank("debug") < log_rank("error"));
        assert_eq!(log_rank("verbose"), None);
    }
}
