use rocket::get;
use rocket::serde::json::{Json, Value, json};

#[get("/")]
pub fn index() -> Json<Value> {
    Json(json!({
        "name": env!("CARGO_PKG_NAME"),
        "version": env!("CARGO_PKG_VERSION"),
        "description": env!("CARGO_PKG_DESCRIPTION"),
        "links": {
            "health": "/health",
            "live": "/live",
            "mcp": "/mcp",
        }
    }))
}
