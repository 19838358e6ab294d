//! The Model Context Protocol over Streamable HTTP at `/mcp`, in both
//! revisions: 2025-11-25 (sessions) and 2026-07-28 (stateless).
//!
//! - `transport`: the HTTP rules both share, and the era rule;
//! - `legacy` and `modern`: the two lanes (lifecycle, checks, results);
//! - `call`: running a request and streaming what it sends;
//! - `dispatch`: the methods, over one set of tools (handed to
//!   [`Mcp::new`]), `prompts` and `resources`;
//! - `request_log`: the audit; `live`, `peer`, `session`, `state`: what a
//!   call or session keeps. Nothing here names a tool.

pub mod call;
pub mod dispatch;
pub mod events;
pub mod fixtures;
pub mod jsonrpc;
pub mod legacy;
pub mod live;
pub mod modern;
pub mod peer;
pub mod prompts;
pub mod protocol;
pub mod request_log;
pub mod resources;
pub mod security;
pub mod session;
pub mod state;
pub mod tasks;
pub mod transport;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::cache::Cache;
use crate::config::Settings;
use crate::db::Db;
use crate::metrics::Metrics;
use crate::tools::ToolRegistry;
use jsonrpc::RpcError;

/// Everything `/mcp` needs, in managed state.
pub struct Mcp {
    pub tools: ToolRegistry,
    pub prompts: prompts::PromptRegistry,
    pub resources: resources::ResourceRegistry,
    pub sessions: session::Sessions,
    pub live: Arc<live::Live>,
    pub events: Arc<events::Events>,
    pub tasks: Arc<tasks::Tasks>,
    /// Open `subscriptions/listen` streams, against [`MAX_LISTENERS`].
    pub listeners: Arc<std::sync::atomic::AtomicUsize>,
    pub log: request_log::RequestLog,
    pub guard: security::Guard,
    pub sealer: state::Sealer,
    pub bodies: BodyBudget,
    pub page_size: usize,
    pub db: Db,
    pub cache: Arc<Cache>,
    pub metrics: Arc<Metrics>,
}

pub const PAGE_SIZE: usize = 50;
/// `subscriptions/listen` streams one replica holds open at most.
pub const MAX_LISTENERS: usize = 1000;

/// The bytes of request bodies in flight, against a budget
/// (`MCP_BODY_BUDGET_MIB`): a parsed JSON body costs several times its size,
/// so without a bound a few large bodies at once can take all the memory.
pub struct BodyBudget {
    permits: Arc<rocket::tokio::sync::Semaphore>,
    total_kib: u32,
}

/// A body's share of the budget, returned when dropped.
pub struct BodyReservation(rocket::tokio::sync::OwnedSemaphorePermit);

/// Bodies at least this large hand their memory back to the system when
/// done: glibc keeps freed heap pages otherwise, and a burst of large
/// bodies left ~300 MiB resident for good (the fault suite measures it).
const TRIM_AFTER_KIB: u32 = 1024;

