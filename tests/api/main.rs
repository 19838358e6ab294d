//! One integration-test binary (it links once); each module is one concern.

mod cli;
mod compose;
mod health;
mod helpers;
mod mcp;
mod metrics;
mod migrations;
mod startup;
mod tools;
