//! InfluxDB line protocol (`measurement,tag=v field=1.5,n=3i 1700000000000000000`),
//! parsed line by line with InfluxData's own parser
//! (`influxdb-line-protocol`). Every numeric field becomes a series of its
//! own; booleans are stored as 0 and 1; string fields are refused.

use chrono::{DateTime, Utc};
use influxdb_line_protocol::{FieldValue, parse_lines};

use super::{Chunker, IngestError, Tally, identity};
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
    tally: std::sync::Arc<Tally>,
}

impl Parser {
    pub fn new(precision: Precision, tally: std::sync::Arc<Tally>) -> Parser {
        Parser {
            precision,
            now: Utc::now(),
            line: 0,
            chunker: Chunker::default(),
            tally,
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
            self.tally.saw(1);
        }
        Ok(())
    }
}

/// Text read at a time from a body or a file.
const BLOCK: usize = 1 << 20;

/// The chunks of line protocol read from `input`, a block at a time, so
/// memory does not follow the input's size; at most `max` bytes of text
/// (what a compressed body may inflate to).
pub struct Chunks<R: std::io::Read> {
    input: R,
    parser: Option<Parser>,
    buf: Vec<u8>,
    ready: std::collections::VecDeque<Vec<SeriesPoints>>,
    read: u64,
    max: u64,
    failed: bool,
}

impl<R: std::io::Read> Chunks<R> {
    pub fn new(
        input: R,
        precision: Precision,
        max: u64,
        tally: std::sync::Arc<Tally>,
    ) -> Chunks<R> {
        Chunks {
            input,
            parser: Some(Parser::new(precision, tally)),
            buf: Vec::with_capacity(BLOCK),
            ready: Default::default(),
            read: 0,
            max,
            failed: false,
        }
    }

    /// Reads a block and parses its whole lines; `false` at the end.
    fn fill(&mut self) -> Result<bool, IngestError> {
        let kept = self.buf.len();
        self.buf.resize(kept + BLOCK, 0);
        let n = loop {
            match self.input.read(&mut self.buf[kept..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(IngestError::Invalid(format!(
                        "the body could not be read: {e}"
                    )));
                }
            }
        };
        self.buf.truncate(kept + n);
        self.read += n as u64;
        if self.read > self.max {
            return Err(IngestError::TooLarge(format!(
                "the body inflates past {} bytes (INGEST_MAX_DECODED_MIB)",
                self.max
            )));
        }
        let Some(parser) = self.parser.as_mut() else {
            return Ok(false);
        };
        // Whole lines now; at the end, whatever is left.
        let end = if n == 0 {
            self.buf.len()
        } else {
            match self.buf.iter().rposition(|&b| b == b'\n') {
                Some(i) => i + 1,
                None => return Ok(true),
            }
        };
        let text = std::str::from_utf8(&self.buf[..end]).map_err(|e| {
            IngestError::Invalid(format!(
                "line {}: the body is not UTF-8 ({e})",
                parser.line() + 1
            ))
        })?;
        self.ready.extend(parser.feed(text)?);
        self.buf.drain(..end);
        if n == 0 {
            self.ready
                .extend(self.parser.take().and_then(Parser::finish));
        }
        Ok(n > 0)
    }
}

impl<R: std::io::Read> Iterator for Chunks<R> {
    type Item = Result<Vec<SeriesPoints>, IngestError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(chunk) = self.ready.pop_front() {
                return Some(Ok(chunk));
            }
            if self.failed || self.parser.is_none() {
                return None;
            }
            if let Err(e) = self.fill() {
                self.failed = true;
                return Some(Err(e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(precision: &str, text: &str) -> Result<Vec<SeriesPoints>, IngestError> {
        let mut p = Parser::new(Precision::parse(Some(precision))?, Default::default());
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

    #[test]
    fn a_body_reads_in_blocks_whatever_its_size() {
        let text: String = (0..200_000)
            .map(|i| format!("m,host=h{} v={i} {i}\n", i % 7))
            .collect();
        assert!(text.len() > 2 * BLOCK);
        let mut points = 0;
        for chunk in Chunks::new(
            text.as_bytes(),
            Precision::Seconds,
            u64::MAX,
            Default::default(),
        ) {
            points += chunk.unwrap().iter().map(|s| s.points.len()).sum::<usize>();
        }
        assert_eq!(points, 200_000);
        let last_line_without_newline = Chunks::new(
            &b"m v=1 1\nm v=2 2"[..],
            Precision::Seconds,
            99,
            Default::default(),
        );
        assert_eq!(
            last_line_without_newline
                .flat_map(|c| c.unwrap())
                .map(|s| s.points.len())
                .sum::<usize>(),
            2
        );
        let mut too_big = Chunks::new(
            text.as_bytes(),
            Precision::Seconds,
            1000,
            Default::default(),
        );
        assert!(matches!(
            too_big.next(),
            Some(Err(IngestError::TooLarge(_)))
        ));
    }
}
