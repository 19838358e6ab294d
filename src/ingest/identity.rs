//! A collector's series as ours. A Prometheus series is its metric name and
//! label set; an InfluxDB point gives one series per field: measurement,
//! field and tag set. Either way the whole label set is the identity:
//!
//! - `tags` keep it verbatim (`__name__` for Prometheus' metric,
//!   `_measurement` and `_field` for InfluxDB's, as Flux names them);
//! - the name is the metric cut to our rule, `/`, and 16 hex digits of the
//!   SHA-256 of the tags, so distinct label sets get distinct names
//!   whatever the labels hold (a 64-bit collision is caught by the catalog
//!   and refused, never merged).
//!
//! `node_cpu_seconds_total{cpu="0",mode="idle",…}` becomes
//! `node_cpu_seconds_total/3b0c…`, and `cpu,host=a usage_idle=99` becomes
//! `cpu.usage_idle/9f1e…`.

use sha2::{Digest, Sha256};

use crate::domain::{Series, SeriesPoints, Tags, cut};

/// Labels (or tags) one series may carry.
pub const MAX_LABELS: usize = 64;
/// Bytes of a label name.
pub const MAX_NAME: usize = 1024;
/// Bytes of a label value (and of a metric name).
pub const MAX_VALUE: usize = 4096;

/// The label Prometheus keeps its metric name in.
pub const METRIC_LABEL: &str = "__name__";
/// Where an InfluxDB point's measurement and field go.
pub const MEASUREMENT: &str = "_measurement";
pub const FIELD: &str = "_field";

/// Digits of the hash in a name.
const HASH_HEX: usize = 16;

/// A Prometheus series from its labels (in any order).
pub fn prometheus<'a>(
    labels: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<SeriesPoints, String> {
    let mut set: Vec<(&str, &str)> = Vec::with_capacity(16);
    for (name, value) in labels {
        check_label(name, value)?;
        // An empty value is the label's absence, as in Prometheus.
        if !value.is_empty() {
            set.push((name, value));
        }
    }
    set.sort_unstable_by(|a, b| a.0.cmp(b.0));
    if let Some(w) = set.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(format!("label {} appears twice in one series", cut(w[0].0)));
    }
    let Some(&(_, metric)) = set.iter().find(|(n, _)| *n == METRIC_LABEL) else {
        let names: Vec<&str> = set.iter().map(|(n, _)| *n).collect();
        return Err(format!(
            "a series has no {METRIC_LABEL} label (its labels: {})",
            cut(&names.join(","))
        ));
    };
    series(metric.to_owned(), &set)
}

/// The series of one InfluxDB field.
pub fn influx<'a>(
    measurement: &str,
    field: &str,
    tags: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<SeriesPoints, String> {
    let mut set: Vec<(&str, &str)> = Vec::with_capacity(16);
    for (key, value) in tags {
        if key == MEASUREMENT || key == FIELD {
            return Err(format!(
                "the tag key {key} is reserved for the {key} itself"
            ));
        }
        check_label(key, value)?;
        set.push((key, value));
    }
    check_label(MEASUREMENT, measurement)?;
    check_label(FIELD, field)?;
    set.push((MEASUREMENT, measurement));
    set.push((FIELD, field));
    set.sort_unstable_by(|a, b| a.0.cmp(b.0));
    if let Some(w) = set.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(format!("tag {} appears twice", cut(w[0].0)));
    }
    series(format!("{measurement}.{field}"), &set)
}

fn check_label(name: &str, value: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a label name is empty".into());
    }
    if name.len() > MAX_NAME {
        return Err(format!(
            "label name {} is longer than {MAX_NAME} bytes",
            cut(name)
        ));
    }
    if value.len() > MAX_VALUE {
        return Err(format!(
            "the value of label {} is longer than {MAX_VALUE} bytes",
            cut(name)
        ));
    }
    Ok(())
}

/// `labels` sorted by name, without repeats.
fn series(metric: String, labels: &[(&str, &str)]) -> Result<SeriesPoints, String> {
    if labels.len() > MAX_LABELS {
        return Err(format!(
            "series {} has {} labels; at most {MAX_LABELS} are taken",
            cut(&metric),
            labels.len()
        ));
    }
    let tags = Tags::from_labels(labels)?;
    let series = name(&metric, &tags)?;
    Ok(SeriesPoints {
        series,
        metric,
        tags,
        derived: true,
        points: Vec::new(),
    })
}

