//! PromQL on `/api/v1/query` and `/api/v1/query_range` over what remote
//! write stored: Grafana's data-source calls in its documented shapes,
//! Prometheus-style errors for bad input, `promtool query instant|range`,
//! and the conformance table of docs/prometheus.md, asserted against
//! Debian's Prometheus 2.42 evaluating the same expressions over the same
//! samples (it reads them from here with `remote_read`).

use std::collections::BTreeMap;
use std::process::Command;

use rocket::http::Method;
use serde_json::{Value, json};

use crate::helpers::{ServerProcess, TestApp, TestDatabase, free_port};
use crate::prom_api::{api, promtool};
use crate::writes::{T0, body, remote_write, series};

/// Samples every 15 s (plus a deterministic jitter under 1 s) for 40
/// minutes from T0.
const SAMPLES: i64 = 160;

fn at(i: i64) -> i64 {
    T0 + i * 15_000 + (i * 7919) % 1000
}

/// The fixture, written through remote write as a collector would:
/// counters (one resets at the 80th sample), gauges, a classic histogram,
/// and an `up` per instance.
async fn fixture(app: &TestApp) {
    let mut all = Vec::new();
    for (instance, code, per, reset) in [
        ("a", "200", 7.0, false),
        ("a", "500", 1.0, false),
        ("b", "200", 5.0, false),
        ("b", "500", 2.0, true),
    ] {
        let samples: Vec<(f64, i64)> = (0..SAMPLES)
            .map(|i| {
                let n = if reset && i >= 80 { i - 80 } else { i + 100 };
                (per * n as f64 + (i % 2) as f64, at(i))
            })
            .collect();
        all.push(series(
            &[
                ("__name__", "cf_requests_total"),
                ("job", "api"),
                ("instance", instance),
                ("code", code),
            ],
            &samples,
        ));
    }
    for (k, instance) in ["a", "b", "c"].iter().enumerate() {
        let k = k as i64;
        let samples: Vec<(f64, i64)> = (0..SAMPLES)
            .map(|i| (((i * (k + 3)) % 17) as f64 + k as f64 * 0.5, at(i)))
            .collect();
        all.push(series(
            &[
                ("__name__", "cf_load"),
                ("job", "api"),
                ("instance", instance),
            ],
            &samples,
        ));
        all.push(series(
            &[
                ("__name__", "cf_up"),
                ("job", "api"),
                ("instance", instance),
            ],
            &(0..SAMPLES)
                .map(|i| ((k + 1) as f64, at(i)))
                .collect::<Vec<_>>(),
        ));
    }
    for (le, per) in [("0.1", 3), ("0.5", 7), ("1", 9), ("+Inf", 10)] {
        let samples: Vec<(f64, i64)> = (0..SAMPLES)
            .map(|i| ((500 + per * i + (i * i) % per) as f64, at(i)))
            .collect();
        all.push(series(
            &[
                ("__name__", "cf_latency_seconds_bucket"),
                ("job", "api"),
                ("le", le),
            ],
            &samples,
        ));
    }
    assert_eq!(remote_write(app, body(all)).await.status, 204);
}

