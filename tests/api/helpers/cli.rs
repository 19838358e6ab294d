//! The `mcp-server` command line, run as a child process.

use std::process::{Command, Output, Stdio};

/// `mcp-server ARGS` against `database_url`, with no terminal on stdin.
pub fn mcp(args: &[&str], database_url: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mcp-server"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .expect("binary runs")
}

/// Everything it printed, stdout then stderr.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
