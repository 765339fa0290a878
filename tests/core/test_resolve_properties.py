"""core/resolve.py as a whole: bytes in, bytes (or a drop) out, whatever the bytes.

Properties: `resolve` never raises;
every reply parses and carries the query's ID; a UDP reply never exceeds the
client's limit and has TC=1 exactly when the full (TCP) answer would not fit;
the question is echoed as sent (0x20 letter case); and the inline fast path
(static answers, and routed names with or without one ECS option) agrees with
the general path (an unknown EDNS option forces the latter). Then examples:
FORMERR for bad Client Subnet options on every path, the other special
replies, and bounded memo tables.

The zone mixes static names, TXT sets sized around 512 and 1232 bytes, and
routed names (geos, subnets, nearest, a routed TXT set, a routed wildcard),
located through the session's test GeoIP (tests/core/conftest.py).
"""

from __future__ import annotations

import functools
import struct

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geostream_dns.core import world as world_module
from geostream_dns.core.geo import GeoLocator, RawLookup
from geostream_dns.core.model import Zone
from geostream_dns.core.outcome import STATIC
from geostream_dns.core.resolve import resolve
from geostream_dns.core.world import World
from tests.core.helpers import TC, ask, load, make_world, query, unknown_option

PROPERTY = settings(max_examples=250, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _strings(count: int, size: int) -> str:
    return ", ".join(f'"{chr(97 + i % 26) * size}{i}"' for i in range(count))


def _txt(name: str, count: int, size: int) -> str:
    return f"{name}: {{type: TXT, values: [{_strings(count, size)}]}}\n"


ZONE = (
    """\
'':
  - {type: ALIAS, value: www.example.com.}
  - {type: MX, values: [{preference: 10, exchange: mail.example.com.}]}
  - {type: TXT, value: "v=spf1 -all"}
www:
  - {type: A, values: [192.0.2.10, 192.0.2.11]}
  - {type: AAAA, value: "2001:db8::10"}
mail: {type: A, value: 192.0.2.25}
api: {type: CNAME, value: www.example.com.}
big-chain: {type: CNAME, value: txt-big.example.com.}
'*.wild': {type: A, value: 192.0.2.99}
shop: {type: NS, values: [ns1.shop.example.com., ns2.shop.example.com.]}
ns1.shop: {type: A, value: 192.0.2.200}
ns2.shop: {type: AAAA, value: "2001:db8::200"}
geo:
  type: A
  routing:
    pools:
      us: {region: us, answer: all, values: [192.0.2.1, 192.0.2.2]}
      eu: {region: eu, answer: all, values: [198.51.100.1, 198.51.100.2, 198.51.100.3]}
      ap: {region: ap, answer: all, values: [203.0.113.1]}
      de: {answer: all, values: [198.51.100.20]}
      lab: {answer: all, values: [192.0.2.60]}
    rules:
      - subnets: [10.1.0.0/16, "2001:db8:4::/48"]
        pool: lab
      - geos: [EU-DE]
        pool: de
      - nearest: [us, eu, ap]
geo-chain: {type: CNAME, value: geo.example.com.}
'*.rw':
  type: A
  routing:
    pools:
      eu: {answer: multivalue, values: [198.51.100.7, 198.51.100.8]}
      us: {values: [192.0.2.7]}
    rules:
      - geos: [EU]
        pool: eu
      - pool: us
geo-alias:
  - {type: ALIAS, value: geo.example.com.}
geo-txt:
  type: TXT
  routing:
    pools:
      big: {answer: all, values: [BIG]}
      mid: {answer: all, values: [MID]}
      small: {answer: all, values: ["small"]}
    rules:
      - geos: [EU]
        pool: big
      - geos: [NA]
        pool: mid
      - pool: small
"""
    + _txt("txt-small", 1, 40)  # fits 512
    + _txt("txt-mid", 6, 100)  # between 512 and 1232
    + _txt("txt-big", 14, 100)  # more than 1232
    + _txt("txt-huge", 60, 200)  # far more, still fine over TCP
).replace("[BIG]", f"[{_strings(14, 100)}]").replace("[MID]", f"[{_strings(6, 100)}]")

NAMES = [
    "example.com.", "www.example.com.", "mail.example.com.", "api.example.com.",
    "big-chain.example.com.", "x.wild.example.com.", "a.b.wild.example.com.",
    "shop.example.com.", "www.shop.example.com.", "geo.example.com.",
    "txt-small.example.com.", "txt-mid.example.com.", "txt-big.example.com.",
    "txt-huge.example.com.", "nothing.example.com.", "www.example.net.",
    "geo-chain.example.com.", "geo-txt.example.com.", "a.rw.example.com.",
]
QTYPES = ["A", "AAAA", "TXT", "MX", "NS", "SOA", "CNAME", "ANY", "DS", "SRV", "CAA", "HINFO"]
CLIENT = "192.0.2.1"
# Client subnets: Virginia, Frankfurt, Paris, Sydney, a subnets rule, unknown, no location.
ECS = [None, "192.0.2.0/24", "198.51.100.0/25", "198.51.100.128/26", "198.18.0.0/16",
       "10.1.2.0/24", "233.252.0.0/24", "0.0.0.0/0", "2001:db8::/56", "2001:db8:1::/48",
       "2001:db8:4::/56", "2001:db8:3::/64", "::/0"]
DUMMY = unknown_option(65001, b"forces the general path")


_worlds: dict[int, World] = {}


def shared(raw: RawLookup) -> World:
    """One world per GeoIP database, shared by the examples of every property."""
    if id(raw) not in _worlds:
        _worlds[id(raw)] = make_world([load(ZONE)], geo=GeoLocator(raw))
    return _worlds[id(raw)]


def mixed_case(draw: st.DrawFn, name: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    return "".join(c.upper() if f else c for c, f in zip(name, flips, strict=True))


@st.composite
def questions(draw: st.DrawFn) -> tuple[str, str]:
    return mixed_case(draw, draw(st.sampled_from(NAMES))), draw(st.sampled_from(QTYPES))


@st.composite
def client_queries(draw: st.DrawFn) -> dns.message.Message:
    """Well-formed queries as clients send them: any case, with or without EDNS/ECS."""
    name, qtype = draw(questions())
    if not draw(st.booleans()):
        return query(name, qtype, qid=draw(st.integers(0, 65535)), edns=False)
    ecs = draw(st.sampled_from(ECS))
    return query(name, qtype, qid=draw(st.integers(0, 65535)), edns=True,
                 payload=draw(st.one_of(st.integers(0, 65535),
                                        st.sampled_from([511, 512, 513, 1231, 1232, 1233]))),
                 do=draw(st.booleans()), ecs=ecs)


def _mutations(data: bytes) -> st.SearchStrategy[bytes]:
    n = len(data)
    return st.one_of(
        st.integers(0, n).map(lambda i: data[:i]),
        st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, 255)), min_size=1,
                 max_size=4).map(lambda flips: _flip(data, flips)),
        st.binary(min_size=1, max_size=30).map(lambda junk: data + junk),
    )


