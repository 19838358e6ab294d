//! Selectors and discovery over series the collectors wrote: a small fleet
//! by Prometheus remote write (with the metadata Prometheus sends), a field
//! by line protocol, a series by name; then `list_metrics`, `list_labels`,
//! `label_values` and `list_series` with a selector in both spellings.

use mcp_server::ingest::remote_write::{MetricMetadata, TimeSeries};
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestDatabase};
use crate::writes::{T0, described, remote_write, series};

/// 2 jobs × 5 instances × 2 codes of a counter, a histogram's buckets of
/// one instance, and `up` without metadata.
fn fleet() -> Vec<TimeSeries> {
    let mut all = Vec::new();
    for job in ["api", "web"] {
        for i in 0..5 {
            for code in ["200", "500"] {
                let instance = format!("i{i}");
                let labels = [
                    ("__name__", "http_requests_total"),
                    ("code", code),
                    ("instance", instance.as_str()),
                    ("job", job),
                ];
                all.push(series(&labels, &[(1.0, T0), (2.0, T0 + 30_000)]));
            }
        }
    }
    for le in ["0.1", "1", "+Inf"] {
        let labels = [
            ("__name__", "http_duration_seconds_bucket"),
            ("le", le),
            ("job", "api"),
        ];
        all.push(series(&labels, &[(3.0, T0)]));
    }
    all.push(series(&[("__name__", "up"), ("job", "api")], &[(1.0, T0)]));
    all
}

fn metadata(family: &str, kind: i32, help: &str) -> MetricMetadata {
    MetricMetadata {
        r#type: kind,
        metric_family_name: family.into(),
        help: help.into(),
        unit: String::new(),
    }
}

async fn stocked(db: &TestDatabase) -> (TestApp, String) {
    let app = TestApp::spawn(db, None).await;
    assert_eq!(
        remote_write(&app, described(fleet(), vec![])).await.status,
        204
    );
    // Prometheus sends metadata in requests of their own.
    let meta = vec![
        metadata("http_requests_total", 1, "Requests served."),
        metadata("http_duration_seconds", 3, "Request latency."),
    ];
    assert_eq!(
        remote_write(&app, described(vec![], meta)).await.status,
        204
    );
    let lp = app
        .send(
            "/api/v2/write?precision=s",
            b"cpu,host=a usage_idle=99 1772323200".to_vec(),
            &[],
        )
        .await;
    assert_eq!(lp.status, 204, "{}", lp.body);
    let session = app.session().await;
    app.ingest(&session, "plain.series", &[(chrono::Utc::now(), 1.0)])
        .await;
    (app, session)
}

async fn call(app: &TestApp, session: &str, tool: &str, args: Value) -> Value {
    let r = app.call_tool(session, tool, args).await;
    assert_ne!(r["isError"], true, "{tool}: {r}");
    r["structuredContent"].clone()
}

