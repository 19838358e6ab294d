//! Argument types shared by several tools, parsed at the edge.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::mcp::tools::ToolError;

// An optional time window, flattened into tools' arguments (no doc comment:
// schemars would lift it into the tool's own description).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct Window {
    /// Inclusive start (RFC 3339). Absent: from the first point.
    pub start: Option<String>,
    /// Exclusive end (RFC 3339). Absent: through the last point.
    pub end: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Range {
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

fn time(field: &str, value: &Option<String>) -> Result<Option<DateTime<Utc>>, ToolError> {
    value
        .as_deref()
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| ToolError(format!("{field} {v:?} is not an RFC 3339 timestamp ({e}), e.g. 2026-01-01T00:00:00Z")))
        })
        .transpose()
}

impl Window {
    pub fn parse(&self) -> Result<Range, ToolError> {
        let range = Range {
            start: time("start", &self.start)?,
            end: time("end", &self.end)?,
        };
        if let (Some(s), Some(e)) = (range.start, range.end)
            && s >= e
        {
            return Err(ToolError(format!("start ({s}) must be before end ({e})")));
        }
        Ok(range)
    }
}

impl Range {
    /// A stable text form for cache keys.
    pub fn key(&self) -> String {
        let f = |t: Option<DateTime<Utc>>| {
            t.map(|t| t.timestamp_micros().to_string())
                .unwrap_or_else(|| "-".into())
        };
        format!("{}..{}", f(self.start), f(self.end))
    }
}

/// A bucket width such as `30s`, `5m`, `1h`, `1d`, `1w`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub seconds: i64,
}

impl Bucket {
    pub fn parse(text: &str) -> Result<Bucket, ToolError> {
        let bad = || {
            ToolError(format!(
                "bucket {text:?} is not a width like 30s, 5m, 1h, 1d or 1w"
            ))
        };
        let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (n, unit) = text.split_at(split);
        let n: i64 = n.parse().map_err(|_| bad())?;
        let unit = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 604_800,
            _ => return Err(bad()),
        };
        let seconds = n
            .checked_mul(unit)
            .filter(|s| (1..=366 * 86_400).contains(s))
            .ok_or_else(|| ToolError(format!("bucket {text:?} must be between 1s and 366d")))?;
        Ok(Bucket { seconds })
    }

    /// For `date_bin`.
    pub fn interval(&self) -> String {
        format!("{} seconds", self.seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets() {
        assert_eq!(Bucket::parse("90s").unwrap().seconds, 90);
        assert_eq!(Bucket::parse("1h").unwrap().seconds, 3600);
        assert_eq!(Bucket::parse("2w").unwrap().seconds, 1_209_600);
        for bad in [
            "",
            "h",
            "1",
            "1y",
            "0m",
            "-1h",
            "1.5h",
            "999999999999999999d",
        ] {
            assert!(Bucket::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn windows() {
        let w = Window {
            start: Some("2026-01-01T00:00:00Z".into()),
            end: Some("2026-01-02T00:00:00+01:00".into()),
        };
        assert!(w.parse().is_ok());
        let reversed = Window {
            start: w.end.clone(),
            end: w.start.clone(),
        };
        assert!(reversed.parse().is_err());
        assert!(
            Window {
                start: Some("yesterday".into()),
                end: None
            }
            .parse()
            .is_err()
        );
    }
}
