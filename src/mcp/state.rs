//! `requestState` of the 2026 lane's multi-round requests: what the server
//! needs to resume a call (the answers so far), carried by the client and
//! sealed with HMAC-SHA-256 under a key every replica shares, so a retry may
//! land anywhere and nothing is kept per client.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// How long a client has to answer a round.
const LIFETIME_SECS: u64 = 15 * 60;

/// What a round remembers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundState {
    /// `tools/call name`, `prompts/get name` or `resources/read uri`.
    pub target: String,
    /// SHA-256 of the arguments, so answers cannot be replayed onto others.
    pub args: String,
    /// The valid answers so far, by key.
    pub answers: Map<String, Value>,
    /// Unix seconds after which the state is refused.
    pub expires: u64,
}

pub struct Sealer {
    /// Keyed once at start-up; cloned per use.
    mac: HmacSha256,
}

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum StateError {
    #[error("requestState failed its integrity check; start the request again without it")]
    Tampered,
    #[error("requestState has expired; start the request again without it")]
    Expired,
    #[error("requestState belongs to another request ({0}); start this one without it")]
    OtherRequest(String),
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A digest of a JSON value that ignores formatting and member order.
pub fn digest(value: &Value) -> String {
    // serde_json's Map is ordered by key here, so the text is canonical.
    let hash = Sha256::digest(value.to_string().as_bytes());
    URL_SAFE_NO_PAD.encode(hash)
}

impl Sealer {
    /// `secret` when configured, else a random per-process key (retries then
    /// only work on the replica that answered the round).
    pub fn new(secret: Option<&str>) -> Sealer {
        let key: [u8; 32] = match secret {
            Some(s) => Sha256::digest(s.as_bytes()).into(),
            None => {
                log::warn!(
                    "MCP_STATE_SECRET is not set: multi-round requests can only be resumed on this replica"
                );
                rand::random()
            }
        };
        // The secret's digest, zero-padded to a block: what HMAC does with a
        // short key anyway, through the constructor that cannot fail.
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(&key);
        Sealer {
            mac: <HmacSha256 as KeyInit>::new(&block.into()),
        }
    }

    fn mac(&self) -> HmacSha256 {
        self.mac.clone()
    }

    pub fn seal(&self, target: &str, args: String, answers: Map<String, Value>) -> String {
        let state = RoundState {
            target: target.to_owned(),
            args,
            answers,
            expires: now() + LIFETIME_SECS,
        };
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&state).unwrap_or_default());
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        let tag = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{body}.{tag}")
    }

    /// The state, if it is ours, unaltered, current and for this request.
    pub fn open(&self, sealed: &str, target: &str, args: &str) -> Result<RoundState, StateError> {
        let (body, tag) = sealed.split_once('.').ok_or(StateError::Tampered)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| StateError::Tampered)?;
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        mac.verify_slice(&tag).map_err(|_| StateError::Tampered)?;
        let state: RoundState = URL_SAFE_NO_PAD
            .decode(body)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(StateError::Tampered)?;
        if state.expires < now() {
            return Err(StateError::Expired);
        }
        if state.target != target || state.args != args {
            return Err(StateError::OtherRequest(state.target));
        }
        Ok(state)
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
        let args = digest(&json!({ "b": 1, "a": 2 }));
        let sealed = sealer.seal("tools/call t", args.clone(), answers.clone());
        let opened = sealer.open(&sealed, "tools/call t", &args).unwrap();
        assert_eq!(opened.answers, answers);
        assert_eq!(
            sealer.open(&format!("{sealed}-TAMPERED"), "tools/call t", &args),
            Err(StateError::Tampered)
        );
        assert!(matches!(
            sealer.open(&sealed, "tools/call other", &args),
            Err(StateError::OtherRequest(_))
        ));
        // Another replica with the same secret accepts it; a different key does not.
        let twin = Sealer::new(Some("a shared secret of at least 32 bytes"));
        assert!(twin.open(&sealed, "tools/call t", &args).is_ok());
        let other = Sealer::new(Some("another secret, also at least 32 bytes"));
        assert_eq!(
            other.open(&sealed, "tools/call t", &args),
            Err(StateError::Tampered)
        );
        assert_eq!(digest(&json!({ "a": 2, "b": 1 })), args);
    }
}
