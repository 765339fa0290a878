"""resolve(query bytes, client, world) -> Reply: the one function every transport calls.

How this works, packet in, bytes out:

0. A query seen before, byte for byte after its ID (sent in lower case; from
   the same source address for a routed name asked without ECS), gets the
   reply made for it then: one slice, one look-up in `world.exact`, one join
   with its ID (for a weighted pool: the reply of the value picked by weight).
1. Otherwise `resolve` reads the common query shape by hand — QUERY opcode, one
   question, and nothing else or one OPT record: it finds the end of the name
   (one `find`), lower-cases the question bytes with one `translate` (the key)
   and makes one dictionary look-up:
   * without EDNS, in `world.answers` (static answers) or, for a routed name,
     in `world.selections` by question and source address;
   * with EDNS, in `world.selections` by question and the OPT record exactly
     as sent: the entry holds the reply's body and the OPT record to send (DO
     echoed, ECS with its scope) for that query shape or client network. A
     routed name asked without ECS finds a `ByAddress` entry there, and its
     answer by question and source address.
2. An entry that varies per query (a weighted pick, a multivalue shuffle)
   gives this query's `Tailored` entry.
3. `answer.assemble` joins ID, header, the question as sent, the body and the
   OPT record, or a TC=1 reply when the answer does not fit.

Only what the slow path has validated is ever stored, and a key holds the
question and OPT bytes exactly, so a hit proves the query well formed: the
fast path checks nothing a hit would not prove. Anything else — a miss, an
odd shape, an error — goes to `_slow`, which parses fully (`wire.parse_query`),
answers errors (FORMERR, NOTIMP, BADVERS, REFUSED), runs `lookup`, routes
(`Router.select` for the client network from `client.client_net`), renders,
memoizes in the world's tables so the next such query takes the fast path,
and assembles the same way. A routed name asked from a new ECS network skips
the full parse (`_route_new_network`).

The type and class bytes are lower-cased along with the name. That is safe
because only keys whose type and class bytes hold no ASCII letters are stored
(`build.key_is_safe`), so a mangled key can only miss and fall to `_slow`.

The resolver touches no socket, clock, logger or counter: it returns the reply
bytes (None to drop) and an `Outcome` the transport counts and logs.
"""

from __future__ import annotations

import struct
from bisect import bisect_right
from typing import Any

import dns.name

from geostream_dns.core import wire
from geostream_dns.core.answer import (
    TCP_LIMIT,
    Answer,
    ByAddress,
    RoutedName,
    Shuffled,
    Tailored,
    Weighted,
    assemble,
    render_answer,
    render_signed,
    sign_now,
)
from geostream_dns.core.build import key_is_safe
from geostream_dns.core.client import client_net
from geostream_dns.core.cookies import OPTION_COOKIE, OPTION_NSID, CookieError, nsid_option
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
    BADCOOKIE,
    BADVERS,
    CD,
    CLASS_CH,
    CLASS_IN,
    FORMERR,
    LOWER,
    NOERROR,
    NOTIMP,
    NXDOMAIN,
    QR,
    RD,
    REFUSED,
    SERVFAIL,
    TC,
    ClientSubnet,
    MalformedQuery,
    opt_record,
)
from geostream_dns.core.world import World
from geostream_dns.errors import WireError

# The reply bytes (None: send nothing) and what happened. A plain tuple, not a
# NamedTuple: building a NamedTuple costs more than the rest of a static answer.
Reply = tuple[bytes | None, Outcome]

_QUESTION_ONLY = b"\x00\x01\x00\x00\x00\x00\x00\x00"  # QD=1, AN=NS=AR=0
_QUESTION_OPT = b"\x00\x01\x00\x00\x00\x00\x00\x01"  # QD=1, AR=1
_ECS_CODE = b"\x00\x08"  # option code of Client Subnet

