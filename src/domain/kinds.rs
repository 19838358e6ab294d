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
        assert!("paused".parse::<RunStatus>().is_err());
    }
}
