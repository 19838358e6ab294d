//! A selector resolved to series through the catalog, and the bound every
//! tool that takes a `selector` holds: past `max_series`, a refusal that
//! gives the count and the labels that would narrow it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use diesel::PgConnection;

use super::ToolError;
use crate::db::DbError;
use crate::domain::{Bounded, MetricKind, Selector};
use crate::models::MetricMetadata;
use crate::store::catalog::{self, Entry};
use crate::store::metadata;

/// `max_series`: how many series a selector may match.
pub type MaxSeries = Bounded<1, 10_000, 1_000>;

/// Catalog rows one selector may read (those its metric and tag equalities
/// pick); past it the selector must be narrowed.
pub const CATALOG_CAP: usize = 100_000;

/// The series `selector` matches, in name order, and whether the catalog
/// read was cut at [`CATALOG_CAP`].
pub fn all(conn: &mut PgConnection, selector: &Selector) -> Result<(Vec<Entry>, bool), DbError> {
    catalog::select(conn, selector, CATALOG_CAP)
}

/// The series `selector` matches, at most `max` of them; more is a refusal.
pub fn bounded(
    conn: &mut PgConnection,
    selector: &Selector,
    max: MaxSeries,
) -> Result<Result<Vec<Entry>, ToolError>, DbError> {
    let (entries, cut) = all(conn, selector)?;
    if entries.len() <= max.as_usize() && !cut {
        return Ok(Ok(entries));
    }
    Ok(Err(too_many(selector, &entries, cut, max)))
}

/// What each matched metric is: its family's metadata, else its name.
pub fn kinds(
    conn: &mut diesel::PgConnection,
    entries: &[Entry],
) -> Result<HashMap<String, MetricKind>, crate::db::DbError> {
    let mut metrics: HashMap<&str, bool> = HashMap::new();
    for e in entries {
        *metrics.entry(&e.metric).or_default() |= e.tags.get("_measurement").is_some();
    }
    let metrics: Vec<(&str, bool)> = metrics.into_iter().collect();
    Ok(metrics
        .iter()
        .zip(describe(conn, &metrics)?)
        .map(|((m, _), (kind, _))| ((*m).to_owned(), kind))
        .collect())
}

/// Each metric's kind and its family's metadata, in order: the metadata
/// Prometheus sent for it (`x_bucket`'s is its family `x`'s), else naming
/// conventions (`true`: written as line protocol, a gauge). One query.
pub fn describe(
    conn: &mut diesel::PgConnection,
    metrics: &[(&str, bool)],
) -> Result<Vec<(MetricKind, Option<MetricMetadata>)>, crate::db::DbError> {
    let families: Vec<&str> = metrics
        .iter()
        .flat_map(|(m, _)| MetricKind::families(m))
        .collect();
    let described = metadata::of(conn, &families)?;
    Ok(metrics
        .iter()
        .map(
            |&(m, line_protocol)| match MetricKind::families(m).find_map(|f| described.get(f)) {
                Some(d) => (d.kind, Some(d.clone())),
                None => (MetricKind::by_name(m, line_protocol), None),
            },
        )
        .collect())
}

fn too_many(selector: &Selector, entries: &[Entry], cut: bool, max: MaxSeries) -> ToolError {
    let count = if cut {
        format!("more than {} candidate series", fmt_count(CATALOG_CAP))
    } else {
        format!("{} series", fmt_count(entries.len()))
    };
    let narrowing = narrowing(entries);
    let hint = if narrowing.is_empty() {
        String::new()
    } else {
        format!("; narrow it with a matcher on {}", narrowing.join(", "))
    };
    ToolError::invalid(format!(
        "the selector {selector} matches {count}, past max_series {} (at most {}){hint}",
        fmt_count(max.as_usize()),
        fmt_count(MaxSeries::LARGEST as usize)
    ))
}

/// The labels that split the series most, with how many values each has.
fn narrowing(entries: &[Entry]) -> Vec<String> {
    let mut values: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut metrics: BTreeSet<&str> = BTreeSet::new();
    for e in entries {
        metrics.insert(&e.metric);
        for (k, v) in e.tags.as_object().into_iter().flatten() {
            if let (false, Some(v)) = (k == "__name__", v.as_str()) {
                values.entry(k).or_default().insert(v);
            }
        }
    }
    let mut split: Vec<(usize, String)> = values
        .into_iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(k, v)| (v.len(), k.to_owned()))
        .collect();
    if metrics.len() > 1 {
        split.push((metrics.len(), "__name__ (the metric)".to_owned()));
    }
    split.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    split
        .into_iter()
        .take(5)
        .map(|(n, k)| format!("{k} ({} values)", fmt_count(n)))
        .collect()
}

/// 50000 as 50,000.
pub fn fmt_count(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_refusal_names_the_count_and_the_labels_that_split_most() {
        let entries: Vec<Entry> = (0..30)
            .map(|i| Entry {
                series_name: format!("x/{i}"),
                metric: "http_requests_total".into(),
                tags: json!({"__name__": "http_requests_total", "job": "api",
                             "instance": format!("i{i}"), "code": if i % 2 == 0 { "200" } else { "500" }}),
            })
            .collect();
        let s = Selector::parse("http_requests_total").unwrap();
        let e = too_many(&s, &entries, false, MaxSeries::new(10).unwrap()).to_string();
        assert_eq!(
            e,
            "the selector http_requests_total matches 30 series, past max_series 10 (at most \
             10,000); narrow it with a matcher on instance (30 values), code (2 values)"
        );
        assert_eq!(fmt_count(50_000), "50,000");
        assert_eq!(fmt_count(999), "999");
    }
}
