//! The public listener: a small HTTP/1 front (hyper 0.14, the version Rocket
//! 0.5 runs on) that drops slow clients, then hands each request to Rocket
//! on a loopback port.
//!
//! Rocket 0.5 never times out a client: a connection trickling its headers
//! or body stays open forever, and enough of them exhaust the server. Rocket
//! does not expose hyper's settings, so the front applies them:
//! - a request head must arrive within `MCP_HEADER_TIMEOUT_SECS` (hyper's
//!   header-read timeout);
//! - a request body may not pause longer than `MCP_BODY_TIMEOUT_SECS`
//!   between chunks (the request is then answered 408 and the connection
//!   closed).
//!
//! Responses stream through untouched (SSE included). Rocket sees the
//! client's address in `X-Real-IP`, which the front always sets itself.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use hyper::body::HttpBody;
use hyper::server::conn::AddrStream;
use hyper::service::{make_service_fn, service_fn};
use hyper::{Body, Client, Request, Response, StatusCode};
use rocket::futures::stream;
use rocket::tokio::time::timeout;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header: Duration,
    pub body_idle: Duration,
}

/// Serves `public` until `shutdown` resolves, forwarding to Rocket at
/// `upstream`.
pub async fn serve(
    public: SocketAddr,
    upstream: SocketAddr,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    // No Nagle on the hop to Rocket: a request written as head then body
    // would otherwise wait ~40 ms for a delayed ACK.
    let mut connector = hyper::client::HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<hyper::client::HttpConnector, Body> = Client::builder()
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector);
    let make = make_service_fn(move |conn: &AddrStream| {
        let peer = conn.remote_addr();
        let client = client.clone();
        async move {
            Ok::<_, Infallible>(service_fn(move |req| {
                forward(client.clone(), upstream, peer, limits.body_idle, req)
            }))
        }
    });
    let server = hyper::Server::try_bind(&public)
        .map_err(|e| format!("cannot listen on {public}: {e}"))?
        .http1_header_read_timeout(limits.header)
        .tcp_nodelay(true)
        .serve(make);
    log::info!(
        "listening on http://{} (request heads within {} s, body pauses under {} s)",
        server.local_addr(),
        limits.header.as_secs(),
        limits.body_idle.as_secs()
    );
    server
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| e.to_string())
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response
}

async fn forward(
    client: Client<hyper::client::HttpConnector, Body>,
    upstream: SocketAddr,
    peer: SocketAddr,
    body_idle: Duration,
    req: Request<Body>,
) -> Result<Response<Body>, Infallible> {
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let Ok(uri) = format!("http://{upstream}{path}").parse() else {
        return Ok(plain(StatusCode::BAD_REQUEST, "bad request target\n"));
    };
    parts.uri = uri;
    if let Ok(ip) = peer.ip().to_string().parse() {
        parts.headers.insert("x-real-ip", ip);
    }
    let (stalled_tx, mut stalled_rx) = rocket::tokio::sync::oneshot::channel::<()>();
    let paced = paced(body, body_idle, stalled_tx);
    let request = Request::from_parts(parts, Body::wrap_stream(paced));
    rocket::tokio::select! {
        biased;
        // Only a stall: the sender is also dropped when the body simply ends.
        Ok(()) = &mut stalled_rx => Ok(stalled(body_idle)),
        answer = client.request(request) => match answer {
            Ok(response) => Ok(response),
            Err(_) if stalled_rx.try_recv().is_ok() => Ok(stalled(body_idle)),
            Err(e) => {
                log::warn!("gate: the application did not answer: {e}");
                Ok(plain(StatusCode::BAD_GATEWAY, "the application did not answer\n"))
            }
        },
    }
}

/// 408, and the connection closes (the rest of the body is not read).
fn stalled(body_idle: Duration) -> Response<Body> {
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

/// The body as a stream that fails when the client pauses past `idle`.
fn paced(
    body: Body,
    idle: Duration,
    stalled: rocket::tokio::sync::oneshot::Sender<()>,
) -> impl rocket::futures::Stream<Item = Result<hyper::body::Bytes, std::io::Error>> + Send {
    stream::unfold(
        (body, Some(stalled)),
        move |(mut body, mut stalled)| async move {
            match timeout(idle, body.data()).await {
                Ok(Some(Ok(chunk))) => Some((Ok(chunk), (body, stalled))),
                Ok(Some(Err(e))) => Some((Err(std::io::Error::other(e)), (body, None))),
                Ok(None) => None,
                Err(_) => {
                    if let Some(tx) = stalled.take() {
                        let _ = tx.send(());
                    }
                    Some((
                        Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "request body stalled",
                        )),
                        (body, None),
                    ))
                }
            }
        },
    )
}
