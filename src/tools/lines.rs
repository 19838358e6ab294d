//! `plot_series` over a selector: one line per series, or per group of an
//! aggregation (as `aggregate_series` makes them, per bucket), at most
//! [`MAX_LINES`] with the rest folded into "other". The buckets come from the
//! rollups when they are whole hours, else from the raw points in one
//! statement for all series, never more than one per pixel column.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, TimeDelta, Utc};
use schemars::JsonSchema;
use serde::Serialize;

use super::aggregate::{self, Aggregation, BucketValue, Buckets, GroupValue, MAX_VALUES, Values};
use super::chart::{self as tool, Plot, PlotArgs, PlotResult};
use super::selection;
use super::{ToolContext, ToolError, fmt_num};
use crate::analytics::across::{Labels, Reduce};
use crate::chart::{self, Column, PlotArea, Swatch};
use crate::domain::{Aggregate, Bucket, PerSeries, Selector, cut};
use crate::store::{aggregates, retention};

/// Lines in one chart, "other" included: more would not tell apart (one
/// style each in [`chart::LINES`]).
pub const MAX_LINES: usize = chart::LINES.len();
/// Characters of one legend entry.
const LEGEND_CHARS: usize = 48;

/// Raw points a chart of several series summarises at most (by its
/// series' spacing); past it, its buckets are whole hours.
const MAX_RAW_POINTS: f64 = 2_000_000.0;

#[derive(Debug, Serialize, JsonSchema)]
pub struct LineInfo {
    /// The legend's text.
    pub label: String,
    /// The series' labels, or the group's; empty for "other".
    pub labels: Labels,
    /// The mean of its points: what orders the lines.
    pub value: Option<f64>,
    /// Series in it (a group's fullest bucket).
    pub series: usize,
    /// Buckets drawn.
    pub drawn: usize,
    /// For "other": the lines folded into it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub folded: Option<usize>,
}

/// What was read: each matched series' labels and buckets.
struct Loaded {
    matched: usize,
    extent: (DateTime<Utc>, DateTime<Utc>),
    bucket: Bucket,
    series: Vec<(Labels, Buckets)>,
}

/// How each bucket's value is found: the aggregate of each series, or the
/// groups of an aggregation.
enum Mode {
    Each(Aggregate),
    Grouped(Aggregation, Reduce, crate::analytics::across::Grouping),
}

impl Mode {
    /// How "other" combines the values of the lines folded into it.
    fn fold(&self) -> (&'static str, fn(&[f64]) -> f64) {
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        match self {
            Mode::Grouped(_, Reduce::Sum | Reduce::Count, _) => ("sum", |v| v.iter().sum()),
            Mode::Grouped(_, Reduce::Min, _) => {
                ("min", |v| v.iter().copied().fold(f64::INFINITY, f64::min))
            }
            Mode::Grouped(_, Reduce::Max, _) => ("max", |v| {
                v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
            }),
            _ => ("mean", mean),
        }
    }
}

