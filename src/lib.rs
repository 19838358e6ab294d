//! mcp-server: a time-series analytics MCP server. [`build`] assembles the
//! Rocket application (the tests use it directly); [`served`] puts it behind
//! the public listener, as `mcp-server serve` runs it.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod analytics;
pub mod auth;
pub mod cache;
pub mod chart;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod fixtures;
pub mod gate;
pub mod ingest;
pub mod logging;
pub mod mcp;
pub mod metrics;
pub mod models;
pub mod routes;
pub mod schema;
pub mod store;
pub mod tools;

use std::sync::Arc;

use rocket::fairing::AdHoc;
use rocket::figment::Figment;
use rocket::tokio::task::spawn_blocking;
use rocket::{Build, Rocket};

use crate::cache::Cache;
use crate::config::Settings;
use crate::db::Db;
use crate::mcp::Mcp;
use crate::metrics::{HttpMetrics, Metrics};

/// The server as `mcp-server serve` runs it: Rocket on a loopback port of
/// its own, behind the [`gate`] that listens where the configuration says
/// (`ROCKET_ADDRESS`, `ROCKET_PORT`) and drops slow clients.
pub fn served() -> Result<Rocket<Build>, String> {
    let figment = Settings::figment();
    let config =
        rocket::Config::try_from(&figment).map_err(|e| format!("invalid configuration: {e}"))?;
    let public = std::net::SocketAddr::new(config.address, config.port);
    if !public.ip().is_loopback()
        && Settings::from_figment(&figment).is_ok_and(|s| !s.requires_auth())
    {
        log::warn!(
            "listening on {public} with no authentication: anyone who reaches it may read and write \
             every series; set MCP_OAUTH_ISSUER, MCP_AUTH_TOKENS_FILE or MCP_AUTH_TOKEN (docs/auth.md)"
        );
    }
    let inner = figment.merge(("address", "127.0.0.1")).merge(("port", 0));
    Ok(
        build(inner).attach(AdHoc::on_liftoff("Public listener", move |rocket| {
            Box::pin(async move {
                let upstream =
                    std::net::SocketAddr::new(rocket.config().address, rocket.config().port);
                // The settings were read and checked at ignite.
                let limits = rocket
                    .state::<Settings>()
                    .map(Settings::gate_limits)
                    .unwrap_or_else(|| Settings::default().gate_limits());
                let stop = rocket.shutdown();
                let metrics = rocket
                    .state::<Arc<Metrics>>()
                    .map_or_else(|| Arc::new(Metrics::new()), Arc::clone);
                rocket::tokio::spawn(async move {
                    if let Err(e) = gate::serve(public, upstream, limits, metrics, stop).await {
                        // Nothing was served: end the process with the reason.
                        log::error!("server did not start: {e}");
                        std::process::exit(1);
                    }
                });
            })
        })),
    )
}

