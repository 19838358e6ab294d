//! The Prometheus API's discovery endpoints over what remote write stored:
//! in the request shapes Grafana's data source sends (its label browser
//! posts forms), with Prometheus' envelope and error codes, and read by
//! Debian's `promtool query labels|series`; and remote read, in process
//! and by a real Prometheus with `remote_read` pointed here.

use std::process::Command;

use mcp_server::ingest::remote_write::MetricMetadata;
use mcp_server::routes::remote_read::{LabelMatcher, Query, ReadRequest, ReadResponse};
use prost::Message;
use rocket::http::Method;
use serde_json::{Value, json};

use crate::helpers::{ServerProcess, TestApp, TestDatabase};
use crate::writes::{T0, described, remote_write, series};

/// Three series of two metrics, one described.
async fn written(app: &TestApp) {
    let body = described(
        vec![
            series(
                &[("__name__", "up"), ("job", "node"), ("instance", "a:9100")],
                &[(1.0, T0)],
            ),
            series(
                &[("__name__", "up"), ("job", "node"), ("instance", "b:9100")],
                &[(0.0, T0)],
            ),
            series(
                &[
                    ("__name__", "http_requests_total"),
                    ("job", "api"),
                    ("code", "500"),
                ],
                &[(3.0, T0)],
            ),
        ],
        vec![MetricMetadata {
            r#type: 1,
            metric_family_name: "http_requests_total".into(),
            help: "Requests served.".into(),
            unit: String::new(),
        }],
    );
    assert_eq!(remote_write(app, body).await.status, 204);
}

/// A form request to the Prometheus API: its status and JSON body.
pub async fn api(app: &TestApp, method: Method, path: &str, form: &str) -> (u16, Value) {
    let sent = app
        .request(
            method,
            path,
            form.as_bytes().to_vec(),
            &[("Content-Type", "application/x-www-form-urlencoded")],
        )
        .await;
    let body = serde_json::from_str(&sent.body)
        .unwrap_or_else(|e| panic!("{path} answered non-JSON ({e}): {}", sent.body));
    (sent.status, body)
}

