"""Every figure of the performance table, each next to its baseline measured
in the same run: wrk for cache hits and /health (baseline: redis-benchmark
GET), the hit latency on one connection (baseline: redis GET from one client), ingest
at three batch sizes and through the collectors' formats (baseline: psql \\copy of
the same rows), the statistics
miss at 100k and 1M points, 10M with BENCH_10M=1 (baseline: the same SQL in
psql), and the server's RSS idle and at peak. Standard library only; prints
figures and never fails on one.

    python3 bench/bench.py MCP_URL DATABASE_URL CACHE SERVER_PID [REDIS_PORT]
"""

import base64
import csv
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone

MCP_URL, DB_URL, CACHE, SERVER_PID = sys.argv[1:5]
REDIS_PORT = sys.argv[5] if len(sys.argv) > 5 else None
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
WRK_SECS = int(os.environ.get("BENCH_WRK_SECS", "10"))
# BENCH_ONLY=fleet: the fleet and the catalog rows alone (the full fleet
# takes about 25 minutes; the rest of the bench as long again).
# BENCH_ONLY=lifecycle: ingest against \copy, the statistics misses with the
# fold and verify, and retention (about 5 minutes).
ONLY = os.environ.get("BENCH_ONLY", "")
FLEET_ONLY = ONLY == "fleet"
STATS_SIZES = ([100_000, 1_000_000] + ([10_000_000] if os.environ.get("BENCH_10M") == "1" else [])
               + ([30_000_000] if os.environ.get("BENCH_BIG") == "1" else []))
# (points per call, calls): half a million points per size, fewer for the small batch.
INGEST = [(1_000, 100), (10_000, 50), (100_000, 5)]

url = urllib.parse.urlsplit(MCP_URL)
base = f"{url.scheme}://{url.netloc}"
conn = http.client.HTTPConnection(url.hostname, url.port)
session = None
next_id = 0
tmp = tempfile.mkdtemp()


def rpc(method, params, raw=None):
    global next_id, session
    next_id += 1
    body = raw or json.dumps({"jsonrpc": "2.0", "id": next_id, "method": method, "params": params})
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if session:
        headers |= {"Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"}
    global conn
    try:
        conn.request("POST", url.path, body=body, headers=headers)
        res = conn.getresponse()
    except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
        # The server closed the idle keep-alive connection during a long load.
        conn = http.client.HTTPConnection(url.hostname, url.port)
        conn.request("POST", url.path, body=body, headers=headers)
        res = conn.getresponse()
    data = res.read()
    if method == "initialize":
        session = res.getheader("Mcp-Session-Id")
    if not data:
        return None
    msg = json.loads(data)
    if "error" in msg or msg.get("result", {}).get("isError"):
        raise SystemExit(f"{method} failed: {data[:300]!r}")
    return msg["result"]


def call(tool, args):
    return rpc("tools/call", {"name": tool, "arguments": args})


def psql(*args):
    return subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", DB_URL, *args],
                          check=True, capture_output=True, text=True).stdout


def value(i):
    return 50 + 10 * ((i * 7919) % 1000) / 1000 + i * 1e-5


def write_csv(path, series, n):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        for i in range(n):
            w.writerow([series, (T0 + timedelta(seconds=i)).isoformat(), repr(value(i))])


def copy_in(path):
    """Seconds to \\copy the file, as any SQL writer (through the
    invalidation log's trigger, when it is on)."""
    t = time.perf_counter()
    psql("-c", f"\\copy timeseries_data(series_name, time, value) FROM '{path}' CSV")
    return time.perf_counter() - t


