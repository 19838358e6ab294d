use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;

use crate::schema::timeseries_data;

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = timeseries_data, check_for_backend(diesel::pg::Pg))]
pub struct Point {
    pub series_name: String,
    pub time: DateTime<Utc>,
    pub value: f64,
    pub tags: serde_json::Value,
    pub ingested_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = timeseries_data, check_for_backend(diesel::pg::Pg))]
pub struct NewPoint<'a> {
    pub series_name: &'a str,
    pub time: DateTime<Utc>,
    pub value: f64,
    pub tags: &'a serde_json::Value,
}
