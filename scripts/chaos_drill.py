#!/usr/bin/env python3
"""`make chaos-drill`: steady DNS load on a production-mode server while what it
depends on is killed with SIGKILL and started again; lost and wrong answers per event.

Starts, all on loopback, all its own and all stopped by PID at the end:
  * a throwaway PostgreSQL cluster (initdb in a temporary folder, its own port;
    never the machine's shared server) and a Redis server on a spare port;
  * two HTTP endpoints (127.0.0.2 and 127.0.0.3) the zone health-checks;
  * a `serve --probe-only` prober (site c) and a `serve --workers 2` nameserver
    (site a, --no-probe: its health comes from the fleet), both in production
    mode (DATABASE_URL, REDIS_URL).

Then, under dnsperf load (`--qps`) and while a checker sends its own queries
(`--check-qps`) and compares every answer with the records the zone holds,
it runs four events, each: kill -9, wait `--down` seconds, start again, wait
until it is back, then `--settle` seconds:
  postgres  the cluster's postmaster (then an apply must reach the server)
  redis     the Redis server
  prober    the probe-only server
  worker    one worker of the --workers 2 server (the server starts it again
            on its own; its recovery time counts from the kill)

Prints, per event: queries checked, lost (no answer within 1 s), wrong (an
answer other than the expected records, or an error rcode) and the recovery
time; then dnsperf's totals. Exit 1 when any answer was wrong.

    .venv/bin/python scripts/chaos_drill.py [--qps 2000] [--down 3] [--settle 3]
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import dns.message
import dns.rcode
import dns.rdatatype

ROOT = pathlib.Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin" / "geostream-dns"
ENDPOINTS = ("127.0.0.2", "127.0.0.3")
ZONE = """\
zone: chaos.example.
ttl: 60
soa: {{primary: ns1.chaos.example., email: hostmaster@chaos.example, refresh: 7200,
      retry: 900, expire: 1209600, negative_ttl: 60}}
nameservers: [ns1.chaos.example.]
regions:
  here: {{lat: 50.1, lon: 8.7}}
healthchecks:
  web: {{protocol: http, port: {port}, path: /health, interval: 1s, rise: 2, fall: 2}}
records:
  ns1: {{type: A, value: 127.0.0.53}}
  static: {{type: A, values: [192.0.2.1, 192.0.2.2]}}
  text: {{type: TXT, value: "chaos drill"}}
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
# (name, type) -> (rcode, the answer's data)
EXPECTED: dict[tuple[str, str], tuple[int, frozenset[str]]] = {
    ("static.chaos.example.", "A"): (dns.rcode.NOERROR, frozenset({"192.0.2.1", "192.0.2.2"})),
    ("www.chaos.example.", "A"): (dns.rcode.NOERROR, frozenset({"127.0.0.2", "127.0.0.3"})),
    ("text.chaos.example.", "TXT"): (dns.rcode.NOERROR, frozenset({'"chaos drill"'})),
    ("nothing.chaos.example.", "A"): (dns.rcode.NXDOMAIN, frozenset()),
}


def free_port(avoid: set[int]) -> int:
    for _ in range(100):
        with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            if port not in avoid:
                avoid.add(port)
                return port
    raise SystemExit("no free port")


def wait(check: Any, timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if check():
                return time.monotonic() - started
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.05)
    raise SystemExit(f"chaos-drill: {what} not back within {timeout:.0f} s")


# ---------------------------------------------------------------- services
class Postgres:
    """A throwaway cluster: initdb in `folder`, its own port, trust on loopback."""

    def __init__(self, folder: pathlib.Path, port: int) -> None:
        self.data = folder / "pg"
        self.port = port
        self.log = folder / "pg.log"
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(folder, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8")

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=120)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data} "
                   "-c fsync=off -c synchronous_commit=off")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w",
                  "-t", "60", "start")

    def pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def up(self) -> bool:
        import psycopg

        with psycopg.connect(self.url, connect_timeout=1) as conn:
            conn.execute("SELECT 1")
        return True

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except subprocess.CalledProcessError:
            pass


