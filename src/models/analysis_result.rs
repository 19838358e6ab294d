use chrono::{DateTime, Utc};
use diesel::prelude::*;
use schemars::JsonSchema;
use serde::Serialize;

use crate::domain::{AnalysisKind, RunStatus};
use crate::schema::analysis_results;

#[derive(Debug, Clone, Queryable, Selectable, Serialize, JsonSchema)]
#[diesel(table_name = analysis_results, check_for_backend(diesel::pg::Pg))]
pub struct AnalysisResult {
    pub id: i64,
    pub analysis_type: AnalysisKind,
    pub series_name: String,
    pub parameters: serde_json::Value,
    pub result: Option<serde_json::Value>,
    pub status: RunStatus,
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<f64>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = analysis_results, check_for_backend(diesel::pg::Pg))]
pub struct NewAnalysisResult<'a> {
    pub analysis_type: AnalysisKind,
    pub series_name: &'a str,
    pub parameters: serde_json::Value,
    pub result: Option<serde_json::Value>,
    pub status: RunStatus,
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<f64>,
}
