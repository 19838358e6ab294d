//! `server_metrics`: recent `performance_metrics` rows and live figures.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Annotations, Output, Scopes, Spec, ToolContext, ToolError};
use crate::domain::Bounded;
use crate::metrics::RpcCounts;
use crate::models::PerformanceMetric;
use crate::store::metrics;

pub const SPEC: Spec = Spec {
    name: "server_metrics",
    title: "Server metrics",
    description: "The server's own figures: live request counts, cache hit/miss counts and ratio, connection pool use, \
                  and recent stored snapshots (latency percentiles per tool) from performance_metrics",
    annotations: Annotations::READ_ONLY,
    scope: Scopes::READ,
};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricsArgs {
    /// Only this metric (e.g. latency_p95, cache_hit_ratio).
    pub metric_name: Option<String>,
    /// Newest first, at most this many stored rows.
    #[serde(default)]
    pub limit: Bounded<0, 1000, 50>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct MetricsResult {
    /// Figures of this process right now.
    pub live: Live,
    /// Stored snapshots (every METRICS_SNAPSHOT_SECS and at shutdown), newest first.
    pub recent: Vec<PerformanceMetric>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Live {
    pub uptime_seconds: u64,
    /// JSON-RPC requests by method, or `tool:<name>`.
    pub requests: BTreeMap<String, RpcCounts>,
    pub cache: CacheFigures,
    pub db_pool: PoolFigures,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CacheFigures {
    pub backend: &'static str,
    pub hits: u64,
    pub misses: u64,
    pub hit_ratio: Option<f64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct PoolFigures {
    pub connections: u32,
    pub idle: u32,
    pub max: u32,
}

pub async fn server_metrics(
    ctx: ToolContext,
    args: MetricsArgs,
) -> Result<Output<MetricsResult>, ToolError> {
    let MetricsArgs { metric_name, limit } = args;
    let recent = ctx
        .db
        .run(move |conn| metrics::recent(conn, metric_name.as_deref(), limit.as_i64()))
        .await?;
    let (hits, misses) = (ctx.cache.hits(), ctx.cache.misses());
    let state = ctx.db.pool().state();
    let live = Live {
        uptime_seconds: ctx.metrics.uptime().as_secs(),
        requests: ctx.metrics.rpc_counts(),
        cache: CacheFigures {
            backend: ctx.cache.backend().as_str(),
            hits,
            misses,
            hit_ratio: (hits + misses > 0).then(|| hits as f64 / (hits + misses) as f64),
        },
        db_pool: PoolFigures {
            connections: state.connections,
            idle: state.idle_connections,
            max: ctx.db.pool().max_size(),
        },
    };
    let text = format!(
        "uptime {} s; cache {} hits / {} misses ({}); pool {}/{} connections; {} stored rows",
        live.uptime_seconds,
        hits,
        misses,
        live.cache.backend,
        state.connections,
        live.db_pool.max,
        recent.len()
    );
    Ok(Output {
        value: MetricsResult { live, recent },
        text,
    })
}
