//! plot_series, the chart resource and the prompts' charts: the PNG is
//! decoded here and its pixels checked against the data (the renderer's
//! colours are exact, unblended Okabe–Ito values).

use base64::Engine;
use chrono::{DateTime, Duration, TimeZone, Utc};
use mcp_server::chart::{ANOMALY, BAND, ENVELOPE, LINES, OTHER, SERIES};
use mcp_server::ingest::remote_write::TimeSeries;
use plotters::style::RGBColor;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestDatabase, close};
use crate::writes::{T0, body, remote_write, series};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap()
}

struct Image {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl Image {
    fn decode(base64: &str) -> Image {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(base64)
            .expect("the image is base64");
        let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
            .read_info()
            .expect("a PNG header");
        let mut rgb = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut rgb).expect("a PNG frame");
        assert_eq!(info.color_type, png::ColorType::Rgb);
        Image {
            width: info.width,
            height: info.height,
            rgb,
        }
    }

    /// The x positions inside `area` where `colour` appears.
    fn columns_of(&self, colour: RGBColor, area: &Value) -> Vec<i64> {
        let at = |k: &str| area[k].as_i64().unwrap();
        let mut xs = Vec::new();
        for x in at("left")..=at("right") {
            let found = (at("top")..=at("bottom")).any(|y| {
                let i = (y as usize * self.width as usize + x as usize) * 3;
                self.rgb[i..i + 3] == [colour.0, colour.1, colour.2]
            });
            if found {
                xs.push(x);
            }
        }
        xs
    }
}

/// The pixel column of `t` in a chart result.
fn x_of(result: &Value, t: DateTime<Utc>) -> f64 {
    let time = |k: &str| {
        result[k]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap()
    };
    let (start, end) = (time("start"), time("end"));
    let area = &result["plot_area"];
    let (left, right) = (
        area["left"].as_f64().unwrap(),
        area["right"].as_f64().unwrap(),
    );
    left + (t - start).as_seconds_f64() / (end - start).as_seconds_f64() * (right + 1.0 - left)
}

/// Runs of neighbouring columns, as their centres.
fn clusters(xs: &[i64]) -> Vec<f64> {
    let mut out: Vec<Vec<i64>> = Vec::new();
    for &x in xs {
        match out.last_mut() {
            Some(run) if x - run[run.len() - 1] <= 2 => run.push(x),
            _ => out.push(vec![x]),
        }
    }
    out.iter()
        .map(|r| r.iter().sum::<i64>() as f64 / r.len() as f64)
        .collect()
}

/// train_model's structured result.
async fn train(app: &TestApp, session: &str, series: &str, kind: &str) -> Value {
    let r = app
        .call_tool(
            session,
            "train_model",
            json!({ "series": series, "model_type": kind }),
        )
        .await;
    r["structuredContent"].clone()
}

/// A wave, one point a minute, with the given minutes raised by 40.
fn wave(minutes: std::ops::Range<i64>, spikes: &[i64]) -> Vec<(DateTime<Utc>, f64)> {
    minutes
        .map(|m| {
            let base = 20.0 + 5.0 * (m as f64 / 30.0).sin();
            let spike = if spikes.contains(&m) { 40.0 } else { 0.0 };
            (t0() + Duration::minutes(m), base + spike)
        })
        .collect()
}

fn image_and_result(r: &Value) -> (Image, Value) {
    assert!(r.get("isError").is_none(), "{r}");
    let content = r["content"].as_array().unwrap();
    assert_eq!(content[0]["type"], "image", "{r}");
    assert_eq!(content[0]["mimeType"], "image/png");
    assert_eq!(content[1]["type"], "text");
    (
        Image::decode(content[0]["data"].as_str().unwrap()),
        r["structuredContent"].clone(),
    )
}

