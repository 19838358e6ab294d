//! Across series, as PromQL's aggregation operators do it: one value per
//! series, grouped `by` or `without` labels, reduced per group (`sum`,
//! `avg`, `min`, `max`, `count`, `stddev`, `quantile`, and
//! `histogram_quantile` over classic `le` buckets), then ranked. Pure; the
//! semantics follow Prometheus' `promql/engine.go` and `quantile.go`.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// A series' labels: its string tags, and `__name__` for its metric.
pub type Labels = BTreeMap<String, String>;

/// The label a classic histogram keeps its bucket bounds in.
pub const LE: &str = "le";
/// The label that names the metric.
pub const NAME: &str = "__name__";

/// How series are put into groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grouping {
    /// Groups of the same values of these labels (none: one group).
    By(Vec<String>),
    /// Groups of the same values of every label but these (and the metric).
    Without(Vec<String>),
}

impl Grouping {
    /// A group's labels, as Prometheus gives them: `by` keeps the listed
    /// labels a series has; `without` drops the listed ones and the metric.
    pub fn key(&self, labels: &Labels) -> Labels {
        match self {
            Grouping::By(keep) => labels
                .iter()
                .filter(|(k, _)| keep.iter().any(|x| x == *k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            Grouping::Without(drop) => labels
                .iter()
                .filter(|(k, _)| *k != NAME && !drop.iter().any(|x| x == *k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

/// The reduction of a group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reduce {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    /// Population standard deviation, as PromQL's `stddev`.
    Stddev,
    /// φ-quantile of the group's values, interpolated as PromQL's `quantile`.
    Quantile(f64),
    /// φ-quantile of a classic histogram: the group's series are its
    /// `_bucket` series, summed per `le` first.
    HistogramQuantile(f64),
}

/// One group's labels and value (`None` where PromQL says NaN).
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub labels: Labels,
    pub value: Option<f64>,
    /// The series that went into it.
    pub series: usize,
}

/// Groups `values` (a series' labels and value each) and reduces each
/// group, in the order of the groups' labels.
pub fn aggregate<L: Borrow<Labels>>(
    values: &[(L, f64)],
    grouping: &Grouping,
    reduce: Reduce,
) -> Vec<Group> {
    let mut groups: BTreeMap<Labels, Vec<(&Labels, f64)>> = BTreeMap::new();
    for (labels, v) in values {
        let labels = labels.borrow();
        groups
            .entry(group_key(labels, grouping, reduce))
            .or_default()
            .push((labels, *v));
    }
    groups
        .into_iter()
        .map(|(labels, members)| Group {
            labels,
            value: reduced(&members, reduce),
            series: members.len(),
        })
        .collect()
}

/// The labels of the group a series with `labels` goes into.
pub fn group_key(labels: &Labels, grouping: &Grouping, reduce: Reduce) -> Labels {
    let mut key = grouping.key(labels);
    if matches!(reduce, Reduce::HistogramQuantile(_)) {
        // Buckets of one histogram differ only in `le`.
        key.remove(LE);
    }
    key
}

/// One group's value from its members (each a series' labels and value);
/// `None` where PromQL says NaN.
pub fn reduced(members: &[(&Labels, f64)], reduce: Reduce) -> Option<f64> {
    let vs: Vec<f64> = members.iter().map(|(_, v)| *v).collect();
    let value = match reduce {
        Reduce::Sum => Some(vs.iter().sum()),
        Reduce::Avg => Some(vs.iter().sum::<f64>() / vs.len() as f64),
        Reduce::Min => vs.iter().copied().reduce(f64::min),
        Reduce::Max => vs.iter().copied().reduce(f64::max),
        Reduce::Count => Some(vs.len() as f64),
        Reduce::Stddev => {
            let mean = vs.iter().sum::<f64>() / vs.len() as f64;
            Some((vs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vs.len() as f64).sqrt())
        }
        Reduce::Quantile(q) => quantile(q, vs),
        Reduce::HistogramQuantile(q) => {
            let mut per_le: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
            for (l, v) in members {
                if let Some(le) = l.get(LE).and_then(|s| parse_le(s)) {
                    per_le.entry(le.to_bits()).or_insert((le, 0.0)).1 += v;
                }
            }
            bucket_quantile(q, per_le.into_values().collect())
        }
    };
    value.filter(|v| !v.is_nan())
}

/// The `k` groups of largest (`top`) or smallest value, largest first for
/// `top`; groups without a value come last and are dropped first.
pub fn rank(mut groups: Vec<Group>, k: usize, top: bool) -> Vec<Group> {
    groups.sort_by(|a, b| by_value(a.value, b.value, top));
    groups.truncate(k);
    groups
}

/// [`rank`]'s order: by value, the largest first for `top`, none last.
pub fn by_value(a: Option<f64>, b: Option<f64>, top: bool) -> Ordering {
    match (a, b) {
        (Some(x), Some(y)) => {
            let o = x.partial_cmp(&y).unwrap_or(Ordering::Equal);
            if top { o.reverse() } else { o }
        }
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// PromQL's `quantile`: φ < 0 is −∞, φ > 1 is +∞, else linear
/// interpolation between the closest ranks.
pub fn quantile(q: f64, mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() || q.is_nan() {
        return None;
    }
    if q < 0.0 {
        return Some(f64::NEG_INFINITY);
    }
    if q > 1.0 {
        return Some(f64::INFINITY);
    }
    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(Ordering::Equal));
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    Some(values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight)
}

/// A bucket bound as Prometheus writes it (`0.5`, `+Inf`).
fn parse_le(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "inf" => Some(f64::INFINITY),
        s => s.parse().ok(),
    }
}

/// Prometheus' `bucketQuantile` over (upper bound, cumulative count)
/// pairs: needs a +Inf bucket; non-monotonic counts (a scrape between
/// bucket updates) are raised to the maximum before them.
pub fn bucket_quantile(q: f64, mut buckets: Vec<(f64, f64)>) -> Option<f64> {
    if q.is_nan() {
        return None;
    }
    if q < 0.0 {
        return Some(f64::NEG_INFINITY);
    }
    if q > 1.0 {
        return Some(f64::INFINITY);
    }
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(Ordering::Equal));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) || buckets.len() < 2 {
        return None;
    }
    let mut max = f64::NEG_INFINITY;
    for b in &mut buckets {
        max = max.max(b.1);
        b.1 = max;
    }
    let observations = buckets[buckets.len() - 1].1;
    if observations == 0.0 {
        return None;
    }
    let mut rank = q * observations;
    let b = buckets[..buckets.len() - 1]
        .iter()
        .position(|b| b.1 >= rank)
        .unwrap_or(buckets.len() - 1);
    if b == buckets.len() - 1 {
        return Some(buckets[buckets.len() - 2].0);
    }
    if b == 0 && buckets[0].0 <= 0.0 {
        return Some(buckets[0].0);
    }
    let (mut start, end, mut count) = (0.0, buckets[b].0, buckets[b].1);
    if b > 0 {
        start = buckets[b - 1].0;
        count -= buckets[b - 1].1;
        rank -= buckets[b - 1].1;
    }
    Some(start + (end - start) * (rank / count))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn groups_by_and_without_as_promql() {
        let values = vec![
            (labels(&[(NAME, "x"), ("job", "a"), ("i", "1")]), 1.0),
            (labels(&[(NAME, "x"), ("job", "a"), ("i", "2")]), 3.0),
            (labels(&[(NAME, "x"), ("job", "b"), ("i", "1")]), 10.0),
        ];
        let by = aggregate(&values, &Grouping::By(vec!["job".into()]), Reduce::Sum);
        assert_eq!(by.len(), 2);
        assert_eq!(
            (&by[0].labels, by[0].value, by[0].series),
            (&labels(&[("job", "a")]), Some(4.0), 2)
        );
        let without = aggregate(&values, &Grouping::Without(vec!["i".into()]), Reduce::Avg);
        assert_eq!(
            without[0].labels,
            labels(&[("job", "a")]),
            "the metric goes too"
        );
        assert_eq!(without[0].value, Some(2.0));
        let all = aggregate(&values, &Grouping::By(vec![]), Reduce::Stddev);
        assert_eq!(all[0].labels, Labels::new());
        // Population stddev of 1, 3, 10.
        assert!((all[0].value.unwrap() - 3.8586123009300755).abs() < 1e-12);
        let top = rank(
            aggregate(&values, &Grouping::Without(vec![]), Reduce::Max),
            2,
            true,
        );
        assert_eq!(
            top.iter().map(|g| g.value.unwrap()).collect::<Vec<_>>(),
            [10.0, 3.0]
        );
        let bottom = rank(
            aggregate(&values, &Grouping::Without(vec![]), Reduce::Max),
            1,
            false,
        );
        assert_eq!(bottom[0].value, Some(1.0));
    }

    #[test]
    fn quantile_interpolates_as_promql() {
        // promql/testdata/aggregators.test: quantile(0.8, …) over 1..8 ⇒ 6.6
        let v: Vec<f64> = (1..=8).map(f64::from).collect();
        assert!((quantile(0.8, v.clone()).unwrap() - 6.6).abs() < 1e-12);
        assert_eq!(quantile(0.5, vec![1.0, 2.0]), Some(1.5));
        assert_eq!(quantile(-1.0, v.clone()), Some(f64::NEG_INFINITY));
        assert_eq!(quantile(2.0, v), Some(f64::INFINITY));
        assert_eq!(quantile(0.5, vec![]), None);
    }

    #[test]
    fn histogram_quantile_over_classic_buckets() {
        let b = |pairs: &[(f64, f64)]| pairs.to_vec();
        // 100 observations: 50 ≤ 0.1, 90 ≤ 0.5, 100 ≤ 1.
        let h = b(&[
            (0.1, 50.0),
            (0.5, 90.0),
            (1.0, 100.0),
            (f64::INFINITY, 100.0),
        ]);
        assert_eq!(bucket_quantile(0.5, h.clone()), Some(0.1));
        assert!((bucket_quantile(0.7, h.clone()).unwrap() - 0.3).abs() < 1e-12);
        assert!((bucket_quantile(0.95, h.clone()).unwrap() - 0.75).abs() < 1e-12);
        // In the +Inf bucket: the largest finite bound.
        let tail = b(&[(0.1, 50.0), (1.0, 60.0), (f64::INFINITY, 100.0)]);
        assert_eq!(bucket_quantile(0.99, tail), Some(1.0));
        assert_eq!(
            bucket_quantile(0.5, b(&[(0.1, 1.0), (1.0, 2.0)])),
            None,
            "no +Inf bucket"
        );
        assert_eq!(
            bucket_quantile(0.5, b(&[(1.0, 0.0), (f64::INFINITY, 0.0)])),
            None,
            "nothing observed"
        );
        // Non-monotonic counts are raised: 0.5 → 50 like the bucket below it.
        let bumpy = b(&[(0.1, 50.0), (0.5, 40.0), (f64::INFINITY, 100.0)]);
        assert_eq!(bucket_quantile(0.5, bumpy), Some(0.1));
        // Through aggregate: buckets of two instances summed per le, per job.
        let series = |i: &str, le: &str, v: f64| (labels(&[("job", "a"), ("i", i), (LE, le)]), v);
        let values = vec![
            series("1", "0.1", 25.0),
            series("2", "0.1", 25.0),
            series("1", "0.5", 45.0),
            series("2", "0.5", 45.0),
            series("1", "+Inf", 50.0),
            series("2", "+Inf", 50.0),
        ];
        let g = aggregate(
            &values,
            &Grouping::By(vec!["job".into(), LE.into()]),
            Reduce::HistogramQuantile(0.7),
        );
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].labels, labels(&[("job", "a")]));
        assert!((g[0].value.unwrap() - 0.3).abs() < 1e-12);
    }
}
