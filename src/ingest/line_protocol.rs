//! InfluxDB line protocol (`measurement,tag=v field=1.5,n=3i 1700000000000000000`),
//! parsed line by line with InfluxData's own parser
//! (`influxdb-line-protocol`). Every numeric field becomes a series of its
//! own; booleans are stored as 0 and 1; string fields are refused.

use chrono::{DateTime, Utc};
use influxdb_line_protocol::{FieldValue, parse_lines};

use super::{Chunker, IngestError, identity};
use crate::domain::{SeriesPoints, batch::in_range, cut};

/// The unit of the timestamps in a body (`precision=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Nanoseconds,
    Microseconds,
    Milliseconds,
    Seconds,
}

impl Precision {
    /// InfluxDB 2's names (`ns`, `us`, `ms`, `s`) and 1.x's (`n`, `u`);
    /// nanoseconds when absent.
    pub fn parse(text: Option<&str>) -> Result<Precision, IngestError> {
        Ok(match text.unwrap_or("ns") {
            "ns" | "n" => Precision::Nanoseconds,
            "us" | "u" | "µs" => Precision::Microseconds,
            "ms" => Precision::Milliseconds,
            "s" => Precision::Seconds,
            other => {
                return Err(IngestError::Invalid(format!(
                    "precision {} is not one of ns, us, ms, s",
                    cut(other)
                )));
            }
        })
    }

    fn time(self, t: i64) -> Option<DateTime<Utc>> {
        match self {
            Precision::Nanoseconds => Some(DateTime::from_timestamp_nanos(t)),
            Precision::Microseconds => DateTime::from_timestamp_micros(t),
            Precision::Milliseconds => DateTime::from_timestamp_millis(t),
            Precision::Seconds => DateTime::from_timestamp(t, 0),
        }
    }
}

/// A body's lines, fed in pieces that end at line ends.
pub struct Parser {
    precision: Precision,
    /// Lines without a timestamp take this one, as InfluxDB takes its clock.
    now: DateTime<Utc>,
    line: usize,
    chunker: Chunker,
    /// Fields written.
    pub fields: u64,
}

impl Parser {
    pub fn new(precision: Precision) -> Parser {
        Parser {
            precision,
            now: Utc::now(),
            line: 0,
            chunker: Chunker::default(),
            fields: 0,
        }
    }

    /// Parses whole lines (`text` ends at a line end, or is the body's last
    /// piece), returning the chunks that filled. The first bad line fails
    /// the body, named by its number.
    pub fn feed(&mut self, text: &str) -> Result<Vec<Vec<SeriesPoints>>, IngestError> {
        let mut full = Vec::new();
        let text = text.strip_suffix('\n').unwrap_or(text);
        for line in text.split('\n') {
            self.line += 1;
            let line = line.strip_suffix('\r').unwrap_or(line);
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            self.line_of(trimmed).map_err(|why| {
                IngestError::Invalid(format!("line {}: {why} ({})", self.line, cut(trimmed)))
            })?;
            if self.chunker.is_full() {
                full.push(self.chunker.take());
            }
        }
        Ok(full)
    }

    /// What is left once the body ended.
    pub fn finish(mut self) -> Option<Vec<SeriesPoints>> {
        (!self.chunker.is_empty()).then(|| self.chunker.take())
    }

    /// The number of the last line read, for errors raised after it.
    pub fn line(&self) -> usize {
        self.line
    }

    fn line_of(&mut self, text: &str) -> Result<(), String> {
        let parsed = parse_lines(text)
            .next()
            .ok_or("an empty line")?
            .map_err(|e| e.to_string())?;
        let time = match parsed.timestamp {
            None => self.now,
            Some(t) => self
                .precision
                .time(t)
                .filter(|t| in_range(*t))
                .ok_or_else(|| format!("timestamp {t} is outside the years 1 to 9999"))?,
        };
        let measurement = parsed.series.measurement.as_str();
        let tags: Vec<(&str, &str)> = parsed
            .series
            .tag_set
            .iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        for (field, value) in &parsed.field_set {
            let value = match value {
                FieldValue::F64(v) => *v,
                FieldValue::I64(v) => *v as f64,
                FieldValue::U64(v) => *v as f64,
                FieldValue::Boolean(b) => f64::from(u8::from(*b)),
                FieldValue::String(_) => {
                    return Err(format!(
                        "field {} is a string; only numbers and booleans are stored",
                        cut(field.as_str())
                    ));
                }
            };
            if !value.is_finite() {
                return Err(format!(
                    "field {} is {value}; only finite values are stored",
                    cut(field.as_str())
                ));
            }
            let key = identity::influx(measurement, field.as_str(), tags.iter().copied())?;
            self.chunker.push(&key, time, value);
            self.fields += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(precision: &str, text: &str) -> Result<Vec<SeriesPoints>, IngestError> {
        let mut p = Parser::new(Precision::parse(Some(precision))?);
        let mut out: Vec<SeriesPoints> = p.feed(text)?.into_iter().flatten().collect();
        out.extend(p.finish().into_iter().flatten());
        Ok(out)
    }

    #[test]
    fn every_numeric_type_and_precision() {
        let got = all(
            "s",
            "cpu,host=a usage=1.5,n=3i,u=7u,up=true 1700000000\n\n# comment\nmem,host=a free=2 1700000001\n",
        )
        .unwrap();
        let value = |metric: &str| {
            let s = got.iter().find(|s| s.metric == metric).unwrap();
            (s.points[0].0.timestamp(), s.points[0].1)
        };
        assert_eq!(value("cpu.usage"), (1_700_000_000, 1.5));
        assert_eq!(value("cpu.n"), (1_700_000_000, 3.0));
        assert_eq!(value("cpu.u"), (1_700_000_000, 7.0));
        assert_eq!(value("cpu.up"), (1_700_000_000, 1.0));
        assert_eq!(value("mem.free"), (1_700_000_001, 2.0));
        for (p, t) in [
            ("ms", 1_700_000_000_000i64),
            ("us", 1_700_000_000_000_000),
            ("ns", 1_700_000_000_000_000_000),
        ] {
            let got = all(p, &format!("m v=1 {t}")).unwrap();
            assert_eq!(got[0].points[0].0.timestamp(), 1_700_000_000, "{p}");
        }
    }

    #[test]
    fn the_first_bad_line_is_named() {
        let e = all("ns", "m v=1 1\nm v=2 2\nm s=\"text\" 3\nm v=oops 4\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("line 3: field s is a string"), "{e}");
        let e = all("ns", "m v=1 1\nnot line protocol\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("line 2:"), "{e}");
        let e = all("s", "m v=1 300000000000\n").unwrap_err().to_string();
        assert!(e.contains("9999"), "{e}");
        assert!(Precision::parse(Some("h")).is_err());
    }
}
