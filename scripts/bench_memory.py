#!/usr/bin/env python3
"""Memory and build time of a big snapshot: N record sets served by a real server.

Generates a zones folder (ZONES zones, RECORDS record sets in all: a mix of A,
AAAA, TXT and MX, and one routed record per zone), starts
`geostream-dns serve` on it, waits for /ready, and prints the server's RSS
(VmRSS and VmHWM from /proc) and the snapshot build time from its log.

    .venv/bin/python scripts/bench_memory.py --records 100000 --zones 1000
"""

from __future__ import annotations

import argparse
import json
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_zones(folder: pathlib.Path, zones: int, records: int) -> int:
    per_zone = max(1, records // zones)
    total = 0
    for z in range(zones):
        origin = f"zone{z}.example"
        lines = [f"zone: {origin}.", "ttl: 300", "soa:", f"  primary: ns1.{origin}.",
                 f"  email: hostmaster@{origin}", "  refresh: 7200", "  retry: 900",
                 "  expire: 1209600", "  negative_ttl: 300",
                 f"nameservers: [ns1.{origin}.]",
                 "regions:", "  eu: {lat: 50.1, lon: 8.7}", "  us: {lat: 38.9, lon: -77.4}",
                 "records:", "  ns1: {type: A, value: 192.0.2.53}",
                 "  www:", "    type: A", "    values: [192.0.2.10]", "    routing:",
                 "      pools:", "        eu: {region: eu, values: [198.51.100.10]}",
                 "        us: {region: us, values: [192.0.2.10, 192.0.2.11]}",
                 "      rules: [{geos: [EU], pool: eu}, {nearest: [us, eu]}]"]
        total += 2
        for i in range(per_zone - 2):
            kind = i % 4
            a, b = divmod(i, 250)
            if kind == 0:
                lines.append(f"  h{i}: {{type: A, value: 10.{z % 250}.{a % 250}.{b + 1}}}")
            elif kind == 1:
                lines.append(f"  h{i}: {{type: AAAA, value: '2001:db8:{z:x}::{i:x}'}}")
            elif kind == 2:
                lines.append(f"  h{i}: {{type: TXT, value: 'record {i} of zone {z}'}}")
            else:
                lines.append(f"  h{i}: {{type: MX, values: [{{preference: 10, "
                             f"exchange: mail.{origin}.}}]}}")
            total += 1
        (folder / f"{origin}.yaml").write_text("\n".join(lines) + "\n")
    return total


def rss_kib(pid: int) -> dict[str, int]:
    out = {}
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--zones", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    binary = ROOT / ".venv" / "bin" / "geostream-dns"
    with tempfile.TemporaryDirectory() as tmp:
        folder = pathlib.Path(tmp) / "zones"
        folder.mkdir()
        total = write_zones(folder, args.zones, args.records)
        port, http = free_port(), free_port()
        log_path = pathlib.Path(tmp) / "server.log"
        with open(log_path, "w") as log:
            proc = subprocess.Popen(
                [str(binary), "serve", "--zones", str(folder), "--listen", f"127.0.0.1:{port}",
                 "--http", f"127.0.0.1:{http}", "--state-dir", str(pathlib.Path(tmp) / "state")],
                stderr=log, stdout=log)
        started = time.monotonic()
        try:
            while time.monotonic() - started < args.timeout:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{http}/ready", timeout=1) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if proc.poll() is not None:
                    print(log_path.read_text(), file=sys.stderr)
                    return 1
                time.sleep(0.2)
            ready_s = time.monotonic() - started
            mem = rss_kib(proc.pid)
            built = [json.loads(line) for line in log_path.read_text().splitlines()
                     if '"snapshot.built"' in line]
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)
    result = {"zones": args.zones, "record_sets_written": total,
              "record_sets_compiled": built[-1]["record_sets"] if built else None,
              "build_s": built[-1]["duration_s"] if built else None,
              "ready_s": round(ready_s, 2), "rss_mib": round(mem["VmRSS"] / 1024, 1),
              "peak_rss_mib": round(mem["VmHWM"] / 1024, 1)}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
