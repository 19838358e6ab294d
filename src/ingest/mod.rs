//! Data in: every way points arrive (the MCP tool, Prometheus remote write,
//! InfluxDB line protocol, `mcp-server import`) takes one path to the
//! store. A write is one transaction: all of it or nothing, the last value
//! winning on a repeated timestamp. After it commits, the series' cached
//! figures are invalidated, their subscribers are told, and the fold is
//! told where there is a tail to fold.
//!
//! The formats parse into [`Chunker`]s here, and know nothing of HTTP; the
//! routes and the command line feed them.

pub mod chunks;
pub mod csv;
pub mod fold;
pub mod identity;
pub mod line_protocol;
pub mod remote_write;
pub mod retention;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::PgConnection;
use diesel::connection::Connection;

use crate::cache::Cache;
use crate::config::Settings;
use crate::db::{Db, DbError};
use crate::domain::SeriesPoints;
use crate::domain::batch::NonFinite;
use crate::models::MetricMetadata;
use crate::store;
use crate::store::catalog::{self, Collision};
use crate::store::points::{self, Written};

pub use chunks::Chunker;

/// Changes subscribers hear of. The MCP layer implements it.
pub trait Notify: Send + Sync {
    /// These resources changed (one message for many).
    fn resources_updated(&self, uris: Vec<String>);
}

/// Bounds on what one write may bring.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Distinct series in one request.
    pub max_series: usize,
    /// Bytes a compressed body may inflate to.
    pub max_decoded: usize,
    /// A Prometheus sample of NaN or ±Inf.
    pub non_finite: NonFinite,
    /// `MCP_READ_ONLY`: nothing is written, whatever a token allows.
    pub read_only: bool,
}

impl Limits {
    pub fn from_settings(settings: &Settings) -> Limits {
        Limits {
            max_series: settings.ingest_max_series_per_request.max(1),
            max_decoded: usize::try_from(settings.ingest_max_decoded_mib.max(1))
                .unwrap_or(usize::MAX)
                .saturating_mul(1 << 20),
            non_finite: settings.ingest_non_finite,
            read_only: settings.mcp_read_only,
        }
    }
}

/// Why a write did not happen. Nothing was written in every case.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The data is wrong: sending it again will not help (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// More than the server takes at once (HTTP 413).
    #[error("{0}")]
    TooLarge(String),
    /// The database cannot take it now: retry (HTTP 503).
    #[error("the database cannot take writes right now ({0}); retry shortly")]
    Unavailable(String),
    /// This server is older than the database's schema (HTTP 503: a
    /// collector retries, and an upgraded replica takes it).
    #[error("{0}")]
    Fenced(String),
    /// Our fault: logged, and the sender may retry (HTTP 500).
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<DbError> for IngestError {
    fn from(e: DbError) -> Self {
        match e {
            e if e.is_transient() => IngestError::Unavailable(first_line(&e)),
            // Another replica, upgraded, takes the write: retry (503).
            DbError::Ahead(why) => IngestError::Fenced(why),
            DbError::Retained(why) => IngestError::Invalid(why),
            // float8 sums past 1.7e308 in a refreshed hour: the data's.
            DbError::Query(diesel::result::Error::DatabaseError(_, info))
                if info.message().starts_with("value out of range") =>
            {
                IngestError::Invalid(
                    "values too large: their sums pass the range of double precision".into(),
                )
            }
            other => IngestError::Internal(first_line(&other)),
        }
    }
}

impl From<Collision> for IngestError {
    fn from(c: Collision) -> Self {
        IngestError::Invalid(c.to_string())
    }
}

fn first_line(e: &impl std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_owned()
}

/// The error a write transaction ends with: rolled back either way.
enum Abort {
    Db(DbError),
    Ingest(IngestError),
}

impl From<diesel::result::Error> for Abort {
    fn from(e: diesel::result::Error) -> Self {
        Abort::Db(e.into())
    }
}

impl From<DbError> for Abort {
    fn from(e: DbError) -> Self {
        Abort::Db(e)
    }
}

impl From<IngestError> for Abort {
    fn from(e: IngestError) -> Self {
        Abort::Ingest(e)
    }
}

impl From<Abort> for IngestError {
    fn from(a: Abort) -> Self {
        match a {
            Abort::Db(e) => e.into(),
            Abort::Ingest(e) => e,
        }
    }
}

/// Samples a parser met, and those it dropped on purpose (staleness
/// markers, native histograms, NaN under `INGEST_NON_FINITE=skip`): shared
/// with the caller, which counts them in `/metrics` once the write ends.
/// Also the metric metadata a body carried, for the caller to keep.
#[derive(Debug, Default)]
pub struct Tally {
    samples: AtomicU64,
    skipped: AtomicU64,
    described: parking_lot::Mutex<BTreeMap<String, MetricMetadata>>,
}

