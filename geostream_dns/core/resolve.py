"""resolve(query bytes, client, world) -> Reply: the one function every transport calls.

How this works, packet in, bytes out:

1. `resolve` reads the common query shape by hand — QUERY opcode, one
   question, no records or one OPT record whose only option (if any) is ECS:
   it finds the end of the name (one `find`), lower-cases the question bytes
   with one `translate` (the key) and makes one dictionary look-up:
   * without ECS, in `world.answers`: a pre-rendered (or memoized) static
     answer; for a routed name (`world.routed`) the client's entry in
     `world.selections`, keyed by question and source address;
   * with ECS, in `world.selections` (keyed by question + ECS option as sent):
     the entry tailored for that client network, routed or static.
2. An entry that varies per query (a weighted pick, a multivalue shuffle)
   gives this query's `Tailored` entry.
3. `answer.assemble` joins ID, flags, counts, the question as sent, the body
   and our OPT record, or a TC=1 reply when the answer does not fit.

Anything else — a miss, another shape, an error — goes to `_slow`, which
parses fully (`wire.parse_query`), answers errors (FORMERR, NOTIMP, BADVERS,
REFUSED), runs `lookup`, routes (`route.router.Router.select` for the client
network from `client.client_net`), renders, memoizes in the world's tables so
the next such query takes the fast path, and assembles the same way.

The type and class bytes are lower-cased along with the name. That is safe
because only keys whose type and class bytes hold no ASCII letters are stored
(`build.key_is_safe`), so a mangled key can only miss and fall to `_slow`.

The resolver touches no socket, clock, logger or counter: it returns the reply
bytes (None to drop) and an `Outcome` the transport counts and logs.
"""

from __future__ import annotations

from typing import Any

import dns.name

from geostream_dns.core import wire
from geostream_dns.core.answer import (
    TCP_LIMIT,
    Answer,
    Entry,
    RoutedName,
    Shuffled,
    Tailored,
    Weighted,
    assemble,
    opt_records,
    render_answer,
)
from geostream_dns.core.build import key_is_safe
from geostream_dns.core.client import client_net
from geostream_dns.core.lookup import lookup
from geostream_dns.core.outcome import (
    COMPUTED,
    DROPPED_OUTCOME,
    MEMO,
    NONE,
    ROUTED,
    SLOW,
    STATIC,
    Outcome,
)
from geostream_dns.core.render import RRs
from geostream_dns.core.route.pools import MULTIVALUE_MAX
from geostream_dns.core.wire import (
    BADVERS,
    CLASS_IN,
    FORMERR,
    LOWER,
    NOTIMP,
    REFUSED,
    SERVFAIL,
    ClientSubnet,
    MalformedQuery,
)
from geostream_dns.core.world import SelectionEntry, World
from geostream_dns.errors import WireError

# The reply bytes (None: send nothing) and what happened. A plain tuple, not a
# NamedTuple: building a NamedTuple costs more than the rest of a static answer.
Reply = tuple[bytes | None, Outcome]

_QUESTION_ONLY = b"\x00\x01\x00\x00\x00\x00\x00\x00"  # QD=1, AN=NS=AR=0
_QUESTION_OPT = b"\x00\x01\x00\x00\x00\x00\x00\x01"  # QD=1, AR=1
_OPT_HEAD = b"\x00\x00\x29"  # root owner, type OPT
_ECS_CODE = b"\x00\x08"  # option code of Client Subnet

AXFR, IXFR, MAILB, MAILA = 252, 251, 253, 254
TKEY, TSIG = 249, 250


