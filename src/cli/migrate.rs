//! `mcp-server migrate …`: the schema commands for production, where no
//! Diesel CLI is installed. Every command reports exactly what it applied or
//! reverted; destructive ones show their plan and need `--yes` without a
//! terminal.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use diesel::PgConnection;

use super::Failure;
use crate::config::Settings;
use crate::db::migrations::plan::{self, Step};
use crate::db::migrations::{self, BASE, MIGRATIONS, MigrationInfo, checksums, normalize_version};
use crate::db::{DbError, connect};

/// `migrate status` when the database has migrations this binary lacks.
pub const EXIT_AHEAD: u8 = 3;
/// `migrate status` when an applied migration's file changed.
pub const EXIT_EDITED: u8 = 4;

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
    /// Show the current version, pending migrations, a database ahead of this
    /// binary (exit 3) and edited migrations (exit 4).
    Status,
    /// List every migration with when it was applied.
    History,
    /// Revert the last migration, or --steps N, --to VERSION, --all.
    Revert {
        /// Revert this many migrations, newest first.
        #[arg(long, conflicts_with_all = ["to", "all"], value_name = "N")]
        steps: Option<usize>,
        /// Revert everything newer than VERSION (VERSION stays applied; 0 for all).
        #[arg(long, conflicts_with = "all", value_name = "VERSION")]
        to: Option<String>,
        /// Revert every migration.
        #[arg(long)]
        all: bool,
        /// Only show what would be dropped (tables, columns, row counts); change nothing.
        #[arg(long)]
        plan: bool,
        /// Do not ask (required when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Revert the last migration and apply it again (nothing else).
    Redo {
        /// Do not ask (required when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Record migrations as applied without running them (Alembic's `stamp`).
    MarkApplied {
        /// Versions in either spelling (20261125000001, 2026-11-25-000001), or `head`.
        #[arg(required_unless_present = "all")]
        versions: Vec<String>,
        /// Every migration of this binary (`stamp head`).
        #[arg(long)]
        all: bool,
        /// Allow leaving older migrations unapplied beneath a marked one.
        #[arg(long)]
        allow_gaps: bool,
        /// Do not ask (required when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Re-record the checksums of applied migrations whose files were edited
    /// on purpose (all edited ones, or the VERSIONS given).
    Repair {
        /// Versions in either spelling; none: every edited migration.
        versions: Vec<String>,
        /// Do not ask (required when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

pub fn migrate(cmd: Migrate) -> ExitCode {
    match run_migrate(cmd) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn failure(message: impl Into<String>) -> Failure {
    Failure {
        code: 1,
        message: message.into(),
    }
}

fn open(cmd: &Migrate, create: bool) -> Result<(PgConnection, Settings), Failure> {
    let mut settings = Settings::from_figment(&Settings::figment()).map_err(failure)?;
    if let Some(url) = &cmd.database_url {
        settings.database_url = url.clone();
    }
    let url = connect::connection_url(&settings.database_url, settings.connect_timeout())?;
    let conn = if cmd.wait > 0 {
        connect::connect_with_retry(&url, Duration::from_secs(cmd.wait), "--wait")?
    } else {
        connect::connect(&url, create).map_err(|e| {
            failure(format!(
                "cannot connect to {}: {e}",
                connect::redact(&settings.database_url)
            ))
        })?
    };
    Ok((conn, settings))
}

fn run_migrate(cmd: Migrate) -> Result<u8, Failure> {
    let create = matches!(cmd.action, MigrateAction::Run);
    let (mut conn, settings) = open(&cmd, create)?;
    let patience = settings.migration_lock_timeout();
    match cmd.action {
        MigrateAction::Run => {
            let ran = migrations::with_lock(&mut conn, patience, |c| {
                migrations::upgrade(c, &MIGRATIONS)
            })?;
            for m in &ran {
                println!("applied {}", m.name);
            }
            println!("applied {} migration(s)", ran.len());
        }
        MigrateAction::Status => return status(&mut conn),
        MigrateAction::History => history(&mut conn)?,
        MigrateAction::Revert {
            steps,
            to,
            all,
            plan,
            yes,
        } => {
            let state = migrations::state(&mut conn, &MIGRATIONS)?;
            let count = match (steps, &to, all) {
                (_, _, true) => state.applied.len(),
                (_, Some(v), _) => {
                    let v = normalize_version(v);
                    if v != "0" && !state.applied.contains(&v) {
                        return Err(failure(format!(
                            "version {v} is not applied; see `mcp-server migrate history`"
                        )));
                    }
                    state.applied.iter().filter(|a| **a > v).count()
                }
                (Some(n), _, _) => n.min(state.applied.len()),
                (None, None, false) => state.applied.len().min(1),
            };
            if let Some(refusal) = state.refuse_revert(count) {
                return Err(refusal.into());
            }
            let steps = plan::plan(&mut conn, &MIGRATIONS, count)?;
            if plan {
                print!("{}", describe(&steps));
                return Ok(0);
            }
            revert(&mut conn, patience, &steps, yes)?;
        }
        MigrateAction::Redo { yes } => {
            let state = migrations::state(&mut conn, &MIGRATIONS)?;
            if let Some(refusal) = state.refuse_revert(1) {
                return Err(refusal.into());
            }
            let steps = plan::plan(&mut conn, &MIGRATIONS, 1)?;
            let reverted = revert(&mut conn, patience, &steps, yes)?;
            if let Some(last) = reverted.first() {
                let again = migrations::with_lock(&mut conn, patience, |c| {
                    migrations::reapply(c, &MIGRATIONS, &last.version)
                })?;
                println!("re-applied {}", again.name);
                let left = migrations::state(&mut conn, &MIGRATIONS)?.pending.len();
                if left > 0 {
                    println!(
                        "{left} other pending migration(s) left pending: `mcp-server migrate run` applies them"
                    );
                }
            }
        }
        MigrateAction::MarkApplied {
            versions,
            all,
            allow_gaps,
            yes,
        } => {
            let versions: Vec<String> = if all || versions.iter().any(|v| v == "head") {
                migrations::all(&MIGRATIONS)?
                    .into_iter()
                    .map(|m| m.version)
                    .collect()
            } else {
                versions
            };
            confirm(
                &format!(
                    "record {} as applied without running them",
                    versions.join(", ")
                ),
                yes,
            )?;
            let marked = migrations::with_lock(&mut conn, patience, |c| {
                migrations::mark_applied(c, &MIGRATIONS, &versions, allow_gaps)
            })?;
            for v in &marked {
                println!("marked {v} as applied");
            }
            println!(
                "marked {} migration(s); {} already applied",
                marked.len(),
                versions.len() - marked.len()
            );
        }
        MigrateAction::Repair { versions, yes } => {
            let edited = migrations::state(&mut conn, &MIGRATIONS)?.edited;
            let chosen: Vec<String> = if versions.is_empty() {
                edited.iter().map(|e| e.version.clone()).collect()
            } else {
                versions.iter().map(|v| normalize_version(v)).collect()
            };
            if chosen.is_empty() {
                println!(
                    "every applied migration matches its recorded checksum; nothing to repair"
                );
                return Ok(0);
            }
            confirm(
                &format!(
                    "record the current files of {} as what was applied",
                    chosen.join(", ")
                ),
                yes,
            )?;
            for v in &chosen {
                if migrations::with_lock(&mut conn, patience, |c| checksums::rerecord(c, v))? {
                    println!("re-recorded the checksum of {v}");
                } else {
                    return Err(failure(format!(
                        "{v} is not an applied migration of this binary; see `mcp-server migrate history`"
                    )));
                }
            }
        }
    }
    Ok(0)
}

fn status(conn: &mut PgConnection) -> Result<u8, Failure> {
    let state = migrations::state(conn, &MIGRATIONS)?;
    println!(
        "current version: {}",
        state.applied.last().map(String::as_str).unwrap_or(BASE)
    );
    if state.pending.is_empty() {
        println!("pending: none");
    } else {
        println!("pending: {}", state.pending.len());
        for m in &state.pending {
            println!("  {}", m.name);
        }
    }
    let mut code = 0;
    if !state.ahead.is_empty() {
        println!("database is ahead of this binary: applied by a newer version, unknown here:");
        for v in &state.ahead {
            println!("  {v}");
        }
        code = EXIT_AHEAD;
    }
    if !state.edited.is_empty() {
        println!("edited after they were applied (checksum differs):");
        for e in &state.edited {
            println!(
                "  {} ({})  recorded {}…  now {}…",
                e.version,
                e.name,
                &e.recorded[..12.min(e.recorded.len())],
                &e.now[..12.min(e.now.len())]
            );
        }
        println!("  restore the files, or `mcp-server migrate repair --yes` to accept them");
        code = EXIT_EDITED;
    }
    if let Some(DbError::Ahead(why)) = state.refusal().filter(|_| state.edited.is_empty()) {
        println!("`migrate run` would refuse: {why}");
    }
    if code == 0 && state.pending.is_empty() {
        println!("up to date; checksums verified");
    }
    Ok(code)
}

fn history(conn: &mut PgConnection) -> Result<(), Failure> {
    let rows = migrations::history(conn, &MIGRATIONS)?;
    let width = rows
        .iter()
        .map(|r| r.0.len())
        .max()
        .unwrap_or(0)
        .max("version".len());
    println!("{:width$}  {:19}  name", "version", "applied");
    for (version, name, run_on) in rows {
        let when = run_on.unwrap_or_else(|| "pending".into());
        println!("{version:width$}  {when:19}  {name}");
    }
    Ok(())
}

/// The plan as operators read it: each down migration in order, with the
/// tables and columns it drops and the rows they hold.
pub fn describe(steps: &[Step]) -> String {
    if steps.is_empty() {
        return "nothing to revert\n".into();
    }
    let mut out = format!(
        "revert plan ({} migration(s), newest first):\n",
        steps.len()
    );
    for step in steps {
        out.push_str(&format!("  {}\n", step.migration.name));
        if step.drops.is_empty() {
            out.push_str("    drops no table or column\n");
        }
        for d in &step.drops {
            match &d.column {
                None => out.push_str(&format!("    drops table {} ({} rows)\n", d.table, d.rows)),
                Some(c) => out.push_str(&format!(
                    "    drops column {}.{c} ({} rows with a value)\n",
                    d.table, d.rows
                )),
            }
        }
    }
    out
}

fn revert(
    conn: &mut PgConnection,
    patience: Duration,
    steps: &[Step],
    yes: bool,
) -> Result<Vec<MigrationInfo>, Failure> {
    if steps.is_empty() {
        println!("nothing to revert");
        return Ok(Vec::new());
    }
    eprint!("{}", describe(steps));
    confirm(
        &format!("revert {} migration(s) as planned above", steps.len()),
        yes,
    )?;
    let count = steps.len();
    let reverted = migrations::with_lock(conn, patience, |c| {
        migrations::revert_while(c, &MIGRATIONS, |_, done| done < count)
    })?;
    for m in &reverted {
        println!("reverted {}", m.name);
    }
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
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|e| failure(e.to_string()))?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Failure {
            code: 2,
            message: "aborted".into(),
        })
    }
}
