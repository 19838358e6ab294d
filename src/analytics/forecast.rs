//! Forecasting models for equally spaced observations: linear trend, Holt's
//! linear exponential smoothing, and AR(p) by least squares. A fitted model
//! is plain data (serde), so any replica can forecast from the stored JSON.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::linalg::least_squares;
use crate::domain::Bounded;
pub use crate::domain::ModelKind;

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelParams {
    /// Holt level smoothing; chosen by grid search when absent.
    pub alpha: Option<Smoothing>,
    /// Holt trend smoothing; chosen by grid search when absent.
    pub beta: Option<Smoothing>,
    /// AR order (default 2).
    pub p: Option<Bounded<1, 20>>,
}

/// A smoothing weight in (0, 1], checked once when parsed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Smoothing(f64);

impl TryFrom<f64> for Smoothing {
    type Error = String;
    fn try_from(x: f64) -> Result<Self, String> {
        if x > 0.0 && x <= 1.0 {
            Ok(Smoothing(x))
        } else {
            Err(format!("a smoothing weight must be in (0, 1], got {x}"))
        }
    }
}

impl From<Smoothing> for f64 {
    fn from(s: Smoothing) -> f64 {
        s.0
    }
}

impl JsonSchema for Smoothing {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Smoothing".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "number", "exclusiveMinimum": 0, "maximum": 1 })
    }
}

