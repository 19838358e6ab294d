use chrono::{DateTime, Utc};
use diesel::prelude::*;
use schemars::JsonSchema;
use serde::Serialize;

use crate::schema::performance_metrics;

#[derive(Debug, Clone, Queryable, Selectable, Serialize, JsonSchema)]
#[diesel(table_name = performance_metrics, check_for_backend(diesel::pg::Pg))]
pub struct PerformanceMetric {
    pub id: i64,
    pub metric_name: String,
    pub value: f64,
    pub unit: Option<String>,
    pub labels: serde_json::Value,
    pub recorded_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = performance_metrics, check_for_backend(diesel::pg::Pg))]
pub struct NewPerformanceMetric {
    pub metric_name: String,
    pub value: f64,
    pub unit: Option<String>,
    pub labels: serde_json::Value,
    pub recorded_at: DateTime<Utc>,
}
