use chrono::{DateTime, Utc};
use diesel::prelude::*;
use schemars::JsonSchema;
use serde::Serialize;

use crate::domain::{ModelKind, RunStatus};
use crate::schema::model_training_logs;

#[derive(Debug, Clone, Queryable, Selectable, Serialize, JsonSchema)]
#[diesel(table_name = model_training_logs, check_for_backend(diesel::pg::Pg))]
pub struct ModelTrainingLog {
    pub id: i64,
    pub model_name: String,
    pub model_type: ModelKind,
    pub series_name: String,
    pub parameters: serde_json::Value,
    pub model: Option<serde_json::Value>,
    pub training_points: Option<i32>,
    pub holdout_points: Option<i32>,
    pub mae: Option<f64>,
    pub rmse: Option<f64>,
    pub mape: Option<f64>,
    pub status: RunStatus,
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<f64>,
}

/// A run is inserted as `running` and then completed or failed.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = model_training_logs, check_for_backend(diesel::pg::Pg))]
pub struct NewModelTrainingLog<'a> {
    pub model_name: &'a str,
    pub model_type: ModelKind,
    pub series_name: &'a str,
    pub parameters: serde_json::Value,
    pub status: RunStatus,
}
