//! The protocol core's one entry: a parsed message plus the transport's
//! facts in, what is to be sent out. The era rule hands each request to
//! its lane.

use std::sync::Arc;
use std::time::Instant;

use super::call::{Incoming, Peek, Received};
use super::jsonrpc::Message;
use super::server::Mcp;
use super::wire::{Answer, Facts};
use super::{legacy, modern};

pub async fn handle(
    mcp: Arc<Mcp>,
    facts: &Facts<'_>,
    message: Message,
    body: Received,
    started: Instant,
) -> Answer {
    match message {
        Message::Request { id, method, params } => {
            let peek = Peek::of(params.as_ref());
            let modern = modern::is_modern(
                facts.version(),
                peek.meta().protocol_version.is_some(),
                &method,
            );
            let incoming = Incoming {
                id,
                method,
                params,
                peek,
                started,
                body,
            };
            if modern {
                modern::serve(mcp, facts, incoming).await
            } else {
                legacy::request(mcp, facts, incoming).await
            }
        }
        // 2026 has no session to notify and asks nothing the client answers.
        Message::Notification { .. } | Message::Response { .. }
            if modern::header_is_modern(facts.version()) =>
        {
            Answer::Accepted
        }
        Message::Notification { method, params } => {
            legacy::notification(&mcp, facts, &method, params).await
        }
        Message::Response { id, outcome } => legacy::response(&mcp, facts, &id, outcome).await,
    }
}