#[rocket::async_test]
async fn labels_values_series_and_metadata_in_prometheus_shapes() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    written(&app).await;

    let (status, r) = api(&app, Method::Get, "/api/v1/labels", "").await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["status"], "success");
    assert_eq!(r["data"], json!(["__name__", "code", "instance", "job"]));
    // Grafana's label browser posts its selector as a form.
    let (_, r) = api(
        &app,
        Method::Post,
        "/api/v1/labels",
        "match%5B%5D=up&start=1772323200&end=1772326800",
    )
    .await;
    assert_eq!(r["data"], json!(["__name__", "instance", "job"]), "{r}");

    let (_, r) = api(&app, Method::Get, "/api/v1/label/__name__/values", "").await;
    assert_eq!(r["data"], json!(["http_requests_total", "up"]), "{r}");
    let (_, r) = api(
        &app,
        Method::Get,
        "/api/v1/label/instance/values?match[]=up%7Bjob%3D%22node%22%7D",
        "",
    )
    .await;
    assert_eq!(r["data"], json!(["a:9100", "b:9100"]), "{r}");

    let (_, r) = api(
        &app,
        Method::Post,
        "/api/v1/series",
        "match%5B%5D=%7Bjob%3D~%22api%7Cnode%22%2Cinstance%21%3D%22b%3A9100%22%7D",
    )
    .await;
    assert_eq!(
        r["data"],
        json!([
            { "__name__": "http_requests_total", "code": "500", "job": "api" },
            { "__name__": "up", "instance": "a:9100", "job": "node" },
        ]),
        "{r}"
    );

    // start and end keep the series with data in the span.
    for (start, end, listed) in [(T0 - 60_000, T0, 2), (T0 + 1, T0 + 3_600_000, 0)] {
        let (_, r) = api(
            &app,
            Method::Post,
            "/api/v1/series",
            &format!(
                "match%5B%5D=up&start={}&end={}",
                start as f64 / 1000.0,
                end as f64 / 1000.0
            ),
        )
        .await;
        assert_eq!(r["data"].as_array().map(Vec::len), Some(listed), "{r}");
    }
    let (_, r) = api(
        &app,
        Method::Get,
        "/api/v1/label/instance/values?match[]=up&start=2020-01-01T00:00:00Z&end=2020-01-02T00:00:00Z",
        "",
    )
    .await;
    assert_eq!(r["data"], json!([]), "{r}");

    let (_, r) = api(&app, Method::Get, "/api/v1/metadata", "").await;
    assert_eq!(
        r["data"],
        json!({ "http_requests_total": [{ "type": "counter", "help": "Requests served.", "unit": "" }] }),
        "{r}"
    );
    let (status, r) = api(&app, Method::Get, "/api/v1/status/buildinfo", "").await;
    assert_eq!(status, 200);
    assert!(r["data"]["version"].is_string(), "{r}");

    // Bad input: Prometheus' error envelope, never a 5xx.
    for (method, path, form, code) in [
        (Method::Get, "/api/v1/series", "", 400),
        (Method::Get, "/api/v1/series?match[]=up%7B", "", 400),
        (
            Method::Get,
            "/api/v1/series?match[]=%7Bjob%3D~%22(a%2B)%2B%24%22%7D",
            "",
            200,
        ),
        (Method::Get, "/api/v1/metadata?limit=x", "", 400),
        (Method::Get, "/api/v1/series?match[]=up&start=soon", "", 400),
    ] {
        let (status, r) = api(&app, method, path, form).await;
        assert_eq!(status, code, "{path}: {r}");
        if code != 200 {
            assert_eq!(r["status"], "error", "{path}: {r}");
            assert_eq!(r["errorType"], "bad_data", "{path}: {r}");
        }
    }
    let huge = format!("match%5B%5D={}", "a".repeat(1 << 20));
    let (status, r) = api(&app, Method::Post, "/api/v1/labels", &huge).await;
    assert_eq!(
        (status, r["errorType"].clone()),
        (400, json!("bad_data")),
        "{r}"
    );
    let many = "match%5B%5D=up&".repeat(65);
    let (status, r) = api(&app, Method::Post, "/api/v1/series", &many).await;
    assert_eq!(
        (status, r["errorType"].clone()),
        (400, json!("bad_data")),
        "{r}"
    );

    // With a token configured, reading needs it.
    let guarded = TestApp::try_spawn(
        crate::helpers::figment(&db.url, None).merge(("mcp_auth_token", "a-reader-token")),
    )
    .await
    .unwrap();
    let (status, r) = api(&guarded, Method::Get, "/api/v1/labels", "").await;
    assert_eq!(
        (status, r["errorType"].clone()),
        (401, json!("unauthorized")),
        "{r}"
    );
    let sent = guarded
        .request(
            Method::Get,
            "/api/v1/labels",
            vec![],
            &[("Authorization", "Bearer a-reader-token")],
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
}

/// `promtool query <what> http://127.0.0.1:<port> <args>`. Debian's 2.42
/// takes no HTTP client configuration here, so the server runs without a
/// token (the scope checks are the same code as for the requests above).
pub fn promtool(port: u16, what: &str, args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(["query", what])
        .arg(format!("http://127.0.0.1:{port}"))
        .args(args)
        .output()
        .expect("promtool runs (apt-get install prometheus)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {what} {args:?}: {said}");
    said
}

#[rocket::async_test]
#[ignore = "needs Prometheus (Debian's prometheus package)"]
async fn promtool_reads_labels_and_series() {
    let db = TestDatabase::migrated();
    written(&TestApp::spawn(&db, None).await).await;
    let server = ServerProcess::start(&db, &[("RUST_LOG", "warn")]);
    let values = promtool(server.port, "labels", &["instance"]);
    assert_eq!(
        values.split_whitespace().collect::<Vec<_>>(),
        ["a:9100", "b:9100"],
        "{values}"
    );
    let series = promtool(
        server.port,
        "series",
        &["--match", r#"up{instance="b:9100"}"#],
    );
    assert!(
        series.contains(r#"instance="b:9100""#) && !series.contains("a:9100"),
        "{series}"
    );
    server.stop();
}

fn read_request(queries: Vec<Query>) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&ReadRequest { queries }.encode_to_vec())
        .unwrap()
}

fn matcher(kind: i32, name: &str, value: &str) -> LabelMatcher {
    LabelMatcher {
        r#type: kind,
        name: name.into(),
        value: value.into(),
    }
}

const READ: [(&str, &str); 3] = [
    ("Content-Type", "application/x-protobuf"),
    ("Content-Encoding", "snappy"),
    ("X-Prometheus-Remote-Read-Version", "0.1.0"),
];