#[rocket::async_test]
async fn the_series_is_drawn_where_its_data_is_and_nowhere_else() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    // Two stretches of 4 h with 4 h of nothing between.
    let mut points = wave(0..240, &[]);
    points.extend(wave(480..720, &[]));
    app.ingest(&session, "gappy", &points).await;

    let r = app
        .call_tool(
            &session,
            "plot_series",
            json!({ "series": "gappy", "start": t0().to_rfc3339(),
                    "end": (t0() + Duration::hours(12)).to_rfc3339(),
                    "width": 800, "height": 300, "utc_offset": "+01:00" }),
        )
        .await;
    let (image, s) = image_and_result(&r);
    assert_eq!((image.width, image.height), (800, 300));
    assert_eq!(
        (s["width"].as_u64(), s["height"].as_u64()),
        (Some(800), Some(300))
    );
    assert_eq!(s["points"], 480);
    // 480 points fit the plot's columns: drawn raw.
    assert_eq!(
        (s["drawn"].as_u64(), s["bucket"].is_null()),
        (Some(480), true)
    );
    let text = r["content"][1]["text"].as_str().unwrap();
    assert!(
        text.contains("480 points") && text.contains("UTC+01:00"),
        "{text}"
    );

    let blue = image.columns_of(SERIES, &s["plot_area"]);
    let gap = (
        x_of(&s, t0() + Duration::minutes(250)),
        x_of(&s, t0() + Duration::minutes(470)),
    );
    let data = [
        (x_of(&s, t0()), x_of(&s, t0() + Duration::minutes(239))),
        (
            x_of(&s, t0() + Duration::minutes(480)),
            x_of(&s, t0() + Duration::minutes(719)),
        ),
    ];
    assert!(
        blue.iter()
            .all(|x| (*x as f64) < gap.0 || (*x as f64) > gap.1),
        "series colour inside the empty stretch {gap:?}"
    );
    for (from, to) in data {
        let inside = blue
            .iter()
            .filter(|x| (**x as f64) >= from && (**x as f64) <= to)
            .count() as f64;
        assert!(
            inside >= (to - from) * 0.9,
            "series colour missing in {from}..{to}: {inside}"
        );
    }
}

#[rocket::async_test]
async fn a_long_series_is_bucketed_to_the_pixel_columns_with_its_spikes_ringed() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    let spikes = [1000, 3000, 5200];
    let points = wave(0..6000, &spikes);
    app.ingest(&session, "spiky", &points).await;

    let r = app
        .call_tool(
            &session,
            "plot_series",
            json!({ "series": "spiky", "bucket": "1m", "anomaly_method": "zscore" }),
        )
        .await;
    let (image, s) = image_and_result(&r);
    assert_eq!((image.width, image.height), (1000, 400));
    let area = &s["plot_area"];
    let columns = area["right"].as_u64().unwrap() - area["left"].as_u64().unwrap() + 1;
    assert!(s["drawn"].as_u64().unwrap() <= columns, "{s}");
    assert_eq!(s["points"], 6000);
    // 1m was too fine for 6000 minutes: widened and said so.
    assert_eq!(s["bucket_requested"], "1m");
    assert_ne!(s["bucket"], "1m");
    assert!(
        !image.columns_of(ENVELOPE, area).is_empty(),
        "min–max shading"
    );
    assert_eq!(s["anomalies"]["total"], 3, "{s}");

    let rings = clusters(&image.columns_of(ANOMALY, area));
    let want: Vec<f64> = spikes
        .iter()
        .map(|m| x_of(&s, t0() + Duration::minutes(*m)))
        .collect();
    assert_eq!(rings.len(), 3, "rings at {rings:?}, spikes at {want:?}");
    for (got, want) in rings.iter().zip(&want) {
        assert!((got - want).abs() <= 2.0, "ring at {got}, spike at {want}");
    }

    // The same rings from a stored detect_anomalies run.
    let run = app
        .call_tool(&session, "detect_anomalies", json!({ "series": "spiky" }))
        .await;
    let id = run["structuredContent"]["analysis_id"].as_i64().unwrap();
    let stored = app
        .call_tool(
            &session,
            "plot_series",
            json!({ "series": "spiky", "analysis_id": id }),
        )
        .await;
    let (image, s) = image_and_result(&stored);
    assert_eq!(s["anomalies"]["analysis_id"], id);
    assert_eq!(clusters(&image.columns_of(ANOMALY, &s["plot_area"])), rings);
}

