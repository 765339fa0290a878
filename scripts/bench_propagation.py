#!/usr/bin/env python3
"""Propagation time in production mode: from `apply` returning to every server answering.

Creates a scratch database (through ADMIN_URL, default the local `postgres`
database), migrates it, applies a zone (plus BACKGROUND zones of ballast from
scripts/bench_memory.py's generator, if asked), starts SERVERS
`geostream-dns serve` processes on it, then APPLIES times adds a record with
`geostream-dns apply` and measures how long after `apply` returned every server
answers it over UDP. Prints each figure and the median. Drops the database.

    .venv/bin/python scripts/bench_propagation.py --applies 10 --servers 2
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import pathlib
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

import dns.message
import dns.query
import psycopg
from psycopg import sql

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from bench_memory import free_port, write_zones  # noqa: E402

from geostream_dns.cli.main import main as cli_main  # noqa: E402

BIN = ROOT / ".venv" / "bin" / "geostream-dns"
ZONE = """zone: bench.example.
ttl: 60
soa: {{primary: ns1.example.net., email: hostmaster@bench.example, refresh: 7200, retry: 900,
      expire: 1209600, negative_ttl: 60}}
nameservers: [ns1.example.net.]
records:
{records}
"""


def geostream(*args: str, url: str) -> None:
    env = dict(os.environ, DATABASE_URL=url)
    result = subprocess.run([str(BIN), *args], env=env, capture_output=True, text=True,
                            timeout=3600)
    if result.returncode not in (0, 2):
        raise SystemExit(f"geostream-dns {' '.join(args)} failed:\n{result.stdout}\n"
                         f"{result.stderr}")


def answers(port: int, name: str) -> set[str]:
    try:
        reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port,
                              timeout=0.2)
    except Exception:  # noqa: BLE001 - not answering yet
        return set()
    return {r.to_text() for rrset in reply.answer for r in rrset}


def wait_ready(http: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("a server exited early")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http}/ready", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit("a server was not ready in time")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--admin-url", default=os.environ.get(
        "GEOSTREAM_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--applies", type=int, default=10)
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--background-zones", type=int, default=0,
                        help="ballast zones applied first (bench_memory's generator)")
    parser.add_argument("--background-records", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=30.0, help="per apply, seconds")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    name = f"gs_bench_{uuid.uuid4().hex[:12]}"
    base, _, _ = args.admin_url.rpartition("/")
    url = f"{base}/{name}"
    with psycopg.connect(args.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    procs: list[subprocess.Popen[bytes]] = []
    tmp = tempfile.mkdtemp(prefix="gs-bench-")
    try:
        # The servers write into tmp until they are stopped (finally, below).
        folder = pathlib.Path(tmp) / "zones"
        folder.mkdir()
        if args.background_zones:
            write_zones(folder, args.background_zones,
                        args.background_records or args.background_zones * 10)
        zone_file = folder / "bench.example.yaml"
        records = ["  ns1: {type: A, value: 192.0.2.53}"]
        zone_file.write_text(ZONE.format(records="\n".join(records)))
        geostream("migrate", url=url)
        geostream("apply", str(folder), url=url)
        ports = []
        for i in range(args.servers):
            port, http = free_port(), free_port()
            log = open(pathlib.Path(tmp) / f"server{i}.log", "wb")  # noqa: SIM115
            procs.append(subprocess.Popen(
                [str(BIN), "serve", "--listen", f"127.0.0.1:{port}", "--http",
                 f"127.0.0.1:{http}", "--state-dir", str(pathlib.Path(tmp) / f"state{i}")],
                env=dict(os.environ, DATABASE_URL=url), stdout=log, stderr=log))
            ports.append((port, http))
        for (_, http), proc in zip(ports, procs, strict=True):
            wait_ready(http, proc, 600)
        figures = []
        rng = random.Random(args.seed)
        for n in range(args.applies):
            address = f"198.51.100.{n % 250 + 1}"
            records.append(f"  new{n}: {{type: A, value: {address}}}")
            zone_file.write_text(ZONE.format(records="\n".join(records)))
            # A random pause, so applies do not lock onto the servers' poll phase.
            time.sleep(rng.uniform(0, 0.5))
            # In-process, so "returned" is right after the commit (a subprocess would
            # add its interpreter's exit time, flattering the figure).
            with contextlib.redirect_stdout(io.StringIO()):
                code = cli_main(["apply", str(folder), "--database-url", url])
            if code != 0:
                raise SystemExit(f"apply {n} failed with exit code {code}")
            applied = time.monotonic()
            deadline = applied + args.timeout
            while not all(answers(port, f"new{n}.bench.example") == {address}
                          for port, _ in ports):
                if time.monotonic() > deadline:
                    raise SystemExit(f"apply {n}: not answered within {args.timeout} s")
                time.sleep(0.005)
            figures.append(time.monotonic() - applied)
            print(f"apply {n + 1}: every server answers after "
                  f"{figures[-1] * 1000:.0f} ms", flush=True)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
        with psycopg.connect(args.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))
    result = {"servers": args.servers, "applies": args.applies,
              "background_zones": args.background_zones,
              "median_ms": round(statistics.median(figures) * 1000, 1),
              "max_ms": round(max(figures) * 1000, 1),
              "min_ms": round(min(figures) * 1000, 1)}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
