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
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import dns.name

from geostream_dns.core.geo import UNKNOWN, GeoLocator, Location
from geostream_dns.core.health import ALL_UP, HealthView
from geostream_dns.core.render import RRs
from geostream_dns.core.resolve import render_answer, respond, truncated
from geostream_dns.core.route.policy import MULTIVALUE_MAX, Decision, Router, Selection, pick
from geostream_dns.core.wire import CD, RD, Query, opt_record, parse_ecs
from geostream_dns.errors import WireError

if TYPE_CHECKING:
    from geostream_dns.core.lookup import Resolution
    from geostream_dns.core.resolve import Resolver, Result, Tables
    from geostream_dns.core.snapshot import Answer

ROUTED_CACHE_LIMIT = 100_000
SELECTION_MEMO_LIMIT = 200_000
_COUNTS = struct.Struct("!HHHH")
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
        # Plain integers, read by the metrics collector at scrape time.
        self.counts = {"selection_hit": 0, "selection_miss": 0, "all_down": 0}

    def client_location(self, q: Query | None, client: str) -> tuple[Location, bytes | None, int]:
        """(location, address used, source prefix) for a query."""
        ecs = q.edns.ecs if q is not None and q.edns is not None else None
        if ecs is not None:
            if ecs.source_prefix == 0:
                return UNKNOWN, None, 0
            addr = ecs.address_bytes()
            return self.geo.locate(addr), addr, ecs.source_prefix
        source = client_address(client)
        if source is None:
            return UNKNOWN, None, 0
        return self.geo.locate(source), source, len(source) * 8

    def __call__(self, resolver: Resolver, q: Query, res: Resolution, qname: dns.name.Name,
                 client: str, tcp: bool) -> Result:
        """The general path: a parsed query (any shape) for a routed name."""
        ecs = q.edns.ecs if q.edns is not None else None
        ecs_wire = ecs.to_option(0) if ecs is not None else b""
        found = self._selected(resolver.tables, q.key, (qname, res), ecs_wire, client,
                               lambda: self.client_location(q, client))
        selection, option_prefix = found
        entry, body, ancount = self._render(resolver.tables, q.key, (qname, res),
                                            pick(selection, self.rng), q.qtype)
        options = option_prefix + bytes([selection.scope]) + ecs_wire[8:] if ecs_wire else b""
        return respond(q, entry, tcp, options, body, ancount), q.qtype, entry.rcode

    def fast(self, resolver: Resolver, data: bytes, qend: int, key: bytes,
             plan: tuple[dns.name.Name, Resolution], ecs_wire: bytes, edns: bool, do: int,
             limit: int, tcp: bool, client: str) -> Result | None:
        """The routed fast path: called by `Resolver.resolve` with the query still
        as bytes. `ecs_wire` is the query's one EDNS option, an ECS option, or
        empty. Returns None when the slow path must answer (an invalid ECS
        option: the slow path's parser words the FORMERR)."""
        tables = resolver.tables
        try:
            found = self._selected(tables, key, plan, ecs_wire, client,
                                   lambda: self._locate_wire(ecs_wire, client))
        except WireError:
            return None
        selection, option_prefix = found
        qtype = data[qend - 4] << 8 | data[qend - 3]
        entry, body, ancount = self._render(tables, key, plan, pick(selection, self.rng), qtype)
        flags = entry.flags | ((data[2] << 8 | data[3]) & (RD | CD))
        opt = b""
        if edns:
            options = option_prefix + bytes([selection.scope]) + ecs_wire[8:] if ecs_wire else b""
            opt = opt_record(bool(do), options)
        if not tcp and qend + len(body) + len(opt) > limit:
            return truncated(data, flags, data[12:qend], opt), qtype, entry.rcode
        counts = _COUNTS.pack(1, ancount, entry.nscount, entry.arcount + (1 if opt else 0))
        return (data[:2] + flags.to_bytes(2, "big") + counts + data[12:qend] + body + opt,
                qtype, entry.rcode)

    def _locate_wire(self, ecs_wire: bytes, client: str) -> tuple[Location, bytes | None, int]:
        if not ecs_wire:
            return self.client_location(None, client)
        ecs = parse_ecs(ecs_wire[4:])  # raises WireError for the FORMERR cases
        if ecs.source_prefix == 0:
            return UNKNOWN, None, 0
        addr = ecs.address_bytes()
        return self.geo.locate(addr), addr, ecs.source_prefix

    def _selected(self, tables: Tables, key: bytes, plan: tuple[dns.name.Name, Resolution],
                  ecs_wire: bytes, client: str,
                  locate: Callable[[], tuple[Location, bytes | None, int]]
                  ) -> tuple[Selection, bytes]:
        """The routing selection for this question and client network, memoized.

        The memo key is the question plus the ECS option as sent (or the source
        address): the same client network always gets the same selection until
        health changes. Entries hold no rendered answers; those are keyed by
        the decision alone (`_render`).
        """
        memo_key = key + (ecs_wire or client.encode())
        health = self.health
        found = tables.selections.get(memo_key)
        counts = self.counts
        if found is not None and found[0] is health:
            counts["selection_hit"] += 1
            if found[3]:
                counts["all_down"] += 1
            return found[1], found[2]
        counts["selection_miss"] += 1
        loc, addr, source_prefix = locate()
        router = _router_of(plan[1])
        selection = router.select(loc, addr, source_prefix, health)
        if selection.scope > source_prefix:
            selection = selection._replace(scope=source_prefix)
        # The response's ECS option up to the scope byte (RFC 7871 §7.2.1).
        option_prefix = ecs_wire[:7] if ecs_wire else b""
        if len(tables.selections) >= SELECTION_MEMO_LIMIT:
            tables.selections.clear()
        # Decision keys of the record's own values and of fail-open answers start
        # with None, which no pool name is.
        fixed = selection.fixed
        failed_open = fixed is not None and fixed.key[0] is None and fixed.key[1] == "open"
        if failed_open:
            counts["all_down"] += 1
        tables.selections[memo_key] = (health, selection, option_prefix, failed_open)
        return selection, option_prefix

    def _render(self, tables: Tables, key: bytes, plan: tuple[dns.name.Name, Resolution],
                decision: Decision, qtype: int) -> tuple[Answer, bytes, int]:
        """(rendered answer, body for this query, answer count for this query)."""
        cache_key = (key, decision.key)
        entry = tables.routed.get(cache_key)
        if entry is None:
            qname, res = plan
            entry = render_answer(qname, qtype, res, self.answer_rrs(res, [decision]))
            if len(tables.routed) >= ROUTED_CACHE_LIMIT:
                tables.routed.clear()
            tables.routed[cache_key] = entry
        if not decision.shuffle:
            return entry, entry.body, entry.ancount
        # The routed part is last in the answer section: sample and shuffle its records.
        n = len(decision.rdatas)
        head, tail = entry.chunks[:-n], list(entry.chunks[-n:])
        if n > MULTIVALUE_MAX:
            tail = self.rng.sample(tail, MULTIVALUE_MAX)
        else:
            self.rng.shuffle(tail)
        return entry, b"".join(head) + b"".join(tail), len(head) + len(tail)

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


def _router_of(res: Resolution) -> Router:
    """The one routed part of a resolution (a chain ends at its routed record)."""
    for part in res.answer:
        if part.data.router is not None:
            return part.data.router
    raise ValueError("resolution has no routed part")


def router_factory(rs: Any, zone: Any) -> Router:
    return Router(rs, zone)