#[rocket::async_test]
async fn the_forecast_band_lies_after_the_last_point() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    let points = wave(0..600, &[]);
    app.ingest(&session, "ahead", &points).await;
    let trained = app
        .call_tool(
            &session,
            "train_model",
            json!({ "series": "ahead", "model_type": "holt" }),
        )
        .await;
    let model = trained["structuredContent"]["model_id"].as_i64().unwrap();
    let rmse = trained["structuredContent"]["metrics"]["rmse"]
        .as_f64()
        .unwrap();

    let r = app
        .call_tool(
            &session,
            "plot_series",
            json!({ "series": "ahead", "model_id": model, "horizon": 120 }),
        )
        .await;
    let (image, s) = image_and_result(&r);
    let f = &s["forecast"];
    assert_eq!(
        (f["model_id"].as_i64(), f["horizon"].as_u64()),
        (Some(model), Some(120))
    );
    assert_eq!(f["band"].as_f64(), Some(rmse));
    let first = &f["points"][0];
    assert!(
        (first["high"].as_f64().unwrap() - first["value"].as_f64().unwrap() - rmse).abs() < 1e-9
    );
    let last_point = x_of(&s, points.last().unwrap().0);
    let band = image.columns_of(BAND, &s["plot_area"]);
    assert!(!band.is_empty(), "no band drawn");
    assert!(
        band.iter().all(|x| *x as f64 >= last_point - 1.0),
        "band starts at {:?}, the last point is at {last_point}",
        band.first()
    );
    let series = image.columns_of(SERIES, &s["plot_area"]);
    assert!(series.iter().all(|x| (*x as f64) <= last_point + 2.0));
    assert!(
        r["content"][1]["text"]
            .as_str()
            .unwrap()
            .contains("120 steps")
    );
}

#[rocket::async_test]
async fn bad_chart_requests_get_clear_tool_errors() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    app.ingest(&session, "short", &wave(0..60, &[])).await;
    app.ingest(&session, "other", &wave(0..60, &[])).await;
    let other_model = train(&app, &session, "other", "linear").await["model_id"]
        .as_i64()
        .unwrap();
    let cases = [
        (
            json!({ "series": "nothing.here" }),
            "has no points in this range",
        ),
        (
            json!({ "series": "short", "start": "2030-01-01T00:00:00Z" }),
            "has no points in this range",
        ),
        (
            json!({ "series": "short", "width": 100000 }),
            "width: must be between 240 and 3000",
        ),
        (
            json!({ "series": "short", "height": 0 }),
            "height: must be between 160 and 2000",
        ),
        (
            json!({ "series": "short", "model_id": 987654 }),
            "no model 987654; see list_models",
        ),
        (
            json!({ "series": "short", "model_id": other_model }),
            "was trained on series \"other\", not \"short\"",
        ),
        (
            json!({ "series": "short", "analysis_id": 987654 }),
            "no analysis 987654",
        ),
        (
            json!({ "series": "short", "analysis_id": 1, "anomaly_method": "iqr" }),
            "not both",
        ),
        (
            json!({ "series": "short", "horizon": 5 }),
            "horizon needs a model_id",
        ),
        (
            json!({ "series": "short", "utc_offset": "CET" }),
            "not an offset like Z, +01:00",
        ),
        (
            json!({ "series": "short", "bucket": "1y" }),
            "bucket \"1y\" is not a width",
        ),
    ];
    for (args, want) in cases {
        let r = app.call_tool(&session, "plot_series", args.clone()).await;
        assert_eq!(r["isError"], true, "{args}: {r}");
        let text = r["content"][0]["text"].as_str().unwrap();
        assert!(text.contains(want), "{args}: {text}");
    }
}

