//! Test fixtures, one concern per module: a fresh database per test
//! (`database`), the real application over it (`app`), the command line (`cli`), the MCP
//! conversation (`conversation`), and Redis that a test may stop or cut
//! off (`redis`).

mod app;
mod cli;
mod conversation;
mod database;
mod oauth;
mod redis;

pub use app::*;
pub use cli::*;
pub use conversation::*;
pub use database::*;
pub use oauth::*;
pub use redis::*;
