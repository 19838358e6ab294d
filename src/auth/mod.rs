//! Who may do what. A request's `Authorization` header becomes a [`Grant`]:
//! static tokens (`MCP_AUTH_TOKEN`, the tokens file) or, with an issuer
//! configured, JWT access tokens as an OAuth 2.1 resource server checks
//! them. No database or Redis round trip: a validated JWT is cached in
//! process by its SHA-256 until its `exp`.
//!
//! Nothing here knows MCP: the transports ask [`Auth`] for a grant and for
//! the `WWW-Authenticate` challenge, and the protocol core compares the
//! grant's scopes with what a method needs.

pub mod jwt;
pub mod scope;
pub mod tokens;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

pub use scope::Scopes;

use crate::config::Settings;
use crate::metrics::Metrics;
use tokens::{Digest32, Tokens};

/// What a request may do, and who made it (for the request log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// `sub`, or a static token's name.
    pub subject: Option<String>,
    pub client_id: Option<String>,
    pub scopes: Scopes,
    /// `exp` of a JWT, seconds since the epoch.
    pub expires: Option<u64>,
}

impl Grant {
    /// No authentication configured, or stdio: every scope.
    pub fn local() -> Grant {
        Grant {
            subject: None,
            client_id: None,
            scopes: Scopes::all(),
            expires: None,
        }
    }
}

impl Default for Grant {
    fn default() -> Grant {
        Grant::local()
    }
}

/// Why a request was not authenticated (HTTP 401).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    Missing,
    Invalid(String),
}

impl Denied {
    pub fn message(&self) -> String {
        match self {
            Denied::Missing => {
                "Unauthorized: missing bearer token (Authorization: Bearer <token>)".into()
            }
            Denied::Invalid(why) => format!("Unauthorized: {why}"),
        }
    }
}

/// Why a request is challenged.
pub enum Challenge<'a> {
    /// 401: no usable credentials.
    Denied(&'a Denied),
    /// 403: the grant holds `held`, and the request needs `needed`.
    Insufficient { needed: Scopes, held: Scopes },
}

/// Validated JWTs kept at most this many.
const VALIDATED: u64 = 10_000;

/// Cached grants live until their token's `exp`.
struct UntilExpiry;

impl moka::Expiry<Digest32, Arc<Grant>> for UntilExpiry {
    fn expire_after_create(
        &self,
        _key: &Digest32,
        grant: &Arc<Grant>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        Some(Duration::from_secs(grant.expires?.saturating_sub(now)))
    }
}

/// This server as an OAuth protected resource.
pub struct Resource {
    /// `MCP_OAUTH_AUDIENCE`: this server's canonical URI.
    pub audience: String,
    pub issuer: String,
    /// Where its RFC 9728 metadata is (from the audience).
    pub metadata_url: String,
}

pub struct Auth {
    /// Replaced whole when the tokens file is read again (SIGHUP).
    tokens: parking_lot::RwLock<Tokens>,
    /// What the static tokens are built from, for [`Auth::reload`].
    token: Option<String>,
    file: Option<PathBuf>,
    /// Fixed at start by what is configured: a tokens file that becomes
    /// empty must not open the server.
    open: bool,
    /// Every request's grant when open, shared rather than made per request.
    local: Arc<Grant>,
    oauth: Option<Arc<jwt::Verifier>>,
    pub resource: Option<Resource>,
    validated: moka::sync::Cache<Digest32, Arc<Grant>>,
    metrics: Arc<Metrics>,
}

