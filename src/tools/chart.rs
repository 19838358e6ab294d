//! `plot_series`: a series, its anomalies and a forecast as a PNG that MCP
//! hosts show inline, with a caption and the same figures as structured
//! content; or several series, one line each (see [`super::lines`]). The series resource's chart (`timeseries://<series>/chart.png`)
//! and the prompts draw through [`plot`] too.
//!
//! Long ranges are bucketed in PostgreSQL to at most one bucket per pixel
//! column, so a chart of a million points costs one aggregate query and a
//! few thousand drawn segments.

use std::sync::LazyLock;
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, FixedOffset, Offset, TimeDelta, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::aggregate::Aggregation;
use super::analysis::{self, Method, Threshold};
pub use super::lines::LineInfo;
use super::models::{forecast_points, stored_model};
use super::selection::MaxSeries;
use super::{Annotations, Output, Scopes, Spec, ToolContext, ToolError, fmt_num};
use crate::chart::{self, Column, PlotArea, Swatch};
use crate::domain::{
    Aggregate, AnalysisKind, Bounded, Bucket, ModelKind, RunStatus, Selector, Series, Window,
};
use crate::store::aggregates::{self, Outlier};
use crate::store::runs;
use crate::store::{retention, rollups};

/// Cached chart data lives at most this long even without writes.
const TTL: Duration = Duration::from_secs(300);
/// Anomaly rings drawn at most (the most extreme first); the count says how many there are.
const MAX_RINGS: i64 = 500;
/// Forecast steps drawn at most by default.
const DEFAULT_HORIZON_CAP: i64 = 1000;
/// Renders at once: each holds a width × height × 3 buffer.
static RENDERS: LazyLock<rocket::tokio::sync::Semaphore> = LazyLock::new(|| {
    rocket::tokio::sync::Semaphore::new(
        std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
    )
});
const RENDER_WAIT: Duration = Duration::from_secs(10);

pub const SPEC: Spec = Spec {
    name: "plot_series",
    title: "Plot a series",
    description: "A PNG chart over a time range, shown inline by MCP hosts. Of one series: the line (bucketed \
                  in PostgreSQL to at most one bucket per pixel column, each bucket's min–max shaded), optionally \
                  ringed anomalies (by method and threshold, or from a stored detect_anomalies run) and a \
                  forecast from a trained model with a band of ± its holdout RMSE. Of several series: give a \
                  selector instead, for one line per series, or with aggregation (per_series, across, by, as \
                  aggregate_series takes them) one line per group, e.g. the request rate by status code over \
                  time; at most 10 lines, the rest folded into \"other\". Returns the image, a caption, and \
                  the same figures as structured content.",
    annotations: Annotations::READ_ONLY,
    scope: Scopes::READ,
};

/// A fixed offset from UTC for the time axis: `Z`, `+01:00`, `-05:30`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UtcOffset(FixedOffset);

impl TryFrom<String> for UtcOffset {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        if matches!(text.as_str(), "Z" | "z" | "UTC") {
            return Ok(UtcOffset::default());
        }
        text.parse::<FixedOffset>()
            .ok()
            .filter(|_| text.len() == 6)
            .map(UtcOffset)
            .ok_or_else(|| {
                format!(
                    "utc_offset {} is not an offset like Z, +01:00 or -05:30",
                    crate::domain::echo(&text)
                )
            })
    }
}

impl From<UtcOffset> for String {
    fn from(o: UtcOffset) -> String {
        match o.0.local_minus_utc() {
            0 => "Z".into(),
            _ => o.0.to_string(),
        }
    }
}

impl UtcOffset {
    pub fn fixed(self) -> FixedOffset {
        self.0
    }
}

impl Default for UtcOffset {
    fn default() -> Self {
        UtcOffset(Utc.fix())
    }
}

