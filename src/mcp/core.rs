//! The protocol core's one entry: a parsed message plus the transport's
//! facts in, what is to be sent out. The era rule hands each request to
//! its lane.

use std::sync::Arc;
use std::time::Instant;

use super::call::{Incoming, Peek, Received};
use super::jsonrpc::{self, Message, RpcError};
use super::request_log::{Entry, Logged};
use super::server::Mcp;
use super::wire::{Answer, Facts, Refusal};
use super::{dispatch, legacy, modern};

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
            if let Some(scope) = dispatch::needs(&mcp, &method, peek.name.as_deref())
                && !facts.grant.scopes.contains(scope)
            {
                let message = format!(
                    "Forbidden: {method} {} needs the {scope} scope, which this token does not grant",
                    peek.name.as_deref().unwrap_or("")
                );
                // Who tried what is worth keeping: the caller is known here.
                mcp.audit(
                    Entry {
                        session: facts.session.map(str::to_owned),
                        client_name: None,
                        id: &id,
                        method: &method,
                        logged: Logged::of(
                            &method,
                            peek.name.clone(),
                            params.as_deref(),
                            body.bytes,
                        ),
                        started,
                        grant: &facts.grant,
                    },
                    &Err(RpcError::new(jsonrpc::FORBIDDEN, message.clone())),
                );
                return Answer::refused(Refusal::InsufficientScope(scope), message);
            }
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
                grant: Arc::clone(&facts.grant),
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
