//! Series selectors: a metric and label matchers with Prometheus' semantics
//! (`=`, `!=`, `=~`, `!~`; regexes fully anchored, RE2 syntax). Two
//! spellings parse to the same value:
//!
//! - PromQL: `http_requests_total{job="api",code=~"5.."}`, parsed by
//!   `promql-parser`;
//! - JSON: `{"metric": "http_requests_total", "match": {"job": "api", "code": "=~5.."}}`.
//!
//! A label a series lacks matches as the empty string, as in Prometheus, and
//! so does a tag whose value is not a string (collectors write strings only).

use std::borrow::Cow;
use std::fmt;

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{self, Expr, VectorSelector};
use regex::RegexBuilder;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::{cut, echo};

/// Characters of a selector's PromQL text.
pub const MAX_CHARS: usize = 4096;
/// Matchers in one selector.
pub const MAX_MATCHERS: usize = 32;
/// Bytes a compiled regex may take: a regex bomb is refused, not run.
const REGEX_SIZE: usize = 1 << 20;
/// The label Prometheus keeps the metric name in; ours is the catalog's metric.
const NAME: &str = "__name__";

/// A parsed selector: matchers over the metric and over the tags.
#[derive(Debug, Clone)]
pub struct Selector {
    metric: Vec<Matcher>,
    labels: Vec<Matcher>,
}

impl Selector {
    /// The PromQL spelling: a vector selector, nothing else.
    pub fn parse(text: &str) -> Result<Selector, String> {
        if text.chars().count() > MAX_CHARS {
            return Err(format!(
                "the selector is {} characters, past the limit of {MAX_CHARS}",
                text.chars().count()
            ));
        }
        let expr = parser::parse(text)
            .map_err(|e| format!("{} is not a PromQL selector: {e}", echo(text)))?;
        let Expr::VectorSelector(vs) = expr else {
            return Err(format!(
                "{} is a PromQL expression, not a series selector; give the metric and \
                 label matchers only, e.g. http_requests_total{{job=\"api\"}}",
                echo(text)
            ));
        };
        if vs.offset.is_some() || vs.at.is_some() {
            return Err(
                "a selector takes no offset or @ modifier; give the window as start and end".into(),
            );
        }
        Selector::from_vector_selector(vs)
    }

    /// A PromQL vector selector's matchers (its offset and `@` are the
    /// caller's to read).
    pub fn from_vector_selector(vs: VectorSelector) -> Result<Selector, String> {
        if !vs.matchers.or_matchers.is_empty() {
            return Err(
                "a selector takes no `or` between matchers; make one call per alternative".into(),
            );
        }
        let mut pairs: Vec<(String, Op, String)> = Vec::new();
        if let Some(name) = vs.name {
            pairs.push((NAME.to_owned(), Op::Equal, name));
        }
        for m in vs.matchers.matchers {
            let op = match m.op {
                MatchOp::Equal => Op::Equal,
                MatchOp::NotEqual => Op::NotEqual,
                MatchOp::Re(_) => Op::Re,
                MatchOp::NotRe(_) => Op::NotRe,
            };
            pairs.push((m.name, op, m.value));
        }
        Selector::from_pairs(pairs)
    }

    /// The JSON spelling: `match` values are `"value"` (equality) or start
    /// with `=~`, `!~`, `!=` or `=`.
    pub fn from_json(
        metric: Option<String>,
        matches: Map<String, Value>,
    ) -> Result<Selector, String> {
        let mut pairs: Vec<(String, Op, String)> = Vec::new();
        if let Some(m) = metric {
            pairs.push((NAME.to_owned(), Op::Equal, m));
        }
        for (name, value) in matches {
            let Value::String(value) = value else {
                return Err(format!(
                    "match.{} must be a string: \"value\", \"!=value\", \"=~regex\" or \"!~regex\"",
                    cut(&name)
                ));
            };
            let (op, rest) = Op::split(&value);
            pairs.push((name, op, rest.to_owned()));
        }
        Selector::from_pairs(pairs)
    }

