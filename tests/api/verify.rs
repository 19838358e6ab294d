//! `mcp-server rollups verify`: silent and 0 while every hour and day agrees
//! with the points; 1 naming each hour and day that does not (a changed
//! row, a missing one, one without points, a day); `--repair` rebuilds
//! them and exits 0; 2 on an error.

use chrono::{DateTime, Duration, TimeZone, Utc};
use diesel::prelude::*;

use crate::helpers::{TestApp, TestDatabase, mcp, text};
use crate::rollups::MISMATCHES;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).unwrap()
}

fn verify(db: &TestDatabase, args: &[&str]) -> (Option<i32>, String) {
    let out = mcp(&[&["rollups", "verify"], args].concat(), &db.url);
    (out.status.code(), text(&out))
}

#[rocket::async_test]
async fn verify_names_what_differs_and_repair_rebuilds_it() {
    let db = TestDatabase::migrated();
    let app = TestApp::spawn(&db, None).await;
    let session = app.session().await;
    for series in ["v.a", "v.b", "v.c"] {
        let points: Vec<(DateTime<Utc>, f64)> = (0..3 * 24 * 60)
            .map(|i| (t0() + Duration::minutes(i), ((i * 7) % 13) as f64))
            .collect();
        app.ingest(&session, series, &points).await;
    }
    assert!(app.fold_all().await > 0);
    let (code, out) = verify(&db, &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("3 series checked, 0 differ"), "{out}");

    let sql = |s: &str| diesel::sql_query(s).execute(&mut db.conn()).unwrap();
    sql("UPDATE timeseries_rollups SET max_value = 99
          WHERE series_name = 'v.a' AND bucket = '2026-04-01T05:00:00Z'");
    sql("DELETE FROM timeseries_rollups
          WHERE series_name = 'v.a' AND bucket = '2026-04-02T07:00:00Z'");
    sql("UPDATE timeseries_rollups_daily SET sum = sum + 1
          WHERE series_name = 'v.b' AND bucket = '2026-04-02T00:00:00Z'");
    sql("INSERT INTO timeseries_rollups
         SELECT series_name, bucket - interval '10 days', count, sum, m2, min_value, max_value,
                first_time, first_value, last_time, last_value, mean_t, sxx, sxy,
                sketch_keys, sketch_counts, increase
           FROM timeseries_rollups WHERE series_name = 'v.b' AND bucket = '2026-04-01T00:00:00Z'");
    let (code, out) = verify(&db, &[]);
    assert_eq!(code, Some(1), "{out}");
    for line in [
        "v.a hour 2026-04-01T05:00:00+00:00: differs (count 60 stored, 60 from the points)",
        "v.a hour 2026-04-02T07:00:00+00:00: missing",
        "v.a day 2026-04-01T00:00:00+00:00: differs",
        "v.b day 2026-04-02T00:00:00+00:00: differs",
        "v.b hour 2026-03-22T00:00:00+00:00: no points",
        "3 series checked, 2 differ from their points",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }
    assert!(!out.contains("v.c "), "{out}");
    // One series at a time.
    let (code, out) = verify(&db, &["--series", "v.c"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("1 series checked"), "{out}");

    let (code, out) = verify(&db, &["--repair"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("2 rebuilt from their points"), "{out}");
    let (code, out) = verify(&db, &[]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(db.count(MISMATCHES), 0);

    // Errors: a series not catalogued, a database that is not there.
    let (code, out) = verify(&db, &["--series", "v.nope"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("not in the catalog"), "{out}");
    let out = mcp(
        &["rollups", "verify"],
        "postgres://postgres@127.0.0.1:1/nothing?connect_timeout=1",
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}
