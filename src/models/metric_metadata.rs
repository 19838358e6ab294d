use diesel::prelude::*;

use crate::domain::MetricKind;
use crate::schema::timeseries_metrics;

/// What a collector says a metric family is (Prometheus' metadata).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = timeseries_metrics, check_for_backend(diesel::pg::Pg))]
pub struct MetricMetadata {
    pub metric: String,
    pub kind: MetricKind,
    pub help: String,
    pub unit: String,
}
