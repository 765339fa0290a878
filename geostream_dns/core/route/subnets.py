"""`subnets` rules: match clients whose address lies in one of the listed networks.

The scope of a verdict is the number of leading bits that keep the client's
subnet wholly inside a listed network (a match: that network's prefix) or
wholly outside every listed network of its family (no match: one bit past
the longest prefix it shares with any of them), so every address inside the
scope gets the same verdict.
"""

from __future__ import annotations

from typing import Any

from geostream_dns.core.client import ClientNet
from geostream_dns.core.model import SubnetsRule
from geostream_dns.core.route.context import RouteContext
from geostream_dns.core.route.pools import CompiledPool
from geostream_dns.core.route.rule import Verdict, step


class SubnetsMatcher:
    kind = "subnets"

    def __init__(self, index: int, rule: SubnetsRule, pools: dict[str, CompiledPool]) -> None:
        self.index = index
        self.line = rule.line
        self.pool = pools[rule.pool]
        # (address length in bytes, network as int, mask, prefix length, text)
        self.networks = tuple(
            (n.max_prefixlen // 8, int(n.network_address), int(n.netmask), n.prefixlen, str(n))
            for n in rule.subnets)

    def match(self, net: ClientNet, ctx: RouteContext) -> Verdict:
        address = net.address
        if address is None:
            return (False, 0, self.pool, None)
        size = len(address)
        bits = size * 8
        value = int.from_bytes(address, "big")
        needed = 0
        for length, network, mask, prefix, _text in self.networks:
            if length != size:
                continue
            if value & mask == network:
                return (True, max(needed, prefix), self.pool, None)
            common = bits - (value ^ network).bit_length()
            needed = max(needed, min(prefix, common + 1))
        return (False, needed, self.pool, None)

    def condition(self) -> str:
        return f"subnets {[n[4] for n in self.networks]}"

    def describe(self, net: ClientNet, ctx: RouteContext, verdict: Verdict) -> dict[str, Any]:
        if verdict[0]:
            why = "client address inside"
        elif net.address is None:
            why = "no client address"
        else:
            why = "client address outside every subnet"
        return step(self, verdict, why)
