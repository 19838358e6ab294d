//! The collectors' write endpoints through the real application: Prometheus
//! remote write and InfluxDB line protocol land series with their labels,
//! answer as their senders expect, and refuse hostile bodies whole.

use std::io::Write;

use mcp_server::ingest::remote_write::{Label, MetricMetadata, Sample, TimeSeries, WriteRequest};
use prost::Message;
use serde_json::{Value, json};

use crate::helpers::{Sent, TestApp, TestDatabase};

pub const REMOTE_WRITE: [(&str, &str); 3] = [
    ("Content-Type", "application/x-protobuf"),
    ("Content-Encoding", "snappy"),
    ("X-Prometheus-Remote-Write-Version", "0.1.0"),
];

/// A series of `labels` (`__name__` first) with samples (value, ms).
pub fn series(labels: &[(&str, &str)], samples: &[(f64, i64)]) -> TimeSeries {
    TimeSeries {
        labels: labels
            .iter()
            .map(|(n, v)| Label {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect(),
        samples: samples
            .iter()
            .map(|&(value, timestamp)| Sample { value, timestamp })
            .collect(),
        histograms: vec![],
    }
}

/// A remote-write body: the request, protobuf, snappy.
pub fn body(timeseries: Vec<TimeSeries>) -> Vec<u8> {
    described(timeseries, vec![])
}

/// The same, with metric metadata as Prometheus sends it.
pub fn described(timeseries: Vec<TimeSeries>, metadata: Vec<MetricMetadata>) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(
            &WriteRequest {
                timeseries,
                metadata,
            }
            .encode_to_vec(),
        )
        .unwrap()
}

pub async fn remote_write(app: &TestApp, body: Vec<u8>) -> Sent {
    app.send("/api/v1/write", body, &REMOTE_WRITE).await
}

/// 2026-03-01T00:00:00Z in milliseconds.
pub const T0: i64 = 1_772_323_200_000;

async fn list(app: &TestApp, session: &str, args: Value) -> Vec<Value> {
    let r = app.call_tool(session, "list_series", args).await;
    r["structuredContent"]["series"].as_array().unwrap().clone()
}

#[rocket::async_test]
async fn remote_write_lands_series_with_their_labels_and_a_retry_changes_nothing() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    let write = || {
        body(vec![
            series(
                &[("__name__", "up"), ("job", "node"), ("instance", "a:9100")],
                &[(1.0, T0), (0.0, T0 + 15_000), (1.0, T0 + 30_000)],
            ),
            series(
                &[("__name__", "up"), ("job", "node"), ("instance", "b:9100")],
                &[(1.0, T0), (1.0, T0 + 15_000)],
            ),
            series(
                &[
                    ("instance", "a:9100"),
                    ("__name__", "node_load1"),
                    ("job", "node"),
                ],
                &[(0.5, T0), (0.75, T0 + 15_000)],
            ),
        ])
    };
    let sent = remote_write(&app, write()).await;
    assert_eq!(sent.status, 204, "{}", sent.body);
    assert_eq!(db.count("SELECT count(*) AS n FROM timeseries_data"), 7);

    let ups = list(&app, &session, json!({ "metric": "up" })).await;
    assert_eq!(ups.len(), 2, "{ups:?}");
    assert!(
        ups.iter()
            .all(|s| s["series"].as_str().unwrap().starts_with("up/"))
    );
    let a = list(
        &app,
        &session,
        json!({ "metric": "up", "tags": { "instance": "a:9100" } }),
    )
    .await;
    assert_eq!(a.len(), 1);
    assert_eq!(
        a[0]["tags"],
        json!({ "__name__": "up", "instance": "a:9100", "job": "node" })
    );
    assert_eq!(a[0]["points"], 3);
    let node = list(&app, &session, json!({ "tags": { "job": "node" } })).await;
    assert_eq!(node.len(), 3);

    let name = a[0]["series"].as_str().unwrap();
    let stats = app
        .call_tool(&session, "compute_statistics", json!({ "series": name }))
        .await;
    let s = &stats["structuredContent"];
    assert_eq!(
        (s["count"].as_i64(), s["min"].as_f64()),
        (Some(3), Some(0.0))
    );

    // Prometheus retries what it was not told was written: the same
    // samples replace themselves.
    assert_eq!(remote_write(&app, write()).await.status, 204);
    assert_eq!(db.count("SELECT count(*) AS n FROM timeseries_data"), 7);
    let metrics = app.metrics_text().await;
    assert!(
        metrics
            .contains(r#"mcp_ingest_samples_total{outcome="accepted",protocol="prometheus"} 14"#),
        "{metrics}"
    );
}

#[rocket::async_test]
async fn a_write_invalidates_cached_figures_and_tells_subscribers() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    let labels = [("__name__", "temp"), ("room", "a")];
    let first = remote_write(&app, body(vec![series(&labels, &[(20.0, T0)])])).await;
    assert_eq!(first.status, 204);
    let name = list(&app, &session, json!({ "metric": "temp" })).await[0]["series"]
        .as_str()
        .unwrap()
        .to_owned();
    let stats = json!({ "series": name });
    app.call_tool(&session, "compute_statistics", stats.clone())
        .await;
    let cached = app
        .call_tool(&session, "compute_statistics", stats.clone())
        .await;
    assert_eq!(cached["structuredContent"]["cached"], true);

    let mut heard = app.mcp_state().events.subscribe();
    let second = remote_write(&app, body(vec![series(&labels, &[(22.0, T0 + 60_000)])])).await;
    assert_eq!(second.status, 204);
    let fresh = app.call_tool(&session, "compute_statistics", stats).await;
    assert_eq!(fresh["structuredContent"]["cached"], false, "{fresh}");
    assert_eq!(fresh["structuredContent"]["count"], 2);
    let event = rocket::tokio::time::timeout(std::time::Duration::from_secs(5), heard.recv())
        .await
        .expect("an event within 5 s")
        .unwrap();
    assert!(
        event.updated().contains(&format!("timeseries://{name}")),
        "{event:?}"
    );
}

