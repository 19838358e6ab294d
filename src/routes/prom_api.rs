//! The discovery half of the Prometheus HTTP API, over the catalog, so that
//! Grafana's metric browser and `promtool query labels|series` read what
//! the collectors wrote: `/api/v1/labels`, `/api/v1/label/<name>/values`,
//! `/api/v1/series`, `/api/v1/metadata` and `/api/v1/status/buildinfo`.
//!
//! Answers use Prometheus' envelope (`status`, `data`; `errorType` and
//! `error` on failure, with its HTTP codes). They take `/mcp`'s Host/Origin
//! guard and credentials (`Authorization: Bearer`) and need the
//! `timeseries:read` scope. Series come from the catalog; with `match[]`,
//! `start` and `end` keep those with data in the span (raw points or
//! rollups), and without, every catalogued name is listed. A `match[]`
//! selects at most [`MaxSeries`]' default, as the tools do.
//! PromQL evaluation (`/api/v1/query`, `query_range`) is
//! [`super::prom_query`]; remote read is [`super::remote_read`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rocket::data::{self, Data, FromData, ToByteUnit};
use rocket::http::{ContentType, Header, Status};
use rocket::request::{self, FromRequest};
use rocket::response::{self, Responder, Response};
use rocket::serde::json::{Value, json};
use rocket::{Request, State, get, post};

use super::write::WriteHeaders;
use crate::auth::{Challenge, Scopes};
use crate::db::DbError;
use crate::domain::Selector;
use crate::mcp::Mcp;
use crate::store::catalog::{self, Entry};
use crate::tools::selection::{self, MaxSeries};

/// At most this many `match[]` per request, and names or values per answer.
const MAX_MATCHERS: usize = 64;
const MAX_NAMES: usize = 10_000;
/// A form body larger than this is refused (Grafana's are a few KiB).
const MAX_FORM: usize = 1 << 20;

/// An answer in Prometheus' envelope.
pub enum Api {
    Success(Value),
    /// Status, `errorType`, message, and a `WWW-Authenticate` challenge.
    Error(Status, &'static str, String, Option<String>),
}

impl Api {
    pub(super) fn bad_data(message: impl Into<String>) -> Api {
        Api::Error(Status::BadRequest, "bad_data", message.into(), None)
    }

    pub(super) fn of(e: &DbError) -> Api {
        if e.is_transient() {
            return Api::Error(
                Status::ServiceUnavailable,
                "unavailable",
                format!("the database is unreachable or busy right now; retry shortly ({e})"),
                None,
            );
        }
        // The cause stays in the log.
        log::error!("prometheus api: {e}");
        Api::Error(
            Status::InternalServerError,
            "internal",
            "internal error".into(),
            None,
        )
    }
}

impl<'r> Responder<'r, 'static> for Api {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        let (status, body, challenge) = match self {
            Api::Success(data) => (
                Status::Ok,
                json!({ "status": "success", "data": data }),
                None,
            ),
            Api::Error(status, kind, error, challenge) => (
                status,
                json!({ "status": "error", "errorType": kind, "error": error }),
                challenge,
            ),
        };
        let mut r = Response::build_from(body.to_string().respond_to(req)?);
        r.header(ContentType::JSON);
        Ok(refusal(r, status, challenge))
    }
}

/// An answer's status, with `Retry-After` on a 503 (the sender retries) and
/// the credentials' challenge on a 401 or 403.
pub(super) fn refusal(
    mut r: response::Builder<'_>,
    status: Status,
    challenge: Option<String>,
) -> Response<'_> {
    r.status(status);
    if status == Status::ServiceUnavailable {
        r.header(Header::new("Retry-After", "1"));
    }
    if let Some(c) = challenge {
        r.header(Header::new("WWW-Authenticate", c));
    }
    r.finalize()
}

/// The guard, then the caller's credentials and the read scope.
pub(super) async fn admit(mcp: &Mcp, h: &WriteHeaders<'_>) -> Result<(), Api> {
    if let Err(forbidden) = mcp.guard.check(h.host, h.origin) {
        return Err(Api::Error(
            Status::Forbidden,
            "forbidden",
            forbidden.0,
            None,
        ));
    }
    let grant = mcp
        .auth
        .authenticate(h.authorization)
        .await
        .map_err(|denied| {
            Api::Error(
                Status::Unauthorized,
                "unauthorized",
                denied.message(),
                Some(mcp.auth.challenge(Challenge::Denied(&denied))),
            )
        })?;
    if !grant.scopes.contains(Scopes::READ) {
        return Err(Api::Error(
            Status::Forbidden,
            "forbidden",
            format!("this needs the {} scope", Scopes::READ),
            Some(mcp.auth.challenge(Challenge::Insufficient {
                needed: Scopes::READ,
                held: grant.scopes,
            })),
        ));
    }
    Ok(())
}

/// A request's parameters: its query string's, then (POST) its form
/// body's; or why the body could not be read, answered in the envelope.
pub struct Params(Result<Vec<(String, String)>, String>);

