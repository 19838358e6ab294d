//! `aggregate_series` against Prometheus' own PromQL engine, on the same
//! samples: Debian's Prometheus 2.42 scrapes a fixture exporter (two
//! counters, one of which resets; four gauges; a classic histogram) every
//! second and remote-writes here; then the same questions go to its HTTP
//! API and to our tool. The window's edges fall between scrapes, so both
//! read the same samples. Tolerances (docs/mcp.md): rate, *_over_time,
//! sum/avg/max/topk, quantile, stddev and histogram_quantile agree to 1e-9
//! relative; Prometheus' increase is extrapolated to the window's edges, so
//! it equals our rate × the window, and ours (the counted increase) lies
//! below it by at most two scrape intervals' worth.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{ServerProcess, TestApp, TestDatabase, free_port};
use crate::senders::prometheus;

/// The scrape at which `fx_requests_total{code="500"}` restarts from 1.
const RESET: u64 = 12;
/// Scrapes taken before the comparison.
const SCRAPES: u64 = 24;

/// The exporter's page at its `n`th scrape.
fn page(n: u64) -> String {
    let n500 = if n < RESET {
        1000 + 2 * n
    } else {
        1 + 3 * (n - RESET)
    };
    let mut s = format!(
        "# TYPE fx_requests_total counter\n\
         fx_requests_total{{code=\"200\"}} {}\n\
         fx_requests_total{{code=\"500\"}} {n500}\n\
         # TYPE fx_load gauge\n",
        1000 + 5 * n
    );
    for cpu in 0..4u64 {
        s += &format!(
            "fx_load{{cpu=\"{cpu}\"}} {}\n",
            10 * cpu + (n * (cpu + 1)) % 5
        );
    }
    s += "# TYPE fx_latency_seconds histogram\n";
    for (le, per) in [("0.1", 3), ("0.5", 7), ("1", 9), ("+Inf", 10)] {
        s += &format!(
            "fx_latency_seconds_bucket{{le=\"{le}\"}} {}\n",
            5000 + per * n
        );
    }
    s += &format!(
        "fx_latency_seconds_sum {}\nfx_latency_seconds_count {}\n",
        2.5 * n as f64,
        5000 + 10 * n
    );
    s
}

