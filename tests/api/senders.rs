//! The real senders against the real binary: Prometheus 2.42 remote-writing
//! what it scrapes (its own `/metrics` and ours), the official InfluxDB
//! Python client in every precision, plain and gzip, and curl.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{ServerProcess, TestApp, TestDatabase, free_port};

const TOKEN: &str = "a-writer-token-for-the-senders";

/// The server the senders write to, taking `TOKEN` with every scope.
fn server(db: &TestDatabase) -> ServerProcess {
    ServerProcess::start(db, &[("MCP_AUTH_TOKEN", TOKEN), ("RUST_LOG", "warn")])
}

/// Waits (at most `secs`) until `sql`'s count reaches `want`.
pub fn until(db: &TestDatabase, sql: &str, want: i64, secs: u64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let n = db.count(sql);
        if n >= want || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Killed on drop.
pub struct Killed(Child);

/// Debian's Prometheus with `config` (the text of its prometheus.yml), its
/// API on `port`, its configuration, data and log (`prometheus.log`) in `dir`.
pub fn prometheus(dir: &Path, config: &str, port: u16) -> Killed {
    let file = dir.join("prometheus.yml");
    std::fs::write(&file, config).unwrap();
    Killed(
        Command::new("prometheus")
            .arg(format!("--config.file={}", file.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .expect("prometheus runs (apt-get install prometheus)"),
    )
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[rocket::async_test]
#[ignore = "needs Prometheus (Debian's prometheus package)"]
async fn prometheus_remote_writes_what_it_scrapes() {
    let db = TestDatabase::migrated();
    let server = server(&db);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // The README's block: the token in a file.
    let token = dir.path().join("mcp-write-token");
    std::fs::write(&token, TOKEN).unwrap();
    let config = format!(
        "global: {{scrape_interval: 1s}}
scrape_configs:
  - job_name: prometheus
    static_configs: [{{targets: ['127.0.0.1:{port}']}}]
  - job_name: mcp-server
    static_configs: [{{targets: ['127.0.0.1:{}']}}]
remote_write:
  - url: http://127.0.0.1:{}/api/v1/write
    authorization:
      credentials_file: {}
    queue_config: {{batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 1s}}
",
        server.port,
        server.port,
        token.display()
    );
    let log = dir.path().join("prometheus.log");
    let prometheus = prometheus(dir.path(), &config, port);
    let ups = "SELECT count(*) AS n FROM timeseries_series WHERE metric = 'up'";
    assert_eq!(until(&db, ups, 2, 60), 2, "both jobs' `up` arrived");
    // Our own request counter, scraped and written back: the writes so far.
    let writes = "SELECT count(*) AS n FROM timeseries_series
                   WHERE metric = 'mcp_http_requests_total'
                     AND tags @> '{\"route\": \"/api/v1/write\", \"status\": \"204\"}'";
    assert_eq!(until(&db, writes, 1, 30), 1);
    drop(prometheus);
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(
        !said.contains("non-recoverable"),
        "Prometheus dropped a batch:\n{said}"
    );

    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    let listed = app
        .call_tool(&session, "list_series", json!({ "metric": "up" }))
        .await;
    let series = listed["structuredContent"]["series"].as_array().unwrap();
    let mut jobs: Vec<&str> = series
        .iter()
        .map(|s| s["tags"]["job"].as_str().unwrap())
        .collect();
    jobs.sort();
    assert_eq!(jobs, ["mcp-server", "prometheus"], "{listed}");
    let ours = series
        .iter()
        .find(|s| s["tags"]["job"] == "mcp-server")
        .unwrap();
    assert_eq!(
        ours["tags"]["instance"],
        format!("127.0.0.1:{}", server.port)
    );
    let stats = app
        .call_tool(
            &session,
            "compute_statistics",
            json!({ "series": ours["series"] }),
        )
        .await;
    let s = &stats["structuredContent"];
    assert!(s["count"].as_i64().unwrap() >= 2, "{stats}");
    assert_eq!(
        (s["min"].as_f64(), s["max"].as_f64()),
        (Some(1.0), Some(1.0))
    );
    let build = app
        .call_tool(
            &session,
            "list_series",
            json!({ "metric": "prometheus_build_info" }),
        )
        .await;
    let version = build["structuredContent"]["series"][0]["tags"]["version"].clone();
    assert!(
        version.as_str().is_some_and(|v| v.starts_with("2.")),
        "{build}"
    );
}

/// A virtualenv with the senders' Python clients, made on first use.
fn python() -> PathBuf {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _one = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/senders");
    let python = here.join(".venv/bin/python");
    if !python.exists() {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(here.join(".venv"))
            .status()
            .expect("python3 runs");
        assert!(made.success(), "python3 -m venv failed");
    }
    let ok = Command::new(&python)
        .args(["-c", "import influxdb_client"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let installed = Command::new(&python)
            .args(["-m", "pip", "install", "-q", "-r"])
            .arg(here.join("requirements.txt"))
            .status()
            .expect("pip runs");
        assert!(
            installed.success(),
            "pip install -r tests/senders/requirements.txt failed"
        );
    }
    python
}

#[test]
fn the_influxdb_python_client_writes_in_every_precision_plain_and_gzip() {
    let db = TestDatabase::migrated();
    let server = server(&db);
    let seconds = 1_772_323_200i64; // 2026-03-01T00:00:00Z
    let out = Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/senders/influx_client.py"))
        .arg(format!("http://127.0.0.1:{}", server.port))
        .arg(TOKEN)
        .arg(seconds.to_string())
        .output()
        .expect("the client runs");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&said).unwrap();
    assert_eq!(report["written"].as_array().unwrap().len(), 8, "{report}");
    // Each precision and encoding: two fields, three points, at the same instants.
    assert_eq!(
        db.count("SELECT count(*) AS n FROM timeseries_series WHERE metric LIKE 'weather.%'"),
        16
    );
    let same_instants = format!(
        "SELECT count(*) AS n FROM timeseries_data
          WHERE tags->>'_measurement' = 'weather'
            AND time IN (to_timestamp({seconds}), to_timestamp({seconds} + 60), to_timestamp({seconds} + 120))"
    );
    assert_eq!(db.count(&same_instants), 48);
    assert_eq!(
        db.count("SELECT count(*) AS n FROM timeseries_data WHERE tags->>'_field' = 'humidity' AND value IN (40, 41, 42)"),
        24
    );
    // The batch with a string field: a 400 naming its line, nothing of it kept.
    let refused = &report["refused"];
    assert_eq!(refused["status"], 400, "{report}");
    assert_eq!(refused["body"]["code"], "invalid");
    assert!(
        refused["body"]["message"]
            .as_str()
            .unwrap()
            .starts_with("line 2: field note is a string"),
        "{report}"
    );
    assert_eq!(
        db.count("SELECT count(*) AS n FROM timeseries_data WHERE tags->>'station' = 'bad'"),
        0
    );
}

/// curl's answer: the status, then the body.
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_owned())
}

#[test]
fn curl_sends_gzip_bodies_and_bad_lines() {
    let db = TestDatabase::migrated();
    let server = server(&db);
    let dir = tempfile::tempdir().unwrap();
    let v2 = format!(
        "http://127.0.0.1:{}/api/v2/write?org=ops&bucket=metrics&precision=s",
        server.port
    );
    let token = format!("Authorization: Token {TOKEN}");
    let plain = dir.path().join("lines.txt");
    std::fs::write(
        &plain,
        "disk,host=a,path=/ used_percent=41.5 1772323200\n\
         disk,host=a,path=/ used_percent=41.7 1772323260\n\
         disk,host=a,path=/var used_percent=12 1772323200\n",
    )
    .unwrap();
    let gz = dir.path().join("lines.txt.gz");
    assert!(
        Command::new("gzip")
            .args(["-k", plain.to_str().unwrap()])
            .status()
            .unwrap()
            .success()
    );
    let body = format!("@{}", gz.display());
    let (code, said) = curl(&[
        "--data-binary",
        &body,
        "-H",
        "Content-Encoding: gzip",
        "-H",
        &token,
        &v2,
    ]);
    assert_eq!(code, 204, "{said}");
    assert_eq!(db.count("SELECT count(*) AS n FROM timeseries_data"), 3);

    let (code, said) = curl(&[
        "--data-binary",
        "disk,host=b used_percent=1 1772323200\ndisk,host=b used_percent=oops 1772323260\n",
        "-H",
        &token,
        &v2,
    ]);
    assert_eq!(code, 400, "{said}");
    let error: Value = serde_json::from_str(&said).unwrap();
    assert_eq!(error["code"], "invalid");
    assert!(
        error["message"].as_str().unwrap().starts_with("line 2:"),
        "{said}"
    );
    assert_eq!(db.count("SELECT count(*) AS n FROM timeseries_data"), 3);

    // InfluxDB 1.x clients send the token as a Basic password.
    let v1 = format!(
        "http://127.0.0.1:{}/write?db=metrics&precision=s",
        server.port
    );
    let user = format!("telegraf:{TOKEN}");
    let (code, said) = curl(&[
        "-u",
        &user,
        "--data-binary",
        "disk,host=c used_percent=3 1772323200",
        &v1,
    ]);
    assert_eq!(code, 204, "{said}");
    let (code, _) = curl(&[
        "--data-binary",
        "disk,host=d used_percent=4 1772323200",
        &v2,
    ]);
    assert_eq!(code, 401);
    assert_eq!(db.count("SELECT count(*) AS n FROM timeseries_data"), 4);
}
