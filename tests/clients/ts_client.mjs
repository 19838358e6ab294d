// Every tool of a running server through the official TypeScript SDK v2
// client (`@modelcontextprotocol/client` 2.4).
//
// Usage: node ts_client.mjs TARGET MODE   (MODE: auto | legacy)
//
// TARGET is a running server's URL (Streamable HTTP), or the path of the
// mcp-server binary, which the SDK's stdio transport launches as
// `mcp-server stdio` with this environment's DATABASE_URL, REDIS_URL and
// RUST_LOG.
//
// `auto` probes `server/discover` and must land on 2026-07-28; `legacy` runs
// the initialize handshake (2025-11-25). The calls come from calls.json,
// shared with python_sdk.py. Exits non-zero on the first surprise.
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { StdioClientTransport, getDefaultEnvironment } from '@modelcontextprotocol/client/stdio';

const EXPECTED_VERSION = { auto: '2026-07-28', legacy: '2025-11-25' };

function resolve(value, results, series) {
  if (typeof value === 'string' && value.startsWith('$')) {
    if (value === '$series') return series;
    const [name, field] = value.slice(1).split('.');
    return results[name][field];
  }
  if (Array.isArray(value)) return value.map((v) => resolve(v, results, series));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolve(v, results, series)]));
  }
  return value;
}

function check(condition, message) {
  if (!condition) {
    console.error(`ts-client: ${message}`);
    process.exit(1);
  }
}

function transportOf(target) {
  if (/^https?:\/\//.test(target)) return new StreamableHTTPClientTransport(new URL(target));
  const env = getDefaultEnvironment();
  for (const k of ['DATABASE_URL', 'REDIS_URL', 'RUST_LOG']) {
    if (process.env[k] !== undefined) env[k] = process.env[k];
  }
  return new StdioClientTransport({ command: target, args: ['stdio'], env, stderr: 'inherit' });
}

const [target, mode] = process.argv.slice(2);
const plan = JSON.parse(readFileSync(new URL('./calls.json', import.meta.url), 'utf8'));
const series = `${plan.series}.ts.${mode}.${randomUUID().slice(0, 8)}`;
const client = new Client(
  { name: 'ts-client-check', version: '1.0.0' },
  { versionNegotiation: { mode } },
);
await client.connect(transportOf(target));
const version = client.getNegotiatedProtocolVersion();
check(version === EXPECTED_VERSION[mode], `${mode}: negotiated ${version}`);

const listed = new Set((await client.listTools()).tools.map((t) => t.name));
const planned = new Set(plan.calls.map((c) => c.tool));
check(
  listed.size === planned.size && [...listed].every((t) => planned.has(t)),
  `tools listed ${[...listed].sort()} != planned ${[...planned].sort()}`,
);
const results = {};
for (const call of plan.calls) {
  const result = await client.callTool({ name: call.tool, arguments: resolve(call.args, results, series) });
  check(!result.isError, `${call.tool}: ${result.content?.find((c) => c.type === 'text')?.text}`);
  if (call.image) {
    const images = result.content.filter((c) => c.type === 'image');
    check(images.length === 1 && images[0].mimeType === call.image && images[0].data, `${call.tool}: no ${call.image} image`);
  }
  const structured = result.structuredContent ?? {};
  for (const [key, want] of Object.entries(call.expect ?? {})) {
    check(structured[key] === want, `${call.tool}.${key} = ${structured[key]}`);
  }
  results[call.as ?? call.tool] = structured;
}
const uri = `timeseries://${series}`;
const body = JSON.parse((await client.readResource({ uri })).contents[0].text);
check(body.points === 120, `resource ${uri}: ${JSON.stringify(body)}`);
const chart = (await client.readResource({ uri: `${uri}/chart.png` })).contents[0];
check(chart.mimeType === 'image/png' && chart.blob, `resource ${uri}/chart.png`);
const prompt = await client.getPrompt({ name: 'forecast_report', arguments: { series } });
check(prompt.messages[0].content.type === 'image', 'the prompt opens with its chart');
check(
  prompt.messages.some((m) => m.content.type === 'text' && m.content.text.includes(series)),
  'the prompt names the series',
);
await client.close();
console.log(`ts-client ${mode}: ${version}, ${plan.calls.length} tools, resources, prompt: ok`);
