//! RFC 9728 protected-resource metadata, at the path-suffixed URI of `/mcp`
//! and at the root, as the MCP authorization specification has clients try
//! them. 404 when no issuer is configured.

use std::sync::Arc;

use rocket::serde::json::{Json, Value};
use rocket::{State, get};

use crate::mcp::Mcp;

#[get("/.well-known/oauth-protected-resource/mcp")]
pub fn for_mcp(mcp: &State<Arc<Mcp>>) -> Option<Json<Value>> {
    mcp.auth.metadata().map(Json)
}

#[get("/.well-known/oauth-protected-resource")]
pub fn at_root(mcp: &State<Arc<Mcp>>) -> Option<Json<Value>> {
    mcp.auth.metadata().map(Json)
}
