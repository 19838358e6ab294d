#!/usr/bin/env python3
"""The fault suite: the real server against PostgreSQL and Redis instances this
script starts itself (never the shared ones), killed, hung, restarted and
restored, and fed hostile input. Every load loop is bounded in count and
time, and all traffic goes to 127.0.0.1. It prints one row per fault:
scenario, figure, holds or falls short; it exits 1 if any falls short.

    python3 tests/faults/run.py [path/to/mcp-server]   # default target/release/mcp-server

Needs: redis-server and PostgreSQL's server binaries (Debian's postgresql-15: a private
cluster on port 55471, run as the postgres user when started as root). With
TIMESCALE_URL at a TimescaleDB server, the kill mid-ingest also runs there, into a
hypertable; without it that row says it was skipped. Standard library only.
"""
import glob
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/release/mcp-server"))
PG_PORT = 55471
PG_DATA = "/tmp/mcp-faults-pg"
DEADLINE = time.time() + 540  # the whole suite stays under 10 minutes
ROWS = []
SKIPPED = []


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(check, seconds, step=0.1):
    end = time.time() + seconds
    while time.time() < end:
        try:
            if check():
                return True
        except Exception:
            pass
        time.sleep(step)
    return False


def row(scenario, figure, holds):
    ROWS.append((scenario, figure, holds))
    print(f"  {'holds' if holds else 'FALLS SHORT'}: {scenario}: {figure}", flush=True)


class Database:
    """A PostgreSQL server the suite reaches by URL (databases on it are the servers')."""

    def __init__(self, url):
        self.url = url

    def sql(self, db, query):
        out = subprocess.run(["psql", "-X", "-Atq", f"{self.url}/{db}", "-c", query],
                             capture_output=True, text=True, timeout=60)
        return out.stdout.strip()

    def drop(self, db):
        self.sql("postgres", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


class Postgres(Database):
    """The suite's own cluster, which it stops and starts: Debian's PostgreSQL
    binaries, trust auth on 127.0.0.1, its socket in its data directory."""

    def __init__(self):
        super().__init__(f"postgres://postgres@127.0.0.1:{PG_PORT}")
        versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
        if not versions:
            sys.exit("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin): apt-get install postgresql")
        self.bin = os.path.dirname(versions[-1])
        # PostgreSQL refuses to run as root.
        self.as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def ctl(self, *args, check=True):
        return subprocess.run([*self.as_owner, f"{self.bin}/pg_ctl", "-D", PG_DATA, *args], check=check,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)

    def start(self):
        if not os.path.exists(os.path.join(PG_DATA, "PG_VERSION")):
            os.makedirs(PG_DATA, exist_ok=True)
            if self.as_owner:
                shutil.chown(PG_DATA, "postgres", "postgres")
            subprocess.run([*self.as_owner, f"{self.bin}/initdb", "-D", PG_DATA, "-U", "postgres", "-A", "trust",
                            "-E", "UTF8", "--no-sync"], check=True, stdout=subprocess.DEVNULL, timeout=120)
        options = f"-p {PG_PORT} -k {PG_DATA} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        self.ctl("start", "-w", "-t", "60", "-l", os.path.join(PG_DATA, "server.log"), "-o", options)

    def stop(self):
        if os.path.exists(os.path.join(PG_DATA, "postmaster.pid")):
            self.ctl("stop", "-w", "-t", "60", "-m", "fast", check=False)


class Redis:
    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="mcp-faults-redis-")
        self.proc = None
        self.start()

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir], stdout=subprocess.DEVNULL)
        assert wait_for(lambda: socket.create_connection(("127.0.0.1", self.port), 1), 10)

    def cli(self, *args):
        return subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True,
                              text=True, timeout=10).stdout.strip()

    def kill(self):
        if self.proc:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def restart_from_snapshot(self):
        self.kill()
        self.start()

    def restart_empty(self):
        self.kill()
        try:
            os.remove(os.path.join(self.dir, "dump.rdb"))
        except FileNotFoundError:
            pass
        self.start()

    def freeze(self, frozen):
        os.kill(self.proc.pid, signal.SIGSTOP if frozen else signal.SIGCONT)

    def close(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class Server:
    count = 0

    def __init__(self, pg, env=None, database=None, wait=True):
        Server.count += 1
        self.db = database or f"faults_{os.getpid()}_{Server.count}"
        self.port = free_port()
        full = {k: v for k, v in os.environ.items() if not k.startswith(("MCP_", "REDIS_", "DB_", "ROCKET_"))}
        full.update({"DATABASE_URL": f"{pg.url}/{self.db}", "ROCKET_PORT": str(self.port),
                     "RUST_LOG": "warn", "METRICS_SNAPSHOT_SECS": "0"})
        full.update(env or {})
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([BIN, "serve"], env=full, stdout=self.log, stderr=self.log)
        if wait:
            assert self.healthy(60), f"the server did not come up: {self.logs()[-2000:]}"

    def healthy(self, seconds):
        return wait_for(lambda: self.get("/health")[0] == 200, seconds, 0.2)

    def get(self, path, timeout=10):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()

    def rss_mib(self, field="VmRSS"):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def logs(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill9()


class Mcp:
    """A 2025-11-25 session over plain HTTP."""

    def __init__(self, server, token=None, timeout=60):
        self.server, self.token, self.timeout, self.session = server, token, timeout, None
        status, _, body = self.post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "faults", "version": "1"}}})
        assert status == 200, body
        self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def post(self, message, headers=None, raw=None):
        c = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=self.timeout)
        h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if self.session:
            h.update({"Mcp-Session-Id": self.session, "MCP-Protocol-Version": "2025-11-25"})
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        h.update(headers or {})
        c.request("POST", "/mcp", raw if raw is not None else json.dumps(message), h)
        r = c.getresponse()
        body = r.read().decode(errors="replace")
        if self.session is None:
            self.session = r.getheader("Mcp-Session-Id")
        return r.status, dict(r.getheaders()), body

    def call(self, name, arguments):
        status, _, body = self.post({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                     "params": {"name": name, "arguments": arguments}})
        if status != 200:
            return status, None
        lines = [l[5:].strip() for l in body.splitlines() if l.startswith("data:")] or [body]
        return status, json.loads(lines[-1])


