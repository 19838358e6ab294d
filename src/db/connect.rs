//! Connecting at start-up: URL hygiene, creating a missing database, and
//! retrying a database that is still booting.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::{ConnectionError, PgConnection};
use log::{info, warn};
use url::Url;

use super::DbError;

/// `url` with `connect_timeout` (so an unreachable host fails in seconds, not
/// minutes) and `application_name` (so `pg_stat_activity` shows who we are),
/// unless the operator already set them.
pub fn connection_url(url: &str, connect_timeout: Duration) -> Result<String, DbError> {
    let mut parsed = parse(url)?;
    let has = |k: &str| parsed.query_pairs().any(|(key, _)| key == k);
    let (timeout, app) = (!has("connect_timeout"), !has("application_name"));
    {
        let mut query = parsed.query_pairs_mut();
        if timeout {
            query.append_pair(
                "connect_timeout",
                &connect_timeout.as_secs().max(1).to_string(),
            );
        }
        if app {
            query.append_pair("application_name", "mcp-server");
        }
    }
    Ok(parsed.into())
}

pub use crate::config::redact_url as redact;

fn parse(url: &str) -> Result<Url, DbError> {
    let parsed = Url::parse(url).map_err(|e| {
        DbError::Config(format!(
            "DATABASE_URL is not a URL ({e}); expected postgres://user[:password]@host[:port]/database"
        ))
    })?;
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return Err(DbError::Config(format!(
            "DATABASE_URL must start with postgres:// or postgresql://, got {}://",
            parsed.scheme()
        )));
    }
    Ok(parsed)
}

/// The database named in `url`.
pub fn database_name(url: &str) -> Result<String, DbError> {
    let parsed = parse(url)?;
    let name = parsed.path().trim_start_matches('/');
    if name.is_empty() {
        return Err(DbError::Config(
            "DATABASE_URL names no database (add /mcp_server at the end)".into(),
        ));
    }
    Ok(percent_decode(name))
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn is_missing_database(err: &ConnectionError) -> bool {
    matches!(err, ConnectionError::BadConnection(msg)
        if msg.contains("does not exist") && msg.contains("database"))
}

/// Creates the database named in `url` from the server's `postgres`
/// maintenance database, as `diesel setup` does. Losing a creation race to
/// another replica counts as success.
pub fn create_database(url: &str) -> Result<(), DbError> {
    let name = database_name(url)?;
    let mut admin_url = parse(url)?;
    admin_url.set_path("/postgres");
    let mut conn = PgConnection::establish(admin_url.as_str()).map_err(|e| {
        DbError::Connect(format!(
            "database {name:?} does not exist and the maintenance database `postgres` \
             to create it from is not reachable: {e}"
        ))
    })?;
    let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
    match diesel::sql_query(sql).execute(&mut conn) {
        Ok(_) => {
            info!("created database {name:?}");
            Ok(())
        }
        Err(diesel::result::Error::DatabaseError(kind, info))
            if matches!(kind, diesel::result::DatabaseErrorKind::UniqueViolation)
                || info.message().contains("already exists") =>
        {
            Ok(())
        }
        Err(e) => Err(DbError::Connect(format!(
            "could not create database {name:?}: {e} (create it by hand, or grant CREATEDB)"
        ))),
    }
}

/// One connection attempt; creates the database first if it is missing and
/// `create` is set.
pub fn connect(url: &str, create: bool) -> Result<PgConnection, DbError> {
    match PgConnection::establish(url) {
        Ok(conn) => Ok(conn),
        Err(e) if create && is_missing_database(&e) => {
            create_database(url)?;
            PgConnection::establish(url).map_err(|e| DbError::Connect(e.to_string()))
        }
        // libpq's messages span lines; errors here are one line.
        Err(e) => Err(DbError::Connect(
            e.to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        )),
    }
}

/// Connects, creating the database if needed, retrying with exponential
/// backoff (250 ms doubling to 5 s) until `patience` is spent.
/// Retries an unreachable database with backoff for `patience`; `knob`
/// names the setting that chose it, for the final message.
pub fn connect_with_retry(
    url: &str,
    patience: Duration,
    knob: &str,
) -> Result<PgConnection, DbError> {
    let started = Instant::now();
    let deadline = started + patience;
    let mut backoff = Duration::from_millis(250);
    let target = redact(url);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match connect(url, true) {
            Ok(conn) => {
                if attempt > 1 {
                    info!("connected to {target} after {attempt} attempts");
                }
                return Ok(conn);
            }
            // The last nap ends at the deadline, and one more attempt follows it.
            Err(DbError::Connect(msg)) if Instant::now() < deadline => {
                let nap = backoff.min(deadline.saturating_duration_since(Instant::now()));
                warn!(
                    "database {target} not reachable (attempt {attempt}): {msg}; retrying in {} ms",
                    nap.as_millis()
                );
                std::thread::sleep(nap);
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(DbError::Connect(msg)) => {
                return Err(DbError::Connect(format!(
                    "database {target} not reachable after {attempt} attempts over {:.1} s: {msg} \
                     (is PostgreSQL running? check DATABASE_URL; {knob} sets the wait)",
                    started.elapsed().as_secs_f64()
                )));
            }
            Err(other) => return Err(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_timeout_and_application_name_once() {
        let url = connection_url("postgres://u:p@h:5432/db", Duration::from_secs(3)).unwrap();
        assert_eq!(
            url,
            "postgres://u:p@h:5432/db?connect_timeout=3&application_name=mcp-server"
        );
        let kept =
            connection_url("postgres://h/db?connect_timeout=9", Duration::from_secs(3)).unwrap();
        assert_eq!(
            kept,
            "postgres://h/db?connect_timeout=9&application_name=mcp-server"
        );
    }

    #[test]
    fn redacts_password() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn database_name_and_bad_urls() {
        assert_eq!(
            database_name("postgres://h:1/my%20db?x=1").unwrap(),
            "my db"
        );
        assert!(database_name("postgres://h:1/").is_err());
        assert!(database_name("mysql://h/db").is_err());
        assert!(database_name("not a url").is_err());
    }
}
