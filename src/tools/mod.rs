//! The analytics tools, one module per family, registered into the MCP tool
//! registry.

pub mod analysis;
pub mod args;
pub mod ingest;
pub mod models;
pub mod query;
pub mod records;
pub mod series;
pub mod server;

use crate::mcp::tools::ToolRegistry;

pub fn register(reg: &mut ToolRegistry) {
    // The order of tools/list: data in, data out, analyses, models, records.
    ingest::register(reg);
    query::register(reg);
    series::register(reg);
    analysis::register(reg);
    models::register(reg);
    records::register(reg);
    server::register(reg);
}

/// A series name, valid once deserialized (parse, don't validate).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct Series(String);

impl TryFrom<String> for Series {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        valid_series(&name)?;
        Ok(Series(name))
    }
}

impl Series {
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_string(self) -> String {
        self.0
    }
}

impl schemars::JsonSchema for Series {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Series".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "Series name: letters, digits and _ . : / -, starting with a letter or digit",
            "pattern": SERIES_PATTERN,
            "minLength": 1,
            "maxLength": 200,
        })
    }
}

/// The JSON Schema form of [`valid_series`] (and of the table's CHECK).
pub const SERIES_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,199}$";

/// Numbers for the human-readable text: at most 6 decimals, `-` for none.
pub fn fmt_num(v: Option<f64>) -> String {
    v.map(|x| {
        format!("{x:.6}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    })
    .unwrap_or_else(|| "-".into())
}

/// Series names: 1–200 characters of `A-Za-z0-9_.:/-`, starting with a
/// letter or digit (the same rule as the table's CHECK constraint).
pub fn valid_series(name: &str) -> Result<(), String> {
    let ok = (1..=200).contains(&name.len())
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.:/-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid series name {name:?}: use 1-200 characters of letters, digits and _ . : / -, starting with a letter or digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn series_names() {
        for ok in ["cpu", "host-1/cpu.user", "a:b_c", "9"] {
            assert!(super::valid_series(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-cpu", "cpu load", "é", &"x".repeat(201)] {
            assert!(super::valid_series(bad).is_err(), "{bad}");
        }
    }
}
