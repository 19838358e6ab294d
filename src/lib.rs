//! mcp-server: a time-series analytics MCP server. [`build`] assembles the
//! Rocket application; `main` and the tests both use it.

pub mod cache;
pub mod cli;
pub mod config;
pub mod db;
pub mod models;
pub mod routes;
pub mod schema;

use rocket::fairing::AdHoc;
use rocket::figment::Figment;
use rocket::tokio::task::spawn_blocking;
use rocket::{Build, Rocket};

use crate::cache::Cache;
use crate::config::Settings;
use crate::db::Db;

/// The application with configuration from `Rocket.toml` and the environment.
pub fn rocket() -> Rocket<Build> {
    build(Settings::figment())
}

/// The application with the given configuration (tests pass their own).
pub fn build(figment: Figment) -> Rocket<Build> {
    rocket::custom(figment)
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
                        let timeout = rocket.state::<Settings>().map(Settings::checkout_timeout);
                        let db = Db::new(pool, timeout.unwrap_or_default());
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
                Ok(cache) => Ok(rocket.manage(std::sync::Arc::new(cache))),
                Err(e) => {
                    log::error!("start-up aborted: {e}");
                    Err(rocket)
                }
            }
        }))
        .mount("/", routes::routes())
        .register("/", routes::catchers())
}