/// `https://host/mcp` → `https://host/.well-known/oauth-protected-resource/mcp`
/// (RFC 9728 §3.1: the well-known segment goes between host and path).
pub fn metadata_url(resource: &str) -> Result<String, String> {
    let url = url::Url::parse(resource)
        .map_err(|e| format!("MCP_OAUTH_AUDIENCE {resource:?} is not an absolute URI: {e}"))?;
    if !url.has_host() || url.fragment().is_some() {
        return Err(format!(
            "MCP_OAUTH_AUDIENCE {resource:?} must be this server's URI, like https://mcp.example.com/mcp"
        ));
    }
    let path = url.path().trim_end_matches('/');
    Ok(format!(
        "{}/.well-known/oauth-protected-resource{path}",
        url.origin().ascii_serialization()
    ))
}

impl Auth {
    pub fn from_settings(settings: &Settings, metrics: Arc<Metrics>) -> Result<Auth, String> {
        let token = settings.mcp_auth_token.clone().filter(|t| !t.is_empty());
        let file = settings.mcp_auth_tokens_file.as_deref().map(PathBuf::from);
        let tokens = Tokens::new(token.as_deref(), file.as_deref())?;
        let (oauth, resource) = match (&settings.mcp_oauth_issuer, &settings.mcp_oauth_audience) {
            (None, None) => (None, None),
            (Some(issuer), Some(audience)) => {
                let verifier = jwt::Verifier::new(
                    issuer,
                    audience,
                    settings.mcp_oauth_jwks_url.as_deref(),
                    Duration::from_secs(settings.mcp_oauth_jwks_min_refetch_secs),
                    Arc::clone(&metrics),
                )?;
                let resource = Resource {
                    audience: audience.clone(),
                    issuer: issuer.clone(),
                    metadata_url: metadata_url(audience)?,
                };
                (Some(Arc::new(verifier)), Some(resource))
            }
            (Some(_), None) => {
                return Err(
                    "MCP_OAUTH_ISSUER needs MCP_OAUTH_AUDIENCE, this server's canonical URI \
                     (like https://mcp.example.com/mcp): tokens must name it in `aud`"
                        .into(),
                );
            }
            (None, Some(_)) => {
                return Err("MCP_OAUTH_AUDIENCE is set without MCP_OAUTH_ISSUER".into());
            }
        };
        Ok(Auth {
            tokens: parking_lot::RwLock::new(tokens),
            open: !settings.requires_auth(),
            local: Arc::new(Grant::local()),
            token,
            file,
            oauth,
            resource,
            validated: moka::sync::Cache::builder()
                .max_capacity(VALIDATED)
                .expire_after(UntilExpiry)
                .build(),
            metrics,
        })
    }

    /// Nothing configured: every request has every scope.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// The tokens file, if one is configured (for the SIGHUP reload).
    pub fn tokens_file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Reads the tokens file again; a bad file keeps the tokens in force.
    /// Returns how many static tokens are accepted now.
    pub fn reload(&self) -> Result<usize, String> {
        let tokens = Tokens::new(self.token.as_deref(), self.file.as_deref())?;
        let n = tokens.len();
        *self.tokens.write() = tokens;
        Ok(n)
    }

    /// Fetches the issuer's keys in the background, so the first request
    /// does not wait and an unreachable issuer is logged at start; call
    /// from within the runtime.
    pub fn start(&self) {
        if let Some(verifier) = &self.oauth {
            let verifier = Arc::clone(verifier);
            tokio::spawn(async move { verifier.refresh().await });
        }
    }

