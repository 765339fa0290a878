"""`nearest` rules: the listed pool nearest to the client whose chain is healthy.

Pools are ordered by great-circle distance from the client's GeoIP
coordinates plus the rule's `bias` (kilometres; negative draws traffic in,
as Route 53's geoproximity bias does); the first whose fallback chain has a
healthy value answers. Without coordinates (an address GeoIP does not know)
the listed order stands. A nearest rule matches every client; its outcome
depends on the client's GeoIP network, so the scope is that network's prefix.
Orderings are memoized per coordinate pair in the route context.
"""

from __future__ import annotations

from typing import Any

from geostream_dns.core.client import ClientNet
from geostream_dns.core.geo import Location
from geostream_dns.core.model import NearestRule
from geostream_dns.core.route.context import RouteContext
from geostream_dns.core.route.distance import great_circle_km
from geostream_dns.core.route.pools import CompiledPool
from geostream_dns.core.route.rule import Verdict, step

Ordering = tuple[tuple[CompiledPool, float], ...]  # (pool, km + bias) nearest first


class NearestMatcher:
    kind = "nearest"

    def __init__(self, index: int, rule: NearestRule, pools: dict[str, CompiledPool]) -> None:
        self.index = index
        self.line = rule.line
        self.pools = tuple(pools[p] for p in rule.pools)
        bias = dict(rule.bias)
        self.bias = tuple(float(bias.get(p, 0.0)) for p in rule.pools)
        self.listed: Ordering = tuple((p, float("nan")) for p in self.pools)

    def ordered(self, location: Location, ctx: RouteContext) -> Ordering:
        """The listed pools nearest first, with distance + bias (listed order if unknown)."""
        lat, lon = location.lat, location.lon
        if lat is None or lon is None:
            return self.listed
        key = (self, lat, lon)
        order: Ordering | None = ctx.orderings.get(key)
        if order is None:
            scored = []
            for i, pool in enumerate(self.pools):
                if pool.lat is None or pool.lon is None:
                    km = float("inf")
                else:
                    km = great_circle_km(lat, lon, pool.lat, pool.lon) + self.bias[i]
                scored.append((km, i, pool))
            scored.sort(key=lambda s: (s[0], s[1]))
            order = tuple((pool, km) for km, _, pool in scored)
            ctx.remember_ordering(key, order)
        return order

    def match(self, net: ClientNet, ctx: RouteContext) -> Verdict:
        order = self.ordered(net.location, ctx)
        for pool, _km in order:
            answering = ctx.first_healthy(pool)
            if answering is not None:
                return (True, net.location.prefix_len, order[0][0], answering)
        return (True, net.location.prefix_len, order[0][0], None)

    def condition(self) -> str:
        return f"nearest {[p.name for p in self.pools]}"

    def describe(self, net: ClientNet, ctx: RouteContext, verdict: Verdict) -> dict[str, Any]:
        location = net.location
        why = ("distance + bias, nearest first" if location.has_coordinates
               else "no coordinates: listed order")
        distances = [{"pool": p.name, "km": None if km != km else round(km, 1),
                      "chain_healthy": ctx.first_healthy(p) is not None}
                     for p, km in self.ordered(location, ctx)]
        return step(self, verdict, why, distances_km=distances)
