//! Numerical code: pure functions, no I/O. Aggregates over whole series run
//! in PostgreSQL; what cannot (fitting forecasting models, aggregating
//! across series) lives here.

pub mod across;
pub mod correlate;
pub mod forecast;
pub mod linalg;
pub mod promql;

pub use forecast::{FittedModel, HoldoutMetrics, ModelKind, ModelParams, evaluate, fit};
