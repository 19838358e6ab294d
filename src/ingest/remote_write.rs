//! Prometheus remote write 1.0: a snappy-compressed (block format) protobuf
//! `WriteRequest` (`prompb`). The messages are declared here for prost, with
//! only the fields we read (the series, their samples, and the metric
//! metadata); others (exemplars) are skipped by the decoder.

use std::sync::Arc;

use chrono::DateTime;
use prost::Message;

use super::{Chunker, IngestError, Tally, identity};
pub use crate::domain::batch::NonFinite;
use crate::domain::{MetricKind, SeriesPoints, batch::in_range, cut};
use crate::models;

#[derive(Clone, PartialEq, Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    /// Native histograms: not stored, only counted.
    #[prost(message, repeated, tag = "4")]
    pub histograms: Vec<Histogram>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// What a metric family is (`WriteRequest.metadata`, field 3), which
/// Prometheus sends by default, in requests of their own.
#[derive(Clone, PartialEq, Message)]
pub struct MetricMetadata {
    /// Unknown 0, counter 1, gauge 2, histogram 3, gauge histogram 4,
    /// summary 5, info 6, stateset 7.
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    #[prost(string, tag = "4")]
    pub help: String,
    #[prost(string, tag = "5")]
    pub unit: String,
}

impl MetricMetadata {
    /// As the catalog keeps it: the family's name and strings cut to the
    /// label bounds, NUL dropped (PostgreSQL's text cannot hold it).
    fn kept(self) -> Option<models::MetricMetadata> {
        let clean = |s: String, max: usize| -> String {
            let s = if s.contains('\0') {
                s.replace('\0', "")
            } else {
                s
            };
            match s.char_indices().nth(max) {
                Some((at, _)) => s[..at].to_owned(),
                None => s,
            }
        };
        let metric = clean(self.metric_family_name, identity::MAX_VALUE);
        (!metric.is_empty()).then(|| models::MetricMetadata {
            metric,
            kind: MetricKind::from_prometheus(self.r#type),
            help: clean(self.help, identity::MAX_VALUE),
            unit: clean(self.unit, identity::MAX_NAME),
        })
    }
}

/// A native histogram, whose fields are skipped.
#[derive(Clone, PartialEq, Message)]
pub struct Histogram {}

/// The NaN Prometheus writes to mark a series stale (it ended): a marker,
/// not a value.
pub const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// The protobuf of a snappy body, refused past `max` bytes before any is
/// inflated (its header states the length).
pub fn decompress(body: &[u8], max: usize) -> Result<Vec<u8>, IngestError> {
    let len = snap::raw::decompress_len(body).map_err(|e| {
        IngestError::Invalid(format!(
            "the body is not snappy block-compressed ({e}); remote write 1.0 sends \
             Content-Encoding: snappy"
        ))
    })?;
    if len > max {
        return Err(IngestError::TooLarge(format!(
            "the body inflates to {len} bytes, past the limit of {max} (INGEST_MAX_DECODED_MIB)"
        )));
    }
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| IngestError::Invalid(format!("the body does not decompress: {e}")))
}

/// The chunks of a snappy body, inflated on the first call (on the thread
/// that writes, not the one that read the body).
pub fn body_chunks(
    body: Vec<u8>,
    max: usize,
    non_finite: NonFinite,
    tally: Arc<Tally>,
) -> super::ChunkSource {
    let mut body = Some(body);
    let mut decoded: Option<Chunks> = None;
    Box::new(std::iter::from_fn(move || {
        if let Some(body) = body.take() {
            match decompress(&body, max) {
                Ok(raw) => decoded = Some(Chunks::new(raw, non_finite, Arc::clone(&tally))),
                Err(e) => return Some(Err(e)),
            }
        }
        decoded.as_mut()?.next()
    }))
}

/// The series of a decoded `WriteRequest`, a chunk at a time: the request
/// is walked field by field, so only the chunk being built is held besides
/// the decoded bytes.
pub struct Chunks {
    buf: Vec<u8>,
    at: usize,
    chunker: Chunker,
    non_finite: NonFinite,
    tally: Arc<Tally>,
    failed: bool,
}

impl Chunks {
    pub fn new(buf: Vec<u8>, non_finite: NonFinite, tally: Arc<Tally>) -> Chunks {
        Chunks {
            buf,
            at: 0,
            chunker: Chunker::default(),
            non_finite,
            tally,
            failed: false,
        }
    }

    /// The next `timeseries` field (1) of the request, skipping any other.
    fn next_series(&mut self) -> Result<Option<TimeSeries>, IngestError> {
        let bad = |e: prost::DecodeError| {
            IngestError::Invalid(format!("the body is not a protobuf WriteRequest: {e}"))
        };
        while self.at < self.buf.len() {
            let mut rest = &self.buf[self.at..];
            let before = rest.len();
            let key = prost::decode_length_delimiter(&mut rest).map_err(bad)?;
            let (field, wire) = (key >> 3, key & 7);
            let size = match wire {
                0 => {
                    prost::decode_length_delimiter(&mut rest).map_err(bad)?;
                    0
                }
                1 => 8,
                2 => prost::decode_length_delimiter(&mut rest).map_err(bad)?,
                5 => 4,
                _ => {
                    return Err(IngestError::Invalid(format!(
                        "the body is not a protobuf WriteRequest: wire type {wire}"
                    )));
                }
            };
            if size > rest.len() {
                return Err(IngestError::Invalid(
                    "the body is not a protobuf WriteRequest: a field runs past its end".into(),
                ));
            }
            let start = self.at + (before - rest.len());
            self.at = start + size;
            if field == 1 && wire == 2 {
                return TimeSeries::decode(&self.buf[start..start + size])
                    .map(Some)
                    .map_err(bad);
            }
            if field == 3 && wire == 2 {
                let m = MetricMetadata::decode(&self.buf[start..start + size]).map_err(bad)?;
                if let Some(m) = m.kept() {
                    self.tally.describe(m);
                }
            }
        }
        Ok(None)
    }

