use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;

use crate::schema::statistics_data;

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = statistics_data, check_for_backend(diesel::pg::Pg))]
pub struct Statistics {
    pub id: i64,
    pub series_name: String,
    pub window_start: Option<DateTime<Utc>>,
    pub window_end: Option<DateTime<Utc>>,
    pub count: i64,
    pub mean: Option<f64>,
    pub stddev: Option<f64>,
    pub min_value: Option<f64>,
    pub max_value: Option<f64>,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub computed_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = statistics_data, check_for_backend(diesel::pg::Pg))]
pub struct NewStatistics<'a> {
    pub series_name: &'a str,
    pub window_start: Option<DateTime<Utc>>,
    pub window_end: Option<DateTime<Utc>>,
    pub count: i64,
    pub mean: Option<f64>,
    pub stddev: Option<f64>,
    pub min_value: Option<f64>,
    pub max_value: Option<f64>,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}
