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
        tables = resolver.tables
        plan = (qname, res)
        memo = tables.selections.get(q.key + (ecs_wire or client.encode()))
        if memo is None or memo.health is not self.health:
            memo = self._select(tables, q.key, plan, ecs_wire, client, q)
        else:
            self._hit(memo)
        entry, body, ancount = self._answer(memo, tables, q.key, plan, q.qtype)
        return respond(q, entry, tcp, memo.options, body, ancount), q.qtype, entry.rcode

    def fast(self, resolver: Resolver, data: bytes, qend: int, key: bytes,
             plan: tuple[dns.name.Name, Resolution], ecs_wire: bytes, edns: bool, do: int,
             limit: int, tcp: bool, client: str) -> Result | None:
        """The routed fast path: called by `Resolver.resolve` with the query still
        as bytes. `ecs_wire` is the query's one EDNS option, an ECS option, or
        empty. Returns None when the slow path must answer (an invalid ECS
        option: the slow path's parser words the FORMERR)."""
        tables = resolver.tables
        memo = tables.selections.get(key + (ecs_wire or client.encode()))
        if memo is None or memo.health is not self.health:
            try:
                memo = self._select(tables, key, plan, ecs_wire, client, None)
            except WireError:
                return None
        else:
            self._hit(memo)
        qtype = data[qend - 4] << 8 | data[qend - 3]
        entry, body, ancount = self._answer(memo, tables, key, plan, qtype)
        flags = entry.flags | ((data[2] << 8 | data[3]) & (RD | CD))
        opt = memo.opts[1 if do else 0] if edns else b""
        if not tcp and qend + len(body) + len(opt) > limit:
            return truncated(data, flags, data[12:qend], opt), qtype, entry.rcode
        if ancount == entry.ancount:
            counts = entry.counts_edns if opt else entry.counts
        else:
            counts = _COUNTS.pack(1, ancount, entry.nscount, entry.arcount + (1 if opt else 0))
        return (data[:2] + flags.to_bytes(2, "big") + counts + data[12:qend] + body + opt,
                qtype, entry.rcode)

    def _hit(self, memo: Memo) -> None:
        counts = self.counts
        counts["selection_hit"] += 1
        if memo.failed_open:
            counts["all_down"] += 1

    def _locate_wire(self, ecs_wire: bytes, client: str) -> tuple[Location, bytes | None, int]:
        if not ecs_wire:
            return self.client_location(None, client)
        ecs = parse_ecs(ecs_wire[4:])  # raises WireError for the FORMERR cases
        if ecs.source_prefix == 0:
            return UNKNOWN, None, 0
        addr = ecs.address_bytes()
        return self.geo.locate(addr), addr, ecs.source_prefix

    def _select(self, tables: Tables, key: bytes, plan: tuple[dns.name.Name, Resolution],
                ecs_wire: bytes, client: str, q: Query | None) -> Memo:
        """Compute and memoize the routing selection for this question and client.

        The memo key is the question plus the ECS option as sent (or the source
        address): the same client network always gets the same selection until
        health changes. Rendered answers are shared by decision (`_answer`).
        """
        self.counts["selection_miss"] += 1
        health = self.health
        if q is not None:
            loc, addr, source_prefix = self.client_location(q, client)
        else:
            loc, addr, source_prefix = self._locate_wire(ecs_wire, client)
        selection = _router_of(plan[1]).select(loc, addr, source_prefix, health)
        memo = Memo(health, selection, ecs_wire)
        if memo.failed_open:
            self.counts["all_down"] += 1
        if len(tables.selections) >= SELECTION_MEMO_LIMIT:
            tables.selections.clear()
        tables.selections[key + (ecs_wire or client.encode())] = memo
        return memo

    def _answer(self, memo: Memo, tables: Tables, key: bytes,
                plan: tuple[dns.name.Name, Resolution], qtype: int) -> tuple[Answer, bytes, int]:
        """(rendered answer, body for this query, answer count for this query)."""
        selection = memo.selection
        decision = selection.fixed
        entry = memo.entry
        if entry is None:
            if decision is None:
                decision = pick(selection, self.rng)  # weighted: a pick per query
            entry = self._rendered(tables, key, plan, decision, qtype)
            if selection.fixed is not None:
                memo.entry = entry
        if decision is None or not decision.shuffle:
            return entry, entry.body, entry.ancount
        # The routed part is last in the answer section: sample and shuffle its records.
        n = len(decision.rdatas)
        head, tail = entry.chunks[:-n], list(entry.chunks[-n:])
        if n > MULTIVALUE_MAX:
            tail = self.rng.sample(tail, MULTIVALUE_MAX)
        else:
            self.rng.shuffle(tail)
        return entry, b"".join(head) + b"".join(tail), len(head) + len(tail)

    def _rendered(self, tables: Tables, key: bytes, plan: tuple[dns.name.Name, Resolution],
                  decision: Decision, qtype: int) -> Answer:
        """The answer rendered for a decision, shared by every client that gets it."""
        cache_key = (key, decision.key)
        entry = tables.routed.get(cache_key)
        if entry is None:
            qname, res = plan
            entry = render_answer(qname, qtype, res, self.answer_rrs(res, decision))
            if len(tables.routed) >= ROUTED_CACHE_LIMIT:
                tables.routed.clear()
            tables.routed[cache_key] = entry
        return entry

    @staticmethod
    def answer_rrs(res: Resolution, decision: Decision) -> list[RRs]:
        """The answer section with the routed part (there is one) as decided."""
        return [part.static_rrs() if part.data.router is None
                else RRs(part.owner, part.data.rdtype, part.ttl, decision.rdatas)
                for part in res.answer]


class Memo:
    """A memoized routing selection for one (question, client network).

    Holds what each repeat query would otherwise recompute: the selection,
    the response's OPT record (both DO variants, ECS scope filled in), and,
    when the selection is fixed (every mode but weighted), its rendering.
    """

    __slots__ = ("health", "selection", "options", "opts", "failed_open", "entry")

    def __init__(self, health: HealthView, selection: Selection, ecs_wire: bytes) -> None:
        self.health = health
        self.selection = selection
        # The response's ECS option: the query's, with the scope filled in
        # (RFC 7871 §7.2.1; `select` keeps the scope within the source prefix).
        self.options = (ecs_wire[:7] + bytes([selection.scope]) + ecs_wire[8:]
                        if ecs_wire else b"")
        self.opts = (opt_record(False, self.options), opt_record(True, self.options))
        # Keys of the record's own values and of fail-open answers start with
        # None, which no pool name is.
        fixed = selection.fixed
        self.failed_open = fixed is not None and fixed.key[0] is None and fixed.key[1] == "open"
        self.entry: Answer | None = None


def _router_of(res: Resolution) -> Router:
    """The one routed part of a resolution (a chain ends at its routed record)."""
    for part in res.answer:
        if part.data.router is not None:
            return part.data.router
    raise ValueError("resolution has no routed part")


def router_factory(rs: Any, zone: Any) -> Router:
    return Router(rs, zone)
