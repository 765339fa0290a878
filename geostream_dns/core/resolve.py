"""resolve(query bytes, client) -> response bytes: the one function every transport calls.

How this works: `Resolver.resolve` first tries an inline fast path for the
common shape (QUERY opcode, one question, no records or one option-less OPT)
whose answer was pre-rendered in the snapshot: one slice, one `translate`,
one dictionary look-up, then the ID, flags, the question as sent (so its
letter case is echoed) and the pre-rendered body are joined. Everything else
(ECS, errors, wildcards, negative answers, routed names) goes through
`_resolve_slow`, which parses with `wire.parse_query`, runs `lookup`, renders,
and memoizes client-independent renderings in a bounded per-snapshot table.

The type and class bytes of a question are lower-cased along with the name
(one `translate` over the whole question). That is safe because the snapshot
only holds keys for types whose bytes avoid 0x41-0x5A and 0x61-0x7A (checked
when a key is stored), so a mangled key can only miss, never hit the wrong
answer; a miss falls to the slow path, which parses properly.

The resolver never touches a socket, a clock, a logger or a metric: it
returns the response (or None to drop) with the qtype and rcode, and the
transport counts them.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any

import dns.name
import dns.rdatatype

from geostream_dns.core import wire
from geostream_dns.core.lookup import Resolution, lookup
from geostream_dns.core.render import RRs, render_sections
from geostream_dns.core.snapshot import ALIAS, Answer, Snapshot, ZoneTree, question_key
from geostream_dns.core.wire import (
    BADVERS,
    CD,
    CLASS_IN,
    FORMERR,
    LOWER,
    NOTIMP,
    OPT_DO,
    OPT_PLAIN,
    QR,
    RD,
    REFUSED,
    SERVFAIL,
    TC,
    MalformedQuery,
    Query,
)

DERIVED_LIMIT = 50_000  # memoized slow-path renderings kept per snapshot
_COUNTS = struct.Struct("!HHHH")
_HDR = struct.Struct("!HH")
_FAST_HEADER = b"\x00\x01\x00\x00\x00\x00\x00"  # QD=1, AN=0, NS=0, AR<256
_OPT_HEAD = b"\x00\x00\x29"  # root owner, type OPT

AXFR, IXFR, MAILB, MAILA = 252, 251, 253, 254
TKEY, TSIG = 249, 250

# (response or None to drop, qtype, rcode); rcode -1 marks a dropped packet.
Result = tuple[bytes | None, int, int]


def _key_is_safe(key: bytes) -> bool:
    """True when a key's type and class bytes are unchanged by LOWER (see module doc)."""
    return all(not (0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A) for b in key[-4:])


def render_answer(qname: dns.name.Name, qtype: int, res: Resolution,
                  answer_rrs: list[RRs] | None = None) -> Answer:
    """Render a resolution (with routed parts replaced by `answer_rrs`).

    Routed renderings keep their answer records one by one (for multivalue
    shuffles); static ones, by far the most, keep only the joined body.
    """
    routed = answer_rrs is not None
    if answer_rrs is None:
        answer_rrs = [p.static_rrs() for p in res.answer]
    rendered = render_sections(qname, qtype, answer_rrs, res.authority, res.additional,
                               keep_chunks=routed)
    zone = res.zone.origin.to_text() if res.zone is not None else ""
    answer = Answer(res.rcode, res.aa, rendered.ancount, rendered.nscount, rendered.arcount,
                    rendered.body, rendered.answer_chunks, zone, qtype)
    return answer


class Tables:
    """A snapshot with the memo tables that belong to it; swapped as one."""

    __slots__ = ("snapshot", "answers", "derived", "routed", "plans", "selections")

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.answers = snapshot.answers
        self.derived: dict[bytes, Answer] = {}
        self.routed: dict[tuple[object, ...], Answer] = {}
        # question key -> (qname, resolution) of routed names, so repeat
        # queries skip the tree walk
        self.plans: dict[bytes, tuple[dns.name.Name, Resolution]] = {}
        # question + client network -> the memoized routing selection
        self.selections: dict[bytes, Any] = {}  # -> route.engine.Memo


# question key -> (name, type, origin of the zone holding the name)
ForeignAnswers = dict[bytes, tuple[dns.name.Name, int, dns.name.Name]]


