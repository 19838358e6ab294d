#!/usr/bin/env bash
# Calls every tool of the server at URL through two official MCP SDK clients,
# each in its 2026 (auto: server/discover) and 2025 (legacy: initialize) mode:
# the Python SDK (requirements.txt) and the TypeScript SDK v2 client
# (package.json). Installs them beside this script on first use.
#
# Usage: tests/clients/run.sh URL     (a server without the conformance fixtures)
# Env:   CLIENTS_NODE  node >= 20 (default: node on PATH, else the conformance suite's)
set -euo pipefail
URL="$1"
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
for mode in auto legacy; do
  timeout 120 "$HERE/.venv/bin/python" "$HERE/python_sdk.py" "$URL" "$mode"
  timeout 120 "$NODE" "$HERE/ts_client.mjs" "$URL" "$mode"
done
echo "CLIENTS PASS: python-sdk and ts-client, auto (2026-07-28) and legacy (2025-11-25)"