def rss():
    """(current, peak) resident set of the server, MiB."""
    with open(f"/proc/{SERVER_PID}/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    kib = lambda k: int(fields[k].split()[0]) / 1024  # noqa: E731
    return kib("VmRSS"), kib("VmHWM")


def wrk(target, connections, script=None, threads=2):
    """(requests/s, p50 ms, p99 ms, non-2xx) from a wrk run."""
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{WRK_SECS}s", "--latency", "--timeout", "5s"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run(cmd + [target], check=True, capture_output=True, text=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        n, unit = float(m.group(1)), m.group(2)
        return n / 1000 if unit == "us" else n * 1000 if unit == "s" else n

    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rate, pct(50), pct(99), int(bad.group(1)) if bad else 0


def redis_get(clients):
    """(GET/s, p50 ms) from redis-benchmark against the same Redis."""
    out = subprocess.run(["redis-benchmark", "-p", REDIS_PORT, "-t", "get", "-n",
                          str(100_000 if clients > 1 else 20_000), "-c", str(clients), "--csv"],
                         check=True, capture_output=True, text=True).stdout
    row = next(csv.reader(out.strip().splitlines()[-1:]))
    return float(row[1]), float(row[4])


def psql_ms(sql):
    out = psql("-c", "\\timing on", "-c", sql)
    return float(out.strip().splitlines()[-1].split()[1])


def line(label, figure, baseline="", note=""):
    print(f"{label:<48} {figure:>24}   {baseline:<34} {note}")


rpc("initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}})
rpc("notifications/initialized", None, raw=json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))
time.sleep(1)
idle_rss, _ = rss()
print(f"cache backend: {CACHE}; wrk runs {WRK_SECS} s each; {os.cpu_count()} cores")
print()
line("figure", "this server", "baseline (same run)", "goal")

# --- ingest at three batch sizes, each against \copy of the same rows; the
# goal is that the invalidation trigger leaves the ratio within 5%, so both
# run with the trigger (as shipped) and without it, alternating order.
TRIGGERS = "ALTER TABLE timeseries_data {} TRIGGER timeseries_data_inserted"


def ingest_rate(series, per_call, calls):
    bodies = []
    for c in range(calls):
        points = [{"time": (T0 + timedelta(seconds=c * per_call + i)).isoformat(), "value": value(c * per_call + i)}
                  for i in range(per_call)]
        bodies.append(json.dumps({"jsonrpc": "2.0", "id": c, "method": "tools/call",
                                  "params": {"name": "ingest_timeseries",
                                             "arguments": {"series": series, "points": points}}}))
    started = time.perf_counter()
    for b in bodies:
        rpc("tools/call", None, raw=b)
    return per_call * calls / (time.perf_counter() - started)


for per_call, calls in ([] if FLEET_ONLY else INGEST):
    n = per_call * calls
    path = os.path.join(tmp, "ingest.csv")
    rates = {True: ([], []), False: ([], [])}
    for k, trigger in enumerate((True, False, False, True)):
        if not trigger:
            psql("-c", TRIGGERS.format("DISABLE"))
        rates[trigger][0].append(ingest_rate(f"bench_ingest_{per_call}_{k}", per_call, calls))
        write_csv(path, f"bench_copy_{per_call}_{k}", n)
        rates[trigger][1].append(n / copy_in(path))
        if not trigger:
            psql("-c", TRIGGERS.format("ENABLE"))
    os.unlink(path)
    (mcp_on, copy_on), (mcp_off, copy_off) = ([statistics.mean(v) for v in rates[t]] for t in (True, False))
    line(f"ingest {n:,} points, {per_call:,} per call", f"{mcp_on:,.0f} points/s",
         f"\\copy {copy_on:,.0f} points/s", f"ratio {mcp_on / copy_on:.2f} (>= 0.7, rollups kept)")
    line("  without the invalidation trigger", f"{mcp_off:,.0f} points/s", f"\\copy {copy_off:,.0f} points/s",
         f"ratio {mcp_off / copy_off:.2f}; the trigger moves it {(mcp_on / copy_on) / (mcp_off / copy_off) - 1:+.1%} (within 5%)")

# --- the collectors' formats, each against \copy of the same rows (their
# names, times, values and tags as stored), 500,000 samples per shape. Bodies
# are built before the clock starts; one connection, one request at a time.

def varint(n):
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def pb(number, payload):
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def remote_write_body(series, samples):
    """A prompb WriteRequest, in snappy's block format with literals only
    (the standard library has no snappy; the server inflates either alike)."""
    raw = b"".join(pb(1, b"".join(pb(1, pb(1, k.encode()) + pb(2, v.encode())) for k, v in labels.items())
                      + b"".join(pb(2, b"\x09" + struct.pack("<d", v) + b"\x10" + varint(t)) for v, t in samples(i)))
                   for i, labels in enumerate(series))
    out = bytearray(varint(len(raw)))
    for i in range(0, len(raw), 65536):
        chunk = raw[i:i + 65536]
        out += bytes([61 << 2]) + (len(chunk) - 1).to_bytes(2, "little") + chunk
    return bytes(out)


T0_MS = int(T0.timestamp() * 1000)


def scrapes(metric, shard, requests, series=500):
    """One request per scrape of `series` series, as Prometheus sends them."""
    return [remote_write_body([{"__name__": metric, "job": "node", "shard": str(shard),
                                "instance": f"host{s % 50}:9100", "cpu": str(s)} for s in range(series)],
                              lambda i, k=k: [(value(k * series + i), T0_MS + 15_000 * k)])
            for k in range(requests)]


# (label, path, metric, one list of bodies per connection)
SHAPES = [
    # Prometheus' default queue sends at most 500 samples a request: one
    # scrape of 500 series.
    ("remote write, 500 series x 1 sample a request", "/api/v1/write", "bench_rw1",
     [scrapes("bench_rw1", 0, 1000)]),
    # max_samples_per_send: 2000, as docs/ingest.md suggests.
    ("  2,000 series x 1 sample a request", "/api/v1/write", "bench_rw2k",
     [scrapes("bench_rw2k", 0, 250, series=2000)]),
    # The same from four shards at once, as Prometheus runs them when one
    # does not keep up.
    ("  500 series x 1 sample, from 4 shards at once", "/api/v1/write", "bench_rw4",
     [scrapes("bench_rw4", shard, 250) for shard in range(4)]),
    # Catching up after an outage: many samples of fewer series.
    ("remote write, 50 series x 200 samples a request", "/api/v1/write", "bench_rw200", [[
        remote_write_body([{"__name__": "bench_rw200", "job": "node", "instance": f"host{s}:9100"} for s in range(50)],
                          lambda i, k=k: [(value(j), T0_MS + 15_000 * (k * 200 + j)) for j in range(200)])
        for k in range(50)]]),
    # Telegraf's default batch: 1,000 lines, here of 5 fields each.
    ("line protocol, 1,000 lines x 5 fields a request", "/api/v2/write?precision=s", "bench_lp", [[
        "".join(f"bench_lp,host=h{n % 100},cpu=cpu{n // 100 % 10} usage_user={value(n)},usage_system={value(n + 1)},"
                f"usage_idle={value(n + 2)},usage_iowait={value(n + 3)},usage_steal={value(n + 4)} "
                f"{int(T0.timestamp()) + 10 * (n // 1000)}\n" for n in range(k * 1000, (k + 1) * 1000)).encode()
        for k in range(100)]]),
]


def send_all(path, headers, bodies):
    c = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    for b in bodies:
        c.request("POST", path, b, headers)
        r = c.getresponse()
        r.read()
        assert r.status == 204, (path, r.status)


for label, path, metric, per_connection in ([] if ONLY else SHAPES):
    # Each shape on a settled database: the loads before it leave autovacuum
    # and a checkpoint to run, which would land on whichever comes next.
    psql("-c", "VACUUM ANALYZE timeseries_data", "-c", "CHECKPOINT")
    headers = ({"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"}
               if "line protocol" not in label else {"Content-Type": "text/plain"})
    senders = [threading.Thread(target=send_all, args=(path, headers, bodies)) for bodies in per_connection]
    started = time.perf_counter()
    for t in senders:
        t.start()
    for t in senders:
        t.join()
    took = time.perf_counter() - started
    same = f"tags->>'__name__' = '{metric}' OR tags->>'_measurement' = '{metric}'"
    n = int(psql("-At", "-c", f"SELECT count(*) FROM timeseries_data WHERE {same}").strip())
    path_csv = os.path.join(tmp, "same.csv")
    psql("-c", f"\\copy (SELECT series_name, time, value, tags FROM timeseries_data WHERE {same}) "
               f"TO '{path_csv}' CSV")

    def copy_rows(prefix, per_copy):
        """Seconds to \\copy the same rows under new names, on a settled
        database as the server had: in one \\copy, or one per request's worth."""
        with open(path_csv) as f:
            rows = [prefix + r for r in f]
        files, script = [], []
        for i in range(0, len(rows), per_copy):
            files.append(os.path.join(tmp, f"same_{i}.csv"))
            with open(files[-1], "w") as f:
                f.writelines(rows[i:i + per_copy])
            script.append(f"\\copy timeseries_data(series_name, time, value, tags) FROM '{files[-1]}' CSV")
        psql("-c", "VACUUM ANALYZE timeseries_data", "-c", "CHECKPOINT")
        t = time.perf_counter()
        psql(*[a for c in script for a in ("-c", c)])
        took = time.perf_counter() - t
        for name in files:
            os.unlink(name)
        return took

    copy_s = copy_rows("c", n)
    requests = sum(len(b) for b in per_connection)
    chunked_s = copy_rows("d", -(-n // requests))
    os.unlink(path_csv)
    line(f"{label}", f"{n / took:,.0f} samples/s", f"\\copy {n / copy_s:,.0f} rows/s",
         f"ratio {copy_s / took:.2f} (>= 0.8); {n:,} rows")
    line("    \\copy of one request's rows at a time", f"{n / chunked_s:,.0f} rows/s",
         f"{requests:,} transactions, one psql session", f"ratio to one \\copy {copy_s / chunked_s:.2f}")
del SHAPES

# --- the statistics miss, growing with the series, against the same SQL
# The statement the server runs (src/store/aggregates.rs, `summary`).
SQL = """SELECT count, mean, stddev, min, max, p[1], p[2], p[3], first_time, last_time
 FROM (SELECT count(*) AS count, avg(value) AS mean, stddev_samp(value) AS stddev, min(value) AS min,
 max(value) AS max, percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY value) AS p,
 min(time) AS first_time, max(time) AS last_time
 FROM timeseries_data WHERE series_name = '{series}' AND time >= '-infinity' AND time < 'infinity') s"""
for size in ([] if FLEET_ONLY else STATS_SIZES):
    series = f"bench_stats_{size}"
    path = os.path.join(tmp, "stats.csv")
    write_csv(path, series, size)
    copy_in(path)
    os.unlink(path)
    psql("-c", "VACUUM ANALYZE timeseries_data")
    # The server's worker would fold what \copy wrote at its next tick;
    # folded here by hand to time the fold itself (after the VACUUM, as on
    # a table that was not loaded a moment ago).
    t = time.perf_counter()
    psql("-c", f"SELECT mcp_refold('{series}')")
    fill_s = time.perf_counter() - t
    psql("-c", "VACUUM ANALYZE timeseries_rollups")
    # Interleaved, so drift on a shared machine hits both alike.
    direct, misses = [], []
    for k in range(5):
        out = psql("-c", "\\timing on", "-c", SQL.format(series=series))
        direct.append(float(out.strip().splitlines()[-1].split()[1]))
        start = (T0 - timedelta(seconds=k + 1)).isoformat()  # a new window each time: a guaranteed miss
        t = time.perf_counter()
        r = call("compute_statistics", {"series": series, "start": start})
        misses.append((time.perf_counter() - t) * 1e3)
        assert r["structuredContent"]["cached"] is False and r["structuredContent"]["count"] == size
    d, m = statistics.median(direct), statistics.median(misses)
    line(f"compute_statistics miss, {size:,} points", f"{m:,.1f} ms", f"same SQL in psql {d:,.1f} ms",
         f"ratio {m / d:.2f}; <= 50 ms TSL, 100 ms PG")
    line("  rollup fold (mcp_refold)", f"{fill_s * 1e3:,.0f} ms", "", "")
    # Every hour and day of the series against its points, as an operator
    # runs it (a process of its own, start-up included): goal <= 2x the fold.
    t = time.perf_counter()
    subprocess.run(["./target/release/mcp-server", "rollups", "verify", "--series", series],
                   env=os.environ | {"DATABASE_URL": DB_URL, "RUST_LOG": "warn"},
                   check=True, capture_output=True)
    verify_s = time.perf_counter() - t
    line("  rollups verify", f"{verify_s * 1e3:,.0f} ms", f"mcp_refold {fill_s * 1e3:,.0f} ms",
         f"ratio {verify_s / fill_s:.2f} (<= 2)")
    # The other read tools over the whole series, each beside its raw SQL.
    for tool, args, raw_sql in [
        ("analyze_trend", {}, f"SELECT regr_slope(value, date_part('epoch', time)), regr_r2(value, date_part('epoch', time)) FROM timeseries_data WHERE series_name = '{series}'"),
        ("query_timeseries", {"bucket": "1h", "aggregate": "avg", "max_points": 10000}, f"SELECT date_bin('1 hour', time, TIMESTAMPTZ '2000-01-01Z'), avg(value) FROM timeseries_data WHERE series_name = '{series}' GROUP BY 1 ORDER BY 1 LIMIT 10001"),
        ("detect_anomalies", {"method": "zscore"}, f"WITH s AS (SELECT avg(value) m, stddev_samp(value) sd FROM timeseries_data WHERE series_name = '{series}') SELECT count(*) FROM timeseries_data, s WHERE series_name = '{series}' AND abs(value - m) > 3 * sd"),
        ("plot_series", {"width": 800, "height": 300, "bucket": "1h"}, None),
    ]:
        times, raws = [], []
        for k in range(3):
            a = dict(args, series=series, start=(T0 - timedelta(seconds=k + 10)).isoformat())
            t = time.perf_counter()
            r = call(tool, a)
            times.append((time.perf_counter() - t) * 1e3)
            assert not r.get("isError"), r
            if raw_sql:
                raws.append(psql_ms(raw_sql))
        # Not `base`: that is the server's address, used by the wrk rows below.
        raw_figure = f"raw SQL in psql {statistics.median(raws):,.1f} ms" if raws else ""
        shown = " ".join(f"{k}={v}" for k, v in args.items() if k in ("bucket", "method"))
        line(f"  {tool} {shown}".rstrip() + f", {size:,}",
             f"{statistics.median(times):,.1f} ms", raw_figure, "")

# --- retention: 30 days of 1 s points past RETENTION_RAW_DAYS=1, as the
# worker drops them (a process of its own, start-up included), against one
# DELETE of the same rows of a copy in psql. Goal: >= 500k points/s; on
# TimescaleDB (TIMESCALE_URL), <= 2 s by chunk drops.
if not FLEET_ONLY:
    hour = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    first = hour - timedelta(days=31)
    n = 30 * 86_400
    path = os.path.join(tmp, "retention.csv")
    for series in ("bench_retention", "bench_retention_sql"):
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            for i in range(n):
                w.writerow([series, (first + timedelta(seconds=i)).isoformat(), repr(value(i))])
        copy_in(path)
        psql("-c", f"SELECT mcp_refold('{series}')")
    os.unlink(path)
    psql("-c", "VACUUM ANALYZE timeseries_data")
    t = time.perf_counter()
    out = subprocess.run(["./target/release/mcp-server", "retention"],
                         env=os.environ | {"DATABASE_URL": DB_URL, "RUST_LOG": "warn",
                                           "RETENTION_OVERRIDES": '[{metric="bench_retention", raw_days=1}]'},
                         check=True, capture_output=True, text=True).stdout
    took = time.perf_counter() - t
    dropped = int(re.search(r"dropped (\d+) raw points", out).group(1))
    horizon = (hour - timedelta(days=1)).isoformat()
    delete_ms = psql_ms("BEGIN; SELECT set_config('mcp.writer', 'server', true); "
                        f"DELETE FROM timeseries_data WHERE series_name = 'bench_retention_sql' AND time < '{horizon}'; COMMIT")
    line(f"retention, {dropped:,} of {n:,} points (1 s, 30 days)", f"{dropped / took:,.0f} points/s",
         f"one DELETE in psql {dropped / (delete_ms / 1e3):,.0f} points/s",
         f"ratio {delete_ms / 1e3 / took:.2f}; >= 500,000 points/s; TSL <= 2 s")

# The rest of the single-series rows need their series (BENCH_ONLY skips them).
if not ONLY:
    # --- bytes per point: the table and its indexes, and the rollups, per million points
    sizes = psql("-At", "-c", "SELECT pg_total_relation_size('timeseries_data'), pg_total_relation_size('timeseries_rollups'), (SELECT count(*) FROM timeseries_data)").strip().split("|")
    # The TimescaleDB rows run where the bench's database has a hypertable (run.sh
    # puts it on TIMESCALE_URL when that is set); elsewhere they say skipped.
    HYPERTABLE = psql("-At", "-c", "SELECT to_regclass('timescaledb_information.hypertables') IS NOT NULL").strip() == "t"
    if HYPERTABLE:
        sizes[0] = psql("-At", "-c", "SELECT hypertable_size('timeseries_data')").strip() or sizes[0]
    points_total = int(sizes[2])
    line("table + indexes per 1M points", f"{int(sizes[0]) / points_total * 1e6 / 2**20:,.1f} MiB",
         f"rollups {int(sizes[1]) / points_total * 1e6 / 2**20:,.2f} MiB", "")
    try:
        if not HYPERTABLE:
            raise RuntimeError("timescale: skipped (no TIMESCALE_URL)")
        psql("-c", "SELECT count(compress_chunk(c)) FROM show_chunks('timeseries_data') c")
        after = int(psql("-At", "-c", "SELECT hypertable_size('timeseries_data')").strip())
        line("  with every chunk in the columnstore (TSL)", f"{after / points_total * 1e6 / 2**20:,.1f} MiB",
             f"{int(sizes[0]) / after:.1f}x smaller", "<= 1/8 of today's bytes")
        for size in STATS_SIZES:
            t = time.perf_counter()
            call("compute_statistics", {"series": f"bench_stats_{size}", "start": (T0 - timedelta(seconds=99)).isoformat()})
            line(f"  compute_statistics miss, compressed, {size:,}", f"{(time.perf_counter() - t) * 1e3:,.1f} ms", "", "")
    except Exception as e:
        # On TimescaleDB's Apache edition compress_chunk is refused: its words say so.
        line("columnstore (TimescaleDB TSL)", "skipped" if not HYPERTABLE else "not here",
             str(e).splitlines()[0][:60] if str(e) else "", "")

    # --- charts: plot_series over the 1M-point series, against the bucket SQL it runs
    # (src/store/aggregates.rs, `envelope`: one index range scan per bucket) and the
    # plain GROUP BY date_bin of query_timeseries, both in psql with the server's width.
    LATERAL = """SELECT g.b AS time, s.value, s.low, s.high, s.count
     FROM generate_series(date_bin('{seconds} seconds'::interval, '{first}'::timestamptz, TIMESTAMPTZ '2000-01-01 00:00:00+00'),
     '{last}'::timestamptz, '{seconds} seconds'::interval) AS g(b)
     CROSS JOIN LATERAL (SELECT avg(value) AS value, min(value) AS low, max(value) AS high, count(*) AS count
     FROM timeseries_data WHERE series_name = '{series}' AND time >= '{start}' AND time < 'infinity'
     AND time >= g.b AND time < g.b + '{seconds} seconds'::interval) s WHERE s.count > 0 ORDER BY 1 LIMIT {limit}"""
    GROUP_BY = """SELECT date_bin('{seconds} seconds'::interval, time, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS time,
     avg(value) AS value, min(value) AS low, max(value) AS high, count(*) AS count
     FROM timeseries_data WHERE series_name = '{series}' AND time >= '{start}' AND time < 'infinity'
     GROUP BY 1 ORDER BY 1 LIMIT {limit}"""


    chart_series = f"bench_stats_{STATS_SIZES[1]}"
    same_sql, group_by, misses, hits = [], [], [], []
    for k in range(5):
        start = (T0 - timedelta(seconds=k + 1)).isoformat()  # a new window each time: a miss
        args = {"series": chart_series, "start": start, "width": 1000, "height": 400}
        t = time.perf_counter()
        r = call("plot_series", args)
        misses.append((time.perf_counter() - t) * 1e3)
        figures = r["structuredContent"]
        assert figures["cached"] is False and figures["points"] == STATS_SIZES[1], figures
        t = time.perf_counter()
        assert call("plot_series", args)["structuredContent"]["cached"] is True
        hits.append((time.perf_counter() - t) * 1e3)
        unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[figures["bucket"][-1]]
        q = {"seconds": int(figures["bucket"][:-1]) * unit, "series": chart_series, "start": start,
             "first": figures["first_time"], "last": figures["last_time"],
             "limit": figures["plot_area"]["right"] - figures["plot_area"]["left"] + 1}
        same_sql.append(psql_ms(LATERAL.format(**q)))
        group_by.append(psql_ms(GROUP_BY.format(**q)))
    png_kib = len(r["content"][0]["data"]) * 3 / 4 / 1024
    line(f"plot_series 1000x400, {STATS_SIZES[1]:,} points, miss", f"{statistics.median(misses):,.1f} ms",
         f"its bucket SQL in psql {statistics.median(same_sql):,.1f} ms", "well under 1,000 ms")
    line("  the same buckets by GROUP BY date_bin (psql)", f"{statistics.median(group_by):,.1f} ms",
         f"{figures['drawn']} buckets of {figures['bucket']}", "")
    line("plot_series 1000x400, data cached (draw + PNG)", f"{statistics.median(hits):,.1f} ms",
         f"{png_kib:.0f} KiB PNG", "")

    # --- cache hits: sequential latency, then wrk
    hit_args = {"series": "bench_stats_100000", "start": (T0 - timedelta(seconds=1)).isoformat()}
    # Warm first: the loads above can outlast the entry's 5-minute TTL.
    call("compute_statistics", hit_args)
    for _ in range(3):
        assert call("compute_statistics", hit_args)["structuredContent"]["cached"] is True
    # Let PostgreSQL settle after the loads (autovacuum, checkpoint) before timing requests.
    psql("-c", "VACUUM ANALYZE", "-c", "CHECKPOINT")
    script = os.path.join(tmp, "hit.lua")
    with open(script, "w") as f:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                           "params": {"name": "compute_statistics", "arguments": hit_args}})
        f.write(f"""wrk.method = "POST"
    wrk.body = {json.dumps(body)}
    wrk.headers["Content-Type"] = "application/json"
    wrk.headers["Accept"] = "application/json, text/event-stream"
    wrk.headers["Mcp-Session-Id"] = "{session}"
    wrk.headers["MCP-Protocol-Version"] = "2025-11-25"
    """)
    redis_seq = redis_get(1) if REDIS_PORT else None
    rate, p50, p99, bad = wrk(MCP_URL, 1, script, threads=1)
    line("cache hit, one connection (wrk), p50 / p99", f"{p50:.3f} / {p99:.3f} ms",
         f"redis GET p50 {redis_seq[1]:.3f} ms (1 client)" if redis_seq else "", "p50 < 0.5 ms")
    redis_par = redis_get(8) if REDIS_PORT else None
    rate, p50, p99, bad = wrk(MCP_URL, 8, script)
    line("cache hit tools/call, wrk 2 threads / 8 conns", f"{rate:,.0f} calls/s",
         f"redis GET {redis_par[0]:,.0f}/s (8 clients)" if redis_par else "",
         f">= 7,000 (p50 {p50:.2f}, p99 {p99:.2f} ms{f', {bad} non-2xx' if bad else ''})")
    no_auth_rate = rate
    if os.environ.get("BENCH_JWT_URL"):
        # The same hit on a server that takes JWT access tokens: the token is
        # verified once, then found in the in-process cache by its digest.
        jwt_url = urllib.parse.urlsplit(os.environ["BENCH_JWT_URL"])
        # Fetched now, not at start: the provider's tokens live 5 minutes, less
        # than the figures before this one take.
        token = urllib.request.urlopen(urllib.request.Request(
            os.environ["BENCH_JWT_ISSUER"] + "/token",
            data=urllib.parse.urlencode({"grant_type": "client_credentials", "resource": os.environ["BENCH_JWT_URL"],
                                         "scope": "timeseries:read"}).encode(),
            headers={"Authorization": "Basic " + base64.b64encode(b"agent:agent-secret").decode()}))
        jwt = json.load(token)["access_token"]
        auth = {"Authorization": f"Bearer {jwt}",
                "Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        c = http.client.HTTPConnection(jwt_url.hostname, jwt_url.port)
        c.request("POST", jwt_url.path, headers=auth, body=json.dumps({
            "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "bench", "version": "1"}}}))
        res = c.getresponse()
        res.read()
        jwt_session = res.getheader("Mcp-Session-Id")
        for _ in range(3):
            c.request("POST", jwt_url.path, body=body, headers=auth | {
                "Mcp-Session-Id": jwt_session, "MCP-Protocol-Version": "2025-11-25"})
            c.getresponse().read()
        jwt_script = os.path.join(tmp, "hit_jwt.lua")
        with open(script) as f, open(jwt_script, "w") as g:
            g.write(f.read().replace(session, jwt_session)
                    + f'wrk.headers["Authorization"] = "Bearer {jwt}"\n')
        rate, p50, p99, bad = wrk(os.environ["BENCH_JWT_URL"], 8, jwt_script)
        line("cache hit tools/call with a JWT, wrk 2 threads / 8 conns", f"{rate:,.0f} calls/s",
             f"without auth {no_auth_rate:,.0f}/s (above)",
             f"p50 {p50:.2f}, p99 {p99:.2f} ms{f', {bad} non-2xx' if bad else ''}")
    rate, p50, p99, bad = wrk(f"{base}/health", 32)
    line("GET /health, wrk 2 threads / 32 conns", f"{rate:,.0f} req/s", f"p99 {p99:.2f} ms",
         f">= 15,000, p99 < 10 ms{f' ({bad} non-2xx)' if bad else ''}")
    rate, p50, p99, bad = wrk(f"{base}/live", 32)
    line("GET /live, wrk 2 threads / 32 conns", f"{rate:,.0f} req/s", f"p99 {p99:.2f} ms",
         f"{f'({bad} non-2xx)' if bad else ''}")

def api_get(path, params):
    """(ms, parsed body) of a GET on the Prometheus API, which must succeed."""
    c = http.client.HTTPConnection(url.hostname, url.port, timeout=300)
    t = time.perf_counter()
    c.request("GET", path + "?" + urllib.parse.urlencode(params, doseq=True))
    r = c.getresponse()
    body = r.read()
    took = (time.perf_counter() - t) * 1e3
    if r.status != 200:
        raise SystemExit(f"{path} {params}: {r.status} {body[:300]!r}")
    return took, json.loads(body)


def prometheus_api_rows(one, instances, days, end, last6):
    """The query API as Grafana asks it, each beside psql reading the same
    raw points (the windows of a wide step; the last 6 h and 5 minutes)."""
    secs = lambda iso: str(datetime.fromisoformat(iso).timestamp())  # noqa: E731
    expr = f"sum by (job) (rate({one}[5m]))"
    start_h = (T0 + timedelta(hours=1)).isoformat()
    windows_sql = f"""SELECT count(*), sum(x.value) FROM timeseries_series s
        CROSS JOIN generate_series(TIMESTAMPTZ '{start_h}', TIMESTAMPTZ '{end}', interval '1 hour') w(t)
        CROSS JOIN LATERAL (SELECT value FROM timeseries_data d WHERE d.series_name = s.series_name
                              AND d.time BETWEEN w.t - interval '5 minutes' AND w.t) x
        WHERE s.metric = '{one}'"""
    tail_sql = f"""SELECT count(*), sum(value) FROM timeseries_data WHERE series_name IN (
        SELECT series_name FROM timeseries_series WHERE metric = '{one}')
        AND time BETWEEN TIMESTAMPTZ '{last6}' - interval '5 minutes' AND TIMESTAMPTZ '{end}'"""
    catalog_sql = f"SELECT tags FROM timeseries_series WHERE metric = '{one}'"
    values_sql = "SELECT DISTINCT tags->>'instance' FROM timeseries_series WHERE tags ? 'instance'"
    rows = [
        (f"  query_range {expr}, step 1h, {days} d", "/api/v1/query_range",
         {"query": expr, "start": secs(start_h), "end": secs(end), "step": "3600"},
         f"the windows' raw points in psql {psql_ms(windows_sql):,.1f} ms", "<= 150 ms"),
        ("  the same at step 1m over the last 6 h", "/api/v1/query_range",
         {"query": expr, "start": secs(last6), "end": secs(end), "step": "60"},
         f"the 6 h's raw points in psql {psql_ms(tail_sql):,.1f} ms", "<= 300 ms"),
        (f"  /api/v1/series of {one} ({instances} series)", "/api/v1/series", {"match[]": one},
         f"the catalog's rows in psql {psql_ms(catalog_sql):,.1f} ms", "<= 50 ms"),
        ("  the same with start and end (data probed)", "/api/v1/series",
         {"match[]": one, "start": secs(last6), "end": secs(end)}, "", "<= 50 ms"),
        ("  /api/v1/label/instance/values", "/api/v1/label/instance/values", {},
         f"the catalog's tags in psql {psql_ms(values_sql):,.1f} ms", "<= 50 ms"),
    ]
    for label, path, params, baseline, goal in rows:
        took = statistics.median(api_get(path, params)[0] for _ in range(3))
        line(label, f"{took:,.1f} ms", baseline, goal)


def remote_read_rows(one, instances, end):
    """Remote read of one day of `one`'s series from here, beside a
    Prometheus 2.42 reading the same samples from its own TSDB (built with
    promtool from a dump of them): samples per second, median of 5."""
    day_end = int(datetime.fromisoformat(end).timestamp() * 1000)
    day_start = day_end - 86_400_000
    matcher = pb(2, b"__name__") + pb(3, one.encode())
    query = b"\x08" + varint(day_start) + b"\x10" + varint(day_end) + pb(3, matcher)
    raw = pb(1, query)
    body = bytearray(varint(len(raw)))
    body += bytes([61 << 2]) + (len(raw) - 1).to_bytes(2, "little") + raw
    headers = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
               "X-Prometheus-Remote-Read-Version": "0.1.0"}
    samples = int(psql("-At", "-c", f"""SELECT count(*) FROM timeseries_data WHERE series_name IN (
        SELECT series_name FROM timeseries_series WHERE metric = '{one}')
        AND time BETWEEN TIMESTAMPTZ 'epoch' + {day_start} * interval '1 ms'
                     AND TIMESTAMPTZ 'epoch' + {day_end} * interval '1 ms'""").strip())

    def timed(port):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        t = time.perf_counter()
        c.request("POST", "/api/v1/read", bytes(body), headers)
        r = c.getresponse()
        r.read()
        took = time.perf_counter() - t
        if r.status != 200:
            raise SystemExit(f"remote read on {port}: {r.status}")
        return took

    ours = statistics.median(timed(url.port) for _ in range(5))
    if not shutil.which("prometheus") or not shutil.which("promtool"):
        line(f"remote read, 1 day of {instances} series", f"{samples / ours:,.0f} samples/s",
             "no Prometheus here to compare", ">= 0.5x Prometheus")
        return
    work = tempfile.mkdtemp()
    try:
        dump = psql("-At", "-F", "\t", "-c", f"""SELECT c.tags::text, extract(epoch FROM d.time), d.value
            FROM timeseries_data d JOIN timeseries_series c USING (series_name) WHERE c.metric = '{one}'
             AND d.time BETWEEN TIMESTAMPTZ 'epoch' + {day_start} * interval '1 ms'
                            AND TIMESTAMPTZ 'epoch' + {day_end} * interval '1 ms' ORDER BY c.series_name, d.time""")
        with open(os.path.join(work, "in.om"), "w") as f:
            for row in dump.splitlines():
                tags, t, v = row.split("\t")
                labels = ",".join(f'{k}="{val}"' for k, val in sorted(json.loads(tags).items()) if k != "__name__")
                f.write(f"{one}{{{labels}}} {v} {t}\n")
            f.write("# EOF\n")
        subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", os.path.join(work, "in.om"),
                        os.path.join(work, "data")], check=True, capture_output=True)
        with open(os.path.join(work, "prometheus.yml"), "w") as f:
            f.write("global: {}\n")
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        prom = subprocess.Popen(["prometheus", f"--config.file={work}/prometheus.yml",
                                 f"--storage.tsdb.path={work}/data", "--storage.tsdb.retention.time=36500d",
                                 f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(150):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1)
                    break
                except OSError:
                    time.sleep(0.2)
            theirs = statistics.median(timed(port) for _ in range(5))
        finally:
            prom.terminate()
            prom.wait(30)
        line(f"remote read, 1 day of {instances} series ({samples:,} samples)", f"{samples / ours:,.0f} samples/s",
             f"Prometheus 2.42 from its TSDB {samples / theirs:,.0f}/s", f"{theirs / ours:.2f}x (goal >= 0.5x)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- the fleet: questions across series over data written as collectors write
# it (remote write) and read right after, before the fold has run, then again
# once it has; each beside the plain SQL that answers it over the raw points.
# BENCH_FLEET=full is the fixture (20 metrics x 100 instances, 3 days
# at 30 s, 17M points); the default is 10 x 20, one day; BENCH_FLEET=0 skips.
FLEET = os.environ.get("BENCH_FLEET", "small")
if FLEET != "0" and ONLY != "lifecycle":
    metrics, instances, days = (20, 100, 3) if FLEET == "full" else (10, 20, 1)
    scrapes_n = days * 86_400 // 30
    fleet = [{"__name__": f"fleet_m{m:02}_total", "job": f"job{i % 4}", "instance": f"host{i:03}:9100",
              "code": ("200", "500")[i % 2]} for m in range(metrics) for i in range(instances)]
    # A counter per series, growing 1 to 3 a scrape; every tenth restarts midway.
    def grow(i, k):
        v = 1000 + k * (1 + i % 3)
        return v - 1000 - (scrapes_n // 2) * (1 + i % 3) if i % 10 == 0 and k >= scrapes_n // 2 else v
    per_body, per_series = 200, 100  # 20,000 samples a request
    bodies = [remote_write_body(fleet[a:a + per_body],
                                lambda i, a=a, k0=k0: [(grow(a + i, k), T0_MS + 30_000 * k)
                                                       for k in range(k0, min(k0 + per_series, scrapes_n))])
              for k0 in range(0, scrapes_n, per_series) for a in range(0, len(fleet), per_body)]
    total = len(fleet) * scrapes_n
    started = time.perf_counter()
    send_all("/api/v1/write", {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"}, bodies)
    written = time.perf_counter() - started
    del bodies
    line(f"fleet: {len(fleet):,} series x {scrapes_n:,} samples by remote write", f"{total / written:,.0f} samples/s",
         f"{written:.1f} s for {total:,}", "")
    start, end = T0.isoformat(), (T0 + timedelta(days=days)).isoformat()
    last6 = (T0 + timedelta(days=days, hours=-6)).isoformat()
    one = "fleet_m00_total"
    RATE_SQL = f"""SELECT c.tags->>'job', sum(x.inc / extract(epoch FROM x.last - x.first))
      FROM (SELECT series_name, sum(CASE WHEN d >= 0 THEN d WHEN d < 0 THEN value END) AS inc,
                   min(time) AS first, max(time) AS last
              FROM (SELECT series_name, time, value,
                           value - lag(value) OVER (PARTITION BY series_name ORDER BY time) AS d
                      FROM timeseries_data WHERE series_name IN (
                           SELECT series_name FROM timeseries_series WHERE metric LIKE '{{m}}%')) p
             GROUP BY series_name) x
      JOIN timeseries_series c USING (series_name) GROUP BY 1"""
    AVG_SQL = f"""SELECT c.tags->>'instance', avg(d.value) FROM timeseries_data d
      JOIN timeseries_series c USING (series_name) WHERE c.metric = '{one}' GROUP BY 1 ORDER BY 2 DESC LIMIT 10"""
    asks = [
        (f"  sum by (job) (rate), {instances} series, {days} d", {"selector": one, "per_series": "rate",
          "across": "sum", "by": ["job"]}, "aggregate_series", RATE_SQL.format(m=one), "<= 150 ms"),
        (f"  the same over all {len(fleet):,} series", {"selector": '{__name__=~"fleet_.*"}', "per_series": "rate",
          "across": "sum", "by": ["job"], "max_series": 10_000}, "aggregate_series",
         RATE_SQL.format(m="fleet_"), "<= 150 ms"),
        (f"  topk 10 by avg, {instances} series", {"selector": one, "per_series": "avg", "across": "avg",
          "by": ["instance"], "topk": 10}, "aggregate_series", AVG_SQL, "<= 150 ms"),
        (f"  compare_windows last 6 h, {instances} series", {"selector": one, "start": last6, "end": end},
         "compare_windows", "", "<= 300 ms"),
        (f"  per-hour groups: sum by (job) (rate), 1h, all {len(fleet):,}",
         {"selector": '{__name__=~"fleet_.*"}', "per_series": "rate", "across": "sum", "by": ["job"],
          "bucket": "1h", "max_series": 10_000}, "aggregate_series", "", "<= 300 ms"),
        (f"  compare_windows last day vs the day before, all {len(fleet):,}",
         {"selector": '{__name__=~"fleet_.*"}', "start": (T0 + timedelta(days=days - 1)).isoformat(),
          "end": end, "max_series": 10_000}, "compare_windows", "", "<= 300 ms"),
        (f"  plot_series of the same per job (a chart)",
         {"selector": '{__name__=~"fleet_.*"}', "max_series": 10_000,
          "aggregation": {"per_series": "rate", "across": "sum", "by": ["job"]}}, "plot_series", "", ""),
        ("  list_labels of the fleet", {"selector": '{__name__=~"fleet_.*"}'}, "list_labels", "", "<= 50 ms"),
        ("  label_values instance", {"label": "instance"}, "label_values", "", "<= 50 ms"),
    ]
    for when in ("read right after the write", "after the fold"):
        if when == "after the fold":
            # The server's own fold, waited for (at most 15 minutes): every
            # fleet series folded whole, its newest hour too once nothing was
            # written to it for ROLLUP_FOLD_AFTER_SECS (300 s).
            t = time.perf_counter()
            behind = -1
            while time.perf_counter() - t < 900:
                behind = int(psql("-At", "-c", """SELECT count(*) FROM timeseries_series s
                    WHERE s.metric LIKE 'fleet_%' AND s.folded_to <= (
                      SELECT max(d.time) FROM timeseries_data d WHERE d.series_name = s.series_name)""").strip())
                if behind == 0:
                    break
                time.sleep(2)
            line("  (the server's fold caught up)", f"{(time.perf_counter() - t):,.1f} s after the reads",
                 f"{behind} series still behind" if behind else "", "")
        print(f"fleet, {when}:")
        for label, args, tool, sql, goal in asks:
            if tool != "list_labels" and tool != "label_values":
                args = {"start": start, "end": end} | args
            t = time.perf_counter()
            call(tool, args)
            took = (time.perf_counter() - t) * 1e3
            line(label, f"{took:,.1f} ms", f"raw SQL in psql {psql_ms(sql):,.1f} ms" if sql else "", goal)

        prometheus_api_rows(one, instances, days, end, last6)
    remote_read_rows(one, instances, end)

    # A catalog of 100,000 series more, registered as collectors register
    # them: by remote write, one sample each. Discovery never reads points.
    catalog = [{"__name__": f"cat_m{i % 50}", "job": f"job{i % 10}", "instance": f"host{i // 50}",
                "code": ("200", "404", "500")[i % 3]} for i in range(1, 100_001)]
    bodies = [remote_write_body(catalog[a:a + 2000], lambda i: [(1.0, T0_MS)]) for a in range(0, len(catalog), 2000)]
    started = time.perf_counter()
    send_all("/api/v1/write", {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"}, bodies)
    line("catalog: 100,000 series more by remote write", f"{time.perf_counter() - started:,.1f} s", "", "")
    del bodies, catalog
    asks = [
        ("  list_labels, every series", {}, "list_labels", """SELECT k, count(*) FROM timeseries_series,
          jsonb_object_keys(tags) k WHERE k <> '__name__' GROUP BY k ORDER BY k LIMIT 101"""),
        ("  label_values instance, every series", {"label": "instance"}, "label_values",
         """SELECT tags->>'instance', count(*) FROM timeseries_series WHERE tags ? 'instance'
          GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 101"""),
        ("  label_values instance of one metric", {"label": "instance", "selector": "cat_m7"}, "label_values",
         """SELECT tags->>'instance', count(*) FROM timeseries_series WHERE metric = 'cat_m7'
          GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 101"""),
    ]
    # Right after the write the label index's changes are not yet settled
    # (readers add them); the worker settles them a second after a write.
    for when in ("read right after the write", "after the worker settled the label index"):
        if when != "read right after the write":
            time.sleep(3)
        print(f"catalog of 100,000 series more, {when}:")
        for label, args, tool, sql in asks:
            t = time.perf_counter()
            call(tool, args)
            took = (time.perf_counter() - t) * 1e3
            line(label, f"{took:,.1f} ms", f"the catalog's tags in psql {psql_ms(sql):,.1f} ms", "<= 50 ms")

time.sleep(2)
now_rss, peak_rss = rss()
line("RSS idle (after start) / peak (whole run)", f"{idle_rss:.1f} / {peak_rss:.1f} MiB", f"now {now_rss:.1f} MiB",
     "<= 15 / <= 50 MiB")