#[rocket::async_test]
async fn the_series_resource_and_the_prompts_carry_the_chart() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    app.ingest(&session, "shown", &wave(0..300, &[100])).await;

    let templates = app
        .rpc(&session, 2, "resources/templates/list", json!({}))
        .await;
    let chart = templates["result"]["resourceTemplates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["uriTemplate"] == "timeseries://{series}/chart.png")
        .cloned()
        .expect("a chart template");
    assert_eq!(chart["mimeType"], "image/png");

    let read = app
        .rpc(
            &session,
            3,
            "resources/read",
            json!({ "uri": "timeseries://shown/chart.png" }),
        )
        .await;
    let contents = &read["result"]["contents"][0];
    assert_eq!(contents["mimeType"], "image/png");
    let image = Image::decode(contents["blob"].as_str().unwrap());
    assert_eq!((image.width, image.height), (1000, 400));
    let missing = app
        .rpc(
            &session,
            4,
            "resources/read",
            json!({ "uri": "timeseries://absent/chart.png" }),
        )
        .await;
    assert_eq!(missing["error"]["code"], -32002, "{missing}");

    let prompt = app
        .rpc(
            &session,
            5,
            "prompts/get",
            json!({ "name": "investigate_anomalies", "arguments": { "series": "shown" } }),
        )
        .await;
    let messages = prompt["result"]["messages"].as_array().unwrap();
    assert_eq!(messages[0]["content"]["type"], "image", "{prompt}");
    Image::decode(messages[0]["content"]["data"].as_str().unwrap());
    assert!(
        messages[1]["content"]["text"]
            .as_str()
            .unwrap()
            .contains("1 anomalies")
    );

    // forecast_report draws the latest completed model's forecast.
    let model = train(&app, &session, "shown", "linear").await["model_id"]
        .as_i64()
        .unwrap();
    let report = app
        .rpc(
            &session,
            6,
            "prompts/get",
            json!({ "name": "forecast_report", "arguments": { "series": "shown" } }),
        )
        .await;
    let messages = report["result"]["messages"].as_array().unwrap();
    assert_eq!(messages[0]["content"]["type"], "image");
    let caption = messages[1]["content"]["text"].as_str().unwrap();
    assert!(
        caption.contains(&format!("forecast of model {model}")),
        "{caption}"
    );

    // A prompt for a series with no data still renders, and says why there is no chart.
    let empty = app
        .rpc(
            &session,
            7,
            "prompts/get",
            json!({ "name": "forecast_report", "arguments": { "series": "absent" } }),
        )
        .await;
    let first = empty["result"]["messages"][0]["content"]["text"]
        .as_str()
        .unwrap();
    assert!(
        first.contains("No chart") && first.contains("no points"),
        "{first}"
    );
}

#[rocket::async_test]
async fn the_chart_tool_answers_under_the_2026_revision_too() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    app.ingest(&session, "modern", &wave(0..120, &[])).await;
    let listed = app
        .modern(1, "tools/list", json!({}), json!({}))
        .await
        .response();
    let tool = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "plot_series")
        .cloned()
        .expect("plot_series is listed");
    let schemas = format!("{}{}", tool["inputSchema"], tool["outputSchema"]);
    assert!(
        !schemas.contains("$ref") && !schemas.contains("$defs"),
        "{schemas}"
    );
    let r = app
        .modern(
            2,
            "tools/call",
            json!({ "name": "plot_series", "arguments": { "series": "modern", "width": 640, "height": 240 } }),
            json!({}),
        )
        .await
        .response();
    assert_eq!(r["result"]["resultType"], "complete", "{r}");
    let (image, _) = image_and_result(&r["result"]);
    assert_eq!((image.width, image.height), (640, 240));
}

/// A minute's samples over three hours of `labels`, valued by `f(minute)`.
fn labelled(labels: &[(&str, &str)], f: &dyn Fn(i64) -> f64) -> TimeSeries {
    let samples: Vec<(f64, i64)> = (0..180).map(|m| (f(m), T0 + m * 60_000)).collect();
    series(labels, &samples)
}

