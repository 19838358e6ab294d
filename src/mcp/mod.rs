//! The Model Context Protocol in both revisions, 2025-11-25 (sessions) and
//! 2026-07-28 (stateless), as one core under two transports.
//!
//! Imports point down this list (`tests/api/layers.rs` checks it):
//! - transports: `http` (Streamable HTTP at `/mcp`), `stdio` (lines);
//! - `core`: a parsed message plus the transport's [`wire::Facts`] in, a
//!   [`wire::Answer`] out; the era rule picks the lane;
//! - lanes: `legacy` (2025 sessions) and `modern` (2026, stateless);
//! - `call`: running a request and collecting what it sends;
//! - `dispatch`: the methods, over the tools, `prompts` and `resources`;
//! - `server`: the shared state ([`server::Mcp`]);
//! - `peer`, `tasks`, `outcome`, `request_log`, `live`, `session`,
//!   `state`, `events`, `lists`, `budget`, `wire`, `protocol`, `jsonrpc`.
//!
//! Nothing here names a tool or a fixture.

pub mod budget;
pub mod call;
pub mod core;
pub mod dispatch;
pub mod events;
pub mod http;
pub mod jsonrpc;
pub mod legacy;
pub mod lists;
pub mod live;
pub mod modern;
pub mod outcome;
pub mod peer;
pub mod prompts;
pub mod protocol;
pub mod request_log;
pub mod resources;
pub mod security;
pub mod server;
pub mod session;
pub mod state;
pub mod stdio;
pub mod tasks;
pub mod wire;

pub use server::Mcp;
