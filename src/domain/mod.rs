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

/// Where JSON text holds U+0000 in a string or a key, as a path
/// (`points[2].time`; empty for the text itself); `None` when nowhere.
/// JSON text can spell it only as the escape `\u0000` (a raw control
/// character is not JSON), so a scan of the text clears nearly every
/// request without parsing it; only a hit is parsed, to name the place.
pub fn nul_in_json(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let escaped = text.match_indices("u0000").any(|(i, _)| {
        // An escape when an odd run of backslashes precedes it.
        bytes[..i].iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 1
    });
    if !escaped {
        return None;
    }
    // Unparseable text is the parser's to refuse.
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let place = nul_path(&value, String::new())?;
    Some(place.replace('\0', "\\u0000"))
}

fn nul_path(value: &serde_json::Value, at: String) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(s) => s.contains('\0').then_some(at),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_path(v, format!("{at}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let place = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            if k.contains('\0') {
                Some(place)
            } else {
                nul_path(v, place)
            }
        }),
        _ => None,
    }
}

/// Whether a JSON value holds U+0000 in a string or a key: PostgreSQL's
/// text and jsonb cannot store it, so such input is refused at the edge.
pub fn holds_nul(value: &serde_json::Value) -> bool {
    nul_path(value, String::new()).is_some()
}

#[cfg(test)]
mod tests {
    use super::nul_in_json;

    #[test]
    fn nul_is_found_by_its_escape_and_named_by_its_path() {
        assert_eq!(nul_in_json(r#"{"a": "x", "b": 1}"#), None);
        assert_eq!(
            nul_in_json(r#"{"p": [{"t": "1"}, {"t": "\u0000"}]}"#),
            Some("p[1].t".into())
        );
        assert_eq!(nul_in_json(r#"{"k\u0000": 1}"#), Some("k\\u0000".into()));
        // An escaped backslash, then text: no NUL.
        assert_eq!(nul_in_json(r#"{"a": "\\u0000"}"#), None);
        assert_eq!(nul_in_json(r#"{"a": "\\\u0000"}"#), Some("a".into()));
        // Not JSON: left to the parser.
        assert_eq!(nul_in_json(r#"{"a": "\u0000"#), None);
    }
}