pub async fn plot(
    ctx: &ToolContext,
    selector: &Selector,
    args: PlotArgs,
) -> Result<Plot, ToolError> {
    if args.anomaly_method.is_some()
        || args.anomaly_threshold.is_some()
        || args.analysis_id.is_some()
        || args.model_id.is_some()
        || args.horizon.is_some()
    {
        return Err(ToolError::invalid(
            "anomalies and forecasts are drawn over one series: give series instead of selector",
        ));
    }
    let mode = match &args.aggregation {
        Some(_) if args.aggregate.is_some() => {
            return Err(ToolError::invalid(
                "aggregate is each series' value per bucket without aggregation; with it, \
                 aggregation.per_series says that",
            ));
        }
        Some(a) => {
            let (grouping, reduce) = a.check()?;
            Mode::Grouped(a.clone(), reduce, grouping)
        }
        None => Mode::Each(args.aggregate.unwrap_or_default()),
    };
    let per_series = match &mode {
        Mode::Grouped(a, ..) => Some(a.per_series),
        Mode::Each(_) => None,
    };
    let sketch = matches!(
        per_series,
        Some(PerSeries::P50 | PerSeries::P95 | PerSeries::P99)
    );
    let counter = matches!(per_series, Some(PerSeries::Rate | PerSeries::Increase));
    let columns = i64::from(chart::columns(args.width.get()));
    let (window, asked, max_series) = (args.window, args.bucket, args.max_series);
    let query = selector.clone();
    let loaded = ctx
        .db
        .run(move |conn| {
            let entries = match selection::bounded(conn, &query, max_series)? {
                Ok(e) => e,
                Err(refused) => return Ok(Err(refused)),
            };
            let names: Vec<&str> = entries.iter().map(|e| e.series_name.as_str()).collect();
            let Some(extent) = aggregates::extent(conn, &names, window)? else {
                return Ok(Err(ToolError::invalid(format!(
                    "no series of {query} has points in this range ({} matched); see list_series",
                    entries.len()
                ))));
            };
            let span =
                (window.end.unwrap_or(extent.1) - window.start.unwrap_or(extent.0)).num_seconds();
            // As one series' chart: two columns spare for date_bin's edges.
            let mut needed = span.div_euclid((columns - 2).max(1)) + 1;
            if let Some(first) = entries.first() {
                // No finer than the samples; a rate needs pairs in each
                // bucket: at least four samples' worth, as Prometheus advises
                // for a range.
                let every = aggregates::spacing(conn, &first.series_name, window)?.unwrap_or(0.0);
                let samples = if counter { 4.0 } else { 1.0 };
                needed = needed.max((samples * every).ceil() as i64);
                // Past MAX_RAW_POINTS raw points, whole hours from the
                // rollups: summarising a fleet's 17M points took 20 s.
                if every > 0.0 && entries.len() as f64 * span as f64 / every > MAX_RAW_POINTS {
                    needed = needed.max(Bucket::HOUR.seconds());
                }
            }
            // And few enough buckets for every series to stay within the
            // values one call reads; no finer than what retention kept.
            let per_series = (MAX_VALUES / entries.len().max(1)).saturating_sub(2).max(1);
            needed = needed
                .max(span.div_euclid(per_series as i64) + 1)
                .max(retention::horizons(conn, &names)?.finest(window));
            let mut bucket = match asked {
                Some(b) if b.seconds() >= needed => b,
                _ => match tool::round_width(needed) {
                    Ok(b) => b,
                    Err(e) => return Ok(Err(ToolError::Invalid(e))),
                },
            };
            if sketch && bucket.seconds() < Bucket::HOUR.seconds() {
                // Percentiles come from the hourly sketches.
                bucket = Bucket::HOUR;
            }
            let merged = aggregate::buckets_each(conn, &names, window, bucket, sketch)?;
            Ok(Ok(Loaded {
                matched: entries.len(),
                extent,
                bucket,
                series: entries.iter().map(aggregate::labels).zip(merged).collect(),
            }))
        })
        .await??;
    draw((selector, loaded), &mode, &args).await
}

