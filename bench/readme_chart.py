"""Draws the README's example chart through a running server: a week of
5-minute cpu.load with a daily cycle, two incidents and an outage, its
anomalies and a Holt forecast. Usage: readme_chart.py MCP_URL OUT.png"""
import base64
import json
import math
import sys
import urllib.request
from datetime import datetime, timedelta, timezone

URL, OUT = sys.argv[1], sys.argv[2]
T0 = datetime(2026, 11, 16, tzinfo=timezone.utc)


def call(tool, args):
    """One stateless 2026-07-28 tools/call."""
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "readme-chart", "version": "1"}}
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": tool, "arguments": args, "_meta": meta}}).encode()
    req = urllib.request.Request(URL, data=body, headers={
        "Content-Type": "application/json", "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": tool})
    result = json.loads(urllib.request.urlopen(req, timeout=60).read())["result"]
    if result.get("isError"):
        raise SystemExit(f"{tool}: {result['content'][0]['text']}")
    return result


points, seed = [], 7
for i in range(7 * 288):
    t = T0 + timedelta(minutes=5 * i)
    if T0 + timedelta(days=4, hours=2) <= t < T0 + timedelta(days=4, hours=8):
        continue  # the agent was down
    seed = (seed * 1103515245 + 12345) % 2**31
    hour = t.hour + t.minute / 60
    value = 35 + 20 * max(0.0, math.sin((hour - 7) / 12 * math.pi)) + 3 * (seed / 2**31 - 0.5)
    if t == T0 + timedelta(days=2, hours=14, minutes=30):
        value += 45
    if t == T0 + timedelta(days=5, hours=3):
        value -= 30
    points.append({"time": t.isoformat(), "value": round(value, 2)})
call("ingest_timeseries", {"series": "cpu.load", "points": points})
model = call("train_model", {"series": "cpu.load", "model_type": "ar", "bucket": "1h",
                             "params": {"p": 20}})["structuredContent"]["model_id"]
chart = call("plot_series", {"series": "cpu.load", "anomaly_method": "zscore", "model_id": model,
                             "horizon": 36, "utc_offset": "+01:00", "width": 1000, "height": 400})
with open(OUT, "wb") as f:
    f.write(base64.b64decode(chart["content"][0]["data"]))
print(chart["content"][1]["text"])
