//! The retention worker: soon after start, then every
//! `RETENTION_INTERVAL_SECS`, one replica (the holder of a session advisory
//! lock) drops the raw points past each metric's retention, never those of
//! hours not folded yet, and the hours and days past theirs
//! (`store::retention`). On TimescaleDB whole chunks of points go by
//! `drop_chunks`; the rest, and everything on plain PostgreSQL, by deletes
//! of [`BATCH`] points, each its own short transaction.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::PgConnection;

use crate::db::{Db, DbError};
use crate::metrics::Metrics;
use crate::store::retention::{self, Due, Rules};

/// Points per delete: about 0.2 s here, far within the statement timeout.
pub const BATCH: i64 = 200_000;
/// Catalogued series read at a time.
const PAGE: i64 = 10_000;
/// The first run waits for start-up's own work.
const FIRST_RUN: Duration = Duration::from_secs(30);

/// What one run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Series whose `raw_from` moved on.
    pub series: usize,
    pub points: u64,
    /// Hourly and daily rollup rows dropped.
    pub hours: u64,
    pub days: u64,
    /// Whole chunks dropped (TimescaleDB).
    pub chunks: i64,
    /// Series that the settings would take further, but whose hours are not
    /// folded yet.
    pub held: usize,
}

/// Starts the worker when some metric's raw points are not kept forever.
pub fn start(db: Db, rules: Rules, every: Duration, metrics: Arc<Metrics>) {
    if rules.keep_all() {
        return;
    }
    let rules = Arc::new(rules);
    tokio::spawn(async move {
        let mut wait = FIRST_RUN;
        loop {
            tokio::time::sleep(wait).await;
            wait = every.max(Duration::from_secs(1));
            match run(&db, &rules, Utc::now(), &metrics).await {
                Ok(Some(r)) if r.points > 0 || r.chunks > 0 || r.hours > 0 || r.days > 0 => {
                    log::info!("retention: {r}")
                }
                Ok(_) => {}
                // The next run goes on from where this one stopped.
                Err(e) => log::warn!("retention stopped, trying again later: {e}"),
            }
        }
    });
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "dropped {} raw points of {} series ({} whole chunks), {} hourly and {} daily rollup rows",
            self.points, self.series, self.chunks, self.hours, self.days
        )?;
        match self.held {
            0 => Ok(()),
            n => write!(f, "; {n} series held back until their hours are folded"),
        }
    }
}

/// One run at `now`; `None` when another replica holds the retention lock.
pub async fn run(
    db: &Db,
    rules: &Arc<Rules>,
    now: DateTime<Utc>,
    metrics: &Arc<Metrics>,
) -> Result<Option<Report>, DbError> {
    let (rules, metrics) = (Arc::clone(rules), Arc::clone(metrics));
    db.run(move |conn| {
        if !retention::try_lock(conn)? {
            return Ok(None);
        }
        let done = enforce(conn, &rules, now, &metrics);
        let unlocked = retention::unlock(conn);
        let report = done?;
        unlocked?;
        Ok(Some(report))
    })
    .await
}

fn enforce(
    conn: &mut PgConnection,
    rules: &Rules,
    now: DateTime<Utc>,
    metrics: &Metrics,
) -> Result<Report, DbError> {
    let mut report = Report::default();
    let due = due(conn, rules, now)?;
    for page in due.chunks(PAGE as usize) {
        report.series += retention::mark(conn, page)?;
    }
    report.held = due.iter().filter(|d| d.held).count();
    let points;
    (report.chunks, points) = retention::drop_chunks(conn)?;
    report.points += points as u64;
    metrics.retention_dropped(points as u64);
    for d in &due {
        let mut from = None;
        loop {
            let n;
            (n, from) = retention::drop_batch(conn, &d.series, from, BATCH)?;
            report.points += n as u64;
            metrics.retention_dropped(n as u64);
            if (n as i64) < BATCH {
                break;
            }
        }
        if d.hours.is_some() || d.days.is_some() {
            let (hours, days) = retention::drop_rollups(conn, &d.series)?;
            (report.hours, report.days) = (report.hours + hours as u64, report.days + days as u64);
            metrics.retention_dropped_rollups(hours as u64, days as u64);
        }
    }
    Ok(report)
}

/// Every catalogued series with raw points to drop at `now`.
pub fn due(
    conn: &mut PgConnection,
    rules: &Rules,
    now: DateTime<Utc>,
) -> Result<Vec<Due>, DbError> {
    let mut due = Vec::new();
    let mut after = String::new();
    loop {
        let page = retention::catalog_page(conn, &after, PAGE)?;
        let Some(last) = page.last() else { break };
        after = last.series_name.clone();
        due.extend(retention::due(&page, rules, now));
    }
    Ok(due)
}