#[rocket::async_test]
async fn remote_read_answers_samples_and_refuses_garbage_with_4xx() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    written(&app).await;
    let query = |matchers| Query {
        start_timestamp_ms: T0 - 60_000,
        end_timestamp_ms: T0,
        matchers,
    };
    let sent = app
        .send(
            "/api/v1/read",
            read_request(vec![query(vec![
                matcher(0, "__name__", "up"),
                matcher(2, "instance", "a:.*|b:.*"),
            ])]),
            &READ,
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    assert!(
        sent.headers
            .iter()
            .any(|(k, v)| k == "Content-Type" && v == "application/x-protobuf"),
        "{:?}",
        sent.headers
    );
    // The body is bytes: the test client gives it lossily as text, so the
    // same request again, read as bytes.
    let response = app
        .client
        .post("/api/v1/read")
        .body(read_request(vec![query(vec![matcher(
            0, "__name__", "up",
        )])]))
        .dispatch()
        .await;
    let bytes = response.into_bytes().await.unwrap();
    let decoded = ReadResponse::decode(
        snap::raw::Decoder::new()
            .decompress_vec(&bytes)
            .unwrap()
            .as_slice(),
    )
    .unwrap();
    let series = &decoded.results[0].timeseries;
    assert_eq!(series.len(), 2, "{decoded:?}");
    let names: Vec<Vec<&str>> = series
        .iter()
        .map(|s| s.labels.iter().map(|l| l.name.as_str()).collect())
        .collect();
    assert_eq!(names[0], ["__name__", "instance", "job"], "sorted by name");
    assert_eq!(series[0].samples[0].timestamp, T0);
    assert_eq!(
        (series[0].samples[0].value, series[1].samples[0].value),
        (1.0, 0.0)
    );

    for (body, code) in [
        (b"garbage, not snappy".to_vec(), 400),
        (
            snap::raw::Encoder::new()
                .compress_vec(b"\xff\xff\xff")
                .unwrap(),
            400,
        ),
        // Matches every series: refused, as Prometheus does.
        (
            read_request(vec![query(vec![matcher(2, "job", ".*")])]),
            400,
        ),
        (read_request(vec![query(vec![matcher(7, "job", "x")])]), 400),
        (
            read_request(
                (0..17)
                    .map(|_| query(vec![matcher(0, "__name__", "up")]))
                    .collect(),
            ),
            400,
        ),
    ] {
        let sent = app.send("/api/v1/read", body, &READ).await;
        assert_eq!(sent.status, code, "{}", sent.body);
        assert!(!sent.body.is_empty());
    }
}

#[rocket::async_test]
#[ignore = "needs Prometheus (Debian's prometheus package)"]
async fn prometheus_reads_back_through_remote_read() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    // Recent samples, so that Prometheus' query reaches them.
    let now = chrono::Utc::now().timestamp_millis() / 1000 * 1000;
    let body = crate::writes::body(vec![
        series(
            &[
                ("__name__", "rr_up"),
                ("job", "node"),
                ("instance", "a:9100"),
            ],
            &[(1.0, now - 20_000), (1.0, now - 10_000)],
        ),
        series(
            &[
                ("__name__", "rr_up"),
                ("job", "node"),
                ("instance", "b:9100"),
            ],
            &[(0.0, now - 20_000), (3.0, now - 10_000)],
        ),
    ]);
    assert_eq!(remote_write(&app, body).await.status, 204);
    let server = ServerProcess::start(&db, &[("RUST_LOG", "warn")]);
    let dir = tempfile::tempdir().unwrap();
    let port = crate::helpers::free_port();
    let config = format!(
        "remote_read:\n  - url: http://127.0.0.1:{}/api/v1/read\n    read_recent: true\n",
        server.port
    );
    let _prometheus = crate::senders::prometheus(dir.path(), &config, port);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let ready = || {
        Command::new("curl")
            .args(["-fsS", "--max-time", "2"])
            .arg(format!("http://127.0.0.1:{port}/-/ready"))
            .output()
            .is_ok_and(|o| o.status.success())
    };
    while !ready() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let at = now - 5_000;
    let mut got = crate::promql::prom(port, "rr_up", at);
    got.sort_by(|a, b| a.0["instance"].as_str().cmp(&b.0["instance"].as_str()));
    assert_eq!(
        got.iter()
            .map(|(m, v)| (m["instance"].clone(), *v))
            .collect::<Vec<_>>(),
        [(json!("a:9100"), 1.0), (json!("b:9100"), 3.0)],
        "{got:?}"
    );
    let sum = crate::promql::prom(port, "sum by (job) (max_over_time(rr_up[1m]))", at);
    assert_eq!(sum.len(), 1, "{sum:?}");
    assert_eq!(sum[0].1, 4.0, "{sum:?}");
    server.stop();
}
