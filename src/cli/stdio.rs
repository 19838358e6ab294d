//! `mcp-server stdio`: the server on stdin and stdout, for hosts that
//! launch their MCP servers. Everything but the transport is as `serve`:
//! migrations applied first under the same lock, Redis optional.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::{Grant, Scopes};
use crate::config::Settings;
use crate::mcp::stdio::{Options, serve};
use crate::metrics::Metrics;

/// How long calls in flight may run on once input ends or SIGTERM comes.
const DRAIN: Duration = Duration::from_secs(30);

pub fn stdio(scopes: Scopes) -> ExitCode {
    super::run_async(run(scopes))
}

async fn run(scopes: Scopes) -> Result<(), String> {
    let figment = Settings::figment();
    let settings = Settings::from_figment(&figment)?;
    let rocket =
        rocket::Config::try_from(&figment).map_err(|e| format!("invalid configuration: {e}"))?;
    // The HTTP body limit bounds a line.
    let line_limit = rocket
        .limits
        .get("json")
        .map_or(32 << 20, |l| l.as_u64())
        .try_into()
        .unwrap_or(usize::MAX);
    let (db, cache) = super::open(&settings).await?;
    let metrics = Arc::new(Metrics::new());
    let mcp = Arc::new(
        crate::protocol(&settings, &db, &cache, &metrics)
            .map_err(|e| format!("start-up aborted: {e}"))?,
    );
    log::info!("serving MCP on stdin and stdout");
    let options = Options {
        line_limit,
        drain: DRAIN,
        grant: Arc::new(Grant {
            scopes,
            ..Grant::local()
        }),
    };
    let input = tokio::io::BufReader::new(tokio::io::stdin());
    serve(mcp, input, tokio::io::stdout(), options, terminated())
        .await
        .map_err(|e| format!("stdio: {e}"))
}

/// SIGTERM or SIGINT. The handlers are installed here, before serving
/// starts, not on the future's first poll: a signal that arrives as soon as
/// the client has its first answer must not find the default action.
fn terminated() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
