//! Prometheus remote read at `POST /api/v1/read`: a snappy-compressed
//! protobuf `ReadRequest` in, a `ReadResponse` of raw samples out (the
//! `SAMPLES` response type; the streamed `STREAMED_XOR_CHUNKS` type is not
//! served, and Prometheus takes samples whatever it asked for). A
//! Prometheus with `remote_read` pointed here evaluates any PromQL over
//! what was written here, older than its own retention too.
//!
//! Bounded: [`MAX_QUERIES`] queries a request, `max_series`' default
//! (1,000) series a query, [`MAX_SAMPLES`] samples a request; past a bound,
//! 422 with what to narrow, which Prometheus logs. Credentials and the
//! `timeseries:read` scope as the other read endpoints. Samples are the raw
//! points: before a series' raw retention horizon there are none.

use std::sync::Arc;

use prost::Message;
use rocket::data::{Data, ToByteUnit};
use rocket::http::{ContentType, Header, Status};
use rocket::response::{self, Responder, Response};
use rocket::{Request, State, post};

use super::prom_api::{Api, admit, label_set, refusal};
use super::write::WriteHeaders;
use crate::domain::Selector;
use crate::ingest::IngestError;
use crate::ingest::remote_write::{Label, Sample, TimeSeries, decompress};
use crate::mcp::Mcp;
use crate::store::aggregates;
use crate::tools::selection::{self, MaxSeries};

/// Queries in one request (Prometheus sends one).
pub const MAX_QUERIES: usize = 16;
/// Samples in one answer: about 30 MB of protobuf before compression.
pub const MAX_SAMPLES: i64 = 2_000_000;
/// A request's body, compressed and inflated (a request is matchers only).
const MAX_BODY: usize = 1 << 20;
const MAX_DECODED: usize = 8 << 20;

/// `prompb.ReadRequest`; `accepted_response_types` (field 2) is not read.
#[derive(Clone, PartialEq, Message)]
pub struct ReadRequest {
    #[prost(message, repeated, tag = "1")]
    pub queries: Vec<Query>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Query {
    #[prost(int64, tag = "1")]
    pub start_timestamp_ms: i64,
    #[prost(int64, tag = "2")]
    pub end_timestamp_ms: i64,
    #[prost(message, repeated, tag = "3")]
    pub matchers: Vec<LabelMatcher>,
}

#[derive(Clone, PartialEq, Message)]
pub struct LabelMatcher {
    /// `=` 0, `!=` 1, `=~` 2, `!~` 3.
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub value: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct ReadResponse {
    #[prost(message, repeated, tag = "1")]
    pub results: Vec<QueryResult>,
}

#[derive(Clone, PartialEq, Message)]
pub struct QueryResult {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// Samples, compressed; or a refusal in plain text, as Prometheus logs it.
pub enum ReadReply {
    Samples(Vec<u8>),
    Refused(Status, String, Option<String>),
}

impl ReadReply {
    fn refused(status: Status, message: impl Into<String>) -> ReadReply {
        ReadReply::Refused(status, message.into(), None)
    }
}

impl From<Api> for ReadReply {
    fn from(api: Api) -> ReadReply {
        match api {
            Api::Error(status, _, message, challenge) => {
                ReadReply::Refused(status, message, challenge)
            }
            Api::Success(_) => ReadReply::refused(Status::InternalServerError, "internal error"),
        }
    }
}

impl<'r> Responder<'r, 'static> for ReadReply {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        match self {
            ReadReply::Samples(body) => Response::build_from(body.respond_to(req)?)
                .header(ContentType::new("application", "x-protobuf"))
                .header(Header::new("Content-Encoding", "snappy"))
                .ok(),
            ReadReply::Refused(status, message, challenge) => {
                let mut r = Response::build_from(message.respond_to(req)?);
                r.header(ContentType::Plain);
                Ok(refusal(r, status, challenge))
            }
        }
    }
}