    /// The grant of a request's `Authorization` header value.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Arc<Grant>, Denied> {
        self.authenticate_token(bearer(authorization, &["bearer"]))
            .await
    }

    /// The grant of a token taken from wherever a protocol carries it
    /// (InfluxDB's `Authorization: Token …`, say).
    pub async fn authenticate_token(&self, token: Option<&str>) -> Result<Arc<Grant>, Denied> {
        if self.is_open() {
            return Ok(Arc::clone(&self.local));
        }
        let Some(token) = token else {
            self.metrics.auth("missing");
            return Err(Denied::Missing);
        };
        let digest = tokens::sha256(token);
        let known = self.tokens.read().find(&digest).map(|entry| Grant {
            subject: Some(entry.name.clone()),
            client_id: None,
            scopes: entry.scopes,
            expires: None,
        });
        if let Some(grant) = known {
            self.metrics.auth("static");
            return Ok(Arc::new(grant));
        }
        let Some(verifier) = &self.oauth else {
            self.metrics.auth("invalid");
            return Err(Denied::Invalid("invalid bearer token".into()));
        };
        if let Some(grant) = self.validated.get(&digest) {
            self.metrics.auth("cached");
            return Ok(grant);
        }
        match verifier.verify(token).await {
            Ok(v) => {
                self.metrics.auth("jwt");
                let grant = Arc::new(Grant {
                    subject: Some(v.subject).filter(|s| !s.is_empty()),
                    client_id: v.client_id,
                    scopes: v.scopes,
                    expires: Some(v.expires),
                });
                self.validated.insert(digest, Arc::clone(&grant));
                Ok(grant)
            }
            Err(r) => {
                self.metrics.auth(r.reason);
                Err(Denied::Invalid(r.description))
            }
        }
    }

    /// The `WWW-Authenticate` value of a 401 or a 403 (RFC 6750 §3,
    /// RFC 9728 §5.1).
    pub fn challenge(&self, why: Challenge<'_>) -> String {
        let mut parts = match why {
            // The least a client needs to start: reading.
            Challenge::Denied(Denied::Missing) => vec![format!(r#"scope="{}""#, Scopes::READ)],
            Challenge::Denied(Denied::Invalid(why)) => vec![
                r#"error="invalid_token""#.to_owned(),
                format!(r#"error_description="{}""#, quoted(why)),
                format!(r#"scope="{}""#, Scopes::READ),
            ],
            // What the client already has plus what it lacks, so a step-up
            // keeps the rest.
            Challenge::Insufficient { needed, held } => vec![
                r#"error="insufficient_scope""#.to_owned(),
                format!(r#"scope="{}""#, held | needed),
                format!(
                    r#"error_description="{}""#,
                    quoted(&format!("this needs the {needed} scope"))
                ),
            ],
        };
        if let Some(resource) = &self.resource {
            parts.push(format!(r#"resource_metadata="{}""#, resource.metadata_url));
        }
        format!("Bearer {}", parts.join(", "))
    }

    /// RFC 9728 protected-resource metadata; `None` without an issuer.
    pub fn metadata(&self) -> Option<Value> {
        let resource = self.resource.as_ref()?;
        Some(json!({
            "resource": resource.audience,
            "authorization_servers": [resource.issuer],
            "scopes_supported": Scopes::all_names(),
            "bearer_methods_supported": ["header"],
            "resource_name": "mcp-server",
        }))
    }
}

/// The token of an `Authorization` value whose scheme is one of `schemes`
/// (lowercase).
pub fn bearer<'a>(authorization: Option<&'a str>, schemes: &[&str]) -> Option<&'a str> {
    authorization
        .and_then(|a| a.split_once(' '))
        .filter(|(scheme, _)| schemes.contains(&scheme.to_ascii_lowercase().as_str()))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
}

/// Text fit for a quoted-string parameter: no quotes, backslashes or
/// control characters, and short.
fn quoted(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c == '"' || c == '\\' || c.is_control() {
                '\''
            } else {
                c
            }
        })
        .take(200)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metadata_url_puts_the_well_known_segment_before_the_path() {
        assert_eq!(
            metadata_url("https://mcp.example.com/mcp").unwrap(),
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            metadata_url("http://127.0.0.1:8000/").unwrap(),
            "http://127.0.0.1:8000/.well-known/oauth-protected-resource"
        );
        assert!(metadata_url("mcp.example.com/mcp").is_err());
    }

    #[test]
    fn descriptions_cannot_break_out_of_their_quotes() {
        assert_eq!(quoted("a \"b\" \\c\nd"), "a 'b' 'c'd");
    }
}
