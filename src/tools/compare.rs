//! `compare_windows`: what changed between a window and its baseline, per
//! series, and which label values explain the change. One call answers
//! "errors are up 4×, 83% of the increase from code=503 on instance=b".

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::aggregate::{labels, merged_each, of_merged};
use super::selection::{self, MaxSeries, kinds};
use super::{Annotations, Output, Scopes, Spec, ToolContext, ToolError, fmt_num};
use crate::analytics::across::{Labels, NAME};
use crate::domain::{Bounded, PerSeries, Selector, Timestamp, Window};
use crate::store::rollups::Source;

pub const SPEC: Spec = Spec {
    name: "compare_windows",
    title: "What changed, and where",
    description: "Compares a window with a baseline (by default the equal window just before it) \
                  for every series a selector matches: each series' value in both, the delta, the \
                  ratio and how many baseline standard deviations the window's mean moved; then \
                  the label values that explain most of the total change (code=503: 83%). Use it \
                  for \"what changed this morning, and where\". per_series defaults to rate for \
                  counters and avg otherwise",
    annotations: Annotations::READ_ONLY,
    scope: Scopes::ANALYTICS,
};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompareArgs {
    pub selector: Selector,
    #[serde(flatten)]
    pub window: Window,
    /// The baseline's start (default: as long before start as the window is long).
    pub baseline_start: Option<Timestamp>,
    /// The baseline's exclusive end (default: start).
    pub baseline_end: Option<Timestamp>,
    /// The value compared: rate for counters and avg otherwise by default.
    pub per_series: Option<PerSeries>,
    /// Refuse past this many matching series.
    #[serde(default)]
    pub max_series: MaxSeries,
    /// At most this many series in the answer, the largest change first.
    #[serde(default)]
    pub limit: Bounded<1, 1000, 20>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SeriesChange {
    pub series: String,
    pub labels: Labels,
    pub window: Option<f64>,
    pub baseline: Option<f64>,
    pub delta: Option<f64>,
    /// window / baseline; none when the baseline is 0 or missing.
    pub ratio: Option<f64>,
    /// (window mean − baseline mean) / baseline standard deviation, from
    /// the points (per_series avg only).
    pub z: Option<f64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Share {
    pub label: String,
    pub value: String,
    /// The part of the total change from the series with this value; the
    /// shares of one label sum to 1.
    pub share: f64,
    /// The change of those series.
    pub delta: f64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Totals {
    pub window: f64,
    pub baseline: f64,
    pub delta: f64,
    pub ratio: Option<f64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CompareResult {
    pub per_series: PerSeries,
    pub window: Window,
    pub baseline: Window,
    /// The sums over every series with a value in either window.
    pub total: Totals,
    /// The largest absolute change first.
    pub series: Vec<SeriesChange>,
    /// The label values that explain the most of the total change.
    pub explained_by: Vec<Share>,
    pub series_matched: usize,
    pub source: Source,
    /// More series changed than `limit`.
    pub truncated: bool,
}

/// Label values in `explained_by`.
const SHARES: usize = 10;

pub async fn compare_windows(
    ctx: ToolContext,
    args: CompareArgs,
) -> Result<Output<CompareResult>, ToolError> {
    let CompareArgs {
        selector,
        window,
        baseline_start,
        baseline_end,
        per_series,
        max_series,
        limit,
    } = args;
    let (Some(start), Some(end)) = (window.start, window.end) else {
        return Err(ToolError::invalid(
            "compare_windows needs start and end: the window to compare",
        ));
    };
    let baseline = Window::new(
        Some(baseline_start.map_or(start - (end - start), |t| t.0)),
        Some(baseline_end.map_or(start, |t| t.0)),
    )
    .map_err(|e| ToolError::invalid(format!("the baseline: {e}")))?;
    let (entries, per_series, now, before, z) = ctx
        .db
        .run(move |conn| {
            let entries = match selection::bounded(conn, &selector, max_series)? {
                Ok(e) => e,
                Err(refused) => return Ok(Err(refused)),
            };
            let per_series = match per_series {
                Some(p) => p,
                None => {
                    let kinds = kinds(conn, &entries)?;
                    if !kinds.is_empty() && kinds.iter().all(|(m, k)| k.counts_up(m)) {
                        PerSeries::Rate
                    } else {
                        PerSeries::Avg
                    }
                }
            };
            // Both windows' rows, merged per series once: the values and z.
            let sketch = matches!(per_series, PerSeries::P50 | PerSeries::P95 | PerSeries::P99);
            let w = merged_each(conn, &entries, window, sketch)?;
            let b = merged_each(conn, &entries, baseline, sketch)?;
            let now: Vec<Option<f64>> = w.iter().map(|m| of_merged(m, per_series)).collect();
            let before: Vec<Option<f64>> = b.iter().map(|m| of_merged(m, per_series)).collect();
            let z: Vec<Option<f64>> = w
                .iter()
                .zip(&b)
                .map(|(w, b)| {
                    if per_series != PerSeries::Avg {
                        return None;
                    }
                    let sd = b.moments.stddev().filter(|s| *s > 0.0)?;
                    Some((w.moments.mean()? - b.moments.mean()?) / sd)
                })
                .collect();
            Ok(Ok((entries, per_series, now, before, z)))
        })
        .await??;
    let mut changes: Vec<SeriesChange> = entries
        .iter()
        .zip(now.iter().zip(&before).zip(&z))
        .filter(|(_, ((w, b), _))| w.is_some() || b.is_some())
        .map(|(e, ((w, b), z))| {
            let delta = Some(w.unwrap_or(0.0) - b.unwrap_or(0.0));
            SeriesChange {
                series: e.series_name.clone(),
                labels: labels(e),
                window: *w,
                baseline: *b,
                delta,
                ratio: ratio(*w, *b),
                z: *z,
            }
        })
        .collect();
    let total = Totals {
        window: changes.iter().filter_map(|c| c.window).sum(),
        baseline: changes.iter().filter_map(|c| c.baseline).sum(),
        delta: changes.iter().filter_map(|c| c.delta).sum(),
        ratio: None,
    };
    let total = Totals {
        ratio: ratio(Some(total.window), Some(total.baseline)),
        ..total
    };
    let explained_by = shares(&changes, total.delta);
    changes.sort_by(|a, b| {
        let size = |c: &SeriesChange| c.delta.unwrap_or(0.0).abs();
        size(b).total_cmp(&size(a))
    });
    let truncated = changes.len() > limit.as_usize();
    changes.truncate(limit.as_usize());
    let text = text(per_series, &total, &explained_by, &changes);
    Ok(Output {
        value: CompareResult {
            per_series,
            window,
            baseline,
            total,
            series: changes,
            explained_by,
            series_matched: entries.len(),
            source: Source::Rollup,
            truncated,
        },
        text,
    })
}

fn ratio(window: Option<f64>, baseline: Option<f64>) -> Option<f64> {
    match (window, baseline) {
        (Some(w), Some(b)) if b != 0.0 => Some(w / b),
        _ => None,
    }
}

/// For each label with more than one value, each value's part of the total
/// change (a series without the label counts under ""), the largest first.
fn shares(changes: &[SeriesChange], total: f64) -> Vec<Share> {
    if total == 0.0 {
        return Vec::new();
    }
    let mut by_label: BTreeMap<&str, BTreeMap<&str, f64>> = BTreeMap::new();
    for c in changes {
        for k in c.labels.keys().filter(|k| *k != NAME) {
            by_label.entry(k).or_default();
        }
    }
    for c in changes {
        let delta = c.delta.unwrap_or(0.0);
        for (label, values) in by_label.iter_mut() {
            let v = c.labels.get(*label).map_or("", String::as_str);
            *values.entry(v).or_default() += delta;
        }
    }
    let mut shares: Vec<Share> = by_label
        .into_iter()
        .filter(|(_, values)| values.len() > 1)
        .flat_map(|(label, values)| {
            values.into_iter().map(move |(value, delta)| Share {
                label: label.to_owned(),
                value: value.to_owned(),
                share: delta / total,
                delta,
            })
        })
        .collect();
    shares.sort_by(|a, b| {
        b.share
            .total_cmp(&a.share)
            .then_with(|| a.label.cmp(&b.label))
    });
    shares.truncate(SHARES);
    shares
}

fn text(
    per_series: PerSeries,
    total: &Totals,
    shares: &[Share],
    changes: &[SeriesChange],
) -> String {
    let mut lines = vec![format!(
        "total {per_series}: {} → {} (delta {}{})",
        fmt_num(Some(total.baseline)),
        fmt_num(Some(total.window)),
        fmt_num(Some(total.delta)),
        total
            .ratio
            .map(|r| format!(", {}×", fmt_num(Some(r))))
            .unwrap_or_default()
    )];
    for s in shares.iter().take(3) {
        lines.push(format!(
            "{:.0}% of the change from {}={:?}",
            s.share * 100.0,
            s.label,
            s.value
        ));
    }
    for c in changes.iter().take(5) {
        lines.push(format!(
            "{}: {} → {}",
            c.series,
            fmt_num(c.baseline),
            fmt_num(c.window)
        ));
    }
    if changes.is_empty() {
        lines.push("No matching series has values in either window.".into());
    }
    lines.join("\n")
}
