//! Plain HTTP routes: `/`, `/health`, `/live`, `/metrics`, the OAuth
//! protected-resource metadata, the collectors' write endpoints, the
//! Prometheus API's discovery endpoints and remote read, and JSON error
//! pages.

pub mod health;
mod index;
mod metrics;
mod oauth;
mod prom_api;
mod prom_query;
pub mod remote_read;
pub mod write;

use rocket::serde::json::{Json, Value, json};
use rocket::{Catcher, Request, Route, catch, catchers, http::Status};

pub fn routes() -> Vec<Route> {
    rocket::routes![
        index::index,
        health::health,
        health::live,
        metrics::metrics,
        oauth::for_mcp,
        oauth::at_root,
        write::prometheus,
        write::influx_v2,
        write::influx_v1,
        prom_api::labels_get,
        prom_api::labels_post,
        prom_api::label_values,
        prom_api::series_get,
        prom_api::series_post,
        prom_api::metadata,
        prom_api::buildinfo,
        prom_query::instant_get,
        prom_query::instant_post,
        prom_query::range_get,
        prom_query::range_post,
        remote_read::read
    ]
}

pub fn catchers() -> Vec<Catcher> {
    catchers![default_catcher]
}

/// Every error Rocket itself produces is JSON too: clients never see HTML.
#[catch(default)]
fn default_catcher(status: Status, request: &Request<'_>) -> Json<Value> {
    Json(json!({
        "error": {
            "status": status.code,
            "reason": status.reason().unwrap_or("error"),
            "path": request.uri().path().as_str(),
        }
    }))
}
