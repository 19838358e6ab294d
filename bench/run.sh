#!/usr/bin/env bash
# Benchmarks against a release build; prints figures next to their
# baselines, never fails on a number. Needs PostgreSQL, wrk (Debian's
# package), and optionally Redis (with redis-benchmark), as for the tests.
#   bench/run.sh               # Redis cache when redis-cli ping answers, else in-process
#   BENCH_10M=1 bench/run.sh   # also the statistics miss over 10,000,000 points
#   BENCH_10M=1 BENCH_ONLY=lifecycle bench/run.sh   # ingest, fold, verify and retention rows alone
#   BENCH_FLEET=full BENCH_ONLY=fleet bench/run.sh   # the issue's fleet (17M points) and the catalog alone
#   TIMESCALE_URL=postgres://postgres@host:5432/postgres bench/run.sh   # on TimescaleDB
# With node on PATH, a second server takes JWT access tokens from the tests'
# authorization server (tests/oauth/provider.mjs), for the cache-hit figure
# with a JWT beside the one without.
set -euo pipefail
cd "$(dirname "$0")/.."
# Checked first: the cache-hit rows need wrk, half an hour into a full run.
command -v wrk >/dev/null || { echo "bench/run.sh needs wrk: apt-get install wrk" >&2; exit 1; }
cargo build --release --locked -q
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
DB="mcp_bench_$$"
# TIMESCALE_URL (a TimescaleDB server) adds the hypertable and columnstore rows.
ADMIN="${BENCH_ADMIN_URL:-${TIMESCALE_URL:-postgres://postgres@127.0.0.1:5432/postgres}}"
URL="${ADMIN%/*}/$DB"
REDIS=""
# Database 15 of the local Redis, emptied afterwards.
redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && REDIS="redis://127.0.0.1:6379/15"
LOG=$(mktemp)
DATABASE_URL="$URL" REDIS_URL="$REDIS" ROCKET_PORT=$PORT RUST_LOG=warn ./target/release/mcp-server serve >"$LOG" 2>&1 &
SERVER=$!
JWT_SERVER="" PROVIDER="" KEYS=$(mktemp -d)
if command -v node >/dev/null 2>&1; then
  [ -d tests/oauth/node_modules/oidc-provider ] || (cd tests/oauth && npm ci --no-audit --no-fund -q)
  node tests/oauth/provider.mjs "$KEYS/jwks.json" >"$KEYS/started" 2>/dev/null &
  PROVIDER=$!
  for _ in $(seq 1 50); do [ -s "$KEYS/started" ] && break; sleep 0.1; done
  ISSUER=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["issuer"])' "$KEYS/started")
  JWT_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  export BENCH_JWT_URL="http://127.0.0.1:$JWT_PORT/mcp"
  DATABASE_URL="$URL" REDIS_URL="$REDIS" ROCKET_PORT=$JWT_PORT RUST_LOG=warn \
    MCP_OAUTH_ISSUER="$ISSUER" MCP_OAUTH_AUDIENCE="$BENCH_JWT_URL" \
    ./target/release/mcp-server serve >"$LOG.jwt" 2>&1 &
  JWT_SERVER=$!
  export BENCH_JWT_ISSUER="$ISSUER"
fi
cleanup() {
  kill "$SERVER" $JWT_SERVER $PROVIDER 2>/dev/null || true
  wait "$SERVER" $JWT_SERVER $PROVIDER 2>/dev/null || true
  rm -rf "$KEYS"
  psql -q "$ADMIN" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  [ -z "$REDIS" ] || redis-cli -h 127.0.0.1 -n 15 FLUSHDB >/dev/null 2>&1 || true
}
trap cleanup EXIT
for _ in $(seq 1 60); do
  ./target/release/mcp-server healthcheck --url "http://127.0.0.1:$PORT/health" 2>/dev/null && break
  sleep 0.5
done
python3 bench/bench.py "http://127.0.0.1:$PORT/mcp" "$URL" "${REDIS:-in-process}" "$SERVER" ${REDIS:+6379}
