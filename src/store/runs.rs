//! Rows that record work: statistics, analysis runs, model training runs.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::Value;

use super::aggregates::Summary;
use crate::db::DbError;
use crate::domain::{AnalysisKind, ModelKind, RunStatus, Series, Window};
use crate::models::{
    AnalysisResult, ModelTrainingLog, NewAnalysisResult, NewModelTrainingLog, NewStatistics,
};
use crate::schema::{analysis_results, model_training_logs, statistics_data};

pub fn save_statistics(
    conn: &mut PgConnection,
    series: &Series,
    window: Window,
    s: &Summary,
) -> Result<i64, DbError> {
    Ok(diesel::insert_into(statistics_data::table)
        .values(NewStatistics {
            series_name: series.as_str(),
            window_start: window.start.or(s.first_time),
            window_end: window.end.or(s.last_time),
            count: s.count,
            mean: s.mean,
            stddev: s.stddev,
            min_value: s.min,
            max_value: s.max,
            p50: s.p50,
            p95: s.p95,
            p99: s.p99,
        })
        .returning(statistics_data::id)
        .get_result(conn)?)
}

/// Records a finished analysis run, completed or failed.
pub fn save_analysis(
    conn: &mut PgConnection,
    analysis_type: AnalysisKind,
    series: &Series,
    parameters: Value,
    outcome: Result<Value, String>,
    started_at: DateTime<Utc>,
) -> Result<i64, DbError> {
    let completed_at = Utc::now();
    let (status, result, error) = match outcome {
        Ok(v) => (RunStatus::Completed, Some(v), None),
        Err(e) => (RunStatus::Failed, None, Some(e)),
    };
    Ok(diesel::insert_into(analysis_results::table)
        .values(NewAnalysisResult {
            analysis_type,
            series_name: series.as_str(),
            parameters,
            result,
            status,
            error,
            started_at,
            completed_at: Some(completed_at),
            duration_ms: Some((completed_at - started_at).as_seconds_f64() * 1e3),
        })
        .returning(analysis_results::id)
        .get_result(conn)?)
}

pub fn get_analysis(conn: &mut PgConnection, id: i64) -> Result<Option<AnalysisResult>, DbError> {
    Ok(analysis_results::table
        .find(id)
        .select(AnalysisResult::as_select())
        .first(conn)
        .optional()?)
}

pub fn list_analyses(
    conn: &mut PgConnection,
    series: Option<&Series>,
    analysis_type: Option<AnalysisKind>,
    limit: i64,
) -> Result<Vec<AnalysisResult>, DbError> {
    let mut q = analysis_results::table
        .select(AnalysisResult::as_select())
        .into_boxed();
    if let Some(s) = series {
        q = q.filter(analysis_results::series_name.eq(s.as_str()));
    }
    if let Some(t) = analysis_type {
        q = q.filter(analysis_results::analysis_type.eq(t));
    }
    Ok(q.order(analysis_results::id.desc())
        .limit(limit)
        .load(conn)?)
}

pub fn start_training(
    conn: &mut PgConnection,
    name: &str,
    model_type: ModelKind,
    series: &Series,
    parameters: Value,
) -> Result<i64, DbError> {
    Ok(diesel::insert_into(model_training_logs::table)
        .values(NewModelTrainingLog {
            model_name: name,
            model_type,
            series_name: series.as_str(),
            parameters,
            status: RunStatus::Running,
        })
        .returning(model_training_logs::id)
        .get_result(conn)?)
}

pub struct Trained {
    pub model: Value,
    pub training_points: i32,
    pub holdout_points: i32,
    pub mae: f64,
    pub rmse: f64,
    pub mape: Option<f64>,
}

pub fn finish_training(
    conn: &mut PgConnection,
    id: i64,
    outcome: Result<Trained, String>,
) -> Result<(), DbError> {
    use model_training_logs::dsl as m;
    let now = Utc::now();
    let started: DateTime<Utc> = m::model_training_logs
        .find(id)
        .select(m::started_at)
        .first(conn)?;
    let duration = (now - started).as_seconds_f64() * 1e3;
    let target = diesel::update(m::model_training_logs.find(id));
    match outcome {
        Ok(t) => target
            .set((
                m::status.eq(RunStatus::Completed),
                m::model.eq(Some(t.model)),
                m::training_points.eq(Some(t.training_points)),
                m::holdout_points.eq(Some(t.holdout_points)),
                m::mae.eq(Some(t.mae)),
                m::rmse.eq(Some(t.rmse)),
                m::mape.eq(t.mape),
                m::completed_at.eq(Some(now)),
                m::duration_ms.eq(Some(duration)),
            ))
            .execute(conn)?,
        Err(e) => target
            .set((
                m::status.eq(RunStatus::Failed),
                m::error.eq(Some(e)),
                m::completed_at.eq(Some(now)),
                m::duration_ms.eq(Some(duration)),
            ))
            .execute(conn)?,
    };
    Ok(())
}

pub fn get_model(conn: &mut PgConnection, id: i64) -> Result<Option<ModelTrainingLog>, DbError> {
    Ok(model_training_logs::table
        .find(id)
        .select(ModelTrainingLog::as_select())
        .first(conn)
        .optional()?)
}

pub fn list_models(
    conn: &mut PgConnection,
    series: Option<&Series>,
    limit: i64,
) -> Result<Vec<ModelTrainingLog>, DbError> {
    let mut q = model_training_logs::table
        .select(ModelTrainingLog::as_select())
        .into_boxed();
    if let Some(s) = series {
        q = q.filter(model_training_logs::series_name.eq(s.as_str()));
    }
    Ok(q.order(model_training_logs::id.desc())
        .limit(limit)
        .load(conn)?)
}
