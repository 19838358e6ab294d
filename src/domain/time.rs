//! Time windows and bucket widths, parsed at the edge.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use super::echo;

/// An optional, ordered time window: `start` inclusive, `end` exclusive.
/// Flattened into tools' arguments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawWindow")]
pub struct Window {
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

// The wire form (no doc comment: schemars would lift it into the tool's
// own description when flattened).
#[derive(Deserialize, JsonSchema)]
struct RawWindow {
    /// Inclusive start (RFC 3339). Absent: from the first point.
    #[schemars(extend("format" = "date-time"))]
    start: Option<String>,
    /// Exclusive end (RFC 3339). Absent: through the last point.
    #[schemars(extend("format" = "date-time"))]
    end: Option<String>,
}

fn time(field: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, String> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| {
                    format!(
                        "{field} {} is not an RFC 3339 timestamp ({e}), e.g. 2026-01-01T00:00:00Z",
                        echo(v)
                    )
                })
        })
        .transpose()
}

/// One RFC 3339 instant, parsed while the arguments are read: no `String`
/// is kept per point of an ingest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub DateTime<Utc>);

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Borrowed from the request text unless it holds escapes.
        let text = Cow::<'de, str>::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| Timestamp(t.with_timezone(&Utc)))
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "{} is not an RFC 3339 timestamp ({e}), e.g. 2026-01-01T00:00:00Z",
                    echo(&text)
                ))
            })
    }
}

impl JsonSchema for Timestamp {
    fn schema_name() -> Cow<'static, str> {
        "Timestamp".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "format": "date-time",
            "description": "RFC 3339 timestamp, e.g. 2026-01-01T00:00:00Z.",
        })
    }
}

impl TryFrom<RawWindow> for Window {
    type Error = String;
    fn try_from(raw: RawWindow) -> Result<Self, String> {
        Window::new(
            time("start", raw.start.as_deref())?,
            time("end", raw.end.as_deref())?,
        )
    }
}

impl Window {
    pub fn new(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> Result<Self, String> {
        if let (Some(s), Some(e)) = (start, end)
            && s >= e
        {
            return Err(format!("start ({s}) must be before end ({e})"));
        }
        Ok(Window { start, end })
    }

    /// A stable text form for cache keys.
    pub fn key(&self) -> String {
        let f = |t: Option<DateTime<Utc>>| {
            t.map(|t| t.timestamp_micros().to_string())
                .unwrap_or_else(|| "-".into())
        };
        format!("{}..{}", f(self.start), f(self.end))
    }
}

impl JsonSchema for Window {
    fn schema_name() -> Cow<'static, str> {
        RawWindow::schema_name()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        RawWindow::json_schema(generator)
    }
}

/// Bucket widths between 1 s and 366 days.
const MAX_BUCKET_SECONDS: i64 = 366 * 86_400;
const UNITS: [(char, i64); 5] = [
    ('w', 604_800),
    ('d', 86_400),
    ('h', 3600),
    ('m', 60),
    ('s', 1),
];

/// A bucket width such as `30s`, `5m`, `1h`, `1d`, `1w`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Bucket {
    seconds: i64,
}

impl Bucket {
    pub const HOUR: Bucket = Bucket { seconds: 3600 };
    pub const DAY: Bucket = Bucket { seconds: 86_400 };

    pub fn parse(text: &str) -> Result<Bucket, String> {
        let bad = || {
            format!(
                "bucket {} is not a width like 30s, 5m, 1h, 1d or 1w",
                echo(text)
            )
        };
        let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (n, unit) = text.split_at(split);
        let n: i64 = n.parse().map_err(|_| bad())?;
        let mut chars = unit.chars();
        let (Some(unit), None) = (chars.next(), chars.next()) else {
            return Err(bad());
        };
        let (_, factor) = UNITS.iter().find(|(u, _)| *u == unit).ok_or_else(bad)?;
        n.checked_mul(*factor)
            .filter(|s| (1..=MAX_BUCKET_SECONDS).contains(s))
            .map(|seconds| Bucket { seconds })
            .ok_or_else(|| format!("bucket {} must be between 1s and 366d", echo(text)))
    }

    pub fn seconds(self) -> i64 {
        self.seconds
    }

    /// For `date_bin`.
    pub fn interval(self) -> String {
        format!("{} seconds", self.seconds)
    }
}

impl TryFrom<String> for Bucket {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        Bucket::parse(&text)
    }
}

/// The largest whole unit: `60m` reads back as `1h`.
impl From<Bucket> for String {
    fn from(b: Bucket) -> String {
        let (unit, factor) = UNITS
            .iter()
            .find(|(_, f)| b.seconds % f == 0)
            .copied()
            .unwrap_or(('s', 1));
        format!("{}{unit}", b.seconds / factor)
    }
}

impl JsonSchema for Bucket {
    fn schema_name() -> Cow<'static, str> {
        "Bucket".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A width: a whole number and s, m, h, d or w (30s, 5m, 1h, 1d, 1w), at most 366d",
            "pattern": "^[0-9]+[smhdw]$",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn buckets() {
        assert_eq!(Bucket::parse("90s").unwrap().seconds(), 90);
        assert_eq!(Bucket::parse("1h").unwrap().seconds(), 3600);
        assert_eq!(Bucket::parse("2w").unwrap().seconds(), 1_209_600);
        assert_eq!(String::from(Bucket::parse("60m").unwrap()), "1h");
        assert_eq!(String::from(Bucket::parse("90s").unwrap()), "90s");
        for bad in [
            "",
            "h",
            "1",
            "1y",
            "0m",
            "-1h",
            "1.5h",
            "1hh",
            "999999999999999999d",
        ] {
            assert!(Bucket::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn windows_parse_at_the_edge() {
        let w: Window = serde_json::from_value(
            json!({ "start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00+01:00" }),
        )
        .unwrap();
        assert!(w.start < w.end);
        let reversed = json!({ "start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z" });
        assert!(serde_json::from_value::<Window>(reversed).is_err());
        let message = serde_json::from_value::<Window>(json!({ "start": "yesterday" }))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("start \"yesterday\" is not an RFC 3339"),
            "{message}"
        );
        assert_eq!(
            serde_json::from_value::<Window>(json!({})).unwrap(),
            Window::default()
        );
    }
}
