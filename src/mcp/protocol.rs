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

pub fn initialize_result(version: &str, instructions: &str) -> Value {
    json!({
        "protocolVersion": version,
        "capabilities": {
            "tools": { "listChanged": false },
            "resources": { "subscribe": true, "listChanged": false },
            "prompts": { "listChanged": false },
            "logging": {},
            "completions": {},
        },
        "serverInfo": {
            "name": env!("CARGO_PKG_NAME"),
            "title": "Time-series analytics",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "instructions": instructions,
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