def resolve(data: bytes, client: str, world: World, tcp: bool = False) -> Reply:
    """Answer one query from `client` (its address as text) in `world`."""
    # Any of the entry kinds of core/answer.py; they share the attributes read here.
    entry: Any
    try:
        if data[2] & 0xF8:  # QR or an opcode other than QUERY
            return _slow(data, client, world, tcp)
        counts = data[4:12]
        # The question's end: the first zero byte is the root label's (a zero
        # byte inside a label gives a wrong end, whose key can only miss, since
        # every stored key is a well-formed question; a hit proves the question).
        qend = data.find(0, 12) + 5
        if counts == _QUESTION_ONLY:
            if qend != len(data):
                return _slow(data, client, world, tcp)
            question = data[12:]
            key = question.translate(LOWER)
            entry = world.answers.get(key)
            if entry is None:
                if key not in world.routed:
                    return _slow(data, client, world, tcp)
                entry = world.selections.get((key, client))
                if entry is None:
                    return _slow(data, client, world, tcp)
                if entry.varies:
                    entry = entry.vary(world.rng)
            return (assemble(data, question, entry, b"", TCP_LIMIT if tcp else 512),
                    entry.outcome)
        if (counts != _QUESTION_OPT or data[qend:qend + 3] != _OPT_HEAD or data[qend + 6]
                or len(data) != qend + 11 + (data[qend + 9] << 8 | data[qend + 10])):
            return _slow(data, client, world, tcp)
        question = data[12:qend]
        key = question.translate(LOWER)
        if len(data) > qend + 11:
            # Options: one ECS option is looked up as sent (with the question) in
            # the per-network memo; only validated options are stored there, so a
            # hit proves the option, and anything else misses.
            entry = world.selections.get(key + data[qend + 11:])
            if entry is None:
                return _route_new_network(data, qend, key, client, world, tcp)
        else:
            entry = world.answers.get(key)
            if entry is None and key in world.routed:
                entry = world.selections.get((key, client))
        if entry is None:
            return _slow(data, client, world, tcp)
        if entry.varies:
            entry = entry.vary(world.rng)
        if tcp:
            limit = TCP_LIMIT
        else:
            limit = data[qend + 3] << 8 | data[qend + 4]
            limit = 512 if limit < 512 else (1232 if limit > 1232 else limit)
        return (assemble(data, question, entry,
                         entry.opt_do if data[qend + 7] & 0x80 else entry.opt, limit),
                entry.outcome)
    except IndexError:
        return _slow(data, client, world, tcp)


def _route_new_network(data: bytes, qend: int, key: bytes, client: str, world: World,
                       tcp: bool) -> Reply:
    """The fast shape with one option that missed the per-network memo: a routed
    name with a Client Subnet option from a network not seen yet is decided here,
    without the full parse; anything else goes to `_slow`."""
    name = world.routed.get(key)
    if (name is None or data[qend + 11:qend + 13] != _ECS_CODE
            or (data[qend + 13] << 8 | data[qend + 14]) != len(data) - qend - 15):
        return _slow(data, client, world, tcp)
    try:
        ecs = wire.parse_ecs(data[qend + 15:])
    except WireError:
        return _slow(data, client, world, tcp)  # the full parser words the FORMERR
    entry: Any = _route(world, data[qend - 4] << 8 | data[qend - 3], key, name, client, ecs,
                        data[qend + 11:])
    if entry.varies:
        entry = entry.vary(world.rng)
    opt = entry.opt_do if data[qend + 7] & 0x80 else entry.opt
    limit = TCP_LIMIT if tcp else min(max(data[qend + 3] << 8 | data[qend + 4], 512), 1232)
    return (assemble(data, data[12:qend], entry, opt, limit),
            world.memo.outcomes.variant(entry.outcome, ROUTED, COMPUTED))


def _slow(data: bytes, client: str, world: World, tcp: bool) -> Reply:
    try:
        q = wire.parse_query(data)
    except MalformedQuery as exc:
        if not exc.header_ok:
            return None, DROPPED_OUTCOME
        return _error(world, data, exc.flags, exc.question, FORMERR, None, 0)
    qtype = q.qtype
    if q.opcode != 0:
        return _error(world, data, q.flags, q.question, NOTIMP, q.edns, qtype)
    if q.edns is not None and q.edns.version > 0:
        return _error(world, data, q.flags, q.question, BADVERS, q.edns, qtype)
    if qtype in (wire.OPT, TKEY, TSIG):
        return _error(world, data, q.flags, q.question, FORMERR, q.edns, qtype)
    if q.qclass != CLASS_IN or qtype in (AXFR, IXFR):
        return _error(world, data, q.flags, q.question, REFUSED, q.edns, qtype)
    if qtype in (MAILA, MAILB):
        return _error(world, data, q.flags, q.question, NOTIMP, q.edns, qtype)
    memo = world.memo
    key = q.key
    found: Answer | RoutedName | None = memo.answers.get(key) or memo.routed.get(key)
    tier = MEMO
    if found is None:
        tier = COMPUTED
        qname = dns.name.from_wire(q.qname, 0)[0]
        res = lookup(world.snapshot.zone_set, qname, qtype)
        zone = res.zone.origin.to_text() if res.zone is not None else ""
        if res.routed:
            found = RoutedName(qname, res, zone)
        else:
            found = render_answer(qname, qtype, res,
                                  memo.outcomes.get(qtype, res.rcode, zone, STATIC, MEMO))
        if key_is_safe(key):
            memo.learn(key, found)
    ecs = q.edns.ecs if q.edns is not None else None
    chosen: Entry | SelectionEntry
    if isinstance(found, RoutedName):
        chosen = _route(world, qtype, key, found, client, ecs)
    elif ecs is not None:
        outcome = found.outcome
        option = ecs.to_option(0)  # a static answer holds for everyone: scope 0
        chosen = Tailored(found, option, memo.outcomes.get(
            qtype, outcome.rcode, outcome.zone, STATIC, MEMO, scope=0))
        world.remember_selection(key + option, chosen)
    else:
        chosen = found
    if isinstance(chosen, Weighted | Shuffled):
        chosen = chosen.vary(world.rng)
    outcome = memo.outcomes.variant(chosen.outcome, SLOW, tier)
    edns = q.edns
    if edns is None:
        opt, limit = b"", 512
    else:
        opt, limit = (chosen.opt_do if edns.do else chosen.opt), wire.udp_limit(edns)
    return assemble(data, q.question, chosen, opt, TCP_LIMIT if tcp else limit), outcome


