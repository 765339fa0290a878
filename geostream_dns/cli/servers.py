"""`geostream-dns servers`: the fleet as the servers report themselves through Redis."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from geostream_dns.cli.database import guarded
from geostream_dns.cli.fleet_options import add_redis_options, read_servers, redis_link


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "servers", help="list the live fleet: id, site, version, generation, health epoch, "
                        "ready, last seen")
    add_redis_options(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


@guarded("servers")
def run(args: argparse.Namespace) -> int:
    servers = asyncio.run(read_servers(redis_link(args, "servers")))
    if args.json:
        print(json.dumps({"servers": [s.to_json() for s in servers]}, indent=2))
        return 0
    if not servers:
        print("No live server.")
        return 0
    now = time.time()
    rows = [("ID", "SITE", "ROLE", "VERSION", "GENERATION", "HEALTH EPOCH", "READY",
             "LAST SEEN")]
    rows += [(s.id, s.site, s.role, s.version, str(s.generation), str(s.health_epoch),
              "yes" if s.ready else "no", f"{max(0.0, now - s.last_seen):.1f}s ago")
             for s in servers]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0