def precompute_answers(snapshot: Snapshot, zones: Iterable[ZoneTree] | None = None,
                       foreign: ForeignAnswers | None = None) -> None:
    """Render every static (name, type) of the snapshot (or of ``zones``) into
    `snapshot.answers`.

    With ``foreign``, also note there each answer that depends on a zone other than
    the one holding the name (a CNAME chain or an ALIAS leaving it, a name under a
    hosted child zone): an incremental build recomputes those (core/build.py).
    """
    for zone in snapshot.zones.values() if zones is None else zones:
        for name, node in zone.nodes.items():
            for rdtype in node:
                if rdtype == ALIAS:  # answered as A/AAAA below
                    continue
                store_answer(snapshot, zone, name, rdtype, foreign)
            if ALIAS in node:
                store_answer(snapshot, zone, name, dns.rdatatype.A, foreign)
                store_answer(snapshot, zone, name, dns.rdatatype.AAAA, foreign)


def store_answer(snapshot: Snapshot, zone: ZoneTree, name: dns.name.Name, rdtype: int,
                 foreign: ForeignAnswers | None = None) -> None:
    key = question_key(name, rdtype)
    if not _key_is_safe(key):
        return
    res = lookup(snapshot, name, rdtype)
    if res.routed:
        return
    snapshot.answers[key] = render_answer(name, rdtype, res)
    if foreign is not None and not _within(snapshot, zone, name, res):
        foreign[key] = (name, rdtype, zone.origin)


def _within(snapshot: Snapshot, zone: ZoneTree, name: dns.name.Name, res: Resolution) -> bool:
    """True when the answer to `name` is made of `zone` alone."""
    if res.zone is not zone:
        return False
    if len(res.answer) > 1 and any(snapshot.find_zone(p.owner) is not zone
                                   for p in res.answer):
        return False
    alias = zone.nodes.get(name, {}).get(ALIAS)
    return alias is None or alias.alias is None or snapshot.find_zone(alias.alias) is zone


class Resolver:
    """Answers queries from the current snapshot. Swap with `use(snapshot)`."""

    def __init__(self, snapshot: Snapshot, route: Any = None) -> None:
        self.tables = Tables(snapshot)
        # The geo routing layer (route.engine.RouteLayer): answers routed names,
        # with its own random source.
        self.route = route

    @property
    def snapshot(self) -> Snapshot:
        return self.tables.snapshot

    def use(self, snapshot: Snapshot) -> None:
        """Publish a new snapshot; queries in flight finish on the old one."""
        self.tables = Tables(snapshot)

    def resolve(self, data: bytes, client: str, tcp: bool = False) -> Result:
        """The fast path; anything unusual goes to `_resolve_slow`."""
        try:
            if data[2] & 0xF8 or data[4:11] != _FAST_HEADER:
                return self._resolve_slow(data, client, tcp)
            i = 12
            n = data[12]
            while n:
                if n > 63:
                    return self._resolve_slow(data, client, tcp)
                i += n + 1
                n = data[i]
            qend = i + 5
            ecs = b""
            edns = False
            do = 0
            if data[11] == 0:
                if len(data) != qend:
                    return self._resolve_slow(data, client, tcp)
                opt = b""
                limit = 512
            elif data[11] == 1 and data[qend:qend + 3] == _OPT_HEAD and data[qend + 6] == 0:
                rdlen = data[qend + 9] << 8 | data[qend + 10]
                if len(data) != qend + 11 + rdlen:
                    return self._resolve_slow(data, client, tcp)
                if rdlen:
                    # One option, an ECS option: only routed names take it fast.
                    if (rdlen < 8 or data[qend + 11] or data[qend + 12] != 8
                            or (data[qend + 13] << 8 | data[qend + 14]) != rdlen - 4):
                        return self._resolve_slow(data, client, tcp)
                    ecs = data[qend + 11:]
                edns = True
                do = data[qend + 7] & 0x80
                opt = OPT_DO if do else OPT_PLAIN
                limit = data[qend + 3] << 8 | data[qend + 4]
                limit = 512 if limit < 512 else (1232 if limit > 1232 else limit)
            else:
                return self._resolve_slow(data, client, tcp)
            question = data[12:qend]
            key = question.translate(LOWER)
            tables = self.tables
            entry = None if ecs else (tables.answers.get(key) or tables.derived.get(key))
            if entry is None:
                plan = tables.plans.get(key)
                if plan is None or self.route is None:
                    return self._resolve_slow(data, client, tcp)
                result = self.route.fast(self, data, qend, key, plan, ecs, edns, do, limit, tcp,
                                         client)
                return result if result is not None else self._resolve_slow(data, client, tcp)
        except IndexError:
            return self._resolve_slow(data, client, tcp)
        flags = entry.flags | ((data[2] << 8 | data[3]) & (RD | CD))
        if opt:
            if not tcp and qend + entry.size + 11 > limit:
                return truncated(data, flags, question, opt), entry.qtype, entry.rcode
            return (data[:2] + flags.to_bytes(2, "big") + entry.counts_edns + question
                    + entry.body + opt), entry.qtype, entry.rcode
        if not tcp and qend + entry.size > 512:
            return truncated(data, flags, question, opt), entry.qtype, entry.rcode
        return (data[:2] + flags.to_bytes(2, "big") + entry.counts + question
                + entry.body), entry.qtype, entry.rcode

    def _resolve_slow(self, data: bytes, client: str, tcp: bool) -> Result:
        try:
            q = wire.parse_query(data)
        except MalformedQuery as exc:
            if not exc.header_ok:
                return None, 0, -1
            return _error(exc.msg_id, exc.flags, exc.question, FORMERR, None), 0, FORMERR
        qtype = q.qtype
        if q.opcode != 0:
            return _error(q.msg_id, q.flags, q.question, NOTIMP, q.edns), qtype, NOTIMP
        if q.edns is not None and q.edns.version > 0:
            return _error(q.msg_id, q.flags, q.question, BADVERS, q.edns), qtype, BADVERS
        if qtype in (wire.OPT, TKEY, TSIG):
            return _error(q.msg_id, q.flags, q.question, FORMERR, q.edns), qtype, FORMERR
        if q.qclass != CLASS_IN or qtype in (AXFR, IXFR):
            return _error(q.msg_id, q.flags, q.question, REFUSED, q.edns), qtype, REFUSED
        if qtype in (MAILA, MAILB):
            return _error(q.msg_id, q.flags, q.question, NOTIMP, q.edns), qtype, NOTIMP
        tables = self.tables
        key = q.key
        entry = tables.answers.get(key) or tables.derived.get(key)
        if entry is None:
            plan = tables.plans.get(key)
            if plan is None:
                qname = dns.name.from_wire(q.qname, 0)[0]
                res = lookup(tables.snapshot, qname, qtype)
                if not res.routed:
                    entry = render_answer(qname, qtype, res)
                    if len(tables.derived) >= DERIVED_LIMIT:
                        tables.derived.clear()
                    tables.derived[key] = entry
                else:
                    plan = (qname, res)
                    if len(tables.plans) >= DERIVED_LIMIT:
                        tables.plans.clear()
                    tables.plans[key] = plan
            if plan is not None:
                if self.route is None:
                    raise RuntimeError("routed record without a routing layer")
                result: Result = self.route(self, q, plan[1], plan[0], client, tcp)
                return result
        assert entry is not None
        options = b""
        if q.edns is not None and q.edns.ecs is not None:
            options = q.edns.ecs.to_option(0)  # static answers hold for everyone
        return respond(q, entry, tcp, options), qtype, entry.rcode


