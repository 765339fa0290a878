"""`geostream-dns explain NAME TYPE --client IP`: why a client gets its answer."""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
from typing import Any


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "explain", help="print the routing decision for a name, type and client")
    p.add_argument("name")
    p.add_argument("type")
    p.add_argument("--client", required=True, metavar="IP", help="the client (resolver) address")
    p.add_argument("--ecs", metavar="SUBNET", help="an EDNS Client Subnet, e.g. 192.0.2.0/24")
    p.add_argument("--zones", action="append", metavar="DIR",
                   help="zones folder (GEOSTREAM_ZONES, default zones/)")
    p.add_argument("--geoip", metavar="PATH", help="GeoIP mmdb (GEOSTREAM_GEOIP)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from geostream_dns.adapters.geoip import GeoIPError, open_reader, raw_lookup
    from geostream_dns.config.loader import load_zones_dir
    from geostream_dns.core.build import build_snapshot
    from geostream_dns.core.geo import GeoLocator
    from geostream_dns.core.route.explain import ExplainError, explain, format_text
    from geostream_dns.core.world import World

    zones_args = args.zones or os.environ.get("GEOSTREAM_ZONES", "zones").split()
    zones, problems = load_zones_dir([pathlib.Path(z) for z in zones_args])
    for problem in problems:
        print(problem, file=sys.stderr)
    geoip = args.geoip or os.environ.get("GEOSTREAM_GEOIP")
    try:
        reader = open_reader(pathlib.Path(geoip) if geoip else None)
    except GeoIPError as exc:
        print(f"geostream-dns explain: {exc}", file=sys.stderr)
        return 2
    world = World.create(build_snapshot(zones, 1), geo=GeoLocator(raw_lookup(reader)))
    try:
        result = explain(world, args.name, args.type, args.client, args.ecs)
    except ExplainError as exc:
        print(f"geostream-dns explain: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else format_text(result))
    return 0
