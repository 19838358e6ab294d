//! `mcp-server rollups verify [--series S]… [--repair]`: every hour and day
//! that readers take from the rollups, checked against the raw points.
//! Exits 0 when all agree, 1 when some differ (each named on stdout), 2 on
//! an error; with `--repair` it rebuilds each series that differs from its
//! points and exits 0 once they agree.

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};

use crate::config::Settings;
use crate::db::Db;
use crate::store::verify::{self, Extent, STEP};

#[derive(Debug, Subcommand)]
pub enum Rollups {
    /// Compare every stored hour and day with the raw points.
    Verify(Verify),
}

#[derive(Debug, Args)]
pub struct Verify {
    /// Only this series (repeatable); by default every catalogued series.
    #[arg(long)]
    pub series: Vec<String>,
    /// Rebuild each series that differs from its points.
    #[arg(long)]
    pub repair: bool,
}

/// Differences printed per series; the rest are counted.
const SHOWN: usize = 20;
/// Series read from the catalog at a time.
const PAGE: i64 = 1_000;

pub fn rollups(command: Rollups) -> ExitCode {
    let Rollups::Verify(args) = command;
    super::run_coded(run(args), 2)
}

async fn run(args: Verify) -> Result<u8, String> {
    let settings = Settings::from_figment(&Settings::figment())?;
    let (db, _cache) = super::open(&settings).await?;
    // The task statement timeout: one step of a dense series reads a week.
    let db = db.watched().0;
    let (mut checked, mut differing, mut repaired) = (0usize, 0usize, 0usize);
    let mut after = String::new();
    let mut unknown: std::collections::BTreeSet<String> = args.series.iter().cloned().collect();
    loop {
        let (named, from) = (args.series.clone(), after.clone());
        let page = db
            .run(move |conn| verify::extents(conn, &named, &from, PAGE))
            .await
            .map_err(|e| format!("verify stopped: {e}"))?;
        let Some(last) = page.last() else { break };
        after = last.series_name.clone();
        for extent in page {
            checked += 1;
            unknown.remove(&extent.series_name);
            let found = differences(&db, &extent).await?;
            if found.is_empty() {
                continue;
            }
            differing += 1;
            for d in found.iter().take(SHOWN) {
                println!(
                    "{} {} {}: {}",
                    extent.series_name,
                    d.level,
                    d.bucket.to_rfc3339(),
                    d.what
                );
            }
            if found.len() > SHOWN {
                println!(
                    "{}: {} more hours and days differ",
                    extent.series_name,
                    found.len() - SHOWN
                );
            }
            if args.repair {
                let name = extent.series_name.clone();
                db.run(move |conn| verify::rebuild(conn, &name))
                    .await
                    .map_err(|e| format!("repair of {} stopped: {e}", extent.series_name))?;
                repaired += 1;
            }
        }
    }
    if !unknown.is_empty() {
        return Err(format!(
            "not in the catalog, so not checked: {}. Check the names with the list_series \
             tool (a series joins the catalog at its first write, by the server or by SQL)",
            unknown.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    let summary = format!("{checked} series checked, {differing} differ from their points");
    Ok(match (differing, args.repair) {
        (0, _) => {
            eprintln!("{summary}: every hour and day agrees");
            0
        }
        (_, true) => {
            eprintln!("{summary}; {repaired} rebuilt from their points");
            0
        }
        (_, false) => {
            eprintln!("{summary}; `mcp-server rollups verify --repair` rebuilds them");
            1
        }
    })
}

/// Every difference of one series, a [`STEP`] at a time from its first hour
/// to its `folded_to`.
async fn differences(db: &Db, extent: &Extent) -> Result<Vec<verify::Difference>, String> {
    let (Some(first), Some(end)) = (extent.first, extent.folded_to) else {
        return Ok(Vec::new());
    };
    // Days are whole only up to the day of folded_to.
    let days_end = day_floor(end);
    let mut found = Vec::new();
    let mut from = day_floor(first);
    while from < end {
        let to = (from + STEP).min(end);
        let days_to = to.min(days_end).max(from);
        let (name, kept) = (
            extent.series_name.clone(),
            (extent.raw_from, extent.hours_from),
        );
        found.extend(
            db.run(move |conn| verify::differences(conn, &name, kept, (from, to, days_to)))
                .await
                .map_err(|e| format!("verify of {} stopped: {e}", extent.series_name))?,
        );
        from = to;
    }
    Ok(found)
}

fn day_floor(t: DateTime<Utc>) -> DateTime<Utc> {
    crate::store::rollups::floor_to(t, crate::store::rollups::DAY)
}
