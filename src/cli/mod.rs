//! The command line: `serve` (default), `stdio`, `import`, `migrate …` for
//! containers that have no Diesel CLI, `config`, and `healthcheck`.

mod import;
mod migrate;
mod retention;
mod rollups;
mod stdio;

pub use import::{Import, import};
pub use migrate::{Migrate, MigrateAction, migrate};
pub use retention::{Retention, retention};
pub use rollups::{Rollups, rollups};
pub use stdio::stdio;

use crate::auth::Scopes;

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::config::Settings;
use crate::db::DbError;

#[derive(Debug, Parser)]
#[command(
    name = "mcp-server",
    version,
    about = "Time-series analytics MCP server"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending migrations, then serve HTTP (the default).
    Serve,
    /// Apply pending migrations, then serve one client on stdin and stdout
    /// (newline-delimited JSON-RPC; logs on stderr).
    Stdio {
        /// Only these scopes (comma-separated); by default every scope.
        #[arg(long, value_delimiter = ',', value_parser = scope_arg)]
        scopes: Vec<Scopes>,
    },
    /// Load points from a CSV or line-protocol file (or stdin), streamed,
    /// in transactions of one batch; re-running it is safe.
    Import(Import),
    /// Static bearer tokens for MCP_AUTH_TOKENS_FILE.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Manage the database schema.
    Migrate(Migrate),
    /// Drop the raw points past their retention now (`--plan`: only say
    /// what would go).
    Retention(Retention),
    /// Check the hourly and daily rollups against the raw points.
    Rollups {
        #[command(subcommand)]
        action: Rollups,
    },
    /// Print the configuration in effect, secrets redacted, as JSON.
    Config,
    /// Exit 0 when the local server's /health answers 200 (for HEALTHCHECK).
    Healthcheck {
        /// Defaults to http://127.0.0.1:$ROCKET_PORT/health.
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Print a fresh token on the first line and its MCP_AUTH_TOKENS_FILE
    /// line (its SHA-256, scopes and name: no secret) on the second.
    New {
        /// Comma-separated: timeseries:read, timeseries:write, analytics:run.
        #[arg(long, value_delimiter = ',', required = true, value_parser = scope_arg)]
        scopes: Vec<Scopes>,
        /// Who holds it; the request log records this name.
        #[arg(long)]
        name: String,
    },
}

fn scope_arg(text: &str) -> Result<Scopes, String> {
    Scopes::parse_name(text.trim())
}

/// The union of `--scopes`; every scope when none was given.
pub fn scopes_or_all(scopes: &[Scopes]) -> Scopes {
    if scopes.is_empty() {
        Scopes::all()
    } else {
        scopes.iter().copied().collect()
    }
}

/// `mcp-server token new`.
pub fn token(action: TokenAction) -> ExitCode {
    let TokenAction::New { scopes, name } = action;
    if name.is_empty() || name.contains(char::is_whitespace) || Scopes::named(&name).is_some() {
        eprintln!("error: --name must be one word that is not a scope, like grafana-agent");
        return ExitCode::from(2);
    }
    let (token, line) = crate::auth::tokens::new_token(scopes_or_all(&scopes), &name);
    println!("{token}");
    println!("{line}");
    eprintln!(
        "The first line is the token: give it to the client; it is not stored anywhere. \
         Append the second line to MCP_AUTH_TOKENS_FILE, then send the server SIGHUP \
         (`kill -HUP <pid>`, `docker compose kill -s HUP mcp-server`) or restart it."
    );
    ExitCode::SUCCESS
}

/// Runs a command's async work on a runtime of its own; its error is
/// logged and ends the process with 1. The process ends here (see
/// [`exit_now`]): these commands open the pool.
fn run_async(work: impl std::future::Future<Output = Result<(), String>>) -> ExitCode {
    run_coded(async { work.await.map(|()| 0) }, 1)
}

