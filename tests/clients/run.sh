#!/usr/bin/env bash
# Calls every tool of the server through two official MCP SDK clients, each
# in its 2026 (auto: server/discover) and 2025 (legacy: initialize) mode: the
# Python SDK (requirements.txt) and the TypeScript SDK v2 client
# (package.json). Installs them beside this script on first use.
#
# Usage: tests/clients/run.sh URL     a running server (without the conformance fixtures)
#        tests/clients/run.sh BINARY  each client launches `BINARY stdio` itself, with
#                                     this environment's DATABASE_URL (and REDIS_URL)
# Env:   CLIENTS_NODE  node >= 20 (default: node on PATH, else the conformance suite's)
set -euo pipefail
TARGET="$1"
HERE="$(cd "$(dirname "$0")" && pwd)"
NODE="${CLIENTS_NODE:-}"
if [ -z "$NODE" ]; then
  NODE=$(command -v node || true)
  if [ -z "$NODE" ] || [ "$("$NODE" -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
    NODE="$HOME/.cache/mcp-conformance/node22/node_modules/.bin/node"
  fi
fi
if [ ! -x "$HERE/.venv/bin/python" ]; then
  python3 -m venv "$HERE/.venv"
  "$HERE/.venv/bin/pip" install -q -r "$HERE/requirements.txt"
fi
if [ ! -d "$HERE/node_modules/@modelcontextprotocol/client" ]; then
  (cd "$HERE" && PATH="$(dirname "$NODE"):$PATH" npm ci --no-audit --no-fund -q)
fi
case "$TARGET" in
  http://*|https://*) OVER=http ;;
  *) OVER=stdio ;;
esac
timed() {
  local start=$SECONDS
  timeout 120 "$@"
  echo "  ($OVER, $((SECONDS - start)) s)"
}
for mode in auto legacy; do
  timed "$HERE/.venv/bin/python" "$HERE/python_sdk.py" "$TARGET" "$mode"
  timed "$NODE" "$HERE/ts_client.mjs" "$TARGET" "$mode"
done
echo "CLIENTS PASS ($OVER): python-sdk and ts-client, auto (2026-07-28) and legacy (2025-11-25)"
