//! `aggregate_series`: a question across series in one call. First one
//! value per series over the window (from the rollups, or the raw points
//! for a counter's rate and increase), then groups `by` or `without`
//! labels reduced `across`, then `topk`/`bottomk`.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::selection::{self, MaxSeries, kinds};
use super::{Annotations, Output, Scopes, Spec, ToolContext, ToolError, fmt_num};
use crate::analytics::across::{self, Group, Grouping, Labels, Reduce};
use crate::domain::{Across, Bounded, Bucket, MetricKind, PerSeries, Selector, Window};
use crate::store::catalog::Entry;
use crate::store::rollups::{self, Merged, Source};

pub const SPEC: Spec = Spec {
    name: "aggregate_series",
    title: "Aggregate across series",
    description: "One answer across many series: e.g. the request rate by status code, the five \
                  instances with the highest load, p99 latency per handler from a histogram. Takes \
                  a selector (http_requests_total{job=\"api\"}), a window, per_series (avg, min, \
                  max, sum, count, last, rate, increase, p50, p95, p99: one value per series; \
                  rate and increase for counters, resets handled), across (sum, avg, min, max, \
                  count, stddev, quantile, histogram_quantile over _bucket series) with by or \
                  without labels, and optionally topk or bottomk. Each group carries its labels",
    annotations: Annotations::READ_ONLY,
    scope: Scopes::READ,
};

type Groups = Bounded<1, 1000, 100>;

