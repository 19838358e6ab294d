//! SQL behind the tools and resources. Functions take a connection and run
//! on the blocking pool (through `Db::run`).

pub mod aggregates;
pub mod runs;
pub mod series;
