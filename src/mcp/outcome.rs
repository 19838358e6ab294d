//! How a dispatched request ends: a result, an error, or (2026) questions
//! for the client; and that outcome in each revision's terms.

use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::jsonrpc::{self, INVALID_PARAMS, RESOURCE_NOT_FOUND, RpcError};
use super::protocol;
use super::state::Sealer;
use crate::tools::{Ask, Pending};

/// Why a request stopped without a result.
#[derive(Debug)]
pub enum Stop {
    Error(RpcError),
    /// The client must answer these questions first (2026 lane).
    Input(Vec<Ask>),
}

impl From<RpcError> for Stop {
    fn from(e: RpcError) -> Stop {
        Stop::Error(e)
    }
}

/// A client capability the request needs and the client did not declare.
pub const MISSING_CAPABILITY: i32 = -32021;

pub fn pending(p: Pending) -> Stop {
    match p {
        Pending::Input(asks) => Stop::Input(asks),
        Pending::Capability(capability) => Stop::Error(
            RpcError::new(
                MISSING_CAPABILITY,
                format!("this request needs the client capability {capability:?}"),
            )
            .with_data(json!({ "requiredCapabilities": { capability: {} } })),
        ),
    }
}

/// A failure of the legacy lane, which has no multi-round requests: a
/// question that was not asked on the stream cannot be pending here.
pub fn legacy_error(stop: Stop) -> RpcError {
    match stop {
        Stop::Error(e) => e,
        Stop::Input(_) => RpcError::new(
            jsonrpc::INTERNAL_ERROR,
            "Internal error: input was required outside a multi-round request",
        ),
    }
}

/// How long clients may reuse a listing that only changes with a release.
const STATIC_TTL_MS: u64 = 5 * 60 * 1000;

/// What a round of a multi-round request resumes from.
pub struct Round {
    /// `tools/call <name>`, `prompts/get <name>` or `resources/read <uri>`.
    pub target: String,
    pub answers: Map<String, Value>,
}

/// The `arguments` member of the params (null when absent), which a
/// sealed state is bound to.
pub fn arguments(params: Option<&RawValue>) -> Value {
    #[derive(serde::Deserialize)]
    struct Args {
        arguments: Option<Value>,
    }
    params
        .and_then(|p| serde_json::from_str::<Args>(p.get()).ok())
        .and_then(|a| a.arguments)
        .unwrap_or(Value::Null)
}

/// A dispatched request's outcome in 2026 terms: `resultType` on every
/// result, caching hints where the specification asks for them, questions
/// as `input_required` with sealed state, and `-32602` for a missing
/// resource.
pub fn conclude(
    sealer: &Sealer,
    method: &str,
    params: Option<&RawValue>,
    outcome: Result<Value, Stop>,
    round: Round,
) -> Result<Value, RpcError> {
    match outcome {
        Ok(mut result) => {
            if let Some(obj) = result.as_object_mut() {
                obj.entry("resultType").or_insert(json!("complete"));
                let cache = match method {
                    "server/discover"
                    | "tools/list"
                    | "prompts/list"
                    | "resources/templates/list" => Some((STATIC_TTL_MS, "public")),
                    // Series change with every ingest.
                    "resources/list" | "resources/read" => Some((0, "private")),
                    _ => None,
                };
                // Ours, over any a model type defaulted to.
                if let Some((ttl, scope)) = cache {
                    obj.insert("ttlMs".into(), json!(ttl));
                    obj.insert("cacheScope".into(), json!(scope));
                }
                if method == "server/discover" {
                    obj.insert(
                        "_meta".into(),
                        json!({ "io.modelcontextprotocol/serverInfo": protocol::server_info() }),
                    );
                }
            }
            Ok(result)
        }
        Err(Stop::Input(asks)) => {
            if !matches!(method, "tools/call" | "prompts/get" | "resources/read") {
                return Err(RpcError::internal(format!(
                    "{method} cannot ask the client"
                )));
            }
            let Round {
                target,
                mut answers,
            } = round;
            let mut requests = Map::new();
            for ask in asks {
                answers.remove(&ask.key);
                requests.insert(
                    ask.key,
                    json!({ "method": ask.method, "params": ask.params }),
                );
            }
            let state = sealer.seal(&target, &arguments(params), answers);
            Ok(json!({
                "resultType": "input_required",
                "inputRequests": requests,
                "requestState": state,
            }))
        }
        Err(Stop::Error(e)) if e.code == RESOURCE_NOT_FOUND => Err(RpcError {
            code: INVALID_PARAMS,
            ..e
        }),
        Err(Stop::Error(e)) => Err(e),
    }
}

/// A 2026 answer: the response with the request's id.
pub fn response(id: &jsonrpc::RequestId, outcome: &Result<Value, RpcError>) -> Value {
    match outcome {
        Ok(result) => jsonrpc::success(id, result.clone()),
        Err(e) => jsonrpc::failure(Some(id), e),
    }
}
