//! The scopes a token can carry. Each tool names the one it needs next to
//! its definition (`tools::Spec::scope`); the protected-resource metadata
//! lists them all.

use std::fmt;

bitflags::bitflags! {
    /// A set of scopes.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct Scopes: u8 {
        /// Query, statistics, listings, charts, resources, stored runs and models.
        const READ = 1;
        /// Ingest points.
        const WRITE = 1 << 1;
        /// Anomalies, trends, training and forecasts, which write run records.
        const ANALYTICS = 1 << 2;
    }
}

/// The names, in the order the metadata lists them.
const NAMES: [(Scopes, &str); 3] = [
    (Scopes::READ, "timeseries:read"),
    (Scopes::WRITE, "timeseries:write"),
    (Scopes::ANALYTICS, "analytics:run"),
];

impl Scopes {
    /// One scope by its name; `None` for any other (an issuer's `openid`,
    /// `profile` … are not ours and are ignored).
    pub fn named(name: &str) -> Option<Scopes> {
        NAMES.iter().find(|(_, n)| *n == name).map(|(s, _)| *s)
    }

    /// [`Scopes::named`], or an error that lists the names.
    pub fn parse_name(name: &str) -> Result<Scopes, String> {
        Scopes::named(name).ok_or_else(|| {
            format!(
                "unknown scope {name:?}; use {}",
                Scopes::all_names().join(", ")
            )
        })
    }

    /// Ours among space-separated names (the `scope` claim's form).
    pub fn parse_claim(claim: &str) -> Scopes {
        claim
            .split_ascii_whitespace()
            .filter_map(Scopes::named)
            .collect()
    }

    /// Every name, for `scopes_supported`.
    pub fn all_names() -> Vec<&'static str> {
        NAMES.iter().map(|(_, n)| *n).collect()
    }

    pub fn names(self) -> Vec<&'static str> {
        NAMES
            .iter()
            .filter(|(s, _)| self.contains(*s))
            .map(|(_, n)| *n)
            .collect()
    }
}

/// Space-separated names, as `scope` claims and `WWW-Authenticate` write them.
impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_foreign_scopes_are_ignored() {
        let s = Scopes::parse_claim("openid timeseries:read  analytics:run profile");
        assert_eq!(s, Scopes::READ | Scopes::ANALYTICS);
        assert_eq!(s.to_string(), "timeseries:read analytics:run");
        assert_eq!(
            Scopes::parse_claim(&Scopes::all().to_string()),
            Scopes::all()
        );
        assert_eq!(Scopes::named("timeseries:admin"), None);
        assert_eq!(Scopes::parse_claim(""), Scopes::empty());
    }
}