AXFR, IXFR, MAILB, MAILA = 252, 251, 253, 254
NXNAME = 128
TKEY, TSIG = 249, 250
TXT, ANY = 16, 255

# COOKIE options of the two common shapes, as the only option of an OPT record:
# a client cookie alone, and a client cookie with a 16-byte server cookie.
_CLIENT_COOKIE = b"\x00\x0a\x00\x08"
_FULL_COOKIE = b"\x00\x0a\x00\x18"
_COOKIE_CODE = b"\x00\x0a"
_HEAD = struct.Struct("!HHHHH")  # flags and the four counts


def resolve(data: bytes, client: str, world: World, tcp: bool = False) -> Reply:
    """Answer one query from `client` (its address as text) in `world`."""
    # A query seen before, byte for byte after its ID (from this source address,
    # for a routed name asked without ECS): the reply made for it then.
    tail = data[2:]
    exact = world.exact
    seen = exact.get(tail) or exact.get((tail, client))
    if seen is not None:
        if seen[3] is None:
            return data[:2] + (seen[1] if tcp else seen[0]), seen[2]
        index = bisect_right(seen[3], world.rng.random() * seen[3][-1])  # weighted
        return data[:2] + (seen[1] if tcp else seen[0])[index], seen[2]
    # Any of the entry kinds of core/answer.py; they share the attributes read here.
    entry: Any
    try:
        if data[2] & 0xF8:  # QR, or an opcode other than QUERY
            return _slow(data, client, world, tcp)
        counts = data[4:12]
        # The question's end: the first zero byte is the root label's (a zero
        # byte inside a label gives a wrong end, whose key can only miss, since
        # every stored key is a well-formed question: a hit proves the question).
        qend = data.find(0, 12) + 5
        if counts == _QUESTION_ONLY:
            if qend != len(data):
                return _slow(data, client, world, tcp)
            question = data[12:]
            key = question.translate(LOWER)
            entry = world.answers.get(key)
            if entry is not None:
                return _reply(data, question, key, entry, b"", 512, world, tcp, tail)
            entry = world.selections.get((key, client, False))  # a routed name
            if entry is None:
                return _slow(data, client, world, tcp)
            return _reply(data, question, key, entry, b"", 512, world, tcp, (tail, client))
        if counts != _QUESTION_OPT:
            return _slow(data, client, world, tcp)
        question = data[12:qend]
        key = question.translate(LOWER)
        entry = world.selections.get(key + data[qend:])
        if entry is None:
            if data.find(_COOKIE_CODE, qend + 11) >= 0:
                return _cookie_query(data, qend, key, client, world, tcp)
            return _route_new_network(data, qend, key, client, world, tcp)
        if not entry.by_address:
            return _reply(data, question, key, entry, entry.opt, entry.limit, world, tcp, tail)
        by_address = world.selections.get((key, client, entry.do))
        if by_address is None:
            return _slow(data, client, world, tcp)
        return _reply(data, question, key, by_address, entry.opt, entry.limit, world, tcp,
                      (tail, client))
    except IndexError:
        return _slow(data, client, world, tcp)


def _reply(data: bytes, question: bytes, key: bytes, entry: Any, opt: bytes, limit: int,
           world: World, tcp: bool, exact_key: bytes | tuple[bytes, str]) -> Reply:
    """Reply from `entry`; keep the reply for the query's exact bytes when it holds
    for every query with those bytes (from that address, for `exact_key`s that
    name one).

    Only questions sent in lower case are kept, so resolvers that randomize
    letter case (0x20) do not churn the table with one entry per query. A
    multivalue answer, shuffled per query, is never kept."""
    if question != key or isinstance(entry, Shuffled):
        if entry.varies:
            entry = entry.vary(world.rng)
        return assemble(data, question, entry, opt, TCP_LIMIT if tcp else limit), entry.outcome
    if isinstance(entry, Weighted):
        udp: list[bytes] = []
        full: list[bytes] = []
        for index in range(len(entry.answers)):
            reply_udp, reply_full = _both(data, question, entry.value(index), opt, limit)
            udp.append(reply_udp[2:])
            full.append(reply_full[2:])
        world.remember_exact(exact_key, (tuple(udp), tuple(full), entry.outcome,
                                         entry.cumulative))
        index = bisect_right(entry.cumulative, world.rng.random() * entry.total)
        return data[:2] + (full if tcp else udp)[index], entry.outcome
    reply_udp, reply_full = _both(data, question, entry, opt, limit)
    world.remember_exact(exact_key, (reply_udp[2:], reply_full[2:], entry.outcome, None))
    return (reply_full if tcp else reply_udp), entry.outcome