impl Drop for BodyReservation {
    fn drop(&mut self) {
        if self.0.num_permits() >= TRIM_AFTER_KIB as usize {
            trim_heap();
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_heap() {
    // SAFETY: malloc_trim only returns free memory to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_heap() {}

impl BodyBudget {
    pub fn new(mib: u32) -> BodyBudget {
        let total_kib = mib.max(1).saturating_mul(1024);
        BodyBudget {
            permits: Arc::new(rocket::tokio::sync::Semaphore::new(total_kib as usize)),
            total_kib,
        }
    }

    /// Reserves `bytes` now, or `None` when they do not fit. A body larger
    /// than the whole budget takes all of it (the body limit bounds it).
    pub fn try_reserve(&self, bytes: u64) -> Option<BodyReservation> {
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.total_kib);
        Arc::clone(&self.permits)
            .try_acquire_many_owned(kib)
            .ok()
            .map(BodyReservation)
    }
}

impl Mcp {
    /// Serves `tools`, builds the prompt registry and starts the
    /// request-log writer; call from within the runtime.
    pub fn new(
        settings: &Settings,
        mut tools: ToolRegistry,
        db: Db,
        cache: Arc<Cache>,
        metrics: Arc<Metrics>,
    ) -> Mcp {
        let mut prompts = prompts::PromptRegistry::default();
        prompts::register(&mut prompts);
        let mut resources = resources::ResourceRegistry::new(db.clone());
        if settings.mcp_conformance_fixtures {
            log::warn!(
                "MCP_CONFORMANCE_FIXTURES is on: test tools, resources and prompts are exposed"
            );
            fixtures::register(&mut tools, &mut prompts, &mut resources);
        }
        let live = Arc::new(live::Live::default());
        let events = events::Events::start(Arc::clone(&cache));
        // 2025 sessions hear of updated resources on their GET stream.
        let mut heard = events.subscribe();
        let fan_out = Arc::clone(&live);
        rocket::tokio::spawn(async move {
            use rocket::tokio::sync::broadcast::error::RecvError;
            loop {
                match heard.recv().await {
                    Ok(events::Event::ResourceUpdated { uri }) => fan_out.resource_updated(&uri),
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => break,
                }
            }
        });
        Mcp {
            tools,
            prompts,
            resources,
            events,
            tasks: tasks::Tasks::start(db.clone()),
            listeners: Arc::default(),
            sessions: session::Sessions::new(
                Arc::clone(&cache),
                Duration::from_secs(settings.mcp_session_ttl_secs.max(1)),
            ),
            live,
            log: request_log::RequestLog::start(db.clone()),
            guard: security::Guard::from_lists(
                &settings.mcp_allowed_hosts,
                &settings.mcp_allowed_origins,
                settings.mcp_auth_token.clone(),
            ),
            sealer: state::Sealer::new(settings.mcp_state_secret.as_deref()),
            bodies: BodyBudget::new(settings.mcp_body_budget_mib),
            page_size: PAGE_SIZE,
            db,
            cache,
            metrics,
        }
    }
}

/// Opaque cursors: the offset of the next page, prefixed so a cursor from
/// elsewhere is recognisably invalid.
pub fn paginate<'a>(
    items: &[&'a Value],
    cursor: Option<&str>,
    page: usize,
) -> Result<(Vec<&'a Value>, Option<String>), RpcError> {
    let start = match cursor {
        None => 0,
        Some(c) => c
            .strip_prefix("o:")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= items.len())
            .ok_or_else(|| RpcError::invalid_params(format!("invalid cursor {c:?}")))?,
    };
    let end = (start + page.max(1)).min(items.len());
    let next = (end < items.len()).then(|| format!("o:{end}"));
    Ok((items[start..end].to_vec(), next))
}

/// A list result: `{ <key>: items }`, plus `nextCursor` when there is more.
pub fn list_result<T: serde::Serialize>(key: &str, items: T, next: Option<String>) -> Value {
    let mut result = json!({ key: items });
    if let Some(next) = next {
        result["nextCursor"] = json!(next);
    }
    result
}

/// One page of a list held in memory, as a list result.
pub fn paged(
    key: &str,
    items: &[&Value],
    cursor: Option<&str>,
    page: usize,
) -> Result<Value, RpcError> {
    let (items, next) = paginate(items, cursor, page)?;
    Ok(list_result(key, items, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagination_walks_pages_and_rejects_bad_cursors() {
        let values: Vec<Value> = (0..5).map(|i| json!(i)).collect();
        let refs: Vec<&Value> = values.iter().collect();
        let (first, next) = paginate(&refs, None, 2).unwrap();
        assert_eq!(first, [&json!(0), &json!(1)]);
        let (second, next) = paginate(&refs, next.as_deref(), 2).unwrap();
        assert_eq!(second, [&json!(2), &json!(3)]);
        let (last, next) = paginate(&refs, next.as_deref(), 2).unwrap();
        assert_eq!((last, next), (vec![&json!(4)], None));
        for bad in ["x", "o:", "o:99", "o:-1"] {
            assert_eq!(
                paginate(&refs, Some(bad), 2).unwrap_err().code,
                jsonrpc::INVALID_PARAMS
            );
        }
    }
}
