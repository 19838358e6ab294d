//! The protocol core's state: what every lane and transport shares.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;

use super::budget::BodyBudget;
use super::jsonrpc::{self, RpcError};
use super::lists::PAGE_SIZE;
use super::prompts::{self, PromptRegistry};
use super::request_log::{Entry, Logged, RequestLog};
use super::resources::ResourceRegistry;
use super::{events, live, security, session, state, tasks};
use crate::auth::Auth;
use crate::cache::Cache;
use crate::config::Settings;
use crate::db::Db;
use crate::ingest::Ingest;
use crate::metrics::Metrics;
use crate::models::NewMcpRequestLog;
use crate::tools::ToolRegistry;

/// What is served: tools, prompts and resources. Others (the conformance
/// fixtures) register into the same registries before [`Mcp::new`].
pub struct Catalog {
    pub tools: ToolRegistry,
    pub prompts: PromptRegistry,
    pub resources: ResourceRegistry,
}

impl Catalog {
    /// `tools`, with the product's prompts and resources.
    pub fn new(tools: ToolRegistry, db: Db) -> Catalog {
        let mut prompts = PromptRegistry::default();
        prompts::register(&mut prompts);
        Catalog {
            tools,
            prompts,
            resources: ResourceRegistry::new(db),
        }
    }
}

/// `subscriptions/listen` streams one replica holds open at most.
pub const MAX_LISTENERS: usize = 1000;

/// Everything the protocol needs, shared by the lanes and transports.
pub struct Mcp {
    pub tools: ToolRegistry,
    pub prompts: PromptRegistry,
    pub resources: ResourceRegistry,
    pub sessions: session::Sessions,
    pub live: Arc<live::Live>,
    pub events: Arc<events::Events>,
    pub tasks: Arc<tasks::Tasks>,
    /// Open `subscriptions/listen` streams, against [`MAX_LISTENERS`].
    pub listeners: Arc<std::sync::atomic::AtomicUsize>,
    pub log: RequestLog,
    pub guard: security::Guard,
    pub auth: Arc<Auth>,
    /// The write path of the ingest tool and of the collectors' endpoints.
    pub ingest: Arc<Ingest>,
    pub sealer: state::Sealer,
    pub bodies: BodyBudget,
    pub page_size: usize,
    /// Raw samples a PromQL query may read (`QUERY_MAX_SAMPLES`).
    pub query_max_samples: i64,
    pub db: Db,
    pub cache: Arc<Cache>,
    pub metrics: Arc<Metrics>,
}

impl Mcp {
    /// Serves `tools`, builds the prompt registry and starts the
    /// request-log writer; call from within the runtime.
    pub fn new(
        settings: &Settings,
        auth: Auth,
        catalog: Catalog,
        db: Db,
        cache: Arc<Cache>,
        metrics: Arc<Metrics>,
    ) -> Mcp {
        let ingest = Ingest::start(db.clone(), Arc::clone(&cache), settings);
        // Checked when the settings were read.
        if let Ok(rules) = crate::store::retention::Rules::from_settings(settings) {
            crate::ingest::retention::start(
                db.clone(),
                rules,
                Duration::from_secs(settings.retention_interval_secs),
                Arc::clone(&metrics),
            );
        }
        let Catalog {
            tools,
            prompts,
            resources,
        } = catalog;
        let live = Arc::new(live::Live::default());
        let events = events::Events::start(Arc::clone(&cache));
        // 2025 sessions hear of updated resources on their GET stream.
        let mut heard = events.subscribe();
        let fan_out = Arc::clone(&live);
        rocket::tokio::spawn(async move {
            use rocket::tokio::sync::broadcast::error::RecvError;
            loop {
                match heard.recv().await {
                    Ok(event) => {
                        for uri in event.updated() {
                            fan_out.resource_updated(uri);
                        }
                    }
                    Err(RecvError::Lagged(_)) => {}
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
            log: RequestLog::start(db.clone()),
            guard: security::Guard::from_lists(
                &settings.mcp_allowed_hosts,
                &settings.mcp_allowed_origins,
            ),
            auth: {
                auth.start();
                Arc::new(auth)
            },
            ingest,
            sealer: state::Sealer::new(settings.mcp_state_secret.as_deref()),
            bodies: BodyBudget::new(settings.mcp_body_budget_mib),
            page_size: PAGE_SIZE,
            query_max_samples: i64::try_from(settings.query_max_samples).unwrap_or(i64::MAX),
            db,
            cache,
            metrics,
        }
    }

    /// Counts the request in the metrics and queues its row for
    /// `mcp_request_logs` (never waits).
    pub fn audit(&self, entry: Entry<'_>, outcome: &Result<Value, RpcError>) {
        let Entry {
            session,
            client_name,
            id,
            method,
            logged: Logged { tool_name, params },
            started,
            grant,
        } = entry;
        let (status, error_code, error_message) = match outcome {
            Ok(r) if r["isError"] == true => (
                "error",
                None,
                r["content"][0]["text"]
                    .as_str()
                    .map(|t| t.chars().take(1000).collect()),
            ),
            Ok(_) => ("ok", None, None),
            Err(e) => (
                "error",
                Some(e.code),
                Some(e.message.chars().take(1000).collect()),
            ),
        };
        let elapsed = started.elapsed();
        // Labels only from known names: input must not grow the metric set.
        let method_label = match outcome {
            Err(e) if e.code == jsonrpc::METHOD_NOT_FOUND => "unknown",
            _ => method,
        };
        let tool_label = tool_name
            .as_deref()
            .map(|t| if self.tools.contains(t) { t } else { "unknown" });
        self.metrics
            .rpc(method_label, tool_label, status == "ok", elapsed);
        self.log.record(NewMcpRequestLog {
            session_id: session,
            request_id: Some(id.to_string()),
            method: method.to_owned(),
            tool_name,
            params,
            status: status.to_owned(),
            error_code,
            error_message,
            duration_ms: elapsed.as_secs_f64() * 1e3,
            client_name,
            created_at: Utc::now(),
            auth_subject: grant.subject.clone(),
            auth_client_id: grant.client_id.clone(),
        });
    }
}
