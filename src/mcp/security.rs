//! DNS-rebinding protection: the `Host` and `Origin` allow-lists.
//! Credentials are `crate::auth`'s.

/// Hosts a local server answers to: loopback names, any port.
const LOOPBACK: &[&str] = &["localhost", "127.0.0.1", "[::1]"];

#[derive(Debug, Clone, Default)]
pub struct Guard {
    /// Extra `Host` values (host or host:port); `*` allows any.
    pub allowed_hosts: Vec<String>,
    /// Extra `Origin` values (scheme://host[:port]); `*` allows any.
    pub allowed_origins: Vec<String>,
}

/// Why a request was refused (403).
#[derive(Debug, PartialEq, Eq)]
pub struct Forbidden(pub String);

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
    pub fn from_lists(hosts: &str, origins: &str) -> Guard {
        let split = |s: &str| {
            s.split(',')
                .map(|p| p.trim().trim_end_matches('/').to_owned())
                .filter(|p| !p.is_empty())
                .collect()
        };
        Guard {
            allowed_hosts: split(hosts),
            allowed_origins: split(origins),
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

    /// Checks one request's `Host` and `Origin` headers.
    pub fn check(&self, host: Option<&str>, origin: Option<&str>) -> Result<(), Forbidden> {
        if let Some(host) = host
            && !self.host_ok(host)
        {
            return Err(Forbidden(format!(
                "Host {host:?} is not allowed (set MCP_ALLOWED_HOSTS to serve other names)"
            )));
        }
        if let Some(origin) = origin
            && !self.origin_ok(origin)
        {
            return Err(Forbidden(format!(
                "Origin {origin:?} is not allowed (set MCP_ALLOWED_ORIGINS to admit it)"
            )));
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
            assert_eq!(g.check(Some(host), None), Ok(()), "{host}");
        }
        for origin in [
            "http://localhost:6274",
            "https://127.0.0.1",
            "http://[::1]:3000",
        ] {
            assert_eq!(g.check(None, Some(origin)), Ok(()), "{origin}");
        }
        assert!(g.check(Some("evil.example.com"), None).is_err());
        assert!(g.check(Some("localhost.evil.com"), None).is_err());
        for host in ["[::1]evil.com", "[::1]:80evil", "[::1]:", "[::1"] {
            assert!(g.check(Some(host), None).is_err(), "{host}");
        }
        assert!(g.check(None, Some("http://[::1]evil.com")).is_err());
        assert!(g.check(None, Some("http://evil.example.com")).is_err());
        assert!(g.check(None, Some("null")).is_err());
    }

    #[test]
    fn configured_lists_extend_the_defaults() {
        let g = Guard::from_lists(
            "mcp.internal, api.example.com:443",
            "https://app.example.com/",
        );
        assert!(
            g.check(Some("mcp.internal:8000"), Some("https://app.example.com"),)
                .is_ok()
        );
        assert!(g.check(Some("api.example.com:443"), None).is_ok());
        assert!(g.check(Some("other.example.com"), None).is_err());
        let any = Guard::from_lists("*", "*");
        assert!(any.check(Some("x.y"), Some("https://z")).is_ok());
    }
}
