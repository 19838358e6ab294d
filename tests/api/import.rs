//! `mcp-server import`: a backfill in one command, streamed, a transaction
//! per batch, idempotent on re-run.

use std::io::Write;
use std::process::{Command, Stdio};

use chrono::{TimeZone, Utc};

use crate::helpers::{TestDatabase, text};

/// Runs `mcp-server import ARGS` on `db` with `stdin`; returns its output
/// and its peak resident memory in MiB (sampled until it exits).
fn import(db: &TestDatabase, args: &[&str], stdin: Option<&[u8]>) -> (std::process::Output, u64) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcp-server"))
        .arg("import")
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .env_remove("REDIS_URL")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mcp-server runs");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        let input = input.to_vec();
        std::thread::spawn(move || pipe.write_all(&input));
    }
    let status = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while child.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "import ran past 300 s"
        );
        if let Some(kib) = std::fs::read_to_string(&status).ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        }) {
            peak_kib = peak_kib.max(kib);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    (child.wait_with_output().unwrap(), peak_kib / 1024)
}

/// `n` rows of 4 tagged series, a second apart, into `file`.
fn csv(file: &std::path::Path, n: i64, prefix: &str) {
    let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let mut w = std::io::BufWriter::new(std::fs::File::create(file).unwrap());
    writeln!(w, "series,time,value,tags").unwrap();
    for i in 0..n {
        let t = t0 + chrono::Duration::seconds(i);
        writeln!(
            w,
            "{prefix}.{},{},{},\"{{\"\"host\"\":\"\"h{}\"\"}}\"",
            i % 4,
            t.to_rfc3339(),
            i as f64 * 0.5,
            i % 4
        )
        .unwrap();
    }
}

#[test]
fn a_million_line_csv_imported_twice_leaves_a_million_points_in_bounded_memory() {
    let db = TestDatabase::migrated();
    let dir = tempfile::tempdir().unwrap();
    // A tenth of the size first: what memory an import needs anyway.
    let small = dir.path().join("small.csv");
    csv(&small, 100_000, "small");
    let (out, small_peak) = import(&db, &[small.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", text(&out));
    let file = dir.path().join("million.csv");
    csv(&file, 1_000_000, "imp");
    let size_mib = std::fs::metadata(&file).unwrap().len() >> 20;
    let path = file.to_str().unwrap();
    for run in ["first", "second"] {
        let (out, peak) = import(&db, &[path], None);
        assert!(out.status.success(), "{run}: {}", text(&out));
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            said.starts_with("imported 1000000 points into 4 series"),
            "{said}"
        );
        eprintln!(
            "{run} import: peak RSS {peak} MiB for a {size_mib} MiB file ({small_peak} MiB for a \
             tenth of it); {said}"
        );
        // Ten times the rows, not ten times the memory.
        assert!(
            peak <= small_peak + 16,
            "{run}: {peak} MiB resident, {small_peak} MiB for a tenth of the rows"
        );
        assert_eq!(
            db.count("SELECT count(*) AS n FROM timeseries_data WHERE series_name LIKE 'imp.%'"),
            1_000_000,
            "{run}"
        );
    }
    // Tagged, and folded before the command ended, the hour of each
    // series' newest point too (the import is over): query-ready.
    assert_eq!(
        db.count("SELECT count(*) AS n FROM timeseries_series WHERE tags ? 'host' AND series_name LIKE 'imp.%'"),
        4
    );
    assert_eq!(
        db.count(crate::rollups::FOLDED),
        db.count("SELECT count(*) AS n FROM timeseries_data")
    );
}

#[test]
fn line_protocol_from_stdin_and_a_gzip_csv_for_one_series() {
    let db = TestDatabase::migrated();
    let lines = "cpu,host=a usage_idle=90 1767225600\ncpu,host=a usage_idle=91 1767225660\n";
    let (out, _) = import(
        &db,
        &["-", "--format", "lp", "--precision", "s"],
        Some(lines.as_bytes()),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        db.count("SELECT count(*) AS n FROM timeseries_series WHERE metric = 'cpu.usage_idle'"),
        1
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("one.csv.gz");
    let mut z = flate2::write::GzEncoder::new(
        std::fs::File::create(&file).unwrap(),
        flate2::Compression::default(),
    );
    writeln!(
        z,
        "time,value\n2026-01-01T00:00:00Z,1\n2026-01-01 00:00:01+00,2\n1767225602,3"
    )
    .unwrap();
    z.finish().unwrap();
    let (out, _) = import(&db, &[file.to_str().unwrap(), "--series", "one"], None);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        db.count("SELECT count(*) AS n FROM timeseries_data WHERE series_name = 'one'"),
        3
    );
}

#[test]
fn a_bad_row_stops_the_import_naming_its_line_and_keeps_the_batches_before() {
    let db = TestDatabase::migrated();
    let rows =
        "a,2026-01-01T00:00:00Z,1\na,2026-01-01T00:00:01Z,2\na,2026-01-01T00:00:02Z,3\na,soon,4\n";
    let (out, _) = import(
        &db,
        &["-", "--format", "csv", "--batch", "2"],
        Some(rows.as_bytes()),
    );
    assert!(!out.status.success());
    let said = text(&out);
    assert!(said.contains("line 4: time \"soon\""), "{said}");
    assert!(said.contains("2 points before it are written"), "{said}");
    // The first batch went in whole; the second, with the bad row, not at all.
    assert_eq!(db.count("SELECT count(*) AS n FROM timeseries_data"), 2);
}

#[test]
fn on_a_terminal_it_shows_a_progress_bar() {
    let db = TestDatabase::migrated();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bar.csv");
    csv(&file, 200_000, "bar");
    // `script` gives the command a terminal and copies what it shows.
    let command = format!(
        "{} import {}",
        env!("CARGO_BIN_EXE_mcp-server"),
        file.display()
    );
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .env_remove("REDIS_URL")
        .stdin(Stdio::null())
        .output()
        .expect("script (util-linux) runs");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    // Bytes read of the file's size, the rate, the time left, points per second.
    assert!(shown.contains("MiB/"), "{shown}");
    assert!(shown.contains("left)"), "{shown}");
    assert!(shown.contains("points/s"), "{shown}");
    assert!(
        shown.contains("imported 200000 points into 4 series"),
        "{shown}"
    );
}
