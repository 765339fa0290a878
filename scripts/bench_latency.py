#!/usr/bin/env python3
"""Latency routing benchmarks: the decision on a memo miss, memory, ingest under load.

(a) miss: the resolver answering a routed name with a `latency` rule, in
    process, N queries each from a different random client subnet (half IPv4
    /24, half IPv6 /48, in the ECS option), so every query misses the GeoIP
    memo and the selection memo; half the networks have measurements of their
    own, every GeoIP place has some. The same with a `nearest` rule for
    comparison, and the hit path (a repeat network).
(b) memory: a latency table with K client keys (two regions each), then the
    process RSS, the time to fold the samples in and to publish a whole view.
(c) ingest: a real `geostream-dns serve` (embedded mode, --no-probe) answering
    dnsperf at a fixed query rate while HTTP clients post latency batches at a
    fixed sample rate; dnsperf -v reports every query's latency, from which
    the p50/p99/max are taken. Then the same query load without ingest.

    .venv/bin/python scripts/bench_latency.py --queries 100000 --keys 1000000 \\
        --seconds 10 --qps 20000 --sps 50000
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import pathlib
import pickle
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import dns.edns
import dns.message

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geostream_dns.adapters.geoip import open_reader, raw_lookup  # noqa: E402
from geostream_dns.adapters.latency import (  # noqa: E402
    LatencyTable,
    apply_changes,
)
from geostream_dns.adapters.latency_worker import CHANGES_CHUNK, _untracked  # noqa: E402
from geostream_dns.config.loader import load_zone_text  # noqa: E402
from geostream_dns.core.build import build_snapshot  # noqa: E402
from geostream_dns.core.geo import GeoLocator  # noqa: E402
from geostream_dns.core.latency import SHARDS, geo_keys  # noqa: E402
from geostream_dns.core.resolve import resolve  # noqa: E402
from geostream_dns.core.world import World  # noqa: E402

ZONE = """\
zone: example.com.
ttl: 300
soa: {primary: ns1.example.com., email: hostmaster@example.com, refresh: 7200,
      retry: 900, expire: 1209600, negative_ttl: 300}
nameservers: [ns1.example.com.]
regions:
  us-east-1: {lat: 38.9, lon: -77.4}
  eu-central-1: {lat: 50.1, lon: 8.7}
  ap-southeast-1: {lat: 1.35, lon: 103.8}
records:
  ns1: {type: A, value: 192.0.2.53}
  static: {type: A, value: 192.0.2.1}
  www:
    type: A
    ttl: 60
    routing:
      pools:
        us-east-1: {region: us-east-1, values: [192.0.2.10]}
        eu-central-1: {region: eu-central-1, values: [198.51.100.10]}
        ap-southeast-1: {region: ap-southeast-1, values: [203.0.113.10]}
      rules:
        - RULE: [us-east-1, eu-central-1, ap-southeast-1]
