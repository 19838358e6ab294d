//! PromQL over HTTP: `/api/v1/query` and `/api/v1/query_range` (GET, and
//! POST with a form), as Grafana's Prometheus data source and `promtool
//! query instant|range` call them. The expression is compiled against the
//! subset [`promql`] evaluates; the raw samples its selectors need are read
//! in one round trip each; evaluation runs off the async workers.
//!
//! Limits, each named when hit: 11,000 steps a series (400, as
//! Prometheus), [`MaxSeries`]' largest a selector and `QUERY_MAX_SAMPLES` read
//! (422 `execution`), the answer's points ([`promql::MAX_POINTS`]), and
//! the `timeout` parameter (default [`DEFAULT_TIMEOUT`], at most
//! [`MAX_TIMEOUT`]; 503 `timeout`) besides the pool's statement timeout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rocket::http::Status;
use rocket::serde::json::{Value, json};
use rocket::{State, get, post};

use super::prom_api::{Api, Params, admit, label_set, time};
use super::write::WriteHeaders;
use crate::analytics::promql::{self, Fetch, Ms, Query, QueryError, Series};
use crate::db::DbError;
use crate::mcp::Mcp;
use crate::store::aggregates::{self, Span};
use crate::tools::selection::{self, MaxSeries};

/// Series all of a query's selectors may match.
const MAX_SERIES: usize = 20_000;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const MAX_TIMEOUT: Duration = Duration::from_secs(120);

impl From<QueryError> for Api {
    fn from(e: QueryError) -> Api {
        match e {
            QueryError::BadData(m) => Api::bad_data(m),
            QueryError::Execution(m) => {
                Api::Error(Status::UnprocessableEntity, "execution", m, None)
            }
            QueryError::Timeout(m) => Api::Error(Status::ServiceUnavailable, "timeout", m, None),
        }
    }
}

/// A duration as Prometheus takes it: seconds (fractions allowed) or a
/// PromQL duration (`15s`, `1m30s`).
fn duration(name: &str, text: &str) -> Result<Duration, Api> {
    if let Ok(secs) = text.parse::<f64>()
        && secs.is_finite()
        && (0.0..1e12).contains(&secs)
    {
        return Ok(Duration::from_secs_f64(secs));
    }
    promql_parser::util::parse_duration(text).map_err(|_| {
        Api::bad_data(format!(
            "invalid parameter {name:?}: cannot parse {text:?} to a valid duration"
        ))
    })
}

/// What the request asks: the expression, its times, and its deadline.
struct Asked {
    text: String,
    /// start, end, step; an instant query has start = end and step 1.
    range: (Ms, Ms, Ms),
    deadline: Instant,
}

fn asked(params: &[(String, String)], range: bool) -> Result<Asked, Api> {
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let text = get("query")
        .filter(|q| !q.trim().is_empty())
        .ok_or_else(|| Api::bad_data("invalid parameter \"query\": no query given"))?
        .to_owned();
    let timeout = match get("timeout") {
        Some(t) => duration("timeout", t)?.min(MAX_TIMEOUT),
        None => DEFAULT_TIMEOUT,
    };
    let deadline = Instant::now() + timeout;
    if !range {
        let t = match get("time") {
            Some(t) => time("time", t)?,
            None => chrono::Utc::now().timestamp_millis(),
        };
        return Ok(Asked {
            text,
            range: (t, t, 1),
            deadline,
        });
    }
    let need = |k: &'static str| {
        get(k).ok_or_else(|| Api::bad_data(format!("invalid parameter {k:?}: missing")))
    };
    let (start, end) = (time("start", need("start")?)?, time("end", need("end")?)?);
    if end < start {
        return Err(Api::bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    let step = duration("step", need("step")?)?;
    let step = Ms::try_from(step.as_millis()).unwrap_or(Ms::MAX);
    if step <= 0 {
        return Err(Api::bad_data(
            "invalid parameter \"step\": zero or negative query resolution step widths are not \
             accepted. Try a positive integer",
        ));
    }
    if (end - start) / step >= promql::MAX_STEPS {
        return Err(Api::bad_data(format!(
            "exceeded maximum resolution of {} points per timeseries. Try decreasing the query \
             resolution (?step=XX)",
            promql::MAX_STEPS
        )));
    }
    Ok(Asked {
        text,
        range: (start, end, step),
        deadline,
    })
}

/// Each fetch's series with their samples, or the limit a query passed.
fn load(
    conn: &mut diesel::PgConnection,
    fetches: &[Fetch],
    (start, end, step): (Ms, Ms, Ms),
    max_samples: i64,
) -> Result<Result<Vec<Vec<Series>>, String>, DbError> {
    let largest = MaxSeries::new(MaxSeries::LARGEST).unwrap_or_default();
    let mut budget = max_samples;
    let mut matched = 0;
    let mut out = Vec::with_capacity(fetches.len());
    for f in fetches {
        let entries = match selection::bounded(conn, &f.selector, largest)? {
            Ok(entries) => entries,
            Err(refused) => return Ok(Err(refused.to_string())),
        };
        matched += entries.len();
        if matched > MAX_SERIES {
            return Ok(Err(format!(
                "the query's selectors match more than {MAX_SERIES} series: narrow them"
            )));
        }
        // A step at least twice its window: read only the windows (an
        // index probe each, so not where they would cover half the range).
        let width = (f.to - f.from) - (end - start);
        let span = if step >= width.saturating_mul(2) && end > start {
            Span::Windows {
                first: f.to - (end - start),
                last: f.to,
                every: step,
                width,
            }
        } else {
            Span::Whole(f.from, f.to)
        };
        let names: Vec<&str> = entries.iter().map(|e| e.series_name.as_str()).collect();
        let points = aggregates::points_many(conn, &names, span, budget + 1)?;
        if points.len() as i64 > budget {
            return Ok(Err(format!(
                "query processing would load more than {max_samples} samples (QUERY_MAX_SAMPLES): \
                 narrow the range, the step's windows or the selectors"
            )));
        }
        budget -= points.len() as i64;
        let series = entries
            .iter()
            .zip(aggregates::by_series(points, entries.len()))
            .filter(|(_, samples)| !samples.is_empty())
            .map(|(e, samples)| Series {
                labels: Arc::new(label_set(e)),
                samples,
            })
            .collect();
        out.push(series);
    }
    Ok(Ok(out))
}

/// A sample value as Prometheus writes it: shortest decimal, `NaN`,
/// `+Inf`, `-Inf`.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        v.to_string()
    }
}

