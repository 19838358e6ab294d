//! Closed sets of words: run statuses and kinds, stored in TEXT columns
//! (TEXT + CHECK rather than PostgreSQL enums, so adding one is a plain
//! migration) and mapped to Rust enums by Diesel.

use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An enum stored as TEXT: each variant's word is written once and serves
/// serde, the JSON Schema, SQL and messages alike.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        pub enum $ty:ident {
            $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, AsExpression,
            FromSqlRow,
        )]
        #[diesel(sql_type = Text)]
        pub enum $ty {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $ty {
            pub const ALL: &[$ty] = &[$($ty::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $text),+
                }
            }
        }

        impl std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($ty::$variant),)+
                    other => Err(format!(
                        "unknown {} {}: expected one of {}",
                        stringify!($ty),
                        super::echo(other),
                        [$($text),+].join(", ")
                    )),
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ToSql<Text, Pg> for $ty {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
                <str as ToSql<Text, Pg>>::to_sql(self.as_str(), &mut out.reborrow())
            }
        }

        impl FromSql<Text, Pg> for $ty {
            fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
                let text = <String as FromSql<Text, Pg>>::from_sql(bytes)?;
                Ok(text.parse()?)
            }
        }
    };
}

text_enum! {
    /// `status` of `analysis_results` and `model_training_logs`.
    pub enum RunStatus {
        Running => "running",
        Completed => "completed",
        Failed => "failed",
    }
}

text_enum! {
    /// `analysis_type` of `analysis_results`.
    pub enum AnalysisKind {
        /// detect_anomalies
        Anomaly => "anomaly",
        /// analyze_trend
        Trend => "trend",
        /// forecast
        Forecast => "forecast",
    }
}

text_enum! {
    /// `model_type` of `model_training_logs`.
    pub enum ModelKind {
        /// y = a + b·t
        Linear => "linear",
        /// Holt's linear exponential smoothing (level + trend)
        Holt => "holt",
        /// Autoregressive AR(p) with intercept, least squares
        Ar => "ar",
    }
}

text_enum! {
    /// The aggregate of one bucket in `query_timeseries` and `plot_series`.
    #[derive(Default)]
    pub enum Aggregate {
        #[default]
        Avg => "avg",
        Min => "min",
        Max => "max",
        Sum => "sum",
        Count => "count",
        First => "first",
        Last => "last",
    }
}

text_enum! {
    /// `aggregate_series`' one value per series over the window.
    pub enum PerSeries {
        Avg => "avg",
        Min => "min",
        Max => "max",
        Sum => "sum",
        Count => "count",
        Last => "last",
        /// A counter's increase per second, resets handled as Prometheus does.
        Rate => "rate",
        /// A counter's increase over the window, resets handled.
        Increase => "increase",
        P50 => "p50",
        P95 => "p95",
        P99 => "p99",
    }
}

text_enum! {
    /// `aggregate_series`' reduction of each group of series.
    pub enum Across {
        Sum => "sum",
        Avg => "avg",
        Min => "min",
        Max => "max",
        Count => "count",
        /// Population standard deviation, as PromQL's stddev.
        Stddev => "stddev",
        /// The q-quantile of the group's values (q in [0, 1]).
        Quantile => "quantile",
        /// The q-quantile of a classic histogram from its _bucket series
        /// (per_series rate or increase), summed per le in each group.
        HistogramQuantile => "histogram_quantile",
    }
}

text_enum! {
    /// `kind` of `timeseries_metrics`: what a metric's values are.
    pub enum MetricKind {
        /// Counts up, and back to 0 when its process restarts: read it
        /// through rate or increase.
        Counter => "counter",
        Gauge => "gauge",
        /// A classic histogram's `_bucket{le}`, `_sum` and `_count`.
        Histogram => "histogram",
        Summary => "summary",
        Unknown => "unknown",
    }
}