def _both(data: bytes, question: bytes, entry: Any, opt: bytes,
          limit: int) -> tuple[bytes, bytes]:
    """The reply over UDP and over TCP (the same bytes unless UDP is truncated)."""
    udp = assemble(data, question, entry, opt, limit)
    return udp, (udp if not udp[2] & 0x02 else assemble(data, question, entry, opt, TCP_LIMIT))


def _cookie_query(data: bytes, qend: int, key: bytes, client: str, world: World,
                  tcp: bool) -> Reply:
    """An EDNS query with a COOKIE option: the reply the same query gets without
    the cookie (kept in the exact-bytes table like any other), with our COOKIE
    option appended to its OPT record, the last record of the reply. Only the
    server cookie is worked out per query, and `Cookies.respond` memoizes that
    for a client presenting the same cookie again within the second; the whole
    reply is kept for that second too."""
    now = world.cookies.now
    memo_key = (data[2:], client, tcp)
    kept = world.cookied.get(memo_key)
    if kept is not None and kept[0] == now:
        return data[:2] + kept[1], kept[2]
    stripped = strip_cookie(data[qend:])
    if stripped is None:
        return _route_new_network(data, qend, key, client, world, tcp)
    bare, value = stripped
    selections = world.selections
    entry: Any = selections.get(key + bare)
    if entry is None:
        return _slow(data, client, world, tcp)
    opt, limit = entry.opt, entry.limit
    tail = data[2:qend] + bare  # the query's bytes after its ID, without the cookie
    exact_key: bytes | tuple[bytes, str] = tail
    if entry.by_address:  # keyed as in `resolve`
        entry = selections.get((key, client, entry.do))
        if entry is None:
            return _slow(data, client, world, tcp)
        exact_key = (tail, client)
    try:
        cookie, valid = world.cookies.respond(value, client)
    except CookieError:
        return _slow(data, client, world, tcp)  # FORMERR, worded by the slow path
    seen = world.exact.get(exact_key)
    if seen is not None and seen[3] is None:
        body: bytes = seen[1] if tcp else seen[0]
        outcome = seen[2]
    else:  # a first query, or a weighted or shuffled answer (a new pick per query)
        made, outcome = _reply(data[:qend] + bare, data[12:qend], key, entry, opt, limit,
                               world, tcp, exact_key)
        body = made[2:] if made is not None else b""
    if valid:
        outcome = world.memo.outcomes.cookied(outcome)
    cut = len(body) - len(opt)
    if body[cut:] == opt and (tcp or cut + len(opt) + len(cookie) + 2 <= limit):
        after_id = body[:cut] + with_option(opt, cookie)
        if seen is not None and seen[3] is None:  # the same reply for the second
            world.remember_cookied(memo_key, (now, after_id, outcome))
        return data[:2] + after_id, outcome
    # It no longer fits: assembled whole, truncated as the size rule says.
    if entry.varies:
        entry = entry.vary(world.rng)
    return (assemble(data, data[12:qend], entry, with_option(opt, cookie),
                     TCP_LIMIT if tcp else limit), outcome)