/// How series are combined into groups: one value per series (per bucket),
/// then a reduction per group. `aggregate_series` takes it, and so does
/// `plot_series` to draw the groups.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Aggregation {
    /// The value of each series over the window (or bucket).
    pub per_series: PerSeries,
    /// How each group's values are combined.
    pub across: Across,
    /// Group by these labels (none: one group of every series).
    pub by: Option<Vec<String>>,
    /// Group by every label but these (and the metric name).
    pub without: Option<Vec<String>>,
    /// The quantile for across quantile and histogram_quantile, in [0, 1].
    pub q: Option<f64>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AggregateArgs {
    pub selector: Selector,
    #[serde(flatten)]
    pub window: Window,
    #[serde(flatten)]
    pub aggregation: Aggregation,
    /// Keep the k groups of largest value, largest first.
    pub topk: Option<Groups>,
    /// Keep the k groups of smallest value, smallest first.
    pub bottomk: Option<Groups>,
    /// Per bucket of whole hours (1h, 6h, 1d …; needs start and end): one
    /// point per bucket in each group, as a PromQL range query with that step.
    pub bucket: Option<Bucket>,
    /// Refuse past this many matching series.
    #[serde(default)]
    pub max_series: MaxSeries,
    /// At most this many groups in the answer.
    #[serde(default)]
    pub max_groups: Groups,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct GroupValue {
    /// The group's labels: those of `by`, or all but those of `without`.
    pub labels: Labels,
    /// None where there is no number (a histogram without observations);
    /// with a bucket, the mean of the group's points (what topk ranks).
    pub value: Option<f64>,
    /// Series in the group that had a value in the window (with a bucket:
    /// in its fullest bucket).
    pub series: usize,
    /// With a bucket: the group's value per bucket, in time order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub points: Option<Vec<BucketValue>>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct BucketValue {
    /// The bucket's start.
    pub time: DateTime<Utc>,
    pub value: Option<f64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AggregateResult {
    pub groups: Vec<GroupValue>,
    /// Series the selector matched.
    pub series_matched: usize,
    /// Series with a value in the window (rate and increase need two samples).
    pub series_with_values: usize,
    /// rollup: per-series values from the hourly and daily rollups, with
    /// the raw points at the window's edges and in the tail not yet folded.
    pub source: Source,
    /// The rollups' width when they served the values.
    pub resolution: Option<Bucket>,
    pub bucket: Option<Bucket>,
    /// More groups than max_groups (or groups × buckets past 10,000): the
    /// rest were cut.
    pub truncated: bool,
    /// What to know about the answer (a counter read by its raw values).
    pub notes: Vec<String>,
}

/// How the groups are made, checked once.
struct Plan {
    /// Buckets in the window, with a bucket.
    buckets: Option<usize>,
    grouping: Grouping,
    reduce: Reduce,
    rank: Option<(usize, bool)>,
}

impl Aggregation {
    /// The grouping and reduction, checked.
    pub(super) fn check(&self) -> Result<(Grouping, Reduce), ToolError> {
        let grouping = match (&self.by, &self.without) {
            (Some(_), Some(_)) => return Err(ToolError::invalid("give by or without, not both")),
            (Some(by), None) => Grouping::By(by.clone()),
            (None, Some(without)) => Grouping::Without(without.clone()),
            (None, None) => Grouping::By(vec![]),
        };
        let q = || match self.q {
            Some(q) if (0.0..=1.0).contains(&q) => Ok(q),
            Some(q) => Err(ToolError::invalid(format!(
                "q is a quantile in [0, 1], not {q}"
            ))),
            None => Err(ToolError::invalid(format!(
                "across {} needs q, e.g. 0.99",
                self.across
            ))),
        };
        let reduce = match self.across {
            Across::Sum => Reduce::Sum,
            Across::Avg => Reduce::Avg,
            Across::Min => Reduce::Min,
            Across::Max => Reduce::Max,
            Across::Count => Reduce::Count,
            Across::Stddev => Reduce::Stddev,
            Across::Quantile => Reduce::Quantile(q()?),
            Across::HistogramQuantile => {
                if !matches!(
                    self.per_series,
                    PerSeries::Rate | PerSeries::Increase | PerSeries::Last
                ) {
                    return Err(ToolError::invalid(
                        "histogram_quantile reads bucket counts: per_series rate or increase (or last)",
                    ));
                }
                Reduce::HistogramQuantile(q()?)
            }
        };
        if self.q.is_some() && !matches!(self.across, Across::Quantile | Across::HistogramQuantile)
        {
            return Err(ToolError::invalid(
                "q is for across quantile or histogram_quantile",
            ));
        }
        Ok((grouping, reduce))
    }

    /// PromQL-like: `sum by (job) (rate)`.
    pub(super) fn describe(&self) -> String {
        let labels = |l: &[String]| l.join(", ");
        let grouping = match (&self.by, &self.without) {
            (Some(by), _) => format!(" by ({})", labels(by)),
            (None, Some(without)) => format!(" without ({})", labels(without)),
            (None, None) => String::new(),
        };
        let q = self.q.map(|q| format!("{q}, ")).unwrap_or_default();
        format!("{}{grouping} ({q}{})", self.across, self.per_series)
    }
}

fn plan(args: &AggregateArgs) -> Result<Plan, ToolError> {
    let (grouping, reduce) = args.aggregation.check()?;
    let rank = match (args.topk, args.bottomk) {
        (Some(_), Some(_)) => return Err(ToolError::invalid("give topk or bottomk, not both")),
        (Some(k), None) => Some((k.as_usize(), true)),
        (None, Some(k)) => Some((k.as_usize(), false)),
        (None, None) => None,
    };
    let mut buckets = None;
    if let Some(b) = args.bucket {
        if !rollups::serves(b) {
            return Err(ToolError::invalid(
                "bucket is a whole number of hours (1h, 6h, 1d …): the rollups serve those",
            ));
        }
        let (Some(start), Some(end)) = (args.window.start, args.window.end) else {
            return Err(ToolError::invalid("a bucket needs start and end"));
        };
        let n = usize::try_from((end - start).num_seconds() / b.seconds()).unwrap_or(0) + 1;
        if n > MAX_POINTS {
            return Err(ToolError::invalid(format!(
                "{n} buckets in the window, past {MAX_POINTS}: widen the bucket or narrow the window"
            )));
        }
        buckets = Some(n);
    }
    Ok(Plan {
        buckets,
        grouping,
        reduce,
        rank,
    })
}

/// Points in one answer: groups × buckets.
const MAX_POINTS: usize = 10_000;

/// Per-series values read for one answer with a bucket (series × buckets):
/// each is a rollup row held in memory until the groups are made.
pub(super) const MAX_VALUES: usize = 1_000_000;

pub async fn aggregate_series(
    ctx: ToolContext,
    args: AggregateArgs,
) -> Result<Output<AggregateResult>, ToolError> {
    let plan = plan(&args)?;
    let AggregateArgs {
        selector,
        window,
        aggregation: Aggregation { per_series, .. },
        bucket,
        max_series,
        max_groups,
        ..
    } = args;
    let buckets = plan.buckets;
    let (entries, values, kinds) = ctx
        .db
        .run(move |conn| {
            let entries = match selection::bounded(conn, &selector, max_series)? {
                Ok(e) => e,
                Err(refused) => return Ok(Err(refused)),
            };
            if let Some(n) = buckets.filter(|n| n * entries.len() > MAX_VALUES) {
                return Ok(Err(ToolError::invalid(format!(
                    "{} series × {n} buckets is past {MAX_VALUES} values: narrow the selector, \
                     widen the bucket or shorten the window",
                    entries.len()
                ))));
            }
            let values = per_series_buckets(conn, &entries, window, per_series, bucket)?;
            let kinds = kinds(conn, &entries)?;
            Ok(Ok((entries, values, kinds)))
        })
        .await??;
    let series_matched = entries.len();
    // Each series' labels once, with its values per bucket (one, unbucketed).
    let labelled: Vec<(Labels, &Values)> = entries
        .iter()
        .zip(&values)
        .filter(|(_, v)| !v.is_empty())
        .map(|(e, v)| (labels(e), v))
        .collect();
    if matches!(plan.reduce, Reduce::HistogramQuantile(_))
        && !labelled.iter().any(|(l, _)| l.contains_key(across::LE))
    {
        return Err(ToolError::invalid(
            "histogram_quantile needs a classic histogram's _bucket series (with an le label), \
             e.g. selector http_request_duration_seconds_bucket",
        ));
    }
    let mut groups: Vec<GroupValue> = match bucket {
        None => {
            let flat: Vec<(Labels, f64)> =
                labelled.iter().map(|(l, v)| (l.clone(), v[0].1)).collect();
            across::aggregate(&flat, &plan.grouping, plan.reduce)
                .into_iter()
                .map(GroupValue::from)
                .collect()
        }
        Some(_) => bucketed(
            labelled.iter().map(|(l, v)| (l, *v)),
            (&plan.grouping, plan.reduce),
        ),
    };
    if let Some((k, top)) = plan.rank {
        groups = rank(groups, k, top);
    }
    let per_group = groups
        .iter()
        .filter_map(|g| g.points.as_ref().map(Vec::len))
        .max()
        .unwrap_or(1)
        .max(1);
    let keep = max_groups.as_usize().min(MAX_POINTS / per_group).max(1);
    let truncated = groups.len() > keep;
    groups.truncate(keep);
    let notes = notes(per_series, &kinds);
    let text = text(&groups, series_matched, labelled.len(), &notes);
    Ok(Output {
        value: AggregateResult {
            groups,
            series_matched,
            series_with_values: labelled.len(),
            source: Source::Rollup,
            resolution: Some(rollups::RESOLUTION_BUCKET),
            bucket,
            truncated,
            notes,
        },
        text,
    })
}

/// One series' values: one for the window (time none), or one per bucket.
pub(super) type Values = Vec<(Option<DateTime<Utc>>, f64)>;

/// Per bucket, the groups of that bucket's values; then each group's
/// points in time order, its value their mean. Each series' group is found
/// once, not once per bucket.
pub(super) fn bucketed<'a>(
    labelled: impl IntoIterator<Item = (&'a Labels, &'a Values)>,
    (grouping, reduce): (&Grouping, Reduce),
) -> Vec<GroupValue> {
    type Members<'a> = BTreeMap<DateTime<Utc>, Vec<(&'a Labels, f64)>>;
    let mut groups: BTreeMap<Labels, Members<'a>> = BTreeMap::new();
    for (l, values) in labelled {
        let group = groups
            .entry(across::group_key(l, grouping, reduce))
            .or_default();
        for (t, v) in values.iter() {
            if let Some(t) = t {
                group.entry(*t).or_default().push((l, *v));
            }
        }
    }
    groups
        .into_iter()
        .filter(|(_, per_time)| !per_time.is_empty())
        .map(|(labels, per_time)| {
            let series = per_time.values().map(Vec::len).max().unwrap_or(0);
            let points = per_time
                .iter()
                .map(|(time, members)| BucketValue {
                    time: *time,
                    value: across::reduced(members, reduce),
                })
                .collect();
            GroupValue::of_points(labels, series, points)
        })
        .collect()
}

