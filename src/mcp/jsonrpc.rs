//! JSON-RPC 2.0 framing: one message per POST body, classified or rejected
//! with the exact error codes the MCP specification lists.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};

pub const PARSE_ERROR: i32 = -32700;
pub const INVALID_REQUEST: i32 = -32600;
pub const METHOD_NOT_FOUND: i32 = -32601;
pub const INVALID_PARAMS: i32 = -32602;
pub const INTERNAL_ERROR: i32 = -32603;
pub const RESOURCE_NOT_FOUND: i32 = -32002;
/// The session id is unknown or expired: initialize again.
pub const SESSION_NOT_FOUND: i32 = -32001;
/// Transport-level refusals (no session, unknown session …).
pub const SERVER_ERROR: i32 = -32000;
/// The caller may not do this (a scope it lacks); HTTP answers 403.
pub const FORBIDDEN: i32 = -32003;

/// A request id: string or integer, never null.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    Number(i64),
    String(String),
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestId::Number(n) => write!(f, "{n}"),
            RequestId::String(s) => f.write_str(s),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i32,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }
    pub fn parse_error(detail: impl std::fmt::Display) -> Self {
        Self::new(PARSE_ERROR, format!("Parse error: {detail}"))
    }
    pub fn invalid_request(detail: impl std::fmt::Display) -> Self {
        Self::new(INVALID_REQUEST, format!("Invalid Request: {detail}"))
    }
    pub fn method_not_found(method: &str) -> Self {
        Self::new(METHOD_NOT_FOUND, format!("Method not found: {method}"))
    }
    pub fn invalid_params(detail: impl std::fmt::Display) -> Self {
        Self::new(INVALID_PARAMS, format!("Invalid params: {detail}"))
    }
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self::new(INTERNAL_ERROR, format!("Internal error: {detail}"))
    }
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }
    pub fn to_json(&self) -> Value {
        let mut e = json!({ "code": self.code, "message": self.message });
        if let Some(d) = &self.data {
            e["data"] = d.clone();
        }
        e
    }
}

/// A request's params as they came: an object's JSON text, parsed only by
/// whoever needs it (a tool parses its arguments straight into its own
/// types, with no `Value` tree of a 100,000-point ingest in between).
pub type Params = Box<RawValue>;

#[derive(Debug, Clone)]
pub enum Message {
    Request {
        id: RequestId,
        method: String,
        params: Option<Params>,
    },
    Notification {
        method: String,
        params: Option<Params>,
    },
    Response {
        id: RequestId,
        outcome: Result<Value, Value>,
    },
}

/// A message that could not be accepted, with the id when one was readable
/// so the error can echo it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub id: Option<RequestId>,
    pub error: RpcError,
}

fn reject(id: Option<RequestId>, error: RpcError) -> Rejected {
    Rejected { id, error }
}

/// The members of a message, unparsed; a member given as `null` is
/// `Some("null")`, not `None`.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    jsonrpc: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    method: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    params: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    error: Option<&'a RawValue>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// The first character of a JSON text.
fn starts_with(raw: &str, c: char) -> bool {
    raw.trim_start().starts_with(c)
}

fn text(raw: &RawValue) -> Option<String> {
    serde_json::from_str::<String>(raw.get()).ok()
}

