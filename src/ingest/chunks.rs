//! Samples grouped by series into chunks of bounded size, as the parsers
//! produce them and the store writes them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::domain::SeriesPoints;

/// Points per chunk: what one `COPY` carries.
pub const CHUNK_POINTS: usize = 50_000;
/// Bytes of names and tags per chunk: a chunk of few points with long
/// label sets closes early, so a chunk stays some MiB (it is held, copied
/// into the `COPY` and bound for the catalog at once).
pub const CHUNK_BYTES: usize = 4 << 20;

/// Collects samples series by series until a chunk is full.
pub struct Chunker {
    cap: usize,
    points: usize,
    bytes: usize,
    series: HashMap<String, SeriesPoints>,
}

impl Default for Chunker {
    fn default() -> Self {
        Chunker::new(CHUNK_POINTS)
    }
}

impl Chunker {
    pub fn new(cap: usize) -> Chunker {
        Chunker {
            cap: cap.max(1),
            points: 0,
            bytes: 0,
            series: HashMap::new(),
        }
    }

    /// Adds one point to the series `key` names (its points are ignored).
    pub fn push(&mut self, key: &SeriesPoints, time: DateTime<Utc>, value: f64) {
        let name = key.series.as_str();
        match self.series.get_mut(name) {
            Some(s) => s.points.push((time, value)),
            None => {
                self.bytes += 2 * name.len() + key.metric.len() + key.tags.as_str().len();
                let mut s = SeriesPoints {
                    points: Vec::new(),
                    ..key.clone()
                };
                s.points.push((time, value));
                self.series.insert(name.to_owned(), s);
            }
        }
        self.points += 1;
        // Each point is carried with its series' name and tags into the COPY.
        self.bytes += 24 + name.len() + key.tags.as_str().len();
    }

    /// Whether the chunk holds its fill.
    pub fn is_full(&self) -> bool {
        self.points >= self.cap || self.bytes >= CHUNK_BYTES
    }

    pub fn is_empty(&self) -> bool {
        self.points == 0
    }

    /// The chunk so far, each series' points settled (sorted, the last value
    /// of a repeated timestamp kept), in name order; the chunker starts over.
    pub fn take(&mut self) -> Vec<SeriesPoints> {
        self.points = 0;
        self.bytes = 0;
        let mut out: Vec<SeriesPoints> = std::mem::take(&mut self.series).into_values().collect();
        for s in &mut out {
            s.settle();
        }
        out.sort_by(|a, b| a.series.as_str().cmp(b.series.as_str()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Series, Tags};

    #[test]
    fn chunks_fill_and_settle() {
        let t = |s| DateTime::from_timestamp(s, 0).unwrap();
        let a = SeriesPoints::named(Series::parse("a").unwrap(), Tags::empty());
        let b = SeriesPoints::named(Series::parse("b").unwrap(), Tags::empty());
        let mut c = Chunker::new(3);
        c.push(&b, t(2), 1.0);
        c.push(&a, t(1), 1.0);
        assert!(!c.is_full());
        c.push(&b, t(2), 5.0);
        assert!(c.is_full());
        let chunk = c.take();
        assert_eq!(chunk.len(), 2);
        assert_eq!(chunk[0].series.as_str(), "a");
        assert_eq!(chunk[1].points, vec![(t(2), 5.0)]);
        assert!(c.is_empty());
    }
}
