//! One module per table: the row as read (`Queryable`) and as written
//! (`Insertable`), checked against `schema.rs` at compile time.

pub mod analysis_result;
pub mod mcp_request_log;
pub mod mcp_task;
pub mod metric_metadata;
pub mod model_training_log;
pub mod performance_metric;
pub mod statistics;
pub mod timeseries;

pub use analysis_result::{AnalysisResult, NewAnalysisResult};
pub use mcp_request_log::{McpRequestLog, NewMcpRequestLog};
pub use mcp_task::{McpTask, NewMcpTask};
pub use metric_metadata::MetricMetadata;
pub use model_training_log::{ModelTrainingLog, NewModelTrainingLog};
pub use performance_metric::{NewPerformanceMetric, PerformanceMetric};
pub use statistics::{NewStatistics, Statistics};
pub use timeseries::{NewPoint, Point};