"""
REGIONS = ("us-east-1", "eu-central-1", "ap-southeast-1")
# ECS option body: family 1 (IPv4), source /24, scope 0, 81.2.69 (three address
# bytes: a /24 carries no more, and a longer address is answered FORMERR).
ECS_OPTION_HEX = "00011800510245"


def rss_mib() -> float:
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def random_networks(n: int, rng: random.Random) -> list[bytes]:
    out = []
    for i in range(n):
        if i % 2:
            out.append(bytes([rng.randrange(1, 224), rng.randrange(256), rng.randrange(256)]))
        else:
            out.append((0x2000 << 32 | rng.getrandbits(32)).to_bytes(6, "big"))
    return out


def ecs_query(network: bytes) -> bytes:
    if len(network) == 3:
        option = dns.edns.ECSOption(".".join(map(str, network)) + ".0", 24)
    else:
        groups = [int.from_bytes(network[i:i + 2], "big") for i in (0, 2, 4)]
        option = dns.edns.ECSOption(":".join(f"{g:x}" for g in groups) + "::", 48)
    return dns.message.make_query("www.example.com", "A", use_edns=0,
                                  options=[option]).to_wire()


def bench_miss(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(42)
    networks = random_networks(args.queries, rng)
    raw = raw_lookup(open_reader(args.geoip))
    table = LatencyTable(epoch=time.time())
    now = time.time()
    seeding = GeoLocator(raw)
    for network in networks[::2]:  # half the networks measured themselves
        address = network + bytes((4 if len(network) == 3 else 16) - len(network))
        loc = seeding.locate(address)
        keys = (network, *geo_keys(loc.continent, loc.country, loc.subdivision))
        for region in REGIONS[:2]:
            table.add(keys, region, rng.uniform(5, 200), 20, now)
    view = table.view(now)
    queries = [ecs_query(n) for n in networks]
    out: dict[str, Any] = {"queries": len(queries), "latency_keys": view.keys}
    for network in networks:  # the GeoIP file's pages in memory, for both rules alike
        raw(network + bytes((4 if len(network) == 3 else 16) - len(network)))
    # Each rule runs `--rounds` times, alternating, in a fresh world (cold memos);
    # the best round counts, as the machine may be busy with other work.
    for _round in range(args.rounds):
        for rule in ("nearest", "latency"):
            zone = load_zone_text(ZONE.replace("RULE", rule), "example.com.yaml")
            world = World.create(build_snapshot([zone], 1), geo=GeoLocator(raw),
                                 rng=random.Random(1), latency=view)
            started = time.perf_counter()
            for q in queries:
                resolve(q, "127.0.0.1", world)
            took = round((time.perf_counter() - started) / len(queries) * 1e6, 2)
            key = f"{rule}_miss_us_per_query"
            out[key] = min(out.get(key, took), took)
            repeat = queries[0]
            resolve(repeat, "127.0.0.1", world)
            started = time.perf_counter()
            for _ in range(len(queries)):
                resolve(repeat, "127.0.0.1", world)
            took = round((time.perf_counter() - started) / len(queries) * 1e6, 2)
            key = f"{rule}_hit_us_per_query"
            out[key] = min(out.get(key, took), took)
    return out


def bench_memory(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(7)
    keys = [n for n in random_networks(args.keys * 2, rng)]
    keys = list(dict.fromkeys(keys))[:args.keys]
    before = rss_mib()
    table = LatencyTable(max_keys=args.keys, epoch=time.time())
    now = time.time()
    started = time.perf_counter()
    for key in keys:
        table.add((key,), "us-east-1", 40.0, 1, now)
        table.add((key,), "eu-central-1", 90.0, 1, now)
    fold = time.perf_counter() - started
    started = time.perf_counter()
    view = table.view(now)
    publish = time.perf_counter() - started
    table.add((keys[0],), "us-east-1", 41.0, 1, now)
    started = time.perf_counter()
    table.view(now)
    one_shard = time.perf_counter() - started
    table_rss = rss_mib()
    # The server's copy of the view, as it gets it from the table's process:
    # every key changed, sent in pieces through pickle, applied to its shards.
    table.changed.update(keys)
    shards: list[dict[Any, Any]] = [{} for _ in range(SHARDS)]
    copied: set[int] = set()
    started = time.perf_counter()
    for piece in table.take_changes(CHANGES_CHUNK):
        apply_changes(shards, copied, _untracked(pickle.loads(pickle.dumps(piece, 5))))
    apply_all = time.perf_counter() - started
    copy_rss = rss_mib()
    return {"keys": view.keys, "regions_per_key": 2,
            "fold_us_per_sample": round(fold / (2 * len(keys)) * 1e6, 2),
            "publish_whole_view_s": round(publish, 3),
            "publish_one_changed_shard_ms": round(one_shard * 1e3, 3),
            "rss_before_mib": round(before, 1), "rss_after_mib": round(table_rss, 1),
            "bytes_per_key": round((table_rss - before) * 2**20 / view.keys),
            "server_copy_rss_after_mib": round(copy_rss, 1),
            "server_copy_bytes_per_key": round((copy_rss - table_rss) * 2**20 / view.keys),
            "server_apply_us_per_key": round(apply_all / len(keys) * 1e6, 2)}


# -- (c) ingest under load -------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def poster(port: int, token: str, sps: int, batch: int, seconds: float,
           stop: threading.Event, counts: dict[str, int], seed: int,
           accepted: list[float]) -> None:
    # Beacons come from a large but finite population of client networks: 100,000
    # here. Bodies are made before the clock starts, so the poster costs little.
    rng = random.Random(seed)
    population = [f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.0/24"
                  for _ in range(100_000)]
    bodies = [json.dumps({"samples": [
        {"client": population[rng.randrange(len(population))],
         "region": REGIONS[rng.randrange(3)], "rtt_ms": round(rng.uniform(5, 250), 1)}
        for _ in range(batch)]}) for _ in range(200)]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    interval = batch / sps
    deadline = time.monotonic() + seconds
    next_at = started = time.monotonic()
    sent = 0
    while not stop.is_set() and time.monotonic() < deadline:
        body = bodies[sent % len(bodies)]
        sent += 1
        conn.request("POST", "/v1/latency", body, {"Authorization": f"Bearer {token}",
                                                  "Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        key = "ok" if response.status == 200 else f"http_{response.status}"
        counts[key] = counts.get(key, 0) + batch
        if response.status == 200:
            accepted.append(time.monotonic())
        next_at += interval
        pause = next_at - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    conn.close()
    counts[f"seconds_{seed}"] = round(time.monotonic() - started, 2)


def dnsperf(port: int, qps: int, seconds: float, query_file: pathlib.Path) -> dict[str, Any]:
    cmd = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(query_file), "-l",
           str(seconds), "-Q", str(qps), "-c", "4", "-q", "500", "-v",
           "-E", f"8:{ECS_OPTION_HEX}"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    latencies = []
    for line in res.stdout.splitlines():
        if line.startswith("> "):
            try:
                latencies.append(float(line.rsplit(" ", 1)[1]))
            except ValueError:
                pass
    latencies.sort()
    lost = next((line for line in res.stdout.splitlines() if "Queries lost" in line), "")
    codes = next((line for line in res.stdout.splitlines() if "Response codes" in line), "")
    if not codes.split(":", 1)[-1].strip().startswith("NOERROR") or "," in codes:
        # every query must get a real answer, or the figures measure something else
        raise RuntimeError(f"dnsperf saw answers other than NOERROR: {codes.strip()}")
    if not latencies:
        raise RuntimeError(f"dnsperf gave no per-query latencies:\n{res.stdout[-2000:]}\n"
                           f"{res.stderr[-2000:]}")

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1e3, 3)

    return {"answered": len(latencies), "qps": round(len(latencies) / seconds),
            "p50_ms": pct(0.50), "p99_ms": pct(0.99), "p999_ms": pct(0.999),
            "max_ms": round(latencies[-1] * 1e3, 3), "lost": lost.strip(),
            "rcodes": codes.split(":", 1)[-1].strip()}


def bench_ingest(args: argparse.Namespace) -> dict[str, Any]:
    if not shutil.which("dnsperf"):
        raise SystemExit("bench_latency: dnsperf not found")
    base = pathlib.Path(tempfile.mkdtemp(prefix="bench-latency-"))
    (base / "zones").mkdir()
    (base / "zones" / "example.com.yaml").write_text(ZONE.replace("RULE", "latency"))
    query_file = base / "queries.txt"
    query_file.write_text("www.example.com A\n" * 4 + "static.example.com A\n")
    dns_port, http_port = free_port(), free_port()
    token = "bench-token"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEOSTREAM_")}
    env.update(GEOSTREAM_API_TOKEN=token, LOG_LEVEL="warning")
    cmd = [str(ROOT / ".venv" / "bin" / "geostream-dns"), "serve", "--zones",
           str(base / "zones"), "--listen", f"127.0.0.1:{dns_port}", "--http",
           f"127.0.0.1:{http_port}", "--no-probe", "--state-dir", str(base / "state")]
    if args.geoip:
        cmd += ["--geoip", str(args.geoip)]
    log = (base / "server.log").open("wb")
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=base)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=1)
                conn.request("GET", "/ready")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise SystemExit("bench_latency: the server did not get ready")
        quiet = dnsperf(dns_port, args.qps, args.seconds, query_file)
        stop = threading.Event()
        counts: dict[str, int] = {}
        accepted: list[float] = []  # when each batch was answered 200
        threads = [threading.Thread(target=poster, args=(
            http_port, token, args.sps // args.posters, args.batch, args.seconds + 3, stop,
            counts, i, accepted)) for i in range(args.posters)]
        for t in threads:
            t.start()
        time.sleep(2.5)  # the posters make their bodies, then post at the set rate
        window = time.monotonic()
        loaded = dnsperf(dns_port, args.qps, args.seconds, query_file)
        window_end = time.monotonic()
        stop.set()
        for t in threads:
            t.join(30)
        conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=5)
        conn.request("GET", "/v1/latency?client=EU")
        keys = json.loads(conn.getresponse().read())["keys"]
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        shutil.rmtree(base, ignore_errors=True)
    return {"qps_target": args.qps, "samples_per_s_target": args.sps,
            "samples_posted": counts, "samples_per_s_accepted":
                round(counts.get("ok", 0) / max(v for k, v in counts.items()
                                                if k.startswith("seconds_"))),
            # the rate while dnsperf measured (the figure that matters)
            "samples_per_s_during_queries": round(
                sum(1 for t in accepted if window <= t <= window_end) * args.batch
                / (window_end - window)),
            "latency_keys_after": keys, "queries_without_ingest": quiet,
            "queries_during_ingest": loaded}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--qps", type=int, default=20_000)
    parser.add_argument("--sps", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--posters", type=int, default=2)
    parser.add_argument("--geoip", type=pathlib.Path, default=None)
    parser.add_argument("--only", choices=("miss", "memory", "ingest"), action="append")
    args = parser.parse_args()
    parts = args.only or ["miss", "memory", "ingest"]
    result: dict[str, Any] = {}
    if "miss" in parts:
        result["miss"] = bench_miss(args)
        print(json.dumps(result["miss"]), file=sys.stderr)
    if "ingest" in parts:
        result["ingest"] = bench_ingest(args)
    if "memory" in parts:
        result["memory"] = bench_memory(args)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
