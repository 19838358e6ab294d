//! `detect_anomalies` and `analyze_trend`: aggregates in PostgreSQL, each
//! run recorded in `analysis_results` (completed or failed).

use chrono::Utc;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::args::Window;
use super::{Series, fmt_num};
use crate::mcp::tools::{Output, Spec, ToolContext, ToolError, ToolRegistry};
use crate::store::aggregates::{self, Outlier};
use crate::store::runs;

pub const MAX_ANOMALIES: u32 = 1000;
/// 0.6745 = Φ⁻¹(0.75): makes the MAD of normal data comparable to σ.
const MAD_SCALE: f64 = 0.6745;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// |x − mean| / stddev > threshold (default 3)
    Zscore,
    /// outside [Q1 − k·IQR, Q3 + k·IQR] with k = threshold (default 1.5)
    Iqr,
    /// 0.6745·|x − median| / MAD > threshold (default 3.5)
    Mad,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnomalyArgs {
    series: Series,
    #[serde(flatten)]
    window: Window,
    /// zscore (default), iqr or mad.
    method: Option<Method>,
    /// Method threshold (> 0); defaults 3, 1.5 and 3.5.
    threshold: Option<f64>,
    /// At most this many anomalies listed, most extreme first (1-1000, default 100).
    #[schemars(range(min = 1, max = 1000))]
    max_results: Option<u32>,
}

#[derive(Serialize, JsonSchema)]
pub struct AnomalyResult {
    series: String,
    method: Method,
    threshold: f64,
    /// Points examined.
    count: i64,
    /// The centre (mean or median) and unit (stddev, IQR or MAD/0.6745) scores are measured in.
    center: f64,
    unit: f64,
    lower_bound: f64,
    upper_bound: f64,
    anomalies: Vec<Outlier>,
    /// How many points are anomalous in all (may exceed the list).
    total_anomalies: i64,
    truncated: bool,
    /// The `analysis_results` row of this run.
    #[serde(skip_serializing_if = "Option::is_none")]
    analysis_id: Option<i64>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrendArgs {
    series: Series,
    #[serde(flatten)]
    window: Window,
}

#[derive(Serialize, JsonSchema)]
pub struct TrendResult {
    series: String,
    count: i64,
    slope_per_day: f64,
    /// The fitted value at first_time.
    intercept: f64,
    /// Absent when every value is equal.
    r2: Option<f64>,
    /// increasing, decreasing or flat (see description).
    direction: String,
    first_time: chrono::DateTime<Utc>,
    last_time: chrono::DateTime<Utc>,
    /// The `analysis_results` row of this run.
    #[serde(skip_serializing_if = "Option::is_none")]
    analysis_id: Option<i64>,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Zscore => "zscore",
            Method::Iqr => "iqr",
            Method::Mad => "mad",
        }
    }
}

/// Flat when the fitted change over the window is under 1% of the mean's
/// magnitude, or the fit explains under 5% of the variance.
pub fn direction(slope_per_day: f64, span_days: f64, mean: f64, r2: Option<f64>) -> &'static str {
    let change = slope_per_day * span_days;
    let negligible = change.abs() < 0.01 * mean.abs().max(f64::MIN_POSITIVE);
    if negligible || r2.is_none_or(|r| r < 0.05) {
        "flat"
    } else if change > 0.0 {
        "increasing"
    } else {
        "decreasing"
    }
}

/// Records the run (completed or failed) and turns a failure into the
/// tool's error; returns the `analysis_results` id.
pub async fn record(
    ctx: &ToolContext,
    kind: &'static str,
    series: &str,
    params: Value,
    outcome: Result<Value, String>,
    started: chrono::DateTime<Utc>,
) -> Result<i64, ToolError> {
    let (s, o) = (series.to_owned(), outcome.clone());
    let id = ctx
        .db
        .run(move |conn| runs::save_analysis(conn, kind, &s, params, &o, started))
        .await?;
    outcome
        .map(|_| id)
        .map_err(|e| ToolError(format!("{e} (recorded as failed analysis {id})")))
}