impl GroupValue {
    /// A group of points in time order; its value is their mean.
    pub(super) fn of_points(labels: Labels, series: usize, points: Vec<BucketValue>) -> GroupValue {
        let known: Vec<f64> = points.iter().filter_map(|p| p.value).collect();
        let value = (!known.is_empty()).then(|| known.iter().sum::<f64>() / known.len() as f64);
        GroupValue {
            labels,
            value,
            series,
            points: Some(points),
        }
    }
}

/// The `k` groups of largest (`top`) or smallest value, as [`across::rank`].
pub(super) fn rank(mut groups: Vec<GroupValue>, k: usize, top: bool) -> Vec<GroupValue> {
    groups.sort_by(|a, b| across::by_value(a.value, b.value, top));
    groups.truncate(k);
    groups
}

/// Per entry, its values over the window or per bucket.
fn per_series_buckets(
    conn: &mut diesel::PgConnection,
    entries: &[Entry],
    window: Window,
    per_series: PerSeries,
    bucket: Option<Bucket>,
) -> Result<Vec<Values>, crate::db::DbError> {
    let names: Vec<&str> = entries.iter().map(|e| e.series_name.as_str()).collect();
    let sketch = matches!(per_series, PerSeries::P50 | PerSeries::P95 | PerSeries::P99);
    let Some(bucket) = bucket else {
        return Ok(merged_each(conn, entries, window, sketch)?
            .iter()
            .map(|m| {
                of_merged(m, per_series)
                    .map(|v| (None, v))
                    .into_iter()
                    .collect()
            })
            .collect());
    };
    Ok(buckets_each(conn, &names, window, bucket, sketch)?
        .iter()
        .map(|buckets| {
            buckets
                .iter()
                .filter_map(|(t, m)| of_merged(m, per_series).map(|v| (Some(*t), v)))
                .collect()
        })
        .collect())
}