/// The AR(p) design: rows `[1, y[t-1], …, y[t-p]]` and their targets `y[t]`.
pub fn ar_design(ys: &[f64], p: usize) -> (Vec<Vec<f64>>, &[f64]) {
    let rows = (p..ys.len())
        .map(|t| {
            std::iter::once(1.0)
                .chain((1..=p).map(|k| ys[t - k]))
                .collect()
        })
        .collect();
    (rows, ys.get(p..).unwrap_or_default())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum FittedModel {
    Linear {
        intercept: f64,
        slope: f64,
        /// Observations the fit saw; forecasts continue from t = n.
        n: usize,
    },
    Holt {
        alpha: f64,
        beta: f64,
        level: f64,
        trend: f64,
    },
    Ar {
        intercept: f64,
        /// coefficients[i] multiplies the value i+1 steps back.
        coefficients: Vec<f64>,
        /// The last p observations, oldest first.
        last: Vec<f64>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HoldoutMetrics {
    pub mae: f64,
    pub rmse: f64,
    /// Percent; absent when an actual value is 0.
    pub mape: Option<f64>,
}

fn need(kind: ModelKind, have: usize, want: usize) -> Result<(), String> {
    if have < want {
        Err(format!(
            "{} needs at least {want} training points, got {have}",
            kind.as_str()
        ))
    } else {
        Ok(())
    }
}

pub fn fit(kind: ModelKind, ys: &[f64], params: &ModelParams) -> Result<FittedModel, String> {
    if ys.iter().any(|y| !y.is_finite()) {
        return Err("values must be finite".into());
    }
    match kind {
        ModelKind::Linear => {
            need(kind, ys.len(), 2)?;
            let n = ys.len() as f64;
            let mean_t = (n - 1.0) / 2.0;
            let mean_y = ys.iter().sum::<f64>() / n;
            let (mut sxy, mut sxx) = (0.0, 0.0);
            for (t, y) in ys.iter().enumerate() {
                let dt = t as f64 - mean_t;
                sxy += dt * (y - mean_y);
                sxx += dt * dt;
            }
            let slope = sxy / sxx;
            Ok(FittedModel::Linear {
                intercept: mean_y - slope * mean_t,
                slope,
                n: ys.len(),
            })
        }
        ModelKind::Holt => {
            need(kind, ys.len(), 3)?;
            let (alpha, beta) = (params.alpha.map(f64::from), params.beta.map(f64::from));
            let grid: Vec<f64> = (1..=19).map(|i| i as f64 * 0.05).collect();
            let alphas = alpha.map_or_else(|| grid.clone(), |a| vec![a]);
            let betas = beta.map_or_else(|| grid.clone(), |b| vec![b]);
            let mut best: Option<(f64, f64, f64, f64, f64)> = None;
            for &a in &alphas {
                for &b in &betas {
                    let (sse, level, trend) = holt_run(ys, a, b);
                    if best.is_none_or(|(s, ..)| sse < s) {
                        best = Some((sse, a, b, level, trend));
                    }
                }
            }
            let (_, alpha, beta, level, trend) = best.ok_or("no Holt parameters to try")?;
            Ok(FittedModel::Holt {
                alpha,
                beta,
                level,
                trend,
            })
        }
        ModelKind::Ar => {
            let p = params.p.map_or(2, Bounded::as_usize);
            // p + 1 unknowns need more equations than that to be determined.
            need(kind, ys.len(), 2 * p + 2)?;
            let (rows, targets) = ar_design(ys, p);
            let beta = least_squares(&rows, targets).ok_or_else(|| {
                format!("AR({p}) is not identifiable on this series (constant or collinear values); try a smaller p or the linear model")
            })?;
            Ok(FittedModel::Ar {
                intercept: beta[0],
                coefficients: beta[1..].to_vec(),
                last: ys[ys.len() - p..].to_vec(),
            })
        }
    }
}

/// One-step-ahead squared error of Holt's method, and the final state.
fn holt_run(ys: &[f64], alpha: f64, beta: f64) -> (f64, f64, f64) {
    let mut level = ys[0];
    let mut trend = ys[1] - ys[0];
    let mut sse = 0.0;
    for &y in &ys[1..] {
        let predicted = level + trend;
        sse += (y - predicted).powi(2);
        let previous = level;
        level = alpha * y + (1.0 - alpha) * (level + trend);
        trend = beta * (level - previous) + (1.0 - beta) * trend;
    }
    (sse, level, trend)
}

impl FittedModel {
    pub fn kind(&self) -> ModelKind {
        match self {
            FittedModel::Linear { .. } => ModelKind::Linear,
            FittedModel::Holt { .. } => ModelKind::Holt,
            FittedModel::Ar { .. } => ModelKind::Ar,
        }
    }

    /// The next `horizon` values after the data the model was fitted on.
    pub fn forecast(&self, horizon: usize) -> Vec<f64> {
        match self {
            FittedModel::Linear {
                intercept,
                slope,
                n,
            } => (0..horizon)
                .map(|h| intercept + slope * (n + h) as f64)
                .collect(),
            FittedModel::Holt { level, trend, .. } => {
                (1..=horizon).map(|h| level + trend * h as f64).collect()
            }
            FittedModel::Ar {
                intercept,
                coefficients,
                last,
            } => {
                let mut history = last.clone();
                let mut out = Vec::with_capacity(horizon);
                for _ in 0..horizon {
                    let next = intercept
                        + coefficients
                            .iter()
                            .enumerate()
                            .map(|(k, c)| c * history[history.len() - 1 - k])
                            .sum::<f64>();
                    history.push(next);
                    out.push(next);
                }
                out
            }
        }
    }
}

pub fn metrics(actual: &[f64], predicted: &[f64]) -> HoldoutMetrics {
    let n = actual.len().min(predicted.len()).max(1) as f64;
    let errors: Vec<f64> = actual.iter().zip(predicted).map(|(a, p)| a - p).collect();
    let mae = errors.iter().map(|e| e.abs()).sum::<f64>() / n;
    let rmse = (errors.iter().map(|e| e * e).sum::<f64>() / n).sqrt();
    let mape = (!actual.contains(&0.0)).then(|| {
        100.0
            * actual
                .iter()
                .zip(&errors)
                .map(|(a, e)| (e / a).abs())
                .sum::<f64>()
            / n
    });
    HoldoutMetrics { mae, rmse, mape }
}

/// Fits on everything but the last `holdout` values, scores the forecast of
/// those, then refits on the whole series so forecasts start from the latest
/// data. Returns the refitted model and the holdout scores.
pub fn evaluate(
    kind: ModelKind,
    ys: &[f64],
    holdout: usize,
    params: &ModelParams,
) -> Result<(FittedModel, HoldoutMetrics), String> {
    if holdout == 0 || holdout >= ys.len() {
        return Err(format!(
            "holdout must be between 1 and {} (the series has {} points)",
            ys.len().saturating_sub(1),
            ys.len()
        ));
    }
    let (train, test) = ys.split_at(ys.len() - holdout);
    let scored = fit(kind, train, params)?;
    let m = metrics(test, &scored.forecast(holdout));
    // Refit with the chosen smoothing so the stored model is the scored one, on all data.
    let params = match &scored {
        FittedModel::Holt { alpha, beta, .. } => ModelParams {
            alpha: Some(Smoothing::try_from(*alpha)?),
            beta: Some(Smoothing::try_from(*beta)?),
            p: None,
        },
        _ => params.clone(),
    };
    Ok((fit(kind, ys, &params)?, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(n: usize) -> Vec<f64> {
        (0..n).map(|t| 3.0 + 0.5 * t as f64).collect()
    }

    #[test]
    fn a_line_is_fit_exactly() {
        let (model, m) =
            evaluate(ModelKind::Linear, &line(50), 10, &ModelParams::default()).unwrap();
        assert!(m.mae < 1e-9 && m.rmse < 1e-9, "{m:?}");
        assert!(m.mape.unwrap() < 1e-9);
        let next = model.forecast(2);
        assert!((next[0] - (3.0 + 0.5 * 50.0)).abs() < 1e-9 && (next[1] - 28.5).abs() < 1e-9);
        let (_, holt) = evaluate(ModelKind::Holt, &line(50), 10, &ModelParams::default()).unwrap();
        assert!(holt.mae < 1e-6, "{holt:?}");
    }

    #[test]
    fn ar1_recovers_its_coefficient() {
        let mut ys = vec![1.0];
        let mut noise = 0.123_f64;
        for _ in 1..500 {
            noise = (noise * 9301.0 + 49297.0) % 233280.0;
            let e = noise / 233280.0 - 0.5;
            ys.push(2.0 + 0.7 * ys[ys.len() - 1] + 0.1 * e);
        }
        let model = fit(
            ModelKind::Ar,
            &ys,
            &ModelParams {
                p: Some(Bounded::new(1).unwrap()),
                ..Default::default()
            },
        )
        .unwrap();
        let FittedModel::Ar {
            coefficients,
            intercept,
            ..
        } = model
        else {
            panic!()
        };
        assert!((coefficients[0] - 0.7).abs() < 0.02, "{coefficients:?}");
        assert!((intercept - 2.0).abs() < 0.2, "{intercept}");
    }

    #[test]
    fn bad_inputs_are_errors_not_panics() {
        assert!(fit(ModelKind::Linear, &[1.0], &ModelParams::default()).is_err());
        assert!(fit(ModelKind::Holt, &[1.0, 2.0], &ModelParams::default()).is_err());
        assert!(
            fit(
                ModelKind::Ar,
                &[1.0; 5],
                &ModelParams {
                    p: Some(Bounded::new(2).unwrap()),
                    ..Default::default()
                }
            )
            .is_err()
        );
        assert!(
            fit(ModelKind::Ar, &[1.0; 50], &ModelParams::default()).is_err(),
            "constant series is singular"
        );
        assert!(Smoothing::try_from(1.5).is_err() && Smoothing::try_from(0.0).is_err());
        assert!(fit(ModelKind::Linear, &[1.0, f64::NAN], &ModelParams::default()).is_err());
        assert!(evaluate(ModelKind::Linear, &line(10), 10, &ModelParams::default()).is_err());
        assert!(evaluate(ModelKind::Linear, &line(10), 0, &ModelParams::default()).is_err());
    }

    #[test]
    fn metrics_by_hand() {
        let m = metrics(&[1.0, 2.0, 4.0], &[2.0, 2.0, 2.0]);
        assert!((m.mae - 1.0).abs() < 1e-12);
        assert!((m.rmse - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((m.mape.unwrap() - 100.0 * (1.0 + 0.0 + 0.5) / 3.0).abs() < 1e-9);
        assert_eq!(metrics(&[0.0], &[1.0]).mape, None);
    }

    #[test]
    fn models_round_trip_through_json() {
        let model = fit(
            ModelKind::Ar,
            &line(30)
                .iter()
                .enumerate()
                .map(|(i, v)| v + (i % 3) as f64)
                .collect::<Vec<_>>(),
            &ModelParams::default(),
        )
        .unwrap();
        let json = serde_json::to_value(&model).unwrap();
        assert_eq!(json["type"], "ar");
        let back: FittedModel = serde_json::from_value(json).unwrap();
        assert_eq!(back.forecast(5), model.forecast(5));
    }
}