pub fn register(reg: &mut ToolRegistry) {
    reg.typed(
        Spec {
            name: "detect_anomalies",
            title: "Detect anomalies",
            description: "Points of a series that deviate, by z-score, IQR or MAD with a threshold, computed in PostgreSQL. \
                          Each run is stored in analysis_results.",
            annotations: json!({ "readOnlyHint": false, "destructiveHint": false, "openWorldHint": false }),
        },
        |ctx: ToolContext, args: AnomalyArgs| async move {
            let started = Utc::now();
            let series = args.series.into_string();
            let range = args.window.parse()?;
            let method = args.method.unwrap_or(Method::Zscore);
            let threshold = args.threshold.unwrap_or(match method {
                Method::Zscore => 3.0,
                Method::Iqr => 1.5,
                Method::Mad => 3.5,
            });
            if !(threshold.is_finite() && threshold > 0.0) {
                return Err(ToolError(format!("threshold must be a positive number, got {threshold}")));
            }
            let max = args.max_results.unwrap_or(100);
            if !(1..=MAX_ANOMALIES).contains(&max) {
                return Err(ToolError(format!("max_results must be between 1 and {MAX_ANOMALIES}, got {max}")));
            }
            let params = json!({ "method": method, "threshold": threshold, "start": args.window.start, "end": args.window.end, "max_results": max });
            let s = series.clone();
            let computed = ctx
                .db
                .run(move |conn| {
                    let sp = aggregates::spread(conn, &s, range)?;
                    let bounds = match method {
                        Method::Zscore => sp.mean.zip(sp.stddev).map(|(m, sd)| (m, sd, m - threshold * sd, m + threshold * sd)),
                        Method::Iqr => sp.q1.zip(sp.q3).zip(sp.median).map(|((q1, q3), med)| {
                            let iqr = q3 - q1;
                            (med, iqr, q1 - threshold * iqr, q3 + threshold * iqr)
                        }),
                        Method::Mad => sp.median.zip(sp.mad).map(|(med, mad)| {
                            let unit = mad / MAD_SCALE;
                            (med, unit, med - threshold * unit, med + threshold * unit)
                        }),
                    };
                    let Some((center, unit, low, high)) = bounds.filter(|b| b.1 > 0.0) else {
                        return Ok(Err(if sp.count < 2 {
                            format!("series {s:?} has {} point(s) in this range; anomaly detection needs at least 2", sp.count)
                        } else {
                            format!(
                                "the spread of {s:?} is zero for {} (values are (nearly) all equal): nothing can deviate; try another method",
                                method.as_str()
                            )
                        }));
                    };
                    let (anomalies, total) = aggregates::outside(conn, &s, range, (low, high), (center, unit), i64::from(max))?;
                    Ok(Ok((sp.count, center, unit, low, high, anomalies, total)))
                })
                .await?;
            let outcome = computed.map(|(count, center, unit, lower_bound, upper_bound, anomalies, total)| AnomalyResult {
                series: series.clone(),
                method,
                threshold,
                count,
                center,
                unit,
                lower_bound,
                upper_bound,
                truncated: total > anomalies.len() as i64,
                anomalies,
                total_anomalies: total,
                analysis_id: None,
            });
            let stored = outcome.as_ref().map(|r| serde_json::to_value(r).unwrap_or(Value::Null)).map_err(Clone::clone);
            let id = record(&ctx, "anomaly", &series, params, stored, started).await?;
            let mut result = outcome.map_err(ToolError)?;
            result.analysis_id = Some(id);
            let text = format!(
                "{series}: {} anomalies among {} points ({}, threshold {threshold}; bounds {} .. {})",
                result.total_anomalies,
                result.count,
                method.as_str(),
                fmt_num(Some(result.lower_bound)), fmt_num(Some(result.upper_bound))
            );
            Ok(Output { value: result, text })
        },
    );

    reg.typed(
        Spec {
            name: "analyze_trend",
            title: "Analyze trend",
            description: "Least-squares trend of a series (regr_slope/regr_intercept/regr_r2 in PostgreSQL): slope per day, \
                          intercept at the first point, r², and a direction (flat when the fitted change is under 1% of the mean \
                          or r² < 0.05). Stored in analysis_results.",
            annotations: json!({ "readOnlyHint": false, "destructiveHint": false, "openWorldHint": false }),
        },
        |ctx: ToolContext, args: TrendArgs| async move {
            let started = Utc::now();
            let series = args.series.into_string();
            let range = args.window.parse()?;
            let params = json!({ "start": args.window.start, "end": args.window.end });
            let s = series.clone();
            let t = ctx.db.run(move |conn| aggregates::trend(conn, &s, range)).await?;
            let outcome = match (t.slope_per_day, t.intercept, t.first_time, t.last_time, t.mean) {
                (Some(slope), Some(intercept), Some(first), Some(last), Some(mean)) if t.count >= 2 => {
                    let span = (last - first).as_seconds_f64() / 86_400.0;
                    Ok(TrendResult {
                        series: series.clone(),
                        count: t.count,
                        slope_per_day: slope,
                        intercept,
                        r2: t.r2,
                        direction: direction(slope, span, mean, t.r2).to_owned(),
                        first_time: first,
                        last_time: last,
                        analysis_id: None,
                    })
                }
                _ => Err(format!(
                    "series {series:?} has {} point(s) at distinct times in this range; a trend needs at least 2",
                    t.count
                )),
            };
            let stored = outcome.as_ref().map(|r| serde_json::to_value(r).unwrap_or(Value::Null)).map_err(Clone::clone);
            let id = record(&ctx, "trend", &series, params, stored, started).await?;
            let mut result = outcome.map_err(ToolError)?;
            result.analysis_id = Some(id);
            let text = format!(
                "{series}: {} ({} per day, r² {})",
                result.direction,
                fmt_num(Some(result.slope_per_day)),
                fmt_num(result.r2)
            );
            Ok(Output { value: result, text })
        },
    );
}