    /// Remote read's matchers: (type, name, value), the type `=` 0, `!=` 1,
    /// `=~` 2, `!~` 3 (`prompb.LabelMatcher.Type`).
    pub fn from_remote_read(
        matchers: impl IntoIterator<Item = (i32, String, String)>,
    ) -> Result<Selector, String> {
        let pairs = matchers
            .into_iter()
            .map(|(kind, name, value)| {
                let op = match kind {
                    0 => Op::Equal,
                    1 => Op::NotEqual,
                    2 => Op::Re,
                    3 => Op::NotRe,
                    other => return Err(format!("matcher type {other} is not one of 0-3")),
                };
                Ok((name, op, value))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Selector::from_pairs(pairs)
    }

    fn from_pairs(pairs: Vec<(String, Op, String)>) -> Result<Selector, String> {
        if pairs.len() > MAX_MATCHERS {
            return Err(format!(
                "the selector has {} matchers, past the limit of {MAX_MATCHERS}",
                pairs.len()
            ));
        }
        let mut selector = Selector {
            metric: Vec::new(),
            labels: Vec::new(),
        };
        for (name, op, value) in pairs {
            if name.is_empty() || name.contains('\0') || value.contains('\0') {
                return Err(format!(
                    "matcher {} {op} {}: a label name is not empty, and neither holds the NUL character",
                    echo(&name),
                    echo(&value)
                ));
            }
            let op = match op {
                Op::Equal => MatchOp::Equal,
                Op::NotEqual => MatchOp::NotEqual,
                Op::Re => MatchOp::Re(anchored(&name, &value)?),
                Op::NotRe => MatchOp::NotRe(anchored(&name, &value)?),
            };
            let m = Matcher::new(op, &name, &value);
            if name == NAME {
                selector.metric.push(m);
            } else {
                selector.labels.push(m);
            }
        }
        // Prometheus' rule: something must exclude series, or every series
        // in the store would match.
        if !selector
            .metric
            .iter()
            .chain(&selector.labels)
            .any(|m| !m.is_match(""))
        {
            return Err(
                "the selector matches every series: give a metric, or a matcher that \
                        an empty value fails (job=\"api\", code=~\"5..\")"
                    .into(),
            );
        }
        Ok(selector)
    }

    /// The metric an equality pins, so the catalog's metric index serves it.
    pub fn metric(&self) -> Option<&str> {
        self.metric
            .iter()
            .find(|m| m.op == MatchOp::Equal)
            .map(|m| m.value.as_str())
    }

    /// The equality matchers with values, as a JSON object that every
    /// matching series' tags contain (`tags @>`, the catalog's GIN index).
    pub fn required_tags(&self) -> Value {
        Value::Object(
            self.labels
                .iter()
                .filter(|m| m.op == MatchOp::Equal && !m.value.is_empty())
                .map(|m| (m.name.clone(), Value::String(m.value.clone())))
                .collect(),
        )
    }

    /// Whether a series of `metric` with `tags` matches.
    pub fn matches(&self, metric: &str, tags: &Value) -> bool {
        self.metric.iter().all(|m| m.is_match(metric))
            && self
                .labels
                .iter()
                .all(|m| m.is_match(tags.get(&m.name).and_then(Value::as_str).unwrap_or("")))
    }
}

/// A regex as PromQL anchors it, compiled within a size bound.
fn anchored(name: &str, re: &str) -> Result<regex::Regex, String> {
    RegexBuilder::new(&format!("^(?:{re})$"))
        .size_limit(REGEX_SIZE)
        .build()
        .map_err(|e| {
            let why = match e {
                regex::Error::CompiledTooBig(_) => "it compiles past 1 MiB".to_owned(),
                e => e.to_string().lines().last().unwrap_or_default().to_owned(),
            };
            format!(
                "the regex of {} ({}) is refused: {why}",
                cut(name),
                echo(re)
            )
        })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Equal,
    NotEqual,
    Re,
    NotRe,
}

impl Op {
    /// The JSON spelling's operator prefix and the value after it.
    fn split(value: &str) -> (Op, &str) {
        for (prefix, op) in [
            ("=~", Op::Re),
            ("!~", Op::NotRe),
            ("!=", Op::NotEqual),
            ("=", Op::Equal),
        ] {
            if let Some(rest) = value.strip_prefix(prefix) {
                return (op, rest);
            }
        }
        (Op::Equal, value)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Equal => "=",
            Op::NotEqual => "!=",
            Op::Re => "=~",
            Op::NotRe => "!~",
        })
    }
}

/// PromQL's text, the metric first when an equality names it.
impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.metric();
        let rest: Vec<String> = self
            .metric
            .iter()
            .filter(|m| Some(m.value.as_str()) != name || m.op != MatchOp::Equal)
            .chain(&self.labels)
            .map(|m| format!("{}{}{:?}", m.name, m.op, m.value))
            .collect();
        write!(f, "{}", name.unwrap_or_default())?;
        if !rest.is_empty() || name.is_none() {
            write!(f, "{{{}}}", rest.join(","))?;
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Selector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match Value::deserialize(d)? {
            Value::String(text) => Selector::parse(&text).map_err(D::Error::custom),
            Value::Object(mut map) => {
                if let Some(k) = map
                    .keys()
                    .find(|k| !matches!(k.as_str(), "metric" | "match"))
                {
                    return Err(D::Error::custom(format!(
                        "a selector object has metric and match only, not {}",
                        echo(k)
                    )));
                }
                let metric = match map.remove("metric") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(m)) => Some(m),
                    Some(_) => return Err(D::Error::custom("selector.metric must be a string")),
                };
                let matches = match map.remove("match") {
                    None | Some(Value::Null) => Map::new(),
                    Some(Value::Object(m)) => m,
                    Some(_) => {
                        return Err(D::Error::custom(
                            "selector.match must be an object of label: \"value\" | \"=~regex\" | …",
                        ));
                    }
                };
                Selector::from_json(metric, matches).map_err(D::Error::custom)
            }
            _ => Err(D::Error::custom(
                "a selector is a PromQL selector string (http_requests_total{job=\"api\"}) or \
                 {\"metric\": …, \"match\": {label: value}}",
            )),
        }
    }
}

