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

use crate::mcp::tools::{ToolError, ToolRegistry};

pub fn register(reg: &mut ToolRegistry) {
    analysis::register(reg);
    ingest::register(reg);
    models::register(reg);
    query::register(reg);
    records::register(reg);
    server::register(reg);
    series::register(reg);
}

/// A validated series name.
pub fn series_arg(name: &str) -> Result<String, ToolError> {
    valid_series(name).map_err(ToolError)?;
    Ok(name.to_owned())
}

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
