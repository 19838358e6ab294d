#!/usr/bin/env bash
# Builds the image and runs the compose stack, as an operator would, on the private
# engine from ../shared/docker (host network, ports 15432/16379/18000), then checks it:
# migrations ran once, /health is ok with Redis and reports the newest schema, the
# hypertable and its chunks exist where the image has TimescaleDB (a plain table on
# the stand-in, which has not; that check then says it was skipped), an MCP
# round trip and a line-protocol write work through the container, `migrate status` works inside it, data survives
# an app restart, and `down -v` cleans up. Prints the figures it measured.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared}
export DOCKER_HOST=unix://${DOCKER_WORK:-/tmp/mcp-docker}/docker.sock
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0
PROJECT=mcpci
APP=http://127.0.0.1:18000
now() { date +%s.%N; }
since() { python3 -c "print(f'{$(now) - $1:.1f}')"; }
fail() { echo "compose check FAILED: $*" >&2; exit 1; }

bash "$SHARED/docker/engine.sh" start
# Debian's python3 has PyYAML (docker-compose depends on it); another python3 on PATH may not.
PY=python3; [ -x /usr/bin/python3 ] && PY=/usr/bin/python3
image_of() { "$PY" -c 'import sys, yaml; print(yaml.safe_load(open("docker-compose.yml"))["services"][sys.argv[1]]["image"])' "$1"; }
# The stand-in images the Dockerfile and the compose file name, built from Debian's packages.
bash "$SHARED/docker/images.sh" base debian:bookworm-slim debian:bookworm
bash "$SHARED/docker/images.sh" rust "$(awk '/^FROM .* AS build/ {print $2}' Dockerfile)"
bash "$SHARED/docker/images.sh" timescaledb "$(image_of timescaledb)"
bash "$SHARED/docker/images.sh" redis "$(image_of redis)"

COMPOSE_FILE=$(mktemp --suffix=.yml)
"$PY" "$SHARED/docker/hostnet-compose.py" docker-compose.yml .ci/compose.hostnet.yml >"$COMPOSE_FILE"
dc() { docker-compose -p "$PROJECT" --project-directory "$PWD" -f "$COMPOSE_FILE" "$@"; }
cleanup() {
  dc down -v --remove-orphans >/dev/null 2>&1 || true
  rm -f "$COMPOSE_FILE"
}
trap cleanup EXIT
dc down -v --remove-orphans >/dev/null 2>&1 || true

t=$(now)
dc build mcp-server
BUILD_S=$(since "$t")
IMAGE=${PROJECT}_mcp-server  # compose v1 names a built image <project>_<service>
SIZE_MB=$(docker image inspect "$IMAGE" --format '{{.Size}}' | awk '{printf "%.0f", $1/1048576}')
docker run --rm --entrypoint id "$IMAGE" -u | grep -qv '^0$' || fail "the image runs as root"

healthy() {
  local deadline=$(($(date +%s) + $1))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    state=$(docker inspect --format '{{.State.Health.Status}}' "$(dc ps -q mcp-server)" 2>/dev/null || true)
    [ "$state" = healthy ] && return 0
    sleep 1
  done
  dc logs --tail 50 mcp-server >&2
  return 1
}

t=$(now)
dc up -d
healthy 180 || fail "the stack did not become healthy"
UP_S=$(since "$t")