/// A 4xx that says why, and nothing written.
fn refused(sent: &Sent, status: u16, says: &str) {
    assert_eq!(sent.status, status, "{}", sent.body);
    assert!(sent.body.contains(says), "{says:?} not in {}", sent.body);
    assert!(
        sent.body.len() < 2000,
        "a short reason: {}",
        sent.body.len()
    );
}

#[rocket::async_test]
async fn hostile_remote_write_bodies_get_a_4xx_and_write_nothing() {
    let db = TestDatabase::migrated();
    // NaN and ±Inf refused, as an operator may choose (the default skips them).
    let app = TestApp::try_spawn(
        crate::helpers::figment(&db.url, None).merge(("ingest_non_finite", "reject")),
    )
    .await
    .unwrap();
    let up = [("__name__", "up"), ("job", "x")];

    refused(
        &remote_write(&app, b"plain protobuf, not snappy".to_vec()).await,
        400,
        "snappy",
    );
    // A snappy bomb: 100 kB that inflates to 1 GiB, refused from its header.
    let mut bomb = Vec::new();
    let mut n = 1u64 << 30;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            bomb.push(byte);
            break;
        }
        bomb.push(byte | 0x80);
    }
    bomb.extend(std::iter::repeat_n(0u8, 100_000));
    refused(&remote_write(&app, bomb).await, 413, "inflates");
    refused(
        &remote_write(
            &app,
            snap::raw::Encoder::new()
                .compress_vec(&[0x0a, 0xff, 0xff, 0xff, 0x0f])
                .unwrap(),
        )
        .await,
        400,
        "not a protobuf WriteRequest",
    );
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let sent = remote_write(
            &app,
            body(vec![series(&up, &[(1.0, T0), (bad, T0 + 1000)])]),
        )
        .await;
        refused(&sent, 400, "only finite values");
    }
    refused(
        &remote_write(&app, body(vec![series(&up, &[(1.0, 300_000_000_000_000)])])).await,
        400,
        "outside the years 1 to 9999",
    );
    let long = "l".repeat(100_000);
    refused(
        &remote_write(
            &app,
            body(vec![series(
                &[("__name__", "up"), (long.as_str(), "v")],
                &[(1.0, T0)],
            )]),
        )
        .await,
        400,
        "longer than 1024 bytes",
    );
    refused(
        &remote_write(&app, body(vec![series(&[("job", "x")], &[(1.0, T0)])])).await,
        400,
        "no __name__",
    );
    // A million distinct series in one request: refused, none kept.
    let million: Vec<TimeSeries> = (0..1_000_000)
        .map(|i| {
            let id = i.to_string();
            series(&[("__name__", "m"), ("id", id.as_str())], &[(1.0, T0)])
        })
        .collect();
    refused(
        &remote_write(&app, body(million)).await,
        413,
        "distinct series in one request",
    );

    assert_eq!(db.count("SELECT count(*) AS n FROM timeseries_data"), 0);
    assert_eq!(db.count("SELECT count(*) AS n FROM timeseries_series"), 0);
    // Nothing a body held became a metric label.
    let metrics = app.metrics_text().await;
    let ingest: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("mcp_ingest_samples_total{"))
        .collect();
    assert!(ingest.len() <= 3, "{ingest:?}");
    let write_routes = metrics
        .lines()
        .filter(|l| l.starts_with("mcp_http_requests_total{") && l.contains("/api/v1/write"))
        .count();
    assert!(write_routes <= 3, "one per status: {metrics}");
    assert!(!metrics.contains("lll"), "no label name leaked");
}

