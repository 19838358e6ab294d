//! Test fixtures: a fresh database per test (copied from a migrated template),
//! the real application over it, and a private Redis when a test needs to
//! stop one.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel_migrations::MigrationHarness;
use mcp_server::config::Settings;
use mcp_server::db::migrations::MIGRATIONS;
use rand::Rng;
use rocket::figment::Figment;
use rocket::local::asynchronous::Client;

/// The server to create test databases on; any database on it works.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn url_for(db: &str) -> String {
    let mut url = url::Url::parse(&admin_url()).expect("TEST_DATABASE_URL is a URL");
    url.set_path(&format!("/{db}"));
    url.into()
}

pub fn admin() -> PgConnection {
    PgConnection::establish(&admin_url())
        .unwrap_or_else(|e| panic!("PostgreSQL at {} is needed for tests: {e}", admin_url()))
}

pub fn project_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The template is named after the migrations' contents, so a changed
/// migration gets a new template and never a stale one.
fn template_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let root = project_dir().join("migrations");
        let mut files = Vec::new();
        collect(&root, &mut files);
        files.sort();
        let mut h = DefaultHasher::new();
        for f in files {
            // Relative paths: every checkout of the same migrations shares a template.
            f.strip_prefix(&root).unwrap_or(&f).hash(&mut h);
            std::fs::read(&f).expect("readable migration").hash(&mut h);
        }
        format!("mcp_test_tpl_{:016x}", h.finish())
    })
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("migrations dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out)
        } else {
            out.push(path)
        }
    }
}

fn exists(conn: &mut PgConnection, db: &str) -> bool {
    diesel::sql_query("SELECT 1 AS n FROM pg_database WHERE datname = $1")
        .bind::<Text, _>(db)
        .execute(conn)
        .expect("query pg_database")
        == 1
}

/// Builds the migrated template once per migrations state. Test processes
/// may race (nextest, parallel runs): a cross-process advisory lock
/// serialises them, and the template appears under its name only complete.
fn ensure_template() -> &'static str {
    static READY: OnceLock<()> = OnceLock::new();
    let name = template_name();
    READY.get_or_init(|| {
        let mut conn = admin();
        diesel::sql_query("SELECT pg_advisory_lock(7171717171)")
            .execute(&mut conn)
            .unwrap();
        if !exists(&mut conn, name) {
            let building = format!("{name}_building");
            diesel::sql_query(format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
                .execute(&mut conn)
                .unwrap();
            diesel::sql_query(format!("CREATE DATABASE {building}"))
                .execute(&mut conn)
                .unwrap();
            {
                let mut tpl = PgConnection::establish(&url_for(&building)).unwrap();
                tpl.run_pending_migrations(MIGRATIONS)
                    .expect("migrations apply to the template");
            }
            diesel::sql_query(format!("ALTER DATABASE {building} RENAME TO {name}"))
                .execute(&mut conn)
                .unwrap();
        }
        diesel::sql_query("SELECT pg_advisory_unlock(7171717171)")
            .execute(&mut conn)
            .unwrap();
    });
    name
}

/// A database of its own for one test, dropped (with force) afterwards.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    fn named() -> Self {
        let suffix: u64 = rand::rng().random();
        let name = format!("mcp_test_{suffix:016x}");
        TestDatabase {
            url: url_for(&name),
            name,
        }
    }

    /// A name only: the database does not exist yet.
    pub fn unborn() -> Self {
        Self::named()
    }

    /// Created, with no migrations applied.
    pub fn empty() -> Self {
        let db = Self::named();
        diesel::sql_query(format!("CREATE DATABASE {}", db.name))
            .execute(&mut admin())
            .unwrap();
        db
    }

    /// Created from the migrated template: the current schema, no rows.
    pub fn migrated() -> Self {
        let template = ensure_template();
        let db = Self::named();
        diesel::sql_query(format!("CREATE DATABASE {} TEMPLATE {template}", db.name))
            .execute(&mut admin())
            .unwrap();
        db
    }

    pub fn conn(&self) -> PgConnection {
        PgConnection::establish(&self.url).unwrap()
    }

    pub fn count(&self, sql: &str) -> i64 {
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        diesel::sql_query(sql)
            .get_result::<N>(&mut self.conn())
            .unwrap()
            .n
    }

    /// Public tables other than Diesel's bookkeeping, sorted.
    pub fn tables(&self) -> Vec<String> {
        #[derive(QueryableByName)]
        struct T {
            #[diesel(sql_type = Text)]
            table_name: String,
        }
        diesel::sql_query(
            "SELECT table_name::text AS table_name FROM information_schema.tables \
             WHERE table_schema = 'public' AND table_name <> '__diesel_schema_migrations' \
             ORDER BY table_name",
        )
        .load::<T>(&mut self.conn())
        .unwrap()
        .into_iter()
        .map(|t| t.table_name)
        .collect()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = diesel::sql_query(sql).execute(&mut admin()) {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

pub const SIX_TABLES: [&str; 6] = [
    "analysis_results",
    "mcp_request_logs",
    "model_training_logs",
    "performance_metrics",
    "statistics_data",
    "timeseries_data",
];

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

/// A Redis server of the test's own, on a free port, so the test can stop
/// and restart it. Killed on drop.
pub struct OwnRedis {
    pub port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    pub fn start() -> OwnRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = OwnRedis { port, child: None };
        redis.restart();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One HTTP exchange with `/mcp`.
pub struct Exchange {
    pub status: u16,
    pub content_type: String,
    pub session: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Exchange {
    /// The JSON-RPC messages in the body: one for JSON, each `data:` line's
    /// for SSE.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        if self.content_type.starts_with("text/event-stream") {
            self.body
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .filter(|d| !d.trim().is_empty())
                .map(|d| serde_json::from_str(d.trim()).expect("SSE data is JSON"))
                .collect()
        } else if self.body.is_empty() {
            Vec::new()
        } else {
            vec![
                serde_json::from_str(&self.body)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body)),
            ]
        }
    }

    /// The last message: the response.
    pub fn response(&self) -> serde_json::Value {
        self.messages().pop().expect("a response message")
    }
}