fn secs(ms: i64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

fn encoded(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

#[rocket::async_test]
async fn grafanas_calls_and_bad_input_in_prometheus_shapes() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    fixture(&app).await;

    // Save & test: Grafana's health check is an instant query of 1+1.
    let (status, r) = api(
        &app,
        Method::Get,
        &format!(
            "/api/v1/query?{}",
            encoded(&[("query", "1+1"), ("time", "1772323200.5")])
        ),
        "",
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        r,
        json!({"status": "success", "data": {"resultType": "scalar", "result": [1772323200.5, "2"]}})
    );

    // A dashboard panel: a range query posted as a form, with step.
    let end = at(140);
    let form = encoded(&[
        ("query", "sum by (code) (rate(cf_requests_total[5m]))"),
        ("start", &secs(end - 600_000)),
        ("end", &secs(end)),
        ("step", "60"),
    ]);
    let (status, r) = api(&app, Method::Post, "/api/v1/query_range", &form).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["data"]["resultType"], "matrix");
    let result = r["data"]["result"].as_array().unwrap();
    assert_eq!(
        result
            .iter()
            .map(|s| s["metric"].clone())
            .collect::<Vec<_>>(),
        [json!({"code": "200"}), json!({"code": "500"})]
    );
    for s in result {
        let values = s["values"].as_array().unwrap();
        assert_eq!(values.len(), 11, "{s}");
        assert!(values[0][0].is_number() && values[0][1].is_string(), "{s}");
    }
    // An instant vector, as the query inspector shows it.
    let (_, r) = api(
        &app,
        Method::Post,
        "/api/v1/query",
        &encoded(&[("query", "cf_up{instance=\"b\"}"), ("time", &secs(end))]),
    )
    .await;
    assert_eq!(
        r["data"],
        json!({"resultType": "vector", "result": [{
            "metric": {"__name__": "cf_up", "instance": "b", "job": "api"},
            "value": [end as f64 / 1000.0, "2"],
        }]}),
        "{r}"
    );

    // A read-only server serves reads.
    let read_only =
        TestApp::try_spawn(crate::helpers::figment(&db.url, None).merge(("mcp_read_only", true)))
            .await
            .unwrap();
    let (status, r) = api(
        &read_only,
        Method::Get,
        &format!(
            "/api/v1/query?{}",
            encoded(&[("query", "sum(cf_up)"), ("time", &secs(end))])
        ),
        "",
    )
    .await;
    assert_eq!(
        (status, &r["data"]["result"][0]["value"][1]),
        (200, &json!("6")),
        "{r}"
    );

    // Past the samples a query may read: 422, naming the setting.
    let small = TestApp::try_spawn(
        crate::helpers::figment(&db.url, None).merge(("query_max_samples", 100)),
    )
    .await
    .unwrap();
    let (status, r) = api(
        &small,
        Method::Get,
        &format!(
            "/api/v1/query?{}",
            encoded(&[
                ("query", "sum(rate(cf_requests_total[1h]))"),
                ("time", &secs(end))
            ])
        ),
        "",
    )
    .await;
    assert_eq!(
        (status, r["errorType"].as_str()),
        (422, Some("execution")),
        "{r}"
    );
    assert!(
        r["error"].as_str().unwrap().contains("QUERY_MAX_SAMPLES"),
        "{r}"
    );

    // Bad input: the envelope's error, never a 5xx.
    let range = |q: &str, step: &str| {
        format!(
            "/api/v1/query_range?{}",
            encoded(&[
                ("query", q),
                ("start", &secs(T0)),
                ("end", &secs(T0 + 86_400_000)),
                ("step", step)
            ])
        )
    };
    let instant = |q: &str| {
        format!(
            "/api/v1/query?{}",
            encoded(&[("query", q), ("time", &secs(end))])
        )
    };
    for (path, code, kind, says) in [
        (
            instant("sum(cf_load"),
            400,
            "bad_data",
            "invalid expression",
        ),
        (instant("nope(cf_load)"), 400, "bad_data", "nope"),
        (
            instant("label_replace(cf_load, \"a\", \"$1\", \"instance\", \"(.*)\")"),
            400,
            "bad_data",
            "label_replace",
        ),
        (
            instant("rate(cf_load[5m:1m])"),
            400,
            "bad_data",
            "subqueries",
        ),
        (
            instant("cf_load{instance=~\"((a+)+)+x{1000}{1000}\"}"),
            400,
            "bad_data",
            "regex",
        ),
        (instant(""), 400, "bad_data", "query"),
        (range("cf_load", "1"), 400, "bad_data", "11000 points"),
        (range("cf_load", "0"), 400, "bad_data", "step"),
        (range("cf_load", "soon"), 400, "bad_data", "step"),
        (
            "/api/v1/query?query=cf_load&time=yesterday".into(),
            400,
            "bad_data",
            "time",
        ),
        (
            instant("cf_load / on() cf_up"),
            422,
            "execution",
            "many-to-many",
        ),
    ] {
        let (status, r) = api(&app, Method::Get, &path, "").await;
        assert_eq!(
            (status, r["errorType"].as_str()),
            (code, Some(kind)),
            "{path}: {r}"
        );
        assert_eq!(r["status"], "error");
        assert!(r["error"].as_str().unwrap().contains(says), "{path}: {r}");
    }
}

