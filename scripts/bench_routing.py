#!/usr/bin/env python3
"""Socket-free routing benchmark: the resolver answering a routed name.

(b) the miss path: N queries for the routed `www.example.com A` of the sample
    zone, each with a different random client subnet in its ECS option (half
    IPv4 /24, half IPv6 /48), so every query misses the GeoIP memo and the
    selection memo — what dnsperf's single fixed ECS option cannot show.
(c) the memo bound: M distinct subnets through the GeoIP memo, then the
    process RSS and the memo size.

    .venv/bin/python scripts/bench_routing.py --queries 100000 --memo 1000000
"""

from __future__ import annotations

import argparse
import json
import pathlib
import random
import resource
import sys
import time

import dns.edns
import dns.message

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geostream_dns.adapters.geoip import open_reader, raw_lookup  # noqa: E402
from geostream_dns.config.loader import load_zones_dir  # noqa: E402
from geostream_dns.core.build import build_snapshot  # noqa: E402
from geostream_dns.core.geo import GeoLocator  # noqa: E402
from geostream_dns.core.resolve import resolve  # noqa: E402
from geostream_dns.core.world import World  # noqa: E402


def rss_mib() -> float:
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


def random_queries(n: int, rng: random.Random) -> list[bytes]:
    out = []
    for i in range(n):
        if i % 2:
            addr = ".".join(str(rng.randrange(1, 224) if j == 0 else rng.randrange(256))
                            for j in range(3)) + ".0"
            option = dns.edns.ECSOption(addr, 24)
        else:
            groups = [0x2000 | rng.randrange(0x1000), rng.randrange(0x10000),
                      rng.randrange(0x10000)]
            option = dns.edns.ECSOption(":".join(f"{g:x}" for g in groups) + "::", 48)
        out.append(dns.message.make_query("www.example.com", "A", use_edns=0,
                                          options=[option]).to_wire())
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--memo", type=int, default=1_000_000,
                        help="distinct subnets for the memo-bound measurement (0: skip)")
    parser.add_argument("--geoip", type=pathlib.Path, default=None)
    args = parser.parse_args()
    zones, problems = load_zones_dir([ROOT / "zones"])
    if problems:
        print("\n".join(map(str, problems)), file=sys.stderr)
        return 1
    snapshot = build_snapshot(zones, 1)
    reader = open_reader(args.geoip)
    geo = GeoLocator(raw_lookup(reader))
    world = World.create(snapshot, geo=geo, rng=random.Random(1))
    rng = random.Random(42)
    queries = random_queries(args.queries, rng)
    started = time.perf_counter()
    for q in queries:
        resolve(q, "127.0.0.1", world)
    miss_us = (time.perf_counter() - started) / len(queries) * 1e6
    repeat = queries[0]
    resolve(repeat, "127.0.0.1", world)
    started = time.perf_counter()
    for _ in range(len(queries)):
        resolve(repeat, "127.0.0.1", world)
    hit_us = (time.perf_counter() - started) / len(queries) * 1e6
    result: dict[str, object] = {
        "miss_path_us_per_query": round(miss_us, 2),
        "hit_path_us_per_query": round(hit_us, 2),
        "queries": len(queries),
    }
    if args.memo:
        before = rss_mib()
        locate = geo.locate
        started = time.perf_counter()
        for i in range(args.memo):
            if i % 2:
                locate(((i * 2654435761) & 0xFFFFFF).to_bytes(3, "big") + b"\x00")
            else:
                locate((0x2000 << 32 | ((i * 2654435761) & 0xFFFFFFFF)).to_bytes(6, "big")
                       + bytes(10))
        result.update({
            "memo_subnets": args.memo,
            "memo_entries": len(geo),
            "memo_limit": geo.limit,
            "memo_fill_us_per_subnet": round((time.perf_counter() - started) / args.memo * 1e6, 2),
            "rss_before_mib": round(before, 1),
            "rss_after_mib": round(rss_mib(), 1),
        })
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