def respond(q: Query, entry: Answer, tcp: bool, options: bytes = b"",
            body: bytes | None = None, ancount: int | None = None) -> bytes:
    """Assemble a response to `q` from a rendered answer (the general path).

    `body` and `ancount` replace the rendered ones for per-query variations
    (multivalue sampling and shuffling).
    """
    flags = entry.flags | (q.flags & (RD | CD))
    if body is None:
        body = entry.body
    if q.edns is None:
        opt = b""
        counts = entry.counts
    else:
        opt = wire.opt_record(q.edns.do, options)
        counts = entry.counts_edns
    if ancount is not None:
        counts = _COUNTS.pack(1, ancount, entry.nscount, entry.arcount + (1 if opt else 0))
    if not tcp and 12 + len(q.question) + len(body) + len(opt) > wire.udp_limit(q.edns):
        return truncated(q.msg_id.to_bytes(2, "big"), flags, q.question, opt)
    return (_HDR.pack(q.msg_id, flags) + counts + q.question + body + opt)


def truncated(id_bytes: bytes, flags: int, question: bytes, opt: bytes) -> bytes:
    """TC=1 with the question only: the client retries over TCP."""
    return (id_bytes[:2] + (flags | TC).to_bytes(2, "big")
            + _COUNTS.pack(1, 0, 0, 1 if opt else 0) + question + opt)


def _error(msg_id: int, qflags: int, question: bytes, rcode: int,
           edns: wire.Edns | None) -> bytes:
    """An empty response with `rcode` (extended rcodes go into OPT)."""
    flags = QR | (qflags & (0x7800 | RD | CD)) | (rcode & 0xF)
    opt = b""
    if edns is not None:
        opt = wire.opt_record(edns.do, b"", rcode >> 4)
    return (_HDR.pack(msg_id, flags) + _COUNTS.pack(1 if question else 0, 0, 0, 1 if opt else 0)
            + question + opt)


def server_failure(data: bytes) -> bytes:
    """SERVFAIL for a query whose answer cannot be sent (larger than a TCP frame)."""
    q = wire.parse_query(data)
    return _error(q.msg_id, q.flags, q.question, SERVFAIL, q.edns)