def _flip(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for i, b in flips:
        out[i] = b
    return bytes(out)


any_bytes = st.one_of(
    st.binary(max_size=300),
    client_queries().map(lambda q: q.to_wire()).flatmap(_mutations),
    client_queries().map(lambda q: q.to_wire()),
)


# -- never raises; every reply parses and keeps the ID ------------------------------


@PROPERTY
@given(any_bytes, st.booleans())
def test_any_bytes_never_raise_and_replies_parse(city_raw: RawLookup, data: bytes,
                                                 tcp: bool) -> None:
    reply, outcome = resolve(data, CLIENT, shared(city_raw), tcp)
    rcode = outcome.rcode
    assert isinstance(outcome.qtype, int) and isinstance(rcode, int)
    if reply is None:
        # Dropped: no readable header, or QR=1.
        assert rcode == -1 and outcome.path == "dropped"
        assert len(data) < 12 or data[2] & 0x80
        return
    assert isinstance(reply, bytes)
    assert len(data) >= 12 and not data[2] & 0x80
    assert reply[:2] == data[:2]
    assert reply[2] & 0x80  # QR
    assert not reply[3] & 0x80  # RA is never set
    if not tcp:
        assert len(reply) <= _limit(data)
    try:
        msg = dns.message.from_wire(reply)
    except dns.exception.FormError:
        # dnspython reads opcode UPDATE replies as updates (the question becomes
        # the zone section) and refuses some; check such error replies by hand.
        opcode = (reply[2] >> 3) & 0xF
        assert opcode != dns.opcode.QUERY and rcode == dns.rcode.NOTIMP, reply
        qd, an, ns, _ar = struct.unpack_from("!HHHH", reply, 4)
        assert (qd, an, ns) == (1, 0, 0) and reply[3] & 0xF == rcode
        return
    assert msg.id == int.from_bytes(data[:2], "big")
    assert msg.rcode() == rcode or rcode == dns.rcode.BADVERS


def _limit(data: bytes) -> int:
    """The UDP limit the query asks for (512 when it has no parsable OPT)."""
    try:
        q = dns.message.from_wire(data)
    except Exception:
        return 512
    if q.edns < 0:
        return 512
    return min(max(q.payload, 512), 1232)


@pytest.mark.parametrize("data", [
    b"",
    b"\x12",
    b"\x12\x34" + b"\x00" * 9,  # 11 bytes
    b"\x12\x34\x80\x00" + b"\x00" * 8,  # QR=1
], ids=["empty", "one-byte", "eleven-bytes", "qr-set"])
def test_unreadable_or_response_packets_are_dropped(city_raw: RawLookup, data: bytes) -> None:
    reply, outcome = resolve(data, CLIENT, shared(city_raw))
    assert (reply, outcome.qtype, outcome.rcode, outcome.path) == (None, 0, -1, "dropped")


@pytest.mark.parametrize(("data", "question"), [
    (struct.pack("!HHHHHH", 0x1234, 0x0100, 0, 0, 0, 0), b""),
    (struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"\x03www", b""),
    (struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
     + b"\x03www\x00\x00\x01\x00\x01" + b"junk", b"\x03www\x00\x00\x01\x00\x01"),
], ids=["qdcount-0", "cut-question", "trailing-junk"])
def test_formerr_keeps_the_id_and_the_readable_question(city_raw: RawLookup, data: bytes,
                                                        question: bytes) -> None:
    reply, outcome = resolve(data, CLIENT, shared(city_raw))
    assert outcome.rcode == dns.rcode.FORMERR and reply is not None
    assert reply[:2] == b"\x12\x34"
    msg = dns.message.from_wire(reply)
    assert msg.rcode() == dns.rcode.FORMERR
    assert msg.flags & dns.flags.RD
    assert reply[12:] == question


# -- UDP size and TC ------------------------------------------------------------


@PROPERTY
@given(client_queries())
def test_udp_reply_fits_and_tc_is_set_exactly_when_records_are_dropped(
        city_raw: RawLookup, q: dns.message.Message) -> None:
    data = q.to_wire()
    udp, _ = resolve(data, CLIENT, shared(city_raw), tcp=False)
    full, _ = resolve(data, CLIENT, shared(city_raw), tcp=True)
    assert udp is not None and full is not None
    limit = 512 if q.edns < 0 else min(max(q.payload, 512), 1232)
    assert len(udp) <= limit
    udp_msg = dns.message.from_wire(udp)
    if len(full) > limit:
        assert udp_msg.flags & TC
        assert (udp_msg.answer, udp_msg.authority, udp_msg.additional) == ([], [], [])
        assert udp_msg.question == q.question
        assert (udp_msg.edns >= 0) == (q.edns >= 0)  # OPT kept when the client sent one
    else:
        assert not udp_msg.flags & TC
        # Byte for byte the same, but for the per-query order of multivalue records.
        assert len(udp) == len(full)
        assert _sections(udp_msg) == _sections(dns.message.from_wire(full))
    assert not dns.message.from_wire(full).flags & TC


@pytest.mark.parametrize(("name", "payload", "tc"), [
    ("txt-small.example.com.", None, False),
    ("txt-mid.example.com.", None, True),
    ("txt-mid.example.com.", 512, True),
    ("txt-mid.example.com.", 1232, False),
    ("txt-mid.example.com.", 4096, False),
    ("txt-big.example.com.", 1232, True),
    ("txt-big.example.com.", 65535, True),
    ("big-chain.example.com.", 4096, True),
    ("txt-huge.example.com.", 4096, True),
    ("geo-txt.example.com.", 1232, False),  # from Virginia: the mid-size pool
    ("geo-txt.example.com.", None, True),
    ("geo-txt.example.com./198.51.100.128/25", 1232, True),  # Paris: the big pool
    ("geo-txt.example.com./198.18.0.0/15", 512, False),  # Sydney: the small pool
])
def test_truncation_examples(city_raw: RawLookup, name: str, payload: int | None,
                             tc: bool) -> None:
    name, _, ecs = name.partition("/")
    q = query(name, "TXT", edns=payload is not None, payload=payload or 1232, ecs=ecs or None)
    for _ in range(2):  # the second time from the fast path
        reply = ask(shared(city_raw), q, client=CLIENT)
        assert bool(reply.flags & TC) == tc
    full = ask(shared(city_raw), q, client=CLIENT, tcp=True)
    assert not full.flags & TC and full.answer


# -- the question is echoed as sent --------------------------------------------


@PROPERTY
@given(client_queries(), st.booleans())
def test_question_is_echoed_byte_for_byte(city_raw: RawLookup, q: dns.message.Message,
                                          tcp: bool) -> None:
    data = q.to_wire()
    reply, _ = resolve(data, CLIENT, shared(city_raw), tcp)
    assert reply is not None
    (question,) = q.question
    qlen = len(question.name.to_wire() or b"") + 4
    assert reply[12:12 + qlen] == data[12:12 + qlen]
    msg = dns.message.from_wire(reply)
    assert msg.question[0].name.to_text() == question.name.to_text()  # case kept
    # Every owner written as a pointer into the question reads back in the client's case.
    for rrset in msg.answer:
        if rrset.name == question.name:
            assert rrset.name.to_text() == question.name.to_text()


def test_error_replies_echo_the_question_too(city_raw: RawLookup) -> None:
    q = query("WwW.ExAmPlE.CoM.", "A", edns=True)
    q.set_opcode(dns.opcode.NOTIFY)
    reply = ask(shared(city_raw), q)
    assert reply.rcode() == dns.rcode.NOTIMP
    assert reply.question[0].name.to_text() == "WwW.ExAmPlE.CoM."
    assert reply.opcode() == dns.opcode.NOTIFY


# -- the fast path agrees with the general path ---------------------------------


def fresh(raw: RawLookup) -> World:
    """A world with empty memo tables."""
    return make_world([_zone()], geo=GeoLocator(raw))


@functools.cache
def _zone() -> Zone:
    return load(ZONE)


def _sections(msg: dns.message.Message) -> tuple[object, ...]:
    def norm(section: list[dns.rrset.RRset]) -> list[tuple[str, int, list[str]]]:
        return [(r.name.to_text().lower(), r.ttl, sorted(rd.to_text().lower() for rd in r))
                for r in section]

    return (msg.rcode(), msg.flags, norm(msg.answer), norm(msg.authority),
            norm(msg.additional), msg.edns, msg.ednsflags, msg.payload,
            [o.to_text() for o in msg.options])


@PROPERTY
@given(questions(), st.sampled_from(ECS), st.integers(0, 65535), st.booleans(), st.booleans())
def test_fast_and_general_path_agree(city_raw: RawLookup, question: tuple[str, str],
                                     ecs: str | None, payload: int, do: bool, tcp: bool) -> None:
    name, qtype = question
    plain = query(name, qtype, edns=True, payload=payload, do=do, ecs=ecs)
    forced = query(name, qtype, edns=True, payload=payload, do=do, ecs=ecs, options=[DUMMY])
    # Fast: prime the name's plan (or derived answer) from another client, so the
    # query itself takes the fast path and computes its own routing selection ...
    first = fresh(city_raw)
    resolve(query(name, qtype).to_wire(), "233.252.0.9", first)
    fast = ask(first, plain, tcp=tcp)
    again = ask(first, plain, tcp=tcp)  # ... then from the memoized selection.
    # General: the unknown option sends the query through wire.parse_query.
    general = ask(fresh(city_raw), forced, tcp=tcp)
    assert all(o.otype == 8 for o in general.options)  # the unknown option is not echoed
    assert _sections(fast) == _sections(again) == _sections(general)


@pytest.mark.parametrize("body", [
    struct.pack("!HBB", 3, 0, 0),
    struct.pack("!HBB", 1, 33, 0) + b"\xc0\x00\x02\x01\x00",
    struct.pack("!HBB", 1, 24, 0) + b"\xc0\x00\x02\x00",
    struct.pack("!HBB", 1, 25, 0) + b"\xc6\x33\x64\xc0",
    struct.pack("!HBB", 1, 24, 24) + b"\xc0\x00\x02",
], ids=["family-3", "prefix-33", "address-too-long", "bits-past-prefix", "scope-in-query"])
@pytest.mark.parametrize("name", ["geo.example.com.", "geo-chain.example.com.",
                                  "www.example.com.", "nothing.example.com."])
def test_invalid_client_subnet_is_formerr_on_every_path(city_raw: RawLookup, body: bytes,
                                                        name: str) -> None:
    world = fresh(city_raw)
    resolve(query(name, "A").to_wire(), CLIENT, world)  # plan or answer now memoized
    for extra in ([], [DUMMY]):  # one ECS option (fast-path shape), then the general path
        q = query(name, "A", edns=True, qid=0x4242,
                  options=[unknown_option(8, body), *extra])
        for _ in range(2):
            reply, outcome = resolve(q.to_wire(), CLIENT, world)
            assert outcome.rcode == dns.rcode.FORMERR and reply is not None
            msg = dns.message.from_wire(reply)
            assert (msg.id, msg.rcode(), msg.answer) == (0x4242, dns.rcode.FORMERR, [])


@pytest.mark.parametrize("name", ["www.example.com.", "txt-small.example.com.", "example.com."])
def test_names_with_a_static_answer_take_the_fast_path(city_raw: RawLookup, name: str) -> None:
    q = query(name, "A" if "txt" not in name else "TXT")
    key = q.to_wire()[12:].lower()
    world = shared(city_raw)
    assert key in world.snapshot.answers
    assert resolve(q.to_wire(), CLIENT, world)[1].path == STATIC


@pytest.mark.parametrize("extra", [[], [DUMMY]], ids=["fast", "general"])
@pytest.mark.parametrize("bits", [dns.flags.RD, dns.flags.CD, dns.flags.RD | dns.flags.CD, 0],
                         ids=["rd", "cd", "rd+cd", "none"])
def test_rd_and_cd_are_copied_on_both_paths(city_raw: RawLookup, extra: list[dns.edns.Option],
                                            bits: int) -> None:
    # RFC 1035 §4.1.1 (RD) and RFC 4035 §3.1.6 (CD): copied from the query.
    q = query("www.example.com.", "A", edns=True, options=extra, flags=bits)
    reply = ask(shared(city_raw), q)
    assert reply.flags & (dns.flags.RD | dns.flags.CD) == bits


# -- memory: every memo table is bounded, whatever the queries ------------------


def test_memo_tables_stay_bounded(city_raw: RawLookup, monkeypatch: pytest.MonkeyPatch) -> None:
    limit = 16
    monkeypatch.setattr(world_module, "DERIVED_LIMIT", limit)
    monkeypatch.setattr(world_module, "RENDERED_LIMIT", limit)
    monkeypatch.setattr(world_module, "SELECTION_LIMIT", limit)
    w = fresh(city_raw)
    prerendered = len(w.snapshot.answers)
    for i in range(300):
        source = f"10.0.{i // 256}.{i % 256}"
        resolve(query(f"n{i}.example.com.", "A").to_wire(), source, w)  # NXDOMAIN: learned
        resolve(query(f"h{i}.rw.example.com.", "A").to_wire(), source, w)  # routed names
        resolve(query(f"h{i}.rw.example.com.", "A").to_wire(), source, w)  # (fast path)
        ecs = f"198.51.{i % 256}.0/24"
        resolve(query("geo.example.com.", "A", ecs=ecs).to_wire(), source, w)  # selections
        sizes = (len(w.answers) - prerendered, len(w.memo.derived), len(w.memo.rendered),
                 len(w.selections))
        assert max(sizes) <= limit, sizes


# -- other replies (class CH, zone transfers, meta types), same entry point -------


@pytest.mark.parametrize(("make", "rcode"), [
    (lambda: query("www.example.com.", "A", rdclass="CH"), dns.rcode.REFUSED),
    (lambda: query("version.bind.", "TXT", rdclass="CH"), dns.rcode.REFUSED),
    (lambda: query("example.com.", "AXFR"), dns.rcode.REFUSED),
    (lambda: query("example.com.", "IXFR"), dns.rcode.REFUSED),
    (lambda: query("example.com.", "MAILB"), dns.rcode.NOTIMP),
    (lambda: query("example.com.", "TSIG"), dns.rcode.FORMERR),
    (lambda: query("example.com.", "OPT"), dns.rcode.FORMERR),
], ids=["class-ch", "version.bind", "axfr", "ixfr", "mailb", "qtype-tsig", "qtype-opt"])
def test_special_questions(city_raw: RawLookup, make: object, rcode: int) -> None:
    q = make()  # type: ignore[operator]
    reply = ask(shared(city_raw), q)
    assert reply.rcode() == rcode
    assert not reply.answer


def test_edns_version_above_zero_gets_badvers_with_opt(city_raw: RawLookup) -> None:
    q = dns.message.make_query("www.example.com.", "A", use_edns=1)
    reply = ask(shared(city_raw), q)
    assert reply.rcode() == dns.rcode.BADVERS
    assert reply.edns == 0 and not reply.answer


def test_opt_is_answered_only_when_asked(city_raw: RawLookup) -> None:
    assert ask(shared(city_raw), query("www.example.com.", "A", edns=False)).edns < 0
    q = query("www.example.com.", "A", edns=True, payload=4096, do=True)
    with_opt = ask(shared(city_raw), q)
    assert with_opt.edns == 0
    assert with_opt.payload == 1232
    assert with_opt.ednsflags & dns.flags.DO


def test_random_source_is_a_parameter() -> None:
    # Two worlds with the same seed answer a stream of routed queries identically.
    snippet = """\
    lb:
      type: A
      routing:
        pools:
          p: {answer: multivalue, values: [192.0.2.1, 192.0.2.2, 192.0.2.3, 192.0.2.4]}
        rules:
          - pool: p
    """
    wires = [query("lb.example.com.", "A", qid=i).to_wire() for i in range(50)]
    first = make_world([load(snippet)], seed=7)
    second = make_world([load(snippet)], seed=7)
    assert ([resolve(w, CLIENT, first)[0] for w in wires]
            == [resolve(w, CLIENT, second)[0] for w in wires])
    assert len({(resolve(w, CLIENT, first)[0] or b"")[2:] for w in wires}) > 1  # orders differ


@pytest.mark.parametrize("edns", [False, True], ids=["plain", "edns"])
def test_a_zero_byte_inside_a_label_is_never_taken_for_the_end_of_the_name(
        city_raw: RawLookup, edns: bool) -> None:
    # The fast path finds the end of the name at its first zero byte; a name with
    # a zero byte inside a label must still be answered for the whole question.
    name = dns.name.Name([b"a\x00b", b"example", b"com", b""])
    q = dns.message.make_query(name, "A", use_edns=0 if edns else False)
    world = fresh(city_raw)
    for _ in range(3):
        reply, outcome = resolve(q.to_wire(), CLIENT, world)
        assert reply is not None and outcome.rcode == dns.rcode.NXDOMAIN
        msg = dns.message.from_wire(reply)
        assert msg.question[0].name == name
        assert reply[12:12 + len(q.question[0].name.to_wire()) + 4] == q.to_wire()[12:][
            :len(q.question[0].name.to_wire()) + 4]