/// `metric` cut to the series-name rule, then `/` and the tags' hash.
fn name(metric: &str, tags: &Tags) -> Result<Series, String> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let hash = Sha256::digest(tags.as_str().as_bytes());
    let mut name = String::with_capacity(200);
    name.extend(
        metric
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "_.:-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .skip_while(|c| !c.is_ascii_alphanumeric())
            .take(200 - 1 - HASH_HEX),
    );
    if name.is_empty() {
        name.push_str("series");
    }
    name.push('/');
    for b in hash.iter().take(HASH_HEX / 2) {
        name.push(char::from(HEX[usize::from(b >> 4)]));
        name.push(char::from(HEX[usize::from(b & 15)]));
    }
    // Letters, digits and _ . : - only, starting with a letter or digit:
    // valid by construction.
    Series::try_from(name).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_order_does_not_matter_and_sets_differ() {
        let a = prometheus([("__name__", "up"), ("job", "node"), ("instance", "a:9100")]).unwrap();
        let b = prometheus([("instance", "a:9100"), ("__name__", "up"), ("job", "node")]).unwrap();
        let c = prometheus([("__name__", "up"), ("job", "node"), ("instance", "b:9100")]).unwrap();
        assert_eq!(a.series, b.series);
        assert_ne!(a.series, c.series);
        assert!(a.series.as_str().starts_with("up/"), "{}", a.series);
        assert_eq!(a.metric, "up");
        assert_eq!(
            a.tags.as_str(),
            r#"{"__name__":"up","instance":"a:9100","job":"node"}"#
        );
        assert!(a.derived);
    }

    /// The names docs/ingest.md shows; a change here splits every stored
    /// series in two, so it must be deliberate.
    #[test]
    fn the_documented_names_are_stable() {
        let node = prometheus([
            ("__name__", "node_cpu_seconds_total"),
            ("cpu", "0"),
            ("instance", "host1:9100"),
            ("job", "node"),
            ("mode", "idle"),
        ])
        .unwrap();
        assert_eq!(
            node.series.as_str(),
            "node_cpu_seconds_total/1418357c9bb30ff7"
        );
        let idle = influx("cpu", "usage_idle", [("host", "web1"), ("cpu", "cpu0")]).unwrap();
        assert_eq!(idle.series.as_str(), "cpu.usage_idle/e24b3ef622f6f26e");
    }

    #[test]
    fn any_metric_gives_a_valid_name() {
        for metric in [
            ":recording:rule",
            "_under",
            "ünïcode métric",
            "",
            &"x".repeat(5000),
        ] {
            let r = prometheus([("__name__", metric), ("a", "b")]);
            if metric.is_empty() {
                assert!(r.is_err());
                continue;
            }
            match r {
                Ok(s) => assert!(s.series.as_str().len() <= 200, "{}", s.series),
                Err(e) => assert!(metric.len() > MAX_VALUE, "{e}"),
            }
        }
    }

    #[test]
    fn bad_label_sets_are_refused() {
        assert!(prometheus([("job", "x")]).unwrap_err().contains("__name__"));
        assert!(
            prometheus([("__name__", "up"), ("a", "1"), ("a", "2")])
                .unwrap_err()
                .contains("twice")
        );
        let long = "n".repeat(100_000);
        let e = prometheus([("__name__", "up"), (long.as_str(), "v")]).unwrap_err();
        assert!(e.len() < 300, "{e}");
        let many: Vec<(String, String)> = (0..100).map(|i| (format!("l{i}"), "v".into())).collect();
        assert!(
            prometheus(
                many.iter()
                    .map(|(a, b)| (a.as_str(), b.as_str()))
                    .chain([("__name__", "up")])
            )
            .is_err()
        );
        assert!(influx("cpu", "v", [("_field", "x")]).is_err());
    }

    #[test]
    fn influx_fields_are_series_of_their_own() {
        let idle = influx("cpu", "usage_idle", [("host", "a")]).unwrap();
        let user = influx("cpu", "usage_user", [("host", "a")]).unwrap();
        assert_ne!(idle.series, user.series);
        assert_eq!(idle.metric, "cpu.usage_idle");
        assert!(idle.series.as_str().starts_with("cpu.usage_idle/"));
        assert_eq!(
            idle.tags.as_str(),
            r#"{"_field":"usage_idle","_measurement":"cpu","host":"a"}"#
        );
    }
}
