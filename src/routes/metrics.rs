use std::sync::Arc;

use rocket::http::ContentType;
use rocket::{State, get};

use crate::mcp::Mcp;
use crate::metrics::Metrics;

/// Live figures in the Prometheus text format.
#[get("/metrics")]
pub fn metrics(metrics: &State<Arc<Metrics>>, mcp: &State<Arc<Mcp>>) -> (ContentType, String) {
    metrics.observe(&mcp.db, &mcp.cache, Some(mcp.log.counters.as_ref()));
    let prometheus = ContentType::new("text", "plain").with_params(("version", "0.0.4"));
    (prometheus, metrics.render())
}
