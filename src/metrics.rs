//! The server's own measurements: Prometheus collectors for `/metrics`, and
//! per-interval latency samples that are written to `performance_metrics`.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use parking_lot::Mutex;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};
use rocket::fairing::{Fairing, Info, Kind};
use rocket::{Data, Request, Response};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::json;

use crate::cache::Cache;
use crate::db::Db;
use crate::models::NewPerformanceMetric;

/// Latency samples kept per key between snapshots (older ones are dropped).
const MAX_SAMPLES: usize = 10_000;

pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_seconds: HistogramVec,
    rpc_requests: IntCounterVec,
    rpc_seconds: HistogramVec,
    pool_connections: IntGauge,
    pool_idle: IntGauge,
    pool_max: IntGauge,
    cache_hits: IntCounter,
    cache_misses: IntCounter,
    log_written: IntCounter,
    log_dropped: IntCounter,
    log_failed: IntCounter,
    gate_client_aborts: IntCounter,
    retention_dropped: IntCounter,
    retention_dropped_rollups: IntCounterVec,
    auth_outcomes: IntCounterVec,
    jwks_fetches: IntCounterVec,
    ingest_samples: IntCounterVec,
    /// Durations (ms) per method or tool since the last snapshot.
    window: Mutex<HashMap<String, Vec<f64>>>,
    started: Instant,
}

/// What a background writer counts, read by `/metrics` (the request log
/// implements it; metrics need not know its internals).
pub trait LogCounts: Send + Sync {
    fn written(&self) -> u64;
    /// Not queued: the queue was full.
    fn dropped(&self) -> u64;
    /// Queued, but the database refused them.
    fn failed(&self) -> u64;
}

/// JSON-RPC requests of one method or tool since start.
#[derive(Debug, Clone, Copy, Default, Serialize, JsonSchema)]
pub struct RpcCounts {
    pub ok: u64,
    pub error: u64,
}

/// Same interpolation as PostgreSQL's percentile_cont.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let pos = p * last as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64))
}