#[post("/api/v1/read", data = "<data>")]
pub async fn read(mcp: &State<Arc<Mcp>>, h: WriteHeaders<'_>, data: Data<'_>) -> ReadReply {
    if let Err(refused) = admit(mcp, &h).await {
        return refused.into();
    }
    let body = match data.open((MAX_BODY + 1).bytes()).into_bytes().await {
        Ok(b) if b.len() <= MAX_BODY => b.into_inner(),
        Ok(_) => {
            return ReadReply::refused(
                Status::PayloadTooLarge,
                format!("the read request is larger than {MAX_BODY} bytes"),
            );
        }
        Err(e) => return ReadReply::refused(Status::BadRequest, format!("unreadable body: {e}")),
    };
    let queries = match decode(&body) {
        Ok(q) => q,
        Err(reply) => return reply,
    };
    let answered = mcp
        .db
        .run(move |conn| {
            let mut budget = MAX_SAMPLES;
            let mut results = Vec::with_capacity(queries.len());
            for (selector, range) in &queries {
                let entries = match selection::bounded(conn, selector, MaxSeries::default())? {
                    Ok(entries) => entries,
                    Err(refused) => return Ok(Err(refused.to_string())),
                };
                let names: Vec<&str> = entries.iter().map(|e| e.series_name.as_str()).collect();
                let points = aggregates::points_many(
                    conn,
                    &names,
                    aggregates::Span::Whole(range.0, range.1),
                    budget + 1,
                )?;
                if points.len() as i64 > budget {
                    return Ok(Err(format!(
                        "more than {MAX_SAMPLES} samples match this request; narrow its time \
                         range or its matchers"
                    )));
                }
                budget -= points.len() as i64;
                results.push(QueryResult {
                    timeseries: series_of(&entries, points),
                });
            }
            Ok(Ok(results))
        })
        .await;
    match answered {
        Ok(Ok(results)) => {
            let encoded = ReadResponse { results }.encode_to_vec();
            match snap::raw::Encoder::new().compress_vec(&encoded) {
                Ok(body) => ReadReply::Samples(body),
                // Only past 4 GiB, which the sample bound rules out.
                Err(e) => {
                    ReadReply::refused(Status::InternalServerError, format!("internal error: {e}"))
                }
            }
        }
        Ok(Err(bound)) => ReadReply::refused(Status::UnprocessableEntity, bound),
        Err(e) => Api::of(&e).into(),
    }
}

/// A query: its selector, and its range in milliseconds, both ends in.
type Ranged = (Selector, (i64, i64));

/// The request's queries as selectors and millisecond ranges, or the 4xx
/// that says what is wrong with it.
fn decode(body: &[u8]) -> Result<Vec<Ranged>, ReadReply> {
    let raw = decompress(body, MAX_DECODED).map_err(|e| match e {
        IngestError::TooLarge(m) => ReadReply::refused(Status::PayloadTooLarge, m),
        other => ReadReply::refused(Status::BadRequest, other.to_string()),
    })?;
    let request = ReadRequest::decode(raw.as_slice()).map_err(|e| {
        ReadReply::refused(
            Status::BadRequest,
            format!("the body is not a remote read ReadRequest: {e}"),
        )
    })?;
    if request.queries.len() > MAX_QUERIES {
        return Err(ReadReply::refused(
            Status::BadRequest,
            format!(
                "{} queries in one request; at most {MAX_QUERIES}",
                request.queries.len()
            ),
        ));
    }
    request
        .queries
        .into_iter()
        .map(|q| {
            if q.start_timestamp_ms > q.end_timestamp_ms {
                return Err(ReadReply::refused(
                    Status::BadRequest,
                    "a query's start is after its end",
                ));
            }
            let selector = Selector::from_remote_read(
                q.matchers.into_iter().map(|m| (m.r#type, m.name, m.value)),
            )
            .map_err(|e| ReadReply::refused(Status::BadRequest, e))?;
            Ok((selector, (q.start_timestamp_ms, q.end_timestamp_ms)))
        })
        .collect()
}

/// Each series with samples, its labels sorted by name as Prometheus
/// requires.
fn series_of(
    entries: &[crate::store::catalog::Entry],
    points: Vec<aggregates::IndexedPoint>,
) -> Vec<TimeSeries> {
    entries
        .iter()
        .zip(aggregates::by_series(points, entries.len()))
        .filter(|(_, samples)| !samples.is_empty())
        .map(|(e, samples)| TimeSeries {
            labels: label_set(e)
                .into_iter()
                .map(|(name, value)| Label { name, value })
                .collect(),
            samples: samples
                .into_iter()
                .map(|(timestamp, value)| Sample { value, timestamp })
                .collect(),
            histograms: Vec::new(),
        })
        .collect()
}
