"""Every tool of the server through the official Python SDK (`mcp` 2.3).

Usage: python_sdk.py TARGET MODE   (MODE: auto | legacy)

TARGET is a running server's URL (Streamable HTTP), or the path of the
mcp-server binary, which the SDK's stdio client launches as `mcp-server stdio`
with this environment's DATABASE_URL, REDIS_URL and RUST_LOG.

`auto` probes `server/discover` and must land on 2026-07-28; `legacy` runs
the initialize handshake (2025-11-25). The calls come from calls.json, shared
with ts_client.mjs. Exits non-zero on the first thing that is not as expected.
"""

import asyncio
import json
import os
import pathlib
import sys
import uuid

from mcp import Client
from mcp.client.stdio import StdioServerParameters

EXPECTED_VERSION = {"auto": "2026-07-28", "legacy": "2025-11-25"}


def resolve(value, results, series):
    """Replaces "$series" and "$name.field" with earlier results."""
    if isinstance(value, str) and value.startswith("$"):
        if value == "$series":
            return series
        name, field = value[1:].split(".", 1)
        return results[name][field]
    if isinstance(value, dict):
        return {k: resolve(v, results, series) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, results, series) for v in value]
    return value


def check(condition, message):
    if not condition:
        raise SystemExit(f"python-sdk: {message}")


def server_of(target: str):
    if target.startswith(("http://", "https://")):
        return target
    env = {k: os.environ[k] for k in ("DATABASE_URL", "REDIS_URL", "RUST_LOG") if k in os.environ}
    return StdioServerParameters(command=target, args=["stdio"], env=env)


async def main(target: str, mode: str) -> None:
    plan = json.loads((pathlib.Path(__file__).parent / "calls.json").read_text())
    series = f"{plan['series']}.py.{mode}.{uuid.uuid4().hex[:8]}"
    async with Client(server_of(target), mode=mode, read_timeout_seconds=60) as client:
        version = client.protocol_version
        check(version == EXPECTED_VERSION[mode], f"{mode}: negotiated {version}")
        listed = {t.name for t in (await client.list_tools()).tools}
        planned = {c["tool"] for c in plan["calls"]}
        check(listed == planned, f"tools listed {sorted(listed)} != planned {sorted(planned)}")
        results = {}
        for call in plan["calls"]:
            args = resolve(call["args"], results, series)
            result = await client.call_tool(call["tool"], args)
            text = next((c.text for c in result.content if c.type == "text"), "")
            check(not result.is_error, f"{call['tool']}: {text}")
            structured = result.structured_content or {}
            for key, want in call.get("expect", {}).items():
                check(structured.get(key) == want, f"{call['tool']}.{key} = {structured.get(key)}")
            if "image" in call:
                images = [c for c in result.content if c.type == "image"]
                check(
                    len(images) == 1 and images[0].mime_type == call["image"] and images[0].data,
                    f"{call['tool']}: no {call['image']} image",
                )
            results[call.get("as", call["tool"])] = structured
        uri = f"timeseries://{series}"
        read = await client.read_resource(uri)
        body = json.loads(read.contents[0].text)
        check(body["points"] == 120, f"resource {uri}: {body}")
        chart = (await client.read_resource(f"{uri}/chart.png")).contents[0]
        check(chart.mime_type == "image/png" and chart.blob, f"resource {uri}/chart.png")
        prompts = {p.name for p in (await client.list_prompts()).prompts}
        check("forecast_report" in prompts, f"prompts {prompts}")
        prompt = await client.get_prompt("forecast_report", {"series": series})
        kinds = [m.content.type for m in prompt.messages]
        check(kinds[0] == "image", f"the prompt opens with its chart: {kinds}")
        texts = [m.content.text for m in prompt.messages if m.content.type == "text"]
        check(any(series in t for t in texts), "the prompt names the series")
    print(f"python-sdk {mode}: {version}, {len(plan['calls'])} tools, resources, prompt: ok")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