impl JsonSchema for Selector {
    fn schema_name() -> Cow<'static, str> {
        "Selector".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Which series: a PromQL selector string, e.g. \
                http_requests_total{job=\"api\",code=~\"5..\"}, or an object {\"metric\": \
                \"http_requests_total\", \"match\": {\"job\": \"api\", \"code\": \"=~5..\"}} whose \
                match values are \"value\", \"!=value\", \"=~regex\" or \"!~regex\" (regexes are \
                RE2, fully anchored; a missing label matches \"\")",
            "anyOf": [
                { "type": "string", "maxLength": MAX_CHARS },
                {
                    "type": "object",
                    "properties": {
                        "metric": { "type": "string" },
                        "match": { "type": "object", "additionalProperties": { "type": "string" } }
                    },
                    "additionalProperties": false
                }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_spellings_select_the_same_series() {
        let text =
            Selector::parse(r#"http_requests_total{job="api",code=~"5..",env!="dev"}"#).unwrap();
        let json: Selector = serde_json::from_value(json!({
            "metric": "http_requests_total",
            "match": {"job": "api", "code": "=~5..", "env": "!=dev"}
        }))
        .unwrap();
        for s in [&text, &json] {
            assert_eq!(s.metric(), Some("http_requests_total"));
            assert_eq!(s.required_tags(), json!({"job": "api"}));
            assert!(s.matches("http_requests_total", &json!({"job": "api", "code": "503"})));
            // Anchored: 5030 is not 5..
            assert!(!s.matches(
                "http_requests_total",
                &json!({"job": "api", "code": "5030"})
            ));
            assert!(!s.matches(
                "http_requests_total",
                &json!({"job": "api", "code": "503", "env": "dev"})
            ));
            assert!(!s.matches("other", &json!({"job": "api", "code": "503"})));
        }
    }

    #[test]
    fn a_missing_label_matches_the_empty_string() {
        let s = Selector::parse(r#"up{zone=""}"#).unwrap();
        assert!(s.matches("up", &json!({"job": "a"})));
        assert!(!s.matches("up", &json!({"zone": "eu"})));
        let s = Selector::parse(r#"up{zone!=""}"#).unwrap();
        assert!(!s.matches("up", &json!({"job": "a"})));
        // A number is not a label value: absent.
        assert!(!s.matches("up", &json!({"zone": 3})));
    }

    #[test]
    fn the_metric_may_be_matched_by_regex() {
        let s = Selector::parse(r#"{__name__=~"node_.*_total",job="node"}"#).unwrap();
        assert_eq!(s.metric(), None);
        assert!(s.matches("node_cpu_seconds_total", &json!({"job": "node"})));
        assert!(!s.matches("up", &json!({"job": "node"})));
        assert_eq!(s.to_string(), r#"{__name__=~"node_.*_total",job="node"}"#);
    }

    #[test]
    fn bad_selectors_say_what_is_wrong() {
        let bad = |v: Value| {
            serde_json::from_value::<Selector>(v)
                .unwrap_err()
                .to_string()
        };
        assert!(
            bad(json!("rate(x[5m])")).contains("not a series selector"),
            "{}",
            bad(json!("rate(x[5m])"))
        );
        assert!(bad(json!("x{")).contains("not a PromQL selector"));
        assert!(bad(json!("x offset 5m")).contains("offset"));
        assert!(bad(json!({"match": {"job": "=~.*"}})).contains("matches every series"));
        assert!(bad(json!({"metric": "x", "match": {"code": "=~5(("}})).contains("regex of code"));
        assert!(bad(json!({"metric": "x", "match": {"code": 5}})).contains("must be a string"));
        assert!(bad(json!({"metric": "x", "labels": {}})).contains("metric and match only"));
        assert!(bad(json!(7)).contains("PromQL selector string"));
        let bomb = format!(
            "{{\"metric\": \"x\", \"match\": {{\"a\": \"=~{}\"}}}}",
            "((a{100}){100}){100}"
        );
        let bomb: Value = serde_json::from_str(&bomb).unwrap();
        assert!(bad(bomb).contains("past 1 MiB"));
        let long = format!("x{{a=\"{}\"}}", "b".repeat(MAX_CHARS));
        assert!(
            Selector::parse(&long)
                .unwrap_err()
                .contains("past the limit")
        );
        let many: Map<String, Value> = (0..40).map(|i| (format!("l{i}"), json!("v"))).collect();
        assert!(
            Selector::from_json(Some("x".into()), many)
                .unwrap_err()
                .contains("41 matchers")
        );
    }

    #[test]
    fn displays_as_promql() {
        let s: Selector =
            serde_json::from_value(json!({"metric": "up", "match": {"job": "a\"b"}})).unwrap();
        assert_eq!(s.to_string(), r#"up{job="a\"b"}"#);
        assert_eq!(Selector::parse("up").unwrap().to_string(), "up");
    }
}