pub const ACCEPT_BOTH: (&str, &str) = ("Accept", "application/json, text/event-stream");

impl TestApp {
    pub async fn mcp(
        &self,
        method: rocket::http::Method,
        body: &str,
        headers: &[(&str, &str)],
    ) -> Exchange {
        let mut req = self.client.req(method, "/mcp").body(body);
        for (k, v) in headers {
            req.add_header(rocket::http::Header::new(k.to_string(), v.to_string()));
        }
        let response = req.dispatch().await;
        let get = |name: &str| response.headers().get_one(name).map(str::to_owned);
        let status = response.status().code;
        let content_type = get("Content-Type").unwrap_or_default();
        let session = get("Mcp-Session-Id");
        let headers = response
            .headers()
            .iter()
            .map(|h| (h.name().to_string(), h.value().to_string()))
            .collect();
        let body = response.into_string().await.unwrap_or_default();
        Exchange {
            status,
            content_type,
            session,
            headers,
            body,
        }
    }

    /// POSTs a JSON-RPC message with the headers a conforming client sends.
    pub async fn post(&self, session: Option<&str>, message: &serde_json::Value) -> Exchange {
        let mut headers = vec![ACCEPT_BOTH, ("Content-Type", "application/json")];
        if let Some(s) = session {
            headers.push(("Mcp-Session-Id", s));
            headers.push(("MCP-Protocol-Version", "2025-11-25"));
        }
        self.mcp(rocket::http::Method::Post, &message.to_string(), &headers)
            .await
    }

    /// initialize + notifications/initialized; returns the session id.
    pub async fn session(&self) -> String {
        let init = serde_json::json!({
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": { "protocolVersion": "2025-11-25", "capabilities": {},
                        "clientInfo": { "name": "api-tests", "version": "1.0" } }
        });
        let ex = self.post(None, &init).await;
        assert_eq!(ex.status, 200, "{}", ex.body);
        let session = ex.session.expect("initialize issues a session id");
        let note = serde_json::json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
        assert_eq!(self.post(Some(&session), &note).await.status, 202);
        session
    }

    /// A request on `session`; returns the final JSON-RPC response.
    pub async fn rpc(
        &self,
        session: &str,
        id: i64,
        method: &str,
        params: serde_json::Value,
    ) -> serde_json::Value {
        let msg =
            serde_json::json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        let ex = self.post(Some(session), &msg).await;
        assert_eq!(ex.status, 200, "{method}: {}", ex.body);
        let response = ex.response();
        assert_eq!(response["id"], id, "{response}");
        response
    }

    /// `tools/call`; returns the CallToolResult.
    pub async fn call_tool(
        &self,
        session: &str,
        name: &str,
        arguments: serde_json::Value,
    ) -> serde_json::Value {
        let response = self
            .rpc(
                session,
                1,
                "tools/call",
                serde_json::json!({ "name": name, "arguments": arguments }),
            )
            .await;
        assert!(response.get("error").is_none(), "{name}: {response}");
        response["result"].clone()
    }

    pub fn mcp_state(&self) -> &std::sync::Arc<mcp_server::mcp::Mcp> {
        self.client.rocket().state().expect("MCP state")
    }
}

/// A TCP forwarder whose link can be cut and restored: a network outage
/// between the server and Redis, with Redis itself (and its data) intact.
pub struct CutProxy {
    pub port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl CutProxy {
    pub fn start(target: u16) -> CutProxy {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let open = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (c, o) = (cut.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if c.load(Ordering::SeqCst) {
                    continue; // dropped: connection closed at once
                }
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let mut list = o.lock().unwrap();
                list.push(client.try_clone().unwrap());
                list.push(server.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        CutProxy { port, cut, open }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    pub fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}