fn point(t: Ms, v: f64) -> Value {
    json!([t as f64 / 1000.0, number(v)])
}

async fn query(mcp: &Mcp, h: WriteHeaders<'_>, params: Params, range: bool) -> Api {
    if let Err(refused) = admit(mcp, &h).await {
        return refused;
    }
    let asked = match params.get().and_then(|p| asked(&p, range)) {
        Ok(a) => a,
        Err(e) => return e,
    };
    let (start, end, _) = asked.range;
    let compiled = match promql::compile(&asked.text, start, end) {
        Ok(q) => Arc::new(q),
        Err(e) => return e.into(),
    };
    let q = Arc::clone(&compiled);
    let max_samples = mcp.query_max_samples;
    let data = match mcp
        .db
        .run(move |conn| load(conn, &q.fetches, asked.range, max_samples))
        .await
    {
        Ok(Ok(data)) => data,
        Ok(Err(limit)) => return QueryError::Execution(limit).into(),
        Err(e) => return Api::of(&e),
    };
    let deadline = asked.deadline;
    let evaluated =
        tokio::task::spawn_blocking(move || answer(&compiled, &data, asked.range, range, deadline))
            .await;
    match evaluated {
        Ok(Ok(data)) => Api::Success(data),
        Ok(Err(e)) => e.into(),
        Err(e) => {
            log::error!("promql evaluation: {e}");
            Api::Error(
                Status::InternalServerError,
                "internal",
                "internal error".into(),
                None,
            )
        }
    }
}

fn answer(
    q: &Query,
    data: &[Vec<Series>],
    (start, end, step): (Ms, Ms, Ms),
    range: bool,
    deadline: Instant,
) -> Result<Value, QueryError> {
    if range {
        let m = q.range(data, (start, end, step), deadline)?;
        return Ok(json!({
            "resultType": "matrix",
            "result": m.iter().map(|(labels, points)| json!({
                "metric": **labels,
                "values": points.iter().map(|(t, v)| point(*t, *v)).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }));
    }
    Ok(match q.instant(data, start, deadline)? {
        promql::Value::Scalar(v) => json!({"resultType": "scalar", "result": point(start, v)}),
        promql::Value::Vector(v) => json!({
            "resultType": "vector",
            "result": v.iter().map(|s| json!({
                "metric": *s.labels,
                "value": point(start, s.value),
            })).collect::<Vec<_>>(),
        }),
    })
}

#[get("/api/v1/query")]
pub async fn instant_get(mcp: &State<Arc<Mcp>>, h: WriteHeaders<'_>, p: Params) -> Api {
    query(mcp, h, p, false).await
}

#[post("/api/v1/query", data = "<p>")]
pub async fn instant_post(mcp: &State<Arc<Mcp>>, h: WriteHeaders<'_>, p: Params) -> Api {
    query(mcp, h, p, false).await
}

#[get("/api/v1/query_range")]
pub async fn range_get(mcp: &State<Arc<Mcp>>, h: WriteHeaders<'_>, p: Params) -> Api {
    query(mcp, h, p, true).await
}

#[post("/api/v1/query_range", data = "<p>")]
pub async fn range_post(mcp: &State<Arc<Mcp>>, h: WriteHeaders<'_>, p: Params) -> Api {
    query(mcp, h, p, true).await
}
