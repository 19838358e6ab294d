//! The real application over a test database, driven in-process.

use rocket::figment::Figment;
use rocket::local::asynchronous::Client;

use mcp_server::config::Settings;

use super::TestDatabase;

/// The application's configuration for a test: its database, and Redis only
/// when given.
pub fn figment(database_url: &str, redis: Option<&str>) -> Figment {
    Settings::figment()
        .merge(("database_url", database_url))
        .merge(("redis_url", redis.unwrap_or("")))
        .merge(("db_startup_timeout_secs", 10))
        .merge(("log_level", "off"))
}

pub struct TestApp {
    pub client: Client,
}

impl TestApp {
    pub async fn spawn(db: &TestDatabase, redis: Option<&str>) -> TestApp {
        Self::try_spawn(figment(&db.url, redis))
            .await
            .expect("application starts")
    }

    pub async fn try_spawn(figment: Figment) -> Result<TestApp, rocket::Error> {
        let client = Client::untracked(mcp_server::build(figment)).await?;
        Ok(TestApp { client })
    }

    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let response = self.client.get(path).dispatch().await;
        let status = response.status().code;
        let body = response.into_string().await.unwrap_or_default();
        let json = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{path} answered non-JSON ({e}): {body}"));
        (status, json)
    }
}