#[rocket::async_test]
async fn staleness_markers_and_nan_are_skipped_and_the_rest_written() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let stale = f64::from_bits(mcp_server::ingest::remote_write::STALE_NAN);
    let samples = [
        (1.0, T0),
        (stale, T0 + 1000),
        (f64::NAN, T0 + 2000),
        (f64::INFINITY, T0 + 3000),
        (2.0, T0 + 4000),
    ];
    let sent = remote_write(&app, body(vec![series(&[("__name__", "g")], &samples)])).await;
    assert_eq!(sent.status, 204, "{}", sent.body);
    assert_eq!(db.count("SELECT count(*) AS n FROM timeseries_data"), 2);
    let metrics = app.metrics_text().await;
    for (outcome, n) in [("accepted", 2), ("skipped", 3)] {
        let line =
            format!(r#"mcp_ingest_samples_total{{outcome="{outcome}",protocol="prometheus"}} {n}"#);
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
}

fn gzip(text: &str) -> Vec<u8> {
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(text.as_bytes()).unwrap();
    z.finish().unwrap()
}

#[rocket::async_test]
async fn line_protocol_in_every_precision_plain_or_gzip() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    let seconds = 1_772_323_200i64;
    for (precision, scale, gz) in [
        ("s", 1, false),
        ("ms", 1_000, true),
        ("us", 1_000_000, false),
        ("ns", 1_000_000_000, true),
    ] {
        let text = format!(
            "cpu,host=a,precision={precision} usage_idle=99.5,usage_user=0.25,cores=8i,online=true {}\n\
             cpu,host=a,precision={precision} usage_idle=98.5 {}\n",
            seconds * scale,
            (seconds + 10) * scale
        );
        let (bytes, mut headers) = if gz {
            (gzip(&text), vec![("Content-Encoding", "gzip")])
        } else {
            (text.into_bytes(), vec![])
        };
        headers.push(("Content-Type", "text/plain; charset=utf-8"));
        let path = format!("/api/v2/write?org=o&bucket=b&precision={precision}");
        let sent = app.send(&path, bytes, &headers).await;
        assert_eq!(sent.status, 204, "{precision}: {}", sent.body);
    }
    let idle = list(
        &app,
        &session,
        json!({ "metric": "cpu.usage_idle", "tags": { "precision": "ms" } }),
    )
    .await;
    assert_eq!(idle.len(), 1, "{idle:?}");
    assert_eq!(idle[0]["points"], 2);
    assert_eq!(idle[0]["first_time"], "2026-03-01T00:00:00Z");
    assert_eq!(
        idle[0]["tags"],
        json!({ "_measurement": "cpu", "_field": "usage_idle", "host": "a", "precision": "ms" })
    );
    // One series per field: four fields in four precisions, and the
    // integer and the boolean as numbers.
    assert_eq!(db.count("SELECT count(*) AS n FROM timeseries_series"), 16);
    assert_eq!(
        db.count("SELECT count(*) AS n FROM timeseries_data WHERE tags->>'_field' = 'cores' AND value = 8"),
        4
    );
    assert_eq!(
        db.count("SELECT count(*) AS n FROM timeseries_data WHERE tags->>'_field' = 'online' AND value = 1"),
        4
    );
}