def strip_cookie(opt: bytes) -> tuple[bytes, bytes] | None:
    """(the OPT record `opt` without its COOKIE option, the option's data), or None
    when `opt` is not one well-formed OPT record with exactly one COOKIE option."""
    size = len(opt)
    if size < 15 or opt[:3] != b"\x00\x00\x29" or (opt[9] << 8 | opt[10]) != size - 11:
        return None
    if (size == 23 and opt[11:15] == _CLIENT_COOKIE) or (
            size == 39 and opt[11:15] == _FULL_COOKIE):
        return opt[:9] + b"\x00\x00", opt[15:]  # the cookie is the only option
    found: tuple[int, int] | None = None
    i = 11
    while i + 4 <= size:
        end = i + 4 + (opt[i + 2] << 8 | opt[i + 3])
        if end > size:
            return None
        if opt[i] << 8 | opt[i + 1] == OPTION_COOKIE:
            if found is not None:
                return None
            found = (i, end)
        i = end
    if i != size or found is None:
        return None
    start, end = found
    rdlength = size - 11 - (end - start)
    return (opt[:9] + rdlength.to_bytes(2, "big") + opt[11:start] + opt[end:],
            opt[start + 4:end])


def with_option(opt: bytes, option: bytes) -> bytes:
    """Our OPT record `opt` with `option` (code, length, data) appended."""
    return opt[:9] + (len(opt) - 11 + len(option)).to_bytes(2, "big") + opt[11:] + option


def _route_new_network(data: bytes, qend: int, key: bytes, client: str, world: World,
                       tcp: bool) -> Reply:
    """An EDNS query that missed the memo. A routed name asked with one Client
    Subnet option from a network not seen yet is decided here, without the full
    parse; anything else goes to `_slow`."""
    name = world.routed.get(key)
    # the OPT record: root, type, payload (2), extended rcode, version, flags (2),
    # RDLENGTH (2), then one option: code (2), length (2), body
    if (name is None or len(data) < qend + 15 or data[qend:qend + 3] != b"\x00\x00\x29"
            or data[qend + 6] or data[qend + 11:qend + 13] != _ECS_CODE
            or (data[qend + 9] << 8 | data[qend + 10]) != len(data) - qend - 11
            or (data[qend + 13] << 8 | data[qend + 14]) != len(data) - qend - 15):
        return _slow(data, client, world, tcp)
    try:
        ecs = wire.parse_ecs(data[qend + 15:])
    except WireError:
        return _slow(data, client, world, tcp)  # the full parser words the FORMERR
    limit = min(max(data[qend + 3] << 8 | data[qend + 4], wire.MIN_UDP_PAYLOAD),
                wire.MAX_UDP_PAYLOAD)
    entry: Any = _route(world, data[qend - 4] << 8 | data[qend - 3], key, name, client, ecs,
                        bool(data[qend + 7] & 0x80), limit, key + data[qend:])
    if entry.varies:
        entry = entry.vary(world.rng)
    return (assemble(data, data[12:qend], entry, entry.opt, TCP_LIMIT if tcp else limit),
            world.memo.outcomes.variant(entry.outcome, ROUTED, COMPUTED))


