//! Value types every layer shares, at the bottom of the dependency graph.
//!
//! Each one parses at the edge ("parse, don't validate"): once a tool's
//! arguments deserialize, a `Series` is a valid name, a `Window` is ordered,
//! a `Bucket` is in range and a `Bounded` integer is within its bounds, and
//! no handler checks them again. The same rule gives both the `Deserialize`
//! impl and the JSON Schema, so the schema a client sees and the check the
//! server makes cannot drift apart.

pub mod batch;
pub mod bounded;
pub mod kinds;
pub mod selector;
pub mod series;
pub mod tags;
pub mod time;

pub use batch::SeriesPoints;
pub use bounded::Bounded;
pub use kinds::{Across, Aggregate, AnalysisKind, MetricKind, ModelKind, PerSeries, RunStatus};
pub use selector::Selector;
pub use series::Series;
pub use tags::Tags;
pub use time::{Bucket, Timestamp, Window};

/// User input echoed in an error is cut to this many characters, so an
/// absurd argument cannot make an absurd error.
pub const ECHO_CHARS: usize = 64;

/// `value` for an error message, cut to [`ECHO_CHARS`].
pub fn cut(value: &str) -> String {
    match value.char_indices().nth(ECHO_CHARS) {
        None => value.to_owned(),
        Some((at, _)) => format!("{}… ({} characters)", &value[..at], value.chars().count()),
    }
}

/// [`cut`], quoted.
pub fn echo(value: &str) -> String {
    match value.char_indices().nth(ECHO_CHARS) {
        None => format!("{value:?}"),
        Some((at, _)) => format!("{:?}… ({} characters)", &value[..at], value.chars().count()),
    }
}

/// Whether a JSON value holds U+0000 in a string or a key: PostgreSQL's
/// text and jsonb cannot store it, so such input is refused at the edge.
pub fn holds_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(holds_nul),
        serde_json::Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}