def points(n, start=0, series_start="2026-01-01"):
    base = time.mktime(time.strptime(series_start, "%Y-%m-%d"))
    return [{"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(base + 60 * (start + i))), "value": float(i)}
            for i in range(n)]


def stats_count(mcp, series):
    _, r = mcp.call("compute_statistics", {"series": series})
    sc = r["result"].get("structuredContent", {})
    return sc.get("count"), sc.get("cached")


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))] if values else 0.0


# --- scenarios --------------------------------------------------------------

def redis_faults(pg):
    redis = Redis()
    server = Server(pg, {"REDIS_URL": redis.url, "REDIS_TIMEOUT_MS": "200"})
    try:
        mcp = Mcp(server)
        # 1a. Restored from an older snapshot.
        mcp.call("ingest_timeseries", {"series": "snap", "points": points(1000)})
        stats_count(mcp, "snap")
        redis.cli("SAVE")
        mcp.call("ingest_timeseries", {"series": "snap", "points": points(1, 5000)})
        redis.restart_from_snapshot()
        server.get("/health")
        truth = int(pg.sql(server.db, "SELECT count(*) FROM timeseries_data WHERE series_name = 'snap'"))
        stale = sum(1 for _ in range(3) if stats_count(mcp, "snap")[0] != truth)
        row("Redis restored from an older snapshot", f"{stale} of 3 reads stale (SQL count {truth})", stale == 0)

        # 1b. Restarted (empty) during a slow miss, then one ingest.
        for part in range(3):
            mcp.call("ingest_timeseries", {"series": "miss", "points": points(100_000, part * 100_000)})
        slow = threading.Thread(target=stats_count, args=(Mcp(server), "miss"))
        slow.start()
        time.sleep(0.02)
        redis.restart_empty()
        slow.join(60)
        mcp.call("ingest_timeseries", {"series": "miss", "points": points(1, 400_000)})
        server.get("/health")
        truth = int(pg.sql(server.db, "SELECT count(*) FROM timeseries_data WHERE series_name = 'miss'"))
        stale = sum(1 for _ in range(3) if stats_count(mcp, "miss")[0] != truth)
        row("Redis restarted during a miss", f"{stale} of 3 reads stale (SQL count {truth})", stale == 0)

        # 3. Sessions when Redis restarts empty.
        sessions = [Mcp(server) for _ in range(4)]
        redis.restart_empty()
        server.get("/health")
        lost = sum(1 for m in sessions if m.post({"jsonrpc": "2.0", "id": 9, "method": "ping"})[0] == 404)
        row("Redis restarted empty: live sessions", f"{lost} of 4 sessions lost", lost == 0)

        # 2. Hung (SIGSTOP) for 5 s under statistics calls and health probes.
        mcp.call("ingest_timeseries", {"series": "hung", "points": points(1000)})
        server.get("/health")  # Redis known up: the first call during the hang pays the timeout
        stats_count(mcp, "hung")
        redis.freeze(True)
        took, health = [], []
        degraded = False
        # The whole 5 s (bounded in count too): /health reports from a snapshot
        # refreshed every second, so a short loop could end before it changes.
        end = time.time() + 5
        for _ in range(5000):
            if time.time() > end:
                break
            t = time.time()
            stats_count(mcp, "hung")
            took.append((time.time() - t) * 1000)
            t = time.time()
            status, body = server.get("/health")
            health.append((time.time() - t) * 1000)
            degraded = degraded or json.loads(body).get("status") == "degraded"
        redis.freeze(False)
        p99, worst_health = percentile(took, 0.99), max(health)
        row("Redis hung (SIGSTOP 5 s), REDIS_TIMEOUT_MS=200",
            f"statistics p99 {p99:.0f} ms over {len(took)} calls; /health max {worst_health:.0f} ms, degraded={degraded}",
            p99 < 1000 and worst_health < 1000 and degraded)
    finally:
        server.stop()
        redis.close()


