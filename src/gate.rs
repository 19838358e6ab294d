//! The public listener: a small HTTP/1 front (hyper 1, as Rocket 0.5.2
//! runs on) that drops slow clients, then hands each request to Rocket on a
//! loopback port.
//!
//! Rocket turns hyper's header-read timeout off and never times out a
//! body: a connection trickling its headers or body stays open forever,
//! and enough of them exhaust the server. Rocket does not expose hyper's
//! settings, so the front applies them:
//! - a request head must arrive within `MCP_HEADER_TIMEOUT_SECS` (hyper's
//!   header-read timeout, which needs a timer installed or does nothing);
//! - a request body may not pause longer than `MCP_BODY_TIMEOUT_SECS`
//!   between chunks (the request is then answered 408 and the connection
//!   closed).
//!
//! Responses stream through untouched (SSE included), refusals too: when
//! Rocket answers before the body is all sent (413, 503), that answer is
//! passed on. Rocket sees the client's address in `X-Real-IP`, which the
//! front always sets itself.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rocket::futures::stream;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::time::{sleep, timeout};

use crate::metrics::Metrics;

pub use crate::config::GateLimits as Limits;

type Answer = Response<BoxBody<Bytes, hyper::Error>>;
type Upstream = Client<HttpConnector, BoxBody<Bytes, std::io::Error>>;

/// How long open connections may take to finish once shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves `public` until `shutdown` resolves, forwarding to Rocket at
/// `upstream`.
pub async fn serve(
    public: SocketAddr,
    upstream: SocketAddr,
    limits: Limits,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    // No Nagle on the hop to Rocket: a request written as head then body
    // would otherwise wait ~40 ms for a delayed ACK.
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Upstream = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_timer(TokioTimer::new())
        .build(connector);
    let listener = TcpListener::bind(public)
        .await
        .map_err(|e| format!("cannot listen on {public}: {e}"))?;
    log::info!(
        "listening on http://{} (request heads within {} s, body pauses under {} s)",
        listener.local_addr().map_err(|e| e.to_string())?,
        limits.header.as_secs(),
        limits.body_idle.as_secs()
    );
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, most likely: let some close.
                    log::warn!("gate: accept failed: {e}");
                    sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = socket.set_nodelay(true);
        let (client, metrics) = (client.clone(), Arc::clone(&metrics));
        let service = service_fn(move |req| {
            forward(
                client.clone(),
                upstream,
                peer,
                limits.body_idle,
                Arc::clone(&metrics),
                req,
            )
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header)
            .serve_connection(TokioIo::new(socket), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                log::debug!("gate: connection from {peer}: {e}");
            }
        });
    }
    // SSE streams never end by themselves: the wait is bounded.
    let _ = timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
    Ok(())
}

fn plain(status: StatusCode, text: &'static str) -> Answer {
    let body = Full::new(Bytes::from_static(text.as_bytes()))
        .map_err(|never| match never {})
        .boxed();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
}

/// Why the client's body stopped before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    Stalled,
    HungUp,
}

/// Counts a request whose client went away before it was answered: its
/// doing, so counted and logged at debug only. (hyper drops the request's
/// future when the connection goes.)
struct Unanswered {
    metrics: Arc<Metrics>,
    peer: SocketAddr,
    answered: bool,
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        if !self.answered {
            self.metrics.client_aborted();
            log::debug!("gate: client {} hung up before its answer", self.peer);
        }
    }
}

async fn forward(
    client: Upstream,
    upstream: SocketAddr,
    peer: SocketAddr,
    body_idle: Duration,
    metrics: Arc<Metrics>,
    req: Request<Incoming>,
) -> Result<Answer, Infallible> {
    let mut watch = Unanswered {
        metrics,
        peer,
        answered: false,
    };
    let (answer, hung_up) = relay(client, upstream, peer, body_idle, req).await;
    watch.answered = !hung_up;
    Ok(answer)
}

/// The answer to pass on, and whether the client hung up mid-body.
async fn relay(
    client: Upstream,
    upstream: SocketAddr,
    peer: SocketAddr,
    body_idle: Duration,
    req: Request<Incoming>,
) -> (Answer, bool) {
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let Ok(uri) = format!("http://{upstream}{path}").parse() else {
        return (
            plain(StatusCode::BAD_REQUEST, "bad request target\n"),
            false,
        );
    };
    parts.uri = uri;
    if let Ok(ip) = peer.ip().to_string().parse() {
        parts.headers.insert("x-real-ip", ip);
    }
    let (cut_tx, mut cut_rx) = oneshot::channel::<Cut>();
    let paced = StreamBody::new(paced(body, body_idle, cut_tx)).boxed();
    let request = Request::from_parts(parts, paced);
    let sent = client.request(request);
    tokio::pin!(sent);
    // What became of the client's body, once known.
    let mut cut = None;
    let answer = tokio::select! {
        biased;
        told = &mut cut_rx => match told {
            Ok(Cut::Stalled) => return (stalled(body_idle), false),
            Ok(Cut::HungUp) => {
                cut = Some(Cut::HungUp);
                sent.await
            }
            // The body simply ended.
            Err(_) => sent.await,
        },
        answer = &mut sent => answer,
    };
    let cut = cut.or_else(|| cut_rx.try_recv().ok());
    let hung_up = cut == Some(Cut::HungUp);
    match answer {
        // Rocket may answer a body that ended early itself (400).
        Ok(response) => (response.map(BodyExt::boxed), hung_up),
        Err(_) if cut == Some(Cut::Stalled) => (stalled(body_idle), false),
        // Nobody is left to read this.
        Err(_) if hung_up => (
            plain(StatusCode::BAD_REQUEST, "the request body ended early\n"),
            true,
        ),
        Err(e) => {
            log::warn!("gate: the application did not answer: {e}");
            let mut response = plain(StatusCode::BAD_GATEWAY, "the application did not answer\n");
            response.headers_mut().insert(
                hyper::header::RETRY_AFTER,
                hyper::header::HeaderValue::from_static("1"),
            );
            (response, false)
        }
    }
}

/// 408, and the connection closes (the rest of the body is not read).
fn stalled(body_idle: Duration) -> Answer {
    log::debug!("gate: request body paused over {body_idle:?}; closing");
    let mut response = plain(
        StatusCode::REQUEST_TIMEOUT,
        "request body stalled; send it without long pauses\n",
    );
    response.headers_mut().insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
    response
}

/// The body as a stream that fails when the client pauses past `idle` or
/// goes away, saying which through `cut`.
fn paced(
    body: Incoming,
    idle: Duration,
    cut: oneshot::Sender<Cut>,
) -> impl rocket::futures::Stream<Item = Result<Frame<Bytes>, std::io::Error>> + Send {
    stream::unfold((body, Some(cut)), move |(mut body, mut cut)| async move {
        let tell = |cut: &mut Option<oneshot::Sender<Cut>>, why| {
            if let Some(tx) = cut.take() {
                let _ = tx.send(why);
            }
        };
        match timeout(idle, body.frame()).await {
            Ok(Some(Ok(frame))) => Some((Ok(frame), (body, cut))),
            Ok(Some(Err(e))) => {
                tell(&mut cut, Cut::HungUp);
                Some((Err(std::io::Error::other(e)), (body, None)))
            }
            Ok(None) => None,
            Err(_) => {
                tell(&mut cut, Cut::Stalled);
                Some((
                    Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "request body stalled",
                    )),
                    (body, None),
                ))
            }
        }
    })
}