class Redis:
    def __init__(self, folder: pathlib.Path, port: int) -> None:
        self.folder = folder
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def up(self) -> bool:
        import redis

        return bool(redis.Redis(port=self.port, socket_timeout=1).ping())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class Endpoints:
    """Two always-healthy HTTP endpoints the zone health-checks."""

    def __init__(self, port: int) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the prober was killed mid-probe: that is the drill

            def log_message(self, *args: Any) -> None:
                pass

        self.servers = [http.server.ThreadingHTTPServer((host, port), Handler)
                        for host in ENDPOINTS]
        for server in self.servers:
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


class Server:
    def __init__(self, name: str, args: list[str], env: dict[str, str],
                 folder: pathlib.Path, http_port: int) -> None:
        self.name = name
        self.args = [str(BIN), "serve", "--http", f"127.0.0.1:{http_port}",
                     "--server-id", name, "--state-dir", str(folder / f"state-{name}"), *args]
        self.env = env
        self.http_port = http_port
        self.log_path = folder / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=self.env)

    def ready(self) -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/ready",
                                    timeout=1) as r:
            return bool(r.status == 200)

    def children(self) -> set[int]:
        assert self.proc is not None
        found: set[int] = set()
        for task in pathlib.Path(f"/proc/{self.proc.pid}/task").iterdir():
            found.update(int(t) for t in (task / "children").read_text().split())
        return found

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


# ---------------------------------------------------------------- the checker
@dataclass
class Checker:
    """Queries at a steady rate, each answer compared with the zone's records."""

    port: int
    qps: float
    results: list[tuple[float, str, str]] = field(default_factory=list)  # (time, kind, detail)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        questions = list(EXPECTED)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(1.0)
        interval = 1.0 / self.qps
        i = 0
        next_at = time.monotonic()
        while not self.stop.is_set():
            name, rdtype = questions[i % len(questions)]
            i += 1
            query = dns.message.make_query(name, rdtype)
            sent = time.monotonic()
            kind, detail = "ok", ""
            try:
                sock.sendto(query.to_wire(), ("127.0.0.1", self.port))
                while True:
                    data = sock.recv(65535)
                    if data[:2] == query.to_wire()[:2]:
                        break
                reply = dns.message.from_wire(data)
                rcode = reply.rcode()
                got = frozenset(rd.to_text() for rrset in reply.answer for rd in rrset
                                if rrset.rdtype == dns.rdatatype.from_text(rdtype))
                want_rcode, want = EXPECTED[(name, rdtype)]
                if rcode != want_rcode or got != want:
                    kind = "wrong"
                    detail = f"{name} {rdtype}: {dns.rcode.to_text(rcode)} {sorted(got)}"
            except TimeoutError:
                kind = "lost"
            except (OSError, dns.exception.DNSException) as exc:
                kind, detail = "wrong", f"{name} {rdtype}: {exc!r}"
            self.results.append((sent, kind, detail))
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_at = time.monotonic()
        sock.close()

    def window(self, start: float, end: float) -> dict[str, Any]:
        picked = [r for r in self.results if start <= r[0] < end]
        wrong = [d for _, k, d in picked if k == "wrong"]
        return {"checked": len(picked), "lost": sum(1 for _, k, _ in picked if k == "lost"),
                "wrong": len(wrong), "examples": sorted(set(wrong))[:3]}


