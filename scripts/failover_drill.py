#!/usr/bin/env python3
"""Failover drill: how fast a dead endpoint leaves the answers, and comes back.

Starts real HTTP servers on 127.0.0.2, 127.0.0.3 and 127.0.0.4 (one free
port), a GeoStream server on a zone whose pool holds those addresses with an
http health check (interval 1 s, fall 2, rise 2), then DRILLS times: stops
the server on 127.0.0.3 and measures the seconds from the stop to the first
DNS answer without 127.0.0.3 (failover), restarts it and measures the
seconds to the first answer with it again (recovery). Prints each drill and
the medians; the targets are interval * fall + 1 s = 3.0 s and
interval * rise + 1 s = 3.0 s. Loopback only; every wait is bounded.

    .venv/bin/python scripts/failover_drill.py [--drills 5]
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import pathlib
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import dns.message
import dns.query

ROOT = pathlib.Path(__file__).resolve().parents[1]
ADDRESSES = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
VICTIM = "127.0.0.3"
WAIT_LIMIT = 20.0

ZONE = """\
zone: drill.test.
ttl: 5
soa: {{primary: ns1.drill.test., email: hostmaster@drill.test, refresh: 7200, retry: 900,
      expire: 1209600, negative_ttl: 5}}
nameservers: [ns1.drill.test.]
regions:
  local: {{lat: 50.1, lon: 8.7}}
healthchecks:
  web: {{protocol: http, port: {port}, path: /healthz, expect: {{status: [200], body_contains: ok}},
        interval: 1s, timeout: 500ms, rise: 2, fall: 2}}
records:
  ns1: {{type: A, value: 192.0.2.53}}
  www:
    type: A
    ttl: 5
    routing:
      pools:
        local:
          region: local
          answer: all
          values:
{values}
      rules: [{{pool: local}}]
"""


class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class Endpoint:
    def __init__(self, address: str, port: int) -> None:
        self.address, self.port = address, port
        self.server: http.server.ThreadingHTTPServer | None = None

    def start(self) -> None:
        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.server = http.server.ThreadingHTTPServer((self.address, self.port), Health)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def free_port(host: str = "127.0.0.1", kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_free_on_all(port: int) -> bool:
    for address in ADDRESSES:
        with socket.socket() as s:
            try:
                s.bind((address, port))
            except OSError:
                return False
    return True


def answer(port: int) -> set[str] | None:
    query = dns.message.make_query("www.drill.test", "A")
    try:
        response = dns.query.udp(query, "127.0.0.1", port=port, timeout=0.5)
    except (dns.exception.Timeout, OSError):
        return None
    return {rd.to_text() for rrset in response.answer for rd in rrset}


def wait_for(predicate, limit: float = WAIT_LIMIT, step: float = 0.02) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if predicate():
            return time.monotonic() - started
        time.sleep(step)
    raise TimeoutError(f"condition not met within {limit} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--drills", type=int, default=5)
    args = parser.parse_args()
    http_port = free_port()
    while not port_free_on_all(http_port):
        http_port = free_port()
    dns_port, api_port = free_port(kind=socket.SOCK_DGRAM), free_port()
    endpoints = {a: Endpoint(a, http_port) for a in ADDRESSES}
    for endpoint in endpoints.values():
        endpoint.start()
    results: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        zones = pathlib.Path(tmp) / "zones"
        zones.mkdir()
        values = "\n".join(f"            - {{value: {a}, healthcheck: web}}" for a in ADDRESSES)
        (zones / "drill.test.yaml").write_text(ZONE.format(port=http_port, values=values))
        log = open(pathlib.Path(tmp) / "server.log", "w")  # noqa: SIM115 - closed below
        server = subprocess.Popen(
            [str(ROOT / ".venv/bin/geostream-dns"), "serve", "--zones", str(zones),
             "--listen", f"127.0.0.1:{dns_port}", "--http", f"127.0.0.1:{api_port}",
             "--state-dir", str(pathlib.Path(tmp) / "state")],
            stdout=log, stderr=log, env={**os.environ, "LOG_LEVEL": "warning"})
        try:
            wait_for(lambda: answer(dns_port) == set(ADDRESSES))
            # Let every target pass a few probes, as in steady state.
            time.sleep(2.5)
            for drill in range(1, args.drills + 1):
                stopped = time.monotonic()
                endpoints[VICTIM].stop()
                failover = wait_for(lambda: (a := answer(dns_port)) is not None
                                    and VICTIM not in a)
                time.sleep(1.0)
                endpoints[VICTIM].start()
                recovery = wait_for(lambda: VICTIM in (answer(dns_port) or set()))
                results.append({"drill": drill, "failover_s": round(failover, 3),
                                "recovery_s": round(recovery, 3),
                                "down_for_s": round(time.monotonic() - stopped, 3)})
                print(f"drill {drill}: failover {failover:.2f} s, recovery {recovery:.2f} s",
                      flush=True)
                time.sleep(2.0)
            with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/metrics",
                                        timeout=5) as r:
                lag = [line for line in r.read().decode().splitlines()
                       if line.startswith("geostream_event_loop_lag_max_seconds")]
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=10)
            log.close()
            for endpoint in endpoints.values():
                endpoint.stop()
    summary = {
        "settings": {"interval_s": 1, "fall": 2, "rise": 2, "timeout_s": 0.5},
        "drills": results,
        "median_failover_s": statistics.median(r["failover_s"] for r in results),
        "median_recovery_s": statistics.median(r["recovery_s"] for r in results),
        "target_s": 3.0,
        "event_loop_lag": lag,
    }
    print(json.dumps(summary, indent=2))
    ok = summary["median_failover_s"] <= 3.0 and summary["median_recovery_s"] <= 3.0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
