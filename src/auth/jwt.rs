//! JWT access tokens from an OAuth 2.1 authorization server, verified as a
//! resource server must (OAuth 2.1 §5.2, RFC 9068, RFC 8707): the
//! signature against the issuer's JWKS, found through its RFC 8414 or OIDC
//! metadata; `iss`, `aud` (this server), `exp` and `nbf` with a small
//! leeway; and only asymmetric algorithms (no `none`, no HS*).
//!
//! The keys are cached. An unknown `kid` fetches them again, at most once
//! per `min_refetch`; every fetch is bounded by [`FETCH_TIMEOUT`]. When the
//! issuer is away, the cached keys keep working and a token signed by a key
//! we never saw is refused at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::Scopes;
use crate::metrics::Metrics;

/// Bounds each fetch of metadata or keys, connection included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Keys older than this are fetched again in the background (rotation
/// without an unknown `kid`, removed keys).
const KEYS_MAX_AGE: Duration = Duration::from_secs(3600);
/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 30;
/// A metadata or JWKS document larger than this is refused.
const MAX_DOCUMENT: usize = 1 << 20;
/// Asymmetric algorithms only: an HS* token would be checked against a
/// public key anyone has.
const ALLOWED: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// What a verified token says about its bearer.
#[derive(Debug, Clone)]
pub struct Verified {
    pub subject: String,
    pub client_id: Option<String>,
    pub scopes: Scopes,
    /// `exp`, in seconds since the epoch.
    pub expires: u64,
}

/// Why a token was refused: a fixed label for metrics, and the
/// description the client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub reason: &'static str,
    pub description: String,
}

