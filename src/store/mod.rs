//! All SQL behind the tools, resources, health and metrics. Functions take
//! a connection and run on the blocking pool (through `Db::run`); they
//! depend only on `crate::db`, `crate::domain` and the models.

pub mod aggregates;
pub mod catalog;
pub mod health;
pub mod metadata;
pub mod metrics;
pub mod points;
pub mod request_log;
pub mod retention;
pub mod rollups;
pub mod runs;
pub mod series;
pub mod statistics;
pub mod tasks;
pub mod verify;
