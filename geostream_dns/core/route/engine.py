"""Answer routed names: client location -> decisions -> cached rendering.

How this works: the resolver hands a query whose resolution holds routed
parts to `RouteLayer.answer`. The client is the ECS address when the query
carries one (a source prefix of 0 means no location at all, RFC 7871 §7.1.2),
else the packet's source. One memoized GeoIP look-up gives the location;
each routed part's `Router.decide` gives a `Decision` whose key names the
pool and values chosen, never the client. The rendering is cached per
(question, decision keys) in the snapshot's tables, so millions of clients
share a handful of renderings. Weighted picks happen in `decide` (before the
look-up) and multivalue sampling and shuffling after it, per query.
"""

from __future__ import annotations

import random
import socket
from typing import TYPE_CHECKING, Any

import dns.name

from geostream_dns.core.geo import UNKNOWN, GeoLocator, Location
from geostream_dns.core.health import ALL_UP, HealthView
from geostream_dns.core.render import RRs
from geostream_dns.core.route.policy import MULTIVALUE_MAX, Decision, Router
from geostream_dns.core.wire import Query

if TYPE_CHECKING:
    from geostream_dns.core.lookup import Resolution
    from geostream_dns.core.resolve import Resolver, Result

ROUTED_CACHE_LIMIT = 100_000
_V4_MAPPED = b"\x00" * 10 + b"\xff\xff"


def client_address(client: str) -> bytes | None:
    """The packed source address (IPv4-mapped IPv6 as IPv4); None if unparsable."""
    try:
        if ":" in client:
            packed = socket.inet_pton(socket.AF_INET6, client.partition("%")[0])
            return packed[12:] if packed[:12] == _V4_MAPPED else packed
        return socket.inet_pton(socket.AF_INET, client)
    except OSError:
        return None


class RouteLayer:
    def __init__(self, geo: GeoLocator | None = None, health: HealthView = ALL_UP,
                 rng: random.Random | None = None) -> None:
        self.geo = geo if geo is not None else GeoLocator(None)
        self.health = health
        self.rng = rng or random.Random()

    def client_location(self, q: Query | None, client: str) -> tuple[Location, bytes | None, int]:
        """(location, address used, source prefix) for a query."""
        ecs = q.edns.ecs if q is not None and q.edns is not None else None
        if ecs is not None:
            if ecs.source_prefix == 0:
                return UNKNOWN, None, 0
            addr = ecs.address_bytes()
            return self.geo.locate(addr), addr, ecs.source_prefix
        addr = client_address(client)
        if addr is None:
            return UNKNOWN, None, 0
        return self.geo.locate(addr), addr, len(addr) * 8

    def __call__(self, resolver: Resolver, q: Query, res: Resolution, qname: dns.name.Name,
                 client: str, tcp: bool) -> Result:
        from geostream_dns.core.resolve import render_answer, respond

        loc, addr, source_prefix = self.client_location(q, client)
        health = self.health
        rng = self.rng
        decisions: list[Decision] = []
        scope = 0
        for part in res.answer:
            router = part.data.router
            if router is not None:
                d = router.decide(loc, addr, source_prefix, health, rng)
                decisions.append(d)
                scope = max(scope, d.scope)
        tables = resolver.tables
        key = (q.key, tuple(d.key for d in decisions))
        entry = tables.routed.get(key)
        if entry is None:
            entry = render_answer(qname, q.qtype, res, self.answer_rrs(res, decisions))
            if len(tables.routed) >= ROUTED_CACHE_LIMIT:
                tables.routed.clear()
            tables.routed[key] = entry
        body = None
        ancount = None
        last = decisions[-1]
        if last.shuffle:
            # The routed part is last in the answer section; sample and shuffle its records.
            n = len(last.rdatas)
            head, tail = entry.chunks[:-n], list(entry.chunks[-n:])
            if n > MULTIVALUE_MAX:
                tail = rng.sample(tail, MULTIVALUE_MAX)
            else:
                rng.shuffle(tail)
            body = b"".join(head) + b"".join(tail)
            ancount = len(head) + len(tail)
        options = b""
        if q.edns is not None and q.edns.ecs is not None:
            options = q.edns.ecs.to_option(scope)
        return respond(q, entry, tcp, options, body, ancount), q.qtype, entry.rcode

    @staticmethod
    def answer_rrs(res: Resolution, decisions: list[Decision]) -> list[RRs]:
        out: list[RRs] = []
        it = iter(decisions)
        for part in res.answer:
            if part.data.router is None:
                out.append(part.static_rrs())
            else:
                out.append(RRs(part.owner, part.data.rdtype, part.ttl, next(it).rdatas))
        return out

    def explain(self, snapshot: Any, name: str, rtype: str, client: str,
                ecs: str | None = None) -> dict[str, Any]:
        from geostream_dns.core.route.explain import explain

        return explain(self, snapshot, name, rtype, client, ecs)


def router_factory(rs: Any, zone: Any) -> Router:
    return Router(rs, zone)
