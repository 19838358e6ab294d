//! DNS-rebinding protection (`Host` and `Origin` allow-lists) and the
//! optional bearer token.

use subtle::ConstantTimeEq;

/// Hosts a local server answers to: loopback names, any port.
const LOOPBACK: &[&str] = &["localhost", "127.0.0.1", "[::1]"];

#[derive(Debug, Clone, Default)]
pub struct Guard {
    /// Extra `Host` values (host or host:port); `*` allows any.
    pub allowed_hosts: Vec<String>,
    /// Extra `Origin` values (scheme://host[:port]); `*` allows any.
    pub allowed_origins: Vec<String>,
    pub token: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 403
    Forbidden(String),
    /// 401
    Unauthorized(&'static str),
}

/// `host[:port]` → `host` (keeping IPv6 brackets). Anything but a port
/// after `]` leaves the text whole, so `[::1]evil.com` is no loopback.
fn hostname(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => {
                let rest = &host[end + 1..];
                let port = rest
                    .strip_prefix(':')
                    .is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
                if rest.is_empty() || port {
                    &host[..=end]
                } else {
                    host
                }
            }
            None => host,
        };
    }
    host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            host
        }
    })
}

impl Guard {
    pub fn from_lists(hosts: &str, origins: &str, token: Option<String>) -> Guard {
        let split = |s: &str| {
            s.split(',')
                .map(|p| p.trim().trim_end_matches('/').to_owned())
                .filter(|p| !p.is_empty())
                .collect()
        };
        Guard {
            allowed_hosts: split(hosts),
            allowed_origins: split(origins),
            token: token.filter(|t| !t.is_empty()),
        }
    }

    fn host_ok(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        LOOPBACK.contains(&hostname(&host))
            || self.allowed_hosts.iter().any(|a| {
                a == "*" || a.eq_ignore_ascii_case(&host) || a.eq_ignore_ascii_case(hostname(&host))
            })
    }

    fn origin_ok(&self, origin: &str) -> bool {
        let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
        if self
            .allowed_origins
            .iter()
            .any(|a| a == "*" || a.eq_ignore_ascii_case(&origin))
        {
            return true;
        }
        match origin.split_once("://") {
            Some(("http" | "https", rest)) => LOOPBACK.contains(&hostname(rest)),
            _ => false,
        }
    }

    /// Checks one request's `Host`, `Origin` and `Authorization` headers.
    pub fn check(
        &self,
        host: Option<&str>,
        origin: Option<&str>,
        authorization: Option<&str>,
    ) -> Result<(), Refusal> {
        if let Some(host) = host
            && !self.host_ok(host)
        {
            return Err(Refusal::Forbidden(format!(
                "Host {host:?} is not allowed (set MCP_ALLOWED_HOSTS to serve other names)"
            )));
        }
        if let Some(origin) = origin
            && !self.origin_ok(origin)
        {
            return Err(Refusal::Forbidden(format!(
                "Origin {origin:?} is not allowed (set MCP_ALLOWED_ORIGINS to admit it)"
            )));
        }
        if let Some(expected) = &self.token {
            let given = authorization
                .and_then(|a| {
                    a.strip_prefix("Bearer ")
                        .or_else(|| a.strip_prefix("bearer "))
                })
                .map(str::trim)
                .ok_or(Refusal::Unauthorized(
                    "missing bearer token (Authorization: Bearer <MCP_AUTH_TOKEN>)",
                ))?;
            // Constant time, so the comparison does not leak how much matched.
            if !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
                return Err(Refusal::Unauthorized("invalid bearer token"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_and_origins_pass_by_default() {
        let g = Guard::default();
        for host in [
            "localhost",
            "localhost:8000",
            "127.0.0.1:1234",
            "[::1]:80",
            "LOCALHOST",
        ] {
            assert_eq!(g.check(Some(host), None, None), Ok(()), "{host}");
        }
        for origin in [
            "http://localhost:6274",
            "https://127.0.0.1",
            "http://[::1]:3000",
        ] {
            assert_eq!(g.check(None, Some(origin), None), Ok(()), "{origin}");
        }
        assert!(g.check(Some("evil.example.com"), None, None).is_err());
        assert!(g.check(Some("localhost.evil.com"), None, None).is_err());
        for host in ["[::1]evil.com", "[::1]:80evil", "[::1]:", "[::1"] {
            assert!(g.check(Some(host), None, None).is_err(), "{host}");
        }
        assert!(g.check(None, Some("http://[::1]evil.com"), None).is_err());
        assert!(
            g.check(None, Some("http://evil.example.com"), None)
                .is_err()
        );
        assert!(g.check(None, Some("null"), None).is_err());
    }

    #[test]
    fn configured_lists_extend_the_defaults() {
        let g = Guard::from_lists(
            "mcp.internal, api.example.com:443",
            "https://app.example.com/",
            None,
        );
        assert!(
            g.check(
                Some("mcp.internal:8000"),
                Some("https://app.example.com"),
                None
            )
            .is_ok()
        );
        assert!(g.check(Some("api.example.com:443"), None, None).is_ok());
        assert!(g.check(Some("other.example.com"), None, None).is_err());
        let any = Guard::from_lists("*", "*", None);
        assert!(any.check(Some("x.y"), Some("https://z"), None).is_ok());
    }

    #[test]
    fn bearer_token_is_required_when_configured() {
        let g = Guard::from_lists("", "", Some("s3cret".into()));
        assert!(matches!(
            g.check(None, None, None),
            Err(Refusal::Unauthorized(_))
        ));
        assert!(matches!(
            g.check(None, None, Some("Bearer wrong")),
            Err(Refusal::Unauthorized(_))
        ));
        assert!(matches!(
            g.check(None, None, Some("Basic s3cret")),
            Err(Refusal::Unauthorized(_))
        ));
        assert_eq!(g.check(None, None, Some("Bearer s3cret")), Ok(()));
        assert_eq!(Guard::from_lists("", "", Some(String::new())).token, None);
    }
}