def _slow(data: bytes, client: str, world: World, tcp: bool) -> Reply:
    try:
        q = wire.parse_query(data)
    except MalformedQuery as exc:
        if not exc.header_ok:
            return None, DROPPED_OUTCOME
        return _error(world, data, exc.flags, exc.question, FORMERR, None, 0)
    qtype = q.qtype
    edns = q.edns
    extra = b""  # options our OPT record carries besides Client Subnet
    cookie = valid = nsid = False
    if edns is not None and edns.options:
        try:
            extra, cookie, valid, nsid = _answered_options(edns, client, world)
        except CookieError:
            return _error(world, data, q.flags, q.question, FORMERR, edns, qtype)
    if q.opcode != 0:
        return _error(world, data, q.flags, q.question, NOTIMP, edns, qtype, extra, valid)
    if edns is not None and edns.version > 0:
        return _error(world, data, q.flags, q.question, BADVERS, edns, qtype, extra, valid)
    if qtype in (wire.OPT, TKEY, TSIG, NXNAME):  # NXNAME: never asked (RFC 9824)
        return _error(world, data, q.flags, q.question, FORMERR, edns, qtype, extra, valid)
    if q.qclass == CLASS_CH:
        return _chaos(world, data, q, tcp, extra, valid)
    if q.qclass != CLASS_IN or qtype in (AXFR, IXFR):
        return _error(world, data, q.flags, q.question, REFUSED, edns, qtype, extra, valid)
    if qtype in (MAILA, MAILB):
        return _error(world, data, q.flags, q.question, NOTIMP, edns, qtype, extra, valid)
    memo = world.memo
    key = q.key
    safe = key_is_safe(key)  # the fast path can find this key again
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
        if safe:
            memo.learn(key, found)
    # The memo key of the query's shape: the question and its OPT record as sent,
    # when that is all the query holds and the reply depends on nothing else in it.
    # A COOKIE option is left out of the shape: the cookie is added to each reply.
    shape: bytes | None = None
    if safe and edns is not None and data[4:12] == _QUESTION_OPT and not nsid:
        sent = data[12 + len(q.question):]
        if not cookie:
            shape = key + sent
        elif (stripped := strip_cookie(sent)) is not None:
            shape = key + stripped[0]
    ecs = edns.ecs if edns is not None else None
    do = edns is not None and edns.do
    limit = wire.udp_limit(edns)
    chosen: Answer | Tailored | Weighted | Shuffled
    if isinstance(found, RoutedName):
        chosen = _route(world, qtype, key, found, client, ecs, do, limit, shape, safe)
        if ecs is None and edns is not None:
            if shape is not None:
                world.remember_selection(shape, ByAddress(opt_record(do), limit, do))
            opt = opt_record(do)
        else:
            opt = chosen.opt
    elif edns is not None:
        outcome = found.outcome
        co = False
        if do and (found.signed is not None or found.sign_later):
            nxdomain = found.rcode == NXDOMAIN
            found = _signed(world, found, q)
            if nxdomain and edns.co and found.rcode != NXDOMAIN:
                found = _restored(found)  # the client takes NXDOMAIN with compact denial
                co = True
        # A static answer holds for every client: ECS scope 0 (RFC 7871 §7.2.1).
        opt = opt_record(do, ecs.to_option(0) if ecs is not None else b"", co=co)
        chosen = Tailored(found, opt, limit, memo.outcomes.get(
            qtype, outcome.rcode, outcome.zone, STATIC, MEMO, scope=0 if ecs else None))
        if shape is not None:
            world.remember_selection(shape, chosen)
    else:
        chosen = found
        opt = b""
    if isinstance(chosen, Weighted | Shuffled):
        chosen = chosen.vary(world.rng)
    outcome = memo.outcomes.variant(chosen.outcome, SLOW, tier)
    if valid:
        outcome = memo.outcomes.cookied(outcome)
    if extra:
        opt = with_option(opt, extra)
    return (assemble(data, q.question, chosen, opt, TCP_LIMIT if tcp else limit), outcome)


def _answered_options(edns: wire.Edns, client: str,
                      world: World) -> tuple[bytes, bool, bool, bool]:
    """The options a reply carries for the query's COOKIE and NSID options: (the
    options, a COOKIE option was sent, it held a valid server cookie, NSID was
    asked). The first of each counts. CookieError for a malformed COOKIE."""
    extra = b""
    cookie = valid = nsid = False
    for code, value in edns.options:
        if code == OPTION_COOKIE and not cookie:
            option, valid = world.cookies.respond(value, client)
            extra += option
            cookie = True
        elif code == OPTION_NSID and not nsid and world.server_id:
            extra += nsid_option(world.server_id)
            nsid = True
    return extra, cookie, valid, nsid


