#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::ExitCode;

use clap::Parser;
use mcp_server::cli::{self, Cli, Command};

fn main() -> ExitCode {
    tune_allocator();
    mcp_server::logging::init();
    match Cli::parse().command.unwrap_or(Command::Serve) {
        Command::Serve => serve(),
        Command::Stdio { scopes } => cli::stdio(cli::scopes_or_all(&scopes)),
        Command::Import(args) => cli::import(args),
        Command::Token { action } => cli::token(action),
        Command::Migrate(cmd) => cli::migrate(cmd),
        Command::Rollups { action } => cli::rollups(action),
        Command::Retention(args) => cli::retention(args),
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

/// glibc raises its mmap threshold after each large free, so from then on
/// the buffers of a large ingest come from the heap, and the heap stays
/// resident. A fixed threshold (setting it turns that adjustment off) gives
/// large buffers back when freed: under 100,000-point ingests, peak RSS
/// 64 -> 40 MiB and resident afterwards 56 -> 23 MiB. An operator's
/// `MALLOC_MMAP_THRESHOLD_` wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: called before any other thread exists; only changes
        // where glibc places large allocations.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}