pub fn parse_message(body: &[u8]) -> Result<Message, Rejected> {
    let body = std::str::from_utf8(body).map_err(|e| reject(None, RpcError::parse_error(e)))?;
    if !starts_with(body, '{') {
        // Not an object: say why, once the text is known to be JSON.
        serde_json::from_str::<serde::de::IgnoredAny>(body)
            .map_err(|e| reject(None, RpcError::parse_error(e)))?;
        let why = if starts_with(body, '[') {
            "batches are not supported: send one message per POST"
        } else {
            "a message must be a JSON object"
        };
        return Err(reject(None, RpcError::invalid_request(why)));
    }
    let envelope: Envelope = serde_json::from_str(body).map_err(|e| {
        let error = match e.classify() {
            serde_json::error::Category::Data => RpcError::invalid_request(e),
            _ => RpcError::parse_error(e),
        };
        reject(None, error)
    })?;
    let id = match envelope.id {
        None => None,
        Some(raw) => match serde_json::from_str::<RequestId>(raw.get()) {
            Ok(id) => Some(id),
            Err(_) => {
                return Err(reject(
                    None,
                    RpcError::invalid_request("id must be a string or an integer"),
                ));
            }
        },
    };
    if envelope.jsonrpc.and_then(text).as_deref() != Some("2.0") {
        return Err(reject(
            id,
            RpcError::invalid_request("jsonrpc must be \"2.0\""),
        ));
    }
    let params = match envelope.params {
        None => Ok(None),
        Some(p) if p.get() == "null" => Ok(None),
        Some(p) if starts_with(p.get(), '{') => Ok(Some(p.to_owned())),
        Some(_) => Err(RpcError::invalid_request("params must be an object")),
    };
    let value = |raw: &RawValue| serde_json::from_str::<Value>(raw.get()).unwrap_or(Value::Null);
    match (envelope.method, id) {
        (Some(method), id) => {
            let Some(method) = text(method) else {
                return Err(reject(
                    id,
                    RpcError::invalid_request("method must be a string"),
                ));
            };
            let params = params.map_err(|e| reject(id.clone(), e))?;
            Ok(match id {
                Some(id) => Message::Request { id, method, params },
                None => Message::Notification { method, params },
            })
        }
        (None, Some(id)) => match (envelope.result, envelope.error) {
            (Some(r), None) => Ok(Message::Response {
                id,
                outcome: Ok(value(r)),
            }),
            (None, Some(e)) => Ok(Message::Response {
                id,
                outcome: Err(value(e)),
            }),
            _ => Err(reject(
                Some(id),
                RpcError::invalid_request("a response has exactly one of result and error"),
            )),
        },
        (None, None) => Err(reject(None, RpcError::invalid_request("missing method"))),
    }
}

/// The request a `notifications/cancelled` names, if its params say.
pub fn cancelled_request(params: Option<&Params>) -> Option<RequestId> {
    #[derive(Deserialize)]
    struct Cancelled {
        #[serde(rename = "requestId")]
        request_id: RequestId,
    }
    params
        .and_then(|p| serde_json::from_str::<Cancelled>(p.get()).ok())
        .map(|c| c.request_id)
}

pub fn success(id: &RequestId, result: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "result": result })
}

pub fn failure(id: Option<&RequestId>, error: &RpcError) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": error.to_json() })
}

pub fn notification(method: &str, params: Value) -> Value {
    json!({ "jsonrpc": "2.0", "method": method, "params": params })
}

pub fn request(id: &RequestId, method: &str, params: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(body: &str) -> i32 {
        parse_message(body.as_bytes()).unwrap_err().error.code
    }

    #[test]
    fn classifies_messages() {
        let r = parse_message(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).unwrap();
        assert!(matches!(
            r,
            Message::Request { id: RequestId::Number(1), ref method, params: None } if method == "ping"
        ));
        let p = parse_message(br#"{"jsonrpc":"2.0","id":2,"method":"x","params": {"a": [1, 2]}}"#)
            .unwrap();
        assert!(matches!(
            p,
            Message::Request { params: Some(ref raw), .. } if raw.get() == r#"{"a": [1, 2]}"#
        ));
        let n =
            parse_message(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert!(matches!(n, Message::Notification { .. }));
        let resp = parse_message(br#"{"jsonrpc":"2.0","id":"a","result":{}}"#).unwrap();
        assert!(matches!(resp, Message::Response { outcome: Ok(_), .. }));
        let err = parse_message(br#"{"jsonrpc":"2.0","id":"a","error":{"code":1,"message":"x"}}"#)
            .unwrap();
        assert!(matches!(
            err,
            Message::Response {
                outcome: Err(_),
                ..
            }
        ));
    }

    #[test]
    fn error_codes() {
        assert_eq!(code("{not json"), PARSE_ERROR);
        assert_eq!(code(""), PARSE_ERROR);
        assert_eq!(
            code(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#),
            INVALID_REQUEST
        );
        assert_eq!(code("42"), INVALID_REQUEST);
        assert_eq!(code(r#"{"id":1,"method":"ping"}"#), INVALID_REQUEST);
        assert_eq!(
            code(r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#),
            INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#),
            INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#),
            INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":7}"#),
            INVALID_REQUEST
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":"x","params":[1]}"#),
            INVALID_REQUEST
        );
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":1}"#), INVALID_REQUEST);
        assert_eq!(code(r#"{"jsonrpc":"2.0"}"#), INVALID_REQUEST);
    }

    #[test]
    fn errors_echo_a_readable_id() {
        let e = parse_message(br#"{"jsonrpc":"1.0","id":"x","method":"ping"}"#).unwrap_err();
        assert_eq!(e.id, Some(RequestId::String("x".into())));
    }
}
