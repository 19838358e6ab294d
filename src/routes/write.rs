//! The collectors' write endpoints: Prometheus remote write 1.0 at
//! `/api/v1/write`, and InfluxDB line protocol at `/api/v2/write` (2.x) and
//! `/write` (1.x). They answer as their senders expect: 204 when written;
//! 400 (not retried) for data that will never go in, saying why; 503 with
//! `Retry-After` (retried) when the server or its database cannot take it
//! now, so an outage loses nothing.
//!
//! They take `/mcp`'s Host/Origin guard and credentials (Prometheus'
//! `Authorization: Bearer`, InfluxDB's `Token`, 1.x's Basic password or
//! `p=`), need the `timeseries:write` scope, and count against the same
//! body budget. Each request is one write of the shared path (`ingest`).

use std::sync::Arc;

use rocket::data::{Data, Limits, ToByteUnit};
use rocket::http::{ContentType, Header, Status};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::response::{self, Responder, Response};
use rocket::{State, post};

use crate::auth::{self, Challenge, Scopes};
use crate::ingest::line_protocol::{self, Precision};
use crate::ingest::{ChunkSource, IngestError, Tally, remote_write};
use crate::mcp::Mcp;
use crate::mcp::http::{Body, DRAIN_CAP, drain, read_body};

/// The headers the write endpoints look at.
pub struct WriteHeaders<'r> {
    pub(super) host: Option<&'r str>,
    pub(super) origin: Option<&'r str>,
    pub(super) authorization: Option<&'r str>,
    content_encoding: Option<&'r str>,
    content_length: Option<u64>,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for WriteHeaders<'r> {
    type Error = ();
    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, ()> {
        let h = req.headers();
        Outcome::Success(WriteHeaders {
            host: h.get_one("Host"),
            origin: h.get_one("Origin"),
            authorization: h.get_one("Authorization"),
            content_encoding: h
                .get_one("Content-Encoding")
                .map(str::trim)
                .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("identity")),
            content_length: h
                .get_one("Content-Length")
                .and_then(|n| n.trim().parse().ok()),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Prometheus,
    InfluxV2,
    InfluxV1,
}

impl Protocol {
    /// The label of `/metrics`.
    fn label(self) -> &'static str {
        match self {
            Protocol::Prometheus => "prometheus",
            Protocol::InfluxV2 | Protocol::InfluxV1 => "influx",
        }
    }
}

/// A write endpoint's answer, in its sender's dialect.
pub struct Reply {
    status: Status,
    protocol: Protocol,
    message: String,
    challenge: Option<String>,
}

impl Reply {
    fn written(protocol: Protocol) -> Reply {
        Reply {
            status: Status::NoContent,
            protocol,
            message: String::new(),
            challenge: None,
        }
    }

    fn refused(protocol: Protocol, status: Status, message: impl Into<String>) -> Reply {
        Reply {
            status,
            protocol,
            message: message.into(),
            challenge: None,
        }
    }

    fn of(protocol: Protocol, e: &IngestError) -> Reply {
        let status = match e {
            IngestError::Invalid(_) => Status::BadRequest,
            IngestError::TooLarge(_) => Status::PayloadTooLarge,
            IngestError::Unavailable(_) | IngestError::Fenced(_) => Status::ServiceUnavailable,
            IngestError::Internal(_) => Status::InternalServerError,
        };
        let message = match e {
            IngestError::Internal(cause) => {
                // The cause stays in the log; the sender retries a 500.
                log::error!("write to {}: {cause}", protocol.label());
                "internal error; the write was rolled back and may be retried".to_owned()
            }
            other => format!("{other}; nothing was written"),
        };
        Reply::refused(protocol, status, message)
    }
}

impl<'r> Responder<'r, 'static> for Reply {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let mut res = Response::build();
        res.status(self.status);
        if self.status == Status::NoContent {
            return res.ok();
        }
        if self.status == Status::ServiceUnavailable {
            res.header(Header::new("Retry-After", "2"));
        }
        if let Some(challenge) = self.challenge {
            res.header(Header::new("WWW-Authenticate", challenge));
        }
        let body = match self.protocol {
            // Prometheus logs the body of a refusal.
            Protocol::Prometheus => {
                res.header(ContentType::Plain);
                self.message
            }
            // InfluxDB 2's error document.
            Protocol::InfluxV2 => {
                res.header(ContentType::JSON);
                let code = match self.status.code {
                    400 => "invalid",
                    401 => "unauthorized",
                    403 => "forbidden",
                    413 => "request too large",
                    415 => "unsupported media type",
                    503 => "unavailable",
                    _ => "internal error",
                };
                serde_json::json!({ "code": code, "message": self.message }).to_string()
            }
            // InfluxDB 1.x's.
            Protocol::InfluxV1 => {
                res.header(ContentType::JSON);
                serde_json::json!({ "error": self.message }).to_string()
            }
        };
        res.sized_body(body.len(), std::io::Cursor::new(body));
        res.ok()
    }
}