fn parse(query: Option<&str>, body: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .chain(url::form_urlencoded::parse(body.as_bytes()))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Params {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, Self::Error> {
        let query = req.uri().query().map(|q| q.as_str());
        request::Outcome::Success(Params(Ok(parse(query, ""))))
    }
}

#[rocket::async_trait]
impl<'r> FromData<'r> for Params {
    type Error = std::convert::Infallible;

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        let query = req.uri().query().map(|q| q.as_str());
        let read = data.open((MAX_FORM + 1).bytes()).into_string().await;
        data::Outcome::Success(Params(match read {
            Err(e) => Err(format!("the form body could not be read: {e}")),
            Ok(body) if body.len() > MAX_FORM => {
                Err(format!("the form body is larger than {MAX_FORM} bytes"))
            }
            Ok(body) => Ok(parse(query, &body)),
        }))
    }
}

impl Params {
    pub(super) fn get(self) -> Result<Vec<(String, String)>, Api> {
        self.0.map_err(Api::bad_data)
    }
}

/// A span in milliseconds, both ends in.
type Span = (i64, i64);

/// Each `match[]`, parsed as a PromQL selector, and the span asked.
fn selectors(params: &[(String, String)]) -> Result<(Vec<Selector>, Option<Span>), Api> {
    Ok((matches(params)?, span(params)?))
}

fn matches(params: &[(String, String)]) -> Result<Vec<Selector>, Api> {
    let matches: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == "match[]")
        .map(|(_, v)| v.as_str())
        .collect();
    if matches.len() > MAX_MATCHERS {
        return Err(Api::bad_data(format!(
            "{} match[] parameters; at most {MAX_MATCHERS}",
            matches.len()
        )));
    }
    matches
        .into_iter()
        .map(|m| {
            Selector::parse(m).map_err(|e| Api::bad_data(format!("invalid match[] {m:?}: {e}")))
        })
        .collect()
}

/// A time as Prometheus takes it: Unix seconds (fractions allowed) or
/// RFC 3339; in milliseconds.
pub(super) fn time(name: &str, text: &str) -> Result<i64, Api> {
    if let Ok(secs) = text.parse::<f64>()
        && secs.is_finite()
        && secs.abs() < 1e13
    {
        return Ok((secs * 1000.0).round() as i64);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            Api::bad_data(format!(
                "invalid parameter {name:?}: cannot parse {text:?} to a valid timestamp"
            ))
        })
}