/// [`run_async`] for a command whose work says its exit code; its error
/// ends the process with `failed`.
fn run_coded(work: impl std::future::Future<Output = Result<u8, String>>, failed: u8) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            log::error!("no runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let done = runtime.block_on(work);
    // Background work (flushed by the command) stops here.
    runtime.shutdown_timeout(Duration::from_secs(2));
    match done {
        Ok(code) => exit_now(code),
        Err(message) => {
            log::error!("{message}");
            exit_now(failed)
        }
    }
}

/// Ends the process with `code` once stdout and stderr are flushed, without
/// running exit's handlers. r2d2 may still be opening a connection on a
/// thread of its own (a getter served first by a connection handed back
/// leaves the connect it asked for running), and libpq crashed in OpenSSL
/// when exit tore OpenSSL's state down under it: SIGSEGV after the work was
/// done, in about 1 in 10 runs of import and stdio. Nothing is left to do:
/// the runtime has stopped and every transaction has committed.
fn exit_now(code: u8) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: _exit ends the process; no Rust state is observed after it.
    unsafe { libc::_exit(i32::from(code)) }
}

/// The database, migrated as `serve` migrates it, and the cache.
async fn open(
    settings: &Settings,
) -> Result<(crate::db::Db, std::sync::Arc<crate::cache::Cache>), String> {
    let prepared = settings.clone();
    let (pool, _report) = tokio::task::spawn_blocking(move || crate::db::prepare(&prepared))
        .await
        .map_err(|e| format!("start-up aborted: database task failed: {e}"))?
        .map_err(|e| format!("start-up aborted: {e}"))?;
    let db = crate::db::Db::from_settings(pool, settings);
    let cache = crate::cache::Cache::from_settings(settings)
        .map_err(|e| format!("start-up aborted: {e}"))?;
    Ok((db, std::sync::Arc::new(cache)))
}

/// A failure with its one-line reason and exit code.
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl From<DbError> for Failure {
    fn from(e: DbError) -> Self {
        Failure {
            code: 1,
            message: e.to_string(),
        }
    }
}

/// What the server would run with here: profile, listener, body limits and
/// settings, after compiled defaults, `Rocket.toml` and the environment.
pub fn config() -> ExitCode {
    match shown_config() {
        Ok(json) => {
            println!("{json:#}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn shown_config() -> Result<serde_json::Value, String> {
    let figment = Settings::figment();
    let settings = Settings::from_figment(&figment)?;
    let rocket =
        rocket::Config::try_from(&figment).map_err(|e| format!("invalid configuration: {e}"))?;
    let limit = |name: &str| rocket.limits.get(name).map(|l| l.as_u64());
    Ok(serde_json::json!({
        "profile": figment.profile().as_str().as_str(),
        "address": rocket.address.to_string(),
        "port": rocket.port,
        "limits": {
            "json": limit("json"),
            "bytes": limit("bytes"),
            "string": limit("string"),
            "ingest": limit("ingest"),
        },
        "settings": settings.redacted(),
    }))
}

/// A dependency-free HTTP GET for the container HEALTHCHECK (the runtime
/// image has no curl).
pub fn healthcheck(url: Option<String>) -> ExitCode {
    let port = std::env::var("ROCKET_PORT").unwrap_or_else(|_| "8000".into());
    let url = url.unwrap_or_else(|| format!("http://127.0.0.1:{port}/health"));
    match probe(&url) {
        Ok(200) => ExitCode::SUCCESS,
        Ok(code) => {
            eprintln!("{url} answered {code}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{url}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn probe(url: &str) -> Result<u16, String> {
    use std::io::Read;
    use std::net::{TcpStream, ToSocketAddrs};
    let parsed = url::Url::parse(url).map_err(|e| e.to_string())?;
    let host = parsed.host_str().ok_or("URL has no host")?;
    let port = parsed.port_or_known_default().unwrap_or(80);
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("host did not resolve")?;
    let timeout = Duration::from_secs(5);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {} HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n",
        parsed.path()
    )
    .map_err(|e| e.to_string())?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head).map_err(|e| e.to_string())?;
    let line = String::from_utf8_lossy(&head[..n]);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP response: {line:?}"))
}
