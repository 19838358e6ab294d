//! `detect_anomalies` and `analyze_trend`: aggregates in PostgreSQL, each
//! run recorded in `analysis_results` (completed or failed).

use chrono::{DateTime, Utc};
use diesel::PgConnection;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Annotations, Output, Scopes, Spec, ToolContext, ToolError, fmt_num};
use crate::db::DbError;
use crate::domain::{AnalysisKind, Bounded, Bucket, Series, Window};
use crate::store::aggregates::{self, Outlier};
use crate::store::rollups::{self, Merged, Source};
use crate::store::runs;

/// 0.6745 = Φ⁻¹(0.75): makes the MAD of normal data comparable to σ.
const MAD_SCALE: f64 = 0.6745;

pub const ANOMALIES: Spec = Spec {
    name: "detect_anomalies",
    title: "Detect anomalies",
    description: "Points of a series that deviate, by z-score, IQR or MAD with a threshold, computed in PostgreSQL. \
                  Each run is stored in analysis_results.",
    annotations: Annotations::additive(false),
    scope: Scopes::ANALYTICS,
};

pub const TREND: Spec = Spec {
    name: "analyze_trend",
    title: "Analyze trend",
    description: "Exact least-squares trend of a series, from hourly rollups (as regr_slope/regr_intercept/regr_r2): slope per day, \
                  intercept at the first point, r², and a direction (flat when the fitted change is under 1% of the mean \
                  or r² < 0.05). Stored in analysis_results.",
    annotations: Annotations::additive(false),
    scope: Scopes::ANALYTICS,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// |x − mean| / stddev > threshold (default 3)
    #[default]
    Zscore,
    /// outside [Q1 − k·IQR, Q3 + k·IQR] with k = threshold (default 1.5)
    Iqr,
    /// 0.6745·|x − median| / MAD > threshold (default 3.5)
    Mad,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Zscore => "zscore",
            Method::Iqr => "iqr",
            Method::Mad => "mad",
        }
    }

    pub fn default_threshold(self) -> f64 {
        match self {
            Method::Zscore => 3.0,
            Method::Iqr => 1.5,
            Method::Mad => 3.5,
        }
    }
}

/// A method's threshold: a positive, finite number.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "f64")]
pub struct Threshold(f64);

