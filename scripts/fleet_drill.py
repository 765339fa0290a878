#!/usr/bin/env python3
"""A fleet on loopback, measured: health verdicts, failover, joining, building once.

Starts, all on 127.0.0.0/8 and all stopped by PID at the end:
  * a scratch PostgreSQL database (on the machine's server) and a Redis key prefix
    (on the machine's Redis), both removed afterwards;
  * two HTTP endpoints (127.0.0.2 and 127.0.0.3) that count the probes of each site
    (by User-Agent) and can be made to fail;
  * three nameservers in two sites (a, a, b) and a probe-only server in a third (c),
    the zone `drill.example.` routing `www` over the two endpoints (interval 1 s,
    fall 2, rise 2).

Then it measures and prints:
  1. probes per endpoint per site per interval (one probe stream per site);
  2. over FLIPS stops and starts of 127.0.0.3: the failover time (endpoint stopped ->
     every nameserver's answer without it) and the verdict propagation (the publish
     that made the quorum -> each nameserver's answer changed), median and the
     spread between the first and the last nameserver;
  3. an apply of ZONES zones / RECORDS record sets while the fleet runs: the time
     until every server serves it, the zones each server built, took from the
     answer cache or waited for, and the CPU seconds each server spent (summed);
  4. a NEW nameserver joining the fleet that serves all that: time from start to
     ready and to its first right answer.

    .venv/bin/python scripts/fleet_drill.py [--zones 10000] [--records 100000] [--flips 10]
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.server
import json
import os
import pathlib
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from typing import Any

import dns.message
import dns.query
import psycopg
import redis
from psycopg import sql

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from bench_memory import free_port, write_zones  # noqa: E402

BIN = ROOT / ".venv" / "bin" / "geostream-dns"
CLK_TCK = os.sysconf("SC_CLK_TCK")
ENDPOINTS = ("127.0.0.2", "127.0.0.3")
ZONE = """\
zone: drill.example.
ttl: 60
soa: {{primary: ns1.drill.example., email: hostmaster@drill.example, refresh: 7200,
      retry: 900, expire: 1209600, negative_ttl: 60}}
nameservers: [ns1.drill.example.]
regions:
  here: {{lat: 50.1, lon: 8.7}}
healthchecks:
  web: {{protocol: http, port: {port}, path: /health, interval: 1s, rise: 2, fall: 2}}
records:
  ns1: {{type: A, value: 127.0.0.53}}
  www:
    type: A
    ttl: 5
    routing:
      pools:
        here: {{region: here, answer: all, values: [{{value: 127.0.0.2, healthcheck: web}},
                                                  {{value: 127.0.0.3, healthcheck: web}}]}}
      rules:
        - pool: here
"""


# ---------------------------------------------------------------- endpoints
class Endpoints:
    """The two HTTP endpoints: up or down at will, probes counted per site."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.down: set[str] = set()
        self.probes: dict[tuple[str, str], int] = {}  # (endpoint, site) -> requests
        self.lock = threading.Lock()
        self.servers = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                host = self.server.server_address[0]
                agent = self.headers.get("User-Agent", "")
                site = agent.partition("(site=")[2].rstrip(")") or "?"
                with outer.lock:
                    outer.probes[(host, site)] = outer.probes.get((host, site), 0) + 1
                code = 503 if host in outer.down else 200
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        for host in ENDPOINTS:
            server = http.server.ThreadingHTTPServer((host, port), Handler)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self.servers.append(server)

    def counts(self) -> dict[tuple[str, str], int]:
        with self.lock:
            return dict(self.probes)

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


