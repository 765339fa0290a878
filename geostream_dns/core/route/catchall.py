"""A rule without a condition: matches every client, whatever its address."""

from __future__ import annotations

from typing import Any

from geostream_dns.core.client import ClientNet
from geostream_dns.core.model import CatchAllRule
from geostream_dns.core.route.context import RouteContext
from geostream_dns.core.route.pools import CompiledPool
from geostream_dns.core.route.rule import Verdict, step


class CatchAllMatcher:
    kind = "catch-all"

    def __init__(self, index: int, rule: CatchAllRule, pools: dict[str, CompiledPool]) -> None:
        self.index = index
        self.line = rule.line
        self.verdict: Verdict = (True, 0, pools[rule.pool], None)

    def match(self, net: ClientNet, ctx: RouteContext) -> Verdict:
        return self.verdict

    def condition(self) -> str:
        return "catch-all"

    def describe(self, net: ClientNet, ctx: RouteContext, verdict: Verdict) -> dict[str, Any]:
        return step(self, verdict, "matches every client")
