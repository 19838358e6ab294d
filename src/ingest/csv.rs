//! CSV for `mcp-server import`: `series,time,value[,tags]` (tags a JSON
//! object), or `time,value` with the series given on the command line. A
//! header row is skipped. Times are RFC 3339 (`T` or a space between date
//! and time, as psql prints them) or Unix seconds.

use std::collections::HashMap;
use std::io::Read;

use chrono::{DateTime, NaiveDateTime, Utc};

use super::{Chunker, IngestError};
use crate::domain::{Series, SeriesPoints, Tags, batch::in_range, echo};

/// Records read from a CSV source, a chunk at a time.
pub struct Chunks<R: Read> {
    records: csv::Reader<R>,
    /// `time,value` rows belong to this series.
    series: Option<SeriesPoints>,
    /// Series met so far with their tags, so a row costs no JSON parse
    /// when its tags column repeats the last one seen for its series.
    seen: HashMap<(String, String), SeriesPoints>,
    chunker: Chunker,
    first: bool,
    done: bool,
    /// Rows read (header excluded).
    pub rows: u64,
}

impl<R: Read> Chunks<R> {
    pub fn new(input: R, series: Option<Series>, chunk: usize) -> Chunks<R> {
        Chunks {
            records: csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .trim(csv::Trim::All)
                .from_reader(input),
            series: series.map(|s| SeriesPoints::named(s, Tags::empty())),
            seen: HashMap::new(),
            chunker: Chunker::new(chunk),
            first: true,
            done: false,
            rows: 0,
        }
    }

    fn row(&mut self, record: &csv::StringRecord) -> Result<(), String> {
        let (key, time, value) = match &self.series {
            Some(series) => {
                if record.len() != 2 {
                    return Err(format!(
                        "expected 2 columns (time,value) with --series, got {}",
                        record.len()
                    ));
                }
                (series.clone(), &record[0], &record[1])
            }
            None => {
                if !(3..=4).contains(&record.len()) {
                    return Err(format!(
                        "expected 3 or 4 columns (series,time,value[,tags]), got {}; \
                         a file of time,value needs --series",
                        record.len()
                    ));
                }
                let tags = record.get(3).unwrap_or("");
                let cache_key = (record[0].to_owned(), tags.to_owned());
                let key = match self.seen.get(&cache_key) {
                    Some(k) => k.clone(),
                    None => {
                        let key = series_of(&record[0], tags)?;
                        if self.seen.len() >= 100_000 {
                            self.seen.clear();
                        }
                        self.seen.insert(cache_key, key.clone());
                        key
                    }
                };
                (key, &record[1], &record[2])
            }
        };
        let time = parse_time(time)?;
        let value: f64 = value
            .parse()
            .map_err(|_| format!("value {} is not a number", echo(value)))?;
        if !value.is_finite() {
            return Err(format!("value {value} is not finite"));
        }
        self.chunker.push(&key, time, value);
        Ok(())
    }
}

fn series_of(name: &str, tags: &str) -> Result<SeriesPoints, String> {
    let series = Series::parse(name).map_err(|e| e.to_string())?;
    let tags = if tags.is_empty() {
        Tags::empty()
    } else {
        match serde_json::from_str(tags) {
            Ok(serde_json::Value::Object(map)) => Tags::from_object(map)?,
            _ => return Err(format!("tags {} are not a JSON object", echo(tags))),
        }
    };
    Ok(SeriesPoints::named(series, tags))
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    let time = DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z").map(|t| t.to_utc()))
        .or_else(|_| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").map(|t| t.and_utc())
        })
        .ok()
        .or_else(|| {
            let secs: f64 = text.parse().ok()?;
            DateTime::from_timestamp_micros((secs * 1e6).round() as i64)
        })
        .ok_or_else(|| {
            format!(
                "time {} is neither RFC 3339 (2026-01-01T00:00:00Z) nor Unix seconds",
                echo(text)
            )
        })?;
    if !in_range(time) {
        return Err(format!(
            "time {} is outside the years 1 to 9999",
            echo(text)
        ));
    }
    Ok(time)
}

impl<R: Read> Iterator for Chunks<R> {
    type Item = Result<Vec<SeriesPoints>, IngestError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut record = csv::StringRecord::new();
        while !self.chunker.is_full() {
            match self.records.read_record(&mut record) {
                Ok(false) => {
                    self.done = true;
                    break;
                }
                Ok(true) => {}
                Err(e) => {
                    self.done = true;
                    return Some(Err(IngestError::Invalid(format!("CSV: {e}"))));
                }
            }
            let line = record.position().map_or(0, |p| p.line());
            if std::mem::take(&mut self.first) && is_header(&record) {
                continue;
            }
            self.rows += 1;
            if let Err(why) = self.row(&record) {
                self.done = true;
                return Some(Err(IngestError::Invalid(format!("line {line}: {why}"))));
            }
        }
        (!self.chunker.is_empty()).then(|| Ok(self.chunker.take()))
    }
}

/// A first row that names columns rather than holding values.
fn is_header(record: &csv::StringRecord) -> bool {
    record
        .iter()
        .any(|f| matches!(f.to_ascii_lowercase().as_str(), "time" | "value" | "series"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &str, series: Option<&str>) -> Result<Vec<SeriesPoints>, IngestError> {
        let chunks = Chunks::new(
            text.as_bytes(),
            series.map(|s| Series::parse(s).unwrap()),
            2,
        );
        let mut out = vec![];
        for c in chunks {
            out.extend(c?);
        }
        Ok(out)
    }

    #[test]
    fn both_layouts_with_a_header_and_tags() {
        let got = all(
            "series,time,value,tags\na,2026-01-01T00:00:00Z,1.5,\"{\"\"host\"\":\"\"x\"\"}\"\nb,2026-01-01 00:00:01+00,2,\na,1767225602,3\n",
            None,
        )
        .unwrap();
        let a: Vec<_> = got.iter().filter(|s| s.series.as_str() == "a").collect();
        assert_eq!(a.iter().map(|s| s.points.len()).sum::<usize>(), 2);
        assert!(a.iter().any(|s| s.tags.as_str() == r#"{"host":"x"}"#));
        let got = all("time,value\n2026-01-01T00:00:00Z,1\n", Some("cpu")).unwrap();
        assert_eq!(got[0].series.as_str(), "cpu");
    }

    #[test]
    fn a_bad_row_is_named_by_its_line() {
        let e = all("a,2026-01-01T00:00:00Z,1\na,yesterday,2\n", None)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("line 2: time \"yesterday\""), "{e}");
        let e = all("2026-01-01T00:00:00Z,1\n", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--series"), "{e}");
        let e = all("a,2026-01-01T00:00:00Z,NaN\n", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not finite"), "{e}");
    }
}
