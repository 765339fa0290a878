#!/usr/bin/env python3
"""A big configuration in production mode: apply, load from PostgreSQL, rebuild, memory.

Generates ZONES zones with RECORDS record sets in all (scripts/bench_memory.py's
generator), applies them to a scratch database, starts `geostream-dns serve`
on it and reports: the first apply's time, the server's time to ready, the
store's read and validation time and the snapshot build time (from its log),
RSS, the saved snapshot file's size; then changes one record in one zone,
applies, and reports the incremental path (apply, store load, rebuild, and
the time until the server answers the new value). Drops the database.

    .venv/bin/python scripts/bench_pg_snapshot.py --zones 10000 --records 100000
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
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
from bench_memory import free_port, rss_kib, write_zones  # noqa: E402

BIN = ROOT / ".venv" / "bin" / "geostream-dns"


def run(*args: str, url: str) -> float:
    started = time.monotonic()
    result = subprocess.run([str(BIN), *args], env=dict(os.environ, DATABASE_URL=url),
                            capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise SystemExit(f"geostream-dns {args[0]} failed:\n{result.stderr[-2000:]}")
    return time.monotonic() - started


def events(log: pathlib.Path, name: str) -> list[dict[str, object]]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if f'"{name}"' in line:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--admin-url", default=os.environ.get(
        "GEOSTREAM_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--zones", type=int, default=10_000)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args()

    name = f"gs_bench_{uuid.uuid4().hex[:12]}"
    base, _, _ = args.admin_url.rpartition("/")
    url = f"{base}/{name}"
    with psycopg.connect(args.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    result: dict[str, object] = {"zones": args.zones}
    proc = None
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = pathlib.Path(tmp_name)
            folder = tmp / "zones"
            folder.mkdir()
            result["record_sets_written"] = write_zones(folder, args.zones, args.records)
            run("migrate", url=url)
            result["first_apply_s"] = round(run("apply", str(folder), url=url), 2)
            with psycopg.connect(url) as conn:
                size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
                result["database_mib"] = round(int(size[0]) / 2**20, 1) if size else None
            port, http = free_port(), free_port()
            log_path = tmp / "server.log"
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(
                    [str(BIN), "serve", "--listen", f"127.0.0.1:{port}", "--http",
                     f"127.0.0.1:{http}", "--state-dir", str(tmp / "state")],
                    env=dict(os.environ, DATABASE_URL=url), stdout=log, stderr=log)
            started = time.monotonic()
            while True:
                if proc.poll() is not None or time.monotonic() - started > args.timeout:
                    raise SystemExit(log_path.read_text()[-3000:])
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{http}/ready", timeout=1):
                        break
                except OSError:
                    time.sleep(0.2)
            result["ready_s"] = round(time.monotonic() - started, 2)
            mem = rss_kib(proc.pid)
            loaded = events(log_path, "store.loaded")[-1]
            built = events(log_path, "snapshot.built")[-1]
            result.update(store_read_s=loaded["read_s"], store_load_s=loaded["duration_s"],
                          snapshot_build_s=built["duration_s"],
                          record_sets_compiled=built["record_sets"],
                          rss_mib=round(mem["VmRSS"] / 1024, 1),
                          peak_rss_mib=round(mem["VmHWM"] / 1024, 1))
            deadline = time.monotonic() + 120
            snapshot_file = tmp / "state" / "snapshot.json"
            while not snapshot_file.exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            result["saved_snapshot_mib"] = round(snapshot_file.stat().st_size / 2**20, 1)

            # One record in one zone changes: the incremental path.
            zone0 = folder / "zone0.example.yaml"
            zone0.write_text(zone0.read_text().replace(
                "ns1: {type: A, value: 192.0.2.53}", "ns1: {type: A, value: 192.0.2.54}"))
            result["change_apply_s"] = round(run("apply", str(folder), url=url), 2)
            applied = time.monotonic()
            while True:
                reply = dns.query.udp(dns.message.make_query("ns1.zone0.example", "A"),
                                      "127.0.0.1", port=port, timeout=2)
                if any(r.to_text() == "192.0.2.54" for rr in reply.answer for r in rr):
                    break
                if time.monotonic() - applied > args.timeout:
                    raise SystemExit("the change never showed")
                time.sleep(0.01)
            result["change_visible_after_apply_s"] = round(time.monotonic() - applied, 2)
            loaded = events(log_path, "store.loaded")[-1]
            built = events(log_path, "snapshot.built")[-1]
            result.update(change_store_load_s=loaded["duration_s"],
                          change_zones_read=loaded["zones_read"],
                          change_snapshot_build_s=built["duration_s"])
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        with psycopg.connect(args.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
