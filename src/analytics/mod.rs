//! Numerical code: pure functions, no I/O. Aggregates over whole series run
//! in PostgreSQL; what cannot (fitting forecasting models) lives here.

pub mod forecast;
pub mod linalg;

pub use forecast::{FittedModel, HoldoutMetrics, ModelKind, ModelParams, evaluate, fit};