macro_rules! register {
    ($registry:expr, $metric:expr) => {{
        let m = $metric.expect("metric definitions are static and valid");
        $registry
            .register(Box::new(m.clone()))
            .expect("metric names are unique");
        m
    }};
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    // A start-up invariant, not input: the definitions below are constants,
    // and a test builds them.
    #[allow(clippy::expect_used)]
    pub fn new() -> Metrics {
        let r = Registry::new_custom(Some("mcp".into()), None).expect("valid prefix");
        let buckets = vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        Metrics {
            http_requests: register!(
                r,
                IntCounterVec::new(
                    Opts::new("http_requests_total", "HTTP requests by route and status"),
                    &["route", "status"]
                )
            ),
            http_seconds: register!(
                r,
                HistogramVec::new(
                    HistogramOpts::new("http_request_duration_seconds", "HTTP latency by route")
                        .buckets(buckets.clone()),
                    &["route"]
                )
            ),
            rpc_requests: register!(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "rpc_requests_total",
                        "JSON-RPC requests by method, tool and status"
                    ),
                    &["method", "tool", "status"]
                )
            ),
            rpc_seconds: register!(
                r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "rpc_duration_seconds",
                        "JSON-RPC latency by method and tool"
                    )
                    .buckets(buckets),
                    &["method", "tool"]
                )
            ),
            pool_connections: register!(
                r,
                IntGauge::new("db_pool_connections", "Open PostgreSQL connections")
            ),
            pool_idle: register!(
                r,
                IntGauge::new("db_pool_idle_connections", "Idle PostgreSQL connections")
            ),
            pool_max: register!(
                r,
                IntGauge::new("db_pool_max_connections", "PostgreSQL pool size")
            ),
            cache_hits: register!(r, IntCounter::new("cache_hits_total", "Cache hits")),
            cache_misses: register!(r, IntCounter::new("cache_misses_total", "Cache misses")),
            log_written: register!(
                r,
                IntCounter::new("request_log_written_total", "mcp_request_logs rows written")
            ),
            log_dropped: register!(
                r,
                IntCounter::new(
                    "request_log_dropped_total",
                    "mcp_request_logs rows dropped (queue full, or kept past the bound while the database was away)"
                )
            ),
            log_failed: register!(
                r,
                IntCounter::new(
                    "request_log_failed_total",
                    "mcp_request_logs rows the database refused"
                )
            ),
            gate_client_aborts: register!(
                r,
                IntCounter::new(
                    "http_client_aborts_total",
                    "Requests whose client hung up before its body was sent"
                )
            ),
            retention_dropped: register!(
                r,
                IntCounter::new(
                    "retention_dropped_points_total",
                    "Raw points dropped by retention (their hours stay in the rollups)"
                )
            ),
            retention_dropped_rollups: register!(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "retention_dropped_rollups_total",
                        "Rollup rows dropped by retention, by level (1h, 1d)"
                    ),
                    &["level"]
                )
            ),
            auth_outcomes: register!(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "auth_requests_total",
                        "Authenticated requests by outcome (static, jwt, cached, or why refused)"
                    ),
                    &["outcome"]
                )
            ),
            jwks_fetches: register!(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "auth_jwks_fetches_total",
                        "Fetches of the issuer's metadata and JWKS by outcome"
                    ),
                    &["outcome"]
                )
            ),
            ingest_samples: register!(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "ingest_samples_total",
                        "Samples received by the write endpoints, by protocol and outcome \
                         (accepted; rejected with their request; skipped: staleness \
                         markers, native histograms, and NaN or ±Inf under \
                         INGEST_NON_FINITE=skip)"
                    ),
                    &["protocol", "outcome"]
                )
            ),
            registry: r,
            window: Mutex::new(HashMap::new()),
            started: Instant::now(),
        }
    }

    /// A client hung up mid-body: its doing, counted rather than logged.
    pub fn client_aborted(&self) {
        self.gate_client_aborts.inc();
    }

    pub fn retention_dropped(&self, points: u64) {
        self.retention_dropped.inc_by(points);
    }

    pub fn retention_dropped_rollups(&self, hours: u64, days: u64) {
        let level = |l: &str| self.retention_dropped_rollups.with_label_values(&[l]);
        level("1h").inc_by(hours);
        level("1d").inc_by(days);
    }

    /// How one request's credentials fared; `outcome` is one of a fixed set.
    pub fn auth(&self, outcome: &'static str) {
        self.auth_outcomes.with_label_values(&[outcome]).inc();
    }

    /// Samples of one write; `protocol` and `outcome` from fixed sets.
    pub fn ingest(&self, protocol: &'static str, outcome: &'static str, samples: u64) {
        if samples > 0 {
            self.ingest_samples
                .with_label_values(&[protocol, outcome])
                .inc_by(samples);
        }
    }

    /// A fetch of the issuer's metadata or keys.
    pub fn jwks_fetch(&self, ok: bool) {
        self.jwks_fetches
            .with_label_values(&[if ok { "ok" } else { "failed" }])
            .inc();
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// One JSON-RPC request: `tool` is set for `tools/call`.
    pub fn rpc(&self, method: &str, tool: Option<&str>, ok: bool, elapsed: Duration) {
        let tool = tool.unwrap_or("");
        self.rpc_requests
            .with_label_values(&[method, tool, if ok { "ok" } else { "error" }])
            .inc();
        self.rpc_seconds
            .with_label_values(&[method, tool])
            .observe(elapsed.as_secs_f64());
        let key = if tool.is_empty() {
            method.to_owned()
        } else {
            format!("tool:{tool}")
        };
        let mut window = self.window.lock();
        let samples = window.entry(key).or_default();
        if samples.len() < MAX_SAMPLES {
            samples.push(elapsed.as_secs_f64() * 1e3);
        }
    }

    /// Counts per method (or `tool:<name>`) since start.
    pub fn rpc_counts(&self) -> BTreeMap<String, RpcCounts> {
        let mut out: BTreeMap<String, RpcCounts> = BTreeMap::new();
        for family in self
            .registry
            .gather()
            .iter()
            .filter(|f| f.name() == "mcp_rpc_requests_total")
        {
            for m in family.get_metric() {
                let label = |n: &str| {
                    m.get_label()
                        .iter()
                        .find(|l| l.name() == n)
                        .map(|l| l.value().to_owned())
                        .unwrap_or_default()
                };
                let key = match label("tool").as_str() {
                    "" => label("method"),
                    tool => format!("tool:{tool}"),
                };
                let counts = out.entry(key).or_default();
                let n = m.get_counter().get_value() as u64;
                match label("status").as_str() {
                    "ok" => counts.ok += n,
                    _ => counts.error += n,
                }
            }
        }
        out
    }

    /// Refreshes the gauges that mirror other components' figures.
    pub fn observe(&self, db: &Db, cache: &Cache, log: Option<&dyn LogCounts>) {
        let state = db.pool().state();
        self.pool_connections.set(i64::from(state.connections));
        self.pool_idle.set(i64::from(state.idle_connections));
        self.pool_max.set(i64::from(db.pool().max_size()));
        let catch_up = |c: &IntCounter, now: u64| c.inc_by(now.saturating_sub(c.get()));
        catch_up(&self.cache_hits, cache.hits());
        catch_up(&self.cache_misses, cache.misses());
        if let Some(log) = log {
            catch_up(&self.log_written, log.written());
            catch_up(&self.log_dropped, log.dropped());
            catch_up(&self.log_failed, log.failed());
        }
    }

    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            log::error!("could not encode metrics: {e}");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// The rows of one `performance_metrics` snapshot; empties the latency window.
    pub fn snapshot(&self, db: &Db, cache: &Cache) -> Vec<NewPerformanceMetric> {
        let now = Utc::now();
        let row =
            |name: &str, value: f64, unit: &str, labels: serde_json::Value| NewPerformanceMetric {
                metric_name: name.to_owned(),
                value,
                unit: Some(unit.to_owned()),
                labels,
                recorded_at: now,
            };
        let mut rows = Vec::new();
        for (key, mut samples) in std::mem::take(&mut *self.window.lock()) {
            samples.sort_by(f64::total_cmp);
            let labels = json!({ "key": key });
            rows.push(row(
                "requests",
                samples.len() as f64,
                "count",
                labels.clone(),
            ));
            for (name, p) in [
                ("latency_p50", 0.5),
                ("latency_p95", 0.95),
                ("latency_p99", 0.99),
            ] {
                if let Some(v) = percentile(&samples, p) {
                    rows.push(row(name, v, "ms", labels.clone()));
                }
            }
        }
        let state = db.pool().state();
        rows.push(row(
            "db_pool_connections",
            f64::from(state.connections),
            "connections",
            json!({}),
        ));
        rows.push(row(
            "db_pool_idle",
            f64::from(state.idle_connections),
            "connections",
            json!({}),
        ));
        rows.push(row(
            "db_pool_max",
            f64::from(db.pool().max_size()),
            "connections",
            json!({}),
        ));
        let (hits, misses) = (cache.hits() as f64, cache.misses() as f64);
        let backend = json!({ "backend": cache.backend().as_str() });
        rows.push(row("cache_hits", hits, "count", backend.clone()));
        rows.push(row("cache_misses", misses, "count", backend.clone()));
        if hits + misses > 0.0 {
            rows.push(row(
                "cache_hit_ratio",
                hits / (hits + misses),
                "ratio",
                backend,
            ));
        }
        rows
    }
}