fn three_hours(extra: Value) -> Value {
    let mut args = json!({"start": "2026-03-01T00:00:00Z", "end": "2026-03-01T03:00:00Z"});
    args.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    args
}

#[rocket::async_test]
async fn a_selector_draws_a_line_a_series_and_folds_past_ten_into_other() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    // Twelve hosts, each level at its index; the first three wave around it.
    let hosts: Vec<String> = (0..12).map(|i| format!("h{i:02}")).collect();
    let all = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| {
            labelled(&[("__name__", "load"), ("host", h), ("dc", "x")], &|m| {
                i as f64
                    + if i < 3 {
                        0.5 * (m as f64 / 10.0).sin()
                    } else {
                        0.0
                    }
            })
        })
        .collect();
    assert_eq!(remote_write(&app, body(all)).await.status, 204);
    let session = app.session().await;

    let r = app
        .call_tool(
            &session,
            "plot_series",
            three_hours(json!({"selector": "load", "width": 900, "height": 400})),
        )
        .await;
    let (image, s) = image_and_result(&r);
    assert_eq!(s["series_matched"], 12);
    let lines = s["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 10, "{s}");
    // The largest mean first, nine of them, then the other three folded.
    let labels = legend(&s);
    assert_eq!(labels[..3], ["host=h11", "host=h10", "host=h09"]);
    assert_eq!(labels[9], "other: 3 more (mean)");
    assert_eq!(
        (&lines[9]["folded"], &lines[9]["series"]),
        (&json!(3), &json!(3))
    );
    close(lines[0]["value"].as_f64().unwrap(), 11.0, "h11's mean");
    // "other" is the mean of h00..h02, whose waves nearly cancel: about 1.
    assert!(
        (lines[9]["value"].as_f64().unwrap() - 1.0).abs() < 0.05,
        "{s}"
    );
    assert!(s["series"].is_null() && s["bucket"].is_string(), "{s}");
    let text = r["content"][1]["text"].as_str().unwrap();
    assert!(
        text.starts_with("load{dc=x}: avg per") && text.contains("10 lines of 12 matched series"),
        "{text}"
    );
    // Each line in its own colour, "other" in grey, all inside the plot.
    for style in LINES.iter().take(7).chain([&OTHER]) {
        assert!(
            !image.columns_of(style.colour, &s["plot_area"]).is_empty(),
            "no line in {:?}",
            style.colour
        );
    }

    // Three series: three lines, no "other"; and by a JSON selector.
    let r = app
        .call_tool(
            &session,
            "plot_series",
            three_hours(json!({"selector": {"metric": "load", "match": {"host": "=~h0[0-2]"}}})),
        )
        .await;
    let (_, s) = image_and_result(&r);
    assert_eq!(legend(&s), ["host=h02", "host=h01", "host=h00"]);
    // Ten: every one drawn, none folded.
    let r = app
        .call_tool(
            &session,
            "plot_series",
            three_hours(json!({"selector": "load{host=~\"h0.\"}"})),
        )
        .await;
    let (_, s) = image_and_result(&r);
    let labels = legend(&s);
    assert_eq!(labels.len(), 10, "{s}");
    assert_eq!(labels[9], "host=h00");
}

/// A chart's legend, line by line.
fn legend(result: &Value) -> Vec<String> {
    result["lines"]
        .as_array()
        .expect("lines, for a selector")
        .iter()
        .map(|l| l["label"].as_str().unwrap().to_owned())
        .collect()
}