/// `promtool query instant|range` against our API, as an operator checks a
/// server from a shell.
#[rocket::async_test]
#[ignore = "needs Prometheus (Debian's prometheus package)"]
async fn promtool_queries_instant_and_range() {
    let db = TestDatabase::migrated();
    fixture(&TestApp::spawn(&db, None).await).await;
    let server = ServerProcess::start(&db, &[("RUST_LOG", "warn")]);
    let end = at(140);
    let said = promtool(
        server.port,
        "instant",
        &["--time", &secs(end), "sum by (instance) (cf_up)"],
    );
    assert!(
        said.contains("{instance=\"c\"} => 3 @[") && said.lines().count() == 3,
        "{said}"
    );
    let said = promtool(
        server.port,
        "range",
        &[
            "--start",
            &secs(end - 120_000),
            "--end",
            &secs(end),
            "--step",
            "1m",
            "max(cf_up)",
        ],
    );
    assert_eq!(said.matches("3 @[").count(), 3, "{said}");
    server.stop();
}

/// A conformance row of docs/prometheus.md: the expression, our answer and
/// Prometheus' at the table's time, and the relative tolerance.
struct Row {
    expr: String,
    ours: f64,
    theirs: f64,
    tolerance: f64,
}

fn value(text: &str) -> f64 {
    match text.trim() {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        t => t
            .parse()
            .unwrap_or_else(|_| panic!("{t:?} is not a number")),
    }
}

fn table() -> Vec<Row> {
    let doc = include_str!("../../docs/prometheus.md");
    let start = doc
        .find("<!-- conformance -->")
        .expect("the table's marker");
    doc[start..]
        .lines()
        .skip(3)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            Row {
                expr: cells[0].trim_matches('`').to_owned(),
                ours: value(cells[1]),
                theirs: value(cells[2]),
                tolerance: value(cells[3]),
            }
        })
        .collect()
}

fn close(a: f64, b: f64, tolerance: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= tolerance * a.abs().max(b.abs())
}

/// `data` of a GET to `path` on 127.0.0.1:`port`.
fn get(port: u16, path: &str, params: &[(&str, &str)]) -> Value {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "--get"])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .args(
            params
                .iter()
                .flat_map(|(k, v)| ["--data-urlencode".to_owned(), format!("{k}={v}")]),
        )
        .output()
        .expect("curl runs");
    let body: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{path} {params:?}: {out:?}"));
    assert_eq!(body["status"], "success", "{path} {params:?}: {body}");
    body["data"].clone()
}

/// A matrix as {labels: [(t, value)]}.
fn matrix(data: &Value) -> BTreeMap<String, Vec<(f64, f64)>> {
    data["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["metric"].to_string(),
                s["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| (p[0].as_f64().unwrap(), value(p[1].as_str().unwrap())))
                    .collect(),
            )
        })
        .collect()
}

/// The one value of an instant query's answer.
fn single(expr: &str, data: &Value) -> f64 {
    match data["resultType"].as_str() {
        Some("scalar") => value(data["result"][1].as_str().unwrap()),
        _ => {
            let r = data["result"].as_array().unwrap();
            assert_eq!(r.len(), 1, "{expr}: one element in the table: {data}");
            value(r[0]["value"][1].as_str().unwrap())
        }
    }
}

#[rocket::async_test]
#[ignore = "needs Prometheus (Debian's prometheus package)"]
async fn the_conformance_table_holds_against_prometheus() {
    let db = TestDatabase::migrated();
    fixture(&TestApp::spawn(&db, None).await).await;
    let server = ServerProcess::start(&db, &[("RUST_LOG", "warn")]);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = format!(
        "remote_read:\n  - url: http://127.0.0.1:{}/api/v1/read\n    read_recent: true\n",
        server.port
    );
    let _prometheus = crate::senders::prometheus(dir.path(), &config, port);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !Command::new("curl")
        .args(["-fsS", "--max-time", "2"])
        .arg(format!("http://127.0.0.1:{port}/-/ready"))
        .output()
        .is_ok_and(|o| o.status.success())
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // The table's time, and a range over it at an off-grid step.
    let t = secs(at(140) + 500);
    let (start, end) = (secs(at(40)), secs(at(150)));
    let print = std::env::var("PROMQL_CONFORMANCE").is_ok_and(|v| v == "print");
    let rows = table();
    assert!(rows.len() >= 30, "{} rows", rows.len());
    let mut printed = String::new();
    for row in &rows {
        let instant = [("query", row.expr.as_str()), ("time", t.as_str())];
        let ours = single(&row.expr, &get(server.port, "/api/v1/query", &instant));
        let theirs = single(&row.expr, &get(port, "/api/v1/query", &instant));
        printed += &format!(
            "| `{}` | {ours} | {theirs} | {:e} |\n",
            row.expr, row.tolerance
        );
        assert!(
            close(ours, theirs, row.tolerance),
            "{}: ours {ours}, Prometheus {theirs}",
            row.expr
        );
        if !print {
            assert!(
                close(ours, row.ours, 1e-12) && close(theirs, row.theirs, 1e-12),
                "{}: the table says {} and {}, now {ours} and {theirs} \
                 (PROMQL_CONFORMANCE=print prints the table)",
                row.expr,
                row.ours,
                row.theirs
            );
        }
        // The whole range too, every series and step: a step narrower
        // than the windows (every sample read), and one wider (only the
        // windows read).
        for step in ["37", "900"] {
            same_range(row, server.port, port, [start.as_str(), end.as_str(), step]);
        }
    }
    if print {
        println!("{printed}");
    }
    server.stop();
}