#[rocket::async_test]
async fn a_partly_bad_batch_writes_nothing_and_names_its_first_bad_line() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let lines = "m v=1 1\nm v=2 2\nm,host=a v=3 3\nm note=\"a string\" 4\nm v= 5\n";
    let sent = app
        .send("/api/v2/write?precision=s", lines.as_bytes().to_vec(), &[])
        .await;
    assert_eq!(sent.status, 400, "{}", sent.body);
    let error: Value = serde_json::from_str(&sent.body).unwrap();
    assert_eq!(error["code"], "invalid");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.starts_with("line 4: field note is a string"),
        "{message}"
    );
    assert_eq!(db.count("SELECT count(*) AS n FROM timeseries_data"), 0);
    // The 1.x path answers in 1.x's words.
    let v1 = app
        .send(
            "/write?db=x&precision=s",
            b"m v=1 1\nnonsense\n".to_vec(),
            &[],
        )
        .await;
    assert_eq!(v1.status, 400);
    let error: Value = serde_json::from_str(&v1.body).unwrap();
    assert!(
        error["error"].as_str().unwrap().starts_with("line 2:"),
        "{v1:?}"
    );
    let bad_precision = app
        .send("/api/v2/write?precision=h", b"m v=1 1\n".to_vec(), &[])
        .await;
    assert_eq!(bad_precision.status, 400);
    assert_eq!(db.count("SELECT count(*) AS n FROM timeseries_data"), 0);
}

#[rocket::async_test]
async fn a_gzip_body_that_inflates_past_the_limit_is_refused() {
    let db = TestDatabase::migrated();
    let app = TestApp::try_spawn(
        crate::helpers::figment(&db.url, None).merge(("ingest_max_decoded_mib", 1)),
    )
    .await
    .unwrap();
    // 16 MiB of text in 50 kB.
    let bomb = gzip(&"m v=1 1\n".repeat(2_000_000));
    assert!(bomb.len() < 100_000);
    let sent = app
        .send(
            "/api/v2/write?precision=s",
            bomb,
            &[("Content-Encoding", "gzip")],
        )
        .await;
    assert_eq!(sent.status, 413, "{}", sent.body);
    assert!(sent.body.contains("inflates past"), "{}", sent.body);
    assert_eq!(db.count("SELECT count(*) AS n FROM timeseries_data"), 0);
}

#[rocket::async_test]
async fn the_write_endpoints_take_the_tokens_of_mcp_and_their_own_schemes() {
    let db = TestDatabase::migrated();
    let dir = tempfile::tempdir().unwrap();
    let (writer, writer_line) = mcp_server::auth::tokens::new_token(
        mcp_server::auth::Scopes::READ | mcp_server::auth::Scopes::WRITE,
        "telegraf",
    );
    let (reader, reader_line) =
        mcp_server::auth::tokens::new_token(mcp_server::auth::Scopes::READ, "grafana");
    let file = dir.path().join("tokens");
    std::fs::write(&file, format!("{writer_line}\n{reader_line}\n")).unwrap();
    let app = TestApp::try_spawn(
        crate::helpers::figment(&db.url, None)
            .merge(("mcp_auth_tokens_file", file.to_str().unwrap())),
    )
    .await
    .unwrap();
    let line = |v: i32| format!("m v={v} {v}\n").into_bytes();
    let v2 = "/api/v2/write?precision=s";
    let missing = app.send(v2, line(1), &[]).await;
    assert_eq!(missing.status, 401);
    assert!(missing.header("WWW-Authenticate").is_some());
    assert_eq!(
        serde_json::from_str::<Value>(&missing.body).unwrap()["code"],
        "unauthorized"
    );
    let token = format!("Token {writer}");
    assert_eq!(
        app.send(v2, line(1), &[("Authorization", &token)])
            .await
            .status,
        204
    );
    let bearer = format!("Bearer {writer}");
    assert_eq!(
        app.send(v2, line(2), &[("Authorization", &bearer)])
            .await
            .status,
        204
    );
    use base64::Engine;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("telegraf:{writer}"))
    );
    assert_eq!(
        app.send("/write?precision=s", line(3), &[("Authorization", &basic)])
            .await
            .status,
        204
    );
    let query = format!("/write?precision=s&u=telegraf&p={writer}");
    assert_eq!(app.send(&query, line(4), &[]).await.status, 204);
    let read_only = format!("Token {reader}");
    let forbidden = app
        .send(v2, line(5), &[("Authorization", &read_only)])
        .await;
    assert_eq!(forbidden.status, 403);
    assert!(
        forbidden
            .header("WWW-Authenticate")
            .is_some_and(|c| c.contains("insufficient_scope")),
        "{forbidden:?}"
    );
    let prometheus = app.send("/api/v1/write", body(vec![]), &REMOTE_WRITE).await;
    assert_eq!(prometheus.status, 401);
    assert_eq!(db.count("SELECT count(*) AS n FROM timeseries_data"), 4);
    // A browser page cannot write through a visitor's loopback server.
    let cross = app
        .send(
            v2,
            line(6),
            &[
                ("Authorization", &token),
                ("Origin", "https://evil.example"),
            ],
        )
        .await;
    assert_eq!(cross.status, 403);
}

