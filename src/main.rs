use std::process::ExitCode;

use clap::Parser;
use mcp_server::cli::{self, Cli, Command};

/// Rocket logs four or five INFO lines per request through `log`; below
/// WARN it is noise unless RUST_LOG names `rocket` itself.
const QUIET_ROCKET: &str = "rocket=warn";

fn main() -> ExitCode {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    env_logger::Builder::new()
        .parse_filters(&format!("{QUIET_ROCKET},{filter}"))
        .init();
    match Cli::parse().command.unwrap_or(Command::Serve) {
        Command::Serve => serve(),
        Command::Migrate(cmd) => cli::migrate(cmd),
        Command::Config => cli::config(),
        Command::Healthcheck { url } => cli::healthcheck(url),
    }
}

fn serve() -> ExitCode {
    match rocket::execute(mcp_server::rocket().launch()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            // Fairing failures were logged with their cause where they happened.
            log::error!("server did not start: {e}");
            ExitCode::FAILURE
        }
    }
}