/// A range query's matrix from us and from Prometheus, every series and
/// step within the row's tolerance.
fn same_range(row: &Row, ours: u16, prometheus: u16, [start, end, step]: [&str; 3]) {
    let range = [
        ("query", row.expr.as_str()),
        ("start", start),
        ("end", end),
        ("step", step),
    ];
    let ours = matrix(&get(ours, "/api/v1/query_range", &range));
    let theirs = matrix(&get(prometheus, "/api/v1/query_range", &range));
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "{}",
        row.expr
    );
    for (labels, points) in &ours {
        let other = &theirs[labels];
        assert_eq!(
            points.iter().map(|p| p.0).collect::<Vec<_>>(),
            other.iter().map(|p| p.0).collect::<Vec<_>>(),
            "{} {labels}: the steps",
            row.expr
        );
        for (p, o) in points.iter().zip(other) {
            assert!(
                close(p.1, o.1, row.tolerance),
                "{} {labels} at {} (step {step}): ours {}, Prometheus {}",
                row.expr,
                p.0,
                p.1,
                o.1
            );
        }
    }
}

/// The dashboard of docs/grafana: Prometheus scrapes the server's own
/// `/metrics` and remote-writes them to it, and every panel's query is
/// answered from what arrived, as Grafana would ask it.
#[rocket::async_test]
#[ignore = "needs Prometheus (Debian's prometheus package)"]
async fn the_grafana_dashboard_reads_the_servers_own_metrics() {
    let db = TestDatabase::migrated();
    let server = ServerProcess::start(&db, &[("RUST_LOG", "warn")]);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = format!(
        "global: {{scrape_interval: 1s}}
scrape_configs:
  - job_name: mcp-server
    static_configs: [{{targets: ['127.0.0.1:{0}']}}]
remote_write:
  - url: http://127.0.0.1:{0}/api/v1/write
    queue_config: {{batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 1s}}
",
        server.port
    );
    let _prometheus = crate::senders::prometheus(dir.path(), &config, port);
    let scraped =
        "SELECT count(*) AS n FROM timeseries_data d JOIN timeseries_series c USING (series_name)
                    WHERE c.metric = 'mcp_http_requests_total' AND c.tags->>'route' = '/metrics'";
    assert!(
        crate::senders::until(&db, scraped, 8, 60) >= 8,
        "Prometheus wrote the server's metrics back"
    );

    let dashboard: Value =
        serde_json::from_str(include_str!("../../docs/grafana/mcp-server.json")).unwrap();
    let now = chrono::Utc::now().timestamp();
    let (start, end) = ((now - 120).to_string(), now.to_string());
    let mut answered = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let data = get(
                server.port,
                "/api/v1/query_range",
                &[
                    ("query", expr),
                    ("start", &start),
                    ("end", &end),
                    ("step", "5"),
                ],
            );
            assert_eq!(data["resultType"], "matrix", "{expr}: {data}");
            // Tool calls show once an agent calls one; none here.
            if !expr.contains("tools/call") {
                assert!(
                    !data["result"].as_array().unwrap().is_empty(),
                    "{}: {expr} is empty",
                    panel["title"]
                );
            }
            answered += 1;
        }
    }
    assert_eq!(answered, 8);
    server.stop();
}