/// One series' buckets, each merged, in time order.
pub(super) type Buckets = Vec<(DateTime<Utc>, Merged)>;

/// Each series' buckets of `bucket` over the window, in time order: from
/// the rollups for whole hours, else from the raw points (without sketches).
/// One statement for all.
pub(super) fn buckets_each(
    conn: &mut diesel::PgConnection,
    names: &[&str],
    window: Window,
    bucket: Bucket,
    sketch: bool,
) -> Result<Vec<Buckets>, crate::db::DbError> {
    let rows = if rollups::serves(bucket) {
        // Day rows only fit buckets of whole days.
        rollups::read_many(
            conn,
            names,
            window,
            (bucket.seconds() % rollups::DAY == 0, sketch),
            None,
        )?
    } else {
        rollups::read_many_raw(conn, names, window, bucket)?
    };
    Ok(rows
        .iter()
        .map(|rows| rollups::group(rows, bucket, usize::MAX, sketch))
        .collect())
}

/// Each entry's rollup rows over the window, merged: one statement for all.
pub(super) fn merged_each(
    conn: &mut diesel::PgConnection,
    entries: &[Entry],
    window: Window,
    sketch: bool,
) -> Result<Vec<Merged>, crate::db::DbError> {
    let names: Vec<&str> = entries.iter().map(|e| e.series_name.as_str()).collect();
    rollups::read_many(conn, &names, window, (true, sketch), None)?
        .iter()
        .map(|rows| Merged::checked(rows, sketch))
        .collect()
}

/// A per-series value from merged rollups (not a counter's rate or increase).
pub(super) fn of_merged(m: &Merged, per_series: PerSeries) -> Option<f64> {
    if m.moments.n == 0 {
        return None;
    }
    match per_series {
        PerSeries::Avg => m.moments.mean(),
        PerSeries::Min => m.min,
        PerSeries::Max => m.max,
        PerSeries::Sum => Some(m.moments.sum),
        PerSeries::Count => Some(m.moments.n as f64),
        PerSeries::Last => m.last.map(|l| l.1),
        PerSeries::P50 => m.quantile(0.5),
        PerSeries::P95 => m.quantile(0.95),
        PerSeries::P99 => m.quantile(0.99),
        PerSeries::Rate => m.counter_rate(),
        PerSeries::Increase => m.counter_increase(),
    }
}

/// A series' labels: its string tags, and its metric as `__name__`.
pub(super) fn labels(e: &Entry) -> Labels {
    let mut l: Labels = e
        .tags
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
        .collect();
    l.insert(across::NAME.to_owned(), e.metric.clone());
    l
}

fn notes(per_series: PerSeries, kinds: &HashMap<String, MetricKind>) -> Vec<String> {
    let mut counting: Vec<&str> = kinds
        .iter()
        .filter(|(m, k)| k.counts_up(m))
        .map(|(m, _)| m.as_str())
        .collect();
    counting.sort_unstable();
    let mut notes = Vec::new();
    if !counting.is_empty() && !matches!(per_series, PerSeries::Rate | PerSeries::Increase) {
        notes.push(format!(
            "{} count up (cumulative counters, reset to 0 on restart): per_series {per_series} \
             summarises the raw counts; use rate or increase for how much they grew",
            counting.join(", ")
        ));
    }
    if matches!(per_series, PerSeries::P50 | PerSeries::P95 | PerSeries::P99) {
        notes.push(format!(
            "per-series percentiles come from the hourly sketches, within {}%",
            rollups::SKETCH_ERROR * 100.0
        ));
    }
    notes
}

impl From<Group> for GroupValue {
    fn from(g: Group) -> Self {
        GroupValue {
            labels: g.labels,
            value: g.value,
            series: g.series,
            points: None,
        }
    }
}

fn text(groups: &[GroupValue], matched: usize, with_values: usize, notes: &[String]) -> String {
    let mut lines: Vec<String> = groups
        .iter()
        .map(|g| {
            let labels: Vec<String> = g.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
            format!(
                "{{{}}} {} ({} series)",
                labels.join(","),
                fmt_num(g.value),
                g.series
            )
        })
        .collect();
    if groups.is_empty() {
        lines.push("No group: no matching series has values in the window.".into());
    }
    lines.push(format!(
        "{matched} series matched, {with_values} with values."
    ));
    lines.extend(notes.iter().cloned());
    lines.join("\n")
}