#[rocket::async_test]
async fn groups_of_an_aggregation_are_drawn_as_aggregate_series_computes_them() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    // Requests by code and instance: 200s grow 2 and 3 a minute, 500s 1.
    let all = vec![
        labelled(
            &[
                ("__name__", "req_total"),
                ("code", "200"),
                ("instance", "a"),
            ],
            &|m| (2 * m) as f64,
        ),
        labelled(
            &[
                ("__name__", "req_total"),
                ("code", "200"),
                ("instance", "b"),
            ],
            &|m| (3 * m) as f64,
        ),
        // Restarts at minute 90.
        labelled(
            &[
                ("__name__", "req_total"),
                ("code", "500"),
                ("instance", "a"),
            ],
            &|m| (if m < 90 { m } else { m - 90 }) as f64,
        ),
    ];
    assert_eq!(remote_write(&app, body(all)).await.status, 204);
    let session = app.session().await;
    let aggregation = json!({"per_series": "rate", "across": "sum", "by": ["code"]});

    // Whole hours: the same points as aggregate_series with that bucket.
    let r = app
        .call_tool(
            &session,
            "plot_series",
            three_hours(
                json!({"selector": "req_total", "aggregation": aggregation, "bucket": "1h"}),
            ),
        )
        .await;
    let (_, plotted) = image_and_result(&r);
    let mut args = three_hours(aggregation.clone());
    args["selector"] = json!("req_total");
    args["bucket"] = json!("1h");
    let r = app.call_tool(&session, "aggregate_series", args).await;
    let groups = r["structuredContent"]["groups"].as_array().unwrap().clone();
    let lines = plotted["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 2, "{plotted}");
    for line in lines {
        let group = groups
            .iter()
            .find(|g| g["labels"] == line["labels"])
            .expect("the same groups");
        close(
            line["value"].as_f64().unwrap(),
            group["value"].as_f64().unwrap(),
            "a group's mean",
        );
    }
    assert_eq!(lines[0]["label"], "code=200");
    close(
        lines[0]["value"].as_f64().unwrap(),
        5.0 / 60.0,
        "5 a minute",
    );

    // Left to itself the bucket holds at least four samples (a rate needs
    // pairs): 5 minutes here, from the raw points, the reset handled.
    let r = app
        .call_tool(
            &session,
            "plot_series",
            three_hours(json!({"selector": "req_total", "aggregation": aggregation})),
        )
        .await;
    let (_, s) = image_and_result(&r);
    assert_eq!(s["bucket"], "5m", "{s}");
    let text = r["content"][1]["text"].as_str().unwrap();
    assert!(
        text.starts_with("req_total: sum by (code) (rate) per 5m"),
        "{text}"
    );
    // A 1m bucket asked for is widened, and the caption says why.
    let r = app
        .call_tool(
            &session,
            "plot_series",
            three_hours(
                json!({"selector": "req_total", "aggregation": aggregation, "bucket": "1m"}),
            ),
        )
        .await;
    let (_, asked) = image_and_result(&r);
    assert_eq!(
        (&asked["bucket"], &asked["bucket_requested"]),
        (&json!("5m"), &json!("1m"))
    );
    let caption = r["content"][1]["text"].as_str().unwrap();
    assert!(caption.contains("(bucket 1m widened to 5m: "), "{caption}");
    let errors = &s["lines"][1];
    assert_eq!(errors["labels"], json!({"code": "500"}));
    assert_eq!(errors["drawn"], 36);
    close(
        errors["value"].as_f64().unwrap(),
        1.0 / 60.0,
        "1 a minute through the reset",
    );
}

#[rocket::async_test]
async fn several_series_refuse_what_only_one_can_take() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let all = vec![labelled(&[("__name__", "load"), ("host", "a")], &|m| {
        m as f64
    })];
    assert_eq!(remote_write(&app, body(all)).await.status, 204);
    let session = app.session().await;
    for (args, says) in [
        (json!({"series": "x", "selector": "load"}), "not both"),
        (json!({}), "give series"),
        (
            json!({"selector": "load", "anomaly_method": "zscore"}),
            "over one series",
        ),
        (
            json!({"selector": "load", "model_id": 1}),
            "over one series",
        ),
        (
            json!({"series": "x", "aggregation": {"per_series": "avg", "across": "sum"}}),
            "give selector instead",
        ),
        (
            json!({"selector": "load", "aggregate": "max",
                   "aggregation": {"per_series": "avg", "across": "sum"}}),
            "aggregation.per_series",
        ),
        (
            json!({"selector": "load", "aggregation": {"per_series": "avg", "across": "quantile"}}),
            "needs q",
        ),
        (
            json!({"selector": "nothing_here"}),
            "no series of nothing_here",
        ),
        (json!({"selector": "load{host=~\"(\"}"}), "regex"),
        (json!({"selector": "load", "max_series": 0}), "max_series"),
    ] {
        let text = app.tool_error(&session, "plot_series", args.clone()).await;
        assert!(text.contains(says), "{args}: {text}");
    }
}