#[rocket::async_test]
async fn a_read_only_server_takes_no_writes() {
    let db = TestDatabase::migrated();
    let app =
        TestApp::try_spawn(crate::helpers::figment(&db.url, None).merge(("mcp_read_only", true)))
            .await
            .unwrap();
    let sent = remote_write(
        &app,
        body(vec![series(&[("__name__", "up")], &[(1.0, T0)])]),
    )
    .await;
    refused(&sent, 403, "read-only");
    let lp = app
        .send("/api/v2/write?precision=s", b"m v=1 1\n".to_vec(), &[])
        .await;
    assert_eq!(lp.status, 403, "{}", lp.body);
    assert_eq!(db.count("SELECT count(*) AS n FROM timeseries_data"), 0);
}

#[rocket::async_test]
async fn a_database_that_cannot_take_the_write_gets_a_503_to_retry() {
    let db = TestDatabase::migrated();
    let app = TestApp::try_spawn(
        crate::helpers::figment(&db.url, None).merge(("db_checkout_timeout_secs", 1)),
    )
    .await
    .unwrap();
    let write = || body(vec![series(&[("__name__", "up")], &[(1.0, T0)])]);
    assert_eq!(remote_write(&app, write()).await.status, 204);
    db.allow_connections(false);
    let down = remote_write(&app, write()).await;
    assert_eq!(down.status, 503, "{}", down.body);
    assert_eq!(down.header("Retry-After"), Some("2"));
    assert!(down.body.contains("retry"), "{}", down.body);
    let v2 = app.send("/api/v2/write", b"m v=1 1\n".to_vec(), &[]).await;
    assert_eq!(v2.status, 503, "{}", v2.body);
    db.allow_connections(true);
    // What the sender retries goes in.
    let mut again = remote_write(&app, write()).await;
    for _ in 0..20 {
        if again.status == 204 {
            break;
        }
        rocket::tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        again = remote_write(&app, write()).await;
    }
    assert_eq!(again.status, 204, "{}", again.body);
}