def hostile(pg):
    server = Server(pg, {"MCP_HEADER_TIMEOUT_SECS": "2", "MCP_BODY_TIMEOUT_SECS": "2", "MCP_AUTH_TOKEN": "faults-token"})
    try:
        mcp = Mcp(server, token="faults-token")
        # 4. A panic path: a forecast past the end of time.
        pts = [{"time": f"{y}-01-01T00:00:00Z", "value": float(i)} for i, y in enumerate(["0001", "3000", "6000", "9999"])]
        mcp.call("ingest_timeseries", {"series": "eons", "points": pts})
        _, r = mcp.call("train_model", {"series": "eons", "model_type": "linear", "holdout": 1})
        model = r["result"]["structuredContent"]["model_id"]
        _, r = mcp.call("forecast", {"model_id": model, "horizon": 10000})
        internal = "error" in r and r["error"]["code"] == -32603
        row("forecast past year 9999", "a tool error" if r.get("result", {}).get("isError") else f"{r}",
            not internal and r.get("result", {}).get("isError") is True)

        # 5. A NUL in params among 40 other requests.
        mcp.call("list_series", {"prefix": "a\u0000b"})
        for _ in range(40):
            mcp.call("list_series", {"prefix": "nul-check"})
        time.sleep(1.5)  # the writer flushes every 0.5 s when quiet
        logged = int(pg.sql(server.db, "SELECT count(*) FROM mcp_request_logs WHERE tool_name = 'list_series'"))
        row("request log with a NUL in one of 41 requests", f"{41 - logged} rows lost", logged == 41)

        # 8. Input that would grow the server's state.
        for i in range(3):
            mcp.post({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": f"{i}" + "x" * 3000, "arguments": {}}})
        _, metrics = server.get("/metrics")
        longest = max(len(l) for l in metrics.decode().splitlines())
        _, r = mcp.call("compute_statistics", {"series": "é" * 2_000_000})
        echoed = len(r["result"]["content"][0]["text"].encode())
        row("3 unknown 3,000-char tool names; a 2,000,000-char series", f"longest /metrics line {longest} B; error {echoed} B",
            longest < 500 and echoed < 500)

        # Origin and token checks (held before, kept).
        bad_origin = mcp.post({"jsonrpc": "2.0", "id": 2, "method": "ping"}, {"Origin": "http://evil.example"})[0]
        anonymous = Mcp.__new__(Mcp)
        anonymous.server, anonymous.token, anonymous.timeout, anonymous.session = server, None, 10, mcp.session
        no_token = anonymous.post({"jsonrpc": "2.0", "id": 3, "method": "ping"})[0]
        row("foreign Origin; missing token", f"{bad_origin}; {no_token}", bad_origin == 403 and no_token == 401)

        # 7. Slow clients: 200 connections trickling headers.
        conns = []
        for _ in range(200):
            s = socket.create_connection(("127.0.0.1", server.port), 5)
            s.sendall(b"POST /mcp HTTP/1.1\r\nHost: localhost\r\n")
            conns.append(s)
        time.sleep(4)
        still_open = 0
        for s in conns:
            s.setblocking(False)
            try:
                still_open += 1 if s.recv(1) else 0
            except BlockingIOError:
                still_open += 1
            except OSError:
                pass
            s.close()
        row("200 slow-header connections, MCP_HEADER_TIMEOUT_SECS=2", f"{still_open} still open after 4 s", still_open == 0)
    finally:
        server.stop()


def under_load(server, jobs, seconds):
    """Runs `jobs` at once while sampling the server's RSS; returns its peak
    and its RSS 5 s after they end (MiB)."""
    peak, stop = [0.0], threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], server.rss_mib())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    threads = [threading.Thread(target=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds)
    stop.set()
    sampler.join()
    time.sleep(5)
    return peak[0], server.rss_mib()


def large_bodies(pg):
    server = Server(pg)
    try:
        idle = server.rss_mib()
        # A valid ~31 MiB body: 100,000 points whose values are written out
        # with 300 digits (JSON allows it; they parse to ordinary doubles).
        digits = "1." + "0123456789" * 27
        pts = ",".join(f'{{"time":"{p["time"]}","value":{digits}}}' for p in points(100_000))
        body = ('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ingest_timeseries",'
                '"arguments":{"series":"big","points":[' + pts + ']}}}')
        mcp = Mcp(server)
        statuses = []

        def send():
            try:
                statuses.append(mcp.post(None, raw=body)[0])
            except OSError as e:
                statuses.append(repr(e))

        peak, after = under_load(server, [send] * 8, 120)
        # A 503 is sent before the body is read; a client still sending may
        # see the connection close first (EPIPE / ECONNRESET).
        ok = statuses.count(200)
        busy = sum(1 for st in statuses if st == 503 or "BrokenPipe" in str(st) or "Reset" in str(st))
        row(f"8 concurrent {len(body) / 2**20:.0f} MiB bodies",
            f"peak RSS {peak:.0f} MiB (idle {idle:.0f}), {after:.0f} MiB 5 s later; {ok} served, {busy} told 503",
            peak <= 400 and after <= idle + 100 and ok + busy == 8 and ok >= 1)
        if ok + busy != 8:
            print(f"    answers: {statuses}")

        # 30 MiB bodies of the collectors' formats, two of each at once.
        idle = server.rss_mib()
        lp = "".join(f"big,host=h{i},note={'n' * 900} v={i} {1_767_225_600 + i}\n" for i in range(32_000)).encode()
        rw = snappy_literal(write_request([({"__name__": "big", "host": f"h{i}", "note": "n" * 900}, [(1.0, 1_767_225_600_000 + i)])
                                           for i in range(32_000)]))
        answers = []

        def write(path, body, headers):
            def job():
                c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
                try:
                    c.request("POST", path, body, headers)
                    answers.append(c.getresponse().status)
                except OSError as e:
                    answers.append(repr(e))
            return job

        snappy = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"}
        jobs = [write("/api/v2/write?precision=s", lp, {})] * 2 + [write("/api/v1/write", rw, snappy)] * 2
        peak, after = under_load(server, jobs, 180)
        row(f"line protocol and remote write, 2 of each {len(lp) / 2**20:.0f} / {len(rw) / 2**20:.0f} MiB at once",
            f"peak RSS {peak:.0f} MiB (idle {idle:.0f}), {after:.0f} MiB 5 s later; answers {answers}",
            peak <= 400 and after <= idle + 100 and all(a in (204, 503) for a in answers) and answers.count(204) >= 1)
    finally:
        server.stop()


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(number, payload):
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def write_request(series):
    """A prompb WriteRequest of (labels, [(value, ms)]) pairs."""
    import struct
    out = bytearray()
    for labels, samples in series:
        ts = b"".join(field(1, field(1, k.encode()) + field(2, v.encode())) for k, v in labels.items())
        ts += b"".join(field(2, b"\x09" + struct.pack("<d", v) + b"\x10" + varint(t)) for v, t in samples)
        out += field(1, ts)
    return bytes(out)


def snappy_literal(data):
    """Snappy block format with literals only: valid, not compressed (the
    standard library has no snappy)."""
    out = bytearray(varint(len(data)))
    for i in range(0, len(data), 65536):
        chunk = data[i:i + 65536]
        out += bytes([61 << 2]) + (len(chunk) - 1).to_bytes(2, "little") + chunk
    return bytes(out)


def postgres_faults(pg):
    # PostgreSQL restarted under load: no acknowledged point may be lost.
    server = Server(pg)
    try:
        acked, failed, stop = [0], [0], threading.Event()

        def load(n):
            mcp = Mcp(server, timeout=30)
            i = 0
            while not stop.is_set() and i < 10_000:
                try:
                    _, r = mcp.call("ingest_timeseries", {"series": f"load{n}", "points": points(10, i * 10)})
                    if r and r["result"].get("structuredContent", {}).get("written") == 10:
                        acked[0] += 10
                    else:
                        failed[0] += 1
                except Exception:
                    failed[0] += 1
                    time.sleep(0.1)
                i += 1

        workers = [threading.Thread(target=load, args=(n,)) for n in range(4)]
        for w in workers:
            w.start()
        time.sleep(2)
        pg.stop()
        time.sleep(1)
        pg.start()
        time.sleep(3)
        stop.set()
        for w in workers:
            w.join(60)
        stored = int(pg.sql(server.db, "SELECT count(*) FROM timeseries_data WHERE series_name LIKE 'load%'"))
        row("PostgreSQL restarted under ingest load", f"{max(0, acked[0] - stored)} of {acked[0]} acknowledged points lost "
            f"({failed[0]} calls failed cleanly)", stored >= acked[0])
    finally:
        server.stop()

    in_flight_at_a_stop(pg)
    import_across_a_restart(pg)
    remote_read_across_a_restart(pg)

    db = kill_mid_ingest(pg)

    # Starting while PostgreSQL is down: waits, then serves.
    pg.stop()
    late = Server(pg, {"DB_STARTUP_TIMEOUT_SECS": "30"}, database=db, wait=False)
    t = time.time()
    time.sleep(3)
    pg.start()
    up = late.healthy(40)
    row("started while PostgreSQL was down (up 3 s later)", f"healthy after {time.time() - t:.1f} s", up)
    folded_after_kill(pg, db)
    late.stop()

    # Pool exhaustion: clear, retryable answers within the checkout timeout.
    server = Server(pg, {"DB_POOL_SIZE": "1", "DB_MIN_IDLE": "0", "DB_CHECKOUT_TIMEOUT_SECS": "1"})
    try:
        mcp = Mcp(server)
        mcp.call("ingest_timeseries", {"series": "pool", "points": points(100_000)})
        results = []

        def one():
            t = time.time()
            _, r = Mcp(server).call("detect_anomalies", {"series": "pool", "method": "mad"})
            results.append(((time.time() - t) * 1000, r))

        callers = [threading.Thread(target=one) for _ in range(40)]
        for c in callers:
            c.start()
        for c in callers:
            c.join(60)
        busy = [ms for ms, r in results if r and r["result"].get("isError") and "busy" in r["result"]["content"][0]["text"]]
        other_errors = [r for ms, r in results if not r or ("error" in r)]
        row("pool of 1 under 40 concurrent analyses", f"{len(busy)} told busy (slowest {max(busy or [0]):.0f} ms), "
            f"{len(results) - len(busy)} served, {len(other_errors)} other errors",
            busy and not other_errors and all(ms < 3000 for ms in busy))
    finally:
        server.stop()


def in_flight_at_a_stop(pg):
    """Calls already running when PostgreSQL stops: statements that hold
    their connection (slow_sql, a fixture), 100,000-point ingests, and
    100,000-line writes. Each answers as a new call would while it is down
    (the retryable "unreachable" tool error; 503 to a collector), never
    "internal error" or 500, and the server answers again once it is back."""
    server = Server(pg, {"MCP_CONFORMANCE_FIXTURES": "1"})
    try:
        answers = []

        def tool(name, args):
            def job():
                try:
                    _, r = Mcp(server, timeout=60).call(name, args)
                    res = (r or {}).get("result") or {}
                    text = (res.get("content") or [{}])[0].get("text", "") if res.get("isError") else "ok"
                    answers.append(f"{name}: {text}" if r and "result" in r else f"{name}: {r}")
                except Exception as e:
                    answers.append(f"{name}: {e!r}")
            return job

        def write(n):
            def job():
                lp = "".join(f"inflight,host=h{n} v={i} {1_767_225_600 + i}\n" for i in range(100_000)).encode()
                c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
                try:
                    c.request("POST", "/api/v2/write?precision=s", lp, {})
                    answers.append(f"write: {c.getresponse().status}")
                except OSError as e:
                    answers.append(f"write: {e!r}")
            return job

        jobs = ([tool("slow_sql", {"seconds": 20})] * 6
                + [tool("ingest_timeseries", {"series": f"inflight{n}", "points": points(100_000)}) for n in range(2)]
                + [write(n) for n in range(2)])
        threads = [threading.Thread(target=j) for j in jobs]
        for t in threads:
            t.start()
        time.sleep(1.5)
        pg.stop()
        for t in threads:
            t.join(60)
        pg.start()
        back = wait_for(lambda: Mcp(server).call("list_series", {})[1]["result"].get("isError") is None, 30, 0.5)
        wrong = [a for a in answers if "internal error" in a or a.endswith(": 500") or "Error(" in a]
        kinds = {}
        for a in answers:
            kind = a.split(":")[0] + (": unreachable" if "unreachable" in a else f": {a.split(': ', 1)[1][:40]}")
            kinds[kind] = kinds.get(kind, 0) + 1
        row("calls in flight when PostgreSQL stops (6 statements, 2 ingests, 2 writes of 100,000)",
            f"{len(wrong)} of {len(answers)} answered otherwise than unreachable/503 or served; "
            f"answers again after the start: {back}; {kinds}" + (f"; {wrong[:3]}" if wrong else ""),
            not wrong and len(answers) == len(jobs) and back)
    finally:
        server.stop()


def import_across_a_restart(pg):
    """`mcp-server import` of 600,000 lines with PostgreSQL restarted 2 s in:
    the batch the restart broke is retried, the import ends 0, and every
    point is stored once."""
    db = f"faults_import_{os.getpid()}"
    path = os.path.join(tempfile.mkdtemp(prefix="mcp-faults-import-"), "big.csv")
    with open(path, "w") as f:
        f.write("series,time,value\n")
        for i in range(600_000):
            f.write(f"imp{i % 4},{1_767_225_600 + i // 4},{i}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MCP_", "REDIS_", "DB_", "ROCKET_"))}
    env.update({"DATABASE_URL": f"{pg.url}/{db}", "RUST_LOG": "warn", "DB_STARTUP_TIMEOUT_SECS": "30"})
    proc = subprocess.Popen([BIN, "import", path, "--batch", "20000"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2)
    pg.stop()
    pg.start()
    try:
        out, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    stored = pg.sql(db, "SELECT count(*) FROM timeseries_data")
    retried = "trying again" in err
    row("import of 600,000 lines across a PostgreSQL restart 2 s in",
        f"exit {proc.returncode}, {stored} of 600000 points stored, a batch retried: {retried}"
        + ("" if proc.returncode == 0 else f"; {err.strip()[-200:]}"),
        proc.returncode == 0 and stored == "600000")
    pg.drop(db)
    shutil.rmtree(os.path.dirname(path), ignore_errors=True)


def read_request(metric, start_ms, end_ms):
    """A prompb ReadRequest: one query, `__name__` equal to `metric` (the
    matcher type EQ is 0, protobuf's default, so it is left out)."""
    matcher = field(2, b"__name__") + field(3, metric.encode())
    query = b"\x08" + varint(start_ms) + b"\x10" + varint(end_ms) + field(3, matcher)
    return field(1, query)


def remote_read_across_a_restart(pg):
    """Remote reads and PromQL range queries while PostgreSQL stops for 3 s
    and starts again (a 1 s checkout timeout, so that reads during it are
    told rather than held): each answers 200 or 503 with Retry-After
    (Prometheus and Grafana retry), never 500, and 200 again once it is
    back."""
    server = Server(pg, {"DB_CHECKOUT_TIMEOUT_SECS": "1"})
    try:
        t0 = 1_767_225_600_000
        samples = [(float(i), t0 + i * 1000) for i in range(1000)]
        body = snappy_literal(write_request([({"__name__": "rr", "job": "faults"}, samples)]))
        snappy = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"}
        c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        c.request("POST", "/api/v1/write", body, snappy)
        assert c.getresponse().status == 204
        read = snappy_literal(read_request("rr", t0, t0 + 999_000))
        query = "/api/v1/query_range?" + urllib.parse.urlencode({
            "query": "sum(rate(rr[1m]))", "start": t0 / 1000 + 60, "end": t0 / 1000 + 999, "step": 15})
        kinds = {"remote read": [], "query_range": []}
        stop = threading.Event()

        def ask(kind, method, path, body, headers):
            try:
                c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
                c.request(method, path, body, headers)
                r = c.getresponse()
                r.read()
                kinds[kind].append((r.status, r.getheader("Retry-After")))
            except OSError as e:
                kinds[kind].append((repr(e), None))

        def reader():
            for _ in range(2000):  # bounded in count, and by the stop below
                if stop.is_set():
                    return
                ask("remote read", "POST", "/api/v1/read", read, snappy)
                ask("query_range", "GET", query, None, {})
                time.sleep(0.05)

        t = threading.Thread(target=reader)
        t.start()
        time.sleep(1)
        pg.stop()
        time.sleep(3)
        pg.start()
        back = wait_for(lambda: all(k and k[-1][0] == 200 for k in kinds.values()), 30, 0.2)
        stop.set()
        t.join(60)
        said, held = [], bool(back)
        for kind, statuses in kinds.items():
            codes = {}
            for status, _ in statuses:
                codes[status] = codes.get(status, 0) + 1
            unavailable = [r for s, r in statuses if s == 503]
            said.append(f"{kind} {dict(sorted(codes.items(), key=str))}, "
                        f"Retry-After on {sum(1 for r in unavailable if r)} of {len(unavailable)} 503s")
            held = held and set(codes) <= {200, 503} and bool(unavailable) and all(unavailable)
        row("remote read and query_range across a PostgreSQL restart (3 s down)",
            "; ".join(said) + f"; 200 again: {back}", held)
    finally:
        server.stop()


def kill_mid_ingest(pg, where=""):
    """kill -9 mid-ingest: every batch is all or nothing. Returns the database."""
    server = Server(pg)
    threads = []
    for n in range(8):
        mcp = Mcp(server)
        t = threading.Thread(target=lambda m=mcp, n=n: _quiet(lambda: m.call(
            "ingest_timeseries", {"series": f"batch{n}", "points": points(20_000)})))
        threads.append(t)
        t.start()
    time.sleep(0.3)
    server.kill9()
    for t in threads:
        t.join(30)
    counts = pg.sql(server.db, "SELECT count(*) FROM timeseries_data WHERE series_name LIKE 'batch%' GROUP BY series_name").split()
    partial = sum(1 for c in counts if int(c) not in (0, 20_000))
    row(f"kill -9 mid-ingest (8 batches of 20,000){where}", f"{partial} partial batches ({len(counts)} complete)",
        partial == 0)
    return server.db


def folded_after_kill(pg, db):
    """The killed server's tails were never folded; the next start (already
    running on db) finds them and folds them, and what it folds agrees with
    the points. All but the hour of each series' newest point, which stays a tail."""
    points_in = int(pg.sql(db, """SELECT count(*) FROM timeseries_data d WHERE series_name LIKE 'batch%'
        AND time < (SELECT date_bin('1 hour', max(e.time), TIMESTAMPTZ '2000-01-01Z')
                      FROM timeseries_data e WHERE e.series_name = d.series_name)"""))
    folded = lambda: int(pg.sql(db, "SELECT COALESCE(sum(count), 0) FROM timeseries_rollups WHERE series_name LIKE 'batch%'"))
    t = time.time()
    wait_for(lambda: folded() == points_in, 60, 0.5)
    mismatched = pg.sql(db, ROLLUP_MISMATCHES)
    hours = pg.sql(db, "SELECT count(*) FROM timeseries_rollups")
    row("  rollups after the kill: folded by the next start, agree with the points",
        f"{folded()} of {points_in} points folded in {time.time() - t:.0f} s; {mismatched} of {hours} hours differ",
        folded() == points_in and mismatched == "0")
    code, out = verify(pg, db)
    row("  rollups verify after the kill", f"exit {code}: {out[-120:]}", code == 0)


def verify(pg, db, *args):
    """`mcp-server rollups verify` against db: its exit code and what it said."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MCP_", "REDIS_", "DB_", "ROCKET_"))}
    env.update({"DATABASE_URL": f"{pg.url}/{db}", "RUST_LOG": "warn"})
    done = subprocess.run([BIN, "rollups", "verify", *args], env=env, capture_output=True, text=True, timeout=300)
    return done.returncode, (done.stdout + done.stderr).strip()


def lifecycle_kills(pg):
    """The data's life cycle under kill -9: a verify --repair and a retention run."""
    kill_mid_repair(pg)
    kill_mid_retention(pg)


def kill_mid_retention(pg):
    """kill -9 during `mcp-server retention`: each batch of deletes is its own
    transaction and raw_from (and hours_from) moved before any, so a kill
    leaves fewer points of hours still in the rollups, or fewer hours of days
    still in the daily table; the answers stay exact, verify exits 0, and the
    next run finishes."""
    server = Server(pg)
    db = server.db
    # 20 series of 30,000 minutes ending two days ago, written as an ETL
    # would (the invalidation log catalogues them), then folded.
    pg.sql(db, "INSERT INTO timeseries_data (series_name, time, value) "
               "SELECT 'old' || s, date_trunc('hour', now()) - interval '2 days' - g * interval '1 minute', "
               "sin(g) + s FROM generate_series(0, 19) s, generate_series(1, 30000) g")
    pg.sql(db, "SELECT count(mcp_refold(series_name)) FROM timeseries_series")
    try:
        mcp = Mcp(server)
        before = {n: stats_count(mcp, f"old{n}") for n in range(4)}
    finally:
        server.stop()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MCP_", "REDIS_", "DB_", "ROCKET_"))}
    env.update({"DATABASE_URL": f"{pg.url}/{db}", "RUST_LOG": "warn", "RETENTION_RAW_DAYS": "1",
                "RETENTION_HOURS_DAYS": "10"})
    raw = lambda: int(pg.sql(db, "SELECT count(*) FROM timeseries_data"))
    total = raw()
    proc = subprocess.Popen([BIN, "retention"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Killed once the first batch has gone.
    wait_for(lambda: raw() < total or proc.poll() is not None, 30, 0.01)
    proc.kill()
    proc.communicate()
    mid = raw()
    code, said = verify(pg, db)
    server = Server(pg, database=db)
    try:
        mcp = Mcp(server)
        after = {n: stats_count(mcp, f"old{n}") for n in range(4)}
    finally:
        server.stop()
    done = subprocess.run([BIN, "retention"], env=env, capture_output=True, text=True, timeout=120)
    left = raw()
    again, _ = verify(pg, db)
    row("kill -9 mid `mcp-server retention` (600,000 points, 1 day of them kept, 10 of hours)",
        f"{total - mid} of {total} dropped at the kill; verify {code}; counts {'unchanged' if after == before else after}; "
        f"the next run exits {done.returncode}, {left} points left; verify {again}",
        code == 0 and after == before and done.returncode == 0 and left < mid and again == 0)
    pg.drop(db)


def kill_mid_repair(pg):
    """kill -9 during `rollups verify --repair`: each series' rebuild is one
    transaction, so what it did not finish is left as it was, still named by
    verify; a second --repair rebuilds it, and verify then exits 0."""
    server = Server(pg)
    try:
        mcp = Mcp(server)
        for n in range(40):
            mcp.call("ingest_timeseries", {"series": f"rep{n:02}", "points": points(5_000)})
    finally:
        server.stop()
    db = server.db
    pg.sql(db, "SELECT count(mcp_refold(series_name)) FROM timeseries_series")
    pg.sql(db, "UPDATE timeseries_rollups SET max_value = max_value + 1")
    before, _ = verify(pg, db)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MCP_", "REDIS_", "DB_", "ROCKET_"))}
    env.update({"DATABASE_URL": f"{pg.url}/{db}", "RUST_LOG": "warn"})
    proc = subprocess.Popen([BIN, "rollups", "verify", "--repair"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Killed once it has named the first series: its rebuild is under way.
    proc.stdout.readline()
    proc.kill()
    proc.communicate()
    mid, said = verify(pg, db)
    still = len({line.split()[0].rstrip(":") for line in said.splitlines() if line.startswith("rep")})
    again, _ = verify(pg, db, "--repair")
    after, out = verify(pg, db)
    row("kill -9 mid `rollups verify --repair` (40 series, every hour changed)",
        f"verify before {before}, after the kill {mid} ({still} series still differ); "
        f"a second --repair {again}; then verify {after}",
        before == 1 and mid == 1 and 0 < still and again == 0 and after == 0)
    pg.drop(db)


def clean_exits(pg):
    """The commands that open the pool exit with their code, run after run,
    against a role that authenticates with a password (SCRAM: libpq's
    OpenSSL at work while the process ends once crashed 1 run in 10).
    `import` of a CSV with a byte-order mark, `stdio` to stdin's EOF,
    `rollups verify` and `retention --plan`."""
    pg.sql("postgres", "CREATE ROLE mcp_scram LOGIN CREATEDB PASSWORD 'scram-pw'")
    db = f"faults_scram_{os.getpid()}"
    pg.sql("postgres", f"CREATE DATABASE {db} OWNER mcp_scram")
    hba = os.path.join(PG_DATA, "pg_hba.conf")
    with open(hba) as f:
        rules = f.read()
    with open(hba, "w") as f:
        f.write("host all mcp_scram 127.0.0.1/32 scram-sha-256\n" + rules)
    pg.ctl("reload")
    wrong = subprocess.run(["psql", "-X", "-Atq", f"postgres://mcp_scram:wrong@127.0.0.1:{PG_PORT}/{db}", "-c", "SELECT 1"],
                           capture_output=True, text=True, timeout=30)
    row("  the role authenticates by password (a wrong one is refused)", wrong.stderr.strip()[-80:],
        wrong.returncode != 0 and "password authentication failed" in wrong.stderr)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MCP_", "REDIS_", "DB_", "ROCKET_", "PG"))}
    env.update({"DATABASE_URL": f"postgres://mcp_scram:scram-pw@127.0.0.1:{PG_PORT}/{db}", "RUST_LOG": "warn",
                "RETENTION_RAW_DAYS": "30"})
    csv_path = os.path.join(tempfile.mkdtemp(prefix="mcp-faults-csv-"), "bom.csv")
    with open(csv_path, "w", encoding="utf-8-sig") as f:
        f.write("time,value\n" + "".join(f"2026-01-01T00:0{i}:00Z,{i}\n" for i in range(9)))
    stdin = "".join(json.dumps(m) + "\n" for m in [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "faults", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "list_series", "arguments": {}}}])
    runs = 200
    for command, args, feed in (("import", ["import", csv_path, "--series", "bom"], None),
                                ("stdio", ["stdio"], stdin),
                                ("rollups verify", ["rollups", "verify"], None),
                                ("retention --plan", ["retention", "--plan"], None)):
        codes, answered, started = {}, 0, time.time()
        for _ in range(runs):
            if time.time() - started > 120:
                break
            done = subprocess.run([BIN, *args], env=env, input=feed, capture_output=True, text=True, timeout=30)
            codes[done.returncode] = codes.get(done.returncode, 0) + 1
            answered += ('"id":2' in done.stdout if feed
                         else "series checked, 0 differ" in done.stderr if command == "rollups verify"
                         else "retention plan at" in done.stdout if command.startswith("retention")
                         else "imported 9 points" in done.stdout)
        n = sum(codes.values())
        others = {c: k for c, k in codes.items() if c != 0}
        row(f"{command}: {runs} runs to the end, SCRAM auth",
            f"{codes.get(0, 0)} of {n} exited 0, {answered} finished their work"
            + (f"; other exit codes {others}" if others else "") + f" ({time.time() - started:.0f} s)",
            n == runs and codes.get(0, 0) == runs and answered == runs)
    stored = pg.sql(db, "SELECT count(*) FROM timeseries_data WHERE series_name = 'bom'")
    row("  the imports' points, once each", f"{stored} of 9", stored == "9")
    pg.drop(db)
    shutil.rmtree(os.path.dirname(csv_path), ignore_errors=True)


def timescale(_pg):
    """The kill mid-ingest again, on the TimescaleDB server TIMESCALE_URL names:
    a batch is all or nothing in a hypertable's chunks too. That server is not
    the suite's to restart, so only the kill runs there."""
    url = os.environ.get("TIMESCALE_URL", "")
    if not url:
        SKIPPED.append("timescale faults: skipped (no TIMESCALE_URL)")
        print(SKIPPED[-1], flush=True)
        return
    parts = urllib.parse.urlsplit(url)
    ts = Database(urllib.parse.urlunsplit((parts.scheme, parts.netloc, "", "", "")))
    db = None
    try:
        db = kill_mid_ingest(ts, " on TimescaleDB")
        hyper = ts.sql(db, "SELECT count(*) FROM timescaledb_information.hypertables "
                           "WHERE hypertable_name = 'timeseries_data'")
        row("  into a hypertable", f"timeseries_data hypertables: {hyper or 'none'}", hyper == "1")
        again = Server(ts, database=db)
        folded_after_kill(ts, db)
        again.stop()
    finally:
        if db:
            ts.drop(db)


# Rollup rows that differ from a recomputation from the points, before each
# series' folded_to (rows after it are not read until the fold recomputes them).
ROLLUP_MISMATCHES = """
    WITH s AS (SELECT d.series_name, COALESCE(c.folded_to, '-infinity') AS f
                 FROM (SELECT DISTINCT series_name FROM timeseries_data) d
                 LEFT JOIN timeseries_series c USING (series_name)),
    fresh AS (SELECT r.* FROM s CROSS JOIN LATERAL mcp_rollups_from_raw(s.series_name, '-infinity', s.f) r),
    kept AS (SELECT r.* FROM timeseries_rollups r JOIN s USING (series_name) WHERE r.bucket < s.f)
    SELECT count(*) FROM fresh f FULL JOIN kept r USING (series_name, bucket)
     WHERE f.count IS DISTINCT FROM r.count OR f.min_value IS DISTINCT FROM r.min_value
        OR f.max_value IS DISTINCT FROM r.max_value OR f.sketch_counts IS DISTINCT FROM r.sketch_counts
        OR abs(f.increase - r.increase) > 1e-9 * greatest(abs(f.increase), 1)"""


class Exporter:
    """A scrape target whose one sample counts its scrapes: what Prometheus
    scraped is 1..served, so a gap in what was stored is a lost sample."""

    def __init__(self):
        import http.server
        self.served, self.open = 0, True
        exporter = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if not exporter.open:
                    self.send_response(503)
                    self.end_headers()
                    return
                exporter.served += 1
                body = f"# TYPE fault_seq gauge\nfault_seq {exporter.served}\n".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


def prometheus_outage(pg):
    # Prometheus remote-writes at a steady rate while PostgreSQL restarts:
    # what it was told was written is there, the rest it retries, and it arrives.
    if not shutil.which("prometheus"):
        row("Prometheus remote write across a PostgreSQL restart", "not run: no prometheus binary", False)
        return
    # Writes during the outage fail within a second (503), rather than
    # waiting it out for a connection.
    server = Server(pg, {"MCP_AUTH_TOKEN": "faults-token", "DB_CHECKOUT_TIMEOUT_SECS": "1"})
    exporter = Exporter()
    work = tempfile.mkdtemp(prefix="mcp-faults-prometheus-")
    prom_port = free_port()
    with open(os.path.join(work, "prometheus.yml"), "w") as f:
        f.write(f"""global: {{scrape_interval: 500ms, scrape_timeout: 450ms}}
scrape_configs:
  - job_name: faults
    static_configs: [{{targets: ['127.0.0.1:{exporter.port}']}}]
remote_write:
  - url: http://127.0.0.1:{server.port}/api/v1/write
    authorization: {{credentials: faults-token}}
    queue_config: {{batch_send_deadline: 250ms, min_backoff: 100ms, max_backoff: 1s}}
""")
    prom = subprocess.Popen(["prometheus", f"--config.file={work}/prometheus.yml",
                             f"--web.listen-address=127.0.0.1:{prom_port}", f"--storage.tsdb.path={work}/data"],
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "log"), "w"))
    stored = lambda: pg.sql(server.db, "SELECT count(*), COALESCE(max(value), 0)::bigint, count(DISTINCT value) "
                                       "FROM timeseries_data WHERE tags->>'__name__' = 'fault_seq'").split("|")
    try:
        wait_for(lambda: int(stored()[0]) > 0, 30, 0.25)
        time.sleep(3)
        before = int(stored()[0])
        pg.stop()
        time.sleep(4)
        pg.start()
        time.sleep(3)
        exporter.open = False
        served = exporter.served
        t = time.time()
        wait_for(lambda: int(stored()[0]) >= served, 60, 0.5)
        count, top, distinct = (int(x) for x in stored())
        _, metrics = http_get(prom_port, "/metrics")
        failed = sum(float(l.split()[-1]) for l in metrics.splitlines()
                     if l.startswith(("prometheus_remote_storage_samples_failed_total",
                                      "prometheus_remote_storage_samples_dropped_total")))
        retried = sum(float(l.split()[-1]) for l in metrics.splitlines()
                      if l.startswith("prometheus_remote_storage_samples_retried_total"))
        row("Prometheus remote write across a PostgreSQL restart",
            f"{served} scraped, {count} stored ({before} before the restart, {distinct} distinct, 1..{top}); "
            f"{retried:.0f} retried, {failed:.0f} dropped by Prometheus; caught up {time.time() - t:.1f} s after",
            count == served and distinct == served and top == served and failed == 0 and retried > 0)
    finally:
        prom.terminate()
        try:
            prom.wait(15)
        except subprocess.TimeoutExpired:
            prom.kill()
        exporter.close()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def http_get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path)
    r = c.getresponse()
    return r.status, r.read().decode(errors="replace")