/// Many series over a long range: the bucket widens until every series'
/// buckets fit in the values one call reads, asked or not, and the caption
/// says why (a fleet's chart was refused instead).
#[rocket::async_test]
async fn many_series_widen_the_bucket_to_fit_and_say_so() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let day = 86_400_000;
    let all: Vec<TimeSeries> = (0..600)
        .map(|i| {
            let host = format!("h{i:03}");
            series(
                &[("__name__", "wide"), ("host", host.as_str())],
                &[(1.0, T0), (2.0, T0 + 3 * day)],
            )
        })
        .collect();
    assert_eq!(remote_write(&app, body(all)).await.status, 204);
    let session = app.session().await;
    for asked in [json!({}), json!({"bucket": "1m"})] {
        let mut args = json!({"selector": "wide", "width": 3000,
                              "start": "2026-03-01T00:00:00Z", "end": "2026-03-04T00:00:00Z"});
        args.as_object_mut()
            .unwrap()
            .extend(asked.as_object().unwrap().clone());
        let r = app.call_tool(&session, "plot_series", args).await;
        assert_ne!(r["isError"], true, "{r}");
        let text = r["content"][1]["text"].as_str().unwrap();
        // 600 series × 3 days fit 1,000,000 values in 156 s buckets or wider;
        // the pixel columns alone would take 90 s.
        assert!(text.contains("per 5m"), "{text}");
        assert_eq!(
            text.contains("1,000,000 values"),
            asked.get("bucket").is_some(),
            "{text}"
        );
        assert_eq!(r["structuredContent"]["series_matched"], 600);
    }
}

/// Past 2,000,000 raw points (series × range ÷ the first series' spacing)
/// a chart of several series draws whole hours from the rollups rather than
/// summing every point: a fleet's 17M points took 20 s. Below, its buckets
/// follow the plot's columns as before.
#[rocket::async_test]
async fn a_selector_past_two_million_raw_points_draws_whole_hours() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    // A second apart for 100 seconds, then one sample 8 days on: read by
    // their spacing, 691,200 points a series.
    let day_ms = 86_400_000;
    let samples: Vec<(f64, i64)> = (0..100)
        .map(|s| (1.0, T0 + s * 1000))
        .chain([(2.0, T0 + 8 * day_ms)])
        .collect();
    let hosts = |n: usize| -> Vec<TimeSeries> {
        (0..n)
            .map(|i| {
                series(
                    &[("__name__", "dense"), ("host", &format!("h{i}"))],
                    &samples,
                )
            })
            .collect()
    };
    assert_eq!(remote_write(&app, body(hosts(3))).await.status, 204);
    let session = app.session().await;
    let plot = |selector: &str| {
        json!({"selector": selector, "start": "2026-03-01T00:00:00Z",
               "end": "2026-03-09T00:00:01Z", "width": 900, "height": 400})
    };
    // Two series: 1,382,400 points' worth, buckets by the columns.
    let r = app
        .call_tool(&session, "plot_series", plot("dense{host=~\"h[01]\"}"))
        .await;
    let (_, two) = image_and_result(&r);
    assert_eq!(two["series_matched"], 2, "{two}");
    assert_ne!(two["bucket"], "1h", "{two}");
    // Three: 2,073,600, past the bound: whole hours.
    let r = app.call_tool(&session, "plot_series", plot("dense")).await;
    let (_, three) = image_and_result(&r);
    assert_eq!(three["series_matched"], 3, "{three}");
    assert_eq!(three["bucket"], "1h", "{three}");
}