impl Threshold {
    pub fn get(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Threshold {
    type Error = String;
    fn try_from(t: f64) -> Result<Self, String> {
        if t.is_finite() && t > 0.0 {
            Ok(Threshold(t))
        } else {
            Err(format!("threshold must be a positive number, got {t}"))
        }
    }
}

impl JsonSchema for Threshold {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Threshold".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "number", "exclusiveMinimum": 0 })
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnomalyArgs {
    pub series: Series,
    #[serde(flatten)]
    pub window: Window,
    /// zscore (default), iqr or mad.
    #[serde(default)]
    pub method: Method,
    /// Method threshold (> 0); defaults 3, 1.5 and 3.5.
    pub threshold: Option<Threshold>,
    /// At most this many anomalies listed, most extreme first.
    #[serde(default)]
    pub max_results: Bounded<1, 1000, 100>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct AnomalyResult {
    pub series: Series,
    pub method: Method,
    pub threshold: f64,
    /// Points examined.
    pub count: i64,
    /// The centre (mean or median) and unit (stddev, IQR or MAD/0.6745) scores are measured in.
    pub center: f64,
    pub unit: f64,
    pub lower_bound: f64,
    pub upper_bound: f64,
    pub anomalies: Vec<Outlier>,
    /// How many points are anomalous in all (may exceed the list).
    pub total_anomalies: i64,
    pub truncated: bool,
    /// Where the bounds came from: the hourly rollups (z-score; IQR past
    /// 100,000 points, from the sketches) or every raw point.
    #[serde(default)]
    pub source: Source,
    /// Hours read raw: only the days and hours whose min or max crosses a bound.
    #[serde(default)]
    pub scanned_hours: i64,
    /// The `analysis_results` row of this run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysis_id: Option<i64>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrendArgs {
    pub series: Series,
    #[serde(flatten)]
    pub window: Window,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Increasing,
    Decreasing,
    Flat,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TrendResult {
    series: Series,
    count: i64,
    slope_per_day: f64,
    /// The fitted value at first_time.
    intercept: f64,
    /// Absent when every value is equal.
    r2: Option<f64>,
    /// Flat when the fitted change is under 1% of the mean or r² < 0.05.
    direction: Direction,
    first_time: DateTime<Utc>,
    last_time: DateTime<Utc>,
    /// Fitted from the hourly rollups' co-moments (exact least squares).
    source: Source,
    resolution: Bucket,
    /// Raw retention dropped the points before this time; the fit there
    /// is over whole hours.
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_from: Option<DateTime<Utc>>,
    /// Rollup retention dropped the hours before this time; the fit there
    /// is over whole days.
    #[serde(skip_serializing_if = "Option::is_none")]
    hours_from: Option<DateTime<Utc>>,
    /// The `analysis_results` row of this run.
    #[serde(skip_serializing_if = "Option::is_none")]
    analysis_id: Option<i64>,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::Increasing => "increasing",
            Direction::Decreasing => "decreasing",
            Direction::Flat => "flat",
        }
    }
}

/// Flat when the fitted change over the window is under 1% of the mean's
/// magnitude, or the fit explains under 5% of the variance.
pub fn direction(slope_per_day: f64, span_days: f64, mean: f64, r2: Option<f64>) -> Direction {
    let change = slope_per_day * span_days;
    let negligible = change.abs() < 0.01 * mean.abs().max(f64::MIN_POSITIVE);
    if negligible || r2.is_none_or(|r| r < 0.05) {
        Direction::Flat
    } else if change > 0.0 {
        Direction::Increasing
    } else {
        Direction::Decreasing
    }
}

/// A result that carries the id of the `analysis_results` row it is stored in.
pub trait Recorded: Serialize {
    fn set_analysis_id(&mut self, id: i64);
}

/// Records the run (completed or failed). A success comes back with its
/// `analysis_results` id; a failure becomes the tool's error, naming the row.
pub async fn record<T: Recorded>(
    ctx: &ToolContext,
    kind: AnalysisKind,
    series: &Series,
    params: Value,
    outcome: Result<T, String>,
    started: DateTime<Utc>,
) -> Result<T, ToolError> {
    let stored = match &outcome {
        Ok(result) => Ok(serde_json::to_value(result).map_err(ToolError::internal)?),
        Err(e) => Err(e.clone()),
    };
    let s = series.clone();
    let id = ctx
        .db
        .run(move |conn| runs::save_analysis(conn, kind, &s, params, stored, started))
        .await?;
    match outcome {
        Ok(mut result) => {
            result.set_analysis_id(id);
            Ok(result)
        }
        Err(e) => Err(ToolError::invalid(format!(
            "{e} (recorded as failed analysis {id})"
        ))),
    }
}

impl Recorded for AnomalyResult {
    fn set_analysis_id(&mut self, id: i64) {
        self.analysis_id = Some(id);
    }
}

impl Recorded for TrendResult {
    fn set_analysis_id(&mut self, id: i64) {
        self.analysis_id = Some(id);
    }
}

/// The anomalies of `series` in `window`, most extreme first (at most
/// `limit`), or why there can be none.
pub fn find(
    conn: &mut PgConnection,
    s: Series,
    window: Window,
    method: Method,
    threshold: f64,
    limit: i64,
) -> Result<Result<AnomalyResult, String>, DbError> {
    let rows = rollups::read(conn, &s, window, (true, method == Method::Iqr), None)?;
    let merged = Merged::checked(&rows, method == Method::Iqr)?;
    let count = merged.moments.n;
    let iqr = |q1: f64, med: f64, q3: f64| {
        let iqr = q3 - q1;
        (med, iqr, q1 - threshold * iqr, q3 + threshold * iqr)
    };
    // Moments are exact from the rollups; quartiles come from the sketches
    // past the threshold; the MAD needs every point.
    let (bounds, source) = match method {
        Method::Zscore => (
            merged
                .moments
                .mean()
                .zip(merged.moments.stddev())
                .map(|(m, sd)| (m, sd, m - threshold * sd, m + threshold * sd)),
            Source::Rollup,
        ),
        Method::Iqr if count > rollups::SKETCH_THRESHOLD => (
            merged
                .quantile(0.25)
                .zip(merged.quantile(0.5))
                .zip(merged.quantile(0.75))
                .map(|((q1, med), q3)| iqr(q1, med, q3)),
            Source::Rollup,
        ),
        _ => {
            let sp = aggregates::spread(conn, &s, window)?;
            let bounds = match method {
                Method::Mad => sp.median.zip(sp.mad).map(|(med, mad)| {
                    let unit = mad / MAD_SCALE;
                    (med, unit, med - threshold * unit, med + threshold * unit)
                }),
                _ => sp
                    .q1
                    .zip(sp.median)
                    .zip(sp.q3)
                    .map(|((q1, med), q3)| iqr(q1, med, q3)),
            };
            (bounds, Source::Raw)
        }
    };
    let Some((center, unit, low, high)) = bounds.filter(|b| b.1 > 0.0) else {
        return Ok(Err(if count < 2 {
            format!(
                "series {:?} has {} point(s) in this range; anomaly detection needs at least 2",
                s.as_str(),
                count
            )
        } else {
            format!(
                "the spread of {:?} is zero for {} (values are (nearly) all equal): nothing can deviate; try another method",
                s.as_str(),
                method.as_str()
            )
        }));
    };
    // Only hours whose extremes cross a bound can hold an anomaly; a day
    // that crosses one is looked into hour by hour.
    let crosses = |r: &&rollups::Row| r.min_value < low || r.max_value > high;
    let (days, hours): (Vec<&rollups::Row>, Vec<&rollups::Row>) = rows
        .iter()
        .filter(crosses)
        .partition(|r| r.span == rollups::DAY);
    let span = |r: &rollups::Row| (r.bucket, r.bucket + chrono::TimeDelta::seconds(r.span));
    let (day_from, day_to): (Vec<DateTime<Utc>>, Vec<DateTime<Utc>>) =
        days.iter().map(|r| span(r)).unzip();
    let inner = rollups::hours_in(conn, &s, (&day_from, &day_to))?;
    let (from, to): (Vec<DateTime<Utc>>, Vec<DateTime<Utc>>) = hours
        .into_iter()
        .chain(inner.iter().filter(crosses))
        .map(span)
        .unzip();
    let scanned_hours = from.len() as i64;
    let (anomalies, total) = aggregates::outside(
        conn,
        (&s, window, (&from, &to)),
        (low, high),
        (center, unit),
        limit,
    )?;
    Ok(Ok(AnomalyResult {
        series: s,
        method,
        threshold,
        count,
        center,
        unit,
        lower_bound: low,
        upper_bound: high,
        truncated: total > anomalies.len() as i64,
        anomalies,
        total_anomalies: total,
        source,
        scanned_hours,
        analysis_id: None,
    }))
}

pub async fn detect_anomalies(
    ctx: ToolContext,
    args: AnomalyArgs,
) -> Result<Output<AnomalyResult>, ToolError> {
    let started = Utc::now();
    let AnomalyArgs {
        series,
        window,
        method,
        threshold,
        max_results,
    } = args;
    let threshold = threshold.map_or(method.default_threshold(), |t| t.0);
    let params = json!({
        "method": method, "threshold": threshold, "start": window.start, "end": window.end,
        "max_results": max_results,
    });
    let s = series.clone();
    let computed = ctx
        .db
        .run(move |conn| find(conn, s, window, method, threshold, max_results.as_i64()))
        .await?;
    let result = record(
        &ctx,
        AnalysisKind::Anomaly,
        &series,
        params,
        computed,
        started,
    )
    .await?;
    let text = format!(
        "{series}: {} anomalies among {} points ({}, threshold {threshold}; bounds {} .. {})",
        result.total_anomalies,
        result.count,
        method.as_str(),
        fmt_num(Some(result.lower_bound)),
        fmt_num(Some(result.upper_bound))
    );
    Ok(Output {
        value: result,
        text,
    })
}

pub async fn analyze_trend(
    ctx: ToolContext,
    args: TrendArgs,
) -> Result<Output<TrendResult>, ToolError> {
    let started = Utc::now();
    let TrendArgs { series, window } = args;
    let params = json!({ "start": window.start, "end": window.end });
    let s = series.clone();
    let t = ctx
        .db
        .run(move |conn| rollups::trend(conn, &s, window))
        .await?;
    let outcome = match (t.fit, t.first_time, t.last_time, t.mean) {
        (Some((slope, intercept, r2)), Some(first), Some(last), Some(mean)) => {
            let span = (last - first).as_seconds_f64() / 86_400.0;
            Ok(TrendResult {
                series: series.clone(),
                count: t.count,
                slope_per_day: slope,
                intercept,
                r2,
                direction: direction(slope, span, mean, r2),
                first_time: first,
                last_time: last,
                source: Source::Rollup,
                resolution: rollups::resolution(t.hours_from),
                raw_from: t.raw_from,
                hours_from: t.hours_from,
                analysis_id: None,
            })
        }
        _ => Err(format!(
            "series {:?} has {} point(s) at distinct times in this range; a trend needs at least 2",
            series.as_str(),
            t.count
        )),
    };
    let result = record(&ctx, AnalysisKind::Trend, &series, params, outcome, started).await?;
    let text = format!(
        "{series}: {} ({} per day, r² {})",
        result.direction.as_str(),
        fmt_num(Some(result.slope_per_day)),
        fmt_num(result.r2)
    );
    Ok(Output {
        value: result,
        text,
    })
}