# ---------------------------------------------------------------- the drill
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--qps", type=int, default=2000, help="dnsperf load (default 2000)")
    parser.add_argument("--check-qps", type=float, default=200.0,
                        help="checked queries per second (default 200)")
    parser.add_argument("--down", type=float, default=3.0,
                        help="seconds each component stays dead (default 3)")
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds measured after each recovery (default 3)")
    args = parser.parse_args()
    if not (1 <= args.qps <= 200_000 and 1 <= args.check_qps <= 5000
            and 0 <= args.down <= 60 and 0 <= args.settle <= 60):
        parser.error("out of range: --qps 1..200000, --check-qps 1..5000, "
                     "--down and --settle 0..60")
    if shutil.which("dnsperf") is None:
        raise SystemExit("chaos-drill: dnsperf is not installed (apt-get install dnsperf)")

    folder = pathlib.Path(tempfile.mkdtemp(prefix="geostream-chaos-"))
    os.chmod(folder, 0o755)
    ports: set[int] = set()
    pg = Postgres(folder, free_port(ports))
    redis_server = Redis(folder, free_port(ports))
    endpoints = Endpoints(free_port(ports))
    endpoint_port = endpoints.servers[0].server_address[1]
    dns_port = free_port(ports)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("GEOSTREAM_") and k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(DATABASE_URL=pg.url, REDIS_URL=f"redis://127.0.0.1:{redis_server.port}/0",
               GEOSTREAM_REDIS_PREFIX="chaos:", LOG_LEVEL="info")
    prober = Server("prober", ["--probe-only", "--site", "c"], env, folder, free_port(ports))
    nameserver = Server("dns", ["--workers", "2", "--listen", f"127.0.0.1:{dns_port}",
                                "--site", "a", "--no-probe"], env, folder, free_port(ports))
    dnsperf: subprocess.Popen[str] | None = None
    checker = Checker(dns_port, args.check_qps)
    checker_thread = threading.Thread(target=checker.run, daemon=True)
    rows: list[dict[str, Any]] = []
    try:
        pg.start()
        redis_server.start()
        wait(redis_server.up, 20, "redis")
        zones = folder / "zones"
        zones.mkdir()
        (zones / "chaos.example.yaml").write_text(ZONE.format(port=endpoint_port))
        for command in (["migrate"], ["apply", str(zones)]):
            done = subprocess.run([str(BIN), *command], env=env, capture_output=True,
                                  text=True, timeout=120)
            if done.returncode != 0:
                raise SystemExit(f"chaos-drill: {' '.join(command)} failed:\n{done.stderr}")
        prober.start()
        nameserver.start()
        wait(prober.ready, 60, "the prober")
        wait(nameserver.ready, 60, "the nameserver")
        wait(lambda: len(nameserver.children()) == 1, 30, "the second worker")
        wait(lambda: _answers(dns_port), 30, "the expected answers")
        print(f"chaos-drill: PostgreSQL :{pg.port} (own cluster), Redis :{redis_server.port}, "
              f"prober, nameserver --workers 2 on :{dns_port}", flush=True)

        events = ["postgres", "redis", "prober", "worker"]
        duration = int(len(events) * (args.down + args.settle + 15) + 30)
        queries = folder / "queries.txt"
        queries.write_text("".join(f"{name} {rdtype}\n" for name, rdtype in EXPECTED))
        dnsperf = subprocess.Popen(
            ["dnsperf", "-s", "127.0.0.1", "-p", str(dns_port), "-d", str(queries),
             "-l", str(duration), "-Q", str(args.qps), "-c", "4", "-t", "2"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        checker_thread.start()
        time.sleep(3)
        start = time.monotonic()
        time.sleep(args.settle)
        rows.append({"event": "baseline", **checker.window(start, time.monotonic()),
                     "recovery_s": None})
        for event in events:
            start = time.monotonic()
            extra = ""
            if event == "postgres":
                os.kill(pg.pid(), signal.SIGKILL)
                time.sleep(args.down)
                pg.start()
                recovered = wait(pg.up, 60, "PostgreSQL")
                # a change applied after the outage must reach the server
                text = (zones / "chaos.example.yaml").read_text()
                (zones / "chaos.example.yaml").write_text(
                    text + "  after: {type: A, value: 192.0.2.99}\n")
                applied = time.monotonic()
                done = subprocess.run([str(BIN), "apply", str(zones)], env=env,
                                      capture_output=True, text=True, timeout=60)
                if done.returncode != 0:
                    raise SystemExit(f"chaos-drill: apply after the outage failed:\n"
                                     f"{done.stderr}")
                seen = wait(lambda: _address(dns_port, "after.chaos.example.") == "192.0.2.99",
                            60, "the change applied after the outage")
                extra = f"apply after restart served in {seen:.2f} s (applied at " \
                        f"+{applied - start:.1f} s)"
            elif event == "redis":
                assert redis_server.proc is not None
                os.kill(redis_server.proc.pid, signal.SIGKILL)
                redis_server.proc.wait(10)
                time.sleep(args.down)
                redis_server.start()
                recovered = wait(redis_server.up, 30, "Redis")
                back = wait(lambda: _redis_up(nameserver), 60, "the server's Redis link")
                extra = f"server's link up again {back:.2f} s after restart"
            elif event == "prober":
                assert prober.proc is not None
                os.kill(prober.proc.pid, signal.SIGKILL)
                prober.proc.wait(10)
                time.sleep(args.down)
                prober.start()
                recovered = wait(prober.ready, 60, "the prober")
            else:
                [killed] = nameserver.children()
                os.kill(killed, signal.SIGKILL)  # no waiting: the server restarts it itself
                recovered = wait(lambda k=killed: len(nameserver.children()) == 1  # type: ignore[misc]
                                 and k not in nameserver.children(), 60, "the worker")
                extra = "restarted by the server itself (recovery: from the kill)"
            time.sleep(args.settle)
            rows.append({"event": event, **checker.window(start, time.monotonic()),
                         "recovery_s": round(recovered, 2), "note": extra})
        checker.stop.set()
        checker_thread.join(5)
        dnsperf.send_signal(signal.SIGINT)  # dnsperf prints its totals when interrupted
        perf_out = dnsperf.communicate(timeout=30)[0]
    finally:
        checker.stop.set()
        if dnsperf is not None and dnsperf.poll() is None:
            dnsperf.kill()
            dnsperf.wait(5)
        for server in (nameserver, prober):
            server.stop()
        redis_server.stop()
        pg.stop()
        endpoints.close()
        shutil.rmtree(folder, ignore_errors=True)

    print(f"\n{'event':10} {'checked':>8} {'lost':>6} {'wrong':>6} {'recovery':>9}  note")
    for row in rows:
        recovery = f"{row['recovery_s']:.2f} s" if row["recovery_s"] is not None else "-"
        print(f"{row['event']:10} {row['checked']:>8} {row['lost']:>6} {row['wrong']:>6} "
              f"{recovery:>9}  {row.get('note', '')}")
        for example in row["examples"]:
            print(f"{'':10} wrong: {example}")
    summary = {k: v for k, v in _dnsperf_totals(perf_out).items()}
    print("\ndnsperf: " + ", ".join(f"{k} {v}" for k, v in summary.items()))
    out = ROOT / "chaos-results"
    out.mkdir(exist_ok=True)
    (out / "last.json").write_text(json.dumps({"events": rows, "dnsperf": summary,
                                               "qps": args.qps}, indent=1) + "\n")
    return 1 if any(row["wrong"] for row in rows) else 0


def _answers(port: int) -> bool:
    return _address(port, "www.chaos.example.") in ("127.0.0.2", "127.0.0.3")


def _address(port: int, name: str) -> str | None:
    import dns.query

    reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port,
                          timeout=0.5)
    return next((rd.to_text() for rrset in reply.answer for rd in rrset), None)


def _redis_up(server: Server) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/ready", timeout=1) as r:
        body = json.loads(r.read())
    return bool(body.get("redis", {}).get("up"))


def _dnsperf_totals(text: str) -> dict[str, str]:
    totals = {}
    for key, pattern in (("sent", r"Queries sent:\s+(\d+)"),
                         ("completed", r"Queries completed:\s+(\d+ \([\d.]+%\))"),
                         ("lost", r"Queries lost:\s+(\d+ \([\d.]+%\))"),
                         ("qps", r"Queries per second:\s+([\d.]+)"),
                         ("avg_latency_s", r"Average Latency \(s\):\s+([\d.]+)")):
        found = re.search(pattern, text)
        totals[key] = found.group(1) if found else "?"
    codes = re.search(r"Response codes:\s+(.+)", text)
    totals["rcodes"] = codes.group(1).strip() if codes else "?"
    return totals


if __name__ == "__main__":
    sys.exit(main())