/// The lines, largest mean first; past [`MAX_LINES`], the rest as "other".
fn lines(loaded: &Loaded, mode: &Mode) -> (Vec<GroupValue>, Option<(usize, GroupValue)>) {
    let groups = match mode {
        Mode::Each(aggregate) => loaded
            .series
            .iter()
            .filter(|(_, buckets)| !buckets.is_empty())
            .map(|(labels, buckets)| {
                let points = buckets
                    .iter()
                    .map(|(time, m)| BucketValue {
                        time: *time,
                        value: m.aggregate(*aggregate),
                    })
                    .collect();
                GroupValue::of_points(labels.clone(), 1, points)
            })
            .collect(),
        Mode::Grouped(a, reduce, grouping) => {
            let values: Vec<(&Labels, Values)> = loaded
                .series
                .iter()
                .map(|(labels, buckets)| {
                    let v: Values = buckets
                        .iter()
                        .filter_map(|(t, m)| {
                            Some((Some(*t), aggregate::of_merged(m, a.per_series)?))
                        })
                        .collect();
                    (labels, v)
                })
                .collect();
            aggregate::bucketed(values.iter().map(|(l, v)| (*l, v)), (grouping, *reduce))
        }
    };
    let mut groups = aggregate::rank(groups, usize::MAX, true);
    if groups.len() <= MAX_LINES {
        return (groups, None);
    }
    let rest = groups.split_off(MAX_LINES - 1);
    let (_, combine) = mode.fold();
    let mut per_time: BTreeMap<DateTime<Utc>, Vec<f64>> = BTreeMap::new();
    for g in &rest {
        for p in g.points.iter().flatten() {
            if let Some(v) = p.value {
                per_time.entry(p.time).or_default().push(v);
            }
        }
    }
    let points = per_time
        .into_iter()
        .map(|(time, v)| BucketValue {
            time,
            value: Some(combine(&v)),
        })
        .collect();
    let other = GroupValue::of_points(Labels::new(), rest.iter().map(|g| g.series).sum(), points);
    (groups, Some((rest.len(), other)))
}

/// The legend's text of each line: the labels that differ between them
/// (those all share go in the title).
fn legend_texts(groups: &[GroupValue]) -> (Vec<String>, Labels) {
    let first = groups.first().map(|g| g.labels.clone()).unwrap_or_default();
    let shared: Labels = first
        .into_iter()
        .filter(|(k, v)| groups.iter().all(|g| g.labels.get(k) == Some(v)))
        .collect();
    let texts = groups
        .iter()
        .map(|g| {
            let own: Vec<String> = g
                .labels
                .iter()
                .filter(|(k, _)| !shared.contains_key(*k))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            match own.is_empty() {
                true if g.labels.is_empty() => "all series".to_owned(),
                true => "each of them".to_owned(),
                false => short(&own.join(", ")),
            }
        })
        .collect();
    (texts, shared)
}

fn short(text: &str) -> String {
    match text.char_indices().nth(LEGEND_CHARS) {
        None => text.to_owned(),
        Some((at, _)) => format!("{}…", &text[..at]),
    }
}

fn columns_of(g: &GroupValue) -> Vec<Column> {
    g.points
        .iter()
        .flatten()
        .filter_map(|p| {
            let value = p.value.filter(|v| v.is_finite())?;
            Some(Column {
                time: p.time,
                value,
                low: value,
                high: value,
            })
        })
        .collect()
}