/// Serves `page(n)` for the nth request, until dropped.
struct Exporter {
    port: u16,
    served: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Exporter {
    fn start() -> Exporter {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (served, stop) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (s, halt) = (Arc::clone(&served), Arc::clone(&stop));
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !halt.load(Ordering::Relaxed) && Instant::now() < deadline {
                let Ok((mut conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                conn.set_nonblocking(false).unwrap();
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let body = page(s.fetch_add(1, Ordering::SeqCst));
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Exporter { port, served, stop }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// An instant query through Prometheus' HTTP API: (labels, value) pairs.
pub fn prom(port: u16, query: &str, at_ms: i64) -> Vec<(Value, f64)> {
    let out = Command::new("curl")
        .args(["-fsS", "--max-time", "10", "--get"])
        .arg(format!("http://127.0.0.1:{port}/api/v1/query"))
        .args(["--data-urlencode", &format!("query={query}")])
        .args([
            "--data-urlencode",
            &format!("time={:.3}", at_ms as f64 / 1000.0),
        ])
        .output()
        .expect("curl runs");
    let body: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{query}: {out:?}"));
    assert_eq!(body["status"], "success", "{query}: {body}");
    body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["metric"].clone(),
                r["value"][1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[rocket::async_test]
#[ignore = "needs Prometheus (Debian's prometheus package)"]
async fn aggregate_series_agrees_with_prometheus_on_the_same_samples() {
    let db = TestDatabase::migrated();
    let server = ServerProcess::start(&db, &[("RUST_LOG", "warn")]);
    let exporter = Exporter::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = format!(
        "global: {{scrape_interval: 1s}}
scrape_configs:
  - job_name: fixture
    static_configs: [{{targets: ['127.0.0.1:{}']}}]
remote_write:
  - url: http://127.0.0.1:{}/api/v1/write
    queue_config: {{batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 1s}}
",
        exporter.port, server.port
    );
    let _prometheus = prometheus(dir.path(), &config, port);
    // Every scrape, and the last one remote-written here.
    let samples =
        "SELECT count(*) AS n FROM timeseries_data d JOIN timeseries_series c USING (series_name)
                    WHERE c.metric = 'fx_requests_total' AND c.tags->>'code' = '200'";
    let deadline = Instant::now() + Duration::from_secs(90);
    while (exporter.served.load(Ordering::SeqCst) < SCRAPES
        || db.count(samples) < SCRAPES as i64 - 1)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        db.count(samples) >= SCRAPES as i64 - 1,
        "Prometheus wrote {} samples",
        db.count(samples)
    );

    // The scrape times, and the sample where the 500s reset.
    let times: Vec<i64> = {
        use diesel::prelude::*;
        #[derive(QueryableByName)]
        struct T {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            ms: i64,
        }
        diesel::sql_query(
            "SELECT (extract(epoch FROM d.time) * 1000)::bigint AS ms
               FROM timeseries_data d JOIN timeseries_series c USING (series_name)
              WHERE c.metric = 'fx_requests_total' AND c.tags->>'code' = '500' ORDER BY d.time",
        )
        .load::<T>(&mut db.conn())
        .unwrap()
        .into_iter()
        .map(|t| t.ms)
        .collect()
    };
    let values = db.count(
        "SELECT count(*) AS n FROM timeseries_data d JOIN timeseries_series c USING (series_name)
          WHERE c.metric = 'fx_requests_total' AND c.tags->>'code' = '500' AND d.value < 100",
    );
    let reset = times.len() - values as usize;
    assert!(
        reset >= 6 && reset + 5 < times.len(),
        "reset at {reset} of {}",
        times.len()
    );
    // The window (T − 10 s, T] with both edges at least 200 ms from any
    // scrape, T between two scrapes a few after the reset: the reset inside.
    let clear = |edge: i64| times.iter().all(|t| (t - edge).abs() >= 200);
    let at = (reset + 4..(reset + 9).min(times.len() - 1))
        .map(|k| (times[k] + times[k + 1]) / 2)
        .find(|&at| clear(at) && clear(at - 10_000))
        .unwrap_or_else(|| panic!("no window with both edges clear of the scrapes: {times:?}"));
    assert!(
        times
            .iter()
            .filter(|&&t| t > at - 10_000 && t <= at)
            .count()
            >= 8,
        "{times:?}"
    );
    let start = chrono::DateTime::from_timestamp_millis(at - 10_000).unwrap();
    let end = chrono::DateTime::from_timestamp_millis(at).unwrap();
    assert!(times[reset] > at - 10_000, "the reset is inside the window");

    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    let ours = |args: Value| {
        let (app, session) = (&app, &session);
        async move {
            let mut args = args;
            args["start"] = json!(start.to_rfc3339());
            args["end"] = json!(end.to_rfc3339());
            let r = app
                .call_tool(session, "aggregate_series", args.clone())
                .await;
            assert_ne!(r["isError"], true, "{args}: {r}");
            r["structuredContent"]["groups"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| (g["labels"].clone(), g["value"].as_f64().unwrap()))
                .collect::<Vec<(Value, f64)>>()
        }
    };
    let same = |what: &str, ours: &[(Value, f64)], theirs: &[(Value, f64)]| {
        assert_eq!(
            ours.len(),
            theirs.len(),
            "{what}: ours {ours:?}, Prometheus {theirs:?}"
        );
        for (o, t) in ours {
            let p = theirs
                .iter()
                .find(|(l, _)| l == o)
                .unwrap_or_else(|| panic!("{what}: {o}: {theirs:?}"));
            assert!(close(*t, p.1), "{what} {o}: ours {t}, Prometheus {}", p.1);
        }
    };

    let rate = ours(json!({"selector": "fx_requests_total", "per_series": "rate", "across": "sum", "by": ["code"]})).await;
    same(
        "rate",
        &rate,
        &prom(port, "sum by (code) (rate(fx_requests_total[10s]))", at),
    );
    // Prometheus extrapolates increase to the window's edges: our rate × 10 s.
    let theirs = prom(port, "sum by (code) (increase(fx_requests_total[10s]))", at);
    let scaled: Vec<(Value, f64)> = rate.iter().map(|(l, v)| (l.clone(), v * 10.0)).collect();
    same("increase = rate × window", &scaled, &theirs);
    let increase = ours(json!({"selector": "fx_requests_total", "per_series": "increase", "across": "sum", "by": ["code"]})).await;
    for (labels, v) in &increase {
        let p = theirs.iter().find(|(l, _)| l == labels).unwrap().1;
        assert!(
            *v <= p + 1e-9 && p <= v * 10.0 / 8.0,
            "{labels}: ours {v}, Prometheus {p}"
        );
    }
    same(
        "avg_over_time",
        &ours(json!({"selector": "fx_load", "per_series": "avg", "across": "avg", "by": ["cpu"]}))
            .await,
        &prom(port, "avg by (cpu) (avg_over_time(fx_load[10s]))", at),
    );
    same(
        "topk",
        &ours(json!({"selector": "fx_load", "per_series": "max", "across": "max", "by": ["cpu"], "topk": 2})).await,
        &prom(port, "topk(2, max by (cpu) (max_over_time(fx_load[10s])))", at),
    );
    same(
        "sum of count_over_time",
        &ours(json!({"selector": "fx_load", "per_series": "count", "across": "sum"})).await,
        &prom(port, "sum(count_over_time(fx_load[10s]))", at),
    );
    same(
        "quantile",
        &ours(json!({"selector": "fx_load", "per_series": "last", "across": "quantile", "q": 0.3}))
            .await,
        &prom(port, "quantile(0.3, last_over_time(fx_load[10s]))", at),
    );
    same(
        "stddev",
        &ours(json!({"selector": "fx_load", "per_series": "min", "across": "stddev"})).await,
        &prom(port, "stddev(min_over_time(fx_load[10s]))", at),
    );
    same(
        "histogram_quantile",
        &ours(
            json!({"selector": "fx_latency_seconds_bucket", "per_series": "rate",
                     "across": "histogram_quantile", "q": 0.75, "by": ["le"]}),
        )
        .await,
        &prom(
            port,
            "histogram_quantile(0.75, sum by (le) (rate(fx_latency_seconds_bucket[10s])))",
            at,
        ),
    );
}