impl MetricKind {
    /// From remote write's `MetricMetadata.type`: an OpenMetrics info or
    /// stateset is a gauge, a gauge histogram a histogram.
    pub fn from_prometheus(t: i32) -> MetricKind {
        match t {
            1 => MetricKind::Counter,
            2 | 6 | 7 => MetricKind::Gauge,
            3 | 4 => MetricKind::Histogram,
            5 => MetricKind::Summary,
            _ => MetricKind::Unknown,
        }
    }

    /// The metric families whose metadata may describe `metric`, nearest
    /// first: itself, then its name without a histogram's, a summary's or a
    /// counter's suffix (Prometheus keys `x_bucket`'s metadata under `x`).
    pub fn families(metric: &str) -> impl Iterator<Item = &str> {
        let stem = ["_bucket", "_sum", "_count", "_total", "_created"]
            .iter()
            .find_map(|s| metric.strip_suffix(s));
        std::iter::once(metric).chain(stem)
    }

    /// By naming conventions, where no metadata says: a line-protocol field
    /// is a gauge; `_total`, `_count`, `_sum` count up; `_bucket` is a
    /// histogram's.
    pub fn by_name(metric: &str, line_protocol: bool) -> MetricKind {
        if line_protocol {
            MetricKind::Gauge
        } else if metric.ends_with("_bucket") {
            MetricKind::Histogram
        } else if ["_total", "_count", "_sum"]
            .iter()
            .any(|s| metric.ends_with(s))
        {
            MetricKind::Counter
        } else {
            MetricKind::Unknown
        }
    }

    /// Whether the metric's raw values are cumulative counts (a counter's,
    /// or a histogram's or summary's `_bucket`, `_count` and `_sum`).
    pub fn counts_up(self, metric: &str) -> bool {
        match self {
            MetricKind::Counter => true,
            MetricKind::Histogram | MetricKind::Summary => ["_bucket", "_count", "_sum"]
                .iter()
                .any(|s| metric.ends_with(s)),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agrees<T>(all: &[T])
    where
        T: Serialize + Copy + std::fmt::Display + std::str::FromStr + PartialEq + std::fmt::Debug,
        T::Err: std::fmt::Debug,
    {
        for v in all {
            assert_eq!(serde_json::to_value(v).unwrap(), v.to_string());
            assert_eq!(v.to_string().parse::<T>().unwrap(), *v);
        }
    }

    #[test]
    fn words_round_trip_through_serde_and_text() {
        agrees(RunStatus::ALL);
        agrees(AnalysisKind::ALL);
        agrees(ModelKind::ALL);
        agrees(Aggregate::ALL);
        agrees(MetricKind::ALL);
        agrees(PerSeries::ALL);
        agrees(Across::ALL);
        assert!("paused".parse::<RunStatus>().is_err());
    }

    #[test]
    fn metric_kinds_from_metadata_families_and_names() {
        assert_eq!(MetricKind::from_prometheus(1), MetricKind::Counter);
        assert_eq!(MetricKind::from_prometheus(3), MetricKind::Histogram);
        assert_eq!(MetricKind::from_prometheus(99), MetricKind::Unknown);
        let f: Vec<&str> = MetricKind::families("http_duration_seconds_bucket").collect();
        assert_eq!(f, ["http_duration_seconds_bucket", "http_duration_seconds"]);
        assert_eq!(MetricKind::families("up").collect::<Vec<_>>(), ["up"]);
        assert_eq!(
            MetricKind::by_name("http_requests_total", false),
            MetricKind::Counter
        );
        assert_eq!(
            MetricKind::by_name("x_bucket", false),
            MetricKind::Histogram
        );
        assert_eq!(MetricKind::by_name("up", false), MetricKind::Unknown);
        assert_eq!(
            MetricKind::by_name("cpu.usage_total", true),
            MetricKind::Gauge
        );
        assert!(MetricKind::Histogram.counts_up("x_count"));
        assert!(!MetricKind::Summary.counts_up("x"));
        assert!(!MetricKind::Gauge.counts_up("x_total"));
    }
}