/// Writes one snapshot to `performance_metrics`.
pub async fn write_snapshot(metrics: &Metrics, db: &Db, cache: &Cache) {
    let rows = metrics.snapshot(db, cache);
    let n = rows.len();
    let result = db
        .run(move |conn| crate::store::metrics::insert(conn, &rows))
        .await;
    match result {
        Ok(_) => log::debug!("wrote {n} performance metrics"),
        Err(e) => log::warn!("could not write performance metrics: {e}"),
    }
}

/// Times every HTTP request by route.
pub struct HttpMetrics(pub Arc<Metrics>);

#[derive(Clone, Copy)]
struct Started(Instant);

#[rocket::async_trait]
impl Fairing for HttpMetrics {
    fn info(&self) -> Info {
        Info {
            name: "HTTP metrics",
            kind: Kind::Request | Kind::Response,
        }
    }

    async fn on_request(&self, req: &mut Request<'_>, _: &mut Data<'_>) {
        req.local_cache(|| Started(Instant::now()));
    }

    async fn on_response<'r>(&self, req: &'r Request<'_>, res: &mut Response<'r>) {
        let started = req.local_cache(|| Started(Instant::now())).0;
        let route = req
            .route()
            .map(|r| r.uri.origin.path().to_string())
            .unwrap_or_else(|| "unmatched".into());
        let status = res.status().code.to_string();
        self.0
            .http_requests
            .with_label_values(&[&route, &status])
            .inc();
        self.0
            .http_seconds
            .with_label_values(&[&route])
            .observe(started.elapsed().as_secs_f64());
    }
}
