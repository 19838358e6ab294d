"""Figures for ingest and statistics through /mcp next to psql doing the same
work in the same run. Standard library only."""

import csv
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from datetime import datetime, timedelta, timezone

MCP_URL, DB_URL, CACHE = sys.argv[1], sys.argv[2], sys.argv[3]
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
CALLS, PER_CALL, BIG = 20, 10_000, 1_000_000

url = urllib.parse.urlsplit(MCP_URL)
conn = http.client.HTTPConnection(url.hostname, url.port)
session = None
next_id = 0


def rpc(method, params, raw=None):
    global next_id, session
    next_id += 1
    body = raw or json.dumps({"jsonrpc": "2.0", "id": next_id, "method": method, "params": params})
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if session:
        headers |= {"Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"}
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


rpc("initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}})
rpc("notifications/initialized", None, raw=json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))
print(f"cache backend: {CACHE}")

# --- ingest: 20 calls of 10,000 points through /mcp, then \copy of the same rows
bodies = []
for c in range(CALLS):
    points = [{"time": (T0 + timedelta(seconds=c * PER_CALL + i)).isoformat(), "value": value(c * PER_CALL + i)}
              for i in range(PER_CALL)]
    bodies.append(json.dumps({"jsonrpc": "2.0", "id": 1000 + c, "method": "tools/call",
                              "params": {"name": "ingest_timeseries", "arguments": {"series": "bench_mcp", "points": points}}}))
started = time.perf_counter()
for b in bodies:
    rpc("tools/call", None, raw=b)
mcp_s = time.perf_counter() - started
mcp_rate = CALLS * PER_CALL / mcp_s

tmp = tempfile.mkdtemp()
rows_csv = os.path.join(tmp, "rows.csv")
write_csv(rows_csv, "bench_copy", CALLS * PER_CALL)
started = time.perf_counter()
psql("-c", f"\\copy timeseries_data(series_name, time, value) FROM '{rows_csv}' CSV")
copy_s = time.perf_counter() - started
copy_rate = CALLS * PER_CALL / copy_s
print(f"ingest  MCP ingest_timeseries ({CALLS} x {PER_CALL:,} points): {mcp_rate:12,.0f} points/s ({mcp_s:.2f} s)")
print(f"ingest  psql \\copy of the same rows:                   {copy_rate:12,.0f} points/s ({copy_s:.2f} s)")
print(f"ingest  ratio MCP / \\copy: {mcp_rate / copy_rate:.2f}  (target >= 0.5)")

# --- statistics over 1,000,000 points
big_csv = os.path.join(tmp, "big.csv")
write_csv(big_csv, "bench_big", BIG)
psql("-c", f"\\copy timeseries_data(series_name, time, value) FROM '{big_csv}' CSV", "-c", "VACUUM ANALYZE timeseries_data")

SQL = """SELECT count(*), avg(value), stddev_samp(value), min(value), max(value),
 percentile_cont(0.5) WITHIN GROUP (ORDER BY value), percentile_cont(0.95) WITHIN GROUP (ORDER BY value),
 percentile_cont(0.99) WITHIN GROUP (ORDER BY value), min(time), max(time)
 FROM timeseries_data WHERE series_name = 'bench_big' AND time >= '-infinity' AND time < 'infinity'"""
direct = []
for _ in range(5):
    out = psql("-c", "\\timing on", "-c", SQL)
    direct.append(float(out.strip().splitlines()[-1].split()[1]))
direct_ms = statistics.median(direct)

misses = []
for k in range(5):
    start = (T0 - timedelta(seconds=k + 1)).isoformat()  # a new window each time: a guaranteed miss
    t = time.perf_counter()
    r = call("compute_statistics", {"series": "bench_big", "start": start})
    misses.append((time.perf_counter() - t) * 1e3)
    assert r["structuredContent"]["cached"] is False and r["structuredContent"]["count"] == BIG
miss_ms = statistics.median(misses)

hits = []
for _ in range(50):
    t = time.perf_counter()
    r = call("compute_statistics", {"series": "bench_big", "start": (T0 - timedelta(seconds=1)).isoformat()})
    hits.append((time.perf_counter() - t) * 1e3)
    assert r["structuredContent"]["cached"] is True
hits.sort()
hit_ms, hit_p95 = statistics.median(hits), hits[int(0.95 * (len(hits) - 1))]
print(f"stats   direct SQL in psql (median of 5, server time): {direct_ms:9.1f} ms")
print(f"stats   MCP compute_statistics, cache miss (median of 5): {miss_ms:7.1f} ms   ratio {miss_ms / direct_ms:.2f} (target <= 1.3)")
print(f"stats   MCP compute_statistics, cache hit (median of 50):  {hit_ms:7.2f} ms   p95 {hit_p95:.2f} ms (target < 2 ms)")
