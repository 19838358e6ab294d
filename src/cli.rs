//! The command line: `serve` (default) and `migrate …` for containers that
//! have no Diesel CLI.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use diesel::PgConnection;

use crate::config::Settings;
use crate::db::migrations::{self, BASE, MIGRATIONS, MigrationInfo};
use crate::db::{DbError, connect};

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
    /// Manage the database schema.
    Migrate(Migrate),
    /// Print the configuration in effect, secrets redacted, as JSON.
    Config,
    /// Exit 0 when the local server's /health answers 200 (for HEALTHCHECK).
    Healthcheck {
        /// Defaults to http://127.0.0.1:$ROCKET_PORT/health.
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct Migrate {
    /// Overrides DATABASE_URL and Rocket.toml.
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    /// Keep retrying an unreachable database for this many seconds.
    #[arg(long, global = true, default_value_t = 0)]
    pub wait: u64,
    #[command(subcommand)]
    pub action: MigrateAction,
}

#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// Apply every pending migration (creates the database if missing).
    Run,
    /// Show the current version and every pending migration.
    Status,
    /// List every migration with when it was applied.
    History,
    /// Revert the last migration, or --steps N, --to VERSION, --all.
    Revert {
        #[arg(long, conflicts_with_all = ["to", "all"])]
        steps: Option<usize>,
        /// Revert everything newer than VERSION (VERSION stays applied).
        #[arg(long, conflicts_with = "all")]
        to: Option<String>,
        #[arg(long)]
        all: bool,
        /// Do not ask (required when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Revert the last migration and apply it again.
    Redo {
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Record VERSION as applied without running it (Alembic's `stamp`).
    MarkApplied {
        version: String,
        #[arg(long, short = 'y')]
        yes: bool,
    },
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
    let figment = Settings::figment();
    let rocket =
        rocket::Config::try_from(&figment).map_err(|e| format!("invalid configuration: {e}"));
    let shown = Settings::from_figment(&figment).and_then(|settings| Ok((settings, rocket?))).map(|(settings, rocket)| {
        let limit = |name: &str| rocket.limits.get(name).map(|l| l.as_u64());
        serde_json::json!({
            "profile": figment.profile().as_str().as_str(),
            "address": rocket.address.to_string(),
            "port": rocket.port,
            "limits": { "json": limit("json"), "bytes": limit("bytes"), "string": limit("string") },
            "settings": settings.redacted(),
        })
    });
    match shown {
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

pub fn migrate(cmd: Migrate) -> ExitCode {
    match run_migrate(cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn open(cmd: &Migrate, create: bool) -> Result<(PgConnection, Settings), Failure> {
    let mut settings = Settings::from_figment(&Settings::figment())
        .map_err(|message| Failure { code: 1, message })?;
    if let Some(url) = &cmd.database_url {
        settings.database_url = url.clone();
    }
    let url = connect::connection_url(&settings.database_url, settings.connect_timeout())?;
    let conn = if cmd.wait > 0 {
        connect::connect_with_retry(&url, Duration::from_secs(cmd.wait))?
    } else {
        connect::connect(&url, create).map_err(|e| Failure {
            code: 1,
            message: format!(
                "cannot connect to {}: {e}",
                connect::redact(&settings.database_url)
            ),
        })?
    };
    Ok((conn, settings))
}

fn run_migrate(cmd: Migrate) -> Result<(), Failure> {
    let create = matches!(cmd.action, MigrateAction::Run);
    let (mut conn, settings) = open(&cmd, create)?;
    let patience = settings.migration_lock_timeout();
    match cmd.action {
        MigrateAction::Run => {
            let ran = migrations::with_lock(&mut conn, patience, |c| {
                migrations::run_pending(c, &MIGRATIONS)
            })?;
            println!("applied {} migration(s)", ran.len());
        }
        MigrateAction::Status => {
            let current = migrations::applied(&mut conn)?.pop();
            let pending = migrations::pending(&mut conn, &MIGRATIONS)?;
            println!("current version: {}", current.as_deref().unwrap_or(BASE));
            if pending.is_empty() {
                println!("pending: none (up to date)");
            } else {
                println!("pending: {}", pending.len());
                for m in &pending {
                    println!("  {}", m.name);
                }
            }
        }
        MigrateAction::History => {
            for (version, name, run_on) in migrations::history(&mut conn, &MIGRATIONS)? {
                let when = run_on.unwrap_or_else(|| "pending".into());
                println!("{version}  {when:19}  {name}");
            }
        }
        MigrateAction::Revert {
            steps,
            to,
            all,
            yes,
        } => {
            let applied = migrations::applied(&mut conn)?;
            let count = match (steps, &to, all) {
                (_, _, true) => applied.len(),
                (_, Some(v), _) => {
                    if v != "0" && !applied.contains(v) {
                        return Err(Failure {
                            code: 1,
                            message: format!(
                                "version {v} is not applied; see `mcp-server migrate history`"
                            ),
                        });
                    }
                    applied.iter().filter(|a| a.as_str() > v.as_str()).count()
                }
                (Some(n), _, _) => n.min(applied.len()),
                (None, None, false) => applied.len().min(1),
            };
            revert(&mut conn, patience, count, yes)?;
        }
        MigrateAction::Redo { yes } => {
            let reverted = revert(&mut conn, patience, 1, yes)?;
            if !reverted.is_empty() {
                migrations::with_lock(&mut conn, patience, |c| {
                    migrations::run_pending(c, &MIGRATIONS)
                })?;
                println!("re-applied {}", reverted[0].name);
            }
        }
        MigrateAction::MarkApplied { version, yes } => {
            confirm(
                &format!("record migration {version} as applied without running it"),
                yes,
            )?;
            let new = migrations::with_lock(&mut conn, patience, |c| {
                migrations::mark_applied(c, &MIGRATIONS, &version)
            })?;
            println!(
                "{version} {}",
                if new {
                    "marked as applied"
                } else {
                    "was already applied"
                }
            );
        }
    }
    Ok(())
}

fn revert(
    conn: &mut PgConnection,
    patience: Duration,
    count: usize,
    yes: bool,
) -> Result<Vec<MigrationInfo>, Failure> {
    let applied = migrations::applied(conn)?;
    let victims: Vec<&String> = applied.iter().rev().take(count).collect();
    if victims.is_empty() {
        println!("nothing to revert");
        return Ok(Vec::new());
    }
    let list = victims
        .iter()
        .map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    confirm(
        &format!(
            "revert {} migration(s) ({list}); their tables and data are dropped",
            victims.len()
        ),
        yes,
    )?;
    let reverted = migrations::with_lock(conn, patience, |c| {
        migrations::revert_while(c, &MIGRATIONS, |_, done| done < count)
    })?;
    println!("reverted {} migration(s)", reverted.len());
    Ok(reverted)
}

/// Destructive commands say what they will do; without `--yes` they ask on a
/// terminal and refuse otherwise.
fn confirm(what: &str, yes: bool) -> Result<(), Failure> {
    if yes {
        eprintln!("about to {what}");
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Failure {
            code: 2,
            message: format!("refusing to {what} without --yes (stdin is not a terminal)"),
        });
    }
    eprint!("about to {what}. Continue? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer).map_err(|e| Failure {
        code: 1,
        message: e.to_string(),
    })?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Failure {
            code: 2,
            message: "aborted".into(),
        })
    }
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
