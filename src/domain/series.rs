//! Series names: the rule of the table's CHECK constraint, stated once.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// The JSON Schema form of the rule (and of `timeseries_data`'s CHECK).
pub const SERIES_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,199}$";
const MAX_LEN: usize = 200;

/// A series name, valid once it exists: 1–200 characters of
/// `A-Za-z0-9_.:/-`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Series(String);

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "invalid series name {0}: use 1-200 characters of letters, digits and _ . : / -, starting with a letter or digit"
)]
pub struct InvalidSeries(String);

impl Series {
    pub fn parse(name: &str) -> Result<Series, InvalidSeries> {
        Series::try_from(name.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Series {
    type Error = InvalidSeries;
    fn try_from(name: String) -> Result<Self, InvalidSeries> {
        let ok = (1..=MAX_LEN).contains(&name.len())
            && name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.:/-".contains(c));
        if ok {
            Ok(Series(name))
        } else {
            Err(InvalidSeries(super::echo(&name)))
        }
    }
}

impl From<Series> for String {
    fn from(s: Series) -> String {
        s.0
    }
}

impl std::fmt::Display for Series {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl JsonSchema for Series {
    fn schema_name() -> Cow<'static, str> {
        "Series".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "Series name: letters, digits and _ . : / -, starting with a letter or digit",
            "pattern": SERIES_PATTERN,
            "minLength": 1,
            "maxLength": MAX_LEN,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_check_constraint() {
        for ok in ["cpu", "host-1/cpu.user", "a:b_c", "9", &"x".repeat(200)] {
            assert!(Series::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-cpu", "cpu load", "é", &"x".repeat(201)] {
            assert!(Series::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_huge_bad_name_is_not_echoed_whole() {
        let message = Series::parse(&"é".repeat(100_000)).unwrap_err().to_string();
        assert!(message.len() < 400, "{message}");
        assert!(message.contains("100000 characters"), "{message}");
    }
}
