//! The analytics tools, one module per family, registered into the MCP tool
//! registry.

pub mod ingest;
pub mod series;

use crate::mcp::tools::ToolRegistry;

pub fn register(reg: &mut ToolRegistry) {
    ingest::register(reg);
    series::register(reg);
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