def _signed(world: World, found: Answer, q: wire.Query) -> Answer:
    """The DO=1 rendering of a signed zone's answer: made at build time for the
    zone's own names, else now (a negative answer, a wildcard synthesis), once."""
    if found.signed is not None:
        return found.signed
    qname = dns.name.from_wire(q.qname, 0)[0]
    zone_set = world.snapshot.zone_set
    return sign_now(found, zone_set, qname, q.qtype, lookup(zone_set, qname, q.qtype))


def _restored(signed: Answer) -> Answer:
    """A compact denial with its NXDOMAIN rcode restored, for a client that says
    it understands (the CO flag, RFC 9824): the same records, rcode NXDOMAIN."""
    flags = signed.flags & ~0xF & ~(wire.QR | wire.AA)
    return Answer(NXDOMAIN, bool(signed.flags & wire.AA), signed.ancount, signed.nscount,
                  signed.arcount, signed.body, signed.outcome, signed.chunks, signed.zone,
                  signed.qtype, extra_flags=flags)


# The names class CH answers with the server's id (TXT), lower-cased wire form.
_ID_NAMES = frozenset({b"\x02id\x06server\x00", b"\x08hostname\x04bind\x00"})


def _chaos(world: World, data: bytes, q: wire.Query, tcp: bool, extra: bytes,
           valid: bool) -> Reply:
    """Class CH: TXT `id.server` and `hostname.bind` answer the server's id;
    everything else (`version.bind` included) is REFUSED."""
    edns = q.edns
    server_id = world.server_id
    if (q.qtype not in (TXT, ANY) or q.qname.translate(LOWER) not in _ID_NAMES
            or not server_id):
        return _error(world, data, q.flags, q.question, REFUSED, edns, q.qtype, extra, valid)
    rdata = b"".join(bytes((len(chunk),)) + chunk
                     for chunk in (server_id[i:i + 255] for i in range(0, len(server_id), 255)))
    body = b"\xc0\x0c" + struct.pack("!HHIH", TXT, CLASS_CH, 0, len(rdata)) + rdata
    outcome = world.memo.outcomes.get(q.qtype, NOERROR, "", SLOW, COMPUTED, cookie=valid)
    entry = Answer(NOERROR, True, 1, 0, 0, body, outcome)
    opt = b"" if edns is None else opt_record(edns.do)
    if extra:
        opt = with_option(opt, extra)
    return assemble(data, q.question, entry, opt, TCP_LIMIT if tcp else wire.udp_limit(edns)), \
        outcome


def _route(world: World, qtype: int, key: bytes, name: RoutedName, client: str,
           ecs: ClientSubnet | None, do: bool, limit: int,
           shape: bytes | None, safe: bool = True) -> Tailored | Weighted | Shuffled:
    """Decide, render and memoize a routed answer for the query's client network.

    With ECS the entry carries the OPT record to send and is memoized under
    `shape` (the question and the query's OPT record as sent), when given;
    without ECS it is memoized by question and source address (when the key is
    `safe`: see `build.key_is_safe`)."""
    selection = name.router.select(client_net(client, ecs, world.geo), world.route)
    memo = world.memo
    res = name.resolution
    outcome = memo.outcomes.get(qtype, res.rcode, name.zone, ROUTED, MEMO, selection.rule,
                                selection.pool, selection.scope if ecs is not None else None,
                                selection.failed_open)
    opt = opt_record(do, ecs.to_option(selection.scope)) if ecs is not None else b""
    entry: Tailored | Weighted | Shuffled
    fixed = selection.fixed
    if fixed is not None:
        answer = _rendered(world, qtype, key, name, fixed.key, fixed.rdatas, do)
        if fixed.shuffle:
            entry = Shuffled(answer, len(fixed.rdatas), MULTIVALUE_MAX, opt, limit, outcome)
        else:
            entry = Tailored(answer, opt, limit, outcome)
    else:
        health = selection.weighted
        assert health is not None
        pool = selection.pool
        entry = Weighted(tuple(_rendered(world, qtype, key, name, (pool, v.text), (v.rdata,), do)
                               for v in health.up), health.cumulative, opt, limit, outcome)
    if ecs is None:
        if safe:
            world.remember_selection((key, client, do), entry)
    elif shape is not None:
        world.remember_selection(shape, entry)
    return entry


