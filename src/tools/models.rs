//! `train_model` and `forecast`. Fitting is pure Rust (`crate::analytics`);
//! the fitted model is stored as JSON so any replica can forecast from it.

use chrono::{DateTime, Duration, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::analysis::record;
use super::args::{Bucket, Window};
use super::{Series, fmt_num};
use crate::analytics::{FittedModel, HoldoutMetrics, ModelKind, ModelParams, evaluate};
use crate::mcp::tools::{Output, Spec, ToolContext, ToolError, ToolRegistry};
use crate::store::aggregates;
use crate::store::runs::{self, Trained};

pub const MAX_TRAINING_POINTS: u32 = 100_000;
pub const MAX_HORIZON: u32 = 10_000;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainArgs {
    series: Series,
    /// linear, holt or ar.
    model_type: ModelKind,
    /// A name to find the model by (default "<series>-<model_type>").
    model_name: Option<String>,
    #[serde(flatten)]
    window: Window,
    /// Resample to this bucket width (bucket averages) so observations are equally spaced.
    bucket: Option<String>,
    /// Points held out at the end to score the model (default a fifth of the data).
    #[schemars(range(min = 1))]
    holdout: Option<u32>,
    /// Use at most the latest this many points or buckets (default 10000, max 100000).
    #[schemars(range(min = 10, max = 100000))]
    max_points: Option<u32>,
    #[serde(default)]
    params: ModelParams,
}

/// What `model_training_logs.model` holds.
#[derive(Serialize, Deserialize, JsonSchema)]
pub struct StoredModel {
    pub fitted: FittedModel,
    /// Spacing of the observations, for the forecast's timestamps.
    pub step_seconds: f64,
    pub last_time: DateTime<Utc>,
}

#[derive(Serialize, JsonSchema)]
pub struct TrainResult {
    model_id: i64,
    model_name: String,
    model_type: ModelKind,
    series: String,
    training_points: usize,
    holdout_points: usize,
    metrics: HoldoutMetrics,
    model: StoredModel,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForecastArgs {
    /// A model id from train_model or list_models.
    model_id: i64,
    /// Steps ahead (1-10000, default 10).
    #[schemars(range(min = 1, max = 10000))]
    horizon: Option<u32>,
}

#[derive(Serialize, JsonSchema)]
pub struct ForecastResult {
    model_id: i64,
    series: String,
    model_type: String,
    points: Vec<ForecastPoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    analysis_id: Option<i64>,
}

#[derive(Serialize, JsonSchema)]
pub struct ForecastPoint {
    time: DateTime<Utc>,
    value: f64,
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

pub fn register(reg: &mut ToolRegistry) {
    reg.typed(
        Spec {
            name: "train_model",
            title: "Train a forecasting model",
            description: "Fit linear trend, Holt's exponential smoothing or AR(p) to a series (optionally resampled into buckets), \
                          score it on a holdout tail (MAE, RMSE, MAPE), refit on all the data and store the fitted model in \
                          model_training_logs. Sends progress when asked; honours cancellation.",
            annotations: json!({ "readOnlyHint": false, "destructiveHint": false, "openWorldHint": false }),
        },
        |ctx: ToolContext, args: TrainArgs| async move {
            let series = args.series.into_string();
            let range = args.window.parse()?;
            let bucket = args.bucket.as_deref().map(Bucket::parse).transpose()?;
            let max = args.max_points.unwrap_or(10_000);
            if !(10..=MAX_TRAINING_POINTS).contains(&max) {
                return Err(ToolError(format!("max_points must be between 10 and {MAX_TRAINING_POINTS}, got {max}")));
            }
            let kind = args.model_type;
            let name = args.model_name.clone().unwrap_or_else(|| format!("{series}-{}", kind.as_str()));
            if name.is_empty() || name.len() > 200 {
                return Err(ToolError("model_name must be 1-200 characters".into()));
            }
            let parameters = json!({
                "start": args.window.start, "end": args.window.end, "bucket": args.bucket,
                "holdout": args.holdout, "max_points": max, "params": args.params,
            });
            let (s, n, p) = (series.clone(), name.clone(), parameters.clone());
            let id = ctx.db.run(move |conn| runs::start_training(conn, &n, kind.as_str(), &s, p)).await?;
            ctx.peer.progress(0.0, Some(100.0), Some("loading the series")).await;

            let s = series.clone();
            let rows = ctx
                .db
                .run(move |conn| aggregates::training_values(conn, &s, range, bucket.map(|b| b.interval()).as_deref(), i64::from(max)))
                .await?;
            let outcome = if ctx.peer.is_cancelled() {
                Err("cancelled by the client".to_owned())
            } else {
                ctx.peer.progress(30.0, Some(100.0), Some("fitting")).await;
                let values: Vec<f64> = rows.iter().map(|r| r.value).collect();
                let times: Vec<DateTime<Utc>> = rows.iter().map(|r| r.time).collect();
                let holdout = args.holdout.map(|h| h as usize).unwrap_or((values.len() / 5).max(1));
                let params = args.params.clone();
                rocket::tokio::task::spawn_blocking(move || {
                    let step = bucket.map(|b| b.seconds as f64).or_else(|| median_step(&times)).ok_or_else(|| {
                        format!("{} points are too few to learn the series' spacing; ingest more or widen the window", times.len())
                    })?;
                    let (fitted, metrics) = evaluate(kind, &values, holdout, &params)?;
                    let last_time = *times.last().ok_or("no points")?;
                    Ok::<_, String>((StoredModel { fitted, step_seconds: step, last_time }, metrics, values.len() - holdout, holdout))
                })
                .await
                .map_err(|e| format!("fitting failed: {e}"))
                .and_then(|r| r)
                .map_err(|e| format!("could not train {} on {series:?}: {e}", kind.as_str()))
            };
            let stored = outcome.as_ref().map_err(Clone::clone).and_then(|(model, m, train, hold)| {
                Ok(Trained {
                    model: serde_json::to_value(model).map_err(|e| e.to_string())?,
                    training_points: *train as i32,
                    holdout_points: *hold as i32,
                    mae: m.mae,
                    rmse: m.rmse,
                    mape: m.mape,
                })
            });
            ctx.db.run(move |conn| runs::finish_training(conn, id, stored)).await?;
            let (model, metrics, training_points, holdout_points) =
                outcome.map_err(|e| ToolError(format!("{e} (recorded as failed training run {id})")))?;
            ctx.peer.progress(100.0, Some(100.0), Some("stored")).await;
            let text = format!(
                "model {id} ({name}, {}): holdout MAE {} RMSE {} MAPE {}% on {holdout_points} points",
                kind.as_str(),
                fmt_num(Some(metrics.mae)),
                fmt_num(Some(metrics.rmse)),
                fmt_num(metrics.mape)
            );
            Ok(Output {
                value: TrainResult { model_id: id, model_name: name, model_type: kind, series, training_points, holdout_points, metrics, model },
                text,
            })
        },
    );

    reg.typed(
        Spec {
            name: "forecast",
            title: "Forecast",
            description: "Predict the next `horizon` points of a series from a trained model (by model_id), with timestamps \
                          continuing the series' spacing. Stored in analysis_results.",
            annotations: json!({ "readOnlyHint": false, "destructiveHint": false, "openWorldHint": false }),
        },
        |ctx: ToolContext, args: ForecastArgs| async move {
            let started = Utc::now();
            let horizon = args.horizon.unwrap_or(10);
            if !(1..=MAX_HORIZON).contains(&horizon) {
                return Err(ToolError(format!("horizon must be between 1 and {MAX_HORIZON}, got {horizon}")));
            }
            let id = args.model_id;
            let row = ctx
                .db
                .run(move |conn| runs::get_model(conn, id))
                .await?
                .ok_or_else(|| ToolError(format!("no model {id}; see list_models")))?;
            let params = json!({ "model_id": id, "horizon": horizon });
            let outcome = match (row.status.as_str(), &row.model) {
                ("completed", Some(model)) => serde_json::from_value::<StoredModel>(model.clone())
                    .map_err(|e| format!("model {id} cannot be read by this version: {e}")),
                (status, _) => Err(format!("model {id} is {status}, not completed; train it again")),
            }
            .map(|stored| {
                let points: Vec<ForecastPoint> = stored
                    .fitted
                    .forecast(horizon as usize)
                    .into_iter()
                    .enumerate()
                    .map(|(h, value)| ForecastPoint {
                        time: stored.last_time + Duration::milliseconds(((h + 1) as f64 * stored.step_seconds * 1e3).round() as i64),
                        value,
                    })
                    .collect();
                ForecastResult { model_id: id, series: row.series_name.clone(), model_type: row.model_type.clone(), points, analysis_id: None }
            });
            let stored = outcome.as_ref().map(|r| serde_json::to_value(r).unwrap_or(Value::Null)).map_err(Clone::clone);
            let analysis_id = record(&ctx, "forecast", &row.series_name, params, stored, started).await?;
            let mut result = outcome.map_err(ToolError)?;
            result.analysis_id = Some(analysis_id);
            let text = format!(
                "{} steps of {} from model {id}: first {} at {}, last {}",
                result.points.len(),
                result.series,
                fmt_num(result.points.first().map(|p| p.value)),
                result.points.first().map(|p| p.time.to_rfc3339()).unwrap_or_default(),
                fmt_num(result.points.last().map(|p| p.value)),
            );
            Ok(Output { value: result, text })
        },
    );
}
