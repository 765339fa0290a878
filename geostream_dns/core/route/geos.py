"""`geos` rules: match clients whose GeoIP place is one of the listed codes.

A code is a continent (`EU`), a country (`EU-DE`) or a subdivision
(`EU-DE-HE`). An address GeoIP does not know matches no `geos` rule. The
outcome depends on the whole GeoIP network the client is in, so the scope is
that network's prefix length.
"""

from __future__ import annotations

from typing import Any

from geostream_dns.core.client import ClientNet
from geostream_dns.core.model import GeosRule
from geostream_dns.core.route.context import RouteContext
from geostream_dns.core.route.pools import CompiledPool
from geostream_dns.core.route.rule import Verdict, step


class GeosMatcher:
    kind = "geos"

    def __init__(self, index: int, rule: GeosRule, pools: dict[str, CompiledPool]) -> None:
        self.index = index
        self.line = rule.line
        self.pool = pools[rule.pool]
        self.geos = frozenset(rule.geos)

    def match(self, net: ClientNet, ctx: RouteContext) -> Verdict:
        location = net.location
        return (not self.geos.isdisjoint(location.codes), location.prefix_len, self.pool, None)

    def condition(self) -> str:
        return f"geos {sorted(self.geos)}"

    def describe(self, net: ClientNet, ctx: RouteContext, verdict: Verdict) -> dict[str, Any]:
        location = net.location
        hit = sorted(location.codes & self.geos)
        if hit:
            why = f"client is in {hit}"
        elif not location.known:
            why = "location unknown"
        else:
            why = f"client is {sorted(location.codes)}"
        return step(self, verdict, why)
