//! `mcp-server retention --plan`: what the retention settings would drop
//! now, per metric (points, bytes, time range, rollup rows), without
//! dropping anything;
//! `mcp-server retention` runs the worker's pass once, now. Exit 0 when
//! done, 1 on an error.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use clap::Args;

use crate::config::Settings;
use crate::ingest::retention;
use crate::metrics::Metrics;
use crate::store::retention::{Planned, Rules};

#[derive(Debug, Args)]
pub struct Retention {
    /// Print what would be dropped now, and drop nothing.
    #[arg(long)]
    pub plan: bool,
}

pub fn retention(args: Retention) -> ExitCode {
    super::run_async(run(args))
}

async fn run(args: Retention) -> Result<(), String> {
    let settings = Settings::from_figment(&Settings::figment())?;
    let rules = Rules::from_settings(&settings)?;
    if rules.keep_all() {
        println!(
            "retention: every raw point is kept (RETENTION_RAW_DAYS and retention_overrides are unset)"
        );
        return Ok(());
    }
    let (db, _cache) = super::open(&settings).await?;
    let now = Utc::now();
    if !args.plan {
        let report = retention::run(&db, &Arc::new(rules), now, &Arc::new(Metrics::new()))
            .await
            .map_err(|e| format!("retention stopped: {e}"))?;
        match report {
            None => println!("retention: another server is running it now; nothing done"),
            Some(r) => println!("retention: {r}"),
        }
        return Ok(());
    }
    let (due, planned) = db
        .run(move |conn| {
            let due = retention::due(conn, &rules, now)?;
            let planned = crate::store::retention::plan(conn, &due)?;
            Ok((due, planned))
        })
        .await
        .map_err(|e| format!("retention plan stopped: {e}"))?;
    let metric_of: BTreeMap<&str, &str> = due
        .iter()
        .map(|d| (d.series.as_str(), d.metric.as_str()))
        .collect();
    let mut by_metric: BTreeMap<&str, Total> = BTreeMap::new();
    for p in &planned {
        let metric = metric_of.get(p.series_name.as_str()).copied().unwrap_or("");
        by_metric.entry(metric).or_default().add(p);
    }
    let held = due.iter().filter(|d| d.held).count();
    println!(
        "retention plan at {} (nothing is dropped by --plan)",
        now.to_rfc3339()
    );
    println!(
        "{:<40} {:>8} {:>14} {:>12} {:>10} {:>8}  range of the points",
        "metric", "series", "points", "bytes", "hours", "days"
    );
    let mut all = Total::default();
    for (metric, t) in &by_metric {
        if t.series == 0 {
            continue;
        }
        println!("{metric:<40} {t}");
        all.merge(t);
    }
    println!("{:<40} {all}", "total");
    if held > 0 {
        println!("{held} series keep raw points past their retention until their hours are folded");
    }
    Ok(())
}

#[derive(Default)]
struct Total {
    series: usize,
    points: i64,
    bytes: i64,
    /// Hourly and daily rollup rows.
    hours: i64,
    days: i64,
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
}

impl Total {
    fn add(&mut self, p: &Planned) {
        if p.points == 0 && p.hours == 0 && p.days == 0 {
            return;
        }
        self.merge(&Total {
            series: 1,
            points: p.points,
            bytes: p.bytes,
            hours: p.hours,
            days: p.days,
            first: p.first,
            last: p.last,
        });
    }

    fn merge(&mut self, o: &Total) {
        self.series += o.series;
        self.points += o.points;
        self.bytes += o.bytes;
        self.hours += o.hours;
        self.days += o.days;
        self.first = self.first.into_iter().chain(o.first).min();
        self.last = self.last.into_iter().chain(o.last).max();
    }
}

impl std::fmt::Display for Total {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>8} {:>14} {:>12} {:>10} {:>8}  ",
            self.series, self.points, self.bytes, self.hours, self.days
        )?;
        match (self.first, self.last) {
            (Some(a), Some(b)) => write!(f, "{} .. {}", a.to_rfc3339(), b.to_rfc3339()),
            _ => f.write_str("-"),
        }
    }
}