psql_ts() { dc exec -T timescaledb psql -U postgres -d mcp_server -Atc "$1"; }
applied=$(dc logs mcp-server 2>&1 | grep -c 'Running upgrade' || true)
versions=$(psql_ts "SELECT count(*) FROM __diesel_schema_migrations")
[ "$applied" -ge 1 ] && [ "$applied" = "$versions" ] || fail "expected one 'Running upgrade' per migration ($versions), saw $applied"
newest=$(ls migrations | sort | tail -1 | cut -d_ -f1 | tr -d -)
# The real image preloads TimescaleDB; this machine's stand-in is plain PostgreSQL
# under the same contract, where the migrations take their plain path.
timescale=$(psql_ts "SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'
  AND current_setting('shared_preload_libraries') LIKE '%timescaledb%'")
if [ "$timescale" = 1 ]; then
  [ "$(psql_ts "SELECT count(*) FROM timescaledb_information.hypertables WHERE hypertable_name = 'timeseries_data'")" = 1 ] \
    || fail "timeseries_data is not a hypertable"
  columnstore=$(psql_ts "SELECT CASE WHEN current_setting('timescaledb.license', true) = 'timescale'
    THEN (SELECT count(*) FROM timescaledb_information.jobs WHERE proc_name = 'policy_compression'
          AND hypertable_name = 'timeseries_data') ELSE 1 END")
  [ "$columnstore" = 1 ] || fail "TSL edition without the columnstore policy"
  STORE=hypertable
else
  echo "compose timescale: skipped (the $(image_of timescaledb) image here has no TimescaleDB extension: hypertable, chunk and columnstore checks need the official image)"
  [ "$(psql_ts "SELECT count(*) FROM pg_class WHERE relname = 'timeseries_data' AND relkind = 'r'")" = 1 ] \
    || fail "timeseries_data is not a plain table on plain PostgreSQL"
  STORE="plain table"
fi

health=$(curl -fsS "$APP/health")
python3 - "$health" "$newest" <<'PY' || fail "health: $health"
import json, sys
h, newest = json.loads(sys.argv[1]), sys.argv[2]
assert h["status"] == "ok" and h["cache"]["backend"] == "redis" and h["cache"]["state"] == "up", h
d = h["database"]
assert d["schema_version"] == newest and d["up_to_date"] and d["pending_count"] == 0, (d, newest)
PY

# An MCP round trip through the container: initialize, ingest three weeks, statistics,
# and a chart (the slim image has no fonts: the server brings its own).
mcp_round_trip() {
  python3 - "$APP/mcp" "$1" <<'PY'
import base64, json, struct, sys, urllib.request
url, mode = sys.argv[1], sys.argv[2]
def post(body, session=None):
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if session:
        headers |= {"Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"}
    req = urllib.request.Request(url, json.dumps(body).encode(), headers)
    with urllib.request.urlopen(req, timeout=30) as r:
        text = r.read().decode()
        return r.headers.get("Mcp-Session-Id"), (json.loads(text) if text else None)
session, init = post({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "compose-check", "version": "1"}}})
assert init["result"]["serverInfo"], init
post({"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
def call(i, name, args, whole=False):
    _, r = post({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": name, "arguments": args}}, session)
    assert not r["result"].get("isError"), r
    return r["result"] if whole else r["result"]["structuredContent"]
if mode == "write":
    points = [{"time": f"2026-01-{1 + h // 24:02d}T{h % 24:02d}:00:00Z", "value": h} for h in range(21 * 24)]
    assert call(2, "ingest_timeseries", {"series": "compose.check", "points": points})["written"] == len(points)
stats = call(3, "compute_statistics", {"series": "compose.check"})
assert stats["count"] == 21 * 24, stats
chart = call(4, "plot_series", {"series": "compose.check", "width": 640, "height": 240}, whole=True)
png = base64.b64decode(next(c for c in chart["content"] if c["type"] == "image")["data"])
assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24]) == (640, 240), png[:24]
print(stats["count"])
PY
}
points=$(mcp_round_trip write) || fail "MCP round trip"
# A collector's write through the container: line protocol, as Telegraf sends it.
lp=$(curl -sS -o /dev/null -w '%{http_code}' --data-binary 'compose_check,host=ci value=1 1767225600' \
  "$APP/api/v2/write?org=ops&bucket=metrics&precision=s")
[ "$lp" = 204 ] || fail "a line-protocol write answered $lp"
[ "$(psql_ts "SELECT count(*) FROM timeseries_series WHERE metric = 'compose_check.value'")" = 1 ] \
  || fail "the line-protocol write is not in the catalog"
chunks=skipped
if [ "$timescale" = 1 ]; then
  chunks=$(psql_ts "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'timeseries_data'")
  [ "$chunks" -ge 3 ] || fail "three weeks of points made $chunks chunks"
fi

dc exec -T mcp-server mcp-server migrate status || fail "migrate status inside the container"

t=$(now)
dc restart mcp-server
healthy 120 || fail "the app did not come back after a restart"
RESTART_S=$(since "$t")
[ "$(dc logs mcp-server 2>&1 | grep -c 'Running upgrade' || true)" = "$applied" ] || fail "a restart re-ran migrations"
mcp_round_trip read >/dev/null || fail "data lost across an app restart"

volumes=$(docker volume ls -q --filter "name=${PROJECT}_")
[ -n "$volumes" ] || fail "no named volumes were created"
dc down -v --remove-orphans
[ -z "$(docker volume ls -q --filter "name=${PROJECT}_")" ] || fail "down -v left volumes behind"
[ -z "$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT")" ] || fail "down left containers behind"

printf 'compose check: image %s MiB, build %s s, up to healthy %s s, restart to healthy %s s, %s points in a %s, %s chunks, %s migrations applied once, schema %s\n' \
  "$SIZE_MB" "$BUILD_S" "$UP_S" "$RESTART_S" "$points" "$STORE" "$chunks" "$versions" "$newest"
