//! The analytics tools: one module per family, one named `async fn` per
//! tool taking its typed arguments and returning its typed result. Tools
//! reach data only through `crate::store`, and the client only through
//! [`Client`]; they know nothing of JSON-RPC or HTTP.
//!
//! To add a tool: write its argument and result types and its `async fn`
//! in a module here, and add one line to [`all`].

pub mod aggregate;
pub mod analysis;
pub mod chart;
pub mod compare;
pub mod correlate;
pub mod discovery;
pub mod ingest;
pub mod lines;
pub mod models;
pub mod query;
pub mod records;
pub mod registry;
pub mod selection;
pub mod series;
pub mod server;

pub use crate::auth::Scopes;
pub use registry::{
    Annotations, Ask, CallError, Client, Output, Pending, Spec, TaskSupport, ToolContext,
    ToolError, ToolRegistry,
};

/// The tool set, in the order of `tools/list`: data in, data out,
/// analyses, models, records.
pub fn all() -> ToolRegistry {
    let mut reg = ToolRegistry::default();
    reg.typed(ingest::SPEC, ingest::ingest_timeseries);
    reg.typed(query::QUERY, query::query_timeseries);
    reg.typed(query::STATISTICS, query::compute_statistics);
    reg.typed(series::SPEC, series::list_series);
    reg.typed(discovery::LIST_METRICS, discovery::list_metrics);
    reg.typed(discovery::LIST_LABELS, discovery::list_labels);
    reg.typed(discovery::LABEL_VALUES, discovery::label_values);
    reg.typed(aggregate::SPEC, aggregate::aggregate_series);
    reg.typed(compare::SPEC, compare::compare_windows);
    reg.typed(correlate::SPEC, correlate::correlate_series);
    reg.typed_with_content(chart::SPEC, chart::plot_series);
    reg.typed(analysis::ANOMALIES, analysis::detect_anomalies);
    reg.typed(analysis::TREND, analysis::analyze_trend);
    reg.typed(models::TRAIN, models::train_model);
    reg.typed(models::FORECAST, models::forecast);
    reg.typed(records::GET_ANALYSIS, records::get_analysis);
    reg.typed(records::LIST_ANALYSES, records::list_analyses);
    reg.typed(records::LIST_MODELS, records::list_models);
    reg.typed(server::SPEC, server::server_metrics);
    // What can run long on a large series may run as an MCP task.
    for long in [
        models::TRAIN.name,
        analysis::ANOMALIES.name,
        analysis::TREND.name,
        query::STATISTICS.name,
    ] {
        reg.run_as_task(long, TaskSupport::Optional);
    }
    reg
}

/// Numbers for the human-readable text: at most 6 decimals, `-` for none.
pub fn fmt_num(v: Option<f64>) -> String {
    v.map(|x| {
        format!("{x:.6}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    })
    .unwrap_or_else(|| "-".into())
}
