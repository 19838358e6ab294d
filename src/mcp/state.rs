//! `requestState` of the 2026 lane's multi-round requests: the answers so
//! far, carried by the client and sealed by rmcp's [`RequestStateCodec`]
//! (HMAC-SHA-256 under a key every replica shares, bound to the request it
//! belongs to, with an expiry), so a retry may land on any replica and
//! nothing is kept per client.

use std::time::Duration;

use rmcp::model::{RequestStateCodec, RequestStateError, SealOptions};
use serde_json::{Map, Value};

/// How long a client has to answer a round.
const LIFETIME: Duration = Duration::from_secs(15 * 60);

pub struct Sealer {
    codec: RequestStateCodec,
}

/// What the state is bound to: the method and target, and the arguments
/// (as canonical JSON), so answers cannot be replayed onto another request.
fn binding(target: &str, args: &Value) -> Vec<u8> {
    format!("{target}\n{args}").into_bytes()
}

impl Sealer {
    /// `secret` (validated to be at least 32 bytes by the configuration),
    /// else a random per-process key: retries then only work on the
    /// replica that answered the round.
    pub fn new(secret: Option<&str>) -> Sealer {
        let key: Vec<u8> = match secret {
            Some(s) => s.as_bytes().to_vec(),
            None => {
                log::warn!(
                    "MCP_STATE_SECRET is not set: multi-round requests can only be resumed on this replica"
                );
                rand::random::<[u8; RequestStateCodec::MIN_KEY_LENGTH]>().to_vec()
            }
        };
        Sealer {
            codec: RequestStateCodec::new_unchecked(key),
        }
    }

    pub fn seal(&self, target: &str, args: &Value, answers: Map<String, Value>) -> String {
        let payload = serde_json::to_vec(&answers).unwrap_or_default();
        let ad = binding(target, args);
        self.codec.seal_with(
            &payload,
            &SealOptions::new().associated_data(&ad).ttl(LIFETIME),
        )
    }

    /// The answers, if the state is ours, unaltered, current and for this
    /// request.
    pub fn open(
        &self,
        sealed: &str,
        target: &str,
        args: &Value,
    ) -> Result<Map<String, Value>, RequestStateError> {
        let payload = self.codec.open_with(sealed, &binding(target, args))?;
        serde_json::from_slice(&payload).map_err(|_| RequestStateError::MalformedFormat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sealed_state_opens_only_unaltered_and_for_its_request() {
        let sealer = Sealer::new(Some("a shared secret of at least 32 bytes"));
        let mut answers = Map::new();
        answers.insert("user_name".into(), json!({ "action": "accept" }));
        let args = json!({ "b": 1, "a": 2 });
        let sealed = sealer.seal("tools/call t", &args, answers.clone());
        assert_eq!(
            sealer.open(&sealed, "tools/call t", &args).unwrap(),
            answers
        );
        assert!(
            sealer
                .open(&format!("{sealed}-TAMPERED"), "tools/call t", &args)
                .is_err()
        );
        assert!(sealer.open(&sealed, "tools/call other", &args).is_err());
        assert!(sealer.open(&sealed, "tools/call t", &json!({})).is_err());
        // Another replica with the same secret accepts it; a different key does not.
        let twin = Sealer::new(Some("a shared secret of at least 32 bytes"));
        assert!(twin.open(&sealed, "tools/call t", &args).is_ok());
        let other = Sealer::new(Some("another secret, also at least 32 bytes"));
        assert!(other.open(&sealed, "tools/call t", &args).is_err());
    }
}