async fn draw(
    (selector, loaded): (&Selector, Loaded),
    mode: &Mode,
    args: &PlotArgs,
) -> Result<Plot, ToolError> {
    let (groups, other) = lines(&loaded, mode);
    let (texts, shared) = legend_texts(&groups);
    let bucket = loaded.bucket;
    let what = match mode {
        Mode::Each(a) => format!("{} per {}", a.as_str(), String::from(bucket)),
        Mode::Grouped(a, ..) => format!("{} per {}", a.describe(), String::from(bucket)),
    };
    let shared_text: Vec<String> = shared
        .iter()
        .filter(|(k, _)| k.as_str() != crate::analytics::across::NAME)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    // What all lines share, when they share their metric; else the selector.
    let title = cut(&match (
        shared.get(crate::analytics::across::NAME),
        shared_text.is_empty(),
    ) {
        (Some(m), true) => format!("{m}: {what}"),
        (Some(m), false) => format!("{m}{{{}}}: {what}", shared_text.join(", ")),
        (None, _) => format!("{selector}: {what}"),
    });
    let line = |g: &GroupValue, label: String, folded| {
        let columns = columns_of(g);
        let info = LineInfo {
            label,
            labels: g.labels.clone(),
            value: g.value,
            series: g.series,
            drawn: columns.len(),
            folded,
        };
        (columns, info)
    };
    let mut drawn: Vec<(chart::Style, (Vec<Column>, LineInfo))> = groups
        .iter()
        .zip(&texts)
        .zip(chart::LINES)
        .map(|((g, text), style)| (style, line(g, text.clone(), None)))
        .collect();
    let (fold_name, _) = mode.fold();
    if let Some((n, g)) = &other {
        let label = format!("other: {n} more ({fold_name})");
        drawn.push((chart::OTHER, line(g, label, Some(*n))));
    }
    let (min, max) = drawn
        .iter()
        .flat_map(|(_, (columns, _))| columns)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), c| {
            (lo.min(c.value), hi.max(c.value))
        });
    let start = args.window.start.unwrap_or(loaded.extent.0);
    let end = args
        .window
        .end
        .unwrap_or(loaded.extent.1)
        .max(start + TimeDelta::seconds(1));
    let points: i64 = loaded
        .series
        .iter()
        .flat_map(|(_, b)| b.iter().map(|(_, m)| m.moments.n))
        .sum();
    let legend: Vec<(Swatch, String)> = drawn
        .iter()
        .map(|(style, (_, info))| (Swatch::Line(*style), info.label.clone()))
        .collect();
    let drawn_count = drawn.iter().map(|(_, (c, _))| c.len()).sum();
    let (styles, (lines, infos)): (Vec<_>, (Vec<Vec<Column>>, Vec<LineInfo>)) =
        drawn.into_iter().unzip();
    let result = PlotResult {
        series: None,
        lines: Some(infos),
        series_matched: Some(loaded.matched),
        start,
        end,
        utc_offset: String::from(args.utc_offset),
        width: args.width.get(),
        height: args.height.get(),
        points,
        drawn: drawn_count,
        bucket: Some(bucket),
        bucket_requested: args.bucket.filter(|b| *b != bucket),
        aggregate: match mode {
            Mode::Each(a) => Some(*a),
            Mode::Grouped(..) => None,
        },
        first_time: loaded.extent.0,
        last_time: loaded.extent.1,
        min,
        max,
        anomalies: None,
        forecast: None,
        plot_area: PlotArea::default(),
        cached: false,
    };
    let offset = args.utc_offset.fixed();
    let (width, height) = (result.width, result.height);
    // Joined across a missing bucket or two, not across a longer silence.
    let gap = TimeDelta::seconds(bucket.seconds() * 3);
    let chart_title = title.clone();
    tool::render(
        result,
        move || {
            let lines: Vec<chart::Line> = lines
                .iter()
                .zip(styles)
                .map(|(points, style)| chart::Line { points, style })
                .collect();
            chart::render(&chart::Chart {
                title: &chart_title,
                width,
                height,
                offset,
                span: (start, end),
                gap,
                lines: &lines,
                envelope: false,
                anomalies: &[],
                forecast: &[],
                legend: &legend,
            })
        },
        |r| caption(&title, r, offset),
    )
    .await
}

fn caption(title: &str, r: &PlotResult, offset: FixedOffset) -> String {
    let lines = r.lines.as_deref().unwrap_or_default();
    let each: Vec<String> = lines
        .iter()
        .map(|l| format!("{} {}", l.label, fmt_num(l.value)))
        .collect();
    let mut text = format!(
        "{title}: {} lines of {} matched series ({} points) from {} to {}; mean of each, largest first: {}",
        lines.len(),
        r.series_matched.unwrap_or_default(),
        r.points,
        tool::t(r.first_time),
        tool::t(r.last_time),
        each.join("; "),
    );
    text += &tool::widened(
        r,
        "at most one bucket per pixel column, at least one sample per bucket (four for a rate), \
         and at most 1,000,000 values over all series",
    );
    text + &tool::image_note(r, offset)
}