/// Metric families one request may describe; the rest are dropped (a
/// Prometheus sends its families in requests of 500 by default).
const MAX_DESCRIBED: usize = 10_000;

impl Tally {
    /// A family's metadata; the last given for a family wins.
    pub fn describe(&self, metadata: MetricMetadata) {
        let mut described = self.described.lock();
        if described.len() < MAX_DESCRIBED || described.contains_key(&metadata.metric) {
            described.insert(metadata.metric.clone(), metadata);
        }
    }

    /// The metadata met, once.
    pub fn take_described(&self) -> Vec<MetricMetadata> {
        std::mem::take(&mut *self.described.lock())
            .into_values()
            .collect()
    }

    pub fn saw(&self, n: usize) {
        self.samples.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn skip(&self, n: usize) {
        self.skipped.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Samples seen, and of those skipped.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.samples.load(Ordering::Relaxed),
            self.skipped.load(Ordering::Relaxed),
        )
    }
}

/// What a committed write touched, per series: its first and last point
/// and the digest of its catalog row.
#[derive(Debug, Default)]
pub struct Report {
    pub written: Written,
    series: HashMap<String, Span>,
    /// Series whose catalog rows this write wrote, with their digests.
    registered: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Copy)]
struct Span {
    first: DateTime<Utc>,
    last: DateTime<Utc>,
}

impl Report {
    /// The series written, in no particular order.
    pub fn series(&self) -> impl Iterator<Item = &str> {
        self.series.keys().map(String::as_str)
    }

    fn note(&mut self, s: &SeriesPoints) {
        let (Some(first), Some(last)) = (s.points.first(), s.points.last()) else {
            return;
        };
        let span = self
            .series
            .entry(s.series.as_str().to_owned())
            .or_insert(Span {
                first: first.0,
                last: last.0,
            });
        span.first = span.first.min(first.0);
        span.last = span.last.max(last.0);
    }
}

/// Whether each hour of the series' points can be summarised in double
/// precision: its sum and its squared deviations stay finite.
fn summable(s: &SeriesPoints) -> bool {
    let hour = |p: &(DateTime<Utc>, f64)| p.0.timestamp().div_euclid(3600);
    s.points.chunk_by(|a, b| hour(a) == hour(b)).all(|h| {
        let sum: f64 = h.iter().map(|p| p.1).sum();
        let mean = sum / h.len() as f64;
        sum.is_finite()
            && h.iter()
                .map(|p| (p.1 - mean).powi(2))
                .sum::<f64>()
                .is_finite()
    })
}

/// A series' catalog row as it would be written (metric and tags).
fn digest(s: &SeriesPoints) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    s.metric.hash(&mut h);
    s.tags.hash(&mut h);
    h.finish()
}

/// Series whose catalog rows are known to be there as written: a write
/// skips registering them. Filled only after a commit.
const KNOWN: u64 = 200_000;

/// The write path every ingest shares.
pub struct Ingest {
    db: Db,
    cache: Arc<Cache>,
    pub folder: Arc<fold::Folder>,
    known: moka::sync::Cache<String, u64>,
    pub limits: Limits,
}

/// The chunks of a write, in order; an `Err` aborts it.
pub type ChunkSource = Box<dyn Iterator<Item = Result<Vec<SeriesPoints>, IngestError>> + Send>;

impl Ingest {
    /// Starts the background fold; call from within the runtime.
    pub fn start(db: Db, cache: Arc<Cache>, settings: &Settings) -> Arc<Ingest> {
        let folder = fold::Folder::start(
            db.clone(),
            Duration::from_secs(settings.rollup_fold_after_secs),
        );
        Arc::new(Ingest::new(
            db,
            cache,
            folder,
            Limits::from_settings(settings),
        ))
    }

    /// Without a background fold (the command line folds when it is done).
    pub fn new(db: Db, cache: Arc<Cache>, folder: Arc<fold::Folder>, limits: Limits) -> Ingest {
        Ingest {
            db,
            cache,
            folder,
            // Re-checked hourly, so a catalog row deleted by hand comes back.
            known: moka::sync::Cache::builder()
                .max_capacity(KNOWN)
                .time_to_live(Duration::from_secs(3600))
                .build(),
            limits,
        }
    }

    /// Writes one batch held in memory, in one transaction.
    pub async fn write(
        &self,
        batch: Vec<SeriesPoints>,
        notify: &dyn Notify,
    ) -> Result<Report, IngestError> {
        self.write_chunks(Box::new(std::iter::once(Ok(batch))), notify)
            .await
    }