impl JsonSchema for UtcOffset {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "UtcOffset".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^(Z|UTC|[+-][0-9]{2}:[0-9]{2})$",
            "description": "Label times at this offset from UTC: Z (default), +01:00, -05:30",
        })
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlotArgs {
    /// One series (list_series). Or give selector instead.
    pub series: Option<Series>,
    /// Several series, one line each: a PromQL selector (http_requests_total{job="api"}) or
    /// {"metric", "match"}.
    pub selector: Option<Selector>,
    /// With selector: one line per group of this aggregation (as aggregate_series takes it), each
    /// point the group's value in that bucket.
    pub aggregation: Option<Aggregation>,
    /// With selector: refuse past this many matching series.
    #[serde(default)]
    pub max_series: MaxSeries,
    #[serde(flatten)]
    pub window: Window,
    /// Bucket width (30s, 5m, 1h, 1d, 1w). Absent: raw points when they fit the plot's pixel columns, else
    /// the finest round width that fits. A width too fine for the plot is widened (the result says so).
    pub bucket: Option<Bucket>,
    /// The aggregate drawn per bucket (default avg); with one series each bucket's min–max is shaded
    /// behind it.
    pub aggregate: Option<Aggregate>,
    /// Ring the points this method finds anomalous in the range: zscore, iqr or mad.
    pub anomaly_method: Option<Method>,
    /// The method's threshold (> 0; defaults 3, 1.5 and 3.5).
    pub anomaly_threshold: Option<Threshold>,
    /// Or ring the anomalies of a stored detect_anomalies run (its analysis_id).
    pub analysis_id: Option<i64>,
    /// Draw the forecast of this trained model (train_model, list_models) after the data, with a band of
    /// ± its holdout RMSE.
    pub model_id: Option<i64>,
    /// Forecast steps (default: enough to cover a quarter of the plotted range, at most 1000).
    pub horizon: Option<Bounded<1, 10_000>>,
    /// Label times at this offset from UTC (default Z).
    #[serde(default)]
    pub utc_offset: UtcOffset,
    /// Image width in pixels.
    #[serde(default)]
    pub width: Bounded<240, 3000, 1000>,
    /// Image height in pixels.
    #[serde(default)]
    pub height: Bounded<160, 2000, 400>,
}

