//! `train_model` and `forecast`. Fitting is pure Rust (`crate::analytics`);
//! the fitted model is stored as JSON so any replica can forecast from it.

use chrono::{DateTime, TimeDelta, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::analysis::{Recorded, record};
use super::{Annotations, Output, Scopes, Spec, ToolContext, ToolError, fmt_num};
use crate::analytics::{FittedModel, HoldoutMetrics, ModelParams, evaluate};
use crate::domain::{AnalysisKind, Bounded, Bucket, ModelKind, RunStatus, Series, Window};
use crate::models::ModelTrainingLog;
use crate::store::runs::{self, Trained};
use crate::store::{aggregates, rollups};

pub const TRAIN: Spec = Spec {
    name: "train_model",
    title: "Train a forecasting model",
    description: "Fit linear trend, Holt's exponential smoothing or AR(p) to a series (optionally resampled into buckets), \
                  score it on a holdout tail (MAE, RMSE, MAPE), refit on all the data and store the fitted model in \
                  model_training_logs. Sends progress when asked; honours cancellation.",
    annotations: Annotations::additive(false),
    scope: Scopes::ANALYTICS,
};

pub const FORECAST: Spec = Spec {
    name: "forecast",
    title: "Forecast",
    description: "Predict the next `horizon` points of a series from a trained model (by model_id), with timestamps \
                  continuing the series' spacing. Stored in analysis_results.",
    annotations: Annotations::additive(false),
    scope: Scopes::ANALYTICS,
};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainArgs {
    pub series: Series,
    /// linear, holt or ar.
    pub model_type: ModelKind,
    /// A name to find the model by (default "<series>-<model_type>").
    #[schemars(length(min = 1, max = 200))]
    pub model_name: Option<String>,
    #[serde(flatten)]
    pub window: Window,
    /// Resample to this bucket width (bucket averages) so observations are equally spaced.
    pub bucket: Option<Bucket>,
    /// Points held out at the end to score the model (default a fifth of the data).
    pub holdout: Option<Bounded<1, 100_000>>,
    /// Use at most the latest this many points or buckets.
    #[serde(default)]
    pub max_points: Bounded<10, 100_000, 10_000>,
    #[serde(default)]
    pub params: ModelParams,
}

/// What `model_training_logs.model` holds.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct StoredModel {
    pub fitted: FittedModel,
    /// Spacing of the observations, for the forecast's timestamps.
    pub step_seconds: f64,
    pub last_time: DateTime<Utc>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TrainResult {
    model_id: i64,
    model_name: String,
    model_type: ModelKind,
    series: Series,
    training_points: usize,
    holdout_points: usize,
    metrics: HoldoutMetrics,
    model: StoredModel,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForecastArgs {
    /// A model id from train_model or list_models.
    pub model_id: i64,
    /// Steps ahead.
    #[serde(default)]
    pub horizon: Bounded<1, 10_000, 10>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ForecastResult {
    model_id: i64,
    series: String,
    model_type: ModelKind,
    points: Vec<ForecastPoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    analysis_id: Option<i64>,
}

impl Recorded for ForecastResult {
    fn set_analysis_id(&mut self, id: i64) {
        self.analysis_id = Some(id);
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ForecastPoint {
    pub time: DateTime<Utc>,
    pub value: f64,
}

/// The median spacing between consecutive times, in seconds.
fn median_step(times: &[DateTime<Utc>]) -> Option<f64> {
    let mut gaps: Vec<f64> = times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_seconds_f64())
        .collect();
    gaps.sort_by(f64::total_cmp);
    gaps.get(gaps.len() / 2).copied().filter(|g| *g > 0.0)
}

/// Fits on the loaded values: the model, its holdout metrics, and the
/// training and holdout sizes.
fn fit_loaded(
    kind: ModelKind,
    rows: &[aggregates::TimedValue],
    bucket: Option<Bucket>,
    holdout: Option<usize>,
    params: &ModelParams,
) -> Result<(StoredModel, HoldoutMetrics, usize, usize), String> {
    let values: Vec<f64> = rows.iter().map(|r| r.value).collect();
    let times: Vec<DateTime<Utc>> = rows.iter().map(|r| r.time).collect();
    let holdout = holdout.unwrap_or((values.len() / 5).max(1));
    let step = bucket
        .map(|b| b.seconds() as f64)
        .or_else(|| median_step(&times))
        .ok_or_else(|| {
            format!(
                "{} points are too few to learn the series' spacing; ingest more or widen the window",
                times.len()
            )
        })?;
    let (fitted, metrics) = evaluate(kind, &values, holdout, params)?;
    let last_time = *times.last().ok_or("no points")?;
    let model = StoredModel {
        fitted,
        step_seconds: step,
        last_time,
    };
    let training = values
        .len()
        .checked_sub(holdout)
        .ok_or("the holdout is larger than the data")?;
    Ok((model, metrics, training, holdout))
}

pub async fn train_model(
    ctx: ToolContext,
    args: TrainArgs,
) -> Result<Output<TrainResult>, ToolError> {
    let TrainArgs {
        series,
        model_type: kind,
        model_name,
        window,
        bucket,
        holdout,
        max_points,
        params,
    } = args;
    let name = model_name.unwrap_or_else(|| format!("{series}-{kind}"));
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ToolError::invalid("model_name must be 1-200 characters"));
    }
    let parameters = json!({
        "start": window.start, "end": window.end, "bucket": bucket,
        "holdout": holdout, "max_points": max_points, "params": params,
    });
    let (s, n) = (series.clone(), name.clone());
    let id = ctx
        .db
        .run(move |conn| runs::start_training(conn, &n, kind, &s, parameters))
        .await?;
    ctx.client
        .progress(0.0, Some(100.0), Some("loading the series"))
        .await;

    let s = series.clone();
    let rows = ctx
        .db
        .run(move |conn| match bucket {
            Some(b) if rollups::serves(b) => {
                rollups::training_values(conn, (&s, window), b, max_points.as_i64())
            }
            _ => aggregates::training_values(conn, &s, window, bucket, max_points.as_i64()),
        })
        .await?;
    let outcome = if ctx.client.is_cancelled() {
        Err("cancelled by the client".to_owned())
    } else {
        ctx.client
            .progress(30.0, Some(100.0), Some("fitting"))
            .await;
        let holdout = holdout.map(Bounded::as_usize);
        rocket::tokio::task::spawn_blocking(move || {
            fit_loaded(kind, &rows, bucket, holdout, &params)
        })
        .await
        .map_err(|e| format!("fitting failed: {e}"))
        .and_then(|r| r)
        .map_err(|e| format!("could not train {kind} on {:?}: {e}", series.as_str()))
    };
    let stored = match &outcome {
        Ok((model, m, train, hold)) => Ok(Trained {
            model: serde_json::to_value(model).map_err(ToolError::internal)?,
            training_points: i32::try_from(*train).map_err(ToolError::internal)?,
            holdout_points: i32::try_from(*hold).map_err(ToolError::internal)?,
            mae: m.mae,
            rmse: m.rmse,
            mape: m.mape,
        }),
        Err(e) => Err(e.clone()),
    };
    ctx.db
        .run(move |conn| runs::finish_training(conn, id, stored))
        .await?;
    let (model, metrics, training_points, holdout_points) = outcome
        .map_err(|e| ToolError::invalid(format!("{e} (recorded as failed training run {id})")))?;
    ctx.client
        .progress(100.0, Some(100.0), Some("stored"))
        .await;
    let text = format!(
        "model {id} ({name}, {kind}): holdout MAE {} RMSE {} MAPE {}% on {holdout_points} points",
        fmt_num(Some(metrics.mae)),
        fmt_num(Some(metrics.rmse)),
        fmt_num(metrics.mape)
    );
    Ok(Output {
        value: TrainResult {
            model_id: id,
            model_name: name,
            model_type: kind,
            series,
            training_points,
            holdout_points,
            metrics,
            model,
        },
        text,
    })
}

/// The fitted model of a completed training run, or why there is none.
pub fn stored_model(row: &ModelTrainingLog) -> Result<StoredModel, String> {
    let id = row.id;
    match (row.status, &row.model) {
        (RunStatus::Completed, Some(model)) => serde_json::from_value(model.clone()).map_err(|e| {
            format!("model {id} cannot be read by this version ({e}); train it again")
        }),
        (status, _) => Err(format!(
            "model {id} is {status}, not completed; train it again"
        )),
    }
}

/// `horizon` steps after the last observation; an error, not a panic, when
/// the timestamps would leave the representable range.
pub fn forecast_points(
    stored: &StoredModel,
    horizon: usize,
    id: i64,
) -> Result<Vec<ForecastPoint>, String> {
    stored
        .fitted
        .forecast(horizon)
        .into_iter()
        .enumerate()
        .map(|(h, value)| {
            let offset_ms = ((h + 1) as f64 * stored.step_seconds * 1e3).round();
            let time = (offset_ms.abs() < i64::MAX as f64)
                .then(|| TimeDelta::try_milliseconds(offset_ms as i64))
                .flatten()
                .and_then(|d| stored.last_time.checked_add_signed(d))
                .ok_or_else(|| {
                    format!(
                        "model {id}: {} steps of {} s after {} fall outside the representable time range; ask for a smaller horizon",
                        h + 1,
                        stored.step_seconds,
                        stored.last_time.to_rfc3339()
                    )
                })?;
            Ok(ForecastPoint { time, value })
        })
        .collect()
}

pub async fn forecast(
    ctx: ToolContext,
    args: ForecastArgs,
) -> Result<Output<ForecastResult>, ToolError> {
    let started = Utc::now();
    let ForecastArgs {
        model_id: id,
        horizon,
    } = args;
    let row = ctx
        .db
        .run(move |conn| runs::get_model(conn, id))
        .await?
        .ok_or_else(|| ToolError::invalid(format!("no model {id}; see list_models")))?;
    let params = json!({ "model_id": id, "horizon": horizon });
    let outcome = stored_model(&row)
        .and_then(|stored| forecast_points(&stored, horizon.as_usize(), id))
        .map(|points| ForecastResult {
            model_id: id,
            series: row.series_name.clone(),
            model_type: row.model_type,
            points,
            analysis_id: None,
        });
    let series = Series::try_from(row.series_name.clone()).map_err(ToolError::internal)?;
    let result = record(
        &ctx,
        AnalysisKind::Forecast,
        &series,
        params,
        outcome,
        started,
    )
    .await?;
    let text = format!(
        "{} steps of {} from model {id}: first {} at {}, last {}",
        result.points.len(),
        result.series,
        fmt_num(result.points.first().map(|p| p.value)),
        result
            .points
            .first()
            .map(|p| p.time.to_rfc3339())
            .unwrap_or_default(),
        fmt_num(result.points.last().map(|p| p.value)),
    );
    Ok(Output {
        value: result,
        text,
    })
}
