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
    p.add_argument("--alias-resolver", metavar="ADDR[:PORT]",
                   help="resolve ALIAS targets outside the hosted zones once, through this "
                        "resolver ('system': /etc/resolv.conf); without it they are shown "
                        "unresolved (the running server's GET /v1/explain shows what it "
                        "resolved)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--http", metavar="HOST:PORT",
                   help="ask the running server at this HTTP endpoint instead (its health, "
                        "drains and latency measurements)")
    p.add_argument("--state-dir", metavar="DIR",
                   help="read latency measurements from this state dir's checkpoint "
                        "(GEOSTREAM_STATE_DIR, default .geostream-state)")
    p.set_defaults(func=run)


def _from_server(args: argparse.Namespace) -> int:
    import urllib.error
    import urllib.parse
    import urllib.request

    from geostream_dns.core.route.explain import format_text

    query = {"name": args.name, "type": args.type, "client": args.client}
    if args.ecs:
        query["ecs"] = args.ecs
    url = f"http://{args.http}/v1/explain?{urllib.parse.urlencode(query)}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            result = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            error = json.loads(exc.read()).get("error", exc.reason)
        except ValueError:
            error = exc.reason
        print(f"geostream-dns explain: {exc.code} {error}", file=sys.stderr)
        return 2
    except (urllib.error.URLError, OSError) as exc:
        print(f"geostream-dns explain: cannot reach the server at {args.http}: {exc}",
              file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else format_text(result))
    return 0


def _latency_view(state_dir: pathlib.Path) -> Any:
    """The latency view of a state dir's checkpoint (empty without one)."""
    import time

    from geostream_dns.adapters.latency import LatencyService, LatencyTable
    from geostream_dns.core.latency import NO_LATENCY

    path = state_dir / "latency.json.gz"
    if not path.exists():
        return NO_LATENCY
    service = LatencyService(LatencyTable(), lambda view: None, checkpoint=path)
    service.load()
    return service.table.view(time.time())


def run(args: argparse.Namespace) -> int:
    if args.http:
        return _from_server(args)
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
    snapshot = build_snapshot(zones, 1)
    resolver = None
    if args.alias_resolver and snapshot.alias_targets:
        try:
            snapshot, resolver = _resolve_aliases(snapshot, args.alias_resolver)
        except ValueError as exc:
            print(f"geostream-dns explain: {exc}", file=sys.stderr)
            return 2
    state_dir = pathlib.Path(args.state_dir or os.environ.get("GEOSTREAM_STATE_DIR")
                             or ".geostream-state")
    world = World.create(snapshot, geo=GeoLocator(raw_lookup(reader)),
                         latency=_latency_view(state_dir))
    try:
        result = explain(world, args.name, args.type, args.client, args.ecs)
    except ExplainError as exc:
        print(f"geostream-dns explain: {exc}", file=sys.stderr)
        return 2
    if result.get("alias") is not None:
        import dns.name

        target = dns.name.from_text(result["alias"]["target"])
        result["alias"]["resolver"] = (resolver.describe(target) if resolver is not None
                                       else None)
    print(json.dumps(result, indent=2) if args.json else format_text(result))
    return 0


def _resolve_aliases(snapshot: Any, where: str) -> tuple[Any, Any]:
    """The snapshot with its external ALIAS targets resolved once through `where`."""
    import asyncio

    from geostream_dns.adapters.alias_resolver import AliasResolver
    from geostream_dns.adapters.logging import configure_logging
    from geostream_dns.config.settings import SYSTEM_RESOLVER, parse_resolver
    from geostream_dns.core.build import with_externals

    if where != SYSTEM_RESOLVER:
        parse_resolver(where)
    configure_logging(os.environ.get("LOG_LEVEL", "warning"))  # to stderr, not the result
    resolver = AliasResolver(where, lambda results: None)

    async def once() -> None:
        resolver.want(snapshot.alias_targets)
        await resolver.refresh(list(resolver.targets.values()))

    asyncio.run(once())
    return with_externals(snapshot, resolver.results), resolver