    fn add(&mut self, ts: TimeSeries) -> Result<(), IngestError> {
        // Native histograms are not stored: seen and skipped.
        self.tally.saw(ts.histograms.len());
        self.tally.skip(ts.histograms.len());
        if ts.samples.is_empty() {
            return Ok(());
        }
        let key = identity::prometheus(
            ts.labels
                .iter()
                .map(|l| (l.name.as_str(), l.value.as_str())),
        )
        .map_err(IngestError::Invalid)?;
        for s in &ts.samples {
            self.tally.saw(1);
            if !s.value.is_finite() {
                if s.value.to_bits() == STALE_NAN {
                    self.tally.skip(1);
                    continue;
                }
                if self.non_finite == NonFinite::Reject {
                    return Err(IngestError::Invalid(format!(
                        "series {} has a sample of {} at {} ms; only finite values are stored \
                         (INGEST_NON_FINITE=skip drops such samples instead)",
                        describe(&key),
                        s.value,
                        s.timestamp
                    )));
                }
                self.tally.skip(1);
                continue;
            }
            let time = DateTime::from_timestamp_millis(s.timestamp)
                .filter(|t| in_range(*t))
                .ok_or_else(|| {
                    IngestError::Invalid(format!(
                        "series {} has a sample at {} ms since the epoch, outside the years 1 to 9999",
                        describe(&key),
                        s.timestamp
                    ))
                })?;
            self.chunker.push(&key, time, s.value);
        }
        Ok(())
    }
}

/// A series for an error message: its metric and a cut of its labels.
fn describe(s: &SeriesPoints) -> String {
    format!("{} {}", s.metric, cut(s.tags.as_str()))
}

impl Iterator for Chunks {
    type Item = Result<Vec<SeriesPoints>, IngestError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        while !self.chunker.is_full() {
            let step = self.next_series().and_then(|ts| match ts {
                Some(ts) => self.add(ts).map(|()| true),
                None => Ok(false),
            });
            match step {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
        (!self.chunker.is_empty()).then(|| Ok(self.chunker.take()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(series: Vec<TimeSeries>) -> Vec<u8> {
        let raw = WriteRequest {
            timeseries: series,
            ..Default::default()
        }
        .encode_to_vec();
        snap::raw::Encoder::new().compress_vec(&raw).unwrap()
    }

    fn ts(name: &str, samples: &[(f64, i64)]) -> TimeSeries {
        TimeSeries {
            labels: vec![
                Label {
                    name: "__name__".into(),
                    value: name.into(),
                },
                Label {
                    name: "job".into(),
                    value: "t".into(),
                },
            ],
            samples: samples
                .iter()
                .map(|&(value, timestamp)| Sample { value, timestamp })
                .collect(),
            histograms: vec![],
        }
    }

    fn all(raw: Vec<u8>, policy: NonFinite) -> Result<Vec<SeriesPoints>, IngestError> {
        let tally = Arc::new(Tally::default());
        let mut out = vec![];
        for chunk in Chunks::new(raw, policy, tally) {
            out.extend(chunk?);
        }
        Ok(out)
    }

    #[test]
    fn series_decode_with_their_samples() {
        let raw = decompress(
            &body(vec![
                ts("up", &[(1.0, 1000), (2.0, 2000)]),
                ts("x", &[(3.0, 5)]),
            ]),
            1 << 20,
        )
        .unwrap();
        let got = all(raw, NonFinite::Reject).unwrap();
        assert_eq!(got.len(), 2);
        let up = got.iter().find(|s| s.metric == "up").unwrap();
        assert_eq!(up.points.len(), 2);
        assert_eq!(up.points[1].1, 2.0);
    }

    #[test]
    fn stale_markers_are_skipped_and_nan_follows_the_policy() {
        let stale = f64::from_bits(STALE_NAN);
        let raw = WriteRequest {
            timeseries: vec![ts("up", &[(stale, 1000), (1.0, 2000)])],
            ..Default::default()
        }
        .encode_to_vec();
        assert_eq!(all(raw, NonFinite::Reject).unwrap()[0].points.len(), 1);
        let raw = WriteRequest {
            timeseries: vec![ts("up", &[(f64::NAN, 1000), (1.0, 2000)])],
            ..Default::default()
        }
        .encode_to_vec();
        assert!(all(raw.clone(), NonFinite::Reject).is_err());
        assert_eq!(all(raw, NonFinite::Skip).unwrap()[0].points.len(), 1);
    }

    #[test]
    fn a_bomb_is_refused_before_it_inflates() {
        let raw = vec![0u8; 10 << 20];
        let small = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
        assert!(small.len() < 1 << 20);
        assert!(matches!(
            decompress(&small, 1 << 20),
            Err(IngestError::TooLarge(_))
        ));
        assert!(matches!(
            decompress(b"not snappy at all", 1 << 20),
            Err(IngestError::Invalid(_))
        ));
    }

    #[test]
    fn garbage_and_far_timestamps_are_refused() {
        assert!(all(vec![0x0a, 0xff, 0xff], NonFinite::Reject).is_err());
        let raw = WriteRequest {
            timeseries: vec![ts("up", &[(1.0, 300_000_000_000_000)])],
            ..Default::default()
        }
        .encode_to_vec();
        let e = all(raw, NonFinite::Reject).unwrap_err().to_string();
        assert!(e.contains("9999"), "{e}");
    }
}