# ---------------------------------------------------------------- servers
class Server:
    def __init__(self, name: str, site: str, env: dict[str, str], tmp: pathlib.Path,
                 probe_only: bool = False) -> None:
        self.name = name
        self.site = site
        self.dns_port = free_port() if not probe_only else 0
        self.http_port = free_port()
        self.log_path = tmp / f"{name}.log"
        args = [str(BIN), "serve", "--http", f"127.0.0.1:{self.http_port}", "--site", site,
                "--server-id", name, "--state-dir", str(tmp / f"state-{name}")]
        args += ["--probe-only"] if probe_only else ["--listen", f"127.0.0.1:{self.dns_port}"]
        self.started = time.monotonic()
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/ready",
                                        timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def wait_ready(self, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited:\n{self.log_path.read_text()[-2000:]}")
            if self.ready():
                return time.monotonic() - self.started
            time.sleep(0.05)
        raise SystemExit(f"{self.name} not ready in {timeout:.0f} s")

    def answer(self, name: str = "www.drill.example.") -> frozenset[str]:
        q = dns.message.make_query(name, "A")
        try:
            reply = dns.query.udp(q, "127.0.0.1", port=self.dns_port, timeout=0.5)
        except (dns.exception.Timeout, OSError):
            return frozenset()
        return frozenset(rd.to_text() for rrset in reply.answer for rd in rrset)

    def cpu_seconds(self) -> float:
        fields = pathlib.Path(f"/proc/{self.proc.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def events(self, name: str) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if f'"{name}"' in line:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()


def wall(event: dict[str, Any]) -> float:
    return dt.datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()


def wait_until(check: Any, timeout: float, step: float = 0.01) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(step)
    return None


# ---------------------------------------------------------------- the drill
def flip_drill(eps: Endpoints, fleet: list[Server], flips: int) -> dict[str, Any]:
    both = frozenset(ENDPOINTS)
    one = frozenset({ENDPOINTS[0]})
    failovers, recoveries, propagation, spreads = [], [], [], []
    for i in range(flips):
        for target, want in ((True, one), (False, both)):
            started_wall = time.time()
            started = time.monotonic()
            if target:
                eps.down.add(ENDPOINTS[1])
            else:
                eps.down.discard(ENDPOINTS[1])
            changed: dict[str, float] = {}
            deadline = started + 30
            while len(changed) < len(fleet) and time.monotonic() < deadline:
                for server in fleet:
                    if server.name not in changed and server.answer() == want:
                        changed[server.name] = time.time()
                time.sleep(0.005)
            if len(changed) < len(fleet):
                raise SystemExit(f"flip {i}: not every server changed in 30 s: {changed}")
            (failovers if target else recoveries).append(max(changed.values()) - started_wall)
            # the publish that made the quorum: the 2nd of 3 live sites to publish
            publishes = sorted(wall(e) for s in fleet + [PROBER[0]]
                               for e in s.events("fleet.verdicts_published")
                               if wall(e) >= started_wall)
            if len(publishes) >= 2:
                decisive = publishes[1]
                propagation.extend(t - decisive for t in changed.values())
                spreads.append(max(changed.values()) - min(changed.values()))
            time.sleep(1.0)
    return {
        "flips": flips,
        "failover_s": {"median": round(statistics.median(failovers), 3),
                       "max": round(max(failovers), 3)},
        "recovery_s": {"median": round(statistics.median(recoveries), 3),
                       "max": round(max(recoveries), 3)},
        "verdict_to_answer_s": {"median": round(statistics.median(propagation), 3),
                                "max": round(max(propagation), 3)} if propagation else None,
        "first_to_last_server_s": {"median": round(statistics.median(spreads), 3),
                                   "max": round(max(spreads), 3)} if spreads else None,
    }


PROBER: list[Server] = []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zones", type=int, default=10_000)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--flips", type=int, default=10)
    parser.add_argument("--admin-url", default=os.environ.get(
        "GEOSTREAM_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--keep", type=pathlib.Path, metavar="DIR",
                        help="copy the servers' logs here at the end")
    args = parser.parse_args()

    db_name = f"gs_drill_{uuid.uuid4().hex[:10]}"
    prefix = f"gs-drill-{uuid.uuid4().hex[:8]}:"
    url = args.admin_url.rpartition("/")[0] + "/" + db_name
    with psycopg.connect(args.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db_name)))
    env = dict(os.environ, DATABASE_URL=url, REDIS_URL=args.redis_url,
               GEOSTREAM_REDIS_PREFIX=prefix, LOG_LEVEL="info")
    # Servers start as an installed package does, from compiled bytecode (written
    # by the first start), not compiling every module on every start.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    servers: list[Server] = []
    result: dict[str, Any] = {"zones": args.zones, "records": args.records}
    eps = Endpoints(free_port())
    try:
        with tempfile.TemporaryDirectory(prefix="geostream-drill-") as tmp_name:
            tmp = pathlib.Path(tmp_name)
            drill = tmp / "drill"
            drill.mkdir()
            (drill / "drill.example.yaml").write_text(ZONE.format(port=eps.port))
            subprocess.run([str(BIN), "migrate"], env=env, check=True, capture_output=True)
            subprocess.run([str(BIN), "apply", str(drill)], env=env, check=True,
                           capture_output=True)
            fleet = [Server("ns-a1", "a", env, tmp), Server("ns-a2", "a", env, tmp),
                     Server("ns-b1", "b", env, tmp)]
            prober = Server("probe-c", "c", env, tmp, probe_only=True)
            PROBER.append(prober)
            servers.extend([*fleet, prober])
            for server in servers:
                server.wait_ready(60)
            print("drill: fleet ready: 3 nameservers (a, a, b), 1 probe-only (c)", flush=True)
            time.sleep(3)

            # 1. one probe stream per site
            before = eps.counts()
            time.sleep(10)
            after = eps.counts()
            per_site = {f"{host} from {site}": round((after.get((host, site), 0)
                                                       - before.get((host, site), 0)) / 10, 2)
                        for host in ENDPOINTS for site in ("a", "b", "c")}
            result["probes_per_second_per_site"] = per_site
            print(f"drill: probes per second: {per_site}", flush=True)

            # 2. flips
            result["flips"] = flip_drill(eps, fleet, args.flips)
            print(f"drill: flips: {result['flips']}", flush=True)

            # 3. a big apply while the fleet runs
            if args.zones:
                big = tmp / "big"
                big.mkdir()
                write_zones(big, args.zones, args.records)
                (big / "drill.example.yaml").write_text(ZONE.format(port=eps.port))
                cpu_before = {s.name: s.cpu_seconds() for s in servers}
                started = time.monotonic()
                subprocess.run([str(BIN), "apply", str(big)], env=env, check=True,
                               capture_output=True, timeout=3600)
                applied = time.monotonic() - started
                waited = subprocess.run([str(BIN), "servers", "--json"], env=env,
                                        capture_output=True, text=True)
                generation = max(json.loads(waited.stdout)["servers"],
                                 key=lambda s: s["generation"])["generation"] + 1
                synced = wait_until(lambda: all(
                    s.answer(f"www.zone{args.zones - 1}.example.") for s in fleet), 3600, 0.2)
                in_sync = time.monotonic() - started
                cpu = {s.name: round(s.cpu_seconds() - cpu_before[s.name], 2) for s in servers}
                builds = {}
                for s in servers:
                    last = s.events("snapshot.built")[-1]
                    builds[s.name] = {k: last[k] for k in ("built", "from_cache",
                                                          "built_elsewhere", "duration_s")}
                result["big_apply"] = {"load_average_1m": round(os.getloadavg()[0], 2),
                    "apply_s": round(applied, 2), "answering_everywhere_s": round(in_sync, 2),
                    "generation": generation, "synced": synced is not None,
                    "cpu_seconds": cpu, "cpu_seconds_sum": round(sum(cpu.values()), 2),
                    "builds": builds,
                    "zones_built_sum": sum(b["built"] for b in builds.values())}
                print(f"drill: big apply: {result['big_apply']}", flush=True)

                # 4. a new server joins the fleet, once the fleet has settled (each
                # server, after the apply, also saves its snapshot for a restart):
                # at most 60 s until the servers' CPU seconds stop growing
                settle_started = time.monotonic()
                busy = sum(s.cpu_seconds() for s in servers)
                while time.monotonic() - settle_started < 60:
                    time.sleep(1.0)
                    now_busy = sum(s.cpu_seconds() for s in servers)
                    if now_busy - busy < 0.3:
                        break
                    busy = now_busy
                result["big_apply"]["settled_after_s"] = round(
                    time.monotonic() - settle_started, 1)
                joiner = Server("ns-b2", "b", env, tmp)
                servers.append(joiner)
                joined = {}

                def joiner_answers() -> bool:
                    if not joiner.answer(f"www.zone{args.zones - 1}.example."):
                        return False
                    joined["cpu"] = joiner.cpu_seconds()
                    return True

                answered = wait_until(joiner_answers, 600, 0.02)
                answering = time.monotonic() - joiner.started
                ready = joiner.wait_ready(60)
                last = joiner.events("snapshot.built")[-1]
                result["join"] = {"ready_s": round(ready, 2),
                                  "answering_s": round(answering, 2)
                                  if answered is not None else None,
                                  "cpu_s_to_first_answer": joined.get("cpu"),
                                  "load_average_1m": round(os.getloadavg()[0], 2),
                                  "build": {k: last[k] for k in ("built", "from_cache",
                                                                 "duration_s")}}
                print(f"drill: new server: {result['join']}", flush=True)
                if args.keep:
                    args.keep.mkdir(parents=True, exist_ok=True)
                    for server in servers:
                        server.stop()
                        (args.keep / server.log_path.name).write_bytes(
                            server.log_path.read_bytes())
    finally:
        for server in servers:
            server.stop()
        eps.close()
        with psycopg.connect(args.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(db_name)))
        client = redis.Redis.from_url(args.redis_url)
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i:i + 1000])
        client.close()
    result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
