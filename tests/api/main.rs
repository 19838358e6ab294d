//! One integration-test binary (it links once); each module is one concern.

mod cache_faults;
mod charts;
mod cli;
mod compose;
mod config;
mod handlers;
mod health;
mod helpers;
mod hostile;
mod hot_paths;
mod layers;
mod mcp;
mod metrics;
mod migrations;
mod modern;
mod oauth;
mod operator;
mod pool;
mod properties;
mod rollups;
mod startup;
mod stdio;
mod tasks;
mod timescale;
mod tools;
mod writes;
