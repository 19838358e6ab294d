//! `get_analysis`, `list_analyses`, `list_models`: read back stored runs.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Annotations, Output, Scopes, Spec, ToolContext, ToolError, fmt_num};
use crate::domain::{AnalysisKind, Bounded, Series};
use crate::models::{AnalysisResult, ModelTrainingLog};
use crate::store::runs;

pub const GET_ANALYSIS: Spec = Spec {
    name: "get_analysis",
    title: "Get an analysis",
    description: "One stored analysis run (trend, anomaly, forecast) with its parameters, result, status and error",
    annotations: Annotations::READ_ONLY,
    scope: Scopes::READ,
};

pub const LIST_ANALYSES: Spec = Spec {
    name: "list_analyses",
    title: "List analyses",
    description: "Stored analysis runs, newest first, optionally for one series or kind",
    annotations: Annotations::READ_ONLY,
    scope: Scopes::READ,
};

pub const LIST_MODELS: Spec = Spec {
    name: "list_models",
    title: "List models",
    description: "Training runs with their status, holdout metrics and fitted model, newest first",
    annotations: Annotations::READ_ONLY,
    scope: Scopes::READ,
};

type Limit = Bounded<1, 500, 50>;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetArgs {
    /// An analysis id returned by detect_anomalies, analyze_trend or forecast.
    pub id: i64,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListAnalysesArgs {
    /// Only this series.
    pub series: Option<Series>,
    /// Only this kind.
    pub analysis_type: Option<AnalysisKind>,
    /// Newest first, at most this many.
    #[serde(default)]
    pub limit: Limit,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListModelsArgs {
    /// Only this series.
    pub series: Option<Series>,
    /// Newest first, at most this many.
    #[serde(default)]
    pub limit: Limit,
}

/// Rows as stored, newest first.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Rows<T> {
    pub items: Vec<T>,
}

pub async fn get_analysis(
    ctx: ToolContext,
    args: GetArgs,
) -> Result<Output<Rows<AnalysisResult>>, ToolError> {
    let id = args.id;
    let row = ctx
        .db
        .run(move |conn| runs::get_analysis(conn, id))
        .await?
        .ok_or_else(|| ToolError::invalid(format!("no analysis {id}; see list_analyses")))?;
    let text = format!(
        "analysis {id}: {} of {} ({})",
        row.analysis_type, row.series_name, row.status
    );
    Ok(Output {
        value: Rows { items: vec![row] },
        text,
    })
}

pub async fn list_analyses(
    ctx: ToolContext,
    args: ListAnalysesArgs,
) -> Result<Output<Rows<AnalysisResult>>, ToolError> {
    let ListAnalysesArgs {
        series,
        analysis_type,
        limit,
    } = args;
    let items = ctx
        .db
        .run(move |conn| runs::list_analyses(conn, series.as_ref(), analysis_type, limit.as_i64()))
        .await?;
    let text = format!("{} analyses", items.len());
    Ok(Output {
        value: Rows { items },
        text,
    })
}

pub async fn list_models(
    ctx: ToolContext,
    args: ListModelsArgs,
) -> Result<Output<Rows<ModelTrainingLog>>, ToolError> {
    let ListModelsArgs { series, limit } = args;
    let items = ctx
        .db
        .run(move |conn| runs::list_models(conn, series.as_ref(), limit.as_i64()))
        .await?;
    let text = items
        .iter()
        .map(|m| {
            format!(
                "{} {} ({}, {}) MAE {}",
                m.id,
                m.model_name,
                m.model_type,
                m.status,
                fmt_num(m.mae)
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    Ok(Output {
        value: Rows { items },
        text,
    })
}