/// The application with the given configuration (tests pass their own).
pub fn build(figment: Figment) -> Rocket<Build> {
    let metrics = Arc::new(Metrics::new());
    rocket::custom(figment)
        .manage(Arc::clone(&metrics))
        .attach(HttpMetrics(metrics))
        .attach(AdHoc::try_on_ignite("Settings", |rocket| async move {
            match Settings::from_figment(rocket.figment()) {
                Ok(settings) => Ok(rocket.manage(settings)),
                Err(e) => {
                    log::error!("{e}");
                    Err(rocket)
                }
            }
        }))
        // Ignite, not liftoff: liftoff runs once the listener is already
        // open, and nothing may be served before the schema is current.
        .attach(AdHoc::try_on_ignite(
            "Database and migrations",
            |rocket| async move {
                let Some(settings) = rocket.state::<Settings>().cloned() else {
                    return Err(rocket);
                };
                match spawn_blocking(move || db::prepare(&settings)).await {
                    Ok(Ok((pool, report))) => {
                        let Some(settings) = rocket.state::<Settings>() else {
                            return Err(rocket);
                        };
                        let db = Db::from_settings(pool, settings);
                        Ok(rocket.manage(db).manage(report))
                    }
                    Ok(Err(e)) => {
                        log::error!("start-up aborted: {e}");
                        Err(rocket)
                    }
                    Err(e) => {
                        log::error!("start-up aborted: database task failed: {e}");
                        Err(rocket)
                    }
                }
            },
        ))
        .attach(AdHoc::try_on_ignite("Cache", |rocket| async move {
            let Some(settings) = rocket.state::<Settings>() else {
                return Err(rocket);
            };
            match Cache::from_settings(settings) {
                Ok(cache) => Ok(rocket.manage(Arc::new(cache))),
                Err(e) => {
                    log::error!("start-up aborted: {e}");
                    Err(rocket)
                }
            }
        }))
        .attach(AdHoc::try_on_ignite("MCP", |rocket| async move {
            let parts = (
                rocket.state::<Settings>(),
                rocket.state::<Db>(),
                rocket.state::<Arc<Cache>>(),
                rocket.state::<Arc<Metrics>>(),
            );
            let (Some(settings), Some(db), Some(cache), Some(metrics)) = parts else {
                return Err(rocket);
            };
            let mcp = match protocol(settings, db, cache, metrics) {
                Ok(mcp) => Arc::new(mcp),
                Err(e) => {
                    log::error!("start-up aborted: {e}");
                    return Err(rocket);
                }
            };
            let probes = match db::health_pool(settings, routes::health::DB_WAIT) {
                Ok(probes) => probes,
                Err(e) => {
                    log::error!("start-up aborted: {e}");
                    return Err(rocket);
                }
            };
            let readiness = Arc::new(routes::health::Readiness::new(probes, Arc::clone(cache)));
            Ok(rocket.manage(mcp).manage(readiness))
        }))
        .attach(AdHoc::on_liftoff("Readiness snapshots", |rocket| {
            Box::pin(async move {
                if let Some(readiness) = rocket.state::<Arc<routes::health::Readiness>>() {
                    let readiness = Arc::clone(readiness);
                    rocket::tokio::spawn(async move {
                        let mut tick = rocket::tokio::time::interval(routes::health::EVERY);
                        tick.set_missed_tick_behavior(
                            rocket::tokio::time::MissedTickBehavior::Delay,
                        );
                        loop {
                            tick.tick().await;
                            readiness.refresh().await;
                        }
                    });
                }
            })
        }))
        .attach(AdHoc::on_liftoff(
            "Tokens file reload on SIGHUP",
            |rocket| {
                Box::pin(async move {
                    if let Some(mcp) = rocket.state::<Arc<Mcp>>()
                        && mcp.auth.tokens_file().is_some()
                    {
                        reload_tokens_on_sighup(Arc::clone(mcp));
                    }
                })
            },
        ))
        .attach(AdHoc::on_liftoff("Performance snapshots", |rocket| {
            Box::pin(async move {
                let every = rocket
                    .state::<Settings>()
                    .map(|s| s.metrics_snapshot_secs)
                    .unwrap_or(0);
                if let (Some(mcp), true) = (rocket.state::<Arc<Mcp>>(), every > 0) {
                    let mcp = Arc::clone(mcp);
                    rocket::tokio::spawn(async move {
                        let mut tick =
                            rocket::tokio::time::interval(std::time::Duration::from_secs(every));
                        tick.tick().await; // the first tick is immediate
                        loop {
                            tick.tick().await;
                            metrics::write_snapshot(&mcp.metrics, &mcp.db, &mcp.cache).await;
                        }
                    });
                }
            })
        }))
        .attach(AdHoc::on_shutdown(
            "Flush request log and metrics",
            |rocket| {
                Box::pin(async move {
                    if let Some(mcp) = rocket.state::<Arc<Mcp>>() {
                        mcp.log.flush().await;
                        metrics::write_snapshot(&mcp.metrics, &mcp.db, &mcp.cache).await;
                    }
                })
            },
        ))
        .mount("/", routes::routes())
        .mount("/", mcp::http::routes())
        .register("/", routes::catchers())
}

/// `kill -HUP`: read MCP_AUTH_TOKENS_FILE again, so tokens are added and
/// revoked without a restart. A bad file is logged and the old tokens stay.
fn reload_tokens_on_sighup(mcp: Arc<Mcp>) {
    #[cfg(unix)]
    {
        use rocket::tokio::signal::unix::{SignalKind, signal};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                log::warn!("tokens file: no SIGHUP handler ({e}); restart to reload it");
                return;
            }
        };
        rocket::tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                match mcp.auth.reload() {
                    Ok(n) => log::info!("tokens file reloaded: {n} static tokens accepted"),
                    Err(e) => {
                        log::error!("tokens file not reloaded, the previous tokens stay: {e}")
                    }
                }
            }
        });
    }
    #[cfg(not(unix))]
    drop(mcp);
}

/// The protocol core with every tool, prompt and resource (and the
/// conformance fixtures when configured), as both transports serve it.
pub fn protocol(
    settings: &Settings,
    db: &Db,
    cache: &Arc<Cache>,
    metrics: &Arc<Metrics>,
) -> Result<Mcp, String> {
    let auth = auth::Auth::from_settings(settings, Arc::clone(metrics))?;
    let mut catalog = mcp::server::Catalog::new(tools::all(), db.clone());
    if settings.mcp_conformance_fixtures {
        log::warn!("MCP_CONFORMANCE_FIXTURES is on: test tools, resources and prompts are exposed");
        fixtures::register(&mut catalog);
    }
    if settings.mcp_read_only {
        catalog.tools.retain(auth::Scopes::READ);
        log::info!("MCP_READ_ONLY is on: only the tools that read are served");
    }
    Ok(Mcp::new(
        settings,
        auth,
        catalog,
        db.clone(),
        Arc::clone(cache),
        Arc::clone(metrics),
    ))
}
