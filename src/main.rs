#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::ExitCode;

use clap::Parser;
use mcp_server::cli::{self, Cli, Command};

fn main() -> ExitCode {
    mcp_server::logging::init();
    match Cli::parse().command.unwrap_or(Command::Serve) {
        Command::Serve => serve(),
        Command::Migrate(cmd) => cli::migrate(cmd),
        Command::Config => cli::config(),
        Command::Healthcheck { url } => cli::healthcheck(url),
    }
}

fn serve() -> ExitCode {
    let rocket = match mcp_server::served() {
        Ok(rocket) => rocket,
        Err(e) => {
            log::error!("server did not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rocket::execute(rocket.launch()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            // Fairing failures were logged with their cause where they happened.
            log::error!("server did not start: {e}");
            ExitCode::FAILURE
        }
    }
}
