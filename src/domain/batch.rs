//! What every ingest path hands the store: points grouped by series, each
//! series with the metric and tags its catalog row keeps.

use chrono::{DateTime, Utc};

use super::{Series, Tags};

/// The first and last instants a point may carry: the years RFC 3339 can
/// write, 0001 to 9999.
pub fn in_range(t: DateTime<Utc>) -> bool {
    (1..=9999).contains(&chrono::Datelike::year(&t))
}

/// What to do with a Prometheus sample that is NaN or ±Inf (staleness
/// markers aside): PostgreSQL's aggregates and our table's CHECK take
/// finite values only (`INGEST_NON_FINITE`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NonFinite {
    /// Refuse the request (400, nothing written).
    Reject,
    /// Drop the sample, count it, and write the rest: a summary's quantile
    /// with nothing observed is NaN, and Prometheus sends it every scrape.
    #[default]
    Skip,
}

/// The points of one series in a write.
#[derive(Debug, Clone)]
pub struct SeriesPoints {
    pub series: Series,
    /// The collector's metric (Prometheus `__name__`, InfluxDB
    /// `measurement.field`), or the series name.
    pub metric: String,
    pub tags: Tags,
    /// The name was derived from the tags (a collector's series): another
    /// tag set under the same name is a hash collision, never a change.
    pub derived: bool,
    /// Sorted by time, one per timestamp; see [`SeriesPoints::settle`].
    pub points: Vec<(DateTime<Utc>, f64)>,
}

impl SeriesPoints {
    /// A series written by name with `tags` (the MCP tool, CSV import).
    pub fn named(series: Series, tags: Tags) -> SeriesPoints {
        SeriesPoints {
            metric: series.as_str().to_owned(),
            series,
            tags,
            derived: false,
            points: Vec::new(),
        }
    }

    /// Sorts the points by time and keeps, for a repeated timestamp, the
    /// value given last.
    pub fn settle(&mut self) {
        // Stable: equal timestamps keep their order, and each repeat hands
        // its value to the one kept.
        self.points.sort_by_key(|p| p.0);
        self.points.dedup_by(|later, kept| {
            let repeat = later.0 == kept.0;
            if repeat {
                kept.1 = later.1;
            }
            repeat
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_value_of_a_repeated_timestamp_wins() {
        let t = |s| DateTime::from_timestamp(s, 0).unwrap();
        let mut s = SeriesPoints::named(Series::parse("a").unwrap(), Tags::empty());
        s.points = vec![(t(2), 1.0), (t(1), 2.0), (t(2), 3.0), (t(2), 4.0)];
        s.settle();
        assert_eq!(s.points, vec![(t(1), 2.0), (t(2), 4.0)]);
    }

    #[test]
    fn years_past_9999_are_out_of_range() {
        assert!(in_range(DateTime::from_timestamp(0, 0).unwrap()));
        assert!(!in_range(
            DateTime::from_timestamp(253_402_300_800, 0).unwrap()
        ));
    }
}