impl PlotArgs {
    /// The whole series at the default size, no overlays.
    pub fn of(series: Series) -> PlotArgs {
        PlotArgs {
            series: Some(series),
            selector: None,
            aggregation: None,
            max_series: MaxSeries::default(),
            window: Window::default(),
            bucket: None,
            aggregate: None,
            anomaly_method: None,
            anomaly_threshold: None,
            analysis_id: None,
            model_id: None,
            horizon: None,
            utc_offset: UtcOffset::default(),
            width: Bounded::default(),
            height: Bounded::default(),
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct AnomalyOverlay {
    /// The stored run drawn, when one was named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysis_id: Option<i64>,
    pub method: Method,
    pub threshold: f64,
    /// Anomalous points in all.
    pub total: i64,
    /// The rings drawn (inside the plotted range; the most extreme first, at most 500).
    pub drawn: Vec<Outlier>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ForecastOverlay {
    pub model_id: i64,
    pub model_type: ModelKind,
    pub horizon: usize,
    pub step_seconds: f64,
    /// The band's half-width: the model's holdout RMSE (absent when it has none).
    pub band: Option<f64>,
    pub points: Vec<BandPoint>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct BandPoint {
    pub time: DateTime<Utc>,
    pub value: f64,
    pub low: f64,
    pub high: f64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct PlotResult {
    /// The series drawn (absent with a selector: see lines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series: Option<Series>,
    /// With a selector: the lines drawn, in legend order (the largest mean first, "other" last).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lines: Option<Vec<LineInfo>>,
    /// With a selector: the series it matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series_matched: Option<usize>,
    /// The plotted time range (the x axis).
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub utc_offset: String,
    pub width: u32,
    pub height: u32,
    /// Points of the series in the range (with a selector: of all its series).
    pub points: i64,
    /// Positions drawn: raw points, or buckets (never more than the plot's pixel columns).
    pub drawn: usize,
    /// The bucket width drawn (absent: raw points).
    pub bucket: Option<Bucket>,
    /// The width asked for, when it was too fine for the plot and was widened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket_requested: Option<Bucket>,
    pub aggregate: Option<Aggregate>,
    pub first_time: DateTime<Utc>,
    pub last_time: DateTime<Utc>,
    /// The smallest and largest values in the range (raw, not aggregated).
    pub min: f64,
    pub max: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anomalies: Option<AnomalyOverlay>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast: Option<ForecastOverlay>,
    /// Where the plot lies in the image (pixels, inclusive): times map linearly from start..end onto
    /// left..right.
    pub plot_area: PlotArea,
    /// The series data came from the cache.
    pub cached: bool,
}

/// A rendered chart: the PNG, its figures and a caption.
pub struct Plot {
    pub png: Vec<u8>,
    pub result: PlotResult,
    pub caption: String,
}

impl Plot {
    pub fn base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.png)
    }

    /// The MCP `ImageContent` block.
    pub fn image(&self) -> Value {
        json!({ "type": "image", "data": self.base64(), "mimeType": "image/png" })
    }
}

/// What the series looks like at the plot's resolution (cached per series).
#[derive(Debug, Serialize, Deserialize)]
struct Shape {
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    points: i64,
    bucket: Option<Bucket>,
    columns: Vec<Column>,
}

/// The round width at or above `seconds`.
pub(super) fn round_width(seconds: i64) -> Result<Bucket, String> {
    const ROUND: [i64; 20] = [
        1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200,
        86_400, 172_800, 604_800,
    ];
    let width = ROUND
        .into_iter()
        .find(|w| *w >= seconds)
        .unwrap_or_else(|| (seconds + 86_399) / 86_400 * 86_400);
    Bucket::parse(&format!("{width}s"))
        .map_err(|_| "the range is too long to chart (over 366 days per pixel column)".to_owned())
}

/// Loads the series at the plot's resolution: raw points when they fit in
/// `columns`, else buckets no finer than one per column.
fn shape(
    conn: &mut diesel::PgConnection,
    series: &Series,
    window: Window,
    bucket: Option<Bucket>,
    aggregate: Aggregate,
    columns: i64,
) -> Result<Result<Shape, String>, crate::db::DbError> {
    let Some((first, last)) = aggregates::extent(conn, &[series.as_str()], window)? else {
        return Ok(Err(format!(
            "series {:?} has no points in this range; see list_series",
            series.as_str()
        )));
    };
    let span = (window.end.unwrap_or(last) - window.start.unwrap_or(first)).num_seconds();
    // date_bin may start a bucket before the range and end one after it:
    // two columns spare keep the count within `columns`. No finer than
    // what retention kept.
    let kept = retention::horizons(conn, &[series.as_str()])?.finest(window);
    let needed = (span.div_euclid((columns - 2).max(1)) + 1).max(kept);
    if bucket.is_none() && kept == 0 {
        let raw = aggregates::points(conn, series, window, columns + 1)?;
        if raw.len() as i64 <= columns {
            return Ok(Ok(Shape {
                first,
                last,
                points: raw.len() as i64,
                bucket: None,
                columns: raw
                    .into_iter()
                    .map(|p| Column {
                        time: p.time,
                        value: p.value,
                        low: p.value,
                        high: p.value,
                    })
                    .collect(),
            }));
        }
    }
    let bucket = match bucket {
        Some(b) if b.seconds() >= needed => b,
        _ => match round_width(needed) {
            Ok(b) => b,
            Err(e) => return Ok(Err(e)),
        },
    };
    if rollups::serves(bucket) {
        let rows = rollups::buckets(conn, series, window, bucket, columns)?;
        return Ok(Ok(Shape {
            first,
            last,
            points: rows.iter().map(|(_, m)| m.moments.n).sum(),
            bucket: Some(bucket),
            columns: rows
                .into_iter()
                .filter_map(|(time, m)| {
                    Some(Column {
                        time,
                        value: m.aggregate(aggregate)?,
                        low: m.min?,
                        high: m.max?,
                    })
                })
                .collect(),
        }));
    }
    let rows = aggregates::envelope(
        conn,
        (series, window, (first, last)),
        bucket,
        aggregate,
        columns,
    )?;
    Ok(Ok(Shape {
        first,
        last,
        points: rows.iter().map(|r| r.count).sum(),
        bucket: Some(bucket),
        columns: rows
            .into_iter()
            .map(|r| Column {
                time: r.time,
                value: r.value,
                low: r.low,
                high: r.high,
            })
            .collect(),
    }))
}

/// The median distance between drawn positions.
fn typical_step(columns: &[Column]) -> TimeDelta {
    let mut gaps: Vec<TimeDelta> = columns.windows(2).map(|w| w[1].time - w[0].time).collect();
    gaps.sort();
    gaps.get(gaps.len() / 2)
        .copied()
        .unwrap_or(TimeDelta::zero())
}

async fn anomalies(
    ctx: &ToolContext,
    (series, args): (&Series, &PlotArgs),
    span: (DateTime<Utc>, DateTime<Utc>),
) -> Result<Option<AnomalyOverlay>, ToolError> {
    let inside = |o: &Outlier| span.0 <= o.time && o.time <= span.1;
    match (args.anomaly_method, args.analysis_id) {
        (Some(_), Some(_)) => Err(ToolError::invalid(
            "give anomaly_method or analysis_id, not both",
        )),
        (None, None) if args.anomaly_threshold.is_some() => Err(ToolError::invalid(
            "anomaly_threshold needs anomaly_method, e.g. \"anomaly_method\": \"zscore\"",
        )),
        (None, None) => Ok(None),
        (Some(method), None) => {
            let threshold = args
                .anomaly_threshold
                .map_or(method.default_threshold(), Threshold::get);
            let (s, window, db) = (series.clone(), args.window, ctx.db.clone());
            let rest = format!(
                "chart-anomalies:{}:{}:{threshold}",
                window.key(),
                method.as_str()
            );
            let (found, _) = ctx
                .cached(series, &rest, TTL, async move {
                    db.run(move |conn| {
                        analysis::find(conn, s, window, method, threshold, MAX_RINGS)
                    })
                    .await
                })
                .await?;
            let found = found.map_err(ToolError::Invalid)?;
            Ok(Some(AnomalyOverlay {
                analysis_id: None,
                method,
                threshold,
                total: found.total_anomalies,
                drawn: found.anomalies.into_iter().filter(inside).collect(),
            }))
        }
        (None, Some(id)) => {
            let row = ctx
                .db
                .run(move |conn| runs::get_analysis(conn, id))
                .await?
                .ok_or_else(|| {
                    ToolError::invalid(format!("no analysis {id}; see list_analyses"))
                })?;
            if row.analysis_type != AnalysisKind::Anomaly || row.status != RunStatus::Completed {
                return Err(ToolError::invalid(format!(
                    "analysis {id} is a {} run that is {}; name a completed detect_anomalies run",
                    row.analysis_type, row.status
                )));
            }
            if row.series_name != series.as_str() {
                return Err(ToolError::invalid(format!(
                    "analysis {id} is of series {:?}, not {:?}",
                    row.series_name,
                    series.as_str()
                )));
            }
            let stored: analysis::AnomalyResult = row
                .result
                .map(serde_json::from_value)
                .transpose()
                .ok()
                .flatten()
                .ok_or_else(|| {
                    ToolError::invalid(format!(
                        "analysis {id} cannot be read by this version; run detect_anomalies again or give anomaly_method"
                    ))
                })?;
            Ok(Some(AnomalyOverlay {
                analysis_id: Some(id),
                method: stored.method,
                threshold: stored.threshold,
                total: stored.total_anomalies,
                drawn: stored.anomalies.into_iter().filter(inside).collect(),
            }))
        }
    }
}

async fn forecast(
    ctx: &ToolContext,
    (series, args): (&Series, &PlotArgs),
    data_span: TimeDelta,
) -> Result<Option<ForecastOverlay>, ToolError> {
    let Some(id) = args.model_id else {
        if args.horizon.is_some() {
            return Err(ToolError::invalid("horizon needs a model_id"));
        }
        return Ok(None);
    };
    let row = ctx
        .db
        .run(move |conn| runs::get_model(conn, id))
        .await?
        .ok_or_else(|| ToolError::invalid(format!("no model {id}; see list_models")))?;
    if row.series_name != series.as_str() {
        return Err(ToolError::invalid(format!(
            "model {id} was trained on series {:?}, not {:?}",
            row.series_name,
            series.as_str()
        )));
    }
    let stored = stored_model(&row).map_err(ToolError::Invalid)?;
    let horizon = match args.horizon {
        Some(h) => h.as_usize(),
        None => {
            let quarter = data_span.as_seconds_f64() / 4.0 / stored.step_seconds.max(1e-3);
            quarter.ceil().clamp(1.0, DEFAULT_HORIZON_CAP as f64) as usize
        }
    };
    let band = row.rmse.filter(|r| r.is_finite() && *r >= 0.0);
    let points = forecast_points(&stored, horizon, id)
        .map_err(ToolError::Invalid)?
        .into_iter()
        .map(|p| {
            let half = band.unwrap_or(0.0);
            BandPoint {
                time: p.time,
                value: p.value,
                low: p.value - half,
                high: p.value + half,
            }
        })
        .collect();
    Ok(Some(ForecastOverlay {
        model_id: id,
        model_type: row.model_type,
        horizon,
        step_seconds: stored.step_seconds,
        band,
        points,
    }))
}

fn legend(series: &Series, result: &PlotResult) -> Vec<(Swatch, String)> {
    let mut out = vec![(
        Swatch::Line(chart::LINES[0]),
        match (result.bucket, result.aggregate) {
            (Some(b), Some(a)) => format!("{series} ({} {})", String::from(b), a.as_str()),
            _ => format!("{series} (raw points)"),
        },
    )];
    if result.bucket.is_some() {
        out.push((Swatch::Envelope, "min–max per bucket".into()));
    }
    if let Some(a) = &result.anomalies {
        out.push((
            Swatch::Ring,
            format!(
                "{} anomalies ({} > {})",
                a.total,
                a.method.as_str(),
                fmt_num(Some(a.threshold))
            ),
        ));
    }
    if let Some(f) = &result.forecast {
        out.push((
            Swatch::Line(chart::Style::dashed(chart::FORECAST)),
            format!("forecast, model {} ({})", f.model_id, f.model_type),
        ));
        if let Some(rmse) = f.band {
            out.push((
                Swatch::Band,
                format!("± holdout RMSE {}", chart::short(rmse)),
            ));
        }
    }
    out
}

fn caption(series: &Series, r: &PlotResult, offset: FixedOffset) -> String {
    let mut text = format!(
        "{series}: {} points from {} to {}, drawn as {} {}; min {}, max {}",
        r.points,
        t(r.first_time),
        t(r.last_time),
        r.drawn,
        match (r.bucket, r.aggregate) {
            (Some(b), Some(a)) => format!(
                "{} buckets ({}, min–max shaded)",
                String::from(b),
                a.as_str()
            ),
            _ => "raw points".into(),
        },
        fmt_num(Some(r.min)),
        fmt_num(Some(r.max)),
    );
    text += &widened(r, "at most one bucket per pixel column");
    if let Some(a) = &r.anomalies {
        text += &format!(
            "; {} anomalies ({} > {}{}), {} ringed",
            a.total,
            a.method.as_str(),
            fmt_num(Some(a.threshold)),
            a.analysis_id
                .map(|id| format!(", analysis {id}"))
                .unwrap_or_default(),
            a.drawn.len()
        );
    }
    if let Some(f) = &r.forecast {
        text += &format!(
            "; forecast of model {} ({}) for {} steps to {}{}",
            f.model_id,
            f.model_type,
            f.horizon,
            f.points.last().map(|p| t(p.time)).unwrap_or_default(),
            f.band
                .map(|b| format!(", band ± holdout RMSE {}", fmt_num(Some(b))))
                .unwrap_or_default()
        );
    }
    text + &image_note(r, offset)
}

/// The caption's end: the image's size and zone.
pub(super) fn image_note(r: &PlotResult, offset: FixedOffset) -> String {
    format!(
        ". {}×{} PNG, times in {}.",
        r.width,
        r.height,
        chart::zone_name(offset)
    )
}

/// A time as captions print it.
pub(super) fn t(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Loads, overlays and renders a chart.
pub async fn plot(ctx: &ToolContext, args: PlotArgs) -> Result<Plot, ToolError> {
    let series = match (&args.series, &args.selector) {
        (Some(_), Some(_)) => {
            return Err(ToolError::invalid(
                "give series (one) or selector (several), not both",
            ));
        }
        (None, Some(selector)) => {
            let selector = selector.clone();
            return super::lines::plot(ctx, &selector, args).await;
        }
        (None, None) => {
            return Err(ToolError::invalid(
                "give series (one; see list_series) or selector (several, e.g. http_requests_total{job=\"api\"})",
            ));
        }
        (Some(series), None) => series.clone(),
    };
    if args.aggregation.is_some() {
        return Err(ToolError::invalid(
            "aggregation groups the series of a selector: give selector instead of series",
        ));
    }
    let aggregate = args.aggregate.unwrap_or_default();
    let columns = i64::from(chart::columns(args.width.get()));
    let (s, window, bucket, db) = (series.clone(), args.window, args.bucket, ctx.db.clone());
    let rest = format!("chart:{}:{bucket:?}:{aggregate:?}:{columns}", window.key());
    let (shape, cached) = ctx
        .cached(&series, &rest, TTL, async move {
            db.run(move |conn| shape(conn, &s, window, bucket, aggregate, columns))
                .await
        })
        .await?;
    let shape = shape.map_err(ToolError::Invalid)?;
    let data_start = window.start.unwrap_or(shape.first);
    let data_end = window.end.unwrap_or(shape.last);
    let anomalies = anomalies(ctx, (&series, &args), (data_start, data_end)).await?;
    let forecast = forecast(ctx, (&series, &args), data_end - data_start).await?;
    let end = forecast
        .as_ref()
        .and_then(|f| f.points.last())
        .map_or(data_end, |p| p.time.max(data_end));
    // A single point still gets a visible range.
    let end = end.max(data_start + TimeDelta::seconds(1));
    let (min, max) = shape
        .columns
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), c| {
            (lo.min(c.low), hi.max(c.high))
        });
    let result = PlotResult {
        series: Some(series.clone()),
        lines: None,
        series_matched: None,
        start: data_start,
        end,
        utc_offset: String::from(args.utc_offset),
        width: args.width.get(),
        height: args.height.get(),
        points: shape.points,
        drawn: shape.columns.len(),
        bucket: shape.bucket,
        bucket_requested: args.bucket.filter(|b| Some(*b) != shape.bucket),
        aggregate: shape.bucket.map(|_| aggregate),
        first_time: shape.first,
        last_time: shape.last,
        min,
        max,
        anomalies,
        forecast,
        plot_area: PlotArea::default(),
        cached,
    };
    let legend = legend(&series, &result);
    let title = series.to_string();
    let rings: Vec<(DateTime<Utc>, f64)> = result
        .anomalies
        .iter()
        .flat_map(|a| a.drawn.iter().map(|o| (o.time, o.value)))
        .collect();
    let band: Vec<Column> = result
        .forecast
        .iter()
        .flat_map(|f| {
            f.points.iter().map(|p| Column {
                time: p.time,
                value: p.value,
                low: p.low,
                high: p.high,
            })
        })
        .collect();
    let gap = typical_step(&shape.columns) * 3;
    let (width, height, offset) = (result.width, result.height, args.utc_offset.0);
    let span = (result.start, result.end);
    render(
        result,
        move || {
            chart::render(&chart::Chart {
                title: &title,
                width,
                height,
                offset,
                span,
                gap,
                lines: &[chart::Line {
                    points: &shape.columns,
                    style: chart::LINES[0],
                }],
                envelope: shape.bucket.is_some(),
                anomalies: &rings,
                forecast: &band,
                legend: &legend,
            })
        },
        |r| caption(&series, r, offset),
    )
    .await
}

/// Draws off the executor, a bounded number at once; the result gets where
/// the plot lies, then its caption.
pub(super) async fn render(
    mut result: PlotResult,
    draw: impl FnOnce() -> Result<chart::Rendered, String> + Send + 'static,
    caption: impl FnOnce(&PlotResult) -> String,
) -> Result<Plot, ToolError> {
    let rendered = {
        let _permit = rocket::tokio::time::timeout(RENDER_WAIT, RENDERS.acquire())
            .await
            .map_err(|_| {
                ToolError::invalid("the server is busy drawing other charts; retry in a moment")
            })?
            .map_err(ToolError::internal)?;
        rocket::tokio::task::spawn_blocking(draw)
            .await
            .map_err(ToolError::internal)?
            .map_err(ToolError::internal)?
    };
    result.plot_area = rendered.plot;
    let caption = caption(&result);
    Ok(Plot {
        png: rendered.png,
        result,
        caption,
    })
}

/// The caption's note of a bucket asked for and widened, and why.
pub(super) fn widened(r: &PlotResult, why: &str) -> String {
    match (r.bucket_requested, r.bucket) {
        (Some(asked), Some(drawn)) => format!(
            " (bucket {} widened to {}: {why}; {} pixel columns)",
            String::from(asked),
            String::from(drawn),
            r.plot_area.right - r.plot_area.left + 1
        ),
        _ => String::new(),
    }
}

pub async fn plot_series(
    ctx: ToolContext,
    args: PlotArgs,
) -> Result<(Output<PlotResult>, Vec<Value>), ToolError> {
    let plot = plot(&ctx, args).await?;
    let image = plot.image();
    Ok((
        Output {
            value: plot.result,
            text: plot.caption,
        },
        vec![image],
    ))
}