/// How one body becomes chunks, once read.
type Decode = Box<dyn FnOnce(Vec<u8>, Arc<Tally>) -> ChunkSource + Send>;

/// The checks, the body, the write, the counts: all the endpoints' path.
async fn write(
    mcp: &Arc<Mcp>,
    h: &WriteHeaders<'_>,
    protocol: Protocol,
    token: Option<&str>,
    (limit, data): (rocket::data::ByteUnit, Data<'_>),
    decode: Decode,
) -> Reply {
    let mut stream = data.open(limit + DRAIN_CAP.bytes());
    if let Err(refused) = admit(mcp, h, protocol, token).await {
        drain(&mut stream).await;
        return refused;
    }
    // A body that does not fit the budget now is told to come back.
    let Some(share) = mcp
        .bodies
        .try_reserve(h.content_length.unwrap_or(limit.as_u64()))
    else {
        drain(&mut stream).await;
        return Reply::refused(
            protocol,
            Status::ServiceUnavailable,
            "too many large requests in flight; retry shortly",
        );
    };
    let body = match read_body(&mut stream, limit.as_u64(), h.content_length).await {
        Body::Read(body) => body,
        Body::Failed(e) => {
            return Reply::refused(
                protocol,
                Status::BadRequest,
                format!("the body could not be read: {e}"),
            );
        }
        Body::TooLarge => {
            return Reply::refused(
                protocol,
                Status::PayloadTooLarge,
                format!(
                    "the body is larger than {limit} (ROCKET_LIMITS ingest); send smaller batches"
                ),
            );
        }
    };
    let tally = Arc::new(Tally::default());
    let written = mcp
        .ingest
        .write_chunks(decode(body, Arc::clone(&tally)), &mcp.events)
        .await;
    drop(share);
    // The families a remote write described, kept once its points are in.
    let written = match written {
        Ok(report) => mcp
            .ingest
            .describe(tally.take_described())
            .await
            .map(|()| report),
        e => e,
    };
    let (samples, skipped) = tally.counts();
    let label = protocol.label();
    mcp.metrics.ingest(label, "skipped", skipped);
    match written {
        Ok(_) => {
            mcp.metrics
                .ingest(label, "accepted", samples.saturating_sub(skipped));
            Reply::written(protocol)
        }
        Err(e) => {
            mcp.metrics
                .ingest(label, "rejected", samples.saturating_sub(skipped));
            Reply::of(protocol, &e)
        }
    }
}

/// The guard, then the caller's credentials and the write scope.
async fn admit(
    mcp: &Mcp,
    h: &WriteHeaders<'_>,
    protocol: Protocol,
    token: Option<&str>,
) -> Result<(), Reply> {
    if let Err(forbidden) = mcp.guard.check(h.host, h.origin) {
        return Err(Reply::refused(protocol, Status::Forbidden, forbidden.0));
    }
    let grant = mcp
        .auth
        .authenticate_token(token)
        .await
        .map_err(|denied| Reply {
            challenge: Some(mcp.auth.challenge(Challenge::Denied(&denied))),
            ..Reply::refused(protocol, Status::Unauthorized, denied.message())
        })?;
    if mcp.ingest.limits.read_only {
        return Err(Reply::refused(
            protocol,
            Status::Forbidden,
            "this server is read-only (MCP_READ_ONLY): it takes no writes",
        ));
    }
    if !grant.scopes.contains(Scopes::WRITE) {
        return Err(Reply {
            challenge: Some(mcp.auth.challenge(Challenge::Insufficient {
                needed: Scopes::WRITE,
                held: grant.scopes,
            })),
            ..Reply::refused(
                protocol,
                Status::Forbidden,
                format!("this needs the {} scope", Scopes::WRITE),
            )
        });
    }
    Ok(())
}

fn ingest_limit(limits: &Limits) -> rocket::data::ByteUnit {
    limits.get("ingest").unwrap_or(32.mebibytes())
}

/// A refusal made before the body is read: the body is drained first, so
/// that the answer reaches the sender.
async fn unread(data: Data<'_>, limits: &Limits, reply: Reply) -> Reply {
    let mut stream = data.open(ingest_limit(limits) + DRAIN_CAP.bytes());
    drain(&mut stream).await;
    reply
}

/// Prometheus remote write 1.0: snappy-compressed protobuf.
#[post("/api/v1/write", data = "<data>")]
pub async fn prometheus(
    mcp: &State<Arc<Mcp>>,
    h: WriteHeaders<'_>,
    limits: &Limits,
    data: Data<'_>,
) -> Reply {
    let protocol = Protocol::Prometheus;
    if h.content_encoding
        .is_some_and(|e| !e.eq_ignore_ascii_case("snappy"))
    {
        let refused = Reply::refused(
            protocol,
            Status::UnsupportedMediaType,
            "remote write bodies are snappy-compressed (Content-Encoding: snappy)",
        );
        return unread(data, limits, refused).await;
    }
    let (max, non_finite) = (mcp.ingest.limits.max_decoded, mcp.ingest.limits.non_finite);
    let token = auth::bearer(h.authorization, &["bearer"]);
    let decode: Decode =
        Box::new(move |body, tally| remote_write::body_chunks(body, max, non_finite, tally));
    write(
        mcp,
        &h,
        protocol,
        token,
        (ingest_limit(limits), data),
        decode,
    )
    .await
}

/// InfluxDB 2.x: line protocol, `precision` of ns (default), us, ms or s;
/// `org` and `bucket` are accepted and not used (one store).
#[post("/api/v2/write?<precision>", data = "<data>")]
pub async fn influx_v2(
    mcp: &State<Arc<Mcp>>,
    h: WriteHeaders<'_>,
    limits: &Limits,
    precision: Option<&str>,
    data: Data<'_>,
) -> Reply {
    let token = auth::bearer(h.authorization, &["token", "bearer"]);
    influx(mcp, &h, limits, Protocol::InfluxV2, precision, token, data).await
}

/// InfluxDB 1.x: line protocol, `precision` of n (default), u, ms or s;
/// the token as `Token`/`Bearer`, as a Basic password, or as `p=`.
#[post("/write?<precision>&<p>", data = "<data>")]
pub async fn influx_v1(
    mcp: &State<Arc<Mcp>>,
    h: WriteHeaders<'_>,
    limits: &Limits,
    precision: Option<&str>,
    p: Option<&str>,
    data: Data<'_>,
) -> Reply {
    let basic = basic_password(h.authorization);
    let token = auth::bearer(h.authorization, &["token", "bearer"])
        .or(basic.as_deref())
        .or(p);
    influx(mcp, &h, limits, Protocol::InfluxV1, precision, token, data).await
}

async fn influx(
    mcp: &Arc<Mcp>,
    h: &WriteHeaders<'_>,
    limits: &Limits,
    protocol: Protocol,
    precision: Option<&str>,
    token: Option<&str>,
    data: Data<'_>,
) -> Reply {
    let gzip = match h.content_encoding {
        None => false,
        Some(e) if e.eq_ignore_ascii_case("gzip") => true,
        Some(other) => {
            let refused = Reply::refused(
                protocol,
                Status::UnsupportedMediaType,
                format!("Content-Encoding {other} is not taken; send gzip or none"),
            );
            return unread(data, limits, refused).await;
        }
    };
    let precision = match Precision::parse(precision) {
        Ok(p) => p,
        Err(e) => return unread(data, limits, Reply::of(protocol, &e)).await,
    };
    let max = mcp.ingest.limits.max_decoded as u64;
    let decode: Decode = Box::new(move |body, tally| {
        let body = std::io::Cursor::new(body);
        if gzip {
            Box::new(line_protocol::Chunks::new(
                flate2::read::GzDecoder::new(body),
                precision,
                max,
                tally,
            ))
        } else {
            Box::new(line_protocol::Chunks::new(body, precision, max, tally))
        }
    });
    write(
        mcp,
        h,
        protocol,
        token,
        (ingest_limit(limits), data),
        decode,
    )
    .await
}

/// The password of `Authorization: Basic` (InfluxDB 1.x clients send the
/// token there).
fn basic_password(authorization: Option<&str>) -> Option<String> {
    use base64::Engine;
    let encoded = auth::bearer(authorization, &["basic"])?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (_, password) = text.split_once(':')?;
    (!password.is_empty()).then(|| password.to_owned())
}