/// A collector's series keeps its label set: a write by name with other
/// tags is refused (it once replaced them, and every later remote write of
/// the series was refused as a collision, so Prometheus dropped them); a
/// collector takes back a name whose row a write by name had changed; and
/// a real collision says "nothing was written" once.
#[rocket::async_test]
async fn a_collectors_series_keeps_its_identity_whoever_writes() {
    use diesel::RunQueryDsl;
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    let labels = [("__name__", "x"), ("job", "node")];
    let once = |t: i64| body(vec![series(&labels, &[(1.0, t)])]);
    assert_eq!(remote_write(&app, once(T0)).await.status, 204);
    let listed = list(&app, &session, json!({"metric": "x"})).await;
    let name = listed[0]["series"].as_str().unwrap().to_owned();
    let tags = || {
        db.count(&format!(
            "SELECT count(*) AS n FROM timeseries_series WHERE series_name = '{name}'
                AND tags = '{{\"__name__\": \"x\", \"job\": \"node\"}}' AND metric = 'x'"
        ))
    };
    let point = json!([{"time": "2026-03-01T00:01:00Z", "value": 2.0}]);
    for other in [json!({"job": "other"}), json!({})] {
        let text = app
            .tool_error(
                &session,
                "ingest_timeseries",
                json!({"series": name, "points": point, "tags": other}),
            )
            .await;
        assert!(
            text.contains("a collector's series") && text.contains("\"job\": \"node\""),
            "{text}"
        );
        assert_eq!(text.matches("nothing was written").count(), 1, "{text}");
    }
    // With exactly its labels, a write by name is taken.
    let same = json!({"series": name, "points": point, "tags": {"__name__": "x", "job": "node"}});
    let r = app.call_tool(&session, "ingest_timeseries", same).await;
    assert_eq!(r["structuredContent"]["written"], 1, "{r}");
    assert_eq!(tags(), 1);
    assert_eq!(remote_write(&app, once(T0 + 120_000)).await.status, 204);

    // A row a write by name changed before such writes were refused: the
    // collector takes its identity back (seen by a server that has not
    // registered the series yet; one that has re-checks within the hour).
    diesel::sql_query(format!(
        "UPDATE timeseries_series SET metric = series_name, tags = '{{\"a\": \"b\"}}'
          WHERE series_name = '{name}'"
    ))
    .execute(&mut db.conn())
    .unwrap();
    let app = TestApp::spawn(&db, None).await;
    assert_eq!(remote_write(&app, once(T0 + 180_000)).await.status, 204);
    assert_eq!(tags(), 1);

    // Another label set under the same name (as a hash collision would
    // have it): refused, whole, saying so once.
    diesel::sql_query(format!(
        "UPDATE timeseries_series SET tags = '{{\"__name__\": \"x\", \"job\": \"else\"}}'
          WHERE series_name = '{name}'"
    ))
    .execute(&mut db.conn())
    .unwrap();
    let app = TestApp::spawn(&db, None).await;
    let refused = remote_write(&app, once(T0 + 240_000)).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains("hashes the same"), "{}", refused.body);
    assert_eq!(
        refused.body.matches("nothing was written").count(),
        1,
        "{}",
        refused.body
    );
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) AS n FROM timeseries_data WHERE series_name = '{name}'"
        )),
        4
    );
}

/// The fence for an older binary: once a newer mcp-server has applied a
/// migration this one does not carry, this one writes nothing (MCP: a tool
/// error that says why; collectors: 503, so they retry against an upgraded
/// replica), folds nothing, and still serves reads.
#[rocket::async_test]
async fn an_older_server_writes_nothing_once_the_database_is_ahead() {
    use diesel::RunQueryDsl;
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    let labels = [("__name__", "fenced"), ("job", "node")];
    // Two hours apart: the first hour is the fold's to move.
    let two = body(vec![series(&labels, &[(1.0, T0), (1.0, T0 + 7_200_000)])]);
    assert_eq!(remote_write(&app, two).await.status, 204);
    diesel::sql_query("INSERT INTO __diesel_schema_migrations (version) VALUES ('29991231000000')")
        .execute(&mut db.conn())
        .unwrap();

    let point = json!([{"time": "2026-03-01T00:01:00Z", "value": 2.0}]);
    let text = app
        .tool_error(
            &session,
            "ingest_timeseries",
            json!({"series": "mcp.fenced", "points": point}),
        )
        .await;
    assert!(
        text.contains("29991231000000") && text.contains("older than the database"),
        "{text}"
    );
    let refused = remote_write(&app, body(vec![series(&labels, &[(2.0, T0 + 60_000)])])).await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(refused.headers.iter().any(|(k, _)| k == "Retry-After"));
    let lp = app
        .send(
            "/api/v2/write?precision=s",
            b"fenced_lp v=1 1772323200".to_vec(),
            &[],
        )
        .await;
    assert_eq!(lp.status, 503, "{}", lp.body);
    assert_eq!(db.count("SELECT count(*) AS n FROM timeseries_data"), 2);

    let folder = &app.mcp_state().ingest.folder;
    let fold = folder.fold(folder.limit(), true).await;
    assert!(fold.is_err_and(|e| e.to_string().contains("older than the database")));
    assert_eq!(db.count("SELECT count(*) AS n FROM timeseries_rollups"), 0);

    let listed = list(&app, &session, json!({"metric": "fenced"})).await;
    let name = listed[0]["series"].as_str().unwrap();
    let stats = app
        .call_tool(&session, "compute_statistics", json!({"series": name}))
        .await;
    assert_eq!(stats["structuredContent"]["count"], 2, "{stats}");
}
