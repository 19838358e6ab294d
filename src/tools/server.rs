//! `server_metrics`: recent `performance_metrics` rows and live figures.

use diesel::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::mcp::tools::{Output, Spec, ToolContext, ToolError, ToolRegistry};
use crate::models::PerformanceMetric;
use crate::schema::performance_metrics;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricsArgs {
    /// Only this metric (e.g. latency_p95, cache_hit_ratio).
    metric_name: Option<String>,
    /// Newest first, at most this many stored rows (0-1000, default 50).
    #[schemars(range(min = 0, max = 1000))]
    limit: Option<u32>,
}

#[derive(Serialize, JsonSchema)]
pub struct MetricsResult {
    /// Figures of this process right now.
    live: Value,
    /// Stored snapshots (every METRICS_SNAPSHOT_SECS and at shutdown), newest first.
    recent: Vec<Value>,
}

pub fn register(reg: &mut ToolRegistry) {
    reg.typed(
        Spec {
            name: "server_metrics",
            title: "Server metrics",
            description: "The server's own figures: live request counts, cache hit/miss counts and ratio, connection pool use, \
                          and recent stored snapshots (latency percentiles per tool) from performance_metrics",
            annotations: json!({ "readOnlyHint": true, "openWorldHint": false }),
        },
        |ctx: ToolContext, args: MetricsArgs| async move {
            let limit = args.limit.unwrap_or(50);
            if limit > 1000 {
                return Err(ToolError(format!("limit must be at most 1000, got {limit}")));
            }
            let name = args.metric_name;
            let rows = ctx
                .db
                .run(move |conn| {
                    let mut q = performance_metrics::table.select(PerformanceMetric::as_select()).into_boxed();
                    if let Some(n) = name {
                        q = q.filter(performance_metrics::metric_name.eq(n));
                    }
                    Ok(q.order(performance_metrics::id.desc()).limit(i64::from(limit)).load(conn)?)
                })
                .await?;
            let (hits, misses) = (ctx.cache.hits(), ctx.cache.misses());
            let state = ctx.db.pool().state();
            let live = json!({
                "uptime_seconds": ctx.metrics.uptime().as_secs(),
                "requests": ctx.metrics.rpc_counts(),
                "cache": {
                    "backend": ctx.cache.backend_name(),
                    "hits": hits,
                    "misses": misses,
                    "hit_ratio": if hits + misses > 0 { Some(hits as f64 / (hits + misses) as f64) } else { None },
                },
                "db_pool": { "connections": state.connections, "idle": state.idle_connections, "max": ctx.db.pool().max_size() },
            });
            let text = format!(
                "uptime {} s; cache {} hits / {} misses ({}); pool {}/{} connections; {} stored rows",
                ctx.metrics.uptime().as_secs(),
                hits,
                misses,
                ctx.cache.backend_name(),
                state.connections,
                ctx.db.pool().max_size(),
                rows.len()
            );
            let recent = rows.into_iter().map(serde_json::to_value).collect::<Result<_, _>>()?;
            Ok(Output { value: MetricsResult { live, recent }, text })
        },
    );
}