def _route(world: World, qtype: int, key: bytes, name: RoutedName, client: str,
           ecs: ClientSubnet | None, option: bytes = b"") -> SelectionEntry:
    """Decide, render and memoize a routed answer for the query's client network.

    `option` is the query's ECS option as sent (the memo key with the question)."""
    selection = name.router.select(client_net(client, ecs, world.geo), world.route)
    memo = world.memo
    res = name.resolution
    outcome = memo.outcomes.get(qtype, res.rcode, name.zone, ROUTED, MEMO, selection.rule,
                                selection.pool, selection.scope if ecs is not None else None,
                                selection.failed_open)
    options = opt_records(ecs.to_option(selection.scope)) if ecs is not None else b""
    entry: SelectionEntry
    fixed = selection.fixed
    if fixed is not None:
        answer = _rendered(world, qtype, key, name, fixed.key, fixed.rdatas)
        if fixed.shuffle:
            entry = Shuffled(answer, len(fixed.rdatas), MULTIVALUE_MAX, options, outcome)
        else:
            entry = Tailored(answer, options, outcome)
    else:
        health = selection.weighted
        assert health is not None
        pool = selection.pool
        entry = Weighted(tuple(_rendered(world, qtype, key, name, (pool, v.text), (v.rdata,))
                               for v in health.up), health.cumulative, options, outcome)
    if ecs is not None:
        world.remember_selection(key + (option or ecs.to_option(0)), entry)
    else:
        world.remember_selection((key, client), entry)
    return entry


def _rendered(world: World, qtype: int, key: bytes, name: RoutedName, decision: Any,
              rdatas: tuple[Any, ...]) -> Answer:
    """The answer of a routed name rendered for one decision (identified by the key
    `decision`, never by client), shared by every client network that gets it."""
    memo = world.memo
    cache_key = (key, decision)
    answer = memo.rendered.get(cache_key)
    if answer is None:
        res = name.resolution
        answer_rrs = [part.static_rrs() if part.data.router is None
                      else RRs(part.owner, part.data.rdtype, part.ttl, rdatas)
                      for part in res.answer]
        answer = render_answer(name.qname, qtype, res, memo.outcomes.get(
            qtype, res.rcode, name.zone, ROUTED, MEMO), answer_rrs)
        memo.remember_rendering(cache_key, answer)
    return answer


def _error(world: World, data: bytes, qflags: int, question: bytes, rcode: int,
           edns: wire.Edns | None, qtype: int) -> Reply:
    """An empty response with `rcode` (an extended rcode goes into OPT); the opcode
    is echoed, so NOTIMP names the opcode it refuses."""
    outcome = world.memo.outcomes.get(qtype, rcode, "", SLOW, NONE)
    entry = Answer(rcode, False, 0, 0, 0, b"", outcome, extra_flags=qflags & 0x7800,
                   qdcount=1 if question else 0)
    opt = b"" if edns is None else wire.opt_record(edns.do, b"", rcode >> 4)
    return assemble(data, question, entry, opt, TCP_LIMIT), outcome


def server_failure(data: bytes) -> bytes:
    """SERVFAIL for a query whose answer cannot be sent (larger than a TCP frame)."""
    q = wire.parse_query(data)
    opt = b"" if q.edns is None else wire.opt_record(q.edns.do)
    entry = Answer(SERVFAIL, False, 0, 0, 0, b"", DROPPED_OUTCOME)
    return assemble(data, q.question, entry, opt, TCP_LIMIT)
