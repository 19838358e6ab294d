//! `mcp-server import FILE`: a backfill in one command. CSV
//! (`series,time,value[,tags]`, or `time,value` with `--series`) or InfluxDB
//! line protocol, from a file (`.gz` inflated on the way) or stdin, streamed:
//! memory holds a batch or two, whatever the file's size.
//!
//! Each batch is one transaction of the same write path as the endpoints,
//! so a batch is all or nothing and a re-run replaces the same points with
//! themselves. A bad row stops the import, naming its line; the batches
//! before it stay written. On a terminal a progress bar shows bytes, points
//! per second and the time left; otherwise one summary line is printed.

use std::io::{IsTerminal, Read};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::Settings;
use crate::domain::{Series, SeriesPoints};
use crate::ingest::fold::Folder;
use crate::ingest::line_protocol::{self, Precision};
use crate::ingest::{ChunkSource, Ingest, IngestError, Limits, csv};
use crate::mcp::events::Events;

#[derive(Debug, Args)]
pub struct Import {
    /// The file; `-` reads standard input. A `.gz` file is inflated.
    pub file: String,
    /// By default from the extension: .csv is CSV, .lp, .line and .influx
    /// are line protocol.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// The series of a CSV of time,value rows.
    #[arg(long)]
    pub series: Option<String>,
    /// The unit of line-protocol timestamps: ns, us, ms or s.
    #[arg(long, default_value = "ns")]
    pub precision: String,
    /// Points per transaction.
    #[arg(long, default_value_t = 50_000)]
    pub batch: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Csv,
    /// InfluxDB line protocol.
    Lp,
}

/// Attempts of one batch while the database is away.
const ATTEMPTS: u32 = 5;

pub fn import(args: Import) -> ExitCode {
    super::run_async(run(args))
}

/// Chunks parsed on a thread of their own, so parsing and writing overlap.
type Parsed = tokio::sync::mpsc::Receiver<Result<Vec<SeriesPoints>, IngestError>>;

async fn run(args: Import) -> Result<(), String> {
    let settings = Settings::from_figment(&Settings::figment())?;
    let format = args.format.unwrap_or_else(|| guess(&args.file));
    let series = args
        .series
        .as_deref()
        .map(Series::parse)
        .transpose()
        .map_err(|e| e.to_string())?;
    if series.is_some() && format == Format::Lp {
        return Err("--series is for CSV files of time,value rows".into());
    }
    let precision = Precision::parse(Some(&args.precision)).map_err(|e| e.to_string())?;
    let (input, size) = open(&args.file)?;
    let bar = progress(size);
    let input = bar.wrap_read(input);
    let input: Box<dyn Read + Send> = if args.file.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(input))
    } else {
        Box::new(input)
    };

    let (db, cache) = super::open(&settings).await?;
    let folder = Folder::idle(
        db.clone(),
        Duration::from_secs(settings.rollup_fold_after_secs),
    );
    let ingest = Ingest::new(
        db,
        Arc::clone(&cache),
        Arc::clone(&folder),
        Limits::from_settings(&settings),
    );
    // Subscribers on the servers hear of it through Redis, as after a write there.
    let events = Events::start(cache);

    let mut parsed = parse(input, format, series, precision, args.batch);
    let started = Instant::now();
    let (mut points, mut names) = (0usize, std::collections::HashSet::new());
    while let Some(chunk) = parsed.recv().await {
        let chunk = chunk.map_err(|e| stopped(&e, points))?;
        let report = write(&ingest, chunk, &events)
            .await
            .map_err(|e| stopped(&e, points))?;
        points += report.written.written;
        names.extend(report.series().map(str::to_owned));
        bar.set_message(format!(
            "{points} points, {:.0} points/s",
            points as f64 / started.elapsed().as_secs_f64().max(1e-3)
        ));
    }
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    // Query-ready before the command ends (the servers' folds would get
    // to it within the hour otherwise), the last hours included.
    folder.finished();
    folder
        .fold(folder.limit(), true)
        .await
        .map_err(|e| format!("the points are written; folding their rollups failed: {e}"))?;
    folder
        .settle_labels()
        .await
        .map_err(|e| format!("the points are written; settling the label index failed: {e}"))?;
    println!(
        "imported {points} points into {} series from {} ({} bytes read) in {:.1} s: {:.0} points/s",
        names.len(),
        args.file,
        bar.position(),
        elapsed.as_secs_f64(),
        points as f64 / elapsed.as_secs_f64().max(1e-3),
    );
    Ok(())
}

fn guess(file: &str) -> Format {
    let name = file.strip_suffix(".gz").unwrap_or(file);
    match Path::new(name).extension().and_then(|e| e.to_str()) {
        Some("lp" | "line" | "influx") => Format::Lp,
        _ => Format::Csv,
    }
}

fn open(file: &str) -> Result<(Box<dyn Read + Send>, Option<u64>), String> {
    if file == "-" {
        return Ok((Box::new(std::io::stdin()), None));
    }
    let f = std::fs::File::open(file).map_err(|e| format!("{file}: {e}"))?;
    let size = f.metadata().ok().map(|m| m.len());
    Ok((
        Box::new(std::io::BufReader::with_capacity(1 << 20, f)),
        size,
    ))
}

/// A bar on a terminal (bytes, points per second, time left); hidden
/// otherwise, where only the summary line is printed.
fn progress(size: Option<u64>) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match size {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::no_length(),
    };
    let template = if size.is_some() {
        "{bar:30} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left) {msg}"
    } else {
        "{spinner} {bytes} ({bytes_per_sec}) {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn parse(
    input: Box<dyn Read + Send>,
    format: Format,
    series: Option<Series>,
    precision: Precision,
    batch: usize,
) -> Parsed {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    std::thread::spawn(move || {
        let chunks: ChunkSource = match format {
            Format::Csv => Box::new(csv::Chunks::new(input, series, batch)),
            Format::Lp => Box::new(line_protocol::Chunks::new(
                input,
                precision,
                u64::MAX,
                // Nothing reads its counts: they are the servers' /metrics.
                Default::default(),
            )),
        };
        for chunk in chunks {
            let failed = chunk.is_err();
            if tx.blocking_send(chunk).is_err() || failed {
                break;
            }
        }
    });
    rx
}

/// One batch, its own transaction, tried again while the database is away.
async fn write(
    ingest: &Ingest,
    chunk: Vec<SeriesPoints>,
    events: &Arc<Events>,
) -> Result<crate::ingest::Report, IngestError> {
    let mut attempt = 1;
    loop {
        match ingest.write(chunk.clone(), events).await {
            Err(IngestError::Unavailable(why)) if attempt < ATTEMPTS => {
                log::warn!("batch not written ({why}); trying again");
                tokio::time::sleep(Duration::from_secs(1 << attempt)).await;
                attempt += 1;
            }
            done => return done,
        }
    }
}

fn stopped(e: &IngestError, points: usize) -> String {
    format!(
        "import stopped: {e}. {points} points before it are written; fix the input and run it \
         again (points already written replace themselves)"
    )
}