fn names(listed: &Value) -> Vec<String> {
    let mut n: Vec<String> = listed["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| format!("{}", s["tags"]))
        .collect();
    n.sort();
    n
}

#[rocket::async_test]
async fn list_metrics_gives_each_metric_its_kind_help_and_series() {
    let db = TestDatabase::migrated();
    let (app, session) = stocked(&db).await;
    let m = call(&app, &session, "list_metrics", json!({})).await;
    let by_name = |n: &str| {
        m["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == n)
            .cloned()
    };
    let requests = by_name("http_requests_total").expect("listed");
    assert_eq!(requests["kind"], "counter");
    assert_eq!(requests["help"], "Requests served.");
    assert_eq!(requests["series"], 20);
    // The bucket series' metadata is its family's.
    assert_eq!(
        by_name("http_duration_seconds_bucket").unwrap()["kind"],
        "histogram"
    );
    // No metadata: a line-protocol field is a gauge, `up` and a named series unknown.
    assert_eq!(by_name("cpu.usage_idle").unwrap()["kind"], "gauge");
    assert_eq!(by_name("up").unwrap()["kind"], "unknown");
    assert_eq!(by_name("plain.series").unwrap()["kind"], "unknown");
    assert_eq!(m["truncated"], false);
    let two = call(
        &app,
        &session,
        "list_metrics",
        json!({"prefix": "http_", "limit": 1}),
    )
    .await;
    assert_eq!(two["metrics"].as_array().unwrap().len(), 1);
    assert_eq!(two["truncated"], true);
}

#[rocket::async_test]
async fn a_selector_in_either_spelling_lists_the_same_series() {
    let db = TestDatabase::migrated();
    let (app, session) = stocked(&db).await;
    let text = call(
        &app,
        &session,
        "list_series",
        json!({"selector": r#"http_requests_total{job="api",code=~"5..",instance!="i0"}"#}),
    )
    .await;
    let object = call(
        &app,
        &session,
        "list_series",
        json!({"selector": {"metric": "http_requests_total",
                            "match": {"job": "api", "code": "=~5..", "instance": "!=i0"}}}),
    )
    .await;
    assert_eq!(names(&text), names(&object));
    assert_eq!(names(&text).len(), 4, "{text}");
    for s in text["series"].as_array().unwrap() {
        assert_eq!(s["tags"]["code"], "500");
        assert_ne!(s["tags"]["instance"], "i0");
        assert_eq!(s["points"], 2);
    }
    // A regex over the metric, and an InfluxDB measurement's tags.
    let re = call(
        &app,
        &session,
        "list_series",
        json!({"selector": r#"{__name__=~"http_.*",le="+Inf"}"#}),
    )
    .await;
    assert_eq!(re["series"].as_array().unwrap().len(), 1, "{re}");
    let influx = call(
        &app,
        &session,
        "list_series",
        json!({"selector": r#"{_measurement="cpu",host="a"}"#}),
    )
    .await;
    assert_eq!(influx["series"][0]["metric"], "cpu.usage_idle", "{influx}");
    // Bounded like list_series: truncated, not refused.
    let few = call(
        &app,
        &session,
        "list_series",
        json!({"selector": "http_requests_total", "limit": 3}),
    )
    .await;
    assert_eq!(
        (few["series"].as_array().unwrap().len(), &few["truncated"]),
        (3, &json!(true))
    );
}

#[rocket::async_test]
async fn labels_and_their_values_with_series_counts() {
    let db = TestDatabase::migrated();
    let (app, session) = stocked(&db).await;
    let all = call(&app, &session, "list_labels", json!({})).await;
    let count = |v: &Value, name: &str| {
        v["labels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == name)
            .map(|l| l["series"].clone())
    };
    assert_eq!(count(&all, "job"), Some(json!(24)), "{all}");
    assert_eq!(count(&all, "_measurement"), Some(json!(1)));
    assert_eq!(
        count(&all, "__name__"),
        None,
        "the metric is list_metrics' and __name__ values'"
    );
    let sel = call(
        &app,
        &session,
        "list_labels",
        json!({"selector": r#"http_requests_total{code="500"}"#}),
    )
    .await;
    let labels: Vec<&str> = sel["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["code", "instance", "job"]);
    assert_eq!(count(&sel, "instance"), Some(json!(10)));

    let jobs = call(&app, &session, "label_values", json!({"label": "job"})).await;
    assert_eq!(
        jobs["values"],
        json!([{"value": "api", "series": 14}, {"value": "web", "series": 10}])
    );
    let codes = call(
        &app,
        &session,
        "label_values",
        json!({"label": "code", "selector": {"metric": "http_requests_total", "match": {"job": "web"}}}),
    )
    .await;
    assert_eq!(
        codes["values"],
        json!([{"value": "200", "series": 5}, {"value": "500", "series": 5}])
    );
    let metrics = call(
        &app,
        &session,
        "label_values",
        json!({"label": "__name__", "limit": 1}),
    )
    .await;
    assert_eq!(
        metrics["values"],
        json!([{"value": "http_requests_total", "series": 20}])
    );
    assert_eq!(metrics["truncated"], true);
}

#[rocket::async_test]
async fn bad_selectors_are_tool_errors_that_name_the_problem() {
    let db = TestDatabase::migrated();
    let (app, session) = stocked(&db).await;
    for (selector, says) in [
        (json!("http_requests_total{code=~\"5((\"}"), "regex"),
        (json!("rate(x[5m])"), "not a series selector"),
        (json!("x{job=}"), "not a PromQL selector"),
        (json!({"match": {"job": "!=api"}}), "matches every series"),
        (
            json!({"metric": "x", "match": {"code": "=~((a{100}){100}){100}"}}),
            "past 1 MiB",
        ),
    ] {
        for tool in ["list_series", "list_labels"] {
            let text = app
                .tool_error(&session, tool, json!({"selector": selector}))
                .await;
            assert!(text.contains(says), "{tool} {selector}: {text}");
        }
    }
    let both = json!({"selector": "up", "metric": "up"});
    assert!(
        app.tool_error(&session, "list_series", both)
            .await
            .contains("not both")
    );
}

#[rocket::async_test]
async fn a_selector_of_50_000_series_is_refused_with_its_count() {
    use diesel::RunQueryDsl;
    let db = TestDatabase::migrated();
    diesel::sql_query(
        "INSERT INTO timeseries_series (series_name, metric, tags)
         SELECT 'big_total/' || lpad(g::text, 16, '0'), 'big_total',
                jsonb_build_object('__name__', 'big_total', 'instance', 'i' || g, 'zone', 'z' || g % 5)
           FROM generate_series(1, 50000) g",
    )
    .execute(&mut db.conn())
    .unwrap();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    let all = json!({"selector": "big_total", "per_series": "avg", "across": "sum"});
    assert_eq!(
        app.tool_error(&session, "aggregate_series", all).await,
        "the selector big_total matches 50,000 series, past max_series 1,000 (at most 10,000); \
         narrow it with a matcher on instance (50,000 values), zone (5 values)"
    );
    // Discovery over them is fine, and narrowing works.
    let zones = call(
        &app,
        &session,
        "label_values",
        json!({"label": "zone", "selector": "big_total"}),
    )
    .await;
    assert_eq!(zones["values"].as_array().unwrap().len(), 5);
    assert_eq!(zones["values"][0]["series"], 10_000);
    let r = app
        .call_tool(
            &session,
            "aggregate_series",
            json!({"selector": "big_total{zone=\"z1\"}", "per_series": "avg", "across": "sum", "max_series": 10000}),
        )
        .await;
    assert_ne!(r["isError"], true, "{r}");
    assert_eq!(r["structuredContent"]["series_matched"], 10_000);
    // Per bucket, what is read is bounded too: series × buckets.
    let hourly = json!({"selector": "big_total{zone=\"z1\"}", "per_series": "avg", "across": "sum",
                        "max_series": 10000, "bucket": "1h",
                        "start": "2026-01-01T00:00:00Z", "end": "2026-01-09T08:00:00Z"});
    assert_eq!(
        app.tool_error(&session, "aggregate_series", hourly).await,
        "10000 series × 201 buckets is past 1000000 values: narrow the selector, widen the \
         bucket or shorten the window"
    );
}

/// list_labels and label_values of `label` over every series, as SQL over
/// the catalog's tags counts them.
fn counted_from_catalog(db: &TestDatabase, label: &str) -> (Value, Value) {
    use diesel::RunQueryDsl;
    use diesel::sql_types::{Jsonb, Text};
    #[derive(diesel::QueryableByName)]
    struct Got {
        #[diesel(sql_type = Jsonb)]
        got: Value,
    }
    let names = diesel::sql_query(
        "SELECT coalesce(jsonb_agg(jsonb_build_object('name', k, 'series', n) ORDER BY k), '[]') AS got
           FROM (SELECT k, count(*) AS n FROM timeseries_series, jsonb_object_keys(tags) k
                  WHERE k <> '__name__' GROUP BY k) c",
    )
    .get_result::<Got>(&mut db.conn())
    .unwrap();
    let values = diesel::sql_query(
        "SELECT coalesce(jsonb_agg(jsonb_build_object('value', v, 'series', n) ORDER BY n DESC, v), '[]') AS got
           FROM (SELECT CASE WHEN $1 = '__name__' THEN metric ELSE tags->>$1 END AS v, count(*) AS n
                   FROM timeseries_series WHERE $1 = '__name__' OR jsonb_typeof(tags->$1) = 'string'
                  GROUP BY 1) c",
    )
    .bind::<Text, _>(label)
    .get_result::<Got>(&mut db.conn())
    .unwrap();
    (names.got, values.got)
}

/// The label index behind discovery follows every change to the catalog,
/// made by the server or by SQL, before and after its changes are settled.
#[rocket::async_test]
async fn the_label_index_follows_every_change_to_the_catalog() {
    use diesel::RunQueryDsl;
    let db = TestDatabase::migrated();
    let (app, session) = stocked(&db).await;
    let check = |when: &'static str| {
        let (app, session, db) = (&app, &session, &db);
        async move {
            for label in ["job", "instance", "__name__", "n"] {
                let (names, values) = counted_from_catalog(db, label);
                let all = call(app, session, "list_labels", json!({"limit": 1000})).await;
                assert_eq!(all["labels"], names, "{when}");
                let got = call(
                    app,
                    session,
                    "label_values",
                    json!({"label": label, "limit": 1000}),
                )
                .await;
                assert_eq!(got["values"], values, "{when}: {label}");
            }
        }
    };
    check("as written").await;
    // A tag that is not a string counts as a name, not as a value.
    let points = json!([{"time": "2026-03-01T00:00:00Z", "value": 1.0}]);
    call(
        &app,
        &session,
        "ingest_timeseries",
        json!({"series": "tagged", "points": points, "tags": {"job": "api", "n": 1}}),
    )
    .await;
    // Changes made behind the server's back: tags changed, series added
    // and removed by SQL.
    for sql in [
        "UPDATE timeseries_series SET tags = tags || '{\"job\": \"batch\"}'
          WHERE tags->>'instance' = 'i3'",
        "UPDATE timeseries_series SET folded_to = now()",
        "INSERT INTO timeseries_series (series_name, metric, tags)
         SELECT 'sql/' || g, 'sql_total', jsonb_build_object('job', 'sql', 'instance', 'i' || g)
           FROM generate_series(1, 7) g",
        "DELETE FROM timeseries_series WHERE tags->>'code' = '500' AND tags->>'job' = 'web'",
    ] {
        diesel::sql_query(sql).execute(&mut db.conn()).unwrap();
    }
    check("before the changes are settled").await;
    let moved = app.mcp_state().ingest.folder.settle_labels().await.unwrap();
    assert!(moved > 0);
    check("after").await;
    assert_eq!(
        app.mcp_state().ingest.folder.settle_labels().await.unwrap(),
        0
    );
    diesel::sql_query("TRUNCATE timeseries_series CASCADE")
        .execute(&mut db.conn())
        .unwrap();
    check("emptied").await;
    let all = call(&app, &session, "list_labels", json!({})).await;
    assert_eq!(all["labels"], json!([]));
}
