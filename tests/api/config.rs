//! Configuration means what the README says, wherever the binary starts:
//! compiled-in defaults, `Rocket.toml` over them, and every documented
//! variable (plain and `ROCKET_` name) over the file in every profile.
//! `mcp-server config` runs in a child process, so the environment it is
//! given never touches the tests running beside it.

use std::path::Path;
use std::process::Command;

use mcp_server::config::ENV_VARS;
use serde_json::{Value, json};

/// A value for each variable, unlike its default and the file's.
fn sample(var: &str) -> (&'static str, Value) {
    match var {
        "DATABASE_URL" => (
            "postgres://env@db.example:5433/env",
            json!("postgres://env@db.example:5433/env"),
        ),
        "REDIS_URL" => (
            "redis://cache.example:6380/1",
            json!("redis://cache.example:6380/1"),
        ),
        "MCP_AUTH_TOKEN" => ("s3cret", json!("***")),
        "MCP_STATE_SECRET" => ("a state secret of at least 32 bytes", json!("***")),
        "MCP_ALLOWED_HOSTS" => ("env.example", json!("env.example")),
        "MCP_ALLOWED_ORIGINS" => ("https://env.example", json!("https://env.example")),
        "MCP_CONFORMANCE_FIXTURES" | "MCP_READ_ONLY" => ("1", json!(true)),
        "INGEST_NON_FINITE" => ("reject", json!("reject")),
        "MCP_AUTH_TOKENS_FILE" => ("/etc/mcp/tokens", json!("/etc/mcp/tokens")),
        "MCP_OAUTH_ISSUER" | "MCP_OAUTH_AUDIENCE" | "MCP_OAUTH_JWKS_URL" => (
            "https://auth.example/realms/ops",
            json!("https://auth.example/realms/ops"),
        ),
        "RETENTION_OVERRIDES" => (
            "[{metric=\"node_*\",raw_days=3}]",
            json!([{ "metric": "node_*", "raw_days": 3 }]),
        ),
        _ => ("3", json!(3)),
    }
}

const FILE: &str = r#"
[release]
database_url = "postgres://file@file.example/file"
redis_url = "redis://file.example:1"
db_pool_size = 7
db_min_idle = 7
db_connect_timeout_secs = 7
db_checkout_timeout_secs = 7
db_startup_timeout_secs = 7
migration_lock_timeout_secs = 7
redis_timeout_ms = 7
mcp_auth_token = "file"
mcp_state_secret = "a file secret that is at least 32 bytes"
mcp_allowed_hosts = "file.example"
mcp_allowed_origins = "https://file.example"
mcp_session_ttl_secs = 7
mcp_conformance_fixtures = false
metrics_snapshot_secs = 7
"#;

fn config(dir: &Path, env: &[(&str, &str)]) -> Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcp-server"));
    cmd.arg("config")
        .current_dir(dir)
        .env("ROCKET_PROFILE", "release");
    for var in ENV_VARS
        .iter()
        .chain(&["ROCKET_CONFIG", "ROCKET_ADDRESS", "ROCKET_PORT"])
    {
        cmd.env_remove(var).env_remove(format!("ROCKET_{var}"));
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().expect("mcp-server runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("config prints JSON")
}

#[test]
fn every_variable_overrides_the_release_profile_under_both_names() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Rocket.toml"), FILE).unwrap();
    let from_file = config(dir.path(), &[]);
    assert_eq!(
        from_file["settings"]["db_pool_size"], 7,
        "the file applies: {from_file}"
    );
    for var in ENV_VARS.iter().filter(|v| **v != "RUST_LOG") {
        let key = var.to_ascii_lowercase();
        let (value, expected) = sample(var);
        // A rollup level's retention needs the finer levels' set.
        let finer: &[(&str, &str)] = match *var {
            "RETENTION_HOURS_DAYS" => &[("RETENTION_RAW_DAYS", "1")],
            "RETENTION_DAYS_DAYS" => &[("RETENTION_RAW_DAYS", "1"), ("RETENTION_HOURS_DAYS", "2")],
            _ => &[],
        };
        for name in [var.to_string(), format!("ROCKET_{var}")] {
            let shown = config(dir.path(), &[&[(name.as_str(), value)], finer].concat());
            assert_eq!(
                shown["settings"][&key], expected,
                "{name}={value} in the release profile"
            );
        }
    }
}

#[test]
fn defaults_are_compiled_in_without_a_rocket_toml() {
    let empty = tempfile::tempdir().unwrap();
    let shown = config(empty.path(), &[]);
    assert_eq!(shown["limits"]["json"], 32 * 1024 * 1024, "{shown}");
    assert_eq!(shown["settings"]["db_startup_timeout_secs"], 120);
    assert_eq!(
        (shown["address"].clone(), shown["port"].clone()),
        (json!("127.0.0.1"), json!(8000))
    );
    let moved = config(
        empty.path(),
        &[("ROCKET_ADDRESS", "0.0.0.0"), ("ROCKET_PORT", "18000")],
    );
    assert_eq!(
        (moved["address"].clone(), moved["port"].clone()),
        (json!("0.0.0.0"), json!(18000))
    );
}