    /// Writes every chunk `chunks` yields in one transaction: all of them,
    /// or none when one is an error or the database refuses one. Only two
    /// chunks are held at a time, so memory does not follow the input.
    pub async fn write_chunks(
        &self,
        mut chunks: ChunkSource,
        notify: &dyn Notify,
    ) -> Result<Report, IngestError> {
        let max_series = self.limits.max_series;
        let known = self.known.clone();
        let report = self
            .db
            .run(move |conn| {
                let report =
                    conn.transaction(|conn| write_all(conn, &mut chunks, &known, max_series));
                Ok(report)
            })
            .await
            .map_err(IngestError::from)?
            .map_err(|a: Abort| IngestError::from(a))?;
        self.committed(&report, notify).await;
        Ok(report)
    }

    /// Keeps what collectors say their metrics are (a request of its own,
    /// after the points: metadata describes families, not these samples).
    pub async fn describe(&self, metadata: Vec<MetricMetadata>) -> Result<(), IngestError> {
        if metadata.is_empty() {
            return Ok(());
        }
        self.db
            .run(move |conn| store::metadata::upsert(conn, &metadata))
            .await
            .map_err(IngestError::from)?;
        Ok(())
    }

    /// After a commit: cached figures of the series are stale, their
    /// resources changed, their tails may be folded, their catalog rows are
    /// known.
    async fn committed(&self, report: &Report, notify: &dyn Notify) {
        if report.series.is_empty() {
            return;
        }
        let names: Vec<&str> = report.series().collect();
        self.cache.invalidate(&names).await;
        // Each series is a resource, and so is its chart.
        for part in names.chunks(500) {
            notify.resources_updated(
                part.iter()
                    .flat_map(|n| {
                        [
                            format!("timeseries://{n}"),
                            format!("timeseries://{n}/chart.png"),
                        ]
                    })
                    .collect(),
            );
        }
        for (name, digest) in &report.registered {
            self.known.insert(name.clone(), *digest);
        }
        self.folder.written(
            report
                .series
                .iter()
                .map(|(name, span)| (name.as_str(), span.first, span.last)),
        );
    }
}

/// The transaction's work: locks, catalog rows for series not known, and
/// the points, chunk by chunk.
fn write_all(
    conn: &mut PgConnection,
    chunks: &mut ChunkSource,
    known: &moka::sync::Cache<String, u64>,
    max_series: usize,
) -> Result<Report, Abort> {
    let mut report = Report::default();
    let Some(first) = chunks.next() else {
        return Ok(report);
    };
    let first = first?;
    crate::db::migrations::fence(conn)?;
    // A second chunk means more series may follow than the first names:
    // then every stripe is locked up front, in order, so that no two
    // writers wait on each other.
    let second = chunks.next().transpose()?;
    let several = second.is_some();
    let names: Vec<&str> = first.iter().map(|s| s.series.as_str()).collect();
    let mut folded = Some(points::lock(conn, &names, several)?);
    // Series met in earlier chunks (a chunk names each of its series once).
    let mut seen: HashSet<String> = HashSet::new();
    for chunk in std::iter::once(Ok(first))
        .chain(second.map(Ok))
        .chain(chunks)
    {
        let chunk = chunk?;
        let fresh: Vec<&SeriesPoints> = chunk
            .iter()
            .filter(|s| !seen.contains(s.series.as_str()))
            .collect();
        if seen.len() + fresh.len() > max_series {
            return Err(IngestError::TooLarge(format!(
                "more than {max_series} distinct series in one request \
                 (INGEST_MAX_SERIES_PER_REQUEST); send them in smaller requests"
            ))
            .into());
        }
        if let Some(s) = chunk.iter().find(|s| !summable(s)) {
            return Err(IngestError::Invalid(format!(
                "values too large: the points of series {} within one hour sum past the range \
                 of double precision, so the hour cannot be summarised",
                s.series
            ))
            .into());
        }
        let (unknown, digests): (Vec<&SeriesPoints>, Vec<u64>) = fresh
            .iter()
            .map(|&s| (s, digest(s)))
            .filter(|(s, d)| known.get(s.series.as_str()) != Some(*d))
            .unzip();
        catalog::register(conn, &unknown)??;
        report.registered.extend(
            unknown
                .iter()
                .zip(digests)
                .map(|(s, d)| (s.series.as_str().to_owned(), d)),
        );
        if several {
            seen.extend(fresh.iter().map(|s| s.series.as_str().to_owned()));
        }
        let batch: Vec<&SeriesPoints> = chunk.iter().filter(|s| !s.points.is_empty()).collect();
        // The first chunk's were read with the lock; a later chunk reads its own.
        let folded = match folded.take() {
            Some(f) => f,
            None => {
                let names: Vec<&str> = batch.iter().map(|s| s.series.as_str()).collect();
                catalog::folded(conn, &names)?
            }
        };
        report.written += points::write(conn, &batch, &folded)?;
        for s in &chunk {
            report.note(s);
        }
    }
    Ok(report)
}

impl From<Collision> for Abort {
    fn from(c: Collision) -> Self {
        Abort::Ingest(c.into())
    }
}