def _rendered(world: World, qtype: int, key: bytes, name: RoutedName, decision: Any,
              rdatas: tuple[Any, ...], do: bool = False) -> Answer:
    """The answer of a routed name rendered for one decision (identified by the key
    `decision`, never by client), shared by every client network that gets it.
    For a DO=1 query in a signed zone, the signed rendering: signed here, once
    per decision, and kept in the same memo."""
    memo = world.memo
    res = name.resolution
    signed = do and res.zone is not None and res.zone.signer is not None
    cache_key = (key, decision, True) if signed else (key, decision)
    answer = memo.rendered.get(cache_key)
    if answer is None:
        answer_rrs = [part.static_rrs() if part.data.router is None
                      else RRs(part.owner, part.data.rdtype, part.ttl, rdatas)
                      for part in res.answer]
        outcome = memo.outcomes.get(qtype, res.rcode, name.zone, ROUTED, MEMO)
        found = None
        if signed:
            found = render_signed(world.snapshot.zone_set, name.qname, qtype, res, outcome,
                                  answer_rrs)
        answer = found if found is not None else render_answer(name.qname, qtype, res,
                                                               outcome, answer_rrs)
        memo.remember_rendering(cache_key, answer)
    return answer


def _error(world: World, data: bytes, qflags: int, question: bytes, rcode: int,
           edns: wire.Edns | None, qtype: int, extra: bytes = b"",
           valid: bool = False) -> Reply:
    """An empty response with `rcode` (an extended rcode goes into OPT, with the
    `extra` options: our COOKIE, NSID); the opcode is echoed, so NOTIMP names the
    opcode it refuses."""
    outcome = world.memo.outcomes.get(qtype, rcode, "", SLOW, NONE, cookie=valid)
    entry = Answer(rcode, False, 0, 0, 0, b"", outcome, extra_flags=qflags & 0x7800,
                   qdcount=1 if question else 0)
    opt = b"" if edns is None else opt_record(edns.do, extra, rcode >> 4)
    return assemble(data, question, entry, opt, TCP_LIMIT), outcome


def limited_reply(data: bytes, client: str, world: World) -> bytes | None:
    """The reply a rate-limited query gets when it slips: the question alone with
    TC=1, so a real client retries over TCP; or, when the query carries a client
    cookie, BADCOOKIE with a fresh server cookie (RFC 7873 §5.2.3), so the client
    retries with it and is no longer limited. None: nothing to send."""
    try:
        q = wire.parse_query(data)
    except WireError:
        return None
    flags = QR | TC | (q.flags & (0x7800 | RD | CD))
    opt = b""
    edns = q.edns
    if edns is not None:
        option = b""
        for code, value in edns.options:
            if code == OPTION_COOKIE:
                try:
                    option = world.cookies.respond(value, client)[0]
                except CookieError:
                    pass
                break
        if option:
            flags = flags & ~TC | (BADCOOKIE & 0xF)
        opt = opt_record(edns.do, option, BADCOOKIE >> 4 if option else 0)
    return data[:2] + _HEAD.pack(flags, 1, 0, 0, 1 if opt else 0) + q.question + opt


def server_failure(data: bytes) -> bytes:
    """SERVFAIL for a query whose answer cannot be sent (larger than a TCP frame)."""
    q = wire.parse_query(data)
    opt = b"" if q.edns is None else opt_record(q.edns.do)
    entry = Answer(SERVFAIL, False, 0, 0, 0, b"", DROPPED_OUTCOME)
    return assemble(data, q.question, entry, opt, TCP_LIMIT)
