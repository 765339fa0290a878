#!/usr/bin/env python3
"""Load-test GeoStream DNS with dnsperf and compare it with a plain dnslib server
and, optionally, with an older revision of itself in the same run.

Runs (all bounded by -l, all against 127.0.0.1):
  geostream  max         the realistic mix, dnsperf -c 4 -q 200, no rate limit -> qps, loss, latency
  geostream  static      static names of the sample zone only, no rate limit
  geostream  rate        the mix at a fixed rate -Q RATE (default 50000)      -> latency and loss
  geostream  max+edns    the mix with -e (EDNS0 on every query), shorter
  geostream  static+ecs  static names, every query with an ECS option (81.2.69.0/24), shorter
  geostream  routed      the routed www.example.com A from a warm per-source memo, shorter
  geostream  routed+ecs  the routed www.example.com A, every query with the ECS option
                         (a warm per-network memo), shorter
  dnslib     max         scripts/dnslib_baseline.py, the mix
  dnslib     static      scripts/dnslib_baseline.py, static names only
and prints the server's CPU time per answered query (utime+stime from /proc),
GeoStream qps / dnslib qps, and routed qps / static qps.

With `--variant ARGS` this tree also runs with the extra `serve` arguments ARGS
(for example `--query-log FILE`), alternating run by run the same way, and the
ratio of each run is printed.

With `--against REV` the same GeoStream runs are made against the revision REV
(checked out into a temporary git worktree and run with this checkout's
virtualenv), alternating run by run with the current tree so both see the same
machine; `--repeat N` makes N rounds and reports the median of each. Servers
are pinned to CPU 1 and dnsperf to CPU 0 when the machine has at least two
CPUs. Results: bench-results/latest.json.

    .venv/bin/python scripts/bench.py [--seconds 10] [--only geostream|dnslib]
                                      [--against REV] [--variant ARGS] [--repeat N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ZONE_FILE = ROOT / "zones" / "example.com.yaml"
RESULTS_DIR = ROOT / "bench-results"
VENV_PY = ROOT / ".venv" / "bin" / "python"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Static names of zones/example.com.yaml (no routing), for the static-name runs.
STATIC_NAMES = [("static.example.com", "A"), ("static.example.com", "AAAA"),
                ("mail.example.com", "A"), ("ns1.example.com", "A"), ("ns2.example.com", "AAAA"),
                ("example.com", "MX"), ("example.com", "TXT"), ("docs.example.com", "A"),
                ("_sip._tcp.example.com", "SRV"), ("sip.example.com", "A")]
# ECS option body: family 1 (IPv4), source /24, scope 0, 81.2.69 (a UK network).
ECS_OPTION_HEX = "00011800510245"


# ---------------------------------------------------------------- query file
def zone_names(zone_file: Path) -> tuple[str, list[tuple[str, str]], list[str]]:
    """(origin, existing (name, type) pairs, wildcard parents) of the sample zone."""
    import yaml

    doc = yaml.safe_load(zone_file.read_text())
    origin = str(doc.get("zone") or zone_file.name[: -len(".yaml")]).rstrip(".") + "."
    existing: list[tuple[str, str]] = []
    wildcards: list[str] = []
    delegated = [
        str(n) for n, r in (doc.get("records") or {}).items()
        if any(x.get("type") == "NS" for x in (r if isinstance(r, list) else [r]))
    ]
    for name, recs in (doc.get("records") or {}).items():
        name = str(name)
        fqdn = origin if name in ("", "@") else f"{name}.{origin}"
        if name.startswith("*."):
            wildcards.append(fqdn[2:])
            continue
        if any(name == d or name.endswith("." + d) for d in delegated):
            continue  # at or below a zone cut: referrals, not answers
        for rec in recs if isinstance(recs, list) else [recs]:
            rtype = rec.get("type")
            if rtype in ("A", "AAAA", "MX", "TXT"):
                existing.append((fqdn, rtype))
            elif rtype == "ALIAS":
                existing.append((fqdn, "A"))
            elif rtype == "CNAME":
                existing.append((fqdn, "A"))  # resolvers ask for the address
    return origin, sorted(set(existing)), wildcards


def build_query_file(path: Path, zone_file: Path, lines: int = 20000, seed: int = 53) -> dict:
    """~80% existing names (A/AAAA/MX/TXT), ~10% NXDOMAIN, ~10% wildcard-matched."""
    rnd = random.Random(seed)
    origin, existing, wildcards = zone_names(zone_file)
    if not existing:
        raise SystemExit(f"no queryable records in {zone_file}")
    # the routed www A is the hot name, as a front door would be
    weights = [4 if (n.startswith("www.") and t == "A") else 1 for n, t in existing]
    counts = {"existing": 0, "nxdomain": 0, "wildcard": 0}
    out = []
    for _ in range(lines):
        r = rnd.random()
        if r < 0.10:
            out.append(f"nx-{rnd.getrandbits(32):08x}.{origin} A")
            counts["nxdomain"] += 1
        elif r < 0.20 and wildcards:
            out.append(f"h{rnd.getrandbits(24):06x}.{rnd.choice(wildcards)} A")
            counts["wildcard"] += 1
        else:
            name, rtype = rnd.choices(existing, weights)[0]
            out.append(f"{name} {rtype}")
            counts["existing"] += 1
    path.write_text("\n".join(out) + "\n")
    return {"file": str(path), "lines": lines, "seed": seed, "mix": counts,
            "existing_names": [f"{n} {t}" for n, t in existing]}


# ---------------------------------------------------------------- processes
def free_port(avoid: set[int] = frozenset()) -> int:  # type: ignore[assignment]
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t, \
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            try:
                u.bind(("127.0.0.1", port))
            except OSError:
                continue
            if port not in avoid:
                return port
    raise RuntimeError("no free port")


def pin(cpu: int, cmd: list[str], enabled: bool) -> list[str]:
    return ["taskset", "-c", str(cpu), *cmd] if enabled else cmd


def proc_ticks(pid: int) -> int:
    """utime+stime (clock ticks) of pid and all its descendants."""
    stats: dict[int, tuple[int, int]] = {}  # pid -> (ppid, ticks)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2:].split()
        # fields[0] is field 3 (state): ppid=4, utime=14, stime=15
        stats[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen or p not in stats:
            continue
        seen.add(p)
        total += stats[p][1]
        todo.extend(c for c, (pp, _) in stats.items() if pp == p)
    return total


def dns_probe(port: int, name: str = "static.example.com.", timeout: float = 0.5) -> bool:
    """One UDP A query; True when any well-formed reply with our id comes back."""
    qid = random.getrandbits(16)
    wire = qid.to_bytes(2, "big") + b"\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    for label in name.rstrip(".").split("."):
        wire += bytes([len(label)]) + label.encode()
    wire += b"\x00\x00\x01\x00\x01"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(wire, ("127.0.0.1", port))
            data = s.recv(4096)
        except OSError:
            return False
    return len(data) >= 12 and int.from_bytes(data[:2], "big") == qid and bool(data[2] & 0x80)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return 200 <= r.status < 300
    except Exception:
        return False


class Server:
    """A server process we started; always stopped by PID."""

    def __init__(self, name: str, cmd: list[str], log_path: Path,
                 env: dict[str, str] | None = None, cwd: Path = ROOT):
        self.name = name
        self.cmd = cmd
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL, env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, port: int, ready_url: str | None, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                tail = self.log_tail()
                last = tail.splitlines()[-1] if tail else ""
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} before "
                                   f"ready: {last}\n{tail}")
            if (ready_url is None or http_ok(ready_url)) and dns_probe(port):
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready within {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()


# ---------------------------------------------------------------- dnsperf
_NUM = r"([0-9.]+)"
_PATTERNS = {
    "sent": rf"Queries sent:\s+{_NUM}",
    "completed": rf"Queries completed:\s+{_NUM}",
    "lost": rf"Queries lost:\s+{_NUM}",
    "qps": rf"Queries per second:\s+{_NUM}",
    "run_time_s": rf"Run time \(s\):\s+{_NUM}",
    "avg_latency_s": rf"Average Latency \(s\):\s+{_NUM}",
    "min_latency_s": rf"Average Latency \(s\):\s+[0-9.]+ \(min {_NUM}",
    "max_latency_s": rf"Average Latency \(s\):.*max {_NUM}\)",
    "latency_stddev_s": rf"Latency StdDev \(s\):\s+{_NUM}",
}


def parse_dnsperf(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, pat in _PATTERNS.items():
        m = re.search(pat, text)
        if m:
            v = float(m.group(1))
            out[key] = int(v) if key in ("sent", "completed", "lost") else v
    m = re.search(r"Response codes:\s+(.*)", text)
    if m:
        out["rcodes"] = {k: int(v) for k, v in re.findall(r"([A-Z]+) (\d+)", m.group(1))}
    for key in ("sent", "completed", "qps", "avg_latency_s"):
        if key not in out:
            raise RuntimeError(f"could not parse dnsperf output ({key}):\n{text}")
    out["lost_pct"] = 100.0 * out.get("lost", 0) / out["sent"] if out["sent"] else 0.0
    return out


def run_dnsperf(server: Server, port: int, query_file: Path, seconds: int, *, pinned: bool,
                label: str, target: str, extra: list[str]) -> dict[str, Any]:
    cmd = pin(0, ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(query_file),
                  "-l", str(seconds), "-c", "4", *extra], pinned)
    print(f"bench: {target:<9} {label:<9} {' '.join(cmd)}", flush=True)
    before = proc_ticks(server.pid)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    after = proc_ticks(server.pid)
    if res.returncode != 0:
        raise RuntimeError(f"dnsperf failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    if not server.alive():
        raise RuntimeError(f"{server.name} died during the run:\n{server.log_tail()}")
    stats = parse_dnsperf(res.stdout)
    cpu_s = (after - before) / CLK_TCK
    stats.update(
        target=target, run=label, seconds=seconds, dnsperf_args=cmd,
        server_cpu_s=cpu_s,
        server_cpu_us_per_query=(cpu_s * 1e6 / stats["completed"]) if stats["completed"] else None,
    )
    return stats


def median_run(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median qps of several rounds (an error if every round failed)."""
    good = sorted((r for r in results if "error" not in r), key=lambda r: r["qps"])
    if not good:
        return results[-1]
    chosen = dict(good[len(good) // 2])
    chosen["rounds_qps"] = [round(r["qps"]) for r in results if "error" not in r]
    return chosen


def bench_dnslib(python: str, tmp: Path, qfile: Path, static_file: Path,
                 args: argparse.Namespace, pinned: bool) -> list[dict[str, Any]]:
    """The plain dnslib server on the mix and on static names."""
    port = free_port()
    cmd = [python, str(ROOT / "scripts" / "dnslib_baseline.py"), "--port", str(port)]
    server: Server | None = None
    runs: list[dict[str, Any]] = []
    plan = [("max", qfile), ("static", static_file)]
    try:
        server = Server("dnslib", pin(1, cmd, pinned), tmp / "dnslib.log")
        print(f"bench: started dnslib pid {server.pid}: {' '.join(server.cmd)}", flush=True)
        server.wait_ready(port, None, args.ready_timeout)
        for label, query_file in plan:
            runs.append(run_dnsperf(server, port, query_file, args.seconds, pinned=pinned,
                                    label=label, target="dnslib", extra=["-q", "200"]))
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"bench: dnslib: {exc}", file=sys.stderr, flush=True)
        runs.extend({"target": "dnslib", "run": label, "error": str(exc)}
                    for label, _ in plan if not any(r["run"] == label for r in runs))
    finally:
        if server is not None:
            server.stop()
    return runs


# ---------------------------------------------------------------- main
def fmt_table(runs: list[dict[str, Any]]) -> str:
    head = ["target", "run", "sent", "completed", "lost %", "qps", "avg lat ms",
            "max lat ms", "srv CPU µs/q"]
    rows = [head]
    for r in runs:
        if "error" in r:
            rows.append([r["target"], r["run"], "-", "-", "-", "-", "-", "-",
                         "ERROR: " + r["error"].splitlines()[0][:100]])
            continue
        cpu = r.get("server_cpu_us_per_query")
        rows.append([
            r["target"], r["run"], str(r["sent"]), str(r["completed"]),
            f"{r['lost_pct']:.2f}", f"{r['qps']:.0f}",
            f"{r['avg_latency_s'] * 1e3:.3f}",
            f"{r.get('max_latency_s', 0) * 1e3:.2f}",
            "-" if cpu is None else f"{cpu:.1f}",
        ])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=10, help="length of each main run (-l)")
    ap.add_argument("--only", choices=["geostream", "dnslib"], help="bench just one server")
    ap.add_argument("--query-file", type=Path, help="dnsperf data file (default: generated)")
    ap.add_argument("--extra-server-args", default="",
                    help="extra arguments for `geostream-dns serve` (one shell-quoted string)")
    ap.add_argument("--rate", type=int, default=50000, help="-Q for the fixed-rate run")
    ap.add_argument("--server-bin",
                    default=os.environ.get("GEOSTREAM_BIN", str(ROOT / ".venv/bin/geostream-dns")))
    ap.add_argument("--ready-timeout", type=float, default=30.0)
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / "latest.json")
    ap.add_argument("--against", metavar="REV",
                    help="also bench this git revision, run by run, in the same run")
    ap.add_argument("--variant", metavar="ARGS",
                    help="also bench this tree with these extra `serve` arguments (one "
                         "shell-quoted string, e.g. \"--query-log /tmp/q.log\"), run by run")
    ap.add_argument("--repeat", type=int, default=1, metavar="N",
                    help="rounds of the GeoStream runs; the median of each is reported")
    args = ap.parse_args()

    if args.seconds < 1:
        ap.error("--seconds must be >= 1")
    if not shutil.which("dnsperf"):
        print("bench: dnsperf not found (apt-get install dnsperf, or `make bench`)",
              file=sys.stderr)
        return 2
    ncpu = os.cpu_count() or 1
    pinned = ncpu >= 2 and shutil.which("taskset") is not None
    if not pinned:
        print(f"bench: {ncpu} CPU(s): not pinning (server and dnsperf share CPUs)", flush=True)
    python = str(VENV_PY if VENV_PY.exists() else Path(sys.executable))

    tmp = Path(tempfile.mkdtemp(prefix="geostream-bench-"))
    runs: list[dict[str, Any]] = []
    query_info: dict[str, Any]
    against: Path | None = None
    try:
        if args.against:
            against = tmp / "against"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q",
                            str(against), args.against], check=True)
        if args.query_file:
            qfile = args.query_file.resolve()
            query_info = {"file": str(qfile), "lines": sum(1 for _ in qfile.open())}
        else:
            qfile = tmp / "queries.txt"
            query_info = build_query_file(qfile, ZONE_FILE)
            mix = query_info["mix"]
            print(f"bench: query file {qfile}: {query_info['lines']} queries "
                  f"(existing {mix['existing']}, nxdomain {mix['nxdomain']}, "
                  f"wildcard {mix['wildcard']})", flush=True)

        static_file = tmp / "static.txt"
        static_file.write_text("".join(
            f"{name} {rtype}\n" for name, rtype in STATIC_NAMES))
        routed_file = tmp / "routed.txt"
        routed_file.write_text("www.example.com A\n")
        short = max(2, args.seconds // 2)
        ecs = ["-E", f"8:{ECS_OPTION_HEX}"]
        geostream_runs: list[tuple[str, int, Path, list[str]]] = [
            ("max", args.seconds, qfile, ["-q", "200"]),
            ("static", args.seconds, static_file, ["-q", "200"]),
            ("rate", args.seconds, qfile, ["-Q", str(args.rate), "-q", "1000"]),
            ("max+edns", short, qfile, ["-q", "200", "-e"]),
            ("static+ecs", short, static_file, ["-q", "200", *ecs]),
            ("routed", short, routed_file, ["-q", "200"]),
            ("routed+ecs", short, routed_file, ["-q", "200", *ecs]),
        ]
        targets: dict[str, list[str]] = {}
        if args.only in (None, "geostream"):
            state = tmp / "state"
            targets["geostream"] = [args.server_bin, "serve", "--state-dir", str(state)]
            if against is not None:
                targets[f"geostream@{args.against}"] = [
                    python, "-m", "geostream_dns.cli.main", "serve",
                    "--state-dir", str(tmp / "state-against")]
            if args.variant:
                targets["geostream+variant"] = [
                    args.server_bin, "serve", "--state-dir", str(tmp / "state-variant"),
                    *shlex.split(args.variant)]
        servers: dict[str, tuple[Server, int]] = {}
        try:
            for target, base in targets.items():
                port, hport = free_port(), free_port()
                cmd = [*base, "--zones", str(ROOT / "zones"), "--listen", f"127.0.0.1:{port}",
                       "--http", f"127.0.0.1:{hport}", *shlex.split(args.extra_server_args)]
                env = None
                older = target.startswith("geostream@")
                if older:  # the older revision's package, this venv
                    env = dict(os.environ, PYTHONPATH=str(against))
                server = Server(target, pin(1, cmd, pinned), tmp / f"{target}.log", env,
                                cwd=against if older and against is not None else ROOT)
                print(f"bench: started {target} pid {server.pid}: {' '.join(server.cmd)}",
                      flush=True)
                servers[target] = (server, port)
                server.wait_ready(port, f"http://127.0.0.1:{hport}/ready", args.ready_timeout)
            rounds: dict[tuple[str, str], list[dict[str, Any]]] = {}
            for _ in range(max(1, args.repeat)):
                for label, secs, query_file, extra in geostream_runs:
                    for target, (server, port) in servers.items():
                        try:
                            rounds.setdefault((target, label), []).append(run_dnsperf(
                                server, port, query_file, secs, pinned=pinned, label=label,
                                target=target, extra=extra))
                        except (RuntimeError, subprocess.TimeoutExpired) as exc:
                            print(f"bench: {target}: {exc}", file=sys.stderr, flush=True)
                            rounds.setdefault((target, label), []).append(
                                {"target": target, "run": label, "error": str(exc)})
            runs.extend(median_run(results) for results in rounds.values())
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"bench: {exc}", file=sys.stderr, flush=True)
            for target in targets:
                for label, *_ in geostream_runs:
                    if not any(r["target"] == target and r["run"] == label for r in runs):
                        runs.append({"target": target, "run": label, "error": str(exc)})
        finally:
            for server, _port in servers.values():
                server.stop()
        if args.only in (None, "dnslib"):
            runs.extend(bench_dnslib(python, tmp, qfile, static_file, args, pinned))
    finally:
        if against is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(against)], check=False)
        shutil.rmtree(tmp, ignore_errors=True)

    def qps(target: str, run: str = "max") -> float | None:
        for r in runs:
            if r["target"] == target and r["run"] == run and "error" not in r:
                return float(r["qps"])
        return None

    def share(a: float | None, b: float | None) -> float | None:
        return a / b if a and b else None

    g, d = qps("geostream"), qps("dnslib")
    ratio = share(g, d)
    gs, ds = qps("geostream", "static"), qps("dnslib", "static")
    static_ratio = share(gs, ds)
    routed = qps("geostream", "routed+ecs")
    routed_share = share(routed, gs)
    shares = {
        "routed+ecs / static": routed_share,
        "routed / static": share(qps("geostream", "routed"), gs),
        "routed+ecs / static+ecs": share(routed, qps("geostream", "static+ecs")),
    }
    before: dict[str, float | None] = {}
    if args.against:
        old = f"geostream@{args.against}"
        before = {label: share(qps("geostream", label), qps(old, label))
                  for label, *_ in geostream_runs}

    variant: dict[str, float | None] = {}
    if args.variant:
        variant = {label: share(qps("geostream+variant", label), qps("geostream", label))
                   for label, *_ in geostream_runs}

    print()
    print(fmt_table(runs))
    if g is not None and d is not None and ratio is not None:
        print(f"\nmix:    GeoStream {g:.0f} qps / dnslib {d:.0f} qps = {ratio:.2f}x")
    if gs is not None and ds is not None and static_ratio is not None:
        print(f"static: GeoStream {gs:.0f} qps / dnslib {ds:.0f} qps = {static_ratio:.2f}x")
    for label, value in shares.items():
        if value is not None:
            print(f"{label}: {value:.1%}")
    for label, value in before.items():
        if value is not None:
            print(f"{label}: this tree / {args.against} = {value:.1%}")
    for label, value in variant.items():
        if value is not None:
            print(f"{label}: with {args.variant!r} / without = {value:.1%}")

    result = {
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": {"cpus": ncpu, "pinned": pinned, "clk_tck": CLK_TCK,
                 "server_cpu": 1 if pinned else None, "dnsperf_cpu": 0 if pinned else None},
        "settings": {"seconds": args.seconds, "rate": args.rate, "clients": 4,
                     "extra_server_args": args.extra_server_args},
        "queries": {k: v for k, v in query_info.items() if k != "existing_names"}
        | {"existing_names": query_info.get("existing_names")},
        "runs": runs,
        "ratio_geostream_over_dnslib": ratio,
        "ratio_static_geostream_over_dnslib": static_ratio,
        "routed_ecs_over_static": routed_share,
        "shares": shares,
        "against": args.against,
        "this_tree_over_against": before,
        "variant": args.variant,
        "variant_over_this_tree": variant,
        "repeat": args.repeat,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"bench: wrote {args.out}")
    return 1 if any("error" in r for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