def _quiet(f):
    try:
        f()
    except Exception:
        pass


def main():
    if not os.path.exists(BIN):
        sys.exit(f"no server binary at {BIN}: cargo build --release first")
    pg = Postgres()
    pg.stop()
    shutil.rmtree(PG_DATA, ignore_errors=True)
    pg.start()
    started = time.time()
    try:
        only = os.environ.get("FAULTS_ONLY", "").split(",")
        for scenario in (redis_faults, hostile, large_bodies, postgres_faults, lifecycle_kills, prometheus_outage,
                         clean_exits, timescale):
            if only != [""] and scenario.__name__ not in only:
                continue
            if time.time() > DEADLINE:
                row(scenario.__name__, "not run: the suite's time ran out", False)
                continue
            print(f"== {scenario.__name__}", flush=True)
            try:
                scenario(pg)
            except Exception as e:  # a scenario that breaks is a failure, not a crash
                row(scenario.__name__, f"broke: {e!r}"[:300], False)
    finally:
        pg.stop()
        shutil.rmtree(PG_DATA, ignore_errors=True)
    width = max(len(r[0]) for r in ROWS)
    print(f"\nfault suite ({time.time() - started:.0f} s)\n")
    print(f"{'scenario':{width}}  {'result':11}  figure")
    for scenario, figure, holds in ROWS:
        print(f"{scenario:{width}}  {'holds' if holds else 'FALLS SHORT':11}  {figure}")
    short = sum(1 for r in ROWS if not r[2])
    for line in SKIPPED:
        print(line)
    print(f"\nfaults: {len(ROWS) - short} hold, {short} fall short, {len(SKIPPED)} skipped")
    sys.exit(1 if short else 0)


if __name__ == "__main__":
    main()
