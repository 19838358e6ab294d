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

    /// Folds every tail written through this application into the
    /// rollups now, waiting for writers, as the background fold does a
    /// moment later; returns how many series moved (once per day folded).
    pub async fn fold(&self) -> usize {
        let folder = &self.mcp_state().ingest.folder;
        folder
            .fold(folder.limit(), true)
            .await
            .expect("the fold runs")
            .moves
    }

    /// [`TestApp::fold`] until no series has a tail left to fold: the
    /// background fold may have taken some of them (from a write's wake or
    /// the invalidation log) and be folding them still.
    pub async fn fold_all(&self) -> usize {
        let state = self.mcp_state();
        let mut moved = 0;
        for _ in 0..300 {
            moved += self.fold().await;
            let until = state.ingest.folder.limit();
            let left = state
                .db
                .run(move |conn| mcp_server::store::rollups::unfolded(conn, until, 1))
                .await
                .expect("the catalog reads");
            if left.is_empty() {
                return moved;
            }
            rocket::tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("tails still unfolded after 30 s");
    }

    /// A POST of raw bytes to `path` with `headers`: the status, the
    /// response's headers and its body.
    pub async fn send(&self, path: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> Sent {
        self.request(rocket::http::Method::Post, path, body, headers)
            .await
    }

    /// Any request, as [`TestApp::send`].
    pub async fn request(
        &self,
        method: rocket::http::Method,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Sent {
        let mut req = self.client.req(method, path.to_owned()).body(body);
        for (k, v) in headers {
            req.add_header(rocket::http::Header::new(k.to_string(), v.to_string()));
        }
        let response = req.dispatch().await;
        let status = response.status().code;
        let headers = response
            .headers()
            .iter()
            .map(|h| (h.name().to_string(), h.value().to_string()))
            .collect();
        let body = response.into_string().await.unwrap_or_default();
        Sent {
            status,
            headers,
            body,
        }
    }

    /// `/metrics` in the Prometheus text format.
    pub async fn metrics_text(&self) -> String {
        let response = self.client.get("/metrics").dispatch().await;
        assert_eq!(response.status().code, 200);
        response.into_string().await.unwrap_or_default()
    }

    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let response = self.client.get(path).dispatch().await;
        let status = response.status().code;
        let body = response.into_string().await.unwrap_or_default();
        let json = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{path} answered non-JSON ({e}): {body}"));
        (status, json)
    }

    /// `/health` once it satisfies `done` (it is a snapshot refreshed every
    /// second, so a change shows within about that); panics after 10 s.
    pub async fn health_until(
        &self,
        done: impl Fn(u16, &serde_json::Value) -> bool,
    ) -> (u16, serde_json::Value) {
        let mut last = (0, serde_json::Value::Null);
        for _ in 0..100 {
            last = self.get_json("/health").await;
            if done(last.0, &last.1) {
                return last;
            }
            rocket::tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("/health never got there; last: {} {}", last.0, last.1);
    }
}

/// What [`TestApp::send`] got back.
#[derive(Debug)]
pub struct Sent {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Sent {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real `mcp-server serve` binary on a free port (killed on drop), for
/// what only the process shows: its listener, its logs.
pub struct ServerProcess {
    pub port: u16,
    child: std::process::Child,
}

impl ServerProcess {
    /// Starts it over `db` with `env` added, and waits (bounded) until
    /// `/health` answers.
    pub fn start(db: &TestDatabase, env: &[(&str, &str)]) -> ServerProcess {
        Self::start_on(db, free_port(), env)
    }

    /// [`ServerProcess::start`] on `port` (known before it starts).
    pub fn start_on(db: &TestDatabase, port: u16, env: &[(&str, &str)]) -> ServerProcess {
        use std::process::{Command, Stdio};
        let child = Command::new(env!("CARGO_BIN_EXE_mcp-server"))
            .arg("serve")
            .env("DATABASE_URL", &db.url)
            .env("ROCKET_PORT", port.to_string())
            .env_remove("REDIS_URL")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mcp-server runs");
        let server = ServerProcess { port, child };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not listen"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        server
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops it and returns everything it logged.
    pub fn stop(mut self) -> String {
        use std::io::Read;
        let _ = self.child.kill();
        let mut logs = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut logs);
        }
        if let Some(mut o) = self.child.stdout.take() {
            let _ = o.read_to_string(&mut logs);
        }
        let _ = self.child.wait();
        logs
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