fn rejected(reason: &'static str, description: impl Into<String>) -> Rejected {
    Rejected {
        reason,
        description: description.into(),
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ScpClaim {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    client_id: Option<String>,
    azp: Option<String>,
    scope: Option<String>,
    /// Entra, Okta: `scp`, a string or a list.
    scp: Option<ScpClaim>,
    exp: u64,
}

struct Key {
    key: DecodingKey,
    /// The JWK's `alg`, when it names one: the token must use it.
    alg: Option<Algorithm>,
}

#[derive(Default)]
struct Keys {
    by_kid: HashMap<String, Arc<Key>>,
    /// Keys without a `kid`, for tokens without one.
    anonymous: Vec<Arc<Key>>,
    fetched: Option<Instant>,
    attempted: Option<Instant>,
    /// From `MCP_OAUTH_JWKS_URL`, or found in the issuer's metadata.
    jwks_url: Option<String>,
}

impl Keys {
    /// No fetch was tried within `min_refetch`.
    fn fetch_allowed(&self, min_refetch: Duration) -> bool {
        self.attempted.is_none_or(|at| at.elapsed() >= min_refetch)
    }
}

pub struct Verifier {
    issuer: String,
    audience: String,
    http: reqwest::Client,
    keys: parking_lot::RwLock<Keys>,
    /// One fetch at a time; the others wait for it and use its keys.
    fetching: tokio::sync::Mutex<()>,
    min_refetch: Duration,
    metrics: Arc<Metrics>,
}

impl Verifier {
    pub fn new(
        issuer: &str,
        audience: &str,
        jwks_url: Option<&str>,
        min_refetch: Duration,
        metrics: Arc<Metrics>,
    ) -> Result<Verifier, String> {
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("mcp-server/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("HTTP client for the OAuth issuer: {e}"))?;
        Ok(Verifier {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            http,
            keys: parking_lot::RwLock::new(Keys {
                jwks_url: jwks_url.map(str::to_owned),
                ..Keys::default()
            }),
            fetching: tokio::sync::Mutex::new(()),
            min_refetch,
            metrics,
        })
    }

    /// Checks `token` and reads its bearer's identity and scopes.
    pub async fn verify(self: &Arc<Self>, token: &str) -> Result<Verified, Rejected> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| {
            rejected(
                "invalid",
                format!("not a signed JWT with a supported algorithm ({e})"),
            )
        })?;
        if !ALLOWED.contains(&header.alg) {
            return Err(rejected(
                "invalid",
                format!(
                    "algorithm {:?} is not accepted; the issuer must sign with RS*, PS*, ES* or EdDSA",
                    header.alg
                ),
            ));
        }
        let key = self.key(header.kid.as_deref()).await?;
        if key.alg.is_some_and(|a| a != header.alg) {
            return Err(rejected(
                "invalid",
                "the token's algorithm is not its key's",
            ));
        }
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        let data =
            jsonwebtoken::decode::<Claims>(token, &key.key, &validation).map_err(|e| {
                match e.kind() {
                    ErrorKind::ExpiredSignature => rejected("expired", "the token has expired"),
                    ErrorKind::ImmatureSignature => {
                        rejected("not_yet_valid", "the token is not valid yet (nbf)")
                    }
                    ErrorKind::InvalidAudience => rejected(
                        "audience",
                        format!(
                            "the token is not for this resource (aud must name {})",
                            self.audience
                        ),
                    ),
                    ErrorKind::InvalidIssuer => rejected(
                        "issuer",
                        format!("the token was not issued by {}", self.issuer),
                    ),
                    ErrorKind::InvalidSignature => {
                        rejected("invalid", "the signature does not verify")
                    }
                    _ => rejected("invalid", format!("the token is invalid ({e})")),
                }
            })?;
        let Claims {
            sub,
            client_id,
            azp,
            scope,
            scp,
            exp,
        } = data.claims;
        let mut scopes = scope
            .as_deref()
            .map_or(Scopes::empty(), Scopes::parse_claim);
        match scp {
            Some(ScpClaim::One(s)) => scopes |= Scopes::parse_claim(&s),
            Some(ScpClaim::Many(list)) => {
                scopes |= list.iter().filter_map(|s| Scopes::named(s)).collect()
            }
            None => {}
        }
        let client_id = client_id.or(azp);
        Ok(Verified {
            subject: sub.or_else(|| client_id.clone()).unwrap_or_default(),
            client_id,
            scopes,
            expires: exp,
        })
    }

    fn cached(&self, kid: Option<&str>) -> Option<Arc<Key>> {
        let keys = self.keys.read();
        match kid {
            Some(kid) => keys.by_kid.get(kid).cloned(),
            // Without a kid, only an unambiguous key will do.
            None => match (keys.anonymous.as_slice(), keys.by_kid.len()) {
                ([one], 0) => Some(Arc::clone(one)),
                ([], 1) => keys.by_kid.values().next().cloned(),
                _ => None,
            },
        }
    }

    async fn key(self: &Arc<Self>, kid: Option<&str>) -> Result<Arc<Key>, Rejected> {
        if let Some(key) = self.cached(kid) {
            // Only when a fetch may run: while the issuer is away, requests
            // must not each spawn one that would return at once.
            let stale = {
                let keys = self.keys.read();
                keys.fetched.is_none_or(|at| at.elapsed() > KEYS_MAX_AGE)
                    && keys.fetch_allowed(self.min_refetch)
            };
            if stale {
                let me = Arc::clone(self);
                tokio::spawn(async move { me.refresh().await });
            }
            return Ok(key);
        }
        self.refresh().await;
        self.cached(kid).ok_or_else(|| {
            rejected(
                "unknown_key",
                match kid {
                    Some(kid) => format!("no key {kid:?} in the issuer's JWKS"),
                    None => "the token names no key (kid) and the issuer has several".into(),
                },
            )
        })
    }

    /// Fetches the keys unless a fetch was tried within `min_refetch` (by
    /// anyone: concurrent misses share one). A failure keeps the old keys.
    pub async fn refresh(&self) {
        let _one = self.fetching.lock().await;
        {
            let mut keys = self.keys.write();
            if !keys.fetch_allowed(self.min_refetch) {
                return;
            }
            keys.attempted = Some(Instant::now());
        }
        match self.fetch().await {
            Ok((url, set)) => {
                self.metrics.jwks_fetch(true);
                let mut keys = self.keys.write();
                let (by_kid, anonymous) = usable(&set);
                log::info!(
                    "OAuth: {} signing keys from {url}",
                    by_kid.len() + anonymous.len()
                );
                keys.by_kid = by_kid;
                keys.anonymous = anonymous;
                keys.fetched = Some(Instant::now());
                keys.jwks_url = Some(url);
            }
            Err(e) => {
                self.metrics.jwks_fetch(false);
                // At most one line per min_refetch: attempts are rate-limited.
                log::warn!(
                    "OAuth: could not fetch the issuer's keys, keeping the cached ones: {e}"
                );
            }
        }
    }

    async fn fetch(&self) -> Result<(String, JwkSet), String> {
        let known = self.keys.read().jwks_url.clone();
        let url = match known {
            Some(url) => url,
            None => self.discover().await?,
        };
        let set = self.get_json::<JwkSet>(&url).await?;
        Ok((url, set))
    }

    /// `jwks_uri` from the issuer's metadata: RFC 8414 first, then OIDC
    /// discovery (inserted, then appended), as the MCP specification lists
    /// them. The document must name our issuer.
    async fn discover(&self) -> Result<String, String> {
        #[derive(Deserialize)]
        struct Metadata {
            issuer: String,
            jwks_uri: Option<String>,
        }
        let mut errors = Vec::new();
        for url in metadata_urls(&self.issuer)? {
            match self.get_json::<Metadata>(&url).await {
                Ok(m) if m.issuer.trim_end_matches('/') != self.issuer.trim_end_matches('/') => {
                    errors.push(format!("{url} names issuer {:?}", m.issuer))
                }
                Ok(Metadata {
                    jwks_uri: Some(jwks),
                    ..
                }) => return Ok(jwks),
                Ok(_) => errors.push(format!("{url} has no jwks_uri")),
                Err(e) => errors.push(e),
            }
        }
        Err(errors.join("; "))
    }

    async fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let mut response = self
            .http
            .get(url)
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("{url} answered {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| format!("{url}: {e}"))? {
            if body.len() + chunk.len() > MAX_DOCUMENT {
                return Err(format!("{url}: larger than {MAX_DOCUMENT} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| format!("{url}: {e}"))
    }
}

/// The signing keys of a set we can use (others, e.g. `use: enc`, skipped).
fn usable(set: &JwkSet) -> (HashMap<String, Arc<Key>>, Vec<Arc<Key>>) {
    let mut by_kid = HashMap::new();
    let mut anonymous = Vec::new();
    for jwk in &set.keys {
        if jwk
            .common
            .public_key_use
            .as_ref()
            .is_some_and(|u| *u != PublicKeyUse::Signature)
        {
            continue;
        }
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        let alg = jwk
            .common
            .key_algorithm
            .and_then(|a| a.to_string().parse::<Algorithm>().ok());
        let key = Arc::new(Key { key, alg });
        match &jwk.common.key_id {
            Some(kid) => {
                by_kid.insert(kid.clone(), key);
            }
            None => anonymous.push(key),
        }
    }
    (by_kid, anonymous)
}

/// Where an issuer's metadata may be, in the order the MCP authorization
/// specification tries them.
pub fn metadata_urls(issuer: &str) -> Result<Vec<String>, String> {
    let url = url::Url::parse(issuer).map_err(|e| format!("MCP_OAUTH_ISSUER {issuer:?}: {e}"))?;
    let origin = url.origin().ascii_serialization();
    let path = url.path().trim_end_matches('/');
    Ok(vec![
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
        format!("{origin}/.well-known/openid-configuration{path}"),
        format!("{origin}{path}/.well-known/openid-configuration"),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_looked_for_where_the_specification_says() {
        assert_eq!(
            metadata_urls("https://auth.example.com/realms/ops/").unwrap(),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server/realms/ops",
                "https://auth.example.com/.well-known/openid-configuration/realms/ops",
                "https://auth.example.com/realms/ops/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            metadata_urls("http://127.0.0.1:4000").unwrap()[0],
            "http://127.0.0.1:4000/.well-known/oauth-authorization-server"
        );
    }
}