/// `start` and `end` if either is given (the other open), in milliseconds.
fn span(params: &[(String, String)]) -> Result<Option<Span>, Api> {
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let (start, end) = (get("start"), get("end"));
    if start.is_none() && end.is_none() {
        return Ok(None);
    }
    let start = start
        .map(|t| time("start", t))
        .transpose()?
        .unwrap_or(i64::MIN / 4);
    let end = end
        .map(|t| time("end", t))
        .transpose()?
        .unwrap_or(i64::MAX / 4);
    if end < start {
        return Err(Api::bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    Ok(Some((start, end)))
}

/// The catalogued series any of `selectors` matches, each once; with a
/// span, those with data in it.
async fn entries(
    mcp: &Mcp,
    selectors: Vec<Selector>,
    span: Option<Span>,
) -> Result<Vec<Entry>, Api> {
    let found = mcp
        .db
        .run(move |conn| {
            let mut all: BTreeMap<String, Entry> = BTreeMap::new();
            for s in &selectors {
                match selection::bounded(conn, s, MaxSeries::default())? {
                    Ok(entries) => {
                        all.extend(entries.into_iter().map(|e| (e.series_name.clone(), e)))
                    }
                    Err(refused) => return Ok(Err(refused.to_string())),
                }
            }
            if let Some(span) = span {
                let names: Vec<&str> = all.keys().map(String::as_str).collect();
                let active = catalog::active(conn, &names, span)?;
                let active: BTreeSet<&str> = active.iter().map(String::as_str).collect();
                all.retain(|name, _| active.contains(name.as_str()));
            }
            Ok(Ok(all.into_values().collect::<Vec<_>>()))
        })
        .await
        .map_err(|e| Api::of(&e))?;
    found.map_err(|refused| Api::Error(Status::UnprocessableEntity, "execution", refused, None))
}

/// A series' label set as Prometheus shows it: `__name__` and its tags.
pub(super) fn label_set(e: &Entry) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = e
        .tags
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
        .collect();
    labels.insert("__name__".into(), e.metric.clone());
    labels
}

async fn labels(mcp: &Mcp, h: WriteHeaders<'_>, params: Params) -> Api {
    if let Err(refused) = admit(mcp, &h).await {
        return refused;
    }
    let (selectors, span) = match params.get().and_then(|p| selectors(&p)) {
        Ok(s) => s,
        Err(e) => return e,
    };
    if selectors.is_empty() {
        let names = mcp
            .db
            .run(|conn| catalog::label_names(conn, MAX_NAMES))
            .await;
        return match names {
            Ok((names, _)) => {
                let mut names: BTreeSet<String> = names.into_iter().map(|c| c.key).collect();
                names.insert("__name__".into());
                Api::Success(json!(names))
            }
            Err(e) => Api::of(&e),
        };
    }
    match entries(mcp, selectors, span).await {
        Ok(entries) => {
            let names: BTreeSet<String> = entries
                .iter()
                .flat_map(|e| label_set(e).into_keys())
                .collect();
            Api::Success(json!(names))
        }
        Err(e) => e,
    }
}

#[get("/api/v1/labels")]
pub async fn labels_get(mcp: &State<Arc<Mcp>>, h: WriteHeaders<'_>, p: Params) -> Api {
    labels(mcp, h, p).await
}

#[post("/api/v1/labels", data = "<p>")]
pub async fn labels_post(mcp: &State<Arc<Mcp>>, h: WriteHeaders<'_>, p: Params) -> Api {
    labels(mcp, h, p).await
}

#[get("/api/v1/label/<name>/values")]
pub async fn label_values(
    mcp: &State<Arc<Mcp>>,
    h: WriteHeaders<'_>,
    p: Params,
    name: &str,
) -> Api {
    if let Err(refused) = admit(mcp, &h).await {
        return refused;
    }
    let (selectors, span) = match p.get().and_then(|p| selectors(&p)) {
        Ok(s) => s,
        Err(e) => return e,
    };
    if selectors.is_empty() {
        let label = name.to_owned();
        return match mcp
            .db
            .run(move |conn| catalog::label_values(conn, &label, MAX_NAMES))
            .await
        {
            // Prometheus sorts values by name.
            Ok((values, _)) => Api::Success(json!(
                values.into_iter().map(|c| c.key).collect::<BTreeSet<_>>()
            )),
            Err(e) => Api::of(&e),
        };
    }
    match entries(mcp, selectors, span).await {
        Ok(entries) => Api::Success(json!(
            entries
                .iter()
                .filter_map(|e| label_set(e).remove(name))
                .collect::<BTreeSet<_>>()
        )),
        Err(e) => e,
    }
}

async fn series(mcp: &Mcp, h: WriteHeaders<'_>, params: Params) -> Api {
    if let Err(refused) = admit(mcp, &h).await {
        return refused;
    }
    let (selectors, span) = match params.get().and_then(|p| selectors(&p)) {
        Ok((s, _)) if s.is_empty() => return Api::bad_data("no match[] parameter provided"),
        Ok(s) => s,
        Err(e) => return e,
    };
    match entries(mcp, selectors, span).await {
        Ok(entries) => Api::Success(json!(entries.iter().map(label_set).collect::<Vec<_>>())),
        Err(e) => e,
    }
}

#[get("/api/v1/series")]
pub async fn series_get(mcp: &State<Arc<Mcp>>, h: WriteHeaders<'_>, p: Params) -> Api {
    series(mcp, h, p).await
}

#[post("/api/v1/series", data = "<p>")]
pub async fn series_post(mcp: &State<Arc<Mcp>>, h: WriteHeaders<'_>, p: Params) -> Api {
    series(mcp, h, p).await
}

/// What Prometheus' remote write described of each family:
/// `{metric: [{type, help, unit}]}`, `metric` and `limit` as Prometheus
/// takes them.
#[get("/api/v1/metadata")]
pub async fn metadata(mcp: &State<Arc<Mcp>>, h: WriteHeaders<'_>, p: Params) -> Api {
    if let Err(refused) = admit(mcp, &h).await {
        return refused;
    }
    let params = match p.get() {
        Ok(p) => p,
        Err(e) => return e,
    };
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let limit = match get("limit").map(|l| l.parse::<i64>()) {
        None => MAX_NAMES as i64,
        Some(Ok(n)) if n > 0 => n.min(MAX_NAMES as i64),
        // Prometheus: zero or less is no limit.
        Some(Ok(_)) => MAX_NAMES as i64,
        Some(Err(_)) => return Api::bad_data("limit must be a number"),
    };
    let metric = get("metric").filter(|m| !m.is_empty());
    match mcp
        .db
        .run(move |conn| crate::store::metadata::list(conn, metric.as_deref(), limit))
        .await
    {
        Ok(rows) => Api::Success(json!(
            rows.into_iter()
                .map(|m| (
                    m.metric,
                    json!([{ "type": m.kind.as_str(), "help": m.help, "unit": m.unit }])
                ))
                .collect::<serde_json::Map<_, _>>()
        )),
        Err(e) => Api::of(&e),
    }
}

/// What Grafana reads to learn the flavour and version it talks to.
#[get("/api/v1/status/buildinfo")]
pub async fn buildinfo(mcp: &State<Arc<Mcp>>, h: WriteHeaders<'_>) -> Api {
    if let Err(refused) = admit(mcp, &h).await {
        return refused;
    }
    Api::Success(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "revision": "",
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
        "application": "mcp-server",
    }))
}
